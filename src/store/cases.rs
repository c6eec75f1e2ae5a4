//! The `cases` table: one event, one case. Reads take the scope prefix; merges and splits
//! correct the automatic decision.

use crate::domain::ids::{CaseId, ReportId};
use crate::domain::principal::Scope;
use crate::domain::region::RegionCode;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{cases, reports};
use crate::domain::payloads::{CaseBefore, CaseChange};
use crate::domain::workflow::{CaseFlow, Status};

/// A stored case.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = cases, check_for_backend(diesel::pg::Pg))]
pub struct Case {
    pub case_id: CaseId,
    pub case_no: String,
    pub status: String,
    pub unified_category: String,
    pub grid_code: String,
    pub region_code: RegionCode,
    pub owner: String,
    pub lat: f64,
    pub lng: f64,
    pub first_reported_at: DateTime<Utc>,
    pub last_reported_at: DateTime<Utc>,
    pub report_count: i32,
    pub flags: Vec<Option<String>>,
    pub merged_into: Option<CaseId>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub assignee: String,
    pub registered_at: Option<DateTime<Utc>>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub signed_at: Option<DateTime<Utc>>,
    pub handled_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub sign_deadline: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub urge_at: Option<DateTime<Utc>>,
    pub escalate_at: Option<DateTime<Utc>>,
    pub extension_days: Option<i32>,
    pub urge_count: i32,
}

impl Case {
    /// The workflow part of the case.
    pub fn flow(&self) -> Option<CaseFlow> {
        Some(CaseFlow {
            status: Status::parse(&self.status)?,
            assignee: self.assignee.clone(),
            flags: self.flags.iter().flatten().cloned().collect(),
            registered_at: self.registered_at,
            dispatched_at: self.dispatched_at,
            signed_at: self.signed_at,
            handled_at: self.handled_at,
            closed_at: self.closed_at,
            sign_deadline: self.sign_deadline,
            deadline: self.deadline,
            urge_at: self.urge_at,
            escalate_at: self.escalate_at,
            extension_days: self.extension_days,
            urge_count: self.urge_count,
        })
    }

    /// The audit `after` of a change to this case, the contract the feed and PullChanges read
    /// ([`CaseChange`]): `kind` names the change (an action, `MERGED`, `AUTO_URGE` …).
    pub fn change(&self, kind: &str, comment: &str) -> serde_json::Value {
        CaseChange {
            kind: kind.to_owned(),
            case_no: self.case_no.clone(),
            status: self.status.clone(),
            version: self.version,
            assignee: self.assignee.clone(),
            unified_category: self.unified_category.clone(),
            flags: self.flags.clone(),
            deadline: self.deadline,
            comment: comment.to_owned(),
            report_count: self.report_count,
            merged_into: self.merged_into,
        }
        .to_json()
    }

    /// The audit `before` of a change to this case ([`CaseBefore`]).
    pub fn before(&self) -> serde_json::Value {
        CaseBefore {
            status: self.status.clone(),
            version: self.version,
            assignee: self.assignee.clone(),
            flags: self.flags.clone(),
            deadline: self.deadline,
        }
        .to_json()
    }
}

/// A case with its reports' ids and merge reasons, oldest report first.
#[derive(Debug, Clone)]
pub struct CaseWithReports {
    pub case: Case,
    pub reports: Vec<(ReportId, serde_json::Value)>,
}

/// One case, if it lies within `prefix`.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix(), case_id = %id))]
pub async fn get(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id: CaseId,
) -> QueryResult<Option<CaseWithReports>> {
    let prefix = scope.prefix();
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
    let reports = report_reasons(conn, id).await?;
    Ok(Some(CaseWithReports { case, reports }))
}

/// Locks a case row for update, if it lies within `prefix`.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix(), case_id = %id))]
pub async fn lock(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id: CaseId,
) -> QueryResult<Option<Case>> {
    let prefix = scope.prefix();
    cases::table
        .find(id)
        .filter(cases::region_code.like(format!("{prefix}%")))
        .select(Case::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// What ListCases filters by.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub statuses: Vec<String>,
    pub category: Option<String>,
    pub overdue_only: bool,
    pub assignee: Option<String>,
    /// First reported in `[start, end)`.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// Cases within `prefix` before `before` (ids are time-ordered), newest first.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn list(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    f: &CaseFilter,
    before: Option<CaseId>,
    limit: i64,
) -> QueryResult<Vec<Case>> {
    let prefix = scope.prefix();
    let mut q = cases::table
        .filter(cases::region_code.like(format!("{prefix}%")))
        .order(cases::case_id.desc())
        .limit(limit)
        .select(Case::as_select())
        .into_boxed();
    if !f.statuses.is_empty() {
        q = q.filter(cases::status.eq_any(f.statuses.clone()));
    }
    if let Some(c) = &f.category {
        q = q.filter(cases::unified_category.eq(c.clone()));
    }
    if f.overdue_only {
        q = q.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "'OVERDUE' = ANY (flags)",
        ));
    }
    if let Some(a) = &f.assignee {
        q = q.filter(cases::assignee.eq(a.clone()));
    }
    if let Some(s) = f.start {
        q = q.filter(cases::first_reported_at.ge(s));
    }
    if let Some(e) = f.end {
        q = q.filter(cases::first_reported_at.lt(e));
    }
    if let Some(b) = before {
        q = q.filter(cases::case_id.lt(b));
    }
    q.load(conn).await
}

