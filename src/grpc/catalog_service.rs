//! CatalogService: the towns' 权责清单, versioned (rules in `domain::catalog`).

use chrono::NaiveDate;
use tonic::{Request, Response, Status};

use super::pagination::Page;
use super::pb;
use super::pb::catalog_service_server::CatalogService;
use super::{State, convert, principal};
use crate::app::error::ApiError;
use crate::app::mutation::Resend;
use crate::app::{self};
use crate::domain::Violation;
use crate::domain::catalog::{self, RawItem};
use crate::domain::principal::Principal;
use crate::domain::region::{RegionCode, RegionLevel};
use crate::store::catalog as db;

crate::idempotent!(pb::ImportCatalogRequest);

/// The CatalogService implementation.
pub struct CatalogApi {
    pub state: State,
}

/// A town code the caller may read: inside its scope, or above it (a village's staff read
/// their town's list).
fn readable_town(p: &Principal, raw: &str) -> Result<RegionCode, ApiError> {
    let code = RegionCode::parse(raw.trim())
        .ok()
        .filter(|c| c.level() == RegionLevel::Town)
        .ok_or_else(|| ApiError::invalid("town_code", "a 9-digit town code"))?;
    // A town above the caller's region is readable too: its list applies to the region.
    if p.scope.overlaps(code.as_str()) {
        Ok(code)
    } else {
        Err(crate::app::outside_scope(p, "town", code.as_str()))
    }
}

/// The day to read the list on: `raw`, or today in China Standard Time.
fn day(state: &State, raw: &str, field: &str) -> Result<NaiveDate, ApiError> {
    if raw.trim().is_empty() {
        return Ok(crate::domain::calendar::local_day(
            state.app.workflow.clock.now(),
        ));
    }
    catalog::date(raw).ok_or_else(|| ApiError::invalid(field, "YYYY-MM-DD"))
}

fn records(items: &[pb::CatalogItem]) -> Result<Vec<catalog::ItemInput>, Vec<Violation>> {
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    for (i, it) in items.iter().enumerate() {
        let kind = pb::CatalogKind::try_from(it.kind)
            .map(|k| k.as_str_name())
            .unwrap_or("");
        let delegation = pb::Delegation::try_from(it.delegation)
            .map(|k| k.as_str_name())
            .unwrap_or("");
        let limit = it.time_limit.to_string();
        let raw = RawItem {
            town_code: &it.town_code,
            code: &it.code,
            name: &it.name,
            kind,
            source_department: &it.source_department,
            delegation,
            legal_basis: &it.legal_basis,
            time_limit_days: &limit,
            effective_from: &it.effective_from,
            effective_to: &it.effective_to,
            withdrawn: it.withdrawn,
        };
        match catalog::validate(&raw, &format!("items[{i}]")) {
            Ok(item) => ok.push(item),
            Err(v) => errors.extend(v),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn import_catalog(
        &self,
        req: Request<pb::ImportCatalogRequest>,
    ) -> Result<Response<pb::ImportCatalogResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let items = match (r.items.is_empty(), r.csv.trim().is_empty()) {
            (false, true) => records(&r.items),
            (true, false) => crate::domain::catalog::parse_catalog(&r.csv),
            (true, true) => Err(vec![Violation::new("items", "give items or csv")]),
            (false, false) => Err(vec![Violation::new("csv", "give items or csv, not both")]),
        }
        .map_err(ApiError::InvalidArgument)?;
        let resend = Resend::of("CatalogService/ImportCatalog", &r);
        let out = app::catalog::import(&self.state.app, &p, resend, items, summary).await?;
        Ok(Response::new(out))
    }

    async fn list_catalog_items(
        &self,
        req: Request<pb::ListCatalogItemsRequest>,
    ) -> Result<Response<pb::ListCatalogItemsResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let town = readable_town(&p, &r.town_code)?;
        let on = day(&self.state, &r.as_of, "as_of")?;
        let kind = match pb::CatalogKind::try_from(r.kind) {
            Ok(pb::CatalogKind::Unspecified) => None,
            Ok(k) => Some(k.as_str_name()),
            Err(_) => return Err(ApiError::invalid("kind", "unknown kind").into()),
        };
        let filter = format!("{town}|{on}|{:?}|{}", kind, r.history);
        let (size, token) = (r.page_size, &r.page_token);
        let page = Page::parse(&self.state, &p, "ListCatalogItems", &filter, size, token)?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let rows = if r.history {
            db::history(&mut conn, &town, None).await
        } else {
            db::in_force(&mut conn, &town, None, on).await
        }
        .map_err(ApiError::from)?;
        let key = |i: &db::CatalogItem| format!("{}\u{1f}{:010}", i.code, i.version);
        let mut rows: Vec<db::CatalogItem> = rows
            .into_iter()
            .filter(|i| kind.is_none_or(|k| i.kind == k))
            .filter(|i| page.after.as_ref().is_none_or(|a| key(i) > *a))
            .take(page.fetch_limit() as usize)
            .collect();
        let next_page_token = page.finish(&self.state, &mut rows, key);
        Ok(Response::new(pb::ListCatalogItemsResponse {
            items: rows.into_iter().map(convert::catalog_item).collect(),
            next_page_token,
        }))
    }

    async fn get_catalog_item(
        &self,
        req: Request<pb::GetCatalogItemRequest>,
    ) -> Result<Response<pb::CatalogItem>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let town = readable_town(&p, &r.town_code)?;
        if r.code.trim().is_empty() {
            return Err(ApiError::invalid("code", "required").into());
        }
        if r.version < 0 {
            return Err(ApiError::invalid("version", "must not be negative").into());
        }
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let code = r.code.trim();
        let found = if r.version > 0 {
            db::history(&mut conn, &town, Some(code))
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .find(|i| i.version == r.version)
        } else {
            let on = day(&self.state, &r.as_of, "as_of")?;
            db::in_force(&mut conn, &town, Some(code), on)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .next()
        };
        found
            .map(|i| Response::new(convert::catalog_item(i)))
            .ok_or_else(|| {
                ApiError::NotFound(format!("no item {code} of {town} for that day or version"))
                    .into()
            })
    }
}

/// What an import did, on the wire.
fn summary(s: db::Summary) -> pb::ImportCatalogResponse {
    pb::ImportCatalogResponse {
        created: s.created,
        versioned: s.versioned,
        unchanged: s.unchanged,
        withdrawn: s.withdrawn,
    }
}
