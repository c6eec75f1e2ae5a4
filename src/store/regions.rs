//! The `regions` table: the hierarchy from province to micro-grid, with grid polygons.
//! Reads take the caller's scope prefix, so a query cannot forget the region subtree.

use crate::domain::principal::Scope;
use crate::domain::region::RegionCode;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int2, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::regions;
use crate::domain::geojson::GridFeature;

/// A region as stored (without the polygon).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = regions, check_for_backend(diesel::pg::Pg))]
pub struct Region {
    pub code: String,
    pub name: String,
    pub level: i16,
    pub parent_code: Option<String>,
    pub fallback_owner: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A region with its boundary as GeoJSON.
#[derive(Debug, Clone)]
pub struct RegionWithBoundary {
    pub region: Region,
    pub boundary_geojson: Option<String>,
}

/// One region to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionInput {
    pub code: String,
    pub name: String,
    pub level: i16,
    pub parent_code: Option<String>,
    pub fallback_owner: String,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl std::ops::AddAssign for UpsertCounts {
    fn add_assign(&mut self, o: Self) {
        self.created += o.created;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
    }
}

/// One region with its boundary, if it lies within `prefix`.
pub async fn get(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    code: &RegionCode,
) -> QueryResult<Option<RegionWithBoundary>> {
    let prefix = scope.prefix();
    regions::table
        .filter(regions::code.eq(code))
        .filter(regions::code.like(format!("{prefix}%")))
        .select((
            Region::as_select(),
            super::postgis::st_asgeojson(regions::boundary.assume_not_null(), 7).nullable(),
        ))
        .first::<(Region, Option<String>)>(conn)
        .await
        .optional()
        .map(|o| {
            o.map(|(region, boundary_geojson)| RegionWithBoundary {
                region,
                boundary_geojson,
            })
        })
}

/// Regions within `prefix`, optionally only children of `parent` and of `level`, after the
/// code `after`, ordered by code.
pub async fn list(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    parent: Option<&str>,
    level: Option<i16>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Region>> {
    let prefix = scope.prefix();
    let mut q = regions::table
        .filter(regions::code.like(format!("{prefix}%")))
        .select(Region::as_select())
        .order(regions::code)
        .limit(limit)
        .into_boxed();
    if let Some(p) = parent {
        q = q.filter(regions::parent_code.eq(p.to_owned()));
    }
    if let Some(l) = level {
        q = q.filter(regions::level.eq(l));
    }
    if let Some(a) = after {
        q = q.filter(regions::code.gt(a.to_owned()));
    }
    q.load(conn).await
}

/// Which of `codes` exist (within `prefix`).
pub async fn existing(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    codes: &[String],
) -> QueryResult<Vec<String>> {
    let prefix = scope.prefix();
    regions::table
        .filter(regions::code.eq_any(codes))
        .filter(regions::code.like(format!("{prefix}%")))
        .select(regions::code)
        .load(conn)
        .await
}

#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    inserted: bool,
}

/// Upserts rows of one level whose parents already exist (callers order by level and check
/// parents first). One statement per call, arrays bound per column.
pub async fn upsert(
    conn: &mut AsyncPgConnection,
    rows: &[RegionInput],
) -> QueryResult<UpsertCounts> {
    if rows.is_empty() {
        return Ok(UpsertCounts::default());
    }
    let codes: Vec<&str> = rows.iter().map(|r| r.code.as_str()).collect();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let levels: Vec<i16> = rows.iter().map(|r| r.level).collect();
    let parents: Vec<Option<&str>> = rows.iter().map(|r| r.parent_code.as_deref()).collect();
    let owners: Vec<&str> = rows.iter().map(|r| r.fallback_owner.as_str()).collect();
    let changed: Vec<Inserted> = diesel::sql_query(
        "INSERT INTO regions AS r (code, name, level, parent_code, fallback_owner)
         SELECT * FROM unnest($1::text[], $2::text[], $3::int2[], $4::text[], $5::text[])
         ON CONFLICT (code) DO UPDATE
            SET name = excluded.name, level = excluded.level, parent_code = excluded.parent_code,
                fallback_owner = excluded.fallback_owner, updated_at = now()
          WHERE (r.name, r.level, r.parent_code, r.fallback_owner)
                IS DISTINCT FROM (excluded.name, excluded.level, excluded.parent_code, excluded.fallback_owner)
         RETURNING (xmax = 0) AS inserted",
    )
    .bind::<Array<Text>, _>(codes)
    .bind::<Array<Text>, _>(names)
    .bind::<Array<Int2>, _>(levels)
    .bind::<Array<Nullable<Text>>, _>(parents)
    .bind::<Array<Text>, _>(owners)
    .load(conn)
    .await?;
    let created = changed.iter().filter(|c| c.inserted).count() as u64;
    let updated = changed.len() as u64 - created;
    Ok(UpsertCounts {
        created,
        updated,
        unchanged: rows.len() as u64 - created - updated,
    })
}

#[derive(QueryableByName)]
struct Invalid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    idx: i32,
    #[diesel(sql_type = Text)]
    reason: String,
}

