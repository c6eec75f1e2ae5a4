//! Dashboard figures from the aggregates kept by the triggers on `cases` (migration 4): the
//! folded `case_stats` plus the deltas not folded yet, so figures are exact up to the last
//! commit. One query with GROUPING SETS gives every breakdown.

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::sql_types::{Date, Double, Int4, Int8, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// One breakdown row. `set` says which: [`BY_STATUS`], [`BY_CATEGORY`], [`BY_REGION`],
/// [`BY_ASSIGNEE`] or [`TOTAL`].
#[derive(Debug, Clone, Default, PartialEq, QueryableByName)]
pub struct Figures {
    #[diesel(sql_type = Int4)]
    pub set: i32,
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Int8)]
    pub cases: i64,
    #[diesel(sql_type = Int8)]
    pub overdue: i64,
    #[diesel(sql_type = Int8)]
    pub closed: i64,
    #[diesel(sql_type = Int8)]
    pub closed_on_time: i64,
    #[diesel(sql_type = Int8)]
    pub register_n: i64,
    #[diesel(sql_type = Double)]
    pub register_secs: f64,
    #[diesel(sql_type = Int8)]
    pub dispatch_n: i64,
    #[diesel(sql_type = Double)]
    pub dispatch_secs: f64,
    #[diesel(sql_type = Int8)]
    pub sign_n: i64,
    #[diesel(sql_type = Double)]
    pub sign_secs: f64,
    #[diesel(sql_type = Int8)]
    pub handle_n: i64,
    #[diesel(sql_type = Double)]
    pub handle_secs: f64,
    #[diesel(sql_type = Int8)]
    pub verify_n: i64,
    #[diesel(sql_type = Double)]
    pub verify_secs: f64,
}

/// GROUPING() bitmasks of the breakdowns.
pub const BY_STATUS: i32 = 0b0111;
pub const BY_CATEGORY: i32 = 0b1011;
pub const BY_REGION: i32 = 0b1101;
pub const BY_ASSIGNEE: i32 = 0b1110;
pub const TOTAL: i32 = 0b1111;

const COLS: &str = "status, category, region_code, assignee, overdue, cases, closed_on_time, register_n, register_secs,
    dispatch_n, dispatch_secs, sign_n, sign_secs, handle_n, handle_secs, verify_n, verify_secs";

/// Figures of cases within `prefix` first reported on local days `[from, to)`; merged cases
/// are left out.
pub async fn dashboard(
    conn: &mut AsyncPgConnection,
    prefix: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<Figures>> {
    diesel::sql_query(format!(
        "WITH s AS (
            SELECT {COLS} FROM case_stats WHERE region_code LIKE $1 AND day >= $2 AND day < $3
            UNION ALL
            SELECT {COLS} FROM case_stats_delta WHERE region_code LIKE $1 AND day >= $2 AND day < $3
         )
         SELECT GROUPING(status, category, region_code, assignee)::int4 AS set,
                coalesce(status, category, region_code, assignee, '') AS key,
                coalesce(sum(cases), 0)::int8 AS cases,
                coalesce(sum(cases) FILTER (WHERE overdue), 0)::int8 AS overdue,
                coalesce(sum(cases) FILTER (WHERE status = 'CLOSED'), 0)::int8 AS closed,
                coalesce(sum(closed_on_time), 0)::int8 AS closed_on_time,
                coalesce(sum(register_n), 0)::int8 AS register_n, coalesce(sum(register_secs), 0)::float8 AS register_secs,
                coalesce(sum(dispatch_n), 0)::int8 AS dispatch_n, coalesce(sum(dispatch_secs), 0)::float8 AS dispatch_secs,
                coalesce(sum(sign_n), 0)::int8 AS sign_n, coalesce(sum(sign_secs), 0)::float8 AS sign_secs,
                coalesce(sum(handle_n), 0)::int8 AS handle_n, coalesce(sum(handle_secs), 0)::float8 AS handle_secs,
                coalesce(sum(verify_n), 0)::int8 AS verify_n, coalesce(sum(verify_secs), 0)::float8 AS verify_secs
           FROM s
          WHERE status <> 'MERGED'
          GROUP BY GROUPING SETS ((status), (category), (region_code), (assignee), ())"
    ))
    .bind::<Text, _>(format!("{prefix}%"))
    .bind::<Date, _>(from)
    .bind::<Date, _>(to)
    .load(conn)
    .await
}

/// Folds pending deltas into `case_stats` (one folder at a time across replicas); returns how
/// many delta rows were folded.
pub async fn fold(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    diesel::select(diesel::dsl::sql::<Int8>("case_stats_fold()"))
        .get_result(conn)
        .await
}
