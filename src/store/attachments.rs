//! The `attachments` table: metadata of content-addressed uploads (the bytes live in the
//! attachment store).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::attachments;

/// Which of `ids` (SHA-256 hex) are stored.
pub async fn existing(conn: &mut AsyncPgConnection, ids: &[&str]) -> QueryResult<Vec<String>> {
    attachments::table
        .filter(attachments::sha256.eq_any(ids))
        .select(attachments::sha256)
        .load(conn)
        .await
}

/// Records an upload; uploading the same bytes again changes nothing. Returns whether it is new.
pub async fn record(
    conn: &mut AsyncPgConnection,
    sha256: &str,
    content_type: &str,
    size: i64,
    uploaded_by: &str,
) -> QueryResult<bool> {
    let n = diesel::insert_into(attachments::table)
        .values((
            attachments::sha256.eq(sha256),
            attachments::content_type.eq(content_type),
            attachments::size_bytes.eq(size),
            attachments::uploaded_by.eq(uploaded_by),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// The stored content type and size of an attachment.
pub async fn find(
    conn: &mut AsyncPgConnection,
    sha256: &str,
) -> QueryResult<Option<(String, i64)>> {
    attachments::table
        .find(sha256)
        .select((attachments::content_type, attachments::size_bytes))
        .first(conn)
        .await
        .optional()
}
