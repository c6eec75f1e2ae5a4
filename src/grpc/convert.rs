//! Conversions between stored rows / domain types and proto messages. Personal data is opened
//! and masked (unless the caller holds `pii_reader`) by `app::pii`, the one boundary.

use chrono::{DateTime, TimeZone, Utc};

use super::pb;
use crate::app::pii::{self, Sight};
use crate::crypto::PiiCipher;

use crate::domain::ids::{CaseId, ReportId};
use crate::domain::pii::{Person, Phone, Sealed};
use crate::domain::principal::Principal;
use crate::domain::region::RegionLevel;
use crate::store;

/// A timestamp for the wire.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// A wire timestamp as UTC; `None` if out of range.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    Utc.timestamp_opt(t.seconds, t.nanos as u32).single()
}

/// Domain level → proto enum.
pub fn level_to_pb(l: RegionLevel) -> pb::RegionLevel {
    match l {
        RegionLevel::Province => pb::RegionLevel::Province,
        RegionLevel::City => pb::RegionLevel::City,
        RegionLevel::County => pb::RegionLevel::County,
        RegionLevel::Town => pb::RegionLevel::Town,
        RegionLevel::Village => pb::RegionLevel::Village,
        RegionLevel::Grid => pb::RegionLevel::Grid,
        RegionLevel::MicroGrid => pb::RegionLevel::MicroGrid,
    }
}

/// Proto enum value → domain level; `None` for unspecified or unknown values.
pub fn level_from_pb(v: i32) -> Option<RegionLevel> {
    match pb::RegionLevel::try_from(v).ok()? {
        pb::RegionLevel::Unspecified => None,
        pb::RegionLevel::Province => Some(RegionLevel::Province),
        pb::RegionLevel::City => Some(RegionLevel::City),
        pb::RegionLevel::County => Some(RegionLevel::County),
        pb::RegionLevel::Town => Some(RegionLevel::Town),
        pb::RegionLevel::Village => Some(RegionLevel::Village),
        pb::RegionLevel::Grid => Some(RegionLevel::Grid),
        pb::RegionLevel::MicroGrid => Some(RegionLevel::MicroGrid),
    }
}

/// A stored region (and optional boundary) on the wire.
pub fn region(r: store::regions::Region, boundary_geojson: Option<String>) -> pb::Region {
    let store::regions::Region {
        code,
        name,
        level,
        parent_code,
        fallback_owner,
        created_at,
        updated_at,
    } = r;
    pb::Region {
        code,
        name,
        level: RegionLevel::from_i16(level)
            .map(level_to_pb)
            .unwrap_or(pb::RegionLevel::Unspecified) as i32,
        parent_code: parent_code.unwrap_or_default(),
        boundary_geojson,
        fallback_owner,
        created_at: Some(timestamp(created_at)),
        updated_at: Some(timestamp(updated_at)),
    }
}

/// Opens a stored phone of `column` and shows it whole or masked depending on the caller.
pub fn phone(
    cipher: &PiiCipher,
    sealed: Option<&Sealed<Phone>>,
    column: &'static str,
    viewer: &Principal,
) -> String {
    pii::show(cipher, sealed, column, Sight::of(viewer))
}

/// A stored worker on the wire, phone masked for the viewer.
pub fn worker(w: store::workers::Worker, cipher: &PiiCipher, viewer: &Principal) -> pb::Worker {
    let store::workers::Worker {
        worker_id,
        name,
        phone_enc,
        phone_index: _,
        region_code,
        grid_codes,
        active,
        created_at: _,
        updated_at,
    } = w;
    pb::Worker {
        phone: phone(cipher, phone_enc.as_ref(), "workers.phone_enc", viewer),
        worker_id,
        name,
        region_code,
        grid_codes: grid_codes.into_iter().flatten().collect(),
        active,
        updated_at: Some(timestamp(updated_at)),
    }
}

/// A stored department on the wire.
pub fn department(d: store::departments::Department) -> pb::Department {
    let store::departments::Department {
        code,
        name,
        region_code,
        kind,
        active,
        created_at: _,
        updated_at,
    } = d;
    pb::Department {
        code,
        name,
        region_code,
        kind,
        active,
        updated_at: Some(timestamp(updated_at)),
    }
}

