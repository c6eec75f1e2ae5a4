//! CaseService: browsing cases, correcting the automatic merge (MergeCases, SplitReport), the
//! workflow (TransitionCase, rules in `domain::workflow`), the live feed (WatchCases, see
//! `feed`), PullChanges for mobile clients, the dashboard and the early warnings.

use std::pin::Pin;

use crate::domain::ids::*;
use chrono::Duration;
use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::feed::{self, Filter};
use super::pagination::Page;
use super::pb;
use super::pb::case_service_server::CaseService;
use super::{State, convert, principal, requested_scope, time_range, uuid_field};
use crate::app::cases::{Merge, Split, Transition};
use crate::app::error::ApiError;
use crate::app::mutation::Resend;
use crate::app::{self};
use crate::domain::workflow::{self, Action, Args};
use crate::store::cases::{self, CaseFilter};
use crate::store::{self as db, alerts, stats};

crate::idempotent!(
    pb::MergeCasesRequest,
    pb::SplitReportRequest,
    pb::TransitionCaseRequest
);

/// Events a subscriber's stream buffers before it counts as slow.
const SUBSCRIBER_BUFFER: usize = 256;

/// The CaseService implementation.
pub struct CaseApi {
    pub state: State,
}

fn action(a: pb::CaseAction) -> Option<Action> {
    use pb::CaseAction as P;
    Some(match a {
        P::Unspecified => return None,
        P::Register => Action::Register,
        P::Void => Action::Void,
        P::Dispatch => Action::Dispatch,
        P::Sign => Action::Sign,
        P::Feedback => Action::Feedback,
        P::VerifyOk => Action::VerifyOk,
        P::VerifyFail => Action::VerifyFail,
        P::Return => Action::Return,
        P::RequestExtension => Action::RequestExtension,
        P::ApproveExtension => Action::ApproveExtension,
        P::RejectExtension => Action::RejectExtension,
        P::Urge => Action::Urge,
        P::Supervise => Action::Supervise,
        P::Reopen => Action::Reopen,
    })
}

impl TryFrom<&pb::TransitionCaseRequest> for Transition {
    type Error = ApiError;

    fn try_from(r: &pb::TransitionCaseRequest) -> Result<Transition, ApiError> {
        let pb::TransitionCaseRequest {
            case_id,
            action: raw_action,
            expected_version,
            comment,
            assignee,
            time_limit_working_days,
            extension_working_days,
            request_id: _,
        } = r;
        let mut v = Vec::new();
        let case_id = case_id
            .parse::<CaseId>()
            .map_err(|_| v.push(crate::domain::Violation::new("case_id", "must be a UUID")))
            .ok();
        let act = pb::CaseAction::try_from(*raw_action).ok().and_then(action);
        if act.is_none() {
            v.push(crate::domain::Violation::new(
            "action",
            "must be one of REGISTER, VOID, DISPATCH, SIGN, FEEDBACK, VERIFY_OK, VERIFY_FAIL, RETURN, REQUEST_EXTENSION, APPROVE_EXTENSION, REJECT_EXTENSION, URGE, SUPERVISE, REOPEN",
        ));
        }
        if *expected_version < 1 {
            v.push(crate::domain::Violation::new(
                "expected_version",
                "required: the version of the case you acted on",
            ));
        }
        if comment.chars().count() > 2000 {
            v.push(crate::domain::Violation::new(
                "comment",
                "at most 2000 characters",
            ));
        }
        if assignee.chars().count() > 64 {
            v.push(crate::domain::Violation::new(
                "assignee",
                "at most 64 characters",
            ));
        }
        if !(0..=365).contains(time_limit_working_days) {
            v.push(crate::domain::Violation::new(
                "time_limit_working_days",
                "between 1 and 365 (0: the default)",
            ));
        }
        if !(0..=workflow::MAX_EXTENSION_DAYS as i32).contains(extension_working_days) {
            v.push(crate::domain::Violation::new(
                "extension_working_days",
                format!("between 1 and {}", workflow::MAX_EXTENSION_DAYS),
            ));
        }
        let (Some(case_id), Some(action), true) = (case_id, act, v.is_empty()) else {
            return Err(ApiError::InvalidArgument(v));
        };
        let positive = |n: i32| (n > 0).then_some(n as u32);
        Ok(Transition {
            case_id,
            action,
            expected_version: *expected_version,
            comment: comment.trim().to_owned(),
            args: Args {
                assignee: Some(assignee.trim().to_owned()).filter(|a| !a.is_empty()),
                time_limit_days: positive(*time_limit_working_days),
                extension_days: positive(*extension_working_days),
            },
        })
    }
}

impl TryFrom<pb::MergeCasesRequest> for Merge {
    type Error = ApiError;

