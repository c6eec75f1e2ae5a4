//! CaseService: browsing cases and correcting the automatic merge (MergeCases, SplitReport).
//! The workflow (register, dispatch, …) builds on this.

use futures::FutureExt;
use serde_json::json;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::error::ApiError;
use super::mutation::{self, Idempotent};
use super::pagination::Page;
use super::pb;
use super::pb::case_service_server::CaseService;
use super::{State, convert, principal, requested_prefix, uuid_field};
use crate::store::audit::NewEvent;
use crate::store::cases::{self, FINISHED};
use crate::store::reports;

crate::idempotent!(pb::MergeCasesRequest, pb::SplitReportRequest);

/// The CaseService implementation.
pub struct CaseApi {
    pub state: State,
}

fn snapshot(c: &cases::Case) -> serde_json::Value {
    json!({"status": c.status, "report_count": c.report_count, "version": c.version, "unified_category": c.unified_category, "merged_into": c.merged_into})
}

#[tonic::async_trait]
impl CaseService for CaseApi {
    async fn get_case(
        &self,
        req: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let p = principal(&req)?;
        let id = uuid_field(&req.get_ref().case_id, "case_id")?;
        let mut conn = self.state.pool.get().await.map_err(ApiError::from)?;
        let c = cases::get(&mut conn, p.scope.prefix(), id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("case {id} not found")))?;
        Ok(Response::new(convert::case(c.case, c.reports)))
    }

    async fn list_cases(
        &self,
        req: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let prefix = requested_prefix(&p, &r.region_code)?;
        let filter = format!("{}|{}|{}", prefix, r.statuses.join(","), r.unified_category);
        let page = Page::parse(
            &self.state,
            &p,
            "ListCases",
            &filter,
            r.page_size,
            &r.page_token,
        )?;
        let before = page
            .after
            .as_deref()
            .map(Uuid::parse_str)
            .transpose()
            .map_err(|_| ApiError::invalid("page_token", "malformed"))?;
        let category = (!r.unified_category.is_empty()).then_some(r.unified_category.as_str());
        let mut conn = self.state.pool.get().await.map_err(ApiError::from)?;
        let mut rows = cases::list(
            &mut conn,
            &prefix,
            &r.statuses,
            category,
            before,
            page.fetch_limit(),
        )
        .await
        .map_err(ApiError::from)?;
        let next_page_token = page.finish(&self.state, &mut rows, |c| c.case_id.to_string());
        Ok(Response::new(pb::ListCasesResponse {
            cases: rows
                .into_iter()
                .map(|c| convert::case(c, Vec::new()))
                .collect(),
            next_page_token,
        }))
    }

    async fn merge_cases(
        &self,
        req: Request<pb::MergeCasesRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let target = uuid_field(&r.target_case_id, "target_case_id")?;
        let mut sources = Vec::new();
        for (i, s) in r.source_case_ids.iter().enumerate() {
            let id = uuid_field(s, &format!("source_case_ids[{i}]"))?;
            if id == target || sources.contains(&id) {
                return Err(ApiError::invalid(
                    format!("source_case_ids[{i}]"),
                    "repeats the target or another source",
                )
                .into());
            }
            sources.push(id);
        }
        if sources.is_empty() {
            return Err(
                ApiError::invalid("source_case_ids", "name at least one case to merge").into(),
            );
        }
        let prefix = p.scope.prefix().to_owned();
        let comment = r.comment.clone();
        let out = mutation::run(
            &self.state,
            &p,
            "CaseService/MergeCases",
            r.request_id(),
            &r.payload(),
            move |conn, audit| {
                async move {
                    // Lock in id order, so concurrent merges cannot deadlock.
                    let mut all = sources.clone();
                    all.push(target);
                    all.sort();
                    let mut locked = Vec::new();
                    for id in all {
                        let c = cases::lock(conn, &prefix, id)
                            .await?
                            .ok_or_else(|| ApiError::NotFound(format!("case {id} not found")))?;
                        if FINISHED.contains(&c.status.as_str()) {
                            return Err(ApiError::FailedPrecondition(format!(
                                "case {} is {}; only open cases merge",
                                c.case_no, c.status
                            )));
                        }
                        locked.push(c);
                    }
                    let (t, srcs): (Vec<_>, Vec<_>) =
                        locked.into_iter().partition(|c| c.case_id == target);
                    let t = t
                        .into_iter()
                        .next()
                        .ok_or_else(|| ApiError::NotFound(format!("case {target} not found")))?;
                    cases::merge(conn, &t, &srcs).await?;
                    for s in &srcs {
                        let mut after = snapshot(s);
                        after["status"] = json!("MERGED");
                        after["merged_into"] = json!(t.case_id);
                        after["comment"] = json!(comment);
                        audit.push(NewEvent::ok(
                            "case.merge",
                            "case",
                            &s.case_id.to_string(),
                            &s.region_code,
                            Some(snapshot(s)),
                            Some(after),
                        ));
                    }
                    let merged = cases::get(conn, "", target)
                        .await?
                        .ok_or_else(|| ApiError::NotFound(format!("case {target} not found")))?;
                    audit.push(NewEvent::ok(
                        "case.absorb",
                        "case",
                        &target.to_string(),
                        &t.region_code,
                        Some(snapshot(&t)),
                        Some(snapshot(&merged.case)),
                    ));
                    Ok(convert::case(merged.case, merged.reports))
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(out))
    }

    async fn split_report(
        &self,
        req: Request<pb::SplitReportRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let report_id = uuid_field(&r.report_id, "report_id")?;
        let prefix = p.scope.prefix().to_owned();
        let (by, comment) = (p.sub.clone(), r.comment.clone());
        let out = mutation::run(
            &self.state,
            &p,
            "CaseService/SplitReport",
            r.request_id(),
            &r.payload(),
            move |conn, audit| {
                async move {
                    let report =
                        reports::get(conn, &prefix, report_id)
                            .await?
                            .ok_or_else(|| {
                                ApiError::NotFound(format!("report {report_id} not found"))
                            })?;
                    let from = cases::lock(conn, "", report.case_id)
                        .await?
                        .ok_or_else(|| ApiError::NotFound("case not found".into()))?;
                    if FINISHED.contains(&from.status.as_str()) {
                        return Err(ApiError::FailedPrecondition(format!(
                            "case {} is {}; reports of finished cases stay",
                            from.case_no, from.status
                        )));
                    }
                    if from.report_count < 2 {
                        return Err(ApiError::FailedPrecondition(format!(
                            "report {report_id} is the only report of case {}",
                            from.case_no
                        )));
                    }
                    let case_no = cases::next_case_no(conn, &report.region_code).await?;
                    let new_id = cases::split(conn, &from, &report, &case_no, &by).await?;
                    audit.push(NewEvent::ok(
                        "report.split",
                        "report",
                        &report_id.to_string(),
                        &report.region_code,
                        Some(json!({"case_id": from.case_id, "case_no": from.case_no})),
                        Some(json!({"case_id": new_id, "case_no": case_no, "comment": comment})),
                    ));
                    let c = cases::get(conn, "", new_id)
                        .await?
                        .ok_or_else(|| ApiError::NotFound("case not found".into()))?;
                    Ok(convert::case(c.case, c.reports))
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(out))
    }
}
