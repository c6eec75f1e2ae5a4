//! Which roles may call which RPC. One table for the whole server: the middleware looks every
//! request up here before any handler runs, and a method with no entry is refused, so a new
//! RPC cannot be reachable by accident. A unit test checks that every RPC in the compiled
//! descriptor set has an entry. Every RPC but health and reflection names the roles that may
//! call it: a token without one of them (no roles, unknown role names only, `pii_reader`
//! alone) is PERMISSION_DENIED. Where in its scope a caller may act, and what it sees masked,
//! is decided by [`crate::auth::access`].

use crate::domain::principal::Role;
use Role::*;

/// What a method requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token: health checks and reflection.
    Public,
    /// A principal holding one of these roles.
    Roles(&'static [Role]),
}

const REGION_ADMINS: &[Role] = &[Admin];
const GRID_EDITORS: &[Role] = &[Admin, TownOperator];
const STAFF_EDITORS: &[Role] = &[Admin, TownOperator, VillageAdmin];
const AUDITORS: &[Role] = &[Auditor, Admin];
const REPORTERS: &[Role] = &[
    GridWorker,
    VillageAdmin,
    TownOperator,
    DeptHandler,
    WindowClerk,
    Hotline,
    Admin,
];
const COMMAND_CENTRE: &[Role] = &[TownOperator, Admin];
const CASE_ACTORS: &[Role] = &[TownOperator, Admin, DeptHandler, GridWorker, VillageAdmin];
const WINDOW: &[Role] = &[WindowClerk, TownOperator, Admin];
const REQUEST_ACTORS: &[Role] = &[
    WindowClerk,
    TownOperator,
    Admin,
    DeptHandler,
    VillageAdmin,
    GridWorker,
    Hotline,
];
const HOTLINE: &[Role] = &[Hotline, Admin];
const MEDIATION: &[Role] = &[Mediator, TownOperator, Admin];
/// Every working role (every role but `pii_reader`; a test holds it to `Role::ALL`): who may
/// ask the hub who it is (a token with no working role, or only `pii_reader`, may not).
const WORKING: &[Role] = &[
    GridWorker,
    VillageAdmin,
    TownOperator,
    DeptHandler,
    Mediator,
    WindowClerk,
    Hotline,
    Auditor,
    Admin,
];
/// The registry of the one net (regions, grids, workers, departments): every working role.
/// `pii_reader` is in no list: it only widens what a caller who may read a record sees.
const REGISTRY_READERS: &[Role] = WORKING;
/// Reports and cases: those who report, handle, oversee or audit them (and mediators, whose
/// disputes link to cases). The 12345 integration reads its updates by PullUpdates only.
const CASE_READERS: &[Role] = &[
    GridWorker,
    VillageAdmin,
    TownOperator,
    DeptHandler,
    Mediator,
    Auditor,
    Admin,
];
/// The command centre's figures and warnings.
const CASE_FIGURES: &[Role] = &[TownOperator, VillageAdmin, Auditor, Admin];
/// The 权责清单 and service requests: whoever may act on a request, and auditors.
const REQUEST_READERS: &[Role] = &[
    WindowClerk,
    TownOperator,
    Admin,
    DeptHandler,
    VillageAdmin,
    GridWorker,
    Hotline,
    Auditor,
];
/// The service window's figures.
const REQUEST_FIGURES: &[Role] = &[WindowClerk, TownOperator, Auditor, Admin];

