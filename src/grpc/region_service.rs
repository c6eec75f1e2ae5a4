//! RegionService: the registry of the one net (regions, grids, workers, departments).

use std::collections::HashSet;

use tonic::{Request, Response, Status, Streaming};

use super::pagination::Page;
use super::pb::region_service_server::RegionService;
use super::pb::{self, ImportSummary};
use super::{State, convert, principal, requested_scope};
use crate::app::error::ApiError;
use crate::app::mutation::Resend;
#[cfg(test)]
use crate::app::registry::common_region;
use crate::app::registry::{self, DepartmentInput, WorkerInput};
use crate::domain::Violation;
use crate::domain::geojson;
use crate::domain::pii::Phone;
use crate::domain::principal::{Principal, Scope};
use crate::domain::region::RegionCode;
use crate::store::regions::{RegionInput, Rejected, UpsertCounts};
use crate::store::{departments, regions, workers};

crate::idempotent!(
    pb::ImportGridsRequest,
    pb::UpsertWorkerRequest,
    pb::UpsertDepartmentRequest
);

/// Most records accepted in one ImportRegions stream (the national list has ≈664,000).
pub const MAX_IMPORT_RECORDS: usize = 2_000_000;

/// The RegionService implementation.
pub struct RegionApi {
    pub state: State,
}

