//! HotlineService: the 12345 platform pushes work orders (idempotent on order number and
//! version) and pulls what the hub has to tell it. A located work order also enters the one
//! net as a report (channel HOTLINE_12345, source system `12345`) and joins the case of the
//! same event; its request then follows that case (see `requests::follow_case`).

use chrono::{DateTime, Utc};
use futures::FutureExt;
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::pb;
use super::pb::hotline_service_server::HotlineService;
use super::report_service::{item_error, retention, submitter};
use super::service_request_service::{Fresh, created, fresh, view};
use super::{State, convert, principal};
use crate::app::error::ApiError;
use crate::app::requests;
use crate::domain::Violation;
use crate::domain::calendar::Calendar;
use crate::domain::pii::{Person, Sealed};
use crate::domain::principal::Principal;
use crate::domain::region::{RegionCode, RegionLevel};
use crate::domain::report::ReportInput;
use crate::domain::service::{self, Kind, Urgency};
use crate::store::audit::NewEvent;
use crate::store::reports::{self, Item};
use crate::store::service::{self as db, HotlineOrder, OrderData};
use crate::store::{self as st};

/// The source system 12345 category codes are mapped from.
pub const SOURCE_SYSTEM: &str = "12345";
/// Updates per PullUpdates call by default and at most.
const PULL_DEFAULT: i64 = 100;
const PULL_MAX: i64 = 1000;

/// What the work orders of one group commit share (see `group`): their orders locked and read
/// in one round trip before the first, the calendar and known regions read once, and the new
/// orders that join no case queued for one insert after the last.
#[derive(Default)]
pub struct GroupReads {
    /// Per order number: the order as stored, or the request serial reserved for a new one.
    locked: std::collections::HashMap<String, (Option<HotlineOrder>, Option<i64>)>,
    calendar: Option<Calendar>,
    regions: std::collections::HashMap<String, bool>,
    queued: (Vec<db::ServiceRequest>, Vec<HotlineOrder>),
}

impl crate::group::Shared for GroupReads {
    fn prepare<'c>(
        &'c mut self,
        conn: &'c mut diesel_async::AsyncPgConnection,
        keys: &'c [String],
    ) -> futures::future::BoxFuture<'c, Result<(), ApiError>> {
        async move {
            for (no, order, serial) in db::lock_orders(conn, keys).await? {
                self.locked.insert(no, (order, serial));
            }
            Ok(())
        }
        .boxed()
    }

    fn flush<'c>(
        &'c mut self,
        conn: &'c mut diesel_async::AsyncPgConnection,
    ) -> futures::future::BoxFuture<'c, Result<(), ApiError>> {
        self.flush_queued(conn).boxed()
    }
}

impl GroupReads {
    /// Queues a new request and its order for the group's insert.
    fn queue(&mut self, sr: db::ServiceRequest, ho: HotlineOrder) {
        self.queued.0.push(sr);
        self.queued.1.push(ho);
    }

    /// Inserts what is queued.
    async fn flush_queued(
        &mut self,
        conn: &mut diesel_async::AsyncPgConnection,
    ) -> Result<(), ApiError> {
        let (requests, orders) = std::mem::take(&mut self.queued);
        db::insert_with_orders(conn, &requests, &orders).await?;
        Ok(())
    }

    /// The working-day calendar, read on first use.
    async fn calendar(
        &mut self,
        conn: &mut diesel_async::AsyncPgConnection,
        state: &State,
    ) -> Result<Calendar, ApiError> {
        if let Some(c) = &self.calendar {
            return Ok(c.clone());
        }
        let cal = Calendar::new(
            st::calendar::load(conn).await?,
            state.app.workflow.office_hours.clone(),
        );
        self.calendar = Some(cal.clone());
        Ok(cal)
    }

    /// Whether `code` is a known region.
    async fn known_region(
        &mut self,
        conn: &mut diesel_async::AsyncPgConnection,
        code: &str,
    ) -> Result<bool, ApiError> {
        if let Some(k) = self.regions.get(code) {
            return Ok(*k);
        }
        let known = st::regions::get(conn, "", code).await?.is_some();
        self.regions.insert(code.to_owned(), known);
        Ok(known)
    }
}

