//! AuditService: reading and verifying the audit trail (roles `auditor`, `admin`).

use tonic::{Request, Response, Status};

use super::pagination::Page;
use super::pb;
use super::pb::audit_service_server::AuditService;
use super::{State, convert, principal, requested_scope, time_range};
use crate::app::error::ApiError;
use crate::store::audit;

/// The AuditService implementation.
pub struct AuditApi {
    pub state: State,
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let prefix = requested_scope(&p, &r.region_code)?;
        if r.entity_type.is_empty() && !r.entity_id.is_empty() {
            return Err(ApiError::invalid("entity_type", "is required with entity_id").into());
        }
        let (start, end) = time_range(r.start_time.as_ref(), r.end_time.as_ref())?;
        let f = audit::EventFilter {
            prefix: prefix.prefix().to_owned(),
            entity_type: (!r.entity_type.is_empty()).then(|| r.entity_type.clone()),
            entity_id: (!r.entity_id.is_empty()).then(|| r.entity_id.clone()),
            start,
            end,
        };
        // A page token is bound to the whole filter it was issued for.
        let (filter, size, token) = (format!("{f:?}"), r.page_size, &r.page_token);
        let page = Page::parse(&self.state, &p, "ListAuditEvents", &filter, size, token)?;
        let after = page.after_seq()?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        // Everything committed so far, sealed into the chain.
        audit::seal(&mut conn).await.map_err(ApiError::from)?;
        let mut rows = audit::list(&mut conn, &f, after, page.fetch_limit())
            .await
            .map_err(ApiError::from)?;
        let next_page_token = page.finish(&self.state, &mut rows, |e| e.seq.to_string());
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: rows.into_iter().map(convert::audit_event).collect(),
            next_page_token,
        }))
    }

    async fn verify_audit_chain(
        &self,
        req: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        let p = principal(&req)?;
        requested_scope(&p, &req.get_ref().region_code)?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        audit::seal(&mut conn).await.map_err(ApiError::from)?;
        let report = audit::verify(&mut conn).await.map_err(ApiError::from)?;
        // A chain intact in itself is held against the latest checkpoint outside the table.
        let broken = match report.broken {
            Some(b) => Some(b),
            None => self
                .state
                .app
                .anchor
                .check(&mut conn, report.events_checked)
                .await
                .map_err(|e| ApiError::Internal(format!("audit checkpoint: {e}")))?,
        };
        let (first_broken_seq, reason) = broken.unwrap_or((0, String::new()));
        let ok = reason.is_empty();
        if !ok {
            tracing::warn!(seq = first_broken_seq, %reason, "audit chain broken");
        }
        Ok(Response::new(pb::VerifyAuditChainResponse {
            ok,
            events_checked: report.events_checked,
            first_broken_seq,
            reason,
            head_hash: hex::encode(report.head_hash),
        }))
    }
}