/// A stored audit event on the wire.
pub fn audit_event(e: store::audit::Event) -> pb::AuditEvent {
    let store::audit::Event {
        seq,
        occurred_at,
        actor,
        actor_roles,
        action,
        entity_type,
        entity_id,
        region_code,
        before,
        after,
        outcome,
        request_id,
        prev_hash: _,
        hash,
    } = e;
    pb::AuditEvent {
        seq,
        occurred_at: Some(timestamp(occurred_at)),
        actor,
        actor_roles: actor_roles.into_iter().flatten().collect(),
        action,
        entity_type,
        entity_id,
        region_code,
        before_json: before.map(|v| v.to_string()).unwrap_or_default(),
        after_json: after.map(|v| v.to_string()).unwrap_or_default(),
        outcome,
        request_id,
        hash: hex::encode(hash),
    }
}

/// A stored report on the wire.
pub fn report(r: store::reports::Report, cipher: &PiiCipher, viewer: &Principal) -> pb::Report {
    let store::reports::Report {
        report_id,
        client_report_id,
        payload_hash: _,
        source,
        source_system,
        category_code,
        unified_category,
        title,
        description,
        lat,
        lng,
        claimed_grid_code,
        resolved_grid_code,
        region_code,
        owner,
        occurred_at,
        received_at,
        reporter_id,
        submitted_by: _,
        attachments,
        case_id,
        flags,
        first_outcome: _,
        first_case_id: _,
        merge_reason,
        reporter_phone_enc,
        reporter_phone_index: _,
    } = r;
    pb::Report {
        client_report_id: client_report_id.to_string(),
        source: source as i32,
        source_system,
        category_code,
        title,
        description,
        location: Some(pb::LatLng { lat, lng }),
        grid_code: claimed_grid_code,
        occurred_at: Some(timestamp(occurred_at)),
        reporter_id,
        attachments: attachments.into_iter().flatten().collect(),
        report_id: report_id.to_string(),
        received_at: Some(timestamp(received_at)),
        resolved_grid_code,
        unified_category,
        case_id: case_id.to_string(),
        flags: flags.into_iter().flatten().collect(),
        region_code: region_code.into(),
        owner,
        merge_reason_json: merge_reason.to_string(),
        reporter_phone: phone(
            cipher,
            reporter_phone_enc.as_ref(),
            "reports.reporter_phone_enc",
            viewer,
        ),
    }
}

/// A stored case (with its reports) on the wire.
pub fn case(c: store::cases::Case, reports: Vec<(ReportId, serde_json::Value)>) -> pb::Case {
    let store::cases::Case {
        case_id,
        case_no,
        status,
        unified_category,
        grid_code,
        region_code,
        owner,
        lat,
        lng,
        first_reported_at,
        last_reported_at,
        report_count: _,
        flags,
        merged_into,
        version,
        created_at: _,
        updated_at,
        assignee,
        registered_at,
        dispatched_at,
        signed_at,
        handled_at,
        closed_at,
        sign_deadline,
        deadline,
        urge_at: _,
        escalate_at: _,
        extension_days,
        urge_count,
    } = c;
    let (report_ids, merge_reasons_json) = reports
        .into_iter()
        .map(|(id, why)| (id.to_string(), why.to_string()))
        .unzip();
    pb::Case {
        case_id: case_id.to_string(),
        case_no,
        status,
        unified_category,
        grid_code,
        region_code: region_code.into(),
        location: Some(pb::LatLng { lat, lng }),
        report_ids,
        assignee: if assignee.is_empty() {
            owner.clone()
        } else {
            assignee
        },
        owner,
        flags: flags.into_iter().flatten().collect(),
        version,
        merged_into: merged_into.map(|m| m.to_string()).unwrap_or_default(),
        first_reported_at: Some(timestamp(first_reported_at)),
        last_reported_at: Some(timestamp(last_reported_at)),
        merge_reasons_json,
        deadline: deadline.map(timestamp),
        sign_deadline: sign_deadline.map(timestamp),
        extension_requested_days: extension_days.unwrap_or(0),
        registered_at: registered_at.map(timestamp),
        dispatched_at: dispatched_at.map(timestamp),
        signed_at: signed_at.map(timestamp),
        handled_at: handled_at.map(timestamp),
        closed_at: closed_at.map(timestamp),
        urge_count,
        updated_at: Some(timestamp(updated_at)),
        // The caller's next steps: GetCase fills them (they depend on who asks).
        available_actions: Vec::new(),
        working_days_left: 0,
    }
}

