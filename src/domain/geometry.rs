//! Polygons in memory, for locating many points without a database round trip per point.
//! Semantics match PostGIS `ST_Covers` (a point on the boundary is inside) and planar
//! `ST_Area`, so the in-memory answer equals the SQL one.

use serde_json::Value;

/// A ring of (lng, lat) positions, closed (last equals first).
pub type Ring = Vec<(f64, f64)>;

/// A multipolygon: polygons, each an outer ring followed by its holes.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub polygons: Vec<Vec<Ring>>,
}

impl Shape {
    /// Parses a GeoJSON Polygon or MultiPolygon geometry.
    pub fn from_geojson(text: &str) -> Option<Shape> {
        let v: Value = serde_json::from_str(text).ok()?;
        let ring = |r: &Value| -> Option<Ring> {
            r.as_array()?
                .iter()
                .map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .collect()
        };
        let polygon = |p: &Value| -> Option<Vec<Ring>> { p.as_array()?.iter().map(ring).collect() };
        let polygons = match v.get("type")?.as_str()? {
            "Polygon" => vec![polygon(v.get("coordinates")?)?],
            "MultiPolygon" => v
                .get("coordinates")?
                .as_array()?
                .iter()
                .map(polygon)
                .collect::<Option<Vec<_>>>()?,
            _ => return None,
        };
        Some(Shape { polygons })
    }

    /// (min lng, min lat, max lng, max lat).
    pub fn bbox(&self) -> (f64, f64, f64, f64) {
        let mut b = (
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        );
        for (x, y) in self.polygons.iter().flat_map(|p| p.first()).flatten() {
            b = (b.0.min(*x), b.1.min(*y), b.2.max(*x), b.3.max(*y));
        }
        b
    }

    /// Planar area in square degrees (outer rings minus holes), as `ST_Area` on SRID 4326.
    pub fn area(&self) -> f64 {
        self.polygons
            .iter()
            .map(|p| {
                p.iter()
                    .enumerate()
                    .map(|(i, r)| if i == 0 { ring_area(r) } else { -ring_area(r) })
                    .sum::<f64>()
            })
            .sum()
    }

    /// Whether the point (lng, lat) lies inside or on the boundary.
    pub fn covers(&self, x: f64, y: f64) -> bool {
        self.polygons.iter().any(|p| {
            if p.iter().any(|r| on_ring(r, x, y)) {
                return true;
            }
            // Even-odd over the outer ring and its holes.
            p.iter().filter(|r| crosses_odd(r, x, y)).count() % 2 == 1
        })
    }
}

fn ring_area(r: &Ring) -> f64 {
    let s: f64 = r
        .windows(2)
        .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
        .sum();
    (s / 2.0).abs()
}

fn on_ring(r: &Ring, x: f64, y: f64) -> bool {
    r.windows(2).any(|w| {
        let ((x1, y1), (x2, y2)) = (w[0], w[1]);
        let cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1);
        cross == 0.0 && x >= x1.min(x2) && x <= x1.max(x2) && y >= y1.min(y2) && y <= y1.max(y2)
    })
}

fn crosses_odd(r: &Ring, x: f64, y: f64) -> bool {
    let mut inside = false;
    for w in r.windows(2) {
        let ((x1, y1), (x2, y2)) = (w[0], w[1]);
        if (y1 > y) != (y2 > y) && x < (x2 - x1) * (y - y1) / (y2 - y1) + x1 {
            inside = !inside;
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Shape {
        Shape::from_geojson(r#"{"type":"Polygon","coordinates":[[[106.7,28.8],[106.71,28.8],[106.71,28.81],[106.7,28.81],[106.7,28.8]]]}"#).unwrap()
    }

    #[test]
    fn inside_border_and_outside() {
        let s = square();
        assert!(s.covers(106.705, 28.805));
        assert!(s.covers(106.71, 28.805), "east edge");
        assert!(s.covers(106.7, 28.8), "corner");
        assert!(!s.covers(106.7101, 28.805));
        assert!(!s.covers(106.705, 28.79));
    }

    #[test]
    fn holes_are_outside_and_their_edges_inside() {
        let s = Shape::from_geojson(
            r#"{"type":"MultiPolygon","coordinates":[[[[0,0],[10,0],[10,10],[0,10],[0,0]],[[4,4],[6,4],[6,6],[4,6],[4,4]]],[[[20,0],[21,0],[21,1],[20,0]]]]}"#,
        )
        .unwrap();
        assert!(s.covers(1.0, 1.0));
        assert!(!s.covers(5.0, 5.0));
        assert!(s.covers(4.0, 5.0));
        assert!(s.covers(20.9, 0.5));
        assert!((s.area() - (100.0 - 4.0 + 0.5)).abs() < 1e-9);
        assert_eq!(s.bbox(), (0.0, 0.0, 21.0, 10.0));
    }

    #[test]
    fn rejects_other_geometries() {
        assert_eq!(
            Shape::from_geojson(r#"{"type":"Point","coordinates":[1,2]}"#),
            None
        );
        assert_eq!(Shape::from_geojson("nope"), None);
    }
}
