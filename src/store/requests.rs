//! `service_requests`, `hotline_orders` and the hotline outbox.

use crate::domain::principal::Scope;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::ids::{CaseId, ReportId, ServiceRequestId};
use crate::domain::pii::{Person, Sealed};
use crate::domain::region::RegionCode;

use super::schema::{hotline_orders, hotline_outbox, reports, service_requests};
use crate::domain::request::{Flow, Satisfaction, Status};

/// A stored request.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = service_requests, check_for_backend(diesel::pg::Pg))]
pub struct ServiceRequest {
    pub sr_id: ServiceRequestId,
    pub request_no: String,
    pub kind: String,
    pub urgency: String,
    pub catalog_item_code: String,
    pub catalog_item_version: Option<i32>,
    pub region_code: RegionCode,
    pub content: String,
    pub address: String,
    /// The applicant (`domain::pii::Person` as JSON), encrypted.
    pub applicant_enc: Sealed<Person>,
    pub applicant_phone_index: Option<Vec<u8>>,
    pub on_behalf: bool,
    pub filed_by: String,
    pub status: String,
    pub assignee: String,
    pub flags: Vec<Option<String>>,
    pub accepted_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub signed_at: Option<DateTime<Utc>>,
    pub replied_at: Option<DateTime<Utc>>,
    pub visited_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub extension_days: Option<i32>,
    pub urge_count: i32,
    pub reopen_count: i32,
    pub reply: String,
    pub satisfaction: String,
    pub dissatisfied_count: i32,
    pub hotline_order_no: Option<String>,
    pub version: i64,
}

impl ServiceRequest {
    /// The workflow part.
    pub fn flow(&self) -> Option<Flow> {
        Some(Flow {
            status: Status::parse(&self.status)?,
            assignee: self.assignee.clone(),
            flags: self.flags.iter().flatten().cloned().collect(),
            assigned_at: self.assigned_at,
            signed_at: self.signed_at,
            replied_at: self.replied_at,
            visited_at: self.visited_at,
            archived_at: self.archived_at,
            deadline: self.deadline,
            extension_days: self.extension_days,
            urge_count: self.urge_count,
            reopen_count: self.reopen_count,
            dissatisfied_count: self.dissatisfied_count,
            reply: self.reply.clone(),
            satisfaction: Satisfaction::parse(&self.satisfaction),
        })
    }

    /// A snapshot for the audit trail: no personal data.
    pub fn audit_view(&self) -> serde_json::Value {
        serde_json::json!({
            "request_no": self.request_no,
            "kind": self.kind,
            "urgency": self.urgency,
            "status": self.status,
            "assignee": self.assignee,
            "deadline": self.deadline,
            "catalog_item": self.catalog_item_code,
            "catalog_item_version": self.catalog_item_version,
            "hotline_order_no": self.hotline_order_no,
            "flags": self.flags,
            "satisfaction": self.satisfaction,
            "reopen_count": self.reopen_count,
            "version": self.version,
        })
    }
}

/// The 12345 side of a request.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = hotline_orders, check_for_backend(diesel::pg::Pg))]
pub struct HotlineOrder {
    pub order_no: String,
    pub sr_id: ServiceRequestId,
    pub version: i32,
    pub payload_hash: Vec<u8>,
    pub report_id: Option<ReportId>,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Inserts a request.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(conn: &mut AsyncPgConnection, r: &ServiceRequest) -> QueryResult<()> {
    diesel::insert_into(service_requests::table)
        .values(r)
        .execute(conn)
        .await
        .map(|_| ())
}

/// A new request serial (see [`request_no`]).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn next_serial(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    diesel::select(diesel::dsl::sql::<BigInt>(
        "nextval('service_request_serial')",
    ))
    .get_result::<i64>(conn)
    .await
}

/// A request's number: `FW` + the town code of `region` + the serial (at least six digits).
pub fn request_no(region: &RegionCode, serial: i64) -> String {
    format!("FW{}-{serial:06}", crate::domain::report::town_of(region))
}

