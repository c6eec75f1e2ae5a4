//! The case workflow's use cases: a transition (TransitionCase), correcting the automatic
//! merge (MergeCases, SplitReport). Each locks what it changes, asks `domain::workflow` whether
//! and how the case moves, saves the result with its audit event, and moves the 12345 requests
//! joined to the case with it. The answer is built by `show` inside the transaction, so that a
//! resend gets exactly the first answer.

use crate::domain::ids::{CaseId, ReportId};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use futures::FutureExt;
use prost::Message;

use super::Context;
use super::error::ApiError;
use super::mutation::{self, Resend};
use crate::domain::payloads::ReportSplit;
use crate::domain::principal::{Principal, Role, Scope};
use crate::domain::workflow::{self, Action, Args, CaseFlow};
use crate::store::audit::NewEvent;
use crate::store::cases::{self, Case};
use crate::store::{categories, reports};

/// A validated TransitionCase.
#[derive(Debug, Clone)]
pub struct Transition {
    pub case_id: CaseId,
    pub action: Action,
    /// The version of the case the caller acted on.
    pub expected_version: i64,
    pub comment: String,
    pub args: Args,
}

/// A validated MergeCases: `sources` are merged into `target`.
#[derive(Debug, Clone)]
pub struct Merge {
    pub target: CaseId,
    pub sources: Vec<CaseId>,
    pub comment: String,
}

/// A validated SplitReport.
#[derive(Debug, Clone)]
pub struct Split {
    pub report_id: ReportId,
    pub comment: String,
}

/// The workflow state of a stored case; a status the workflow does not know is a bug.
pub fn flow_of(case: &Case) -> Result<CaseFlow, ApiError> {
    case.flow().ok_or_else(|| {
        ApiError::Internal(format!("case {} has status {}", case.case_no, case.status))
    })
}

/// Saves `next` as the workflow state of `case` with its audit event (`kind` names the change
/// in the trail and the feed); returns the saved row.
pub async fn save(
    conn: &mut AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    case: &Case,
    next: &CaseFlow,
    kind: &str,
    comment: &str,
) -> Result<Case, ApiError> {
    let saved = cases::save_flow(conn, case.case_id, next).await?;
    audit.push(NewEvent::ok(
        "case.transition",
        "case",
        &case.case_id.to_string(),
        &case.region_code,
        Some(case.before()),
        Some(saved.change(kind, comment)),
    ));
    Ok(saved)
}

/// What the caller is to `case`: the command centre, or acting for its assignee.
fn actor(who: &Principal, case: &Case) -> workflow::Actor {
    workflow::Actor {
        command_centre: who.has_any(&[Role::TownOperator, Role::Admin]),
        assignee: who.has_any(&[Role::DeptHandler, Role::GridWorker, Role::VillageAdmin])
            && who.acts_for(&case.assignee),
    }
}

/// A case as GetCase shows it: with its reports' merge reasons, the workflow's steps open to
/// the reader, and the working days left on its deadline (the server's calendar).
#[derive(Debug, Clone)]
pub struct CaseView {
    pub case: Case,
    pub reports: Vec<(ReportId, serde_json::Value)>,
    pub available: Vec<workflow::Action>,
    pub working_days_left: i32,
}

/// GetCase: one case of the caller's region.
pub async fn get(ctx: &Context, who: &Principal, id: CaseId) -> Result<CaseView, ApiError> {
    let mut conn = ctx.pool.get().await?;
    let c = cases::get(&mut conn, &who.scope, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("case {id} not found")))?;
    let working_days_left = match c.case.deadline {
        Some(d) => super::calendar(ctx, &mut conn)
            .await?
            .working_days_left(ctx.workflow.clock.now(), d),
        None => 0,
    };
    Ok(CaseView {
        available: available(who, &c.case),
        working_days_left,
        case: c.case,
        reports: c.reports,
    })
}

/// The workflow's next steps open to `who` on `case` ([`workflow::available`]).
pub fn available(who: &Principal, case: &Case) -> Vec<workflow::Action> {
    case.flow()
        .map(|f| workflow::available(&f, actor(who, case)))
        .unwrap_or_default()
}

