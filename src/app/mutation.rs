//! The one mechanism every mutating RPC runs through, so none can skip idempotency or the
//! audit trail:
//!
//! 1. `request_id` (optional UUID) is validated;
//! 2. in one transaction: the key is locked, a stored answer is returned if the same caller
//!    already sent this id (ALREADY_EXISTS if the payload differs, or if the same `sub` now
//!    holds other roles, another region or another unit: a replay never shows a caller more
//!    than a fresh call would), otherwise the change runs, its audit events are appended to
//!    the hash chain and the answer is stored, sealed with the PII key (it may hold personal
//!    data unmasked for a `pii_reader`);
//! 3. any error rolls everything back: nothing half-written, nothing audited that did not
//!    happen, and a retry after an error runs afresh.
//!
//! The transaction runs in a task of its own: when the client cancels or its deadline passes,
//! the RPC future is dropped but the transaction still ends (commit or rollback) and its
//! connection goes back to the pool clean, never "idle in transaction" holding locks. A client
//! that gave up retries with the same `request_id` and gets the committed answer.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures::FutureExt;
use futures::future::BoxFuture;
use prost::Message;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Context;
use crate::app::error::ApiError;
use crate::domain::principal::Principal;
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::idempotency;

/// Parses an optional `request_id`.
pub fn parse_request_id(raw: &str) -> Result<Option<Uuid>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(raw)
        .map(Some)
        .map_err(|_| ApiError::invalid("request_id", "must be a UUID"))
}

/// The change a mutating RPC makes, inside its transaction; it pushes its audit events.
pub trait Change<R>:
    for<'c> FnOnce(
        &'c mut AsyncPgConnection,
        &'c mut Vec<NewEvent>,
    ) -> BoxFuture<'c, Result<R, ApiError>>
    + Send
    + 'static
{
}

impl<R, F> Change<R> for F where
    F: for<'c> FnOnce(
            &'c mut AsyncPgConnection,
            &'c mut Vec<NewEvent>,
        ) -> BoxFuture<'c, Result<R, ApiError>>
        + Send
        + 'static
{
}

/// How a write is told from its resends: the RPC's name, the client's `request_id` (may be
/// empty) and the request encoded without it.
#[derive(Debug, Clone)]
pub struct Resend {
    pub method: &'static str,
    pub request_id: String,
    pub payload: Vec<u8>,
}

impl Resend {
    /// The resend identity of `request`, an RPC `method`'s request message.
    pub fn of<T: Idempotent>(method: &'static str, request: &T) -> Resend {
        Resend {
            method,
            request_id: request.request_id().to_owned(),
            payload: request.payload(),
        }
    }
}

/// Runs `change` as one audited, idempotent transaction; `resend` tells a resend (which gets
/// the stored first answer) from a reuse of its id (ALREADY_EXISTS).
pub async fn run<R, F>(
    ctx: &Context,
    principal: &Principal,
    resend: Resend,
    change: F,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
    F: Change<R>,
{
    let Resend {
        method,
        request_id,
        payload,
    } = resend;
    let request_id = parse_request_id(&request_id)?;
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(&payload);
    let payload_hash = h.finalize().to_vec();
    let principal_hash = fingerprint(principal);
    let sub = principal.sub.clone();
    let pii = ctx.pii.clone();
    transact(ctx, principal, request_id, move |conn, audit| {
        async move {
            if let Some(id) = request_id {
                idempotency::lock(conn, &sub, id).await?;
                if let Some(stored) = idempotency::find(conn, &sub, id).await? {
                    if stored.payload_hash != payload_hash {
                        return Err(ApiError::AlreadyExists(format!(
                            "request_id {id} was already used for a different request ({}); use a new request_id",
                            stored.method
                        )));
                    }
                    if stored.principal_hash != principal_hash {
                        return Err(ApiError::AlreadyExists(format!(
                            "request_id {id} was first sent with other roles, region or unit; use a new request_id"
                        )));
                    }
                    let plain = pii.decrypt_bytes(&stored.response).map_err(|_| {
                        ApiError::Internal(format!("the stored answer to request_id {id} does not open with the configured PII keys"))
                    })?;
                    return R::decode(plain.as_slice()).map_err(|e| ApiError::Internal(format!("stored response: {e}")));
                }
            }
            let response = change(conn, audit).await?;
            if let Some(id) = request_id {
                let sealed = pii.encrypt_bytes(&response.encode_to_vec());
                idempotency::save(conn, &sub, id, method, &payload_hash, &principal_hash, &sealed).await?;
            }
            Ok(response)
        }
        .boxed()
    })
    .await
}

/// What a stored answer is bound to besides the `sub`: roles, region and unit.
fn fingerprint(p: &Principal) -> Vec<u8> {
    let mut h = Sha256::new();
    for r in &p.roles {
        h.update(r.as_str().as_bytes());
        h.update([0]);
    }
    h.update([1]);
    h.update(p.scope.to_string().as_bytes());
    h.update([0]);
    h.update(p.unit.as_deref().unwrap_or("").as_bytes());
    h.finalize().to_vec()
}

/// Runs `change` as one audited transaction, for mutations whose idempotency is their own
/// (reports carry `client_report_id`) or that are naturally idempotent (content-addressed uploads).
pub async fn audited<R, F>(ctx: &Context, principal: &Principal, change: F) -> Result<R, ApiError>
where
    R: Send + 'static,
    F: Change<R>,
{
    transact(ctx, principal, None, change).await
}

async fn transact<R, F>(
    ctx: &Context,
    principal: &Principal,
    request_id: Option<Uuid>,
    change: F,
) -> Result<R, ApiError>
where
    R: Send + 'static,
    F: Change<R>,
{
    let actor = Actor {
        sub: principal.sub.clone(),
        roles: principal.role_names(),
        request_id: request_id.map(|u| u.to_string()).unwrap_or_default(),
    };
    transact_on(&ctx.pool, actor, change).await
}

/// Runs `change` in one transaction on `pool`, appending its audit events (by `actor` unless
/// an event names its own), in a task of its own so that cancellation cannot split it.
pub async fn transact_on<R, F>(
    pool: &crate::store::Pool,
    actor: Actor,
    change: F,
) -> Result<R, ApiError>
where
    R: Send + 'static,
    F: Change<R>,
{
    let pool = pool.clone();
    let work = tokio::spawn(async move {
        let mut conn = pool.get().await?;
        conn.transaction::<R, ApiError, _>(async |conn| {
            let mut events = Vec::new();
            let response = change(conn, &mut events).await?;
            audit::append(conn, &actor, events).await?;
            Ok(response)
        })
        .await
    });
    let out = work
        .await
        .map_err(|e| ApiError::Internal(format!("mutation task: {e}")))?;
    if out.is_ok() {
        audit::committed();
    }
    out
}

/// A request whose idempotency payload is itself without the `request_id` field.
pub trait Idempotent: Message + Clone {
    /// The request id as sent.
    fn request_id(&self) -> &str;
    /// The request with `request_id` cleared, encoded.
    fn payload(&self) -> Vec<u8>;
}

/// Implements [`Idempotent`] for request messages with a `request_id` string field.
#[macro_export]
macro_rules! idempotent {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::app::mutation::Idempotent for $t {
            fn request_id(&self) -> &str {
                &self.request_id
            }
            fn payload(&self) -> Vec<u8> {
                let mut m = self.clone();
                m.request_id.clear();
                prost::Message::encode_to_vec(&m)
            }
        }
    )*};
}