/// Inserts requests with their work orders: two multi-row statements, pipelined.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert_with_orders(
    mut conn: &AsyncPgConnection,
    r: &[ServiceRequest],
    o: &[HotlineOrder],
) -> QueryResult<()> {
    if r.is_empty() && o.is_empty() {
        return Ok(());
    }
    let requests = diesel::insert_into(service_requests::table)
        .values(r)
        .execute(&mut conn);
    let orders = diesel::insert_into(hotline_orders::table)
        .values(o)
        .execute(&mut conn);
    futures::future::try_join(requests, orders).await?;
    Ok(())
}

/// Per order number: the order as stored, or the request serial reserved for a new one.
pub type LockedOrders = Vec<(String, Option<HotlineOrder>, Option<i64>)>;

/// The work orders `nos`, locked (their advisory locks in key order, then the rows for
/// update), in one round trip: each existing order, and for each order not yet received a
/// reserved request serial (migration 8).
#[tracing::instrument(level = "debug", skip_all, fields(orders = nos.len()))]
pub async fn lock_orders(
    conn: &mut AsyncPgConnection,
    nos: &[String],
) -> QueryResult<LockedOrders> {
    let rows: Vec<LockedOrder> = diesel::sql_query("SELECT * FROM hotline_orders_locked($1)")
        .bind::<diesel::sql_types::Array<Text>, _>(nos)
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let order = match (
                r.sr_id,
                r.version,
                r.payload_hash,
                r.received_at,
                r.updated_at,
            ) {
                (
                    Some(sr_id),
                    Some(version),
                    Some(payload_hash),
                    Some(received_at),
                    Some(updated_at),
                ) => Some(HotlineOrder {
                    order_no: r.order_no.clone(),
                    sr_id,
                    version,
                    payload_hash,
                    report_id: r.report_id,
                    lat: r.lat,
                    lng: r.lng,
                    received_at,
                    updated_at,
                }),
                _ => None,
            };
            (r.order_no, order, r.serial)
        })
        .collect())
}

#[derive(QueryableByName)]
struct LockedOrder {
    #[diesel(sql_type = Text)]
    order_no: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    sr_id: Option<ServiceRequestId>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Integer>)]
    version: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bytea>)]
    payload_hash: Option<Vec<u8>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    report_id: Option<ReportId>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    lat: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    lng: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
    received_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
    updated_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    serial: Option<i64>,
}

/// One request, if within `prefix`.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix(), sr_id = %id))]
pub async fn get(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id: ServiceRequestId,
) -> QueryResult<Option<ServiceRequest>> {
    let prefix = scope.prefix();
    service_requests::table
        .find(id)
        .filter(service_requests::region_code.like(format!("{prefix}%")))
        .select(ServiceRequest::as_select())
        .first(conn)
        .await
        .optional()
}

/// Locks one request for update, if within `prefix`.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix(), sr_id = %id))]
pub async fn lock(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id: ServiceRequestId,
) -> QueryResult<Option<ServiceRequest>> {
    let prefix = scope.prefix();
    service_requests::table
        .find(id)
        .filter(service_requests::region_code.like(format!("{prefix}%")))
        .select(ServiceRequest::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// What ListServiceRequests filters by.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub statuses: Vec<String>,
    pub assignee: Option<String>,
    pub hotline_order_no: Option<String>,
    /// Open and past the deadline at this time.
    pub overdue_at: Option<DateTime<Utc>>,
    /// Requests whose work order's report is in this case.
    pub case: Option<CaseId>,
}

/// Requests within `prefix` before `before` (ids are time-ordered), newest first.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn list(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    f: &Filter,
    before: Option<ServiceRequestId>,
    limit: i64,
) -> QueryResult<Vec<ServiceRequest>> {
    let prefix = scope.prefix();
    let mut q = service_requests::table
        .filter(service_requests::region_code.like(format!("{prefix}%")))
        .order(service_requests::sr_id.desc())
        .limit(limit)
        .select(ServiceRequest::as_select())
        .into_boxed();
    if !f.statuses.is_empty() {
        q = q.filter(service_requests::status.eq_any(f.statuses.clone()));
    }
    if let Some(a) = &f.assignee {
        q = q.filter(service_requests::assignee.eq(a.clone()));
    }
    if let Some(o) = &f.hotline_order_no {
        q = q.filter(service_requests::hotline_order_no.eq(o.clone()));
    }
    if let Some(c) = f.case {
        q = q.filter(
            service_requests::sr_id.eq_any(
                hotline_orders::table
                    .inner_join(reports::table)
                    .filter(reports::case_id.eq(c))
                    .select(hotline_orders::sr_id),
            ),
        );
    }
    if let Some(t) = f.overdue_at {
        q = q
            .filter(service_requests::status.eq_any(open_statuses()))
            .filter(service_requests::deadline.lt(t));
    }
    if let Some(b) = before {
        q = q.filter(service_requests::sr_id.lt(b));
    }
    q.load(conn).await
}

