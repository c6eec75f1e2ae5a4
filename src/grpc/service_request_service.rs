//! ServiceRequestService: requests at the service window (便民服务"一窗口") and from 12345,
//! their workflow (rules in `domain::service`, motion in `requests`) and the units' figures.

use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde_json::json;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::pagination::Page;
use super::pb;
use super::pb::service_request_service_server::ServiceRequestService;
use super::{State, convert, principal, requested_prefix, uuid_field};
use crate::app::error::ApiError;
use crate::app::mutation::{self, Resend};
use crate::app::requests;
use crate::domain::Violation;
use crate::domain::calendar::{Calendar, local_day};
use crate::domain::pii::Person;
use crate::domain::principal::{Principal, Role};
use crate::domain::region::{RegionCode, RegionLevel};
use crate::domain::service::{self, Action, Args, Kind, Satisfaction, Urgency};
use crate::store::audit::NewEvent;
use crate::store::service::{self as db, ServiceRequest};
use crate::store::{self as st};

crate::idempotent!(
    pb::CreateServiceRequestRequest,
    pb::TransitionServiceRequestRequest
);

/// The ServiceRequestService implementation.
pub struct ServiceRequestApi {
    pub state: State,
}

/// Roles of the service window.
pub const WINDOW: [Role; 3] = [Role::WindowClerk, Role::TownOperator, Role::Admin];

/// What the caller is, relative to `sr`.
pub fn actor(p: &Principal, sr: &ServiceRequest) -> service::Actor {
    service::Actor {
        window: p.has_any(&WINDOW),
        hotline: p.has(Role::Hotline) && sr.hotline_order_no.is_some(),
        assignee: !p.has(Role::Hotline) && p.acts_for(&sr.assignee),
    }
}

/// A request on the wire, with its work order and case.
pub async fn view(
    state: &State,
    conn: &mut diesel_async::AsyncPgConnection,
    sr: ServiceRequest,
    viewer: &Principal,
) -> Result<pb::ServiceRequest, ApiError> {
    let order = match sr.hotline_order_no {
        Some(_) => db::order_of(conn, sr.sr_id).await?,
        None => None,
    };
    let case = match &order {
        Some(o) => db::case_of_order(conn, o).await?,
        None => None,
    };
    let now = state.app.workflow.clock.now();
    Ok(convert::service_request(
        sr,
        order.as_ref(),
        case,
        &state.app.pii,
        viewer,
        now,
    ))
}

/// Validated CreateServiceRequest fields.
struct NewRequest {
    kind: Kind,
    urgency: Urgency,
    person: Person,
    content: String,
    region: RegionCode,
    item: String,
    address: String,
    on_behalf: bool,
}

fn new_request(r: &pb::CreateServiceRequestRequest) -> Result<NewRequest, ApiError> {
    let mut v = Vec::new();
    let kind = convert::request_kind_from_pb(r.kind);
    if kind.is_none() {
        v.push(Violation::new(
            "kind",
            "required: ENQUIRY, HELP, COMPLAINT, SUGGESTION, TIP_OFF or SERVICE",
        ));
    }
    let urgency = convert::urgency_from_pb(r.urgency);
    if urgency.is_none() {
        v.push(Violation::new("urgency", "NORMAL, URGENT or CRITICAL"));
    }
    let a = r.applicant.clone().unwrap_or_default();
    let person = Person::parse(&a.name, &a.phone, &a.id_number, "applicant")
        .map_err(|e| v.extend(e))
        .ok();
    let content = r.content.trim();
    if content.is_empty() || content.chars().count() > 4000 {
        v.push(Violation::new(
            "content",
            "required, at most 4,000 characters",
        ));
    }
    if r.address.chars().count() > 500 {
        v.push(Violation::new("address", "at most 500 characters"));
    }
    let region = RegionCode::parse(r.region_code.trim())
        .ok()
        .filter(|c| matches!(c.level(), RegionLevel::Town | RegionLevel::Village));
    if region.is_none() {
        v.push(Violation::new(
            "region_code",
            "required: the town (9 digits) or village (12 digits)",
        ));
    }
    let item = r.catalog_item_code.trim();
    if kind == Some(Kind::Service) && item.is_empty() {
        v.push(Violation::new(
            "catalog_item_code",
            "required for SERVICE: the 权责清单 item",
        ));
    }
    match (kind, urgency, person, region, v.is_empty()) {
        (Some(kind), Some(urgency), Some(person), Some(region), true) => Ok(NewRequest {
            kind,
            urgency,
            person,
            content: content.to_owned(),
            region,
            item: item.to_owned(),
            address: r.address.trim().to_owned(),
            on_behalf: r.on_behalf,
        }),
        _ => Err(ApiError::InvalidArgument(v)),
    }
}

