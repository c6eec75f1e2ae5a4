//! The gRPC surface, transport only: one file per service (each RPC converts the request into
//! a use case's input, makes one `app` call and converts the answer back), the proto ↔ domain
//! conversions, the error → status mapping, the edge check, the middleware every request
//! passes through, pagination tokens and the live feed's streams.

pub mod audit_service;
pub mod case_service;
pub mod catalog_service;
pub mod console;
pub mod convert;
pub mod edge;
pub mod error;
pub mod feed;
pub mod hotline_service;
pub mod mediation_service;
pub mod middleware;
pub mod pagination;
pub mod region_service;
pub mod report_service;
pub mod service_request_service;
pub mod session_service;

use std::sync::Arc;

use tonic::Request;

use crate::app::error::ApiError;
pub use crate::app::requested_scope;
use crate::crypto::PageTokens;
use crate::domain::principal::Principal;

/// Generated messages and service stubs of `gridhub.v1`.
#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used, missing_docs)]
pub mod pb {
    tonic::include_proto!("gridhub.v1");
}

/// The compiled contract, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gridhub_descriptor.bin"));

/// What every handler needs: the use cases' context and what only the transport uses.
#[derive(Clone)]
pub struct AppState {
    pub app: crate::app::Context,
    /// Page tokens, sealed with the server's key.
    pub pages: PageTokens,
    /// The live feed of this server.
    pub feed: feed::Feed,
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

/// The period a figures request covers: `[from, to)` as given, from the beginning and up to
/// tomorrow when left open; INVALID_ARGUMENT when it is empty.
pub fn figures_period(
    from: Option<&prost_types::Timestamp>,
    to: Option<&prost_types::Timestamp>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>), ApiError> {
    let (from, to) = time_range(from, to)?;
    let from = from.unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    let to = to.unwrap_or(now + chrono::Duration::days(1));
    if from >= to {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    Ok((from, to))
}

/// Bytes a streamed file (an attachment, an export) is sent in at most.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A server stream of a file's bytes, in order.
pub type Chunks<T> = futures::stream::Iter<std::vec::IntoIter<Result<T, tonic::Status>>>;

/// `bytes` as a [`Chunks`] stream of at most [`CHUNK_BYTES`] each, every message made by
/// `chunk` from its index and its bytes.
pub fn chunks<T>(bytes: &[u8], chunk: impl Fn(usize, &[u8]) -> T) -> Chunks<T> {
    let items: Vec<_> = bytes
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(i, c)| Ok(chunk(i, c)))
        .collect();
    futures::stream::iter(items)
}

/// A required UUID field, as the id type the caller names (or a bare `Uuid`).
pub fn uuid_field<T: From<uuid::Uuid>>(raw: &str, field: &str) -> Result<T, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(T::from)
        .map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

/// An optional UUID field (empty means absent).
pub fn optional_uuid<T: From<uuid::Uuid>>(raw: &str, field: &str) -> Result<Option<T>, ApiError> {
    if raw.is_empty() {
        Ok(None)
    } else {
        uuid_field(raw, field).map(Some)
    }
}