/// Writes the workflow state of request `id`, bumping its version; returns the new row. A new
/// reply (`replied_at` set where the row has none or another) is kept in `service_request_replies`, which the
/// figures count.
#[tracing::instrument(level = "debug", skip_all, fields(sr_id = %id))]
pub async fn save_flow(
    conn: &mut AsyncPgConnection,
    id: ServiceRequestId,
    flow: &Flow,
) -> QueryResult<ServiceRequest> {
    if let Some(at) = flow.replied_at {
        RecordReply {
            b1: id,
            b2: at,
            b3: &flow.assignee,
            b4: flow.deadline.is_none_or(|d| at <= d),
        }
        .execute(conn)
        .await?;
    }
    diesel::update(service_requests::table.find(id))
        .set((
            service_requests::status.eq(flow.status.as_str()),
            service_requests::assignee.eq(&flow.assignee),
            service_requests::flags.eq(flow.flags.iter().cloned().map(Some).collect::<Vec<_>>()),
            service_requests::assigned_at.eq(flow.assigned_at),
            service_requests::signed_at.eq(flow.signed_at),
            service_requests::replied_at.eq(flow.replied_at),
            service_requests::visited_at.eq(flow.visited_at),
            service_requests::archived_at.eq(flow.archived_at),
            service_requests::deadline.eq(flow.deadline),
            service_requests::extension_days.eq(flow.extension_days),
            service_requests::urge_count.eq(flow.urge_count),
            service_requests::reopen_count.eq(flow.reopen_count),
            service_requests::dissatisfied_count.eq(flow.dissatisfied_count),
            service_requests::reply.eq(&flow.reply),
            service_requests::satisfaction.eq(flow.satisfaction.map(|s| s.as_str()).unwrap_or("")),
            service_requests::version.eq(service_requests::version + 1),
        ))
        .returning(ServiceRequest::as_returning())
        .get_result(conn)
        .await
}

/// The data fields a newer work order version may change.
#[derive(Debug, Clone)]
pub struct OrderData {
    pub kind: String,
    pub urgency: String,
    pub content: String,
    pub address: String,
    pub region_code: RegionCode,
    pub applicant_enc: Sealed<Person>,
    pub applicant_phone_index: Option<Vec<u8>>,
    pub deadline: Option<DateTime<Utc>>,
}

/// Applies a newer work order version's data to its request; returns the new row.
#[tracing::instrument(level = "debug", skip_all, fields(sr_id = %id))]
pub async fn save_order_data(
    conn: &mut AsyncPgConnection,
    id: ServiceRequestId,
    d: &OrderData,
) -> QueryResult<ServiceRequest> {
    diesel::update(service_requests::table.find(id))
        .set((
            service_requests::kind.eq(&d.kind),
            service_requests::urgency.eq(&d.urgency),
            service_requests::content.eq(&d.content),
            service_requests::address.eq(&d.address),
            service_requests::region_code.eq(&d.region_code),
            service_requests::applicant_enc.eq(&d.applicant_enc),
            service_requests::applicant_phone_index.eq(&d.applicant_phone_index),
            service_requests::deadline.eq(d.deadline),
            service_requests::version.eq(service_requests::version + 1),
        ))
        .returning(ServiceRequest::as_returning())
        .get_result(conn)
        .await
}