/// Writes the workflow state `flow` of case `id`, bumping its version; returns the new row.
#[tracing::instrument(level = "debug", skip_all, fields(case_id = %id))]
pub async fn save_flow(
    conn: &mut AsyncPgConnection,
    id: CaseId,
    flow: &CaseFlow,
) -> QueryResult<Case> {
    diesel::update(cases::table.find(id))
        .set((
            cases::status.eq(flow.status.as_str()),
            cases::assignee.eq(&flow.assignee),
            cases::flags.eq(flow.flags.iter().cloned().map(Some).collect::<Vec<_>>()),
            cases::registered_at.eq(flow.registered_at),
            cases::dispatched_at.eq(flow.dispatched_at),
            cases::signed_at.eq(flow.signed_at),
            cases::handled_at.eq(flow.handled_at),
            cases::closed_at.eq(flow.closed_at),
            cases::sign_deadline.eq(flow.sign_deadline),
            cases::deadline.eq(flow.deadline),
            cases::urge_at.eq(flow.urge_at),
            cases::escalate_at.eq(flow.escalate_at),
            cases::extension_days.eq(flow.extension_days),
            cases::urge_count.eq(flow.urge_count),
            cases::version.eq(cases::version + 1),
            cases::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Case::as_returning())
        .get_result(conn)
        .await
}

/// The reports' ids and merge reasons of a case, oldest first.
#[tracing::instrument(level = "debug", skip_all, fields(case_id = %id))]
pub async fn report_reasons(
    conn: &mut AsyncPgConnection,
    id: CaseId,
) -> QueryResult<Vec<(ReportId, serde_json::Value)>> {
    reports::table
        .filter(reports::case_id.eq(id))
        .order(reports::report_id)
        .select((reports::report_id, reports::merge_reason))
        .load(conn)
        .await
}

/// Cases by id (any region: callers have already scoped the ids).
#[tracing::instrument(level = "debug", skip_all, fields(ids = ids.len()))]
pub async fn by_ids(conn: &mut AsyncPgConnection, ids: &[CaseId]) -> QueryResult<Vec<Case>> {
    cases::table
        .filter(cases::case_id.eq_any(ids))
        .select(Case::as_select())
        .load(conn)
        .await
}

/// Moves every report of the `sources` into `target` and saves each source's workflow state
/// as planned (MERGED, by `workflow::merge_into`), pointing at the target; returns the saved
/// sources in the order given.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn merge(
    conn: &mut AsyncPgConnection,
    target: &Case,
    sources: &[(CaseId, CaseFlow)],
) -> QueryResult<Vec<Case>> {
    let ids: Vec<CaseId> = sources.iter().map(|(id, _)| *id).collect();
    diesel::update(reports::table.filter(reports::case_id.eq_any(&ids)))
        .set(reports::case_id.eq(target.case_id))
        .execute(conn)
        .await?;
    let mut saved = Vec::with_capacity(sources.len());
    for (id, flow) in sources {
        saved.push(
            diesel::update(cases::table.find(id))
                .set((
                    cases::status.eq(flow.status.as_str()),
                    cases::merged_into.eq(Some(target.case_id)),
                    cases::report_count.eq(0),
                    cases::version.eq(cases::version + 1),
                    cases::updated_at.eq(diesel::dsl::now),
                ))
                .returning(Case::as_returning())
                .get_result(conn)
                .await?,
        );
    }
    refresh(conn, target.case_id).await?;
    Ok(saved)
}

/// Recomputes a case's report count and time span from its reports; bumps its version.
#[tracing::instrument(level = "debug", skip_all, fields(case_id = %id))]
pub async fn refresh(conn: &mut AsyncPgConnection, id: CaseId) -> QueryResult<()> {
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

/// Takes `report` out of `from` into a new case of its own (numbered `case_no`); `from` keeps
/// its other reports (`workflow::split_from`). Returns the new case's id.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn split(
    conn: &mut AsyncPgConnection,
    from: &Case,
    report: &super::reports::Report,
    case_no: &str,
    by: &str,
) -> QueryResult<CaseId> {
    let id = CaseId::generate();
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
    Ok(id)
}

/// The cases of `region`'s subtree first reported in `[start, end)` (merged cases left out)
/// after `after`, by id, with their category's name, at most `limit`: the export's pages.
#[tracing::instrument(level = "debug", skip_all, fields(region = region.prefix()))]
pub async fn reported_between(
    conn: &mut AsyncPgConnection,
    region: &Scope,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    after: Option<CaseId>,
    limit: i64,
) -> QueryResult<Vec<(Case, Option<String>)>> {
    use super::schema::categories;
    let mut q = cases::table
        .left_join(categories::table.on(categories::code.eq(cases::unified_category)))
        .filter(cases::region_code.like(format!("{}%", region.prefix())))
        .filter(cases::first_reported_at.ge(start))
        .filter(cases::first_reported_at.lt(end))
        .filter(cases::status.ne(Status::Merged.as_str()))
        .order(cases::case_id)
        .limit(limit)
        .select((Case::as_select(), categories::name.nullable()))
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(cases::case_id.gt(a));
    }
    q.load(conn).await
}

/// A new case number for the town of `region`.
#[tracing::instrument(level = "debug", skip_all, fields(region = %region))]
pub async fn next_case_no(
    conn: &mut AsyncPgConnection,
    region: &RegionCode,
) -> QueryResult<String> {
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
