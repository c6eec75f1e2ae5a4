//! Structural validation of grid GeoJSON (a FeatureCollection of Polygon/MultiPolygon
//! features). Every problem is collected with its path, so the client sees all of them at
//! once. Topological validity (self-intersections and the like) is checked by PostGIS
//! (`ST_IsValidReason`) in the same transaction as the import.

use serde_json::Value;

use super::Violation;
use super::region::{RegionCode, RegionLevel};

/// One grid, structurally valid.
#[derive(Debug, Clone, PartialEq)]
pub struct GridFeature {
    /// Position in the FeatureCollection.
    pub index: usize,
    /// Grid (15 digits) or micro-grid (18 digits) code.
    pub code: RegionCode,
    /// Name.
    pub name: String,
    /// The parent code (a village for grids, a grid for micro-grids).
    pub parent_code: RegionCode,
    /// Fallback owner (属地兜底), possibly empty.
    pub fallback_owner: String,
    /// The geometry object as GeoJSON text, for `ST_GeomFromGeoJSON`.
    pub geometry: String,
}

/// Most features accepted in one import.
pub const MAX_FEATURES: usize = 100_000;

/// Parses and validates grid GeoJSON; returns every violation found.
pub fn parse_grids(bytes: &[u8]) -> Result<Vec<GridFeature>, Vec<Violation>> {
    let root: Value = serde_json::from_slice(bytes)
        .map_err(|e| vec![Violation::new("geojson", format!("is not valid JSON: {e}"))])?;
    if root.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(vec![Violation::new(
            "geojson.type",
            "must be \"FeatureCollection\"",
        )]);
    }
    let Some(features) = root.get("features").and_then(Value::as_array) else {
        return Err(vec![Violation::new("geojson.features", "must be an array")]);
    };
    if features.is_empty() {
        return Err(vec![Violation::new(
            "geojson.features",
            "must not be empty",
        )]);
    }
    if features.len() > MAX_FEATURES {
        return Err(vec![Violation::new(
            "geojson.features",
            format!("at most {MAX_FEATURES} features per import"),
        )]);
    }
    let mut out = Vec::with_capacity(features.len());
    let mut violations = Vec::new();
    for (i, f) in features.iter().enumerate() {
        match parse_feature(i, f) {
            Ok(g) => out.push(g),
            Err(mut v) => violations.append(&mut v),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for g in &out {
        if !seen.insert(g.code.as_str()) {
            violations.push(Violation::new(
                format!("features[{}].properties.code", g.index),
                format!("{} appears more than once", g.code),
            ));
        }
    }
    if violations.is_empty() {
        Ok(out)
    } else {
        Err(violations)
    }
}

fn parse_feature(i: usize, f: &Value) -> Result<GridFeature, Vec<Violation>> {
    let at = |p: &str| format!("features[{i}].{p}");
    let mut v = Vec::new();
    if f.get("type").and_then(Value::as_str) != Some("Feature") {
        v.push(Violation::new(at("type"), "must be \"Feature\""));
    }
    let props = f.get("properties").and_then(Value::as_object);
    let prop = |k: &str| {
        props
            .and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let code = match RegionCode::parse(prop("code")) {
        Ok(c) if c.level().is_grid() => Some(c),
        Ok(_) => {
            v.push(Violation::new(
                at("properties.code"),
                "a grid code has 15 digits (micro-grid 18)",
            ));
            None
        }
        Err(e) => {
            v.push(Violation::new(at("properties.code"), e.to_string()));
            None
        }
    };
    let name = prop("name").trim().to_owned();
    if name.is_empty() {
        v.push(Violation::new(at("properties.name"), "must not be empty"));
    }
    let parent = match (RegionCode::parse(prop("parent_code")), &code) {
        (Ok(p), Some(c)) if c.parent().as_ref() == Some(&p) => Some(p),
        (Ok(_), Some(c)) => {
            v.push(Violation::new(
                at("properties.parent_code"),
                format!(
                    "must be {}, the prefix of the grid code",
                    c.parent().map(|p| p.to_string()).unwrap_or_default()
                ),
            ));
            None
        }
        (Ok(_), None) => None,
        (Err(e), _) => {
            v.push(Violation::new(at("properties.parent_code"), e.to_string()));
            None
        }
    };
    let geometry = f.get("geometry");
    match geometry {
        Some(g) => check_geometry(g, &at("geometry"), &mut v),
        None => v.push(Violation::new(at("geometry"), "is required")),
    }
    match (code, parent, geometry, v.is_empty()) {
        (Some(code), Some(parent_code), Some(g), true) => Ok(GridFeature {
            index: i,
            code,
            name,
            parent_code,
            fallback_owner: prop("fallback_owner").trim().to_owned(),
            geometry: g.to_string(),
        }),
        _ => Err(v),
    }
}

fn check_geometry(g: &Value, path: &str, v: &mut Vec<Violation>) {
    let coords = g.get("coordinates").and_then(Value::as_array);
    match (g.get("type").and_then(Value::as_str), coords) {
        (Some("Polygon"), Some(rings)) => check_polygon(rings, &format!("{path}.coordinates"), v),
        (Some("MultiPolygon"), Some(polys)) => {
            if polys.is_empty() {
                v.push(Violation::new(
                    format!("{path}.coordinates"),
                    "must hold at least one polygon",
                ));
            }
            for (j, p) in polys.iter().enumerate() {
                let pp = format!("{path}.coordinates[{j}]");
                match p.as_array() {
                    Some(rings) => check_polygon(rings, &pp, v),
                    None => v.push(Violation::new(pp, "must be an array of rings")),
                }
            }
        }
        (Some("Polygon" | "MultiPolygon"), None) => v.push(Violation::new(
            format!("{path}.coordinates"),
            "must be an array",
        )),
        _ => v.push(Violation::new(
            format!("{path}.type"),
            "must be \"Polygon\" or \"MultiPolygon\"",
        )),
    }
}

fn check_polygon(rings: &[Value], path: &str, v: &mut Vec<Violation>) {
    if rings.is_empty() {
        v.push(Violation::new(path, "a polygon needs an outer ring"));
    }
    for (k, ring) in rings.iter().enumerate() {
        let rp = format!("{path}[{k}]");
        let Some(points) = ring.as_array() else {
            v.push(Violation::new(rp, "a ring must be an array of positions"));
            continue;
        };
        if points.len() < 4 {
            v.push(Violation::new(&rp, "a ring needs at least 4 positions"));
            continue;
        }
        let mut parsed = Vec::with_capacity(points.len());
        for (n, p) in points.iter().enumerate() {
            match position(p) {
                Some(pos) => parsed.push(pos),
                None => {
                    v.push(Violation::new(
                        format!("{rp}[{n}]"),
                        "a position is [lng, lat] with -180 ≤ lng ≤ 180 and -90 ≤ lat ≤ 90",
                    ));
                    return;
                }
            }
        }
        if parsed.first() != parsed.last() {
            v.push(Violation::new(
                rp,
                "a ring must be closed (last position equal to the first)",
            ));
        }
    }
}

fn position(p: &Value) -> Option<(f64, f64)> {
    let a = p.as_array()?;
    if !(2..=3).contains(&a.len()) {
        return None;
    }
    let lng = a[0].as_f64()?;
    let lat = a[1].as_f64()?;
    let ok = lng.is_finite()
        && lat.is_finite()
        && (-180.0..=180.0).contains(&lng)
        && (-90.0..=90.0).contains(&lat);
    ok.then_some((lng, lat))
}

/// The level of a grid feature (grid or micro-grid).
pub fn level_of(g: &GridFeature) -> RegionLevel {
    g.code.level()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fc(features: &str) -> Vec<u8> {
        format!(r#"{{"type":"FeatureCollection","features":[{features}]}}"#).into_bytes()
    }

    const SQUARE: &str = r#"{"type":"Polygon","coordinates":[[[106.6,28.9],[106.61,28.9],[106.61,28.91],[106.6,28.91],[106.6,28.9]]]}"#;

    fn feature(code: &str, parent: &str, geometry: &str) -> String {
        format!(
            r#"{{"type":"Feature","properties":{{"code":"{code}","name":"网格","parent_code":"{parent}"}},"geometry":{geometry}}}"#
        )
    }

    #[test]
    fn accepts_a_valid_grid() {
        let g = parse_grids(&fc(&feature("500110111201001", "500110111201", SQUARE))).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].code.as_str(), "500110111201001");
        assert_eq!(level_of(&g[0]), RegionLevel::Grid);
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let open = r#"{"type":"Polygon","coordinates":[[[106.6,28.9],[106.61,28.9],[106.61,28.91],[106.6,28.92]]]}"#;
        let out_of_range = r#"{"type":"Polygon","coordinates":[[[206.6,28.9],[106.61,28.9],[106.61,28.91],[206.6,28.9]]]}"#;
        let body = [
            feature("500110111201001", "500110111201", SQUARE),
            feature("50011011120100", "500110111201", SQUARE),
            feature("500110111201002", "500110111200", SQUARE),
            feature("500110111201003", "500110111201", open),
            feature("500110111201004", "500110111201", out_of_range),
            feature(
                "500110111201005",
                "500110111201",
                r#"{"type":"Point","coordinates":[1,2]}"#,
            ),
        ]
        .join(",");
        let v = parse_grids(&fc(&body)).unwrap_err();
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "features[1].properties.code",
                "features[2].properties.parent_code",
                "features[3].geometry.coordinates[0]",
                "features[4].geometry.coordinates[0][0]",
                "features[5].geometry.type",
            ]
        );
    }

    #[test]
    fn rejects_non_geojson() {
        assert_eq!(parse_grids(b"not json").unwrap_err()[0].field, "geojson");
        assert_eq!(
            parse_grids(br#"{"type":"Feature"}"#).unwrap_err()[0].field,
            "geojson.type"
        );
        assert_eq!(
            parse_grids(&fc("")).unwrap_err()[0].field,
            "geojson.features"
        );
    }

    #[test]
    fn duplicate_codes_rejected() {
        let f = feature("500110111201001", "500110111201", SQUARE);
        let v = parse_grids(&fc(&format!("{f},{f}"))).unwrap_err();
        assert_eq!(v[0].field, "features[1].properties.code");
    }
}
