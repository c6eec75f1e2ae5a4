//! 12345's work orders (PushWorkOrder): idempotent on order number and version; a new order
//! becomes a service request and, when located, a report of the one net that joins the case of
//! the same event (its request then follows that case, `requests::follow_case`); a higher
//! version replaces the request's data, never its workflow. Orders are committed in groups
//! ([`super::group`]): 12345 pushes many small ones.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use futures::FutureExt;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::ids::ReportId;

use super::Context;
use super::error::ApiError;
use super::requests::{self, Fresh, RequestView, created, fresh};
use crate::domain::calendar::Calendar;
use crate::domain::pii::{Person, Phone};
use crate::domain::principal::{Principal, Scope};
use crate::domain::region::RegionCode;
use crate::domain::report::ReportInput;
use crate::domain::request::{self, Kind, Urgency};
use crate::store::audit::NewEvent;
use crate::store::reports::{self, Item};
use crate::store::requests::{self as db, HotlineOrder, OrderData};
use crate::store::{self as st};

/// The source system 12345 category codes are mapped from.
pub const SOURCE_SYSTEM: &str = "12345";
/// The report source of a located order (`ReportSource.HOTLINE_12345` of the contract).
const REPORT_SOURCE: i16 = 2;

/// The group commit of work orders.
pub type WorkOrders = super::group::Group<Pushed, GroupReads>;

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new order: a new request (and, when located, a report).
    Created,
    /// A higher version: the request's data replaced.
    Updated,
    /// The same version again, the same order: nothing changed.
    Unchanged,
    /// An older version than the one applied: ignored.
    Stale,
}

/// The answer to a push.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub outcome: Outcome,
    pub request: RequestView,
    /// The request's fields a higher version changed.
    pub changed_fields: Vec<String>,
    pub message: String,
}

fn pushed(
    outcome: Outcome,
    request: RequestView,
    changed_fields: Vec<String>,
    message: String,
) -> Pushed {
    Pushed {
        outcome,
        request,
        changed_fields,
        message,
    }
}

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

impl super::group::Shared for GroupReads {
    fn prepare<'c>(
        &'c mut self,
        conn: &'c mut AsyncPgConnection,
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
        conn: &'c mut AsyncPgConnection,
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
    async fn flush_queued(&mut self, conn: &mut AsyncPgConnection) -> Result<(), ApiError> {
        let (requests, orders) = std::mem::take(&mut self.queued);
        db::insert_with_orders(conn, &requests, &orders).await?;
        Ok(())
    }

    /// The working-day calendar, read on first use.
    async fn calendar(
        &mut self,
        conn: &mut AsyncPgConnection,
        ctx: &Context,
    ) -> Result<Calendar, ApiError> {
        if let Some(c) = &self.calendar {
            return Ok(c.clone());
        }
        let cal = super::calendar(ctx, conn).await?;
        self.calendar = Some(cal.clone());
        Ok(cal)
    }

    /// Whether `code` is a known region.
    async fn known_region(
        &mut self,
        conn: &mut AsyncPgConnection,
        code: &RegionCode,
    ) -> Result<bool, ApiError> {
        if let Some(k) = self.regions.get(code.as_str()) {
            return Ok(*k);
        }
        let known = st::regions::get(conn, &Scope::All, code).await?.is_some();
        self.regions.insert(code.to_string(), known);
        Ok(known)
    }
}

/// A validated work order (PushWorkOrder).
#[derive(Debug, Clone)]
pub struct Order {
    pub order_no: String,
    pub version: i32,
    pub kind: Kind,
    pub urgency: Urgency,
    pub caller: Person,
    pub content: String,
    pub address: String,
    pub location: Option<(f64, f64)>,
    pub region: Option<RegionCode>,
    pub deadline: Option<DateTime<Utc>>,
    pub category_code: String,
    pub received_at: DateTime<Utc>,
    /// SHA-256 of the order as sent: a resend of a version must be the same order.
    pub hash: Vec<u8>,
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
    ctx: &Context,
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
    let old: Option<Person> = ctx
        .pii
        .unseal(&sr.applicant_enc, "service_requests.applicant_enc");
    let old = old.as_ref();
    diff("caller.name", old.is_none_or(|o| o.name != caller.name));
    diff("caller.phone", old.is_none_or(|o| o.phone != caller.phone));
    diff(
        "caller.id_number",
        old.is_none_or(|o| o.id_number != caller.id_number),
    );
    out
}

