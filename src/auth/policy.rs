//! Which roles may call which RPC. One table for the whole server: the middleware looks every
//! request up here before any handler runs, and a method with no entry is refused, so a new
//! RPC cannot be reachable by accident. A unit test checks that every RPC in the compiled
//! descriptor set has an entry.

use crate::domain::principal::Role;
use Role::*;

/// What a method requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token: health checks and reflection.
    Public,
    /// Any authenticated principal (data is still confined to its scope by the handler).
    AnyRole,
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

/// The access rule for a gRPC path (`/package.Service/Method`); `None` = no rule, deny.
pub fn access(path: &str) -> Option<Access> {
    let rule = match path {
        p if p.starts_with("/grpc.health.v1.Health/") => Access::Public,
        p if p.starts_with("/grpc.reflection.v1.ServerReflection/") => Access::Public,
        p if p.starts_with("/grpc.reflection.v1alpha.ServerReflection/") => Access::Public,

        "/gridhub.v1.RegionService/ImportRegions" => Access::Roles(REGION_ADMINS),
        "/gridhub.v1.RegionService/ImportGrids" => Access::Roles(GRID_EDITORS),
        "/gridhub.v1.RegionService/GetRegion" => Access::AnyRole,
        "/gridhub.v1.RegionService/ListRegions" => Access::AnyRole,
        "/gridhub.v1.RegionService/LocateGrid" => Access::AnyRole,
        "/gridhub.v1.RegionService/UpsertWorker" => Access::Roles(STAFF_EDITORS),
        "/gridhub.v1.RegionService/ListWorkers" => Access::AnyRole,
        "/gridhub.v1.RegionService/UpsertDepartment" => Access::Roles(GRID_EDITORS),
        "/gridhub.v1.RegionService/ListDepartments" => Access::AnyRole,

        "/gridhub.v1.AuditService/ListAuditEvents" => Access::Roles(AUDITORS),
        "/gridhub.v1.AuditService/VerifyAuditChain" => Access::Roles(AUDITORS),

        "/gridhub.v1.ReportService/SubmitReport" => Access::Roles(REPORTERS),
        "/gridhub.v1.ReportService/SyncReports" => Access::Roles(REPORTERS),
        "/gridhub.v1.ReportService/UploadAttachment" => Access::Roles(REPORTERS),
        "/gridhub.v1.ReportService/GetReport" => Access::AnyRole,
        "/gridhub.v1.ReportService/ListReports" => Access::AnyRole,

        "/gridhub.v1.CaseService/GetCase" => Access::AnyRole,
        "/gridhub.v1.CaseService/ListCases" => Access::AnyRole,
        "/gridhub.v1.CaseService/MergeCases" => Access::Roles(COMMAND_CENTRE),
        "/gridhub.v1.CaseService/SplitReport" => Access::Roles(COMMAND_CENTRE),
        // Which action each role may take is the workflow's rule (domain::workflow).
        "/gridhub.v1.CaseService/TransitionCase" => Access::Roles(CASE_ACTORS),
        "/gridhub.v1.CaseService/WatchCases" => Access::AnyRole,
        "/gridhub.v1.CaseService/GetDashboard" => Access::AnyRole,
        "/gridhub.v1.CaseService/ListAlerts" => Access::AnyRole,
        "/gridhub.v1.CaseService/PullChanges" => Access::AnyRole,

        "/gridhub.v1.CatalogService/ImportCatalog" => Access::Roles(GRID_EDITORS),
        "/gridhub.v1.CatalogService/ListCatalogItems" => Access::AnyRole,
        "/gridhub.v1.CatalogService/GetCatalogItem" => Access::AnyRole,

        "/gridhub.v1.ServiceRequestService/CreateServiceRequest" => Access::Roles(WINDOW),
        "/gridhub.v1.ServiceRequestService/GetServiceRequest" => Access::AnyRole,
        "/gridhub.v1.ServiceRequestService/ListServiceRequests" => Access::AnyRole,
        // Which action each role may take is the workflow's rule (domain::service).
        "/gridhub.v1.ServiceRequestService/TransitionServiceRequest" => {
            Access::Roles(REQUEST_ACTORS)
        }
        "/gridhub.v1.ServiceRequestService/GetServiceRequestStats" => Access::AnyRole,

        "/gridhub.v1.HotlineService/PushWorkOrder" => Access::Roles(HOTLINE),
        "/gridhub.v1.HotlineService/PullUpdates" => Access::Roles(HOTLINE),

        // Which step each role may take is the mediation rule (domain::mediation).
        "/gridhub.v1.MediationService/CreateMediationCase" => Access::Roles(MEDIATION),
        "/gridhub.v1.MediationService/GetMediationCase" => Access::AnyRole,
        "/gridhub.v1.MediationService/ListMediationCases" => Access::AnyRole,
        "/gridhub.v1.MediationService/RecordSession" => Access::Roles(MEDIATION),
        "/gridhub.v1.MediationService/RecordOutcome" => Access::Roles(MEDIATION),
        "/gridhub.v1.MediationService/RecordFollowUp" => Access::Roles(MEDIATION),
        "/gridhub.v1.MediationService/GetMediationStats" => Access::AnyRole,
        "/gridhub.v1.MediationService/FindPersonDisputes" => Access::Roles(MEDIATION),
        _ => return None,
    };
    Some(rule)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn every_rpc_in_the_contract_has_a_rule() {
        let fds = prost_types::FileDescriptorSet::decode(crate::grpc::FILE_DESCRIPTOR_SET).unwrap();
        let mut n = 0;
        for file in fds.file {
            for svc in &file.service {
                for m in &svc.method {
                    let path = format!("/{}.{}/{}", file.package(), svc.name(), m.name());
                    assert!(access(&path).is_some(), "no access rule for {path}");
                    n += 1;
                }
            }
        }
        assert!(n >= 11);
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
