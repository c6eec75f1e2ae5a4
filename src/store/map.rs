//! The one map (一张图) of a region: grids with their open and overdue cases, and the open
//! cases as points. Two reads, each one query.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Double, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::domain::ids::CaseId;
use crate::domain::principal::Scope;
use crate::domain::workflow::{Status, flag};

/// A grid with what lies in it.
#[derive(Debug, Clone, QueryableByName)]
pub struct MapGrid {
    #[diesel(sql_type = Text)]
    pub code: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub geojson: String,
    #[diesel(sql_type = BigInt)]
    pub open_cases: i64,
    #[diesel(sql_type = BigInt)]
    pub overdue_cases: i64,
    #[diesel(sql_type = Array<Text>)]
    pub workers: Vec<String>,
}

/// An open case as a point.
#[derive(Debug, Clone, QueryableByName)]
pub struct MapCase {
    #[diesel(sql_type = SqlUuid)]
    pub case_id: CaseId,
    #[diesel(sql_type = Text)]
    pub case_no: String,
    #[diesel(sql_type = Double)]
    pub lat: f64,
    #[diesel(sql_type = Double)]
    pub lng: f64,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub unified_category: String,
    #[diesel(sql_type = Text)]
    pub grid_code: String,
    #[diesel(sql_type = Bool)]
    pub overdue: bool,
    #[diesel(sql_type = Bool)]
    pub escalated: bool,
}

/// The finished statuses, as the queries bind them ([`Status::FINISHED`]).
fn finished() -> Vec<&'static str> {
    Status::FINISHED.iter().map(|s| s.as_str()).collect()
}

/// The grids (and micro-grids) with a boundary in `scope`, by code, with their open and
/// overdue cases and active workers.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn grids(conn: &mut AsyncPgConnection, scope: &Scope) -> QueryResult<Vec<MapGrid>> {
    diesel::sql_query(
        "SELECT g.code, g.name, ST_AsGeoJSON(g.boundary, 6) AS geojson,
                COALESCE(c.open_cases, 0) AS open_cases, COALESCE(c.overdue_cases, 0) AS overdue_cases,
                COALESCE((SELECT array_agg(w.name || ' (' || w.worker_id || ')' ORDER BY w.worker_id)
                            FROM workers w WHERE w.active AND w.grid_codes @> ARRAY[g.code]), '{}') AS workers
           FROM regions g
           LEFT JOIN (SELECT grid_code, count(*) AS open_cases,
                             count(*) FILTER (WHERE $3 = ANY (flags)) AS overdue_cases
                        FROM cases WHERE region_code LIKE $1 AND status <> ALL ($2)
                       GROUP BY grid_code) c ON c.grid_code = g.code
          WHERE g.code LIKE $1 AND g.level >= 6 AND g.boundary IS NOT NULL
          ORDER BY g.code",
    )
    .bind::<Text, _>(format!("{}%", scope.prefix()))
    .bind::<Array<Text>, _>(finished())
    .bind::<Text, _>(flag::OVERDUE)
    .load(conn)
    .await
}

/// The open cases of `scope` before `before` (ids are time-ordered), newest first, at most
/// `limit`.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn open_cases(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    before: Option<CaseId>,
    limit: i64,
) -> QueryResult<Vec<MapCase>> {
    diesel::sql_query(
        "SELECT case_id, case_no, lat, lng, status, unified_category, grid_code,
                $3 = ANY (flags) AS overdue, ($4 = ANY (flags) OR $5 = ANY (flags)) AS escalated
           FROM cases WHERE region_code LIKE $1 AND status <> ALL ($2)
            AND ($7::uuid IS NULL OR case_id < $7)
          ORDER BY case_id DESC LIMIT $6",
    )
    .bind::<Text, _>(format!("{}%", scope.prefix()))
    .bind::<Array<Text>, _>(finished())
    .bind::<Text, _>(flag::OVERDUE)
    .bind::<Text, _>(flag::ESCALATED)
    .bind::<Text, _>(flag::SUPERVISED)
    .bind::<BigInt, _>(limit)
    .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(before)
    .load(conn)
    .await
}