    fn try_from(r: pb::MergeCasesRequest) -> Result<Merge, ApiError> {
        let pb::MergeCasesRequest {
            target_case_id,
            source_case_ids,
            comment,
            request_id: _,
        } = r;
        let target = uuid_field(&target_case_id, "target_case_id")?;
        let mut sources = Vec::new();
        for (i, s) in source_case_ids.iter().enumerate() {
            let id = uuid_field(s, &format!("source_case_ids[{i}]"))?;
            if id == target || sources.contains(&id) {
                return Err(ApiError::invalid(
                    format!("source_case_ids[{i}]"),
                    "repeats the target or another source",
                ));
            }
            sources.push(id);
        }
        if sources.is_empty() {
            return Err(ApiError::invalid(
                "source_case_ids",
                "name at least one case to merge",
            ));
        }
        Ok(Merge {
            target,
            sources,
            comment,
        })
    }
}

/// Parses a resume token or cursor (an event sequence number; empty: `None`).
fn position(raw: &str, field: &str) -> Result<Option<i64>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .map(Some)
        .ok_or_else(|| ApiError::invalid(field, "is not a token this server issued"))
}

#[tonic::async_trait]
impl CaseService for CaseApi {
    async fn get_case(
        &self,
        req: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let p = principal(&req)?;
        let id = uuid_field(&req.get_ref().case_id, "case_id")?;
        let v = app::cases::get(&self.state.app, &p, id).await?;
        let mut out = convert::case(v.case, v.reports);
        out.available_actions = v
            .available
            .into_iter()
            .filter_map(|a| pb::CaseAction::from_str_name(a.as_str()))
            .map(|a| a as i32)
            .collect();
        out.working_days_left = v.working_days_left;
        Ok(Response::new(out))
    }

    async fn list_cases(
        &self,
        req: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let prefix = requested_scope(&p, &r.region_code)?;
        let (start, end) = time_range(r.start_time.as_ref(), r.end_time.as_ref())?;
        let f = CaseFilter {
            statuses: r.statuses.clone(),
            category: Some(r.unified_category.clone()).filter(|c| !c.is_empty()),
            overdue_only: r.overdue_only,
            assignee: Some(r.assignee.clone()).filter(|a| !a.is_empty()),
            start,
            end,
        };
        // A page token is bound to the whole filter it was issued for.
        let filter = format!("{prefix}|{f:?}");
        let page = Page::parse(
            &self.state,
            &p,
            "ListCases",
            &filter,
            r.page_size,
            &r.page_token,
        )?;
        let before = page.after_uuid()?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let mut rows = cases::list(&mut conn, &prefix, &f, before, page.fetch_limit())
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
        let resend = Resend::of("CaseService/MergeCases", &r);
        let m = Merge::try_from(r)?;
        let out = app::cases::merge(&self.state.app, &p, resend, m, convert::case).await?;
        Ok(Response::new(out))
    }

    async fn split_report(
        &self,
        req: Request<pb::SplitReportRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let resend = Resend::of("CaseService/SplitReport", &r);
        let pb::SplitReportRequest {
            report_id,
            comment,
            request_id: _,
        } = r;
        let split = Split {
            report_id: uuid_field(&report_id, "report_id")?,
            comment,
        };
        let out = app::cases::split(&self.state.app, &p, resend, split, convert::case).await?;
        Ok(Response::new(out))
    }

    async fn transition_case(
        &self,
        req: Request<pb::TransitionCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let t = Transition::try_from(&r)?;
        let resend = Resend::of("CaseService/TransitionCase", &r);
        let out = app::cases::transition(&self.state.app, &p, resend, t, convert::case).await?;
        Ok(Response::new(out))
    }

    type WatchCasesStream = Pin<Box<dyn Stream<Item = Result<pb::CaseEvent, Status>> + Send>>;