/// The HotlineService implementation.
pub struct HotlineApi {
    pub state: State,
}

/// A validated work order.
struct Order {
    order_no: String,
    version: i32,
    kind: Kind,
    urgency: Urgency,
    caller: Person,
    content: String,
    address: String,
    location: Option<(f64, f64)>,
    region: Option<RegionCode>,
    deadline: Option<DateTime<Utc>>,
    category_code: String,
    received_at: DateTime<Utc>,
    hash: Vec<u8>,
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

/// The client report id of an order's report: derived from the order number, so a replayed
/// first push cannot file a second report.
fn report_id_for(order_no: &str) -> Uuid {
    let h = Sha256::digest(format!("12345:{order_no}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

/// The fields of `new` that differ from the request as stored.
fn changed(
    state: &State,
    sr: &db::ServiceRequest,
    new: &OrderData,
    caller: &Person,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut diff = |name: &str, d: bool| {
        if d {
            out.push(name.to_owned());
        }
    };
    diff("kind", sr.kind != new.kind);
    diff("urgency", sr.urgency != new.urgency);
    diff("content", sr.content != new.content);
    diff("address", sr.address != new.address);
    diff("region_code", sr.region_code != new.region_code);
    diff("deadline", sr.deadline != new.deadline);
    let old: Option<Person> = state
        .app
        .pii
        .open(&sr.applicant_enc, "service_requests.applicant_enc")
        .and_then(|s| serde_json::from_str(&s).ok());
    let old = old.as_ref();
    diff("caller.name", old.is_none_or(|o| o.name != caller.name));
    diff("caller.phone", old.is_none_or(|o| o.phone != caller.phone));
    diff(
        "caller.id_number",
        old.is_none_or(|o| o.id_number != caller.id_number),
    );
    out
}

fn result(
    outcome: pb::push_work_order_result::Outcome,
    request: pb::ServiceRequest,
    changed_fields: Vec<String>,
    message: String,
) -> pb::PushWorkOrderResult {
    let case_id = request.case_id.clone();
    pb::PushWorkOrderResult {
        outcome: outcome as i32,
        request: Some(request),
        changed_fields,
        message,
        case_id,
    }
}

/// Files the report of a located order (in the caller's transaction; the intake records its
/// audit event) and returns the report's id and region.
async fn file_report(
    state: &State,
    conn: &mut diesel_async::AsyncPgConnection,
    p: &Principal,
    o: &Order,
    lat: f64,
    lng: f64,
) -> Result<(Uuid, String), ApiError> {
    let title: String = o.content.chars().take(60).collect();
    let input = ReportInput {
        client_report_id: report_id_for(&o.order_no),
        source: pb::ReportSource::Hotline12345 as i16,
        source_system: SOURCE_SYSTEM.to_owned(),
        category_code: o.category_code.clone(),
        title,
        description: o.content.clone(),
        lat,
        lng,
        claimed_grid: None,
        occurred_at: o.received_at,
        reporter_id: format!("12345:{}", o.order_no),
        attachments: Vec::new(),
        reporter_phone: Some(Sealed {
            enc: state.app.pii.encrypt(&o.caller.phone),
            index: state.app.pii.blind_index(&o.caller.phone),
        }),
        payload_hash: Sha256::digest(format!("12345:{}", o.order_no).as_bytes()).to_vec(),
    };
    let items = vec![Item {
        by: submitter(p),
        report: Ok(input),
    }];
    let mut results = reports::ingest(conn, &state.app.grids, items, retention(state)).await?;
    let accepted = results
        .pop()
        .ok_or_else(|| ApiError::Internal("intake returned no result".into()))?
        .map_err(item_error)?;
    let region = reports::region_of(conn, accepted.report_id).await?;
    Ok((accepted.report_id, region))
}

#[tonic::async_trait]
impl HotlineService for HotlineApi {
    async fn push_work_order(
        &self,
        req: Request<pb::WorkOrder>,
    ) -> Result<Response<pb::PushWorkOrderResult>, Status> {
        let p = principal(&req)?;
        let now = self.state.app.workflow.clock.now();
        let o = order(req.get_ref(), now)?;
        if let Some(r) = &o.region
            && !p.scope.contains(r.as_str())
        {
            return Err(ApiError::PermissionDenied(format!(
                "region {} is outside your region {}",
                r.as_str(),
                p.scope
            ))
            .into());
        }
        let state = self.state.clone();
        let actor = crate::store::audit::Actor {
            sub: p.sub.clone(),
            roles: p.role_names(),
            request_id: String::new(),
        };
        let key = o.order_no.clone();
        // Work orders are committed in groups (see `group`): 12345 pushes many small ones.
        let out = self.state.work_orders.run(key, actor, Box::new(move |conn, audit, reads, step| {
            async move {
                let (existing, serial) = match reads.locked.remove(&o.order_no) {
                    Some(found) => found,
                    // The same order twice in one group: the first may be queued; write it,
                    // then look again.
                    None => {
                        reads.flush_queued(conn).await?;
                        (db::lock_order(conn, &o.order_no).await?, None)
                    }
                };
                let Some(current) = existing else {
                    // Only a new order needs the calendar (its deadline, catching up with a case).
                    let cal = reads.calendar(conn, &state).await?;
                    // A new order: a request, and for a located order a report in the one net.
                    let (report, region) = match o.location {
                        Some((lat, lng)) => {
                            step.writes(conn).await?;
                            let (id, region) =
                                file_report(&state, conn, &p, &o, lat, lng).await?;
                            (Some(id), region)
                        }
                        None => {
                            let r = o.region.as_ref().map(|r| r.as_str().to_owned()).unwrap_or_default();
                            if !reads.known_region(conn, &r).await? {
                                return Err(ApiError::invalid("region_code", format!("{r} is not a known region")));
                            }
                            (None, r)
                        }
                    };
                    let deadline = o.deadline.or_else(|| {
                        service::deadline(o.kind, o.urgency, None, state.app.workflow.service_limits, now, &cal)
                    });
                    let serial = match serial {
                        Some(s) => s,
                        None => db::next_serial(conn).await?,
                    };
                    let mut sr = fresh(
                        &state,
                        Fresh {
                            kind: o.kind,
                            urgency: o.urgency,
                            person: o.caller.clone(),
                            content: o.content.clone(),
                            address: o.address.clone(),
                            region_code: region,
                            catalog_item: None,
                            on_behalf: false,
                            filed_by: p.sub.clone(),
                            deadline,
                            hotline_order_no: Some(o.order_no.clone()),
                            now,
                        },
                        serial,
                    )?;
                    let ho = HotlineOrder {
                        order_no: o.order_no.clone(),
                        sr_id: sr.sr_id,
                        version: o.version,
                        payload_hash: o.hash.clone(),
                        report_id: report,
                        lat: o.location.map(|l| l.0),
                        lng: o.location.map(|l| l.1),
                        received_at: now,
                        updated_at: now,
                    };
                    audit.push(created(&sr));
                    audit.push(NewEvent::ok(
                        "work_order.receive",
                        "work_order",
                        &o.order_no,
                        &sr.region_code,
                        None,
                        Some(serde_json::json!({"version": o.version, "request_no": sr.request_no, "report_id": report})),
                    ));
                    let msg = format!("work order {} version {} accepted as {}", o.order_no, o.version, sr.request_no);
                    if report.is_none() {
                        // Nothing of the one net to join: queue the two rows for the group's
                        // one insert, and answer from them.
                        let v = convert::service_request(sr.clone(), Some(&ho), None, &state.app.pii, &p, now);
                        reads.queue(sr, ho);
                        return Ok(result(pb::push_work_order_result::Outcome::Created, v, Vec::new(), msg));
                    }
                    db::insert_with_orders(conn, std::slice::from_ref(&sr), std::slice::from_ref(&ho)).await?;
                    // An order about an event the net already handles joins it where it is.
                    let case_id = db::case_of_order(conn, &ho).await?;
                    if let Some(case_id) = case_id
                        && let Some(case) = st::cases::by_ids(conn, &[case_id]).await?.pop()
                    {
                        sr = requests::catch_up(conn, audit, sr, &case, None, "", now, &cal).await?;
                    }
                    // The answer from what this transaction just wrote: nothing to read back.
                    let v = convert::service_request(sr, Some(&ho), case_id, &state.app.pii, &p, now);
                    return Ok(result(pb::push_work_order_result::Outcome::Created, v, Vec::new(), msg));
                };
                let sr = db::lock(conn, p.scope.prefix(), current.sr_id)
                    .await?
                    .ok_or_else(|| ApiError::PermissionDenied(format!("work order {} is outside your region", o.order_no)))?;
                if o.version == current.version {
                    if o.hash != current.payload_hash {
                        return Err(ApiError::AlreadyExists(format!(
                            "work order {} version {} was already received with different content; send a higher version to change it",
                            o.order_no, o.version
                        )));
                    }
                    let msg = format!("work order {} version {} already received; nothing changed", o.order_no, o.version);
                    let v = view(&state, conn, sr, &p).await?;
                    return Ok(result(pb::push_work_order_result::Outcome::Unchanged, v, Vec::new(), msg));
                }
                if o.version < current.version {
                    let msg = format!(
                        "work order {} version {} is older than version {} already applied; ignored",
                        o.order_no, o.version, current.version
                    );
                    let v = view(&state, conn, sr, &p).await?;
                    return Ok(result(pb::push_work_order_result::Outcome::Stale, v, Vec::new(), msg));
                }
                // A higher version: its data replaces the request's (the workflow is untouched).
                let region = match (&o.region, current.report_id) {
                    (_, Some(_)) => sr.region_code.clone(),
                    (Some(r), None) => {
                        if !reads.known_region(conn, r.as_str()).await? {
                            return Err(ApiError::invalid("region_code", format!("{} is not a known region", r.as_str())));
                        }
                        r.as_str().to_owned()
                    }
                    (None, None) => sr.region_code.clone(),
                };
                let json = serde_json::to_string(&o.caller)
                    .map_err(|e| ApiError::Internal(format!("caller: {e}")))?;
                let data = OrderData {
                    kind: o.kind.as_str().to_owned(),
                    urgency: o.urgency.as_str().to_owned(),
                    content: o.content.clone(),
                    address: o.address.clone(),
                    region_code: region,
                    applicant_enc: state.app.pii.encrypt(&json),
                    applicant_phone_index: Some(state.app.pii.blind_index(&o.caller.phone)),
                    deadline: o.deadline.or(sr.deadline),
                };
                let fields = changed(&state, &sr, &data, &o.caller);
                step.writes(conn).await?;
                let saved = db::save_order_data(conn, sr.sr_id, &data).await?;
                db::save_order_version(conn, &o.order_no, o.version, &o.hash, now).await?;
                audit.push(NewEvent::ok(
                    "work_order.update",
                    "work_order",
                    &o.order_no,
                    &saved.region_code,
                    Some(serde_json::json!({"version": current.version})),
                    Some(serde_json::json!({"version": o.version, "changed": fields})),
                ));
                let msg = format!(
                    "work order {} updated from version {} to {}: {}",
                    o.order_no,
                    current.version,
                    o.version,
                    if fields.is_empty() { "no field changed".to_owned() } else { fields.join(", ") }
                );
                let v = view(&state, conn, saved, &p).await?;
                Ok(result(pb::push_work_order_result::Outcome::Updated, v, fields, msg))
            }
            .boxed()
        }))
        .await?;
        Ok(Response::new(out))
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
        let rows = db::updates_after(&mut conn, p.scope.prefix(), after, limit)
            .await
            .map_err(ApiError::from)?;
        let next_cursor = rows.last().map(|r| r.seq).unwrap_or(after).to_string();
        Ok(Response::new(pb::PullUpdatesResponse {
            updates: rows.iter().map(convert::hotline_update).collect(),
            next_cursor,
        }))
    }
}
