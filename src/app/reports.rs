//! Reports into the one net: a batch synced from a phone ([`sync`]), and what the intake's
//! callers share (who submits, how long a resend is remembered, a per-report refusal as an
//! error).

use std::sync::Arc;

use futures::FutureExt;
use uuid::Uuid;

use super::Context;
use super::error::ApiError;
use super::mutation;
use crate::domain::Violation;
use crate::domain::principal::Principal;
use crate::domain::report::ReportInput;
use crate::store::audit::Actor;
use crate::store::reports::{self, Item, ItemError, ItemResult, Submitter};

/// The submitter of reports sent by `p`: its scope, and its identity for the audit trail.
pub fn submitter(p: &Principal) -> Arc<Submitter> {
    Arc::new(Submitter {
        scope: p.scope.clone(),
        actor: Actor {
            sub: p.sub.clone(),
            roles: p.role_names(),
            request_id: String::new(),
        },
    })
}

/// How long a resend gets the first answer, for the intake.
pub fn retention(ctx: &Context) -> chrono::Duration {
    chrono::Duration::from_std(ctx.idempotency_retention).unwrap_or(chrono::Duration::days(30))
}

/// A report the intake refused, as an error.
pub fn item_error(e: ItemError) -> ApiError {
    match e {
        ItemError::Invalid(v) => ApiError::InvalidArgument(v),
        ItemError::Denied(m) => ApiError::PermissionDenied(m),
        ItemError::Conflict(m) => ApiError::AlreadyExists(m),
    }
}

/// SyncReports: a batch from one sender (a phone back online). Each report is valid or not on
/// its own (`inputs[k]`: the report or its violations); valid ones are merged into cases in
/// transactions of nearby reports (`reports::chunks`), and one report's refusal never fails its
/// neighbours. Returns one result per report, in order.
pub async fn sync(
    ctx: &Context,
    who: &Principal,
    inputs: Vec<Result<ReportInput, Vec<Violation>>>,
) -> Result<Vec<ItemResult>, ApiError> {
    let by = submitter(who);
    let retention = retention(ctx);
    let places: Vec<Option<(Uuid, f64, f64)>> = inputs
        .iter()
        .map(|r| r.as_ref().ok().map(|r| (r.client_report_id, r.lat, r.lng)))
        .collect();
    let mut results: Vec<Option<ItemResult>> = vec![None; inputs.len()];
    let mut items: Vec<Option<Item>> = inputs
        .into_iter()
        .map(|report| {
            Some(Item {
                by: by.clone(),
                report,
            })
        })
        .collect();
    for chunk in reports::chunks(&places) {
        let part: Vec<Item> = chunk.iter().filter_map(|&i| items[i].take()).collect();
        let grids = ctx.grids.clone();
        // The intake records its own audit events (by each report's sender).
        let stored = mutation::audited(ctx, who, move |conn, _| {
            async move { Ok(reports::ingest(conn, &grids, part, retention).await?) }.boxed()
        })
        .await?;
        for (i, r) in chunk.into_iter().zip(stored) {
            results[i] = Some(r);
        }
    }
    // A report left out of every chunk is a bug, not a shorter answer.
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| ApiError::Internal("a report was in no chunk".into())))
        .collect()
}

/// An attachment as stored: its content address (SHA-256), type and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub sha: String,
    pub content_type: String,
    pub size_bytes: i64,
}

/// DownloadAttachment: the content type and bytes of an attachment a report of the caller's
/// region cites. Anything else — unknown, or cited only elsewhere — is the same NOT_FOUND, so
/// the answer says nothing of other regions.
pub async fn attachment(
    ctx: &Context,
    who: &Principal,
    sha256: &str,
) -> Result<(String, Vec<u8>), ApiError> {
    let not_found = || ApiError::NotFound(format!("no attachment {sha256} in your region"));
    let mut conn = ctx.pool.get().await?;
    if !crate::store::attachments::cited_within(&mut conn, &who.scope, sha256).await? {
        return Err(not_found());
    }
    let (content_type, _) = crate::store::attachments::find(&mut conn, sha256)
        .await?
        .ok_or_else(not_found)?;
    drop(conn);
    let bytes = ctx.blobs.get(sha256).await.map_err(|e| {
        ApiError::Internal(format!(
            "attachment {sha256} is recorded but unreadable: {e}"
        ))
    })?;
    Ok((content_type, bytes))
}

/// UploadAttachment, once its bytes are checked (`attachments::Upload`): the bytes are stored
/// first, then the row, so a row never points at missing bytes; an upload belongs to the
/// caller's region (reports cite only attachments of their own region). Content-addressed,
/// so a second upload of the same bytes changes nothing and is not audited again.
pub async fn store_attachment(
    ctx: &Context,
    who: &Principal,
    upload: crate::attachments::Upload,
) -> Result<Stored, ApiError> {
    let (sha, content_type, bytes) = upload
        .finish()
        .map_err(|e| ApiError::invalid("data", e.to_string()))?;
    ctx.blobs
        .put(&sha, &bytes)
        .await
        .map_err(|e| ApiError::Internal(format!("storing attachment: {e}")))?;
    let size = bytes.len() as i64;
    let (scope, sub) = (who.scope.clone(), who.sub.clone());
    mutation::audited(ctx, who, move |conn, audit| {
        async move {
            use crate::store::attachments;
            let new = attachments::record(conn, &sha, &content_type, size, &sub, &scope).await?;
            let (content_type, size_bytes) = attachments::find(conn, &sha)
                .await?
                .unwrap_or((content_type, size));
            if new {
                audit.push(crate::store::audit::NewEvent::ok(
                    "attachment.upload",
                    "attachment",
                    &sha,
                    scope.prefix(),
                    None,
                    Some(
                        serde_json::json!({"content_type": content_type, "size_bytes": size_bytes}),
                    ),
                ));
            }
            Ok(Stored {
                sha,
                content_type,
                size_bytes,
            })
        }
        .boxed()
    })
    .await
}