    async fn watch_cases(
        &self,
        req: Request<pb::WatchCasesRequest>,
    ) -> Result<Response<Self::WatchCasesStream>, Status> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let filter = Filter {
            scope: requested_scope(&p, &r.region_code)?,
            statuses: r.statuses.clone(),
            category: Some(r.unified_category.clone()).filter(|c| !c.is_empty()),
            exclude_alerts: r.exclude_alerts,
        };
        let resume = position(&r.resume_token, "resume_token")?;
        // Subscribe before reading the table: nothing committed in between is missed.
        let live = self.state.feed.subscribe();
        let pool = self.state.app.pool.clone();
        let last = match resume {
            Some(n) => n,
            None => {
                let mut conn = pool.get().await.map_err(ApiError::from)?;
                db::feed::head(&mut conn).await.map_err(ApiError::from)?
            }
        };
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let stop = self.state.feed.stopping();
        tokio::spawn(feed::subscriber(pool, filter, last, live, tx, stop));
        let mut res = Response::new(
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)) as Self::WatchCasesStream
        );
        // The stream's starting point, before any event: a client that drops before the first
        // event resumes from here instead of "from now" (no gap on the first connection).
        res.metadata_mut().insert(
            feed::RESUME_HEADER,
            tonic::metadata::MetadataValue::from(last),
        );
        Ok(res)
    }

    type ExportCasesStream = super::Chunks<pb::ExportChunk>;

    async fn export_cases(
        &self,
        req: Request<pb::ExportCasesRequest>,
    ) -> Result<Response<Self::ExportCasesStream>, Status> {
        let p = principal(&req)?;
        let pb::ExportCasesRequest {
            region_code,
            from_date,
            to_date,
        } = req.get_ref();
        let scope = requested_scope(&p, region_code)?;
        let day = |raw: &str, field: &str| {
            chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                .map_err(|_| ApiError::invalid(field, "a date, YYYY-MM-DD"))
        };
        let days = (day(from_date, "from_date")?, day(to_date, "to_date")?);
        let csv = app::export::cases(&self.state.app, &p, scope, days).await?;
        Ok(Response::new(super::chunks(&csv, |_, c| pb::ExportChunk {
            data: c.to_vec(),
        })))
    }

    async fn get_case_map(
        &self,
        req: Request<pb::GetCaseMapRequest>,
    ) -> Result<Response<pb::CaseMap>, Status> {
        let p = principal(&req)?;
        let pb::GetCaseMapRequest {
            region_code,
            page_size,
            page_token,
        } = req.get_ref();
        let scope = requested_scope(&p, region_code)?;
        // Points are small: pages of 10,000 (at most 20,000) stay under the message limit.
        let sizes = (*page_size, 10_000, 20_000);
        let page = Page::parse_sized(
            &self.state,
            &p,
            "GetCaseMap",
            region_code,
            sizes,
            page_token,
        )?;
        let before = page.after_uuid()?;
        let mut conn = self.state.app.stale_ok().await?;
        let grids = match before {
            None => crate::store::map::grids(&mut conn, &scope).await,
            Some(_) => Ok(Vec::new()),
        }
        .map_err(ApiError::from)?;
        let mut cases =
            crate::store::map::open_cases(&mut conn, &scope, before, page.fetch_limit())
                .await
                .map_err(ApiError::from)?;
        let next = page.finish(&self.state, &mut cases, |c| c.case_id.to_string());
        Ok(Response::new(convert::case_map(
            scope.prefix(),
            grids,
            cases,
            next,
        )))
    }

    async fn get_dashboard(
        &self,
        req: Request<pb::GetDashboardRequest>,
    ) -> Result<Response<pb::Dashboard>, Status> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let prefix = requested_scope(&p, &r.region_code)?;
        let (start, end) = time_range(r.start_time.as_ref(), r.end_time.as_ref())?;
        let local = |t: chrono::DateTime<chrono::Utc>| (t + Duration::hours(8)).date_naive();
        // Open ends: dates PostgreSQL can hold.
        let (min, max) = (
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default(),
            chrono::NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or_default(),
        );
        let from = start.map(local).unwrap_or(min).clamp(min, max);
        // The end's day counts when the range reaches into it.
        let to = end
            .map(|e| local(e - Duration::microseconds(1)) + Duration::days(1))
            .unwrap_or(max)
            .clamp(min, max);
        if from >= to {
            return Err(ApiError::invalid("end_time", "must be after start_time").into());
        }
        let as_of = chrono::Utc::now();
        let mut conn = self.state.app.stale_ok().await?;
        let rows = stats::dashboard(&mut conn, &prefix, from, to)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(convert::dashboard(
            prefix.prefix().to_owned(),
            rows,
            as_of,
        )))
    }

    async fn list_alerts(
        &self,
        req: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let prefix = requested_scope(&p, &r.region_code)?;
        let page = Page::parse(
            &self.state,
            &p,
            "ListAlerts",
            &format!("{prefix}|{}", r.kind),
            r.page_size,
            &r.page_token,
        )?;
        let before = page.after_uuid()?;
        let kind = (!r.kind.is_empty()).then_some(r.kind.as_str());
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let mut rows = alerts::list(&mut conn, &prefix, kind, before, page.fetch_limit())
            .await
            .map_err(ApiError::from)?;
        let next_page_token = page.finish(&self.state, &mut rows, |a| a.alert_id.to_string());
        Ok(Response::new(pb::ListAlertsResponse {
            alerts: rows.into_iter().map(convert::alert).collect(),
            next_page_token,
        }))
    }

    async fn pull_changes(
        &self,
        req: Request<pb::PullChangesRequest>,
    ) -> Result<Response<pb::PullChangesResponse>, Status> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let cursor = position(&r.cursor, "cursor")?.unwrap_or(0);
        let limit = match r.limit {
            n if n < 0 => return Err(ApiError::invalid("limit", "must not be negative").into()),
            0 => 100,
            n => n.min(1000) as usize,
        };
        let (rows, next) = app::cases::pull_changes(&self.state.app, &p, cursor, limit).await?;
        Ok(Response::new(pb::PullChangesResponse {
            cases: rows
                .into_iter()
                .map(|c| convert::case(c, Vec::new()))
                .collect(),
            next_cursor: next.to_string(),
        }))
    }
}
