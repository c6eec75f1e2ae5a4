//! The gRPC surface: one file per service, the proto ↔ domain conversions, the error mapping,
//! the middleware every request passes through, and the shared mutation machinery
//! (idempotency + audit) every mutating RPC runs in.

pub mod audit_service;
pub mod case_service;
pub mod catalog_service;
pub mod convert;
pub mod edge;
pub mod error;
pub mod feed;
pub mod hotline_service;
pub mod mediation_service;
pub mod middleware;
pub mod mutation;
pub mod pagination;
pub mod region_service;
pub mod report_service;
pub mod service_request_service;

use std::sync::Arc;

use tonic::Request;

use crate::attachments::BlobStore;
use crate::crypto::{PageTokens, PiiCipher};
use crate::domain::principal::Principal;
use crate::store::Pool;
use error::ApiError;

/// Generated messages and service stubs of `gridhub.v1`.
#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used, missing_docs)]
pub mod pb {
    tonic::include_proto!("gridhub.v1");
}

/// The compiled contract, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gridhub_descriptor.bin"));

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub pii: PiiCipher,
    pub pages: PageTokens,
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
    /// The live feed of this server.
    pub feed: feed::Feed,
    /// Checkpoints of the audit chain's head, outside the database.
    pub anchor: Arc<crate::anchor::Anchor>,
    /// Group commit of 12345 work orders.
    pub work_orders: crate::group::Group<pb::PushWorkOrderResult, hotline_service::GroupReads>,
}

/// Shared handle to the state.
pub type State = Arc<AppState>;

/// The authenticated caller, put there by the middleware.
pub fn principal<T>(req: &Request<T>) -> Result<Principal, ApiError> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("no authenticated principal".into()))
}

/// The region prefix a read may cover: the requested subtree (`raw`, may be empty for "all I
/// may see") inside the caller's scope; PERMISSION_DENIED when it reaches outside.
pub fn requested_prefix(p: &Principal, raw: &str) -> Result<String, ApiError> {
    let requested = if raw.is_empty() {
        None
    } else {
        Some(
            crate::domain::region::RegionCode::parse(raw)
                .map_err(|e| ApiError::invalid("region_code", e.to_string()))?,
        )
    };
    p.scope
        .narrow(requested.as_ref())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::PermissionDenied(format!("region {raw} is outside your region {}", p.scope))
        })
}

/// An optional `[start, end)` time range.
pub type TimeRange = (
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// The range given by `start_time` and `end_time`.
pub fn time_range(
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
) -> Result<TimeRange, ApiError> {
    let one = |t: Option<&prost_types::Timestamp>, field: &str| {
        t.map(|t| {
            convert::from_timestamp(t).ok_or_else(|| ApiError::invalid(field, "out of range"))
        })
        .transpose()
    };
    Ok((one(start, "start_time")?, one(end, "end_time")?))
}

/// A required UUID field.
pub fn uuid_field(raw: &str, field: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

/// An optional UUID field (empty means absent).
pub fn optional_uuid(raw: &str, field: &str) -> Result<Option<uuid::Uuid>, ApiError> {
    if raw.is_empty() {
        Ok(None)
    } else {
        uuid_field(raw, field).map(Some)
    }
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
    if region_code.starts_with(&region) || region.starts_with(town) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "assignee",
            format!("{unit} belongs to {region}, outside the town {town}"),
        ))
    }
}
