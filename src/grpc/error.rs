//! The one exhaustive mapping of [`ApiError`] to `tonic::Status` (api.md "Errors"). Internal
//! details are logged with an incident id; only the id reaches the client.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::app::error::ApiError;
#[cfg(test)]
use crate::domain::Violation;

/// Most violations listed in one response.
const MAX_VIOLATIONS: usize = 100;
/// Most violations named in the status message.
const MESSAGE_VIOLATIONS: usize = 3;

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                let n = violations.len();
                // The first violations in the message too, for clients that show no details.
                let named: Vec<String> = violations
                    .iter()
                    .take(MESSAGE_VIOLATIONS)
                    .map(|v| {
                        if v.field.is_empty() {
                            v.description.clone()
                        } else {
                            format!("{}: {}", v.field, v.description)
                        }
                    })
                    .collect();
                let more = if n > MESSAGE_VIOLATIONS {
                    format!("; and {} more", n - MESSAGE_VIOLATIONS)
                } else {
                    String::new()
                };
                for v in violations.into_iter().take(MAX_VIOLATIONS) {
                    details.add_bad_request_violation(v.field, v.description);
                }
                let msg = format!(
                    "invalid argument: {}{more} (nothing was written)",
                    named.join("; ")
                );
                Status::with_error_details(Code::InvalidArgument, msg, details)
            }
            ApiError::Unauthenticated(m) => Status::unauthenticated(m),
            ApiError::PermissionDenied(m) => Status::permission_denied(m),
            ApiError::NotFound(m) => Status::not_found(m),
            ApiError::AlreadyExists(m) => Status::already_exists(m),
            ApiError::FailedPrecondition(m) => Status::failed_precondition(m),
            ApiError::Aborted(m) => Status::aborted(m),
            ApiError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                Status::unavailable("database unavailable; retry later")
            }
            ApiError::Internal(detail) => {
                let incident = uuid::Uuid::new_v4();
                tracing::error!(%incident, error = %detail, "internal error");
                Status::internal(format!("internal error (incident {incident})"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations() {
        let s: Status =
            ApiError::InvalidArgument(vec![Violation::new("worker.phone", "bad")]).into();
        assert_eq!(s.code(), Code::InvalidArgument);
        let br = s.get_details_bad_request().unwrap();
        assert_eq!(br.field_violations[0].field, "worker.phone");
        assert_eq!(
            s.message(),
            "invalid argument: worker.phone: bad (nothing was written)"
        );
        let many: Status = ApiError::InvalidArgument(
            (0..5)
                .map(|i| Violation::new(format!("f{i}"), "bad"))
                .collect(),
        )
        .into();
        assert_eq!(
            many.message(),
            "invalid argument: f0: bad; f1: bad; f2: bad; and 2 more (nothing was written)"
        );
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let s: Status =
            ApiError::Internal("relation \"regions\" does not exist SELECT * FROM".into()).into();
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("SELECT"));
        assert!(!s.message().contains("regions"));
    }
}
