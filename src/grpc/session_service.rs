//! SessionService: the caller as the hub sees it, so a screen (the web console) shows only
//! what the policy lets its user do. The policy itself stays in `auth::policy`: the methods
//! listed are exactly those it admits the caller to, over the compiled contract.

use std::sync::OnceLock;

use prost::Message;
use tonic::{Request, Response, Status};

use super::pb::session_service_server::SessionService;
use super::{FILE_DESCRIPTOR_SET, pb, principal};
use crate::auth::policy::{self, Access};
use crate::domain::principal::{Principal, Role};

/// The SessionService implementation.
pub struct SessionApi;

/// Every RPC path of the compiled contract (`/package.Service/Method`), sorted.
pub fn paths() -> &'static [String] {
    static PATHS: OnceLock<Vec<String>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let fds = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap_or_default();
        let mut out = Vec::new();
        for f in &fds.file {
            for s in &f.service {
                for m in &s.method {
                    out.push(format!("/{}.{}/{}", f.package(), s.name(), m.name()));
                }
            }
        }
        out.sort();
        out
    })
}

/// The RPC paths the policy admits `p` to.
pub fn allowed(p: &Principal) -> Vec<String> {
    paths()
        .iter()
        .filter(|path| match policy::access(path) {
            Some(Access::Public) => true,
            Some(Access::Roles(roles)) => p.has_any(roles),
            None => false,
        })
        .cloned()
        .collect()
}

#[tonic::async_trait]
impl SessionService for SessionApi {
    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::Caller>, Status> {
        let p = principal(&req)?;
        let pb::WhoAmIRequest {} = req.get_ref();
        Ok(Response::new(pb::Caller {
            subject: p.sub.clone(),
            roles: p.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            region_code: p.scope.prefix().to_owned(),
            unit: p.unit.clone().unwrap_or_default(),
            methods: allowed(&p),
            pii_reader: p.has(Role::PiiReader),
        }))
    }
}
