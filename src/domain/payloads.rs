//! Audit payloads that are contracts: the `before`/`after` of the audit events that other
//! parts read back — the live feed and PullChanges (case changes, accepted and split reports)
//! and the 12345 outbox (updates, also read by a trigger and pushed as they are). Writers build
//! these types and readers parse them, so a field cannot be renamed on one side only. Every
//! field has a default: events recorded before a field existed still read. The JSON of each
//! type is what the audit chain hashes, so a field's name and meaning never change; a test
//! holds each to its JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::ids::CaseId;

/// Reads a payload; `None` when absent or not of this shape.
fn read<T: for<'de> Deserialize<'de>>(v: Option<&Value>) -> Option<T> {
    v.and_then(|v| T::deserialize(v).ok())
}

/// JSON of a payload (serializing these plain types cannot fail).
fn json<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// The `after` of a change of a case (`case.transition`, `case.merge`, `case.absorb`, the SLA
/// marks, a mediation's outcome): the case as it now is, and what happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaseChange {
    /// What happened: the action's name (REGISTER, DISPATCH …), MERGED, ABSORBED, OVERDUE,
    /// AUTO_URGE, ESCALATE, MEDIATION_SUCCEEDED …
    pub kind: String,
    pub case_no: String,
    pub status: String,
    pub version: i64,
    pub assignee: String,
    pub unified_category: String,
    pub flags: Vec<Option<String>>,
    pub deadline: Option<DateTime<Utc>>,
    pub comment: String,
    pub report_count: i32,
    pub merged_into: Option<CaseId>,
}

impl CaseChange {
    pub fn to_json(&self) -> Value {
        json(self)
    }
    pub fn read(v: Option<&Value>) -> Option<CaseChange> {
        read(v)
    }
}

/// The `before` of a change of a case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaseBefore {
    pub status: String,
    pub version: i64,
    pub assignee: String,
    pub flags: Vec<Option<String>>,
    pub deadline: Option<DateTime<Utc>>,
}

impl CaseBefore {
    pub fn to_json(&self) -> Value {
        json(self)
    }
    pub fn read(v: Option<&Value>) -> Option<CaseBefore> {
        read(v)
    }
}

/// The `after` of `report.accept`: a report taken into a case, new (CREATED) or not (MERGED).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportAccepted {
    pub client_report_id: Option<Uuid>,
    pub source: i16,
    pub category_code: String,
    pub unified_category: String,
    pub case_id: Option<CaseId>,
    pub case_no: String,
    /// CREATED or MERGED.
    pub outcome: String,
    pub flags: Vec<String>,
    /// Why it joined its case (the merge rule's decision).
    pub reason: Value,
}

impl ReportAccepted {
    pub fn to_json(&self) -> Value {
        json(self)
    }
    pub fn read(v: Option<&Value>) -> Option<ReportAccepted> {
        read(v)
    }
}

/// The `before` (the case it left) and `after` (the case it starts) of `report.split`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportSplit {
    pub case_id: Option<CaseId>,
    pub case_no: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unified_category: Option<String>,
}

impl ReportSplit {
    pub fn to_json(&self) -> Value {
        json(self)
    }
    pub fn read(v: Option<&Value>) -> Option<ReportSplit> {
        read(v)
    }
}

/// The `after` of `hotline.update`: what 12345 hears. The outbox trigger copies it into
/// `hotline_outbox` (reading `update_id` and `order_no`), PullUpdates shows it and the push
/// sends it as its body, as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HotlineUpdate {
    pub update_id: Option<Uuid>,
    pub order_no: String,
    pub order_version: i32,
    /// SIGNED, REPLIED, RETURNED or EXTENSION_REQUESTED.
    pub kind: String,
    pub request_no: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub text: String,
    pub unit: String,
    pub extension_working_days: i32,
}

impl HotlineUpdate {
    pub fn to_json(&self) -> Value {
        json(self)
    }
    pub fn read(v: &Value) -> Option<HotlineUpdate> {
        read(Some(v))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The JSON each type writes is the JSON the writers wrote before they were types (the
    /// chain hashes it; the outbox trigger and 12345 read it).
    #[test]
    fn payloads_keep_their_json() {
        let at: DateTime<Utc> = "2026-11-25T03:12:09.123456Z".parse().unwrap();
        let id = Uuid::nil();
        let c = CaseChange {
            kind: "DISPATCH".into(),
            case_no: "500110111-2026-000001".into(),
            status: "DISPATCHED".into(),
            version: 3,
            assignee: "500110111-ZFJ".into(),
            unified_category: "0202".into(),
            flags: vec![Some("URGED".into())],
            deadline: Some(at),
            comment: "c".into(),
            report_count: 2,
            merged_into: None,
        };
        assert_eq!(
            c.to_json(),
            json!({
                "kind": "DISPATCH", "case_no": "500110111-2026-000001", "status": "DISPATCHED",
                "version": 3, "assignee": "500110111-ZFJ", "unified_category": "0202",
                "flags": ["URGED"], "deadline": at, "comment": "c", "report_count": 2,
                "merged_into": null,
            })
        );
        assert_eq!(CaseChange::read(Some(&c.to_json())), Some(c));
        let u = HotlineUpdate {
            update_id: Some(id),
            order_no: "2026112500123".into(),
            order_version: 2,
            kind: "REPLIED".into(),
            request_no: "FW500110111-000042".into(),
            occurred_at: Some(at),
            text: "t".into(),
            unit: "u".into(),
            extension_working_days: 0,
        };
        assert_eq!(
            u.to_json(),
            json!({
                "update_id": id, "order_no": "2026112500123", "order_version": 2,
                "kind": "REPLIED", "request_no": "FW500110111-000042", "occurred_at": at,
                "text": "t", "unit": "u", "extension_working_days": 0,
            })
        );
        let split = ReportSplit {
            case_id: Some(id.into()),
            case_no: "n".into(),
            comment: None,
            unified_category: None,
        };
        assert_eq!(split.to_json(), json!({"case_id": id, "case_no": "n"}));
        // An old event without a field still reads.
        assert_eq!(
            CaseChange::read(Some(&json!({"kind": "OVERDUE"}))).map(|c| c.kind),
            Some("OVERDUE".to_owned())
        );
    }
}