/// A work order, locked for update, after taking the order's advisory lock (so two first
/// pushes of one order cannot both insert); one round trip (migration 8).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn lock_order(
    conn: &mut AsyncPgConnection,
    order_no: &str,
) -> QueryResult<Option<HotlineOrder>> {
    diesel::sql_query("SELECT * FROM hotline_order_locked($1)")
        .bind::<Text, _>(order_no)
        .get_result(conn)
        .await
        .optional()
}

/// Records that `version` (with `hash`) of an order was applied.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn save_order_version(
    conn: &mut AsyncPgConnection,
    order_no: &str,
    version: i32,
    hash: &[u8],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(hotline_orders::table.find(order_no))
        .set((
            hotline_orders::version.eq(version),
            hotline_orders::payload_hash.eq(hash),
            hotline_orders::updated_at.eq(now),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The work order of a request.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn order_of(
    conn: &mut AsyncPgConnection,
    sr_id: ServiceRequestId,
) -> QueryResult<Option<HotlineOrder>> {
    hotline_orders::table
        .filter(hotline_orders::sr_id.eq(sr_id))
        .select(HotlineOrder::as_select())
        .first(conn)
        .await
        .optional()
}

/// The case a located work order's report is in now.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn case_of_order(
    conn: &mut AsyncPgConnection,
    order: &HotlineOrder,
) -> QueryResult<Option<CaseId>> {
    let Some(report) = order.report_id else {
        return Ok(None);
    };
    reports::table
        .find(report)
        .select(reports::case_id)
        .first(conn)
        .await
        .optional()
}

/// The requests whose located work orders' reports are in `case_id`, locked for update, in
/// id order.
#[tracing::instrument(level = "debug", skip_all, fields(case_id = %case_id))]
pub async fn following_case(
    conn: &mut AsyncPgConnection,
    case_id: CaseId,
) -> QueryResult<Vec<ServiceRequest>> {
    let ids: Vec<ServiceRequestId> = hotline_orders::table
        .inner_join(reports::table)
        .filter(reports::case_id.eq(case_id))
        .select(hotline_orders::sr_id)
        .load(conn)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    service_requests::table
        .filter(service_requests::sr_id.eq_any(ids))
        .order(service_requests::sr_id)
        .select(ServiceRequest::as_select())
        .for_update()
        .load(conn)
        .await
}

/// One outbox row.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = hotline_outbox, check_for_backend(diesel::pg::Pg))]
pub struct OutboxRow {
    pub seq: i64,
    pub update_id: Uuid,
    pub order_no: String,
    pub region_code: String,
    pub payload: serde_json::Value,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: String,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Updates after `seq` within `prefix`, in commit order.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn updates_after(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    seq: i64,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let prefix = scope.prefix();
    hotline_outbox::table
        .filter(hotline_outbox::seq.gt(seq))
        .filter(hotline_outbox::region_code.like(format!("{prefix}%")))
        .order(hotline_outbox::seq)
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)
        .await
}

/// The updates of one work order, oldest first (at most `limit`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn updates_of_order(
    conn: &mut AsyncPgConnection,
    order_no: &str,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    hotline_outbox::table
        .filter(hotline_outbox::order_no.eq(order_no))
        .order(hotline_outbox::seq)
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)
        .await
}

