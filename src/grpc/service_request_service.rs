//! ServiceRequestService: requests at the service window (便民服务"一窗口") and from 12345,
//! their workflow (rules in `domain::request`, motion in `requests`) and the units' figures.

use crate::domain::ids::*;
use tonic::{Request, Response, Status};

use super::pagination::Page;
use super::pb;
use super::pb::service_request_service_server::ServiceRequestService;
use super::{State, convert, principal, requested_scope, uuid_field};
use crate::app::error::ApiError;
use crate::app::mutation::Resend;
use crate::app::requests::{self, NewRequest, Transition};
use crate::domain::Violation;

use crate::domain::figures::rate;
use crate::domain::pii::Person;
use crate::domain::principal::Principal;
use crate::domain::region::{RegionCode, RegionLevel};
use crate::domain::request::{self, Action, Args, Kind, Satisfaction};
use crate::store::requests::{self as db, ServiceRequest};

/// A request's 12345 updates shown on its page (a work order has a handful; this bounds it).
const UPDATES_SHOWN: i64 = 200;

crate::idempotent!(
    pb::CreateServiceRequestRequest,
    pb::TransitionServiceRequestRequest
);

/// The ServiceRequestService implementation.
pub struct ServiceRequestApi {
    pub state: State,
}

/// A stored request on the wire, with its work order and case.
pub async fn view(
    state: &State,
    conn: &mut diesel_async::AsyncPgConnection,
    sr: ServiceRequest,
    viewer: &Principal,
) -> Result<pb::ServiceRequest, ApiError> {
    let v = requests::view(conn, sr).await?;
    Ok(convert::request_view(&state.app, v, viewer))
}

impl TryFrom<pb::CreateServiceRequestRequest> for NewRequest {
    type Error = ApiError;

    fn try_from(r: pb::CreateServiceRequestRequest) -> Result<NewRequest, ApiError> {
        let pb::CreateServiceRequestRequest {
            kind: raw_kind,
            urgency: raw_urgency,
            applicant,
            content,
            address,
            region_code,
            catalog_item_code,
            on_behalf,
            request_id: _,
        } = r;
        let mut v = Vec::new();
        let kind = convert::request_kind_from_pb(raw_kind);
        if kind.is_none() {
            v.push(Violation::new(
                "kind",
                "required: ENQUIRY, HELP, COMPLAINT, SUGGESTION, TIP_OFF or SERVICE",
            ));
        }
        let urgency = convert::urgency_from_pb(raw_urgency);
        if urgency.is_none() {
            v.push(Violation::new("urgency", "NORMAL, URGENT or CRITICAL"));
        }
        let a = applicant.unwrap_or_default();
        let person = Person::parse(&a.name, &a.phone, &a.id_number, "applicant")
            .map_err(|e| v.extend(e))
            .ok();
        let content = content.trim();
        if content.is_empty() || content.chars().count() > 4000 {
            v.push(Violation::new(
                "content",
                "required, at most 4,000 characters",
            ));
        }
        if address.chars().count() > 500 {
            v.push(Violation::new("address", "at most 500 characters"));
        }
        let region = RegionCode::parse(region_code.trim())
            .ok()
            .filter(|c| matches!(c.level(), RegionLevel::Town | RegionLevel::Village));
        if region.is_none() {
            v.push(Violation::new(
                "region_code",
                "required: the town (9 digits) or village (12 digits)",
            ));
        }
        let item = catalog_item_code.trim();
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
                address: address.trim().to_owned(),
                on_behalf,
            }),
            _ => Err(ApiError::InvalidArgument(v)),
        }
    }
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

impl TryFrom<&pb::TransitionServiceRequestRequest> for Transition {
    type Error = ApiError;

