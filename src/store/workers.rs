//! The `workers` table. The phone is only ever stored encrypted, with a blind index.

use crate::domain::pii::{Phone, Sealed};
use crate::domain::principal::Scope;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::workers;

/// A worker as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workers, check_for_backend(diesel::pg::Pg))]
pub struct Worker {
    pub worker_id: String,
    pub name: String,
    pub phone_enc: Option<Sealed<Phone>>,
    pub phone_index: Option<Vec<u8>>,
    pub region_code: String,
    pub grid_codes: Vec<Option<String>>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Insert/replace form.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = workers)]
pub struct NewWorker<'a> {
    pub worker_id: &'a str,
    pub name: &'a str,
    pub phone_enc: Option<Sealed<Phone>>,
    pub phone_index: Option<Vec<u8>>,
    pub region_code: &'a str,
    pub grid_codes: Vec<Option<String>>,
    pub active: bool,
}

/// The worker `id`, whatever its region (callers check scope on the result).
pub async fn find(conn: &mut AsyncPgConnection, id: &str) -> QueryResult<Option<Worker>> {
    workers::table
        .find(id)
        .select(Worker::as_select())
        .first(conn)
        .await
        .optional()
}

/// Inserts or replaces a worker; returns the stored row.
pub async fn upsert(conn: &mut AsyncPgConnection, w: NewWorker<'_>) -> QueryResult<Worker> {
    diesel::insert_into(workers::table)
        .values(&w)
        .on_conflict(workers::worker_id)
        .do_update()
        .set((
            workers::name.eq(excluded(workers::name)),
            workers::phone_enc.eq(excluded(workers::phone_enc)),
            workers::phone_index.eq(excluded(workers::phone_index)),
            workers::region_code.eq(excluded(workers::region_code)),
            workers::grid_codes.eq(excluded(workers::grid_codes)),
            workers::active.eq(excluded(workers::active)),
            workers::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Worker::as_returning())
        .get_result(conn)
        .await
}

/// Workers whose region lies within `prefix`, optionally covering `grid`, after `after`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    grid: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Worker>> {
    let prefix = scope.prefix();
    let mut q = workers::table
        .filter(workers::region_code.like(format!("{prefix}%")))
        .select(Worker::as_select())
        .order(workers::worker_id)
        .limit(limit)
        .into_boxed();
    if let Some(g) = grid {
        q = q.filter(workers::grid_codes.contains(vec![Some(g.to_owned())]));
    }
    if let Some(a) = after {
        q = q.filter(workers::worker_id.gt(a.to_owned()));
    }
    q.load(conn).await
}