/// The access rule for a gRPC path (`/package.Service/Method`); `None` = no rule, deny.
pub fn access(path: &str) -> Option<Access> {
    let rule = match path {
        p if p.starts_with("/grpc.health.v1.Health/") => Access::Public,
        p if p.starts_with("/grpc.reflection.v1.ServerReflection/") => Access::Public,
        p if p.starts_with("/grpc.reflection.v1alpha.ServerReflection/") => Access::Public,

        "/gridhub.v1.RegionService/ImportRegions" => Access::Roles(REGION_ADMINS),
        "/gridhub.v1.RegionService/ImportGrids" => Access::Roles(GRID_EDITORS),
        "/gridhub.v1.RegionService/GetRegion" => Access::Roles(REGISTRY_READERS),
        "/gridhub.v1.RegionService/ListRegions" => Access::Roles(REGISTRY_READERS),
        "/gridhub.v1.RegionService/LocateGrid" => Access::Roles(REGISTRY_READERS),
        "/gridhub.v1.RegionService/UpsertWorker" => Access::Roles(STAFF_EDITORS),
        "/gridhub.v1.RegionService/ListWorkers" => Access::Roles(REGISTRY_READERS),
        "/gridhub.v1.RegionService/UpsertDepartment" => Access::Roles(GRID_EDITORS),
        "/gridhub.v1.RegionService/ListDepartments" => Access::Roles(REGISTRY_READERS),

        "/gridhub.v1.SessionService/WhoAmI" => Access::Roles(WORKING),

        "/gridhub.v1.AuditService/ListAuditEvents" => Access::Roles(AUDITORS),
        "/gridhub.v1.AuditService/VerifyAuditChain" => Access::Roles(AUDITORS),

        "/gridhub.v1.ReportService/SubmitReport" => Access::Roles(REPORTERS),
        "/gridhub.v1.ReportService/SyncReports" => Access::Roles(REPORTERS),
        "/gridhub.v1.ReportService/UploadAttachment" => Access::Roles(REPORTERS),
        "/gridhub.v1.ReportService/DownloadAttachment" => Access::Roles(CASE_READERS),
        "/gridhub.v1.ReportService/GetReport" => Access::Roles(CASE_READERS),
        "/gridhub.v1.ReportService/ListReports" => Access::Roles(CASE_READERS),

        "/gridhub.v1.CaseService/GetCase" => Access::Roles(CASE_READERS),
        "/gridhub.v1.CaseService/ListCases" => Access::Roles(CASE_READERS),
        "/gridhub.v1.CaseService/MergeCases" => Access::Roles(COMMAND_CENTRE),
        "/gridhub.v1.CaseService/SplitReport" => Access::Roles(COMMAND_CENTRE),
        // Which action each role may take is the workflow's rule (domain::workflow).
        "/gridhub.v1.CaseService/TransitionCase" => Access::Roles(CASE_ACTORS),
        "/gridhub.v1.CaseService/WatchCases" => Access::Roles(CASE_READERS),
        "/gridhub.v1.CaseService/GetDashboard" => Access::Roles(CASE_FIGURES),
        "/gridhub.v1.CaseService/GetCaseMap" => Access::Roles(CASE_READERS),
        "/gridhub.v1.CaseService/ExportCases" => Access::Roles(CASE_FIGURES),
        "/gridhub.v1.CaseService/ListAlerts" => Access::Roles(CASE_FIGURES),
        "/gridhub.v1.CaseService/PullChanges" => Access::Roles(CASE_READERS),

        "/gridhub.v1.CatalogService/ImportCatalog" => Access::Roles(GRID_EDITORS),
        "/gridhub.v1.CatalogService/ListCatalogItems" => Access::Roles(REQUEST_READERS),
        "/gridhub.v1.CatalogService/GetCatalogItem" => Access::Roles(REQUEST_READERS),

        "/gridhub.v1.ServiceRequestService/CreateServiceRequest" => Access::Roles(WINDOW),
        "/gridhub.v1.ServiceRequestService/GetServiceRequest" => Access::Roles(REQUEST_READERS),
        "/gridhub.v1.ServiceRequestService/ListServiceRequests" => Access::Roles(REQUEST_READERS),
        // Which action each role may take is the workflow's rule (domain::request).
        "/gridhub.v1.ServiceRequestService/TransitionServiceRequest" => {
            Access::Roles(REQUEST_ACTORS)
        }
        "/gridhub.v1.ServiceRequestService/GetServiceRequestStats" => {
            Access::Roles(REQUEST_FIGURES)
        }

        "/gridhub.v1.HotlineService/PushWorkOrder" => Access::Roles(HOTLINE),
        "/gridhub.v1.HotlineService/PullUpdates" => Access::Roles(HOTLINE),

        // Which step each role may take is the mediation rule (domain::mediation).
        "/gridhub.v1.MediationService/CreateMediationCase" => Access::Roles(MEDIATION),
        "/gridhub.v1.MediationService/GetMediationCase" => Access::Roles(MEDIATION),
        "/gridhub.v1.MediationService/ListMediationCases" => Access::Roles(MEDIATION),
        "/gridhub.v1.MediationService/RecordSession" => Access::Roles(MEDIATION),
        "/gridhub.v1.MediationService/RecordOutcome" => Access::Roles(MEDIATION),
        "/gridhub.v1.MediationService/RecordFollowUp" => Access::Roles(MEDIATION),
        "/gridhub.v1.MediationService/GetMediationStats" => Access::Roles(MEDIATION),
        "/gridhub.v1.MediationService/FindPersonDisputes" => Access::Roles(MEDIATION),
        _ => return None,
    };
    Some(rule)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn the_working_roles_are_every_role_but_pii_reader() {
        let all: Vec<Role> = Role::ALL.into_iter().filter(|r| *r != PiiReader).collect();
        assert_eq!(WORKING, all.as_slice());
    }

    #[test]
    fn every_rpc_in_the_contract_has_a_rule() {
        let paths = crate::grpc::session_service::paths();
        for path in paths {
            assert!(access(path).is_some(), "no access rule for {path}");
        }
        assert!(paths.len() >= 11);
    }

    #[test]
    fn every_rule_but_health_and_reflection_names_roles_and_never_pii_reader() {
        for path in crate::grpc::session_service::paths() {
            match access(path) {
                Some(Access::Roles(r)) => {
                    assert!(!r.is_empty(), "{path} names no role");
                    assert!(
                        !r.contains(&PiiReader),
                        "{path} is open to pii_reader alone"
                    );
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_methods_are_denied() {
        assert_eq!(access("/gridhub.v1.RegionService/DropEverything"), None);
        assert_eq!(access("/x"), None);
    }

    #[test]
    fn grid_workers_cannot_import() {
        let Some(Access::Roles(r)) = access("/gridhub.v1.RegionService/ImportRegions") else {
            panic!()
        };
        assert!(!r.contains(&GridWorker));
    }
}
