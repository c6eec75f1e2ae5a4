//! Stored first responses of mutating RPCs (AIP-155), keyed by caller and `request_id`.
//! The caller takes a transaction-scoped advisory lock on the key first, so two concurrent
//! requests with one id run one after the other: the second sees the first's stored answer.

use diesel::prelude::*;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::idempotency_keys;

/// A stored answer.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = idempotency_keys, check_for_backend(diesel::pg::Pg))]
pub struct StoredResponse {
    pub method: String,
    pub payload_hash: Vec<u8>,
    /// The first answer, sealed with the PII key.
    pub response: Vec<u8>,
    /// Hash of the whole principal that made it (roles, region, unit).
    pub principal_hash: Vec<u8>,
}

/// Serializes requests with the same key until the end of the transaction.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    principal: &str,
    request_id: Uuid,
) -> QueryResult<()> {
    LockKey {
        b1: principal,
        b2: request_id,
    }
    .execute(conn)
    .await
    .map(|_| ())
}

/// The answer stored for the key, if any.
pub async fn find(
    conn: &mut AsyncPgConnection,
    principal: &str,
    request_id: Uuid,
) -> QueryResult<Option<StoredResponse>> {
    idempotency_keys::table
        .find((principal, request_id))
        .select(StoredResponse::as_select())
        .first(conn)
        .await
        .optional()
}

/// Stores the first answer for the key (`sealed`: already encrypted).
pub async fn save(
    conn: &mut AsyncPgConnection,
    principal: &str,
    request_id: Uuid,
    method: &str,
    payload_hash: &[u8],
    principal_hash: &[u8],
    sealed: &[u8],
) -> QueryResult<()> {
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::principal.eq(principal),
            idempotency_keys::request_id.eq(request_id),
            idempotency_keys::method.eq(method),
            idempotency_keys::payload_hash.eq(payload_hash),
            idempotency_keys::principal_hash.eq(principal_hash),
            idempotency_keys::response.eq(sealed),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Forgets keys older than `days` (kept at least as long as phones may stay offline).
pub async fn expire(conn: &mut AsyncPgConnection, days: i32) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(days => $1)",
    )
    .bind::<diesel::sql_types::Integer, _>(days)
    .execute(conn)
    .await
}

crate::prepared!(struct LockKey = "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2::text, 7270003))" { b1: B1 => Text, b2: B2 => SqlUuid });
