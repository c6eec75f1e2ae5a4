//! Dashboard figures from the aggregates kept by the triggers on `cases` (migration 4): the
//! folded `case_stats` plus the deltas not folded yet, so figures are exact up to the last
//! commit. One query with GROUPING SETS gives every breakdown.

use crate::domain::principal::Scope;
use chrono::{Datelike, NaiveDate};
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
/// are left out. Regions of a town or larger read whole months from the monthly rollups and
/// only the days of partial months (and the deltas not folded yet) day by day.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn dashboard(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<Figures>> {
    let prefix = scope.prefix();
    if prefix.len() > 9 {
        return fine(conn, scope, from, to).await;
    }
    let (m_from, m_to) = whole_months(from, to);
    // A town's rows are one index range (expression indexes on the town part of the code).
    let (town, rollup, bound) = if prefix.len() == 9 {
        (
            "left(region_code, 9) = $1",
            "region_code = $1",
            prefix.to_owned(),
        )
    } else {
        (
            "region_code LIKE $1",
            "region_code LIKE $1",
            format!("{prefix}%"),
        )
    };
    // The days of partial months: [from, m_from) and [m_to, to), two index ranges.
    let head = format!("{town} AND day >= $2 AND day < $4");
    let tail = format!("{town} AND day >= $5 AND day < $3");
    let mut rows: Vec<Figures> = diesel::sql_query(format!(
        "WITH s AS (
            SELECT {COLS} FROM case_stats_town_month WHERE {rollup} AND day >= $4 AND day < $5
            UNION ALL
            SELECT {COLS} FROM case_stats WHERE {head}
            UNION ALL
            SELECT {COLS} FROM case_stats WHERE {tail}
            UNION ALL
            SELECT {COLS} FROM case_stats_delta WHERE {town} AND day >= $2 AND day < $3
         )
         SELECT CASE WHEN GROUPING(status) = 0 THEN {BY_STATUS} WHEN GROUPING(category) = 0 THEN {BY_CATEGORY}
                     WHEN GROUPING(assignee) = 0 THEN {BY_ASSIGNEE} ELSE {TOTAL} END AS set,
                coalesce(status, category, assignee, '') AS key, {SUMS}
           FROM s
          WHERE status <> 'MERGED'
          GROUP BY GROUPING SETS ((status), (category), (assignee), ())"
    ))
    .bind::<Text, _>(&bound)
    .bind::<Date, _>(from)
    .bind::<Date, _>(to)
    .bind::<Date, _>(m_from)
    .bind::<Date, _>(m_to)
    .load(conn)
    .await?;
    let grids: Vec<Figures> = diesel::sql_query(format!(
        "SELECT {BY_REGION} AS set, region_code AS key, sum(cases)::int8 AS cases, 0::int8 AS overdue, 0::int8 AS closed,
                0::int8 AS closed_on_time, 0::int8 AS register_n, 0::float8 AS register_secs, 0::int8 AS dispatch_n,
                0::float8 AS dispatch_secs, 0::int8 AS sign_n, 0::float8 AS sign_secs, 0::int8 AS handle_n,
                0::float8 AS handle_secs, 0::int8 AS verify_n, 0::float8 AS verify_secs
           FROM (SELECT region_code, cases FROM case_grid_month WHERE {town} AND day >= $4 AND day < $5
                 UNION ALL
                 SELECT region_code, cases FROM case_stats WHERE {head} AND status <> 'MERGED'
                 UNION ALL
                 SELECT region_code, cases FROM case_stats WHERE {tail} AND status <> 'MERGED'
                 UNION ALL
                 SELECT region_code, cases FROM case_stats_delta WHERE {town} AND day >= $2 AND day < $3 AND status <> 'MERGED') g
          GROUP BY region_code"
    ))
    .bind::<Text, _>(&bound)
    .bind::<Date, _>(from)
    .bind::<Date, _>(to)
    .bind::<Date, _>(m_from)
    .bind::<Date, _>(m_to)
    .load(conn)
    .await?;
    rows.extend(grids);
    Ok(rows)
}

const SUMS: &str = "coalesce(sum(cases), 0)::int8 AS cases,
    coalesce(sum(cases) FILTER (WHERE overdue), 0)::int8 AS overdue,
    coalesce(sum(cases) FILTER (WHERE status = 'CLOSED'), 0)::int8 AS closed,
    coalesce(sum(closed_on_time), 0)::int8 AS closed_on_time,
    coalesce(sum(register_n), 0)::int8 AS register_n, coalesce(sum(register_secs), 0)::float8 AS register_secs,
    coalesce(sum(dispatch_n), 0)::int8 AS dispatch_n, coalesce(sum(dispatch_secs), 0)::float8 AS dispatch_secs,
    coalesce(sum(sign_n), 0)::int8 AS sign_n, coalesce(sum(sign_secs), 0)::float8 AS sign_secs,
    coalesce(sum(handle_n), 0)::int8 AS handle_n, coalesce(sum(handle_secs), 0)::float8 AS handle_secs,
    coalesce(sum(verify_n), 0)::int8 AS verify_n, coalesce(sum(verify_secs), 0)::float8 AS verify_secs";

/// The whole months inside `[from, to)`, as `[first day, first day after)`; when there are
/// none, the empty range at `from` (so `[from, m_from)` is empty and `[m_to, to)` is all).
pub fn whole_months(from: NaiveDate, to: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = |d: NaiveDate| d.with_day(1).unwrap_or(d);
    let m_from = if from.day() == 1 {
        from
    } else {
        first(from)
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(to)
    };
    let m_to = first(to);
    if m_from < m_to {
        (m_from, m_to)
    } else {
        (from, from)
    }
}

/// Every breakdown from the day-grain aggregates (small regions).
async fn fine(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<Figures>> {
    let prefix = scope.prefix();
    diesel::sql_query(format!(
        "WITH s AS (
            SELECT {COLS} FROM case_stats WHERE region_code LIKE $1 AND day >= $2 AND day < $3
            UNION ALL
            SELECT {COLS} FROM case_stats_delta WHERE region_code LIKE $1 AND day >= $2 AND day < $3
         )
         SELECT GROUPING(status, category, region_code, assignee)::int4 AS set,
                coalesce(status, category, region_code, assignee, '') AS key, {SUMS}
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
#[tracing::instrument(level = "debug", skip_all)]
pub async fn fold(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    diesel::select(diesel::dsl::sql::<Int8>("case_stats_fold()"))
        .get_result(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn whole_months_inside_a_range() {
        assert_eq!(
            whole_months(d("2026-01-15"), d("2026-04-10")),
            (d("2026-02-01"), d("2026-04-01"))
        );
        assert_eq!(
            whole_months(d("2026-01-01"), d("2026-02-01")),
            (d("2026-01-01"), d("2026-02-01"))
        );
        assert_eq!(
            whole_months(d("2026-11-23"), d("2026-11-24")),
            (d("2026-11-23"), d("2026-11-23"))
        );
        // December is not whole: no whole month at all.
        assert_eq!(
            whole_months(d("2026-11-02"), d("2026-12-31")),
            (d("2026-11-02"), d("2026-11-02"))
        );
    }
}
