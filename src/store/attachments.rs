//! The `attachments` table: metadata of content-addressed uploads (the bytes live in the
//! attachment store).

use crate::domain::principal::Scope;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::attachments;

/// Which of `ids` (SHA-256 hex) are stored, with the regions they were uploaded from.
pub async fn existing(
    conn: &mut AsyncPgConnection,
    ids: &[&str],
) -> QueryResult<Vec<(String, Vec<String>)>> {
    let rows: Vec<(String, Vec<Option<String>>)> = attachments::table
        .filter(attachments::sha256.eq_any(ids))
        .select((attachments::sha256, attachments::upload_regions))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(sha, regions)| (sha, regions.into_iter().flatten().collect()))
        .collect())
}

/// Whether a caller of `scope` may cite an attachment uploaded from `regions`: one of them
/// holds the scope or lies inside it (none known: uploaded before regions were kept).
pub fn citable(scope: &Scope, regions: &[String]) -> bool {
    regions.is_empty() || regions.iter().any(|r| scope.overlaps(r))
}

/// Records an upload by a caller of `scope` (its prefix is stored, empty for the whole
/// country); the same bytes again only add the prefix. Returns whether the bytes are new.
pub async fn record(
    conn: &mut AsyncPgConnection,
    sha256: &str,
    content_type: &str,
    size: i64,
    uploaded_by: &str,
    scope: &Scope,
) -> QueryResult<bool> {
    let region = scope.prefix();
    let n = diesel::insert_into(attachments::table)
        .values((
            attachments::sha256.eq(sha256),
            attachments::content_type.eq(content_type),
            attachments::size_bytes.eq(size),
            attachments::uploaded_by.eq(uploaded_by),
            attachments::upload_regions.eq(vec![Some(region.to_owned())]),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if n == 0 {
        diesel::sql_query(
            "UPDATE attachments SET upload_regions = array_append(upload_regions, $2)
              WHERE sha256 = $1 AND NOT ($2 = ANY (upload_regions))",
        )
        .bind::<diesel::sql_types::Text, _>(sha256)
        .bind::<diesel::sql_types::Text, _>(region)
        .execute(conn)
        .await?;
    }
    Ok(n == 1)
}

/// Whether a report within `scope` cites the attachment `sha256`.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn cited_within(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    sha256: &str,
) -> QueryResult<bool> {
    use super::schema::reports;
    diesel::select(diesel::dsl::exists(
        reports::table
            .filter(reports::region_code.like(format!("{}%", scope.prefix())))
            .filter(reports::attachments.contains(vec![Some(sha256.to_owned())])),
    ))
    .get_result(conn)
    .await
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
