//! The use cases: one function per thing a caller (an RPC, a background job, a CLI tool) can
//! ask the hub to do. A use case authorizes (scope, role, unit, masking; the role table
//! itself is `auth::policy`), runs the domain rule, and calls the store, inside the one
//! mutation runner when it writes. It knows nothing of gRPC: `grpc/` converts the wire into
//! the inputs here and the outputs back, and maps [`error::ApiError`] to a status.
//!
//! - [`mutation`]: idempotency + audit + a cancellation-safe transaction, for every write;
//!   [`group`]: the same for many small writes committed together (12345's work orders).
//! - [`error`]: what a use case answers when it does not succeed.
//! - [`pii`]: the one boundary where personal data is opened and shown whole or masked.
//! - [`cases`], [`mediation`], [`requests`]: the use cases of the case workflow, of mediation
//!   of service requests (便民服务) and of 12345's work orders ([`hotline`]); [`reports`]: what
//!   the report intake's callers share.

pub mod cases;
pub mod catalog;
pub mod error;
pub mod export;
pub mod group;
pub mod hotline;
pub mod mediation;
pub mod mutation;
pub mod pii;
pub mod reads;
pub mod registry;
pub mod reports;
pub mod requests;

use std::sync::Arc;

use crate::attachments::BlobStore;
use crate::crypto::PiiCipher;
use crate::domain::principal::{Principal, Scope};
use crate::domain::region::RegionCode;
use crate::store::Pool;
use error::ApiError;

/// What the use cases run against: the database, the personal-data keys, the clocks and
/// limits, and the in-memory caches. One per server, cloned into every task.
#[derive(Clone)]
pub struct Context {
    pub pool: Pool,
    pub pii: PiiCipher,
    /// Where attachment bytes are kept.
    pub blobs: Arc<dyn BlobStore>,
    /// Largest attachment accepted.
    pub attachment_max_bytes: usize,
    /// How long a resend gets the first answer (reports, request_ids).
    pub idempotency_retention: std::time::Duration,
    /// Grid polygons in memory for the report intake.
    pub grids: Arc<crate::store::grid_index::GridCache>,
    /// Working time, time limits, the clock and the warning thresholds.
    pub workflow: crate::config::WorkflowSettings,
    /// Checkpoints of the audit chain's head, outside the database.
    pub anchor: Arc<crate::anchor::Anchor>,
    /// Group commit of 12345 work orders.
    pub work_orders: hotline::WorkOrders,
    /// Where reads that tolerate staleness run (a replica within its lag bound, or here).
    pub reads: reads::Reads,
}

impl Context {
    /// A connection for a read that tolerates staleness (the dashboard, statistics, exports,
    /// the map): on the read replica when it is within its lag bound, else on the primary.
    pub async fn stale_ok(&self) -> Result<crate::store::Conn, ApiError> {
        self.reads.stale_ok(&self.pool).await
    }
}

/// The region a read may cover: the requested subtree (`raw`, may be empty for "all I may
/// see") inside the caller's scope; PERMISSION_DENIED when it reaches outside.
pub fn requested_scope(p: &Principal, raw: &str) -> Result<Scope, ApiError> {
    let requested = if raw.is_empty() {
        None
    } else {
        Some(RegionCode::parse(raw).map_err(|e| ApiError::invalid("region_code", e.to_string()))?)
    };
    p.scope
        .within(requested.as_ref())
        .ok_or_else(|| outside_scope(p, "region", raw))
}

/// PERMISSION_DENIED unless `code` lies in the caller's region; `what` names the code in the
/// message (`region`, `town`, `records[3]: region` …).
pub fn ensure_in_scope(p: &Principal, what: &str, code: &str) -> Result<(), ApiError> {
    if p.scope.contains(code) {
        Ok(())
    } else {
        Err(outside_scope(p, what, code))
    }
}

/// The one wording of a request that reaches outside the caller's region.
pub fn outside_scope(p: &Principal, what: &str, code: &str) -> ApiError {
    ApiError::PermissionDenied(format!("{what} {code} is outside your region {}", p.scope))
}

/// Checks that `unit` (a department code or worker id) is active and belongs to the town of
/// `region_code` (or lies above the place), for dispatching cases and assigning requests.
pub async fn check_unit_in_town(
    conn: &mut diesel_async::AsyncPgConnection,
    unit: &str,
    region_code: &str,
) -> Result<(), ApiError> {
    let region = crate::store::departments::unit_region(conn, unit)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "assignee",
                format!("{unit} is not an active department or worker"),
            )
        })?;
    let town = crate::domain::report::town_of(region_code);
    if region_code.starts_with(region.as_str()) || region.starts_with(town) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "assignee",
            format!("{unit} belongs to {region}, outside the town {town}"),
        ))
    }
}

/// The working-day calendar, as stored, with the configured office hours.
pub async fn calendar(
    ctx: &Context,
    conn: &mut diesel_async::AsyncPgConnection,
) -> Result<crate::domain::calendar::Calendar, ApiError> {
    Ok(crate::domain::calendar::Calendar::new(
        crate::store::calendar::load(conn).await?,
        ctx.workflow.office_hours.clone(),
    ))
}