/// PostGIS's verdict on each geometry: (index into `grids`, reason) for the invalid ones.
pub async fn invalid_geometries(
    conn: &mut AsyncPgConnection,
    grids: &[GridFeature],
) -> QueryResult<Vec<(usize, String)>> {
    let geoms: Vec<&str> = grids.iter().map(|g| g.geometry.as_str()).collect();
    let rows: Vec<Invalid> = diesel::sql_query(
        "SELECT (g.i - 1)::int4 AS idx, ST_IsValidReason(ST_GeomFromGeoJSON(g.geom)) AS reason
           FROM unnest($1::text[]) WITH ORDINALITY AS g(geom, i)
          WHERE NOT ST_IsValid(ST_GeomFromGeoJSON(g.geom))",
    )
    .bind::<Array<Text>, _>(geoms)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.idx as usize, r.reason))
        .collect())
}

/// Upserts grids with their polygons (parents must exist).
pub async fn upsert_grids(
    conn: &mut AsyncPgConnection,
    grids: &[GridFeature],
) -> QueryResult<UpsertCounts> {
    if grids.is_empty() {
        return Ok(UpsertCounts::default());
    }
    let codes: Vec<&str> = grids.iter().map(|g| g.code.as_str()).collect();
    let names: Vec<&str> = grids.iter().map(|g| g.name.as_str()).collect();
    let levels: Vec<i16> = grids.iter().map(|g| g.code.level() as i16).collect();
    let parents: Vec<&str> = grids.iter().map(|g| g.parent_code.as_str()).collect();
    let owners: Vec<&str> = grids.iter().map(|g| g.fallback_owner.as_str()).collect();
    let geoms: Vec<&str> = grids.iter().map(|g| g.geometry.as_str()).collect();
    let changed: Vec<Inserted> = diesel::sql_query(
        "INSERT INTO regions AS r (code, name, level, parent_code, fallback_owner, boundary)
         SELECT c, n, l, p, o, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(g), 4326))
           FROM unnest($1::text[], $2::text[], $3::int2[], $4::text[], $5::text[], $6::text[]) AS t(c, n, l, p, o, g)
         ON CONFLICT (code) DO UPDATE
            SET name = excluded.name, level = excluded.level, parent_code = excluded.parent_code,
                fallback_owner = excluded.fallback_owner, boundary = excluded.boundary, updated_at = now()
          WHERE (r.name, r.level, r.parent_code, r.fallback_owner) IS DISTINCT FROM
                (excluded.name, excluded.level, excluded.parent_code, excluded.fallback_owner)
             OR r.boundary IS NULL OR NOT ST_Equals(r.boundary, excluded.boundary)
         RETURNING (xmax = 0) AS inserted",
    )
    .bind::<Array<Text>, _>(codes)
    .bind::<Array<Text>, _>(names)
    .bind::<Array<Int2>, _>(levels)
    .bind::<Array<Text>, _>(parents)
    .bind::<Array<Text>, _>(owners)
    .bind::<Array<Text>, _>(geoms)
    .load(conn)
    .await?;
    let created = changed.iter().filter(|c| c.inserted).count() as u64;
    let updated = changed.len() as u64 - created;
    Ok(UpsertCounts {
        created,
        updated,
        unchanged: grids.len() as u64 - created - updated,
    })
}

