//! What the report intake's callers share: who submits, how long a resend is remembered, and
//! a per-report refusal as an error.

use std::sync::Arc;

use super::Context;
use super::error::ApiError;
use crate::domain::principal::Principal;
use crate::store::audit::Actor;
use crate::store::reports::{ItemError, Submitter};

/// The submitter of reports sent by `p`: its scope, and its identity for the audit trail.
pub fn submitter(p: &Principal) -> Arc<Submitter> {
    Arc::new(Submitter {
        scope: p.scope.clone(),
        actor: Actor {
            sub: p.sub.clone(),
            roles: p.role_names(),
            request_id: String::new(),
        },
    })
}

/// How long a resend gets the first answer, for the intake.
pub fn retention(ctx: &Context) -> chrono::Duration {
    chrono::Duration::from_std(ctx.idempotency_retention).unwrap_or(chrono::Duration::days(30))
}

/// A report the intake refused, as an error.
pub fn item_error(e: ItemError) -> ApiError {
    match e {
        ItemError::Invalid(v) => ApiError::InvalidArgument(v),
        ItemError::Denied(m) => ApiError::PermissionDenied(m),
        ItemError::Conflict(m) => ApiError::AlreadyExists(m),
    }
}