/// Everything a new request needs besides its workflow fields.
pub struct Fresh {
    pub kind: Kind,
    pub urgency: Urgency,
    pub person: Person,
    pub content: String,
    pub address: String,
    pub region_code: String,
    pub catalog_item: Option<(String, i32)>,
    pub on_behalf: bool,
    pub filed_by: String,
    pub deadline: Option<DateTime<Utc>>,
    pub hotline_order_no: Option<String>,
    pub now: DateTime<Utc>,
}

/// Stores a new request (ACCEPTED) with its audit event.
pub async fn create(
    state: &State,
    conn: &mut diesel_async::AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    f: Fresh,
) -> Result<ServiceRequest, ApiError> {
    let serial = db::next_serial(conn).await?;
    let sr = fresh(state, f, serial)?;
    db::insert(conn, &sr).await?;
    audit.push(created(&sr));
    Ok(sr)
}

/// A new request (ACCEPTED), numbered with `serial`.
pub fn fresh(state: &State, f: Fresh, serial: i64) -> Result<ServiceRequest, ApiError> {
    let json = serde_json::to_string(&f.person)
        .map_err(|e| ApiError::Internal(format!("applicant: {e}")))?;
    let (item_code, item_version) = match f.catalog_item {
        Some((c, v)) => (c, Some(v)),
        None => (String::new(), None),
    };
    Ok(ServiceRequest {
        sr_id: Uuid::now_v7(),
        request_no: db::request_no(&f.region_code, serial),
        kind: f.kind.as_str().to_owned(),
        urgency: f.urgency.as_str().to_owned(),
        catalog_item_code: item_code,
        catalog_item_version: item_version,
        region_code: f.region_code,
        content: f.content,
        address: f.address,
        applicant_enc: state.app.pii.encrypt(&json),
        applicant_phone_index: Some(state.app.pii.blind_index(&f.person.phone)),
        on_behalf: f.on_behalf,
        filed_by: f.filed_by,
        status: service::Status::Accepted.as_str().to_owned(),
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

fn action(a: pb::transition_service_request_request::Action) -> Option<Action> {
    use pb::transition_service_request_request::Action as P;
    Some(match a {
        P::Unspecified => return None,
        P::Assign => Action::Assign,
        P::Sign => Action::Sign,
        P::Reply => Action::Reply,
        P::Return => Action::Return,
        P::RequestExtension => Action::RequestExtension,
        P::Urge => Action::Urge,
        P::Supervise => Action::Supervise,
        P::RecordSatisfaction => Action::RecordSatisfaction,
        P::Reopen => Action::Reopen,
        P::Archive => Action::Archive,
        P::ApproveExtension => Action::ApproveExtension,
        P::RejectExtension => Action::RejectExtension,
    })
}

struct Transition {
    id: Uuid,
    action: Action,
    expected_version: i64,
    args: Args,
}

fn transition(r: &pb::TransitionServiceRequestRequest) -> Result<Transition, ApiError> {
    let mut v = Vec::new();
    let id = Uuid::parse_str(&r.id)
        .map_err(|_| v.push(Violation::new("id", "must be a UUID")))
        .ok();
    let act = pb::transition_service_request_request::Action::try_from(r.action)
        .ok()
        .and_then(action);
    if act.is_none() {
        v.push(Violation::new(
            "action",
            "must be one of ASSIGN, SIGN, REPLY, RETURN, REQUEST_EXTENSION, APPROVE_EXTENSION, REJECT_EXTENSION, URGE, SUPERVISE, RECORD_SATISFACTION, REOPEN, ARCHIVE",
        ));
    }
    if r.expected_version < 1 {
        v.push(Violation::new(
            "expected_version",
            "required: the version of the request you acted on",
        ));
    }
    if r.comment.chars().count() > 4000 {
        v.push(Violation::new("comment", "at most 4,000 characters"));
    }
    if r.assignee.chars().count() > 64 {
        v.push(Violation::new("assignee", "at most 64 characters"));
    }
    if !(0..=service::MAX_EXTENSION_DAYS as i32).contains(&r.extension_working_days) {
        v.push(Violation::new(
            "extension_working_days",
            format!("between 1 and {}", service::MAX_EXTENSION_DAYS),
        ));
    }
    let satisfaction = match pb::Satisfaction::try_from(r.satisfaction) {
        Ok(pb::Satisfaction::Unspecified) => None,
        Ok(pb::Satisfaction::Satisfied) => Some(Satisfaction::Satisfied),
        Ok(pb::Satisfaction::BasicallySatisfied) => Some(Satisfaction::Basic),
        Ok(pb::Satisfaction::Dissatisfied) => Some(Satisfaction::Dissatisfied),
        Err(_) => {
            v.push(Violation::new("satisfaction", "unknown value"));
            None
        }
    };
    let (Some(id), Some(action), true) = (id, act, v.is_empty()) else {
        return Err(ApiError::InvalidArgument(v));
    };
    Ok(Transition {
        id,
        action,
        expected_version: r.expected_version,
        args: Args {
            assignee: Some(r.assignee.trim().to_owned()).filter(|a| !a.is_empty()),
            comment: r.comment.trim().to_owned(),
            extension_days: (r.extension_working_days > 0)
                .then_some(r.extension_working_days as u32),
            satisfaction,
            reopen_days: 0,
        },
    })
}

#[tonic::async_trait]
impl ServiceRequestService for ServiceRequestApi {
    async fn create_service_request(
        &self,
        req: Request<pb::CreateServiceRequestRequest>,
    ) -> Result<Response<pb::ServiceRequest>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let n = new_request(&r)?;
        if !p.scope.contains(n.region.as_str()) {
            return Err(ApiError::PermissionDenied(format!(
                "region {} is outside your region {}",
                n.region.as_str(),
                p.scope
            ))
            .into());
        }
        let state = self.state.clone();
        let who = p.clone();
        let now = state.app.workflow.clock.now();
        let out = mutation::run(
            &self.state.app,
            &p,
            Resend::of("ServiceRequestService/CreateServiceRequest", &r),
            move |conn, audit| {
                async move {
                    let region = n.region.as_str();
                    if st::regions::get(conn, "", region).await?.is_none() {
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
                            st::catalog::in_force(conn, &town, Some(&n.item), local_day(now))
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
                    let cal = Calendar::new(
                        st::calendar::load(conn).await?,
                        state.app.workflow.office_hours.clone(),
                    );
                    let item_days = item
                        .as_ref()
                        .and_then(|i| i.time_limit_days)
                        .map(|d| d as u32);
                    let deadline = service::deadline(
                        n.kind,
                        n.urgency,
                        item_days,
                        state.app.workflow.service_limits,
                        now,
                        &cal,
                    );
                    let sr = create(
                        &state,
                        conn,
                        audit,
                        Fresh {
                            kind: n.kind,
                            urgency: n.urgency,
                            person: n.person,
                            content: n.content,
                            address: n.address,
                            region_code: region.to_owned(),
                            catalog_item: item.map(|i| (i.code, i.version)),
                            on_behalf: n.on_behalf,
                            filed_by: who.sub.clone(),
                            deadline,
                            hotline_order_no: None,
                            now,
                        },
                    )
                    .await?;
                    view(&state, conn, sr, &who).await
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(out))
    }

    async fn get_service_request(
        &self,
        req: Request<pb::GetServiceRequestRequest>,
    ) -> Result<Response<pb::ServiceRequest>, Status> {
        let p = principal(&req)?;
        let id = uuid_field(&req.get_ref().id, "id")?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let sr = db::get(&mut conn, p.scope.prefix(), id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("service request {id} not found")))?;
        Ok(Response::new(view(&self.state, &mut conn, sr, &p).await?))
    }

    async fn list_service_requests(
        &self,
        req: Request<pb::ListServiceRequestsRequest>,
    ) -> Result<Response<pb::ListServiceRequestsResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let prefix = requested_prefix(&p, &r.region_code)?;
        let mut statuses = Vec::new();
        for (i, s) in r.statuses.iter().enumerate() {
            statuses.push(
                convert::request_status_from_pb(*s)
                    .ok_or_else(|| ApiError::invalid(format!("statuses[{i}]"), "unknown status"))?
                    .to_owned(),
            );
        }
        let now = self.state.app.workflow.clock.now();
        let f = db::Filter {
            statuses,
            assignee: Some(r.assignee.trim().to_owned()).filter(|a| !a.is_empty()),
            hotline_order_no: Some(r.hotline_order_no.trim().to_owned()).filter(|a| !a.is_empty()),
            overdue_at: r.overdue_only.then_some(now),
        };
        let filter = format!(
            "{prefix}|{:?}|{:?}|{:?}|{}",
            f.statuses, f.assignee, f.hotline_order_no, r.overdue_only
        );
        let page = Page::parse(
            &self.state,
            &p,
            "ListServiceRequests",
            &filter,
            r.page_size,
            &r.page_token,
        )?;
        let before = page
            .after
            .as_deref()
            .map(|a| Uuid::parse_str(a).map_err(|_| ApiError::invalid("page_token", "corrupt")))
            .transpose()?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let mut rows = db::list(&mut conn, &prefix, &f, before, page.fetch_limit())
            .await
            .map_err(ApiError::from)?;
        let next_page_token = page.finish(&self.state, &mut rows, |r| r.sr_id.to_string());
        let mut out = Vec::with_capacity(rows.len());
        for sr in rows {
            out.push(view(&self.state, &mut conn, sr, &p).await?);
        }
        Ok(Response::new(pb::ListServiceRequestsResponse {
            service_requests: out,
            next_page_token,
        }))
    }

    async fn transition_service_request(
        &self,
        req: Request<pb::TransitionServiceRequestRequest>,
    ) -> Result<Response<pb::ServiceRequest>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let mut t = transition(&r)?;
        let prefix = p.scope.prefix().to_owned();
        let state = self.state.clone();
        let now = state.app.workflow.clock.now();
        let who = p.clone();
        let out = mutation::run(
            &self.state.app,
            &p,
            Resend::of("ServiceRequestService/TransitionServiceRequest", &r),
            move |conn, audit| {
                async move {
                    let sr = db::lock(conn, &prefix, t.id).await?.ok_or_else(|| {
                        ApiError::NotFound(format!("service request {} not found", t.id))
                    })?;
                    if sr.version != t.expected_version {
                        return Err(ApiError::Aborted(format!(
                            "request {} is at version {}, not {}: reload it and decide again",
                            sr.request_no, sr.version, t.expected_version
                        )));
                    }
                    if t.action == Action::Assign
                        && let Some(unit) = t.args.assignee.as_deref()
                    {
                        crate::app::check_unit_in_town(conn, unit, &sr.region_code).await?;
                    }
                    let kind = Kind::parse(&sr.kind).unwrap_or(Kind::Enquiry);
                    let urgency = Urgency::parse(&sr.urgency).unwrap_or(Urgency::Normal);
                    let item_days = match (&sr.catalog_item_version, sr.catalog_item_code.as_str())
                    {
                        (Some(v), code) if !code.is_empty() => st::catalog::history(
                            conn,
                            crate::domain::report::town_of(&sr.region_code),
                            Some(code),
                        )
                        .await?
                        .into_iter()
                        .find(|i| i.version == *v)
                        .and_then(|i| i.time_limit_days)
                        .map(|d| d as u32),
                        _ => None,
                    };
                    t.args.reopen_days = service::limit_days(
                        kind,
                        urgency,
                        item_days,
                        state.app.workflow.service_limits,
                    );
                    let cal = Calendar::new(
                        st::calendar::load(conn).await?,
                        state.app.workflow.office_hours.clone(),
                    );
                    let saved = requests::transition(
                        conn,
                        audit,
                        &sr,
                        t.action,
                        actor(&who, &sr),
                        &t.args,
                        now,
                        &cal,
                    )
                    .await?;
                    view(&state, conn, saved, &who).await
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(out))
    }

    async fn get_service_request_stats(
        &self,
        req: Request<pb::GetServiceRequestStatsRequest>,
    ) -> Result<Response<pb::ServiceRequestStats>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let prefix = requested_prefix(&p, &r.region_code)?;
        let (from, to) = super::time_range(r.from.as_ref(), r.to.as_ref())?;
        let now = self.state.app.workflow.clock.now();
        let from = from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let to = to.unwrap_or(now + chrono::Duration::days(1));
        if from >= to {
            return Err(ApiError::invalid("to", "must be after from").into());
        }
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let t = db::totals(&mut conn, &prefix, from, to)
            .await
            .map_err(ApiError::from)?;
        let units = db::unit_figures(&mut conn, &prefix, from, to, now)
            .await
            .map_err(ApiError::from)?;
        let ratio = |a: i32, b: i32| {
            if b > 0 {
                f64::from(a) / f64::from(b)
            } else {
                0.0
            }
        };
        Ok(Response::new(pb::ServiceRequestStats {
            total: t.total,
            from_hotline: t.from_hotline,
            on_time_rate: ratio(t.replied_on_time, t.replied),
            satisfaction_rate: ratio(t.satisfied, t.callbacks),
            units: units
                .into_iter()
                .map(|u| pb::ServiceUnitFigures {
                    unit: u.unit,
                    assigned: u.assigned,
                    replied: u.replied,
                    replied_on_time: u.replied_on_time,
                    satisfied: u.satisfied,
                    dissatisfied: u.dissatisfied,
                    reopened: u.reopened,
                    overdue: u.overdue,
                })
                .collect(),
        }))
    }
}