/// Claims up to `limit` due updates for delivery, locking them (rows another replica holds
/// are skipped): per work order only the oldest undelivered update, so order is kept, and
/// nothing behind a dead letter.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    diesel::sql_query(
        "SELECT o.* FROM hotline_outbox o
          WHERE o.state = 'PENDING' AND o.next_attempt_at <= $1
            AND NOT EXISTS (SELECT 1 FROM hotline_outbox p
                             WHERE p.order_no = o.order_no AND p.seq < o.seq AND p.state <> 'DELIVERED')
          ORDER BY o.next_attempt_at, o.seq
          LIMIT $2
          FOR UPDATE SKIP LOCKED",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Marks an update delivered.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn mark_delivered(
    conn: &mut AsyncPgConnection,
    seq: i64,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(hotline_outbox::table.find(seq))
        .set((
            hotline_outbox::state.eq("DELIVERED"),
            hotline_outbox::attempts.eq(hotline_outbox::attempts + 1),
            hotline_outbox::delivered_at.eq(Some(now)),
            hotline_outbox::last_error.eq(""),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Records a failed attempt: retry at `next`, or a dead letter when `next` is `None`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn mark_failed(
    conn: &mut AsyncPgConnection,
    seq: i64,
    error: &str,
    next: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    let error: String = error.chars().take(500).collect();
    match next {
        Some(at) => {
            diesel::update(hotline_outbox::table.find(seq))
                .set((
                    hotline_outbox::attempts.eq(hotline_outbox::attempts + 1),
                    hotline_outbox::next_attempt_at.eq(at),
                    hotline_outbox::last_error.eq(error),
                ))
                .execute(conn)
                .await
        }
        None => {
            diesel::update(hotline_outbox::table.find(seq))
                .set((
                    hotline_outbox::state.eq("DEAD"),
                    hotline_outbox::attempts.eq(hotline_outbox::attempts + 1),
                    hotline_outbox::last_error.eq(error),
                ))
                .execute(conn)
                .await
        }
    }
    .map(|_| ())
}

/// Outbox rows in `state` (all states when `None`), oldest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn outbox(
    conn: &mut AsyncPgConnection,
    state: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let mut q = hotline_outbox::table
        .order(hotline_outbox::seq)
        .limit(limit)
        .select(OutboxRow::as_select())
        .into_boxed();
    if let Some(s) = state {
        q = q.filter(hotline_outbox::state.eq(s.to_owned()));
    }
    q.load(conn).await
}

/// Puts dead letters (all, or those with these update ids) back in the queue with a fresh
/// attempt count; returns how many.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn requeue(
    conn: &mut AsyncPgConnection,
    ids: Option<&[Uuid]>,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let mut q = diesel::update(hotline_outbox::table)
        .filter(hotline_outbox::state.eq("DEAD"))
        .into_boxed();
    if let Some(ids) = ids {
        q = q.filter(hotline_outbox::update_id.eq_any(ids.to_vec()));
    }
    q.set((
        hotline_outbox::state.eq("PENDING"),
        hotline_outbox::attempts.eq(0),
        hotline_outbox::next_attempt_at.eq(now),
    ))
    .execute(conn)
    .await
}

/// Figures of one unit (see `ServiceUnitFigures`).
#[derive(Debug, Clone, QueryableByName, PartialEq, Eq)]
pub struct UnitFigures {
    #[diesel(sql_type = Text)]
    pub unit: String,
    #[diesel(sql_type = Integer)]
    pub assigned: i32,
    #[diesel(sql_type = Integer)]
    pub replied: i32,
    #[diesel(sql_type = Integer)]
    pub replied_on_time: i32,
    #[diesel(sql_type = Integer)]
    pub satisfied: i32,
    #[diesel(sql_type = Integer)]
    pub dissatisfied: i32,
    #[diesel(sql_type = Integer)]
    pub reopened: i32,
    #[diesel(sql_type = Integer)]
    pub overdue: i32,
}

