//! The `cases` table: one event, one case. Reads take the scope prefix; merges and splits
//! correct the automatic decision.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{cases, reports};

/// A stored case.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = cases, check_for_backend(diesel::pg::Pg))]
pub struct Case {
    pub case_id: Uuid,
    pub case_no: String,
    pub status: String,
    pub unified_category: String,
    pub grid_code: String,
    pub region_code: String,
    pub owner: String,
    pub lat: f64,
    pub lng: f64,
    pub first_reported_at: DateTime<Utc>,
    pub last_reported_at: DateTime<Utc>,
    pub report_count: i32,
    pub flags: Vec<Option<String>>,
    pub merged_into: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Statuses from which a case no longer takes reports.
pub const FINISHED: [&str; 3] = ["CLOSED", "VOID", "MERGED"];

/// A case with its reports' ids and merge reasons, oldest report first.
#[derive(Debug, Clone)]
pub struct CaseWithReports {
    pub case: Case,
    pub reports: Vec<(Uuid, serde_json::Value)>,
}

/// One case, if it lies within `prefix`.
pub async fn get(
    conn: &mut AsyncPgConnection,
    prefix: &str,
    id: Uuid,
) -> QueryResult<Option<CaseWithReports>> {
    let Some(case) = cases::table
        .find(id)
        .filter(cases::region_code.like(format!("{prefix}%")))
        .select(Case::as_select())
        .first(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    let reports = reports::table
        .filter(reports::case_id.eq(id))
        .order(reports::report_id)
        .select((reports::report_id, reports::merge_reason))
        .load(conn)
        .await?;
    Ok(Some(CaseWithReports { case, reports }))
}

/// Locks a case row for update, if it lies within `prefix`.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    prefix: &str,
    id: Uuid,
) -> QueryResult<Option<Case>> {
    cases::table
        .find(id)
        .filter(cases::region_code.like(format!("{prefix}%")))
        .select(Case::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Cases within `prefix` before `before` (ids are time-ordered), newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    prefix: &str,
    statuses: &[String],
    category: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Case>> {
    let mut q = cases::table
        .filter(cases::region_code.like(format!("{prefix}%")))
        .order(cases::case_id.desc())
        .limit(limit)
        .select(Case::as_select())
        .into_boxed();
    if !statuses.is_empty() {
        q = q.filter(cases::status.eq_any(statuses.to_vec()));
    }
    if let Some(c) = category {
        q = q.filter(cases::unified_category.eq(c.to_owned()));
    }
    if let Some(b) = before {
        q = q.filter(cases::case_id.lt(b));
    }
    q.load(conn).await
}

/// Moves every report of `sources` into `target`; the sources end MERGED.
pub async fn merge(
    conn: &mut AsyncPgConnection,
    target: &Case,
    sources: &[Case],
) -> QueryResult<()> {
    let ids: Vec<Uuid> = sources.iter().map(|c| c.case_id).collect();
    diesel::update(reports::table.filter(reports::case_id.eq_any(&ids)))
        .set(reports::case_id.eq(target.case_id))
        .execute(conn)
        .await?;
    diesel::update(cases::table.filter(cases::case_id.eq_any(&ids)))
        .set((
            cases::status.eq("MERGED"),
            cases::merged_into.eq(Some(target.case_id)),
            cases::report_count.eq(0),
            cases::version.eq(cases::version + 1),
            cases::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    refresh(conn, target.case_id).await
}

/// Recomputes a case's report count and time span from its reports; bumps its version.
pub async fn refresh(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE cases c SET report_count = s.n, first_reported_at = COALESCE(s.f, c.first_reported_at),
                last_reported_at = COALESCE(s.l, c.last_reported_at), version = c.version + 1, updated_at = now()
           FROM (SELECT count(*)::int4 AS n, min(occurred_at) AS f, max(occurred_at) AS l FROM reports WHERE case_id = $1) s
          WHERE c.case_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Takes `report` out of `from` into a new case of its own (numbered `case_no`); a case left
/// without reports ends VOID. Returns the new case's id.
pub async fn split(
    conn: &mut AsyncPgConnection,
    from: &Case,
    report: &super::reports::Report,
    case_no: &str,
    by: &str,
) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    let mut flags: Vec<Option<String>> = from
        .flags
        .iter()
        .filter(|f| f.as_deref() == Some("OUTSIDE_GRID"))
        .cloned()
        .collect();
    if report.unified_category.is_empty() {
        flags.push(Some("TRIAGE".into()));
    }
    diesel::insert_into(cases::table)
        .values((
            cases::case_id.eq(id),
            cases::case_no.eq(case_no),
            cases::status.eq("REPORTED"),
            cases::unified_category.eq(&report.unified_category),
            cases::grid_code.eq(&report.resolved_grid_code),
            cases::region_code.eq(&report.region_code),
            cases::owner.eq(&report.owner),
            cases::lat.eq(report.lat),
            cases::lng.eq(report.lng),
            cases::first_reported_at.eq(report.occurred_at),
            cases::last_reported_at.eq(report.occurred_at),
            cases::report_count.eq(1),
            cases::flags.eq(flags),
        ))
        .execute(conn)
        .await?;
    diesel::update(reports::table.find(report.report_id))
        .set((
            reports::case_id.eq(id),
            reports::merge_reason.eq(
                serde_json::json!({"decision": "split", "from_case_id": from.case_id, "by": by}),
            ),
        ))
        .execute(conn)
        .await?;
    refresh(conn, from.case_id).await?;
    diesel::update(
        cases::table
            .find(from.case_id)
            .filter(cases::report_count.eq(0)),
    )
    .set(cases::status.eq("VOID"))
    .execute(conn)
    .await?;
    Ok(id)
}

/// A new case number for the town of `region`.
pub async fn next_case_no(conn: &mut AsyncPgConnection, region: &str) -> QueryResult<String> {
    let serial = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "nextval('case_serial')",
    ))
    .get_result::<i64>(conn)
    .await?;
    let town = crate::domain::report::town_of(region);
    Ok(crate::domain::report::case_no(
        town,
        crate::domain::report::china_year(Utc::now()),
        serial,
    ))
}
