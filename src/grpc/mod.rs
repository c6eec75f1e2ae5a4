//! The gRPC surface: one file per service, the proto ↔ domain conversions, the error mapping,
//! the middleware every request passes through, and the shared mutation machinery
//! (idempotency + audit) every mutating RPC runs in.

pub mod audit_service;
pub mod case_service;
pub mod convert;
pub mod error;
pub mod middleware;
pub mod mutation;
pub mod pagination;
pub mod region_service;
pub mod report_service;

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