fn code(raw: &str, field: &str) -> Result<RegionCode, ApiError> {
    RegionCode::parse(raw).map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn optional_code(raw: &str, field: &str) -> Result<Option<RegionCode>, ApiError> {
    if raw.is_empty() {
        Ok(None)
    } else {
        code(raw, field).map(Some)
    }
}

fn in_scope(p: &Principal, requested: Option<&RegionCode>) -> Result<Scope, ApiError> {
    p.scope
        .within(requested)
        .ok_or_else(|| crate::app::outside_scope(p, "region", requested.map_or("", |c| c.as_str())))
}

/// Validates one ImportRegions record; returns the row or pushes violations.
fn region_record(
    i: usize,
    r: &pb::RegionRecord,
    seen: &mut HashSet<String>,
    v: &mut Vec<Violation>,
) -> Option<RegionInput> {
    let at = |f: &str| format!("records[{i}].{f}");
    let before = v.len();
    let code = match RegionCode::parse(&r.code) {
        Ok(c) => Some(c),
        Err(e) => {
            v.push(Violation::new(at("code"), e.to_string()));
            None
        }
    };
    if r.name.trim().is_empty() {
        v.push(Violation::new(at("name"), "must not be empty"));
    }
    if let Some(c) = &code {
        match convert::level_from_pb(r.level) {
            Some(l) if l == c.level() => {}
            _ => v.push(Violation::new(
                at("level"),
                format!(
                    "must be {:?} for a {}-digit code",
                    convert::level_to_pb(c.level()),
                    c.as_str().len()
                ),
            )),
        }
        let expected = c.parent().map(|p| p.to_string()).unwrap_or_default();
        if r.parent_code != expected {
            v.push(Violation::new(
                at("parent_code"),
                format!("must be {expected:?}, the code's prefix one level up"),
            ));
        }
        if !seen.insert(c.to_string()) {
            v.push(Violation::new(
                at("code"),
                format!("{c} appears more than once"),
            ));
        }
    }
    if i > 0 && !r.request_id.is_empty() {
        v.push(Violation::new(
            at("request_id"),
            "only the first record carries request_id",
        ));
    }
    let c = code?;
    (v.len() == before).then(|| RegionInput {
        level: c.level() as i16,
        parent_code: c.parent().map(|p| p.to_string()),
        code: c.to_string(),
        name: r.name.trim().to_owned(),
        fallback_owner: r.fallback_owner.trim().to_owned(),
    })
}

fn summary(c: UpsertCounts, rejected: Vec<Rejected>) -> ImportSummary {
    ImportSummary {
        created: c.created,
        updated: c.updated,
        unchanged: c.unchanged,
        rejected: rejected.len() as u64,
        rejections: rejected
            .into_iter()
            .take(1000)
            .map(|r| pb::ImportRejection {
                index: r.index,
                code: r.code,
                reason: r.reason,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl RegionService for RegionApi {
    async fn import_regions(
        &self,
        req: Request<Streaming<pb::RegionRecord>>,
    ) -> Result<Response<ImportSummary>, Status> {
        let p = principal(&req)?;
        let mut stream = req.into_inner();
        let (mut rows, mut v, mut seen, mut payload) =
            (Vec::new(), Vec::new(), HashSet::new(), Vec::new());
        let mut request_id = String::new();
        let mut i = 0usize;
        while let Some(mut r) = stream.message().await? {
            if i >= MAX_IMPORT_RECORDS {
                return Err(ApiError::invalid(
                    "records",
                    format!("at most {MAX_IMPORT_RECORDS} records per stream"),
                )
                .into());
            }
            if let Some(row) = region_record(i, &r, &mut seen, &mut v) {
                rows.push((i as u64, row));
            }
            if i == 0 {
                request_id = std::mem::take(&mut r.request_id);
            }
            r.request_id.clear();
            prost::Message::encode_length_delimited(&r, &mut payload)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            i += 1;
        }
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        let resend = Resend {
            method: "RegionService/ImportRegions",
            request_id,
            payload,
        };
        let s = registry::import_regions(&self.state.app, &p, resend, rows, summary).await?;
        Ok(Response::new(s))
    }

    async fn import_grids(
        &self,
        req: Request<pb::ImportGridsRequest>,
    ) -> Result<Response<ImportSummary>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let grids = geojson::parse_grids(&r.geojson).map_err(ApiError::InvalidArgument)?;
        let resend = Resend::of("RegionService/ImportGrids", &r);
        let s = registry::import_grids(&self.state.app, &p, resend, grids, summary).await?;
        Ok(Response::new(s))
    }

    async fn get_region(
        &self,
        req: Request<pb::GetRegionRequest>,
    ) -> Result<Response<pb::Region>, Status> {
        let p = principal(&req)?;
        let c = code(&req.get_ref().code, "code")?;
        let scope = in_scope(&p, Some(&c))?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let r = regions::get(&mut conn, &scope, &c)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("region {c} not found")))?;
        Ok(Response::new(convert::region(r.region, r.boundary_geojson)))
    }

    async fn list_regions(
        &self,
        req: Request<pb::ListRegionsRequest>,
    ) -> Result<Response<pb::ListRegionsResponse>, Status> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let parent = optional_code(&r.parent_code, "parent_code")?;
        let level = match r.level {
            0 => None,
            v => Some(
                convert::level_from_pb(v)
                    .ok_or_else(|| ApiError::invalid("level", "unknown level"))?,
            ),
        };
        let scope = in_scope(&p, parent.as_ref())?;
        let (filter, size) = (format!("{}|{}", r.parent_code, r.level), r.page_size);
        let page = Page::parse(&self.state, &p, "ListRegions", &filter, size, &r.page_token)?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let mut rows = regions::list(
            &mut conn,
            &scope,
            parent.as_ref().map(|c| c.as_str()),
            level.map(|l| l as i16),
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await
        .map_err(ApiError::from)?;
        let next_page_token = page.finish(&self.state, &mut rows, |r| r.code.clone());
        Ok(Response::new(pb::ListRegionsResponse {
            regions: rows.into_iter().map(|r| convert::region(r, None)).collect(),
            next_page_token,
        }))
    }

    async fn locate_grid(&self, req: Request<pb::LatLng>) -> Result<Response<pb::Region>, Status> {
        let p = principal(&req)?;
        let pb::LatLng { lat, lng } = *req.get_ref();
        let mut v = Vec::new();
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            v.push(Violation::new("lat", "must be between -90 and 90"));
        }
        if !(lng.is_finite() && (-180.0..=180.0).contains(&lng)) {
            v.push(Violation::new("lng", "must be between -180 and 180"));
        }
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let r = regions::locate(&mut conn, &p.scope, lat, lng)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::NotFound(format!("no grid of your region contains ({lat}, {lng})"))
            })?;
        Ok(Response::new(convert::region(r, None)))
    }

    async fn upsert_worker(
        &self,
        req: Request<pb::UpsertWorkerRequest>,
    ) -> Result<Response<pb::Worker>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let resend = Resend::of("RegionService/UpsertWorker", &r);
        let w = WorkerInput::try_from(r)?;
        let (ctx, viewer) = (self.state.app.clone(), p.clone());
        let show = move |w| convert::worker(w, &ctx.pii, &viewer);
        let out = registry::upsert_worker(&self.state.app, &p, resend, w, show).await?;
        Ok(Response::new(out))
    }

    async fn list_workers(
        &self,
        req: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let prefix = requested_scope(&p, &r.region_code)?;
        let grid = optional_code(&r.grid_code, "grid_code")?;
        let filter = format!("{}|{}", r.region_code, r.grid_code);
        let page = Page::parse(
            &self.state,
            &p,
            "ListWorkers",
            &filter,
            r.page_size,
            &r.page_token,
        )?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let mut rows = workers::list(
            &mut conn,
            &prefix,
            grid.as_ref().map(|g| g.as_str()),
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await
        .map_err(ApiError::from)?;
        let next_page_token = page.finish(&self.state, &mut rows, |w| w.worker_id.clone());
        Ok(Response::new(pb::ListWorkersResponse {
            workers: rows
                .into_iter()
                .map(|w| convert::worker(w, &self.state.app.pii, &p))
                .collect(),
            next_page_token,
        }))
    }

    async fn upsert_department(
        &self,
        req: Request<pb::UpsertDepartmentRequest>,
    ) -> Result<Response<pb::Department>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let resend = Resend::of("RegionService/UpsertDepartment", &r);
        let d = DepartmentInput::try_from(r)?;
        let show = convert::department;
        let out = registry::upsert_department(&self.state.app, &p, resend, d, show).await?;
        Ok(Response::new(out))
    }

    async fn list_departments(
        &self,
        req: Request<pb::ListDepartmentsRequest>,
    ) -> Result<Response<pb::ListDepartmentsResponse>, Status> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let prefix = requested_scope(&p, &r.region_code)?;
        let page = Page::parse(
            &self.state,
            &p,
            "ListDepartments",
            &r.region_code,
            r.page_size,
            &r.page_token,
        )?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let mut rows = departments::list(
            &mut conn,
            &prefix,
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await
        .map_err(ApiError::from)?;
        let next_page_token = page.finish(&self.state, &mut rows, |d| d.code.clone());
        Ok(Response::new(pb::ListDepartmentsResponse {
            departments: rows.into_iter().map(convert::department).collect(),
            next_page_token,
        }))
    }
}