/// TransitionCase: one step of the workflow on a case in the caller's region, at the version
/// the caller saw.
pub async fn transition<R>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    t: Transition,
    show: fn(Case, Vec<(ReportId, serde_json::Value)>) -> R,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
{
    let (ctx2, who2) = (ctx.clone(), who.clone());
    let now = ctx.workflow.clock.now();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let case = cases::lock(conn, &who2.scope, t.case_id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("case {} not found", t.case_id)))?;
            if case.version != t.expected_version {
                return Err(ApiError::Aborted(format!(
                    "case {} is at version {}, not {}: reload it and decide again",
                    case.case_no, case.version, t.expected_version
                )));
            }
            let flow = flow_of(&case)?;
            let (sign, handle) = categories::limits(conn, &case.unified_category).await?;
            let defaults = ctx2.workflow.limits;
            let limits = workflow::Limits {
                sign_hours: sign.map_or(defaults.sign_hours, |h| h as u32),
                handle_days: handle.map_or(defaults.handle_days, |d| d as u32),
                escalate_days: defaults.escalate_days,
            };
            let cal = super::calendar(&ctx2, conn).await?;
            let next = workflow::plan(
                &flow,
                t.action,
                actor(&who2, &case),
                &t.args,
                now,
                limits,
                &cal,
            )?;
            if t.action == Action::Dispatch {
                super::check_unit_in_town(conn, &next.assignee, &case.region_code).await?;
            }
            let saved = save(conn, audit, &case, &next, t.action.as_str(), &t.comment).await?;
            // 12345 requests joined to this case move with it.
            super::requests::follow_case(
                conn,
                audit,
                &saved,
                Some(t.action),
                &t.comment,
                now,
                &cal,
            )
            .await?;
            let reasons = cases::report_reasons(conn, case.case_id).await?;
            Ok(show(saved, reasons))
        }
        .boxed()
    })
    .await
}

/// MergeCases: the sources' reports move into the target; the sources end MERGED
/// ([`workflow::merge_into`]) and their 12345 requests follow the target.
pub async fn merge<R>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    m: Merge,
    show: fn(Case, Vec<(ReportId, serde_json::Value)>) -> R,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
{
    let (ctx2, scope) = (ctx.clone(), who.scope.clone());
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            // Lock in id order, so concurrent merges cannot deadlock.
            let mut all = m.sources.clone();
            all.push(m.target);
            all.sort();
            let mut target = None;
            let mut sources = Vec::new();
            for id in all {
                let c = cases::lock(conn, &scope, id)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("case {id} not found")))?;
                let next = workflow::merge_into(&flow_of(&c)?)
                    .map_err(|r| super::error::refusal(r, &format!("case {}", c.case_no)))?;
                if id == m.target {
                    target = Some(c);
                } else {
                    sources.push((c, next));
                }
            }
            let t =
                target.ok_or_else(|| ApiError::NotFound(format!("case {} not found", m.target)))?;
            let planned: Vec<(CaseId, CaseFlow)> = sources
                .iter()
                .map(|(c, n)| (c.case_id, n.clone()))
                .collect();
            for (saved, (before, _)) in cases::merge(conn, &t, &planned).await?.iter().zip(&sources)
            {
                audit.push(NewEvent::ok(
                    "case.merge",
                    "case",
                    &saved.case_id.to_string(),
                    &saved.region_code,
                    Some(before.before()),
                    Some(saved.change("MERGED", &m.comment)),
                ));
            }
            let merged = cases::get(conn, &Scope::All, m.target)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("case {} not found", m.target)))?;
            // 12345 requests of the absorbed cases now follow the target.
            let cal = super::calendar(&ctx2, conn).await?;
            let now = ctx2.workflow.clock.now();
            super::requests::follow_case(conn, audit, &merged.case, None, "", now, &cal).await?;
            audit.push(NewEvent::ok(
                "case.absorb",
                "case",
                &m.target.to_string(),
                &t.region_code,
                Some(t.before()),
                Some(merged.case.change("ABSORBED", &m.comment)),
            ));
            Ok(show(merged.case, merged.reports))
        }
        .boxed()
    })
    .await
}

