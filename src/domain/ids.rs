//! Ids of the hub's records as types, so a case's id cannot be passed where a report's is
//! expected. Each is a UUIDv7 (time-ordered, so ids sort by creation and serve as page
//! cursors). `DieselNewType` is only their SQL mapping (stored as `uuid`); no I/O here.

use std::fmt;

use diesel_derive_newtype::DieselNewType;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, DieselNewType, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id, ordered after every id made before it.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// The UUID inside.
            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, uuid::Error> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    )*};
}

ids! {
    /// A case (案件): `cases.case_id`.
    CaseId;
    /// A report (上报) the hub stored: `reports.report_id` (not the phone's `client_report_id`).
    ReportId;
    /// A service request (便民服务事项申请) or 12345 work order's request: `service_requests.sr_id`.
    ServiceRequestId;
    /// A mediation case (矛盾纠纷调解): `mediation_cases.case_id`.
    MediationCaseId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_their_uuid_and_order_by_creation() {
        let a = CaseId::generate();
        let b = CaseId::generate();
        assert!(a < b);
        assert_eq!(a.to_string(), a.uuid().to_string());
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
        assert_eq!(format!("{a:?}"), format!("CaseId({a})"));
    }
}
