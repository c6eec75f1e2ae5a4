//! The grid polygons in memory, for report intake: one R-tree lookup per report instead of one
//! GiST probe and `ST_Covers` per report in PostgreSQL (measured at about 190 ms of a
//! 1,000-report batch). The index is reloaded when `geometry_version` changes, which every
//! statement changing region geometry bumps, so every server replica sees imports at once.
//! `LocateGrid` keeps asking PostGIS.

use std::sync::Arc;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Int2, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use tokio::sync::Mutex;

use crate::domain::geometry::Shape;

struct Entry {
    code: String,
    level: i16,
    area: f64,
    shape: Shape,
}

/// A loaded index.
pub struct GridIndex {
    version: i64,
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
    entries: Vec<Entry>,
}

impl GridIndex {
    /// The finest region whose polygon covers (lat, lng): highest level, then smallest area,
    /// then lowest code — the order `LocateGrid` uses. Returns (code, level).
    pub fn locate(&self, lat: f64, lng: f64) -> Option<(&str, i16)> {
        self.tree
            .locate_all_at_point(&[lng, lat])
            .map(|g| &self.entries[g.data])
            .filter(|e| e.shape.covers(lng, lat))
            .min_by(|a, b| {
                (std::cmp::Reverse(a.level), a.area, &a.code)
                    .partial_cmp(&(std::cmp::Reverse(b.level), b.area, &b.code))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .map(|e| (e.code.as_str(), e.level))
    }

    /// Number of polygons.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    code: String,
    #[diesel(sql_type = Int2)]
    level: i16,
    #[diesel(sql_type = Double)]
    area: f64,
    #[diesel(sql_type = Text)]
    geojson: String,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = BigInt)]
    version: i64,
}

crate::prepared!(struct CurrentVersion = "SELECT version FROM geometry_version" {});
crate::prepared!(struct AllBoundaries = "SELECT code, level, ST_Area(boundary) AS area, ST_AsGeoJSON(boundary) AS geojson FROM regions WHERE boundary IS NOT NULL" {});

/// The database's current geometry version. It takes `&AsyncPgConnection` so that callers can
/// send it together with other queries (pipelined).
pub async fn current_version(mut conn: &AsyncPgConnection) -> QueryResult<i64> {
    Ok(CurrentVersion {}
        .get_result::<Version>(&mut conn)
        .await?
        .version)
}

/// The shared, lazily reloaded index.
#[derive(Default)]
pub struct GridCache {
    current: Mutex<Option<Arc<GridIndex>>>,
}

impl GridCache {
    /// The index as of geometry `version` (read by [`current_version`] on `conn`) or later,
    /// reloaded when the database's geometry changed.
    pub async fn at(
        &self,
        conn: &mut AsyncPgConnection,
        version: i64,
    ) -> QueryResult<Arc<GridIndex>> {
        // One loader at a time; the others wait and take its result.
        let mut current = self.current.lock().await;
        if let Some(idx) = current.as_ref().filter(|i| i.version >= version) {
            return Ok(idx.clone());
        }
        let rows: Vec<Row> = AllBoundaries {}.load(conn).await?;
        let mut entries = Vec::with_capacity(rows.len());
        let mut boxes = Vec::with_capacity(rows.len());
        for r in rows {
            let Some(shape) = Shape::from_geojson(&r.geojson) else {
                continue;
            };
            let (x0, y0, x1, y1) = shape.bbox();
            boxes.push(GeomWithData::new(
                Rectangle::from_aabb(AABB::from_corners([x0, y0], [x1, y1])),
                entries.len(),
            ));
            entries.push(Entry {
                code: r.code,
                level: r.level,
                area: r.area,
                shape,
            });
        }
        let idx = Arc::new(GridIndex {
            version,
            tree: RTree::bulk_load(boxes),
            entries,
        });
        tracing::info!(polygons = idx.len(), version, "grid index loaded");
        *current = Some(idx.clone());
        Ok(idx)
    }
}
