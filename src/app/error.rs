//! What a use case answers when it does not succeed. Transport-neutral: `grpc::error` maps
//! each variant to one `tonic::Status` (api.md "Errors"), background jobs log it.

use crate::domain::Violation;
use crate::domain::workflow::Refusal;
use crate::store::StoreError;

/// Errors a use case (and so an RPC) can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid argument")]
    InvalidArgument(Vec<Violation>),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Aborted(String),
    /// The database is unreachable or saturated; the detail is logged, not sent.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected database error; the detail is logged, not sent.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    /// One violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> ApiError {
        ApiError::InvalidArgument(vec![Violation::new(field, description)])
    }
}

/// A workflow refusal (cases, service requests, mediation) as an API error; `noun` names what
/// was refused ("case", "request", "mediation case") in FAILED_PRECONDITION messages.
pub fn refusal(r: Refusal, noun: &str) -> ApiError {
    match r {
        Refusal::State {
            status,
            action,
            allowed,
        } => ApiError::FailedPrecondition(format!(
            "{noun} is {status}; {action} applies to {allowed}"
        )),
        Refusal::Condition { status, reason } => {
            ApiError::FailedPrecondition(format!("{noun} is {status}: {reason}"))
        }
        Refusal::Calendar => ApiError::FailedPrecondition(r.to_string()),
        Refusal::Role { .. } => ApiError::PermissionDenied(r.to_string()),
        Refusal::Argument { field, description } => ApiError::invalid(field, description),
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        refusal(r, "case")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match e {
            StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
            StoreError::Query(E::DatabaseError(K::SerializationFailure, _)) => {
                ApiError::Aborted("concurrent update; retry the request".into())
            }
            StoreError::Query(other) => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        StoreError::from(e).into()
    }
}
