//! A validated report, ready to be located, owned and merged.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::region::RegionCode;

/// Flags a report may carry.
pub mod flags {
    /// The client's claimed grid is not where the location lies.
    pub const GRID_MISMATCH: &str = "GRID_MISMATCH";
    /// The location lies outside every grid; the smallest known region's fallback owner owns it.
    pub const OUTSIDE_GRID: &str = "OUTSIDE_GRID";
    /// The source's category code is not mapped onto the unified taxonomy; the case is in triage.
    pub const UNMAPPED_CATEGORY: &str = "UNMAPPED_CATEGORY";
    /// A case waiting for a person to classify it.
    pub const TRIAGE: &str = "TRIAGE";
}

/// Largest batch SyncReports accepts.
pub const MAX_BATCH: usize = 1000;
/// Most attachments per report.
pub const MAX_ATTACHMENTS: usize = 20;

/// A report whose fields are all valid.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInput {
    pub client_report_id: Uuid,
    pub source: i16,
    pub source_system: String,
    pub category_code: String,
    pub title: String,
    pub description: String,
    pub lat: f64,
    pub lng: f64,
    pub claimed_grid: Option<RegionCode>,
    pub occurred_at: DateTime<Utc>,
    pub reporter_id: String,
    pub attachments: Vec<String>,
    /// The reporter's or caller's phone, encrypted.
    pub reporter_phone: Option<super::pii::Indexed<super::pii::Phone>>,
    /// SHA-256 of the client-set fields: tells a resend from another report under the same id.
    pub payload_hash: Vec<u8>,
}

/// What happened to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created = 1,
    AlreadyReceived = 2,
    Merged = 3,
}

impl Outcome {
    /// From the stored number.
    pub fn from_i16(n: i16) -> Outcome {
        match n {
            1 => Outcome::Created,
            3 => Outcome::Merged,
            _ => Outcome::AlreadyReceived,
        }
    }
}

/// The town part of a region code (the whole code above town level), for case numbers.
pub fn town_of(region: &str) -> &str {
    if region.len() >= 9 {
        &region[..9]
    } else {
        region
    }
}

/// A case number: town, year, serial, e.g. `500110111-2026-000042`. Serials come from one
/// sequence: unique and increasing, not dense per town.
pub fn case_no(town: &str, year: i32, serial: i64) -> String {
    format!("{town}-{year}-{serial:06}")
}

/// The calendar year in China (UTC+8) at `t`.
pub fn china_year(t: chrono::DateTime<chrono::Utc>) -> i32 {
    use chrono::Datelike;
    (t + chrono::Duration::hours(8)).year()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_numbers_are_per_town_and_year() {
        assert_eq!(town_of("500110111201001"), "500110111");
        assert_eq!(town_of("500110"), "500110");
        assert_eq!(case_no("500110111", 2026, 42), "500110111-2026-000042");
        let new_year_utc = chrono::DateTime::parse_from_rfc3339("2026-12-31T16:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(china_year(new_year_utc), 2027);
    }
}
