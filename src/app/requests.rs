//! Service requests (便民服务) in motion: filed at the window (CreateServiceRequest), one
//! transition (rules in `domain::request`) with its audit event and, for a request from 12345,
//! the update the platform must hear; and requests from located work orders following their
//! case of the one net.
//!
//! An update for 12345 is an audit event (`hotline.update`) of the same transaction; a
//! trigger copies it into the outbox (`hotline_outbox`), so it exists if and only if the
//! change committed, and its sequence number is commit order.

use chrono::{DateTime, Utc};
use futures::FutureExt;
use prost::Message;
use serde_json::json;
use uuid::Uuid;

use crate::domain::ids::{CaseId, ServiceRequestId};

use super::Context;
use super::error::ApiError;
use super::mutation::{self, Resend};
use crate::domain::calendar::{Calendar, local_day};
use crate::domain::pii::Person;
use crate::domain::principal::{Principal, Role, Scope};
use crate::domain::region::RegionCode;
use crate::domain::request::{self, Action, Actor, Args, Kind, Status, UpdateKind, Urgency};
use crate::domain::workflow::{self, Refusal};
use crate::store::audit::NewEvent;
use crate::store::cases::Case;
use crate::store::requests::{self as db, HotlineOrder, ServiceRequest};
use crate::store::{self as st};

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
    let next = request::plan(&flow, action, actor, args, now, cal).map_err(refused)?;
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

/// Roles of the service window.
pub const WINDOW: [Role; 3] = [Role::WindowClerk, Role::TownOperator, Role::Admin];

/// What the caller is, relative to `sr`.
pub fn actor(p: &Principal, sr: &ServiceRequest) -> request::Actor {
    request::Actor {
        window: p.has_any(&WINDOW),
        hotline: p.has(Role::Hotline) && sr.hotline_order_no.is_some(),
        assignee: !p.has(Role::Hotline) && p.acts_for(&sr.assignee),
    }
}

/// The workflow's steps open to `who` on `sr` now ([`request::available`]).
pub fn available(ctx: &Context, who: &Principal, sr: &ServiceRequest) -> Vec<request::Action> {
    sr.flow()
        .map(|f| request::available(&f, actor(who, sr), ctx.workflow.clock.now()))
        .unwrap_or_default()
}

/// A request with what a reader sees beside it: its 12345 work order and the case of the one
/// net that order joined.
#[derive(Debug, Clone)]
pub struct RequestView {
    pub request: ServiceRequest,
    pub order: Option<HotlineOrder>,
    pub case_id: Option<CaseId>,
}

/// Reads what [`RequestView`] shows beside `sr`.
pub async fn view(
    conn: &mut diesel_async::AsyncPgConnection,
    sr: ServiceRequest,
) -> Result<RequestView, ApiError> {
    let order = match sr.hotline_order_no {
        Some(_) => db::order_of(conn, sr.sr_id).await?,
        None => None,
    };
    let case_id = match &order {
        Some(o) => db::case_of_order(conn, o).await?,
        None => None,
    };
    Ok(RequestView {
        request: sr,
        order,
        case_id,
    })
}

/// A validated CreateServiceRequest.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub kind: Kind,
    pub urgency: Urgency,
    pub person: Person,
    pub content: String,
    pub region: RegionCode,
    /// The 权责清单 item's code (SERVICE), or empty.
    pub item: String,
    pub address: String,
    pub on_behalf: bool,
}

/// A validated TransitionServiceRequest.
#[derive(Debug, Clone)]
pub struct Transition {
    pub id: ServiceRequestId,
    pub action: Action,
    pub expected_version: i64,
    pub args: Args,
}

/// Everything a new request needs besides its workflow fields.
pub struct Fresh {
    pub kind: Kind,
    pub urgency: Urgency,
    pub person: Person,
    pub content: String,
    pub address: String,
    pub region_code: RegionCode,
    pub catalog_item: Option<(String, i32)>,
    pub on_behalf: bool,
    pub filed_by: String,
    pub deadline: Option<DateTime<Utc>>,
    pub hotline_order_no: Option<String>,
    pub now: DateTime<Utc>,
}

/// Stores a new request (ACCEPTED) with its audit event.
pub async fn insert(
    ctx: &Context,
    conn: &mut diesel_async::AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    f: Fresh,
) -> Result<ServiceRequest, ApiError> {
    let serial = db::next_serial(conn).await?;
    let sr = fresh(ctx, f, serial)?;
    db::insert(conn, &sr).await?;
    audit.push(created(&sr));
    Ok(sr)
}