impl TryFrom<pb::UpsertDepartmentRequest> for DepartmentInput {
    type Error = ApiError;

    fn try_from(r: pb::UpsertDepartmentRequest) -> Result<DepartmentInput, ApiError> {
        let pb::UpsertDepartmentRequest {
            department,
            request_id: _,
        } = r;
        let pb::Department {
            code,
            name,
            region_code,
            kind,
            active,
            updated_at: _,
        } = department.unwrap_or_default();
        let mut v = Vec::new();
        if !valid_id(&code) {
            v.push(Violation::new(
                "department.code",
                "1-64 characters of letters, digits, '-', '_' or '.'",
            ));
        }
        if name.trim().is_empty() {
            v.push(Violation::new("department.name", "must not be empty"));
        }
        let region = RegionCode::parse(&region_code)
            .map_err(|e| v.push(Violation::new("department.region_code", e.to_string())))
            .ok();
        let Some(region) = region.filter(|_| v.is_empty()) else {
            return Err(ApiError::InvalidArgument(v));
        };
        Ok(DepartmentInput {
            code,
            name: name.trim().to_owned(),
            region,
            kind: kind.trim().to_owned(),
            active,
        })
    }
}

impl TryFrom<pb::UpsertWorkerRequest> for WorkerInput {
    type Error = ApiError;