/// Files the report of a located order (in the caller's transaction; the intake records its
/// audit event) and returns the report's id and region.
async fn file_report(
    ctx: &Context,
    conn: &mut AsyncPgConnection,
    p: &Principal,
    o: &Order,
    lat: f64,
    lng: f64,
) -> Result<(ReportId, RegionCode), ApiError> {
    let title: String = o.content.chars().take(60).collect();
    let input = ReportInput {
        client_report_id: report_id_for(&o.order_no),
        source: REPORT_SOURCE,
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
        reporter_phone: Some(
            ctx.pii
                .seal_indexed(&Phone::from_trusted(o.caller.phone.clone())),
        ),
        payload_hash: Sha256::digest(format!("12345:{}", o.order_no).as_bytes()).to_vec(),
    };
    let items = vec![Item {
        by: super::reports::submitter(p),
        report: Ok(input),
    }];
    let mut results =
        reports::ingest(conn, &ctx.grids, items, super::reports::retention(ctx)).await?;
    let accepted = results
        .pop()
        .ok_or_else(|| ApiError::Internal("intake returned no result".into()))?
        .map_err(super::reports::item_error)?;
    let region = reports::region_of(conn, accepted.report_id).await?;
    Ok((accepted.report_id, region))
}

/// PushWorkOrder: applies a work order of the caller's region, in the next group commit.
pub async fn push(ctx: &Context, p: &Principal, o: Order) -> Result<Pushed, ApiError> {
    if let Some(r) = &o.region {
        super::ensure_in_scope(p, "region", r.as_str())?;
    }
    let now = ctx.workflow.clock.now();
    let actor = crate::store::audit::Actor {
        sub: p.sub.clone(),
        roles: p.role_names(),
        request_id: String::new(),
    };
    let key = o.order_no.clone();
    let (ctx, p) = (ctx.clone(), p.clone());
    ctx.work_orders.clone().run(key, actor, Box::new(move |conn, audit, reads, step| {
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
                let cal = reads.calendar(conn, &ctx).await?;
                // A new order: a request, and for a located order a report in the one net.
                let (report, region) = match o.location {
                    Some((lat, lng)) => {
                        step.writes(conn).await?;
                        let (id, region) =
                            file_report(&ctx, conn, &p, &o, lat, lng).await?;
                        (Some(id), region)
                    }
                    None => {
                        let known = match &o.region {
                            Some(r) => reads.known_region(conn, r).await?,
                            None => false,
                        };
                        let Some(r) = o.region.clone().filter(|_| known) else {
                            let r = o.region.as_deref().unwrap_or_default();
                            return Err(ApiError::invalid("region_code", format!("{r} is not a known region")));
                        };
                        (None, r)
                    }
                };
                let deadline = o.deadline.or_else(|| {
                    request::deadline(o.kind, o.urgency, None, ctx.workflow.service_limits, now, &cal)
                });
                let serial = match serial {
                    Some(s) => s,
                    None => db::next_serial(conn).await?,
                };
                let mut sr = fresh(
                    &ctx,
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
                    let v = RequestView { request: sr.clone(), order: Some(ho.clone()), case_id: None };
                    reads.queue(sr, ho);
                    return Ok(pushed(Outcome::Created, v, Vec::new(), msg));
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
                let v = RequestView { request: sr, order: Some(ho), case_id };
                return Ok(pushed(Outcome::Created, v, Vec::new(), msg));
            };
            let sr = db::lock(conn, &p.scope, current.sr_id)
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
                let v = requests::view(conn, sr).await?;
                return Ok(pushed(Outcome::Unchanged, v, Vec::new(), msg));
            }
            if o.version < current.version {
                let msg = format!(
                    "work order {} version {} is older than version {} already applied; ignored",
                    o.order_no, o.version, current.version
                );
                let v = requests::view(conn, sr).await?;
                return Ok(pushed(Outcome::Stale, v, Vec::new(), msg));
            }
            // A higher version: its data replaces the request's (the workflow is untouched).
            let region = match (&o.region, current.report_id) {
                (_, Some(_)) => sr.region_code.clone(),
                (Some(r), None) => {
                    if !reads.known_region(conn, r).await? {
                        return Err(ApiError::invalid("region_code", format!("{} is not a known region", r.as_str())));
                    }
                    r.clone()
                }
                (None, None) => sr.region_code.clone(),
            };
            let data = OrderData {
                kind: o.kind.as_str().to_owned(),
                urgency: o.urgency.as_str().to_owned(),
                content: o.content.clone(),
                address: o.address.clone(),
                region_code: region,
                applicant_enc: ctx.pii.seal(&o.caller),
                applicant_phone_index: Some(ctx.pii.blind_index(&o.caller.phone)),
                deadline: o.deadline.or(sr.deadline),
            };
            let fields = changed(&ctx, &sr, &data, &o.caller);
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
            let v = requests::view(conn, saved).await?;
            Ok(pushed(Outcome::Updated, v, fields, msg))
        }
        .boxed()
}))
.await
}
