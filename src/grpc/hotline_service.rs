//! HotlineService: the 12345 platform pushes work orders (idempotent on order number and
//! version) and pulls what the hub has to tell it. A located work order also enters the one
//! net as a report (channel HOTLINE_12345, source system `12345`) and joins the case of the
//! same event; its request then follows that case (see `requests::follow_case`).

use chrono::{DateTime, Utc};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::pb;
use super::pb::hotline_service_server::HotlineService;
use super::{State, convert, principal};
use crate::app::Context;
use crate::app::error::ApiError;
use crate::app::hotline::{self, Order, Outcome, Pushed};
use crate::domain::Violation;
use crate::domain::pii::Person;
use crate::domain::principal::Principal;
use crate::domain::region::{RegionCode, RegionLevel};
use crate::store::requests::{self as db};

/// Updates per PullUpdates call by default and at most.
const PULL_DEFAULT: i64 = 100;
const PULL_MAX: i64 = 1000;

/// The HotlineService implementation.
pub struct HotlineApi {
    pub state: State,
}

fn order(w: &pb::WorkOrder, now: DateTime<Utc>) -> Result<Order, ApiError> {
    let mut v = Vec::new();
    let order_no = w.order_no.trim();
    if order_no.is_empty()
        || order_no.len() > 64
        || !order_no
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        v.push(Violation::new(
            "order_no",
            "required: 1–64 letters, digits, '-' or '_'",
        ));
    }
    if w.version < 1 {
        v.push(Violation::new("version", "required, from 1"));
    }
    let kind = convert::request_kind_from_pb(w.kind);
    if kind.is_none() {
        v.push(Violation::new("kind", "required"));
    }
    let urgency = convert::urgency_from_pb(w.urgency);
    if urgency.is_none() {
        v.push(Violation::new("urgency", "NORMAL, URGENT or CRITICAL"));
    }
    let c = w.caller.clone().unwrap_or_default();
    let caller = Person::parse(&c.name, &c.phone, &c.id_number, "caller")
        .map_err(|e| v.extend(e))
        .ok();
    let content = w.content.trim();
    if content.is_empty() || content.chars().count() > 4000 {
        v.push(Violation::new(
            "content",
            "required, at most 4,000 characters",
        ));
    }
    if w.address.chars().count() > 500 {
        v.push(Violation::new("address", "at most 500 characters"));
    }
    let location = match &w.location {
        None => None,
        Some(l) => {
            if !(l.lat.is_finite() && (-90.0..=90.0).contains(&l.lat)) {
                v.push(Violation::new("location.lat", "must be between -90 and 90"));
            }
            if !(l.lng.is_finite() && (-180.0..=180.0).contains(&l.lng)) {
                v.push(Violation::new(
                    "location.lng",
                    "must be between -180 and 180",
                ));
            }
            Some((l.lat, l.lng))
        }
    };
    let region = match w.region_code.trim() {
        "" => None,
        raw => match RegionCode::parse(raw) {
            Ok(c) if matches!(c.level(), RegionLevel::Town | RegionLevel::Village) => Some(c),
            _ => {
                v.push(Violation::new(
                    "region_code",
                    "the town (9 digits) or village (12 digits)",
                ));
                None
            }
        },
    };
    if location.is_none() && region.is_none() && w.region_code.trim().is_empty() {
        v.push(Violation::new(
            "region_code",
            "required when the order has no location",
        ));
    }
    if location.is_some() && w.category_code.trim().is_empty() {
        v.push(Violation::new(
            "category_code",
            "required for a located order: it enters the one net as a report",
        ));
    }
    if w.category_code.chars().count() > 64 {
        v.push(Violation::new("category_code", "at most 64 characters"));
    }
    let time = |t: Option<&prost_types::Timestamp>, field: &str, v: &mut Vec<Violation>| match t {
        None => None,
        Some(t) => match convert::from_timestamp(t) {
            Some(t) if t.timestamp() >= 946_684_800 => Some(t),
            _ => {
                v.push(Violation::new(field, "out of range"));
                None
            }
        },
    };
    let deadline = time(w.deadline.as_ref(), "deadline", &mut v);
    let received_at = time(w.received_at.as_ref(), "received_at", &mut v).unwrap_or(now);
    if received_at > now + chrono::Duration::minutes(5) {
        v.push(Violation::new("received_at", "must not be in the future"));
    }
    match (kind, urgency, caller, v.is_empty()) {
        (Some(kind), Some(urgency), Some(caller), true) => Ok(Order {
            order_no: order_no.to_owned(),
            version: w.version,
            kind,
            urgency,
            caller,
            content: content.to_owned(),
            address: w.address.trim().to_owned(),
            location,
            region,
            deadline,
            category_code: w.category_code.trim().to_owned(),
            received_at,
            hash: Sha256::digest(w.encode_to_vec()).to_vec(),
        }),
        _ => Err(ApiError::InvalidArgument(v)),
    }
}

/// The answer to a push, as `viewer` may see its request.
fn result(ctx: &Context, p: Pushed, viewer: &Principal) -> pb::PushWorkOrderResult {
    use pb::push_work_order_result::Outcome as O;
    let outcome = match p.outcome {
        Outcome::Created => O::Created,
        Outcome::Updated => O::Updated,
        Outcome::Unchanged => O::Unchanged,
        Outcome::Stale => O::Stale,
    };
    let request = convert::request_view(ctx, p.request, viewer);
    pb::PushWorkOrderResult {
        outcome: outcome as i32,
        case_id: request.case_id.clone(),
        request: Some(request),
        changed_fields: p.changed_fields,
        message: p.message,
    }
}

#[tonic::async_trait]
impl HotlineService for HotlineApi {
    async fn push_work_order(
        &self,
        req: Request<pb::WorkOrder>,
    ) -> Result<Response<pb::PushWorkOrderResult>, Status> {
        let p = principal(&req)?;
        let ctx = &self.state.app;
        let o = order(req.get_ref(), ctx.workflow.clock.now())?;
        let pushed = hotline::push(ctx, &p, o).await?;
        Ok(Response::new(result(ctx, pushed, &p)))
    }

    async fn pull_updates(
        &self,
        req: Request<pb::PullUpdatesRequest>,
    ) -> Result<Response<pb::PullUpdatesResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let after =
            match r.cursor.trim() {
                "" => 0,
                c => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    ApiError::invalid("cursor", "is not a cursor this server issued")
                })?,
            };
        let limit = match r.limit {
            n if n < 0 => return Err(ApiError::invalid("limit", "must not be negative").into()),
            0 => PULL_DEFAULT,
            n => i64::from(n).min(PULL_MAX),
        };
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        // Updates exist once their events are sealed: seal what has committed.
        crate::store::audit::seal(&mut conn)
            .await
            .map_err(ApiError::from)?;
        let rows = db::updates_after(&mut conn, &p.scope, after, limit)
            .await
            .map_err(ApiError::from)?;
        let next_cursor = rows.last().map(|r| r.seq).unwrap_or(after).to_string();
        Ok(Response::new(pb::PullUpdatesResponse {
            updates: rows.iter().map(convert::hotline_update).collect(),
            next_cursor,
        }))
    }
}