    fn try_from(r: pb::UpsertWorkerRequest) -> Result<WorkerInput, ApiError> {
        let pb::UpsertWorkerRequest {
            worker,
            request_id: _,
        } = r;
        let pb::Worker {
            worker_id,
            name,
            phone,
            region_code,
            grid_codes,
            active,
            updated_at: _,
        } = worker.unwrap_or_default();
        let mut v = Vec::new();
        if !valid_id(&worker_id) {
            v.push(Violation::new(
                "worker.worker_id",
                "1-64 characters of letters, digits, '-', '_' or '.'",
            ));
        }
        if name.trim().is_empty() {
            v.push(Violation::new("worker.name", "must not be empty"));
        }
        let phone = (!phone.is_empty())
            .then(|| Phone::parse(&phone, "worker.phone"))
            .transpose()
            .unwrap_or_else(|e| {
                v.push(e);
                None
            });
        let region = RegionCode::parse(&region_code)
            .map_err(|e| v.push(Violation::new("worker.region_code", e.to_string())))
            .ok();
        let mut grids = Vec::new();
        for (i, g) in grid_codes.iter().enumerate() {
            match (RegionCode::parse(g), &region) {
                (Ok(c), Some(reg)) if c.level().is_grid() && c.is_within(reg) => {
                    grids.push(c.to_string())
                }
                _ => v.push(Violation::new(
                    format!("worker.grid_codes[{i}]"),
                    "must be a grid code inside worker.region_code",
                )),
            }
        }
        let Some(region) = region.filter(|_| v.is_empty()) else {
            return Err(ApiError::InvalidArgument(v));
        };
        Ok(WorkerInput {
            worker_id,
            name: name.trim().to_owned(),
            phone,
            region,
            grids,
            active,
        })
    }
}

/// Ids chosen by towns: 1-64 of letters, digits, '-', '_', '.'.
fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_region_is_a_whole_code() {
        let c = |v: &[&str]| common_region(v.iter().map(|s| s.to_string()), "");
        assert_eq!(c(&["500110111201001", "500110111201002"]), "500110111201");
        assert_eq!(c(&["500110111201001", "500110111200001"]), "500110111");
        assert_eq!(c(&["11", "50"]), "");
        assert_eq!(c(&["500110111201"]), "500110111201");
    }

    #[test]
    fn records_are_validated_field_by_field() {
        let mut seen = HashSet::new();
        let mut v = Vec::new();
        let good = pb::RegionRecord {
            code: "500110111201".into(),
            name: "马颈村".into(),
            level: pb::RegionLevel::Village as i32,
            parent_code: "500110111".into(),
            ..Default::default()
        };
        assert!(region_record(0, &good, &mut seen, &mut v).is_some());
        let bad = pb::RegionRecord {
            code: "500110111202".into(),
            name: " ".into(),
            level: pb::RegionLevel::Town as i32,
            parent_code: "500110".into(),
            ..Default::default()
        };
        assert!(region_record(1, &bad, &mut seen, &mut v).is_none());
        let fields: Vec<&str> = v.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "records[1].name",
                "records[1].level",
                "records[1].parent_code"
            ]
        );
        let dup = good.clone();
        assert!(region_record(2, &dup, &mut seen, &mut v).is_none());
    }

    #[test]
    fn ids() {
        assert!(valid_id("W-001_a.b"));
        assert!(!valid_id(""));
        assert!(!valid_id("王"));
        assert!(!valid_id(&"x".repeat(65)));
    }
}
