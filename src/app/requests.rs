//! Service requests in motion: one transition (rules in `domain::service`) with its audit
//! event and, for a request from 12345, the update the platform must hear; and requests from
//! located work orders following their case of the one net.
//!
//! An update for 12345 is an audit event (`hotline.update`) of the same transaction; a
//! trigger copies it into the outbox (`hotline_outbox`), so it exists if and only if the
//! change committed, and its sequence number is commit order.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::app::error::ApiError;
use crate::domain::calendar::Calendar;
use crate::domain::service::{self, Action, Actor, Args, Status, UpdateKind};
use crate::domain::workflow::{self, Refusal};
use crate::store::audit::NewEvent;
use crate::store::cases::Case;
use crate::store::service::{self as db, HotlineOrder, ServiceRequest};

/// A refusal of the request workflow, worded for requests.
pub fn refused(r: Refusal) -> ApiError {
    crate::app::error::refusal(r, "request")
}

/// The update 12345 hears of `kind` on `order` (as an audit event; see the module docs):
/// `text` is the reply or the unit's reason, `unit` the handling unit.
pub fn update_event(
    sr: &ServiceRequest,
    order: &HotlineOrder,
    kind: UpdateKind,
    text: &str,
    unit: &str,
    now: DateTime<Utc>,
) -> NewEvent {
    NewEvent::ok(
        "hotline.update",
        "work_order",
        &order.order_no,
        &sr.region_code,
        None,
        Some(
            crate::domain::payloads::HotlineUpdate {
                update_id: Some(Uuid::now_v7()),
                order_no: order.order_no.clone(),
                order_version: order.version,
                kind: kind.as_str().to_owned(),
                request_no: sr.request_no.clone(),
                occurred_at: Some(now),
                text: text.to_owned(),
                unit: unit.to_owned(),
                extension_working_days: sr.extension_days.unwrap_or(0),
            }
            .to_json(),
        ),
    )
}

/// Applies `action` to the locked request `sr`: plans it, saves it, audits it (with `comment`)
/// and, for a 12345 order, queues the update the platform must hear.
#[allow(clippy::too_many_arguments)]
pub async fn transition(
    conn: &mut diesel_async::AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    sr: &ServiceRequest,
    action: Action,
    actor: Actor,
    args: &Args,
    now: DateTime<Utc>,
    cal: &Calendar,
) -> Result<ServiceRequest, ApiError> {
    let flow = sr.flow().ok_or_else(|| {
        ApiError::Internal(format!(
            "request {} has status {}",
            sr.request_no, sr.status
        ))
    })?;
    let next = service::plan(&flow, action, actor, args, now, cal).map_err(refused)?;
    let saved = db::save_flow(conn, sr.sr_id, &next).await?;
    let mut after = saved.audit_view();
    after["action"] = json!(action.as_str());
    after["comment"] = json!(args.comment);
    audit.push(NewEvent::ok(
        "service_request.transition",
        "service_request",
        &sr.sr_id.to_string(),
        &sr.region_code,
        Some(sr.audit_view()),
        Some(after),
    ));
    if let Some(kind) = action.hotline_update()
        && sr.hotline_order_no.is_some()
        && let Some(order) = db::order_of(conn, sr.sr_id).await?
    {
        let text = match kind {
            UpdateKind::Replied => saved.reply.as_str(),
            UpdateKind::Signed => "",
            UpdateKind::Returned | UpdateKind::ExtensionRequested => args.comment.trim(),
        };
        let unit = if saved.assignee.is_empty() {
            &sr.assignee
        } else {
            &saved.assignee
        };
        let ev = update_event(&saved, &order, kind, text, unit, now);
        audit.push(ev);
    }
    Ok(saved)
}

fn rank(s: Status) -> u8 {
    match s {
        Status::Accepted => 0,
        Status::Assigned => 1,
        Status::Signed => 2,
        Status::Replied => 3,
        Status::Visited => 4,
        Status::Archived => 5,
    }
}

/// Where a request following a case in `status` should be, at least.
fn target(status: workflow::Status) -> Status {
    use workflow::Status as C;
    match status {
        C::Reported | C::Registered | C::Void | C::Merged => Status::Accepted,
        C::Dispatched => Status::Assigned,
        C::Signed | C::Handled => Status::Signed,
        C::Closed => Status::Replied,
    }
}

/// Moves the requests of located work orders in `case` along with it: the case's dispatch,
/// sign-for and closure become the requests' 分办, 签收 and 回复 (12345 hears the last two), and
/// its extension requests and decisions are theirs too. A request already past the case (a
/// case reopened after the reply) is left as it is. `comment` is the case action's comment
/// (the reply text at closure).
pub async fn follow_case(
    conn: &mut diesel_async::AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    case: &Case,
    action: Option<workflow::Action>,
    comment: &str,
    now: DateTime<Utc>,
    cal: &Calendar,
) -> Result<Vec<ServiceRequest>, ApiError> {
    let mut out = Vec::new();
    for sr in db::following_case(conn, case.case_id).await? {
        let moved = catch_up(conn, audit, sr, case, action, comment, now, cal).await?;
        out.push(moved);
    }
    Ok(out)
}

/// Brings one request up to its case (see [`follow_case`]).
#[allow(clippy::too_many_arguments)]
pub async fn catch_up(
    conn: &mut diesel_async::AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    mut sr: ServiceRequest,
    case: &Case,
    action: Option<workflow::Action>,
    comment: &str,
    now: DateTime<Utc>,
    cal: &Calendar,
) -> Result<ServiceRequest, ApiError> {
    let Some(case_status) = workflow::Status::parse(&case.status) else {
        return Ok(sr);
    };
    let want = target(case_status);
    let reply = if comment.trim().is_empty() {
        format!("已处置结案（案件 {}）", case.case_no)
    } else {
        comment.trim().to_owned()
    };
    loop {
        let Some(now_status) = Status::parse(&sr.status) else {
            return Ok(sr);
        };
        if rank(now_status) >= rank(want) || rank(now_status) >= rank(Status::Replied) {
            break;
        }
        let (step, args) = match now_status {
            Status::Accepted => (
                Action::Assign,
                Args {
                    assignee: Some(if case.assignee.is_empty() {
                        case.owner.clone()
                    } else {
                        case.assignee.clone()
                    }),
                    ..Args::default()
                },
            ),
            Status::Assigned => (Action::Sign, Args::default()),
            _ => (
                Action::Reply,
                Args {
                    comment: reply.clone(),
                    ..Args::default()
                },
            ),
        };
        sr = transition(conn, audit, &sr, step, Actor::SYSTEM, &args, now, cal).await?;
    }
    let step = match action {
        Some(workflow::Action::RequestExtension) => Some((
            Action::RequestExtension,
            Args {
                extension_days: case.extension_days.map(|d| d.max(0) as u32),
                comment: comment.trim().to_owned(),
                ..Args::default()
            },
        )),
        Some(workflow::Action::ApproveExtension) => {
            Some((Action::ApproveExtension, Args::default()))
        }
        Some(workflow::Action::RejectExtension) => Some((Action::RejectExtension, Args::default())),
        _ => None,
    };
    if let Some((step, args)) = step {
        let open = Status::parse(&sr.status)
            .is_some_and(|s| matches!(s, Status::Assigned | Status::Signed));
        let pending = sr.extension_days.is_some();
        let applies = match step {
            Action::RequestExtension => open && !pending,
            _ => open && pending,
        };
        if applies {
            sr = transition(conn, audit, &sr, step, Actor::SYSTEM, &args, now, cal).await?;
        }
    }
    Ok(sr)
}