    fn try_from(r: &pb::TransitionServiceRequestRequest) -> Result<Transition, ApiError> {
        let pb::TransitionServiceRequestRequest {
            id: _,
            action: _,
            expected_version: _,
            assignee: _,
            comment: _,
            extension_working_days: _,
            satisfaction: _,
            request_id: _,
        } = r;
        let mut v = Vec::new();
        let id =
            r.id.parse::<ServiceRequestId>()
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
        if !(0..=request::MAX_EXTENSION_DAYS as i32).contains(&r.extension_working_days) {
            v.push(Violation::new(
                "extension_working_days",
                format!("between 1 and {}", request::MAX_EXTENSION_DAYS),
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
}

/// What ListServiceRequests filters by, and the filter's description a page token is bound to
/// (not to `now`; the case only when given, so tokens issued before it existed stay valid).
fn list_filter(
    state: &super::State,
    r: &pb::ListServiceRequestsRequest,
) -> Result<(db::Filter, String), ApiError> {
    let f = db::Filter {
        statuses: request_statuses(&r.statuses)?,
        assignee: Some(r.assignee.trim().to_owned()).filter(|a| !a.is_empty()),
        hotline_order_no: Some(r.hotline_order_no.trim().to_owned()).filter(|a| !a.is_empty()),
        overdue_at: r.overdue_only.then(|| state.app.workflow.clock.now()),
        case: super::optional_uuid(r.case_id.trim(), "case_id")?,
    };
    let binding = format!(
        "{:?}|{:?}|{:?}|{}{}",
        f.statuses,
        f.assignee,
        f.hotline_order_no,
        r.overdue_only,
        f.case.map(|c| format!("|{c}")).unwrap_or_default()
    );
    Ok((f, binding))
}

#[tonic::async_trait]
impl ServiceRequestService for ServiceRequestApi {
    async fn create_service_request(
        &self,
        req: Request<pb::CreateServiceRequestRequest>,
    ) -> Result<Response<pb::ServiceRequest>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let resend = Resend::of("ServiceRequestService/CreateServiceRequest", &r);
        let n = NewRequest::try_from(r)?;
        let (ctx, who) = (self.state.app.clone(), p.clone());
        let show = move |v| convert::request_view(&ctx, v, &who);
        let out = requests::create(&self.state.app, &p, resend, n, show).await?;
        Ok(Response::new(out))
    }

    async fn get_service_request(
        &self,
        req: Request<pb::GetServiceRequestRequest>,
    ) -> Result<Response<pb::ServiceRequest>, Status> {
        let p = principal(&req)?;
        let id = uuid_field(&req.get_ref().id, "id")?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let sr = db::get(&mut conn, &p.scope, id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("service request {id} not found")))?;
        let open = crate::app::requests::available(&self.state.app, &p, &sr);
        let order = sr.hotline_order_no.clone();
        let mut out = view(&self.state, &mut conn, sr, &p).await?;
        if let Some(order) = order {
            out.hotline_updates = db::updates_of_order(&mut conn, &order, UPDATES_SHOWN)
                .await
                .map_err(ApiError::from)?
                .iter()
                .map(convert::hotline_update_delivery)
                .collect();
        }
        out.available_actions = open
            .into_iter()
            .filter_map(|a| {
                pb::transition_service_request_request::Action::from_str_name(a.as_str())
            })
            .map(|a| a as i32)
            .collect();
        Ok(Response::new(out))
    }

    async fn list_service_requests(
        &self,
        req: Request<pb::ListServiceRequestsRequest>,
    ) -> Result<Response<pb::ListServiceRequestsResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let prefix = requested_scope(&p, &r.region_code)?;
        let (f, binding) = list_filter(&self.state, &r)?;
        let filter = format!("{prefix}|{binding}");
        let (size, token) = (r.page_size, &r.page_token);
        let page = Page::parse(&self.state, &p, "ListServiceRequests", &filter, size, token)?;
        let before = page.after_uuid()?;
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
        let t = Transition::try_from(&r)?;
        let resend = Resend::of("ServiceRequestService/TransitionServiceRequest", &r);
        let (ctx, who) = (self.state.app.clone(), p.clone());
        let show = move |v| convert::request_view(&ctx, v, &who);
        let out = requests::transition_request(&self.state.app, &p, resend, t, show).await?;
        Ok(Response::new(out))
    }

    async fn get_service_request_stats(
        &self,
        req: Request<pb::GetServiceRequestStatsRequest>,
    ) -> Result<Response<pb::ServiceRequestStats>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let prefix = requested_scope(&p, &r.region_code)?;
        let now = self.state.app.workflow.clock.now();
        let (from, to) = super::figures_period(r.from.as_ref(), r.to.as_ref(), now)?;
        let mut conn = self.state.app.stale_ok().await?;
        let t = db::totals(&mut conn, &prefix, from, to)
            .await
            .map_err(ApiError::from)?;
        let units = db::unit_figures(&mut conn, &prefix, from, to, now)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(request_stats(t, units)))
    }
}

/// The request figures on the wire; the rates by `domain::figures::rate`.
fn request_stats(t: db::Totals, units: Vec<db::UnitFigures>) -> pb::ServiceRequestStats {
    let rate = |a: i32, b: i32| rate(i64::from(a), i64::from(b));
    pb::ServiceRequestStats {
        total: t.total,
        from_hotline: t.from_hotline,
        on_time_rate: rate(t.replied_on_time, t.replied),
        satisfaction_rate: rate(t.satisfied, t.callbacks),
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
    }
}

/// The statuses a list asks for, in their stored spelling.
fn request_statuses(raw: &[i32]) -> Result<Vec<String>, ApiError> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| match convert::request_status_from_pb(*s) {
            Some(s) => Ok(s.to_owned()),
            None => Err(ApiError::invalid(
                format!("statuses[{i}]"),
                "unknown status",
            )),
        })
        .collect()
}
