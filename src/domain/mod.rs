//! Pure types and rules of the one net. No I/O: everything here is unit-tested without a
//! database.

pub mod calendar;
pub mod catalog;
pub mod figures;
pub mod geojson;
pub mod geometry;
pub mod ids;
pub mod mediation;
pub mod merge;
pub mod payloads;
pub mod pii;
pub mod principal;
pub mod region;
pub mod report;
pub mod request;
pub mod workflow;

/// One problem with one input field, reported to the client as a
/// `google.rpc.BadRequest.FieldViolation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the offending field, e.g. `worker.phone` or `features[3].geometry`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}