/// A new request (ACCEPTED), numbered with `serial`; the applicant sealed.
pub fn fresh(ctx: &Context, f: Fresh, serial: i64) -> Result<ServiceRequest, ApiError> {
    let (item_code, item_version) = match f.catalog_item {
        Some((c, v)) => (c, Some(v)),
        None => (String::new(), None),
    };
    Ok(ServiceRequest {
        sr_id: ServiceRequestId::generate(),
        request_no: db::request_no(&f.region_code, serial),
        kind: f.kind.as_str().to_owned(),
        urgency: f.urgency.as_str().to_owned(),
        catalog_item_code: item_code,
        catalog_item_version: item_version,
        region_code: f.region_code,
        content: f.content,
        address: f.address,
        applicant_enc: ctx.pii.seal(&f.person),
        applicant_phone_index: Some(ctx.pii.blind_index(&f.person.phone)),
        on_behalf: f.on_behalf,
        filed_by: f.filed_by,
        status: Status::Accepted.as_str().to_owned(),
        assignee: String::new(),
        flags: Vec::new(),
        accepted_at: f.now,
        assigned_at: None,
        signed_at: None,
        replied_at: None,
        visited_at: None,
        archived_at: None,
        deadline: f.deadline,
        extension_days: None,
        urge_count: 0,
        reopen_count: 0,
        reply: String::new(),
        satisfaction: String::new(),
        dissatisfied_count: 0,
        hotline_order_no: f.hotline_order_no,
        version: 1,
    })
}

/// The audit event of a new request, once numbered.
pub fn created(sr: &ServiceRequest) -> NewEvent {
    let mut after = sr.audit_view();
    after["on_behalf"] = json!(sr.on_behalf);
    NewEvent::ok(
        "service_request.create",
        "service_request",
        &sr.sr_id.to_string(),
        &sr.region_code,
        None,
        Some(after),
    )
}

/// CreateServiceRequest: a request filed at the window of a town in the caller's region, its
/// deadline from its kind, urgency and 权责清单 item.
pub async fn create<R, P>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    n: NewRequest,
    present: P,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
    P: FnOnce(RequestView) -> R + Send + 'static,
{
    super::ensure_in_scope(who, "region", n.region.as_str())?;
    let (ctx2, filed_by) = (ctx.clone(), who.sub.clone());
    let now = ctx.workflow.clock.now();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let region = n.region.as_str();
            if st::regions::get(conn, &Scope::All, &n.region)
                .await?
                .is_none()
            {
                return Err(ApiError::invalid(
                    "region_code",
                    format!("{region} is not a known region"),
                ));
            }
            let town = crate::domain::report::town_of(region).to_owned();
            let item = if n.item.is_empty() {
                None
            } else {
                let found =
                    st::catalog::in_force(conn, &n.region.town(), Some(&n.item), local_day(now))
                        .await?
                        .into_iter()
                        .next()
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "catalog_item_code",
                                format!(
                                    "{} is not an item of {town}'s 权责清单 in force today",
                                    n.item
                                ),
                            )
                        })?;
                Some(found)
            };
            let cal = super::calendar(&ctx2, conn).await?;
            let item_days = item
                .as_ref()
                .and_then(|i| i.time_limit_days)
                .map(|d| d as u32);
            let limits = ctx2.workflow.service_limits;
            let deadline = request::deadline(n.kind, n.urgency, item_days, limits, now, &cal);
            let fresh = Fresh {
                kind: n.kind,
                urgency: n.urgency,
                person: n.person,
                content: n.content,
                address: n.address,
                region_code: n.region.clone(),
                catalog_item: item.map(|i| (i.code, i.version)),
                on_behalf: n.on_behalf,
                filed_by,
                deadline,
                hotline_order_no: None,
                now,
            };
            let sr = insert(&ctx2, conn, audit, fresh).await?;
            Ok(present(view(conn, sr).await?))
        }
        .boxed()
    })
    .await
}

/// TransitionServiceRequest: one step of the request workflow on a request of the caller's
/// region, at the version the caller saw.
pub async fn transition_request<R, P>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    t: Transition,
    present: P,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
    P: FnOnce(RequestView) -> R + Send + 'static,
{
    let (ctx2, who2) = (ctx.clone(), who.clone());
    let now = ctx.workflow.clock.now();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let Transition {
                id,
                action,
                expected_version,
                mut args,
            } = t;
            let sr = db::lock(conn, &who2.scope, id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("service request {id} not found")))?;
            if sr.version != expected_version {
                return Err(ApiError::Aborted(format!(
                    "request {} is at version {}, not {expected_version}: reload it and decide again",
                    sr.request_no, sr.version
                )));
            }
            if action == Action::Assign
                && let Some(unit) = args.assignee.as_deref()
            {
                super::check_unit_in_town(conn, unit, &sr.region_code).await?;
            }
            let kind = Kind::parse(&sr.kind).unwrap_or(Kind::Enquiry);
            let urgency = Urgency::parse(&sr.urgency).unwrap_or(Urgency::Normal);
            let item_days = match (&sr.catalog_item_version, sr.catalog_item_code.as_str()) {
                (Some(v), code) if !code.is_empty() => {
                    st::catalog::history(conn, &sr.region_code.town(), Some(code))
                        .await?
                        .into_iter()
                        .find(|i| i.version == *v)
                        .and_then(|i| i.time_limit_days)
                        .map(|d| d as u32)
                }
                _ => None,
            };
            let limits = ctx2.workflow.service_limits;
            args.reopen_days = request::limit_days(kind, urgency, item_days, limits);
            let cal = super::calendar(&ctx2, conn).await?;
            let actor = actor(&who2, &sr);
            let saved = transition(conn, audit, &sr, action, actor, &args, now, &cal).await?;
            Ok(present(view(conn, saved).await?))
        }
        .boxed()
    })
    .await
}