/// A stored alert on the wire (its subject is stored masked).
pub fn alert(a: store::alerts::Alert) -> pb::Alert {
    let store::alerts::Alert {
        alert_id,
        kind,
        region_code,
        category,
        case_id,
        subject,
        detail,
        dedup_key: _,
        raised_at,
    } = a;
    pb::Alert {
        alert_id: alert_id.to_string(),
        kind,
        region_code: region_code.into(),
        unified_category: category,
        case_id: case_id.map(|c| c.to_string()).unwrap_or_default(),
        subject,
        message: detail
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_owned(),
        detail_json: detail.to_string(),
        raised_at: Some(timestamp(raised_at)),
    }
}

fn duration(secs: f64) -> Option<prost_types::Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| prost_types::Duration {
        seconds: secs.trunc() as i64,
        nanos: (secs.fract() * 1e9) as i32,
    })
}

fn avg(total: f64, n: i64) -> f64 {
    if n > 0 { total / n as f64 } else { 0.0 }
}

fn rate(part: i64, whole: i64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

/// The Dashboard message from the breakdown rows.
pub fn dashboard(
    region_code: String,
    rows: Vec<store::stats::Figures>,
    as_of: chrono::DateTime<chrono::Utc>,
) -> pb::Dashboard {
    let total = rows
        .iter()
        .find(|r| r.set == store::stats::TOTAL)
        .cloned()
        .unwrap_or_default();
    let counts = |set: i32| {
        let mut v: Vec<pb::Count> = rows
            .iter()
            .filter(|r| r.set == set && r.cases != 0)
            .map(|r| pb::Count {
                key: r.key.clone(),
                count: r.cases,
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        v
    };
    let stage = |name: &str, n: i64, secs: f64| pb::StageTime {
        stage: name.to_owned(),
        cases: n,
        average: duration(avg(secs, n)),
    };
    let mut units: Vec<pb::UnitFigures> = rows
        .iter()
        .filter(|r| r.set == store::stats::BY_ASSIGNEE && !r.key.is_empty() && r.cases != 0)
        .map(|r| pb::UnitFigures {
            assignee: r.key.clone(),
            cases: r.cases,
            closed: r.closed,
            closed_on_time: r.closed_on_time,
            overdue: r.overdue,
            on_time_rate: rate(r.closed_on_time, r.closed),
            average_handling: duration(avg(r.handle_secs, r.handle_n)),
        })
        .collect();
    units.sort_by(|a, b| a.assignee.cmp(&b.assignee));
    pb::Dashboard {
        region_code,
        total: total.cases,
        by_status: counts(store::stats::BY_STATUS),
        by_category: counts(store::stats::BY_CATEGORY),
        by_grid: counts(store::stats::BY_REGION),
        overdue: total.overdue,
        closed: total.closed,
        closed_on_time: total.closed_on_time,
        on_time_rate: rate(total.closed_on_time, total.closed),
        stages: vec![
            stage("REGISTER", total.register_n, total.register_secs),
            stage("DISPATCH", total.dispatch_n, total.dispatch_secs),
            stage("SIGN", total.sign_n, total.sign_secs),
            stage("HANDLE", total.handle_n, total.handle_secs),
            stage("VERIFY", total.verify_n, total.verify_secs),
        ],
        units,
        as_of: Some(timestamp(as_of)),
    }
}

/// Stored catalog kind → proto.
pub fn catalog_kind_to_pb(s: &str) -> pb::CatalogKind {
    pb::CatalogKind::from_str_name(s).unwrap_or(pb::CatalogKind::Unspecified)
}

/// Stored delegation → proto.
pub fn delegation_to_pb(s: &str) -> pb::Delegation {
    pb::Delegation::from_str_name(s).unwrap_or(pb::Delegation::Unspecified)
}

/// A stored catalog item version on the wire.
pub fn catalog_item(i: store::catalog::CatalogItem) -> pb::CatalogItem {
    pb::CatalogItem {
        town_code: i.town_code.into(),
        code: i.code,
        version: i.version,
        name: i.name,
        kind: catalog_kind_to_pb(&i.kind) as i32,
        source_department: i.source_department,
        delegation: delegation_to_pb(&i.delegation) as i32,
        legal_basis: i.legal_basis,
        time_limit: i.time_limit_days.unwrap_or(0),
        effective_from: i.effective_from.to_string(),
        effective_to: i.effective_to.map(|d| d.to_string()).unwrap_or_default(),
        withdrawn: i.withdrawn,
        recorded_at: Some(timestamp(i.recorded_at)),
        recorded_by: i.recorded_by,
    }
}

/// Stored request kind ↔ proto.
pub fn request_kind_to_pb(s: &str) -> pb::RequestKind {
    use crate::domain::request::Kind;
    match Kind::parse(s) {
        Some(Kind::Enquiry) => pb::RequestKind::Enquiry,
        Some(Kind::Help) => pb::RequestKind::Help,
        Some(Kind::Complaint) => pb::RequestKind::Complaint,
        Some(Kind::Suggestion) => pb::RequestKind::Suggestion,
        Some(Kind::TipOff) => pb::RequestKind::TipOff,
        Some(Kind::Service) => pb::RequestKind::Service,
        None => pb::RequestKind::Unspecified,
    }
}

/// Proto request kind → domain (`None` when unset or unknown).
pub fn request_kind_from_pb(v: i32) -> Option<crate::domain::request::Kind> {
    use crate::domain::request::Kind;
    Some(match pb::RequestKind::try_from(v).ok()? {
        pb::RequestKind::Unspecified => return None,
        pb::RequestKind::Enquiry => Kind::Enquiry,
        pb::RequestKind::Help => Kind::Help,
        pb::RequestKind::Complaint => Kind::Complaint,
        pb::RequestKind::Suggestion => Kind::Suggestion,
        pb::RequestKind::TipOff => Kind::TipOff,
        pb::RequestKind::Service => Kind::Service,
    })
}

/// Proto urgency → domain (unset: 一般; `None` when unknown).
pub fn urgency_from_pb(v: i32) -> Option<crate::domain::request::Urgency> {
    use crate::domain::request::Urgency;
    Some(match pb::Urgency::try_from(v).ok()? {
        pb::Urgency::Unspecified | pb::Urgency::Normal => Urgency::Normal,
        pb::Urgency::Urgent => Urgency::Urgent,
        pb::Urgency::Critical => Urgency::Critical,
    })
}

/// Stored status ↔ proto.
pub fn request_status_to_pb(s: &str) -> pb::ServiceRequestStatus {
    use crate::domain::request::Status;
    match Status::parse(s) {
        Some(Status::Accepted) => pb::ServiceRequestStatus::Accepted,
        Some(Status::Assigned) => pb::ServiceRequestStatus::Assigned,
        Some(Status::Signed) => pb::ServiceRequestStatus::SignedFor,
        Some(Status::Replied) => pb::ServiceRequestStatus::Replied,
        Some(Status::Visited) => pb::ServiceRequestStatus::Visited,
        Some(Status::Archived) => pb::ServiceRequestStatus::Archived,
        None => pb::ServiceRequestStatus::Unspecified,
    }
}

/// Proto status → stored spelling.
pub fn request_status_from_pb(v: i32) -> Option<&'static str> {
    use crate::domain::request::Status;
    Some(
        match pb::ServiceRequestStatus::try_from(v).ok()? {
            pb::ServiceRequestStatus::Unspecified => return None,
            pb::ServiceRequestStatus::Accepted => Status::Accepted,
            pb::ServiceRequestStatus::Assigned => Status::Assigned,
            pb::ServiceRequestStatus::SignedFor => Status::Signed,
            pb::ServiceRequestStatus::Replied => Status::Replied,
            pb::ServiceRequestStatus::Visited => Status::Visited,
            pb::ServiceRequestStatus::Archived => Status::Archived,
        }
        .as_str(),
    )
}

/// Decrypts a stored person; shown whole to `pii_reader`, masked to everyone else.
pub fn person(cipher: &PiiCipher, sealed: &Sealed<Person>, viewer: &Principal) -> pb::Applicant {
    match pii::person(
        cipher,
        sealed,
        "service_requests.applicant_enc",
        Sight::of(viewer),
    ) {
        Some(p) => pb::Applicant {
            name: p.name,
            phone: p.phone,
            id_number: p.id_number,
        },
        None => pb::Applicant {
            name: pii::UNREADABLE.into(),
            phone: pii::UNREADABLE.into(),
            id_number: String::new(),
        },
    }
}

/// A request as a use case returned it (with its work order and case), as `viewer` may see it.
pub fn request_view(
    ctx: &crate::app::Context,
    v: crate::app::requests::RequestView,
    viewer: &Principal,
) -> pb::ServiceRequest {
    let now = ctx.workflow.clock.now();
    service_request(
        v.request,
        v.order.as_ref(),
        v.case_id,
        &ctx.pii,
        viewer,
        now,
    )
}

/// A stored request on the wire, applicant masked for the viewer; `OVERDUE` is added to the
/// flags of an open request past its deadline at `now`.
pub fn service_request(
    r: store::requests::ServiceRequest,
    order: Option<&store::requests::HotlineOrder>,
    case_id: Option<CaseId>,
    cipher: &PiiCipher,
    viewer: &Principal,
    now: DateTime<Utc>,
) -> pb::ServiceRequest {
    let open = crate::domain::request::Status::parse(&r.status).is_some_and(|s| s.is_open());
    let mut flags: Vec<String> = r.flags.iter().flatten().cloned().collect();
    if open && r.deadline.is_some_and(|d| d < now) {
        flags.push("OVERDUE".into());
    }
    let ts = |t: Option<DateTime<Utc>>| t.map(timestamp);
    pb::ServiceRequest {
        // The caller's steps and the order's updates: GetServiceRequest fills them.
        available_actions: Vec::new(),
        hotline_updates: Vec::new(),
        id: r.sr_id.to_string(),
        request_no: r.request_no,
        kind: request_kind_to_pb(&r.kind) as i32,
        urgency: match crate::domain::request::Urgency::parse(&r.urgency) {
            Some(crate::domain::request::Urgency::Urgent) => pb::Urgency::Urgent,
            Some(crate::domain::request::Urgency::Critical) => pb::Urgency::Critical,
            _ => pb::Urgency::Normal,
        } as i32,
        catalog_item_code: r.catalog_item_code,
        catalog_item_version: r.catalog_item_version.unwrap_or(0),
        applicant: Some(person(cipher, &r.applicant_enc, viewer)),
        content: r.content,
        region_code: r.region_code.into(),
        status: request_status_to_pb(&r.status) as i32,
        deadline: ts(r.deadline),
        hotline_order_no: r.hotline_order_no.unwrap_or_default(),
        hotline_version: order.map(|o| o.version).unwrap_or(0),
        assignee: r.assignee,
        on_behalf: r.on_behalf,
        filed_by: r.filed_by,
        reply: r.reply,
        satisfaction: match crate::domain::request::Satisfaction::parse(&r.satisfaction) {
            Some(crate::domain::request::Satisfaction::Satisfied) => pb::Satisfaction::Satisfied,
            Some(crate::domain::request::Satisfaction::Basic) => {
                pb::Satisfaction::BasicallySatisfied
            }
            Some(crate::domain::request::Satisfaction::Dissatisfied) => {
                pb::Satisfaction::Dissatisfied
            }
            None => pb::Satisfaction::Unspecified,
        } as i32,
        reopen_count: r.reopen_count,
        dissatisfied_count: r.dissatisfied_count,
        flags,
        extension_working_days: r.extension_days.unwrap_or(0),
        urge_count: r.urge_count,
        case_id: case_id.map(|c| c.to_string()).unwrap_or_default(),
        address: r.address,
        location: order.and_then(|o| {
            Some(pb::LatLng {
                lat: o.lat?,
                lng: o.lng?,
            })
        }),
        accepted_at: Some(timestamp(r.accepted_at)),
        assigned_at: ts(r.assigned_at),
        signed_at: ts(r.signed_at),
        replied_at: ts(r.replied_at),
        visited_at: ts(r.visited_at),
        archived_at: ts(r.archived_at),
        version: r.version,
    }
}

/// An outbox row as PullUpdates shows it.
pub fn hotline_update(row: &store::requests::OutboxRow) -> pb::HotlineUpdate {
    let p = crate::domain::payloads::HotlineUpdate::read(&row.payload).unwrap_or_default();
    let kind = match crate::domain::request::UpdateKind::parse(&p.kind) {
        Some(crate::domain::request::UpdateKind::Signed) => pb::UpdateKind::UpdateSigned,
        Some(crate::domain::request::UpdateKind::Replied) => pb::UpdateKind::UpdateReplied,
        Some(crate::domain::request::UpdateKind::Returned) => pb::UpdateKind::UpdateReturned,
        Some(crate::domain::request::UpdateKind::ExtensionRequested) => {
            pb::UpdateKind::UpdateExtensionRequested
        }
        None => pb::UpdateKind::Unspecified,
    };
    pb::HotlineUpdate {
        update_id: row.update_id.to_string(),
        order_no: row.order_no.clone(),
        order_version: p.order_version,
        kind: kind as i32,
        request_no: p.request_no,
        occurred_at: p.occurred_at.map(timestamp),
        text: p.text,
        unit: p.unit,
        extension_working_days: p.extension_working_days,
        cursor: row.seq.to_string(),
        // The push's progress is the hub's own business: a request's page shows it.
        delivery: String::new(),
        delivered_at: None,
        attempts: 0,
    }
}

/// An outbox row with its delivery, as a request's page shows it.
pub fn hotline_update_delivery(row: &store::requests::OutboxRow) -> pb::HotlineUpdate {
    pb::HotlineUpdate {
        delivery: row.state.clone(),
        delivered_at: row.delivered_at.map(timestamp),
        attempts: row.attempts,
        ..hotline_update(row)
    }
}

/// The one map of a region on the wire.
pub fn case_map(
    region: &str,
    grids: Vec<store::map::MapGrid>,
    cases: Vec<store::map::MapCase>,
    next_page_token: String,
) -> pb::CaseMap {
    pb::CaseMap {
        region_code: region.to_owned(),
        grids: grids
            .into_iter()
            .map(|g| pb::MapGrid {
                code: g.code,
                name: g.name,
                boundary_geojson: g.geojson,
                open_cases: g.open_cases,
                overdue_cases: g.overdue_cases,
                workers: g.workers,
            })
            .collect(),
        cases: cases
            .into_iter()
            .map(|c| pb::MapCase {
                case_id: c.case_id.to_string(),
                case_no: c.case_no,
                lat: c.lat,
                lng: c.lng,
                status: c.status,
                unified_category: c.unified_category,
                grid_code: c.grid_code,
                overdue: c.overdue,
                escalated: c.escalated,
            })
            .collect(),
        next_page_token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip() {
        for l in RegionLevel::ALL {
            assert_eq!(level_from_pb(level_to_pb(l) as i32), Some(l));
        }
        assert_eq!(level_from_pb(0), None);
        assert_eq!(level_from_pb(99), None);
    }

    #[test]
    fn timestamps_round_trip() {
        let t = Utc::now();
        assert_eq!(from_timestamp(&timestamp(t)), Some(t));
        assert_eq!(
            from_timestamp(&prost_types::Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
    }
}
