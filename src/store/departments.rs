//! The `departments` table: handling units cases are dispatched to.

use crate::domain::principal::Scope;
use crate::domain::region::RegionCode;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::departments;

/// A department as stored.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = departments, check_for_backend(diesel::pg::Pg))]
pub struct Department {
    pub code: String,
    pub name: String,
    pub region_code: String,
    pub kind: String,
    pub active: bool,
    #[serde(skip)]
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub updated_at: DateTime<Utc>,
}

/// Insert/replace form.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = departments)]
pub struct NewDepartment<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub region_code: &'a str,
    pub kind: &'a str,
    pub active: bool,
}

/// The department `code`, whatever its region (callers check scope on the result).
pub async fn find(conn: &mut AsyncPgConnection, code: &str) -> QueryResult<Option<Department>> {
    departments::table
        .find(code)
        .select(Department::as_select())
        .first(conn)
        .await
        .optional()
}

/// Inserts or replaces a department; returns the stored row.
pub async fn upsert(conn: &mut AsyncPgConnection, d: NewDepartment<'_>) -> QueryResult<Department> {
    diesel::insert_into(departments::table)
        .values(&d)
        .on_conflict(departments::code)
        .do_update()
        .set((
            departments::name.eq(excluded(departments::name)),
            departments::region_code.eq(excluded(departments::region_code)),
            departments::kind.eq(excluded(departments::kind)),
            departments::active.eq(excluded(departments::active)),
            departments::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Department::as_returning())
        .get_result(conn)
        .await
}

/// Departments whose region lies within `prefix`, after code `after`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Department>> {
    let prefix = scope.prefix();
    let mut q = departments::table
        .filter(departments::region_code.like(format!("{prefix}%")))
        .select(Department::as_select())
        .order(departments::code)
        .limit(limit)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(departments::code.gt(a.to_owned()));
    }
    q.load(conn).await
}

/// The region of an active handling unit: a department by code or a worker by id.
pub async fn unit_region(
    conn: &mut AsyncPgConnection,
    code: &str,
) -> QueryResult<Option<RegionCode>> {
    use super::schema::workers;
    if let Some(r) = departments::table
        .find(code)
        .filter(departments::active.eq(true))
        .select(departments::region_code)
        .first::<RegionCode>(conn)
        .await
        .optional()?
    {
        return Ok(Some(r));
    }
    workers::table
        .find(code)
        .filter(workers::active.eq(true))
        .select(workers::region_code)
        .first::<RegionCode>(conn)
        .await
        .optional()
}
