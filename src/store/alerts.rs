//! Early warnings (`alerts`). Raising is idempotent on `dedup_key`: a detector that runs twice,
//! or on two replicas, raises one alert.

use crate::domain::principal::Scope;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::ids::CaseId;
use crate::domain::region::RegionCode;

use super::schema::alerts;

/// A stored alert.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = alerts, check_for_backend(diesel::pg::Pg))]
pub struct Alert {
    pub alert_id: Uuid,
    pub kind: String,
    pub region_code: RegionCode,
    pub category: String,
    pub case_id: Option<CaseId>,
    /// What it is about, already masked.
    pub subject: String,
    pub detail: serde_json::Value,
    pub dedup_key: String,
    pub raised_at: DateTime<Utc>,
}

/// Alert kinds.
pub mod kind {
    pub const SPIKE: &str = "SPIKE";
    pub const REPEAT_CALLER: &str = "REPEAT_CALLER";
    pub const OVERDUE_ESCALATION: &str = "OVERDUE_ESCALATION";
    /// One person (by ID number, else phone) in ≥ 3 disputes within 12 months.
    pub const REPEAT_DISPUTE: &str = "REPEAT_DISPUTE";
}

/// Stores `a` unless an alert with its `dedup_key` exists; returns it when new.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn raise(conn: &mut AsyncPgConnection, a: &Alert) -> QueryResult<Option<Alert>> {
    diesel::insert_into(alerts::table)
        .values(a)
        .on_conflict(alerts::dedup_key)
        .do_nothing()
        .returning(Alert::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Alerts within `prefix` before `before` (ids are time-ordered), newest first.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn list(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    kind: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Alert>> {
    let prefix = scope.prefix();
    let mut q = alerts::table
        .filter(alerts::region_code.like(format!("{prefix}%")))
        .order(alerts::alert_id.desc())
        .limit(limit)
        .select(Alert::as_select())
        .into_boxed();
    if let Some(k) = kind {
        q = q.filter(alerts::kind.eq(k.to_owned()));
    }
    if let Some(b) = before {
        q = q.filter(alerts::alert_id.lt(b));
    }
    q.load(conn).await
}