/// SplitReport: a report of the caller's region leaves its case for a new case of its own
/// ([`workflow::split_from`]); the new case is shown.
pub async fn split<R>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    s: Split,
    show: fn(Case, Vec<(ReportId, serde_json::Value)>) -> R,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
{
    let (scope, by) = (who.scope.clone(), who.sub.clone());
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let report = reports::get(conn, &scope, s.report_id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("report {} not found", s.report_id)))?;
            let from = cases::lock(conn, &Scope::All, report.case_id)
                .await?
                .ok_or_else(|| ApiError::NotFound("case not found".into()))?;
            workflow::split_from(&flow_of(&from)?, from.report_count)
                .map_err(|r| super::error::refusal(r, &format!("case {}", from.case_no)))?;
            let case_no = cases::next_case_no(conn, &report.region_code).await?;
            let new_id = cases::split(conn, &from, &report, &case_no, &by).await?;
            audit.push(NewEvent::ok(
                "report.split",
                "report",
                &s.report_id.to_string(),
                &report.region_code,
                Some(
                    ReportSplit {
                        case_id: Some(from.case_id),
                        case_no: from.case_no.clone(),
                        ..ReportSplit::default()
                    }
                    .to_json(),
                ),
                Some(
                    ReportSplit {
                        case_id: Some(new_id),
                        case_no,
                        comment: Some(s.comment),
                        unified_category: Some(report.unified_category.clone()),
                    }
                    .to_json(),
                ),
            ));
            let c = cases::get(conn, &Scope::All, new_id)
                .await?
                .ok_or_else(|| ApiError::NotFound("case not found".into()))?;
            Ok(show(c.case, c.reports))
        }
        .boxed()
    })
    .await
}

/// Moves the case linked to a mediation with its outcome, by the case workflow's rule
/// ([`workflow::mediation_outcome`]); 12345 requests joined to the case follow it.
pub async fn follow_mediation(
    ctx: &Context,
    conn: &mut AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    case_id: CaseId,
    outcome: (bool, &str),
    mediation_no: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let (succeeded, referral) = outcome;
    let Some(case) = cases::lock(conn, &Scope::All, case_id).await? else {
        return Ok(());
    };
    let Some(next) = workflow::mediation_outcome(&flow_of(&case)?, succeeded, referral, now) else {
        return Ok(());
    };
    let (kind, comment) = if succeeded {
        (
            "MEDIATION_SUCCEEDED",
            format!("调解成功，案件 {mediation_no} 结案"),
        )
    } else {
        (
            "MEDIATION_FAILED",
            format!("调解不成，转{referral}（{mediation_no}）"),
        )
    };
    let saved = save(conn, audit, &case, &next, kind, &comment).await?;
    let cal = super::calendar(ctx, conn).await?;
    super::requests::follow_case(conn, audit, &saved, None, &comment, now, &cal).await?;
    Ok(())
}

/// Flags the case a new mediation is linked to ([`workflow::referred_to_mediation`]).
pub async fn refer_to_mediation(
    conn: &mut AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    case_id: CaseId,
    mediation_no: &str,
) -> Result<(), ApiError> {
    let Some(case) = cases::lock(conn, &Scope::All, case_id).await? else {
        return Ok(());
    };
    if let Some(next) = workflow::referred_to_mediation(&flow_of(&case)?) {
        let comment = format!("转调解 {mediation_no}");
        save(conn, audit, &case, &next, "REFERRED_TO_MEDIATION", &comment).await?;
    }
    Ok(())
}

/// Audit events read per PullChanges query.
const PULL_PAGE: i64 = 500;

/// PullChanges: the cases of the caller's region changed after `cursor` (an audit sequence
/// number), each once, in the order of its latest change, at most `limit`; and the cursor to
/// pass next time.
pub async fn pull_changes(
    ctx: &Context,
    who: &Principal,
    cursor: i64,
    limit: usize,
) -> Result<(Vec<Case>, i64), ApiError> {
    let mut conn = ctx.pool.get().await?;
    // Changes exist once their events are sealed: seal what has committed.
    crate::store::audit::seal(&mut conn).await?;
    // Cases in the order of their latest change up to where the page stops.
    let mut order: Vec<CaseId> = Vec::new();
    let mut latest: std::collections::HashMap<CaseId, i64> = std::collections::HashMap::new();
    let mut next = cursor;
    'scan: loop {
        let events =
            crate::store::feed::case_changes_after(&mut conn, next, &who.scope, PULL_PAGE).await?;
        for e in &events {
            if let Some(id) = crate::store::feed::case_of(e) {
                if !latest.contains_key(&id) {
                    if order.len() == limit {
                        break 'scan;
                    }
                    order.push(id);
                }
                latest.insert(id, e.seq);
            }
            next = e.seq;
        }
        if (events.len() as i64) < PULL_PAGE {
            break;
        }
    }
    let mut rows = cases::by_ids(&mut conn, &order).await?;
    rows.sort_by_key(|c| latest.get(&c.case_id).copied().unwrap_or(0));
    Ok((rows, next))
}