/// The finest grid within `prefix` whose polygon covers the point (border included);
/// ties go to the smallest polygon, then the lowest code. The boundary is not returned.
pub async fn locate(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    lat: f64,
    lng: f64,
) -> QueryResult<Option<Region>> {
    let prefix = scope.prefix();
    use super::postgis::{WGS84, st_area, st_covers, st_makepoint, st_setsrid};
    let boundary = regions::boundary.assume_not_null();
    regions::table
        .filter(regions::boundary.is_not_null())
        .filter(st_covers(
            boundary,
            st_setsrid(st_makepoint(lng, lat), WGS84),
        ))
        .filter(regions::level.ge(6))
        .filter(regions::code.like(format!("{prefix}%")))
        .order((regions::level.desc(), st_area(boundary), regions::code))
        .select(Region::as_select())
        .first(conn)
        .await
        .optional()
}

/// Sets the boundary (GeoJSON geometry) and fallback owner of an existing region of any level.
pub async fn set_boundary(
    conn: &mut AsyncPgConnection,
    code: &RegionCode,
    geojson: &str,
    fallback_owner: &str,
) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE regions SET boundary = ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON($2), 4326)), fallback_owner = $3, updated_at = now() WHERE code = $1",
    )
    .bind::<Text, _>(code)
    .bind::<Text, _>(geojson)
    .bind::<Text, _>(fallback_owner)
    .execute(conn)
    .await
}

/// A record refused by [`import`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub index: u64,
    pub code: String,
    pub reason: String,
}

/// Rows per statement of a bulk import.
const IMPORT_CHUNK: usize = 5000;

/// Imports validated regions (no duplicate codes; parents are proper prefixes): top level
/// first, so parents in the same import land before their children. A record whose parent
/// exists neither in the database nor in the import is rejected; the rest are upserted.
pub async fn import(
    conn: &mut AsyncPgConnection,
    mut rows: Vec<(u64, RegionInput)>,
    mut progress: impl FnMut(u64) + Send,
) -> QueryResult<(UpsertCounts, Vec<Rejected>)> {
    rows.sort_by(|a, b| (a.1.level, &a.1.code).cmp(&(b.1.level, &b.1.code)));
    let mut known: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut counts = UpsertCounts::default();
    let mut rejected = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let level = rows[start].1.level;
        let end = (start..rows.len())
            .take(IMPORT_CHUNK)
            .take_while(|i| rows[*i].1.level == level)
            .last()
            .map(|i| i + 1)
            .unwrap_or(start + 1);
        let chunk = &rows[start..end];
        let mut wanted: Vec<String> = chunk
            .iter()
            .filter_map(|(_, r)| r.parent_code.clone())
            .filter(|p| !known.contains(p))
            .collect();
        wanted.sort();
        wanted.dedup();
        if !wanted.is_empty() {
            known.extend(existing(conn, &Scope::All, &wanted).await?);
        }
        let mut ok = Vec::with_capacity(chunk.len());
        for (i, r) in chunk {
            match &r.parent_code {
                Some(p) if !known.contains(p) => rejected.push(Rejected {
                    index: *i,
                    code: r.code.clone(),
                    reason: format!("parent {p} is unknown"),
                }),
                _ => ok.push(r.clone()),
            }
        }
        counts += upsert(conn, &ok).await?;
        known.extend(ok.into_iter().map(|r| r.code));
        progress((end - start) as u64);
        start = end;
    }
    rejected.sort_by_key(|r| r.index);
    Ok((counts, rejected))
}
