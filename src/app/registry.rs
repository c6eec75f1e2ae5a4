//! The registry's writes: regions and grids imported, departments and grid workers upserted,
//! all within the caller's region and audited (a worker's phone sealed, and masked in the
//! trail).

use std::collections::HashSet;

use futures::FutureExt;
use prost::Message;
use serde_json::json;

use super::Context;
use super::error::ApiError;
use super::mutation::{self, Resend};
use super::pii::{self, Sight};
use crate::domain::Violation;
use crate::domain::geojson::GridFeature;
use crate::domain::pii::Phone;
use crate::domain::principal::{Principal, Scope};
use crate::domain::region::{RegionCode, RegionLevel};
use crate::store::audit::NewEvent;
use crate::store::departments::{self, Department};
use crate::store::regions::{self, RegionInput, Rejected, UpsertCounts};
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
    super::ensure_in_scope(who, "region", d.region.as_str())?;
    let scope = who.scope.clone();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let known = regions::existing(conn, &Scope::All, &[d.region.to_string()]).await?;
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
    super::ensure_in_scope(who, "region", w.region.as_str())?;
    let (ctx2, scope) = (ctx.clone(), who.scope.clone());
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let mut wanted = w.grids.clone();
            wanted.push(w.region.to_string());
            let found: HashSet<String> = regions::existing(conn, &Scope::All, &wanted)
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
                phone_enc: w.phone.as_ref().map(|ph| c.seal(ph)),
                phone_index: w.phone.as_ref().map(|ph| c.blind_index(ph.expose())),
                region_code: w.region.as_str(),
                grid_codes: w.grids.iter().cloned().map(Some).collect(),
                active: w.active,
            };
            let stored = workers::upsert(conn, new).await?;
            let snap = |x: &Worker| {
                let phone = pii::show(c, x.phone_enc.as_ref(), "workers.phone_enc", Sight::Masked);
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

/// The longest common prefix of region codes that is itself a whole code (for audit scoping).
pub fn common_region(codes: impl Iterator<Item = String>, fallback: &str) -> String {
    let mut prefix: Option<String> = None;
    for c in codes {
        prefix = Some(match prefix {
            None => c,
            Some(p) => p
                .chars()
                .zip(c.chars())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    let p = prefix.unwrap_or_default();
    let whole = [18, 15, 12, 9, 6, 4, 2]
        .into_iter()
        .find(|l| p.len() >= *l)
        .map(|l| p[..l].to_owned());
    whole.unwrap_or_else(|| fallback.to_owned())
}

fn import_event(
    kind: &str,
    request_id: &str,
    region: String,
    (c, rejected): (&UpsertCounts, usize),
    count: usize,
) -> NewEvent {
    let id = if request_id.is_empty() {
        uuid::Uuid::now_v7().to_string()
    } else {
        request_id.to_owned()
    };
    NewEvent::ok(
        &format!("{kind}.import"),
        &format!("{kind}_import"),
        &id,
        &region,
        None,
        Some(
            json!({"records": count, "created": c.created, "updated": c.updated, "unchanged": c.unchanged, "rejected": rejected}),
        ),
    )
}

/// How an import's outcome is shown: what it created, updated and left, and what it rejected.
pub type Summary<R> = fn(UpsertCounts, Vec<Rejected>) -> R;

/// ImportRegions: region records of the caller's region (validated, each once), upserted level
/// by level in one transaction with one audit event.
pub async fn import_regions<R>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    rows: Vec<(u64, RegionInput)>,
    summary: Summary<R>,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
{
    for (i, row) in &rows {
        super::ensure_in_scope(who, &format!("records[{i}]: region"), &row.code)?;
    }
    let count = rows.len();
    let region = common_region(rows.iter().map(|(_, r)| r.code.clone()), who.scope.prefix());
    let rid = resend.request_id.clone();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let (counts, rejected) = regions::import(conn, rows, |_| {}).await?;
            let c = (&counts, rejected.len());
            audit.push(import_event("region", &rid, region, c, count));
            Ok(summary(counts, rejected))
        }
        .boxed()
    })
    .await
}

/// ImportGrids: grid polygons of the caller's region, valid as PostGIS sees them, each under a
/// known parent (a village, or a grid of the same import for a micro-grid); rejected ones are
/// listed, the rest upserted with one audit event.
pub async fn import_grids<R>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    grids: Vec<GridFeature>,
    summary: Summary<R>,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
{
    for g in &grids {
        super::ensure_in_scope(
            who,
            &format!("features[{}]: grid", g.index),
            g.code.as_str(),
        )?;
    }
    let region = common_region(grids.iter().map(|g| g.code.to_string()), who.scope.prefix());
    let rid = resend.request_id.clone();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let invalid = regions::invalid_geometries(conn, &grids).await?;
            if !invalid.is_empty() {
                let v = invalid
                    .into_iter()
                    .map(|(i, why)| {
                        Violation::new(
                            format!("features[{}].geometry", grids[i].index),
                            format!("invalid polygon: {why}"),
                        )
                    })
                    .collect();
                return Err(ApiError::InvalidArgument(v));
            }
            // Parents may be villages (already stored) or grids of this same import.
            let mut parents: Vec<String> =
                grids.iter().map(|g| g.parent_code.to_string()).collect();
            parents.sort();
            parents.dedup();
            let mut known: HashSet<String> = regions::existing(conn, &Scope::All, &parents)
                .await?
                .into_iter()
                .collect();
            let mut ordered = grids;
            ordered.sort_by_key(|g| (g.code.level(), g.index));
            let (mut ok, mut rejected) = (Vec::new(), Vec::new());
            for g in ordered {
                if known.contains(g.parent_code.as_str()) {
                    known.insert(g.code.to_string());
                    ok.push(g);
                } else {
                    rejected.push(Rejected {
                        index: g.index as u64,
                        code: g.code.to_string(),
                        reason: format!("parent {} is unknown", g.parent_code),
                    });
                }
            }
            // Grids before micro-grids: a micro-grid's parent may be a grid of this import.
            let (micro, grids): (Vec<_>, Vec<_>) = ok
                .iter()
                .cloned()
                .partition(|g| g.code.level() == RegionLevel::MicroGrid);
            let mut counts = regions::upsert_grids(conn, &grids).await?;
            counts += regions::upsert_grids(conn, &micro).await?;
            rejected.sort_by_key(|r| r.index);
            let c = (&counts, rejected.len());
            audit.push(import_event(
                "grid",
                &rid,
                region,
                c,
                ok.len() + rejected.len(),
            ));
            Ok(summary(counts, rejected))
        }
        .boxed()
    })
    .await
}
