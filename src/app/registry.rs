//! The registry's writes: departments and grid workers of the caller's region, each upsert
//! audited (a worker's phone sealed, and masked in the trail).

use std::collections::HashSet;

use futures::FutureExt;
use prost::Message;
use serde_json::json;

use super::Context;
use super::error::ApiError;
use super::mutation::{self, Resend};
use super::pii::{self, Sight};
use crate::domain::Violation;
use crate::domain::pii::Phone;
use crate::domain::principal::Principal;
use crate::domain::region::RegionCode;
use crate::store::audit::NewEvent;
use crate::store::departments::{self, Department};
use crate::store::regions;
use crate::store::workers::{self, Worker};

/// A validated UpsertDepartment.
#[derive(Debug, Clone)]
pub struct DepartmentInput {
    pub code: String,
    pub name: String,
    pub region: RegionCode,
    pub kind: String,
    pub active: bool,
}

/// A validated UpsertWorker.
#[derive(Debug, Clone)]
pub struct WorkerInput {
    pub worker_id: String,
    pub name: String,
    pub phone: Option<Phone>,
    pub region: RegionCode,
    /// Grid codes inside `region`.
    pub grids: Vec<String>,
    pub active: bool,
}

fn outside(p: &Principal, region: &RegionCode) -> Result<(), ApiError> {
    if p.scope.contains(region.as_str()) {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied(format!(
            "region {} is outside your region {}",
            region.as_str(),
            p.scope
        )))
    }
}

/// UpsertDepartment: creates or changes a department of a known region in the caller's
/// region (an existing one must be in it too).
pub async fn upsert_department<R>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    d: DepartmentInput,
    present: fn(Department) -> R,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
{
    outside(who, &d.region)?;
    let scope = who.scope.clone();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let known = regions::existing(conn, "", &[d.region.to_string()]).await?;
            if known.is_empty() {
                return Err(ApiError::invalid(
                    "department.region_code",
                    "unknown region",
                ));
            }
            let before = departments::find(conn, &d.code).await?;
            if let Some(b) = before.as_ref().filter(|b| !scope.contains(&b.region_code)) {
                return Err(ApiError::PermissionDenied(format!(
                    "department {} belongs to a region outside yours",
                    b.code
                )));
            }
            let new = departments::NewDepartment {
                code: &d.code,
                name: &d.name,
                region_code: d.region.as_str(),
                kind: &d.kind,
                active: d.active,
            };
            let stored = departments::upsert(conn, new).await?;
            let snap = |x: &Department| serde_json::to_value(x).unwrap_or_default();
            audit.push(NewEvent::ok(
                "department.upsert",
                "department",
                &stored.code,
                &stored.region_code,
                before.as_ref().map(snap),
                Some(snap(&stored)),
            ));
            Ok(present(stored))
        }
        .boxed()
    })
    .await
}

/// UpsertWorker: creates or changes a grid worker of a known region (and known grids) in the
/// caller's region; the phone is sealed, and the trail holds it masked.
pub async fn upsert_worker<R, P>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    w: WorkerInput,
    present: P,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
    P: FnOnce(Worker) -> R + Send + 'static,
{
    outside(who, &w.region)?;
    let (ctx2, scope) = (ctx.clone(), who.scope.clone());
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let mut wanted = w.grids.clone();
            wanted.push(w.region.to_string());
            let found: HashSet<String> = regions::existing(conn, "", &wanted)
                .await?
                .into_iter()
                .collect();
            let mut v = Vec::new();
            if !found.contains(w.region.as_str()) {
                v.push(Violation::new("worker.region_code", "unknown region"));
            }
            for (i, g) in w.grids.iter().enumerate() {
                if !found.contains(g) {
                    v.push(Violation::new(
                        format!("worker.grid_codes[{i}]"),
                        "unknown grid",
                    ));
                }
            }
            if !v.is_empty() {
                return Err(ApiError::InvalidArgument(v));
            }
            let before = workers::find(conn, &w.worker_id).await?;
            if let Some(b) = before.as_ref().filter(|b| !scope.contains(&b.region_code)) {
                return Err(ApiError::PermissionDenied(format!(
                    "worker {} belongs to a region outside yours",
                    b.worker_id
                )));
            }
            let c = &ctx2.pii;
            let new = workers::NewWorker {
                worker_id: &w.worker_id,
                name: &w.name,
                phone_enc: w.phone.as_ref().map(|ph| c.encrypt(ph.expose())),
                phone_index: w.phone.as_ref().map(|ph| c.blind_index(ph.expose())),
                region_code: w.region.as_str(),
                grid_codes: w.grids.iter().cloned().map(Some).collect(),
                active: w.active,
            };
            let stored = workers::upsert(conn, new).await?;
            let snap = |x: &Worker| {
                let phone = pii::phone(c, x.phone_enc.as_deref(), "workers.phone_enc", Sight::Masked);
                let grids: Vec<&String> = x.grid_codes.iter().flatten().collect();
                json!({"name": x.name, "phone": phone, "region_code": x.region_code, "grid_codes": grids, "active": x.active})
            };
            audit.push(NewEvent::ok(
                "worker.upsert",
                "worker",
                &stored.worker_id,
                &stored.region_code,
                before.as_ref().map(snap),
                Some(snap(&stored)),
            ));
            Ok(present(stored))
        }
        .boxed()
    })
    .await
}