/// Figures per handling unit of the requests accepted in `[from, to)` within `prefix`.
/// Replies are those the unit made, each counted (also one a 不满意 reopened later), on time
/// against the deadline in force then; every 不满意 counts against the request's unit.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn unit_figures(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<UnitFigures>> {
    let prefix = scope.prefix();
    diesel::sql_query(
        "WITH r AS (
             SELECT * FROM service_requests
              WHERE region_code LIKE $1 AND accepted_at >= $2 AND accepted_at < $3),
         units AS (
             SELECT assignee AS unit,
                    count(*)::int4 AS assigned,
                    count(*) FILTER (WHERE satisfaction IN ('SATISFIED', 'BASICALLY_SATISFIED'))::int4 AS satisfied,
                    COALESCE(sum(dissatisfied_count), 0)::int4 AS dissatisfied,
                    count(*) FILTER (WHERE reopen_count > 0)::int4 AS reopened,
                    count(*) FILTER (WHERE status IN ('ACCEPTED', 'ASSIGNED', 'SIGNED') AND deadline < $4)::int4 AS overdue
               FROM r WHERE assignee <> '' GROUP BY assignee),
         replies AS (
             SELECT p.unit, count(*)::int4 AS replied, count(*) FILTER (WHERE p.on_time)::int4 AS replied_on_time
               FROM service_request_replies p JOIN r USING (sr_id)
              WHERE p.unit <> '' GROUP BY p.unit)
         SELECT COALESCE(u.unit, p.unit) AS unit,
                COALESCE(u.assigned, 0) AS assigned,
                COALESCE(p.replied, 0) AS replied,
                COALESCE(p.replied_on_time, 0) AS replied_on_time,
                COALESCE(u.satisfied, 0) AS satisfied,
                COALESCE(u.dissatisfied, 0) AS dissatisfied,
                COALESCE(u.reopened, 0) AS reopened,
                COALESCE(u.overdue, 0) AS overdue
           FROM units u FULL JOIN replies p ON p.unit = u.unit
          ORDER BY 1",
    )
    .bind::<Text, _>(format!("{prefix}%"))
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Timestamptz, _>(now)
    .load(conn)
    .await
}

/// Totals of the requests accepted in `[from, to)` within `prefix`.
#[derive(Debug, Clone, QueryableByName, PartialEq)]
pub struct Totals {
    #[diesel(sql_type = Integer)]
    pub total: i32,
    #[diesel(sql_type = Integer)]
    pub from_hotline: i32,
    #[diesel(sql_type = Integer)]
    pub replied: i32,
    #[diesel(sql_type = Integer)]
    pub replied_on_time: i32,
    #[diesel(sql_type = Integer)]
    pub callbacks: i32,
    #[diesel(sql_type = Integer)]
    pub satisfied: i32,
}

/// See [`Totals`]. Replies count as in [`unit_figures`]: every reply made. Callbacks count every recorded result: the latest one per request plus
/// each earlier 不满意.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn totals(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<Totals> {
    let prefix = scope.prefix();
    diesel::sql_query(
        "WITH r AS (
             SELECT * FROM service_requests
              WHERE region_code LIKE $1 AND accepted_at >= $2 AND accepted_at < $3),
         p AS (
             SELECT count(*)::int4 AS replied, count(*) FILTER (WHERE on_time)::int4 AS replied_on_time
               FROM service_request_replies JOIN r USING (sr_id))
         SELECT count(*)::int4 AS total,
                count(*) FILTER (WHERE hotline_order_no IS NOT NULL)::int4 AS from_hotline,
                (SELECT replied FROM p) AS replied,
                (SELECT replied_on_time FROM p) AS replied_on_time,
                (count(*) FILTER (WHERE satisfaction IN ('SATISFIED', 'BASICALLY_SATISFIED'))
                  + COALESCE(sum(dissatisfied_count), 0))::int4 AS callbacks,
                count(*) FILTER (WHERE satisfaction IN ('SATISFIED', 'BASICALLY_SATISFIED'))::int4 AS satisfied
           FROM r",
    )
    .bind::<Text, _>(format!("{prefix}%"))
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .get_result(conn)
    .await
}

crate::prepared!(struct RecordReply = "INSERT INTO service_request_replies (sr_id, replied_at, unit, on_time) SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM service_requests WHERE sr_id = $1 AND replied_at IS NOT DISTINCT FROM $2)" { b1: B1 => diesel::sql_types::Uuid, b2: B2 => Timestamptz, b3: B3 => Text, b4: B4 => diesel::sql_types::Bool });

/// The statuses in which a request can be overdue: the open ones (`Status::is_open`).
fn open_statuses() -> Vec<&'static str> {
    crate::domain::request::Status::ALL
        .into_iter()
        .filter(|s| s.is_open())
        .map(|s| s.as_str())
        .collect()
}
