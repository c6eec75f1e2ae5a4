//! `catalog_items`: the versions of the 权责清单 items. Rows are only ever inserted.

use crate::domain::region::RegionCode;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::catalog_items;
use crate::domain::catalog::{self, ItemInput, Validity};

/// One stored version.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = catalog_items, check_for_backend(diesel::pg::Pg))]
pub struct CatalogItem {
    pub town_code: RegionCode,
    pub code: String,
    pub version: i32,
    pub name: String,
    pub kind: String,
    pub source_department: String,
    pub delegation: String,
    pub legal_basis: String,
    pub time_limit_days: Option<i32>,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
    pub withdrawn: bool,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
}

impl CatalogItem {
    fn validity(&self) -> Validity {
        Validity {
            version: self.version,
            effective_from: self.effective_from,
            effective_to: self.effective_to,
            withdrawn: self.withdrawn,
        }
    }

    /// Whether the record says the same as `input` (ignoring version and recording).
    fn same_as(&self, i: &ItemInput) -> bool {
        self.name == i.name
            && self.kind == i.kind
            && self.source_department == i.source_department
            && self.delegation == i.delegation
            && self.legal_basis == i.legal_basis
            && self.time_limit_days == i.time_limit_days
            && self.effective_from == i.effective_from
            && self.effective_to == i.effective_to
            && self.withdrawn == i.withdrawn
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub created: i32,
    pub versioned: i32,
    pub unchanged: i32,
    pub withdrawn: i32,
}

/// Every version of the items of `town` (by code, then version).
pub async fn history(
    conn: &mut AsyncPgConnection,
    town: &RegionCode,
    code: Option<&str>,
) -> QueryResult<Vec<CatalogItem>> {
    let mut q = catalog_items::table
        .filter(catalog_items::town_code.eq(town))
        .order((catalog_items::code, catalog_items::version))
        .select(CatalogItem::as_select())
        .into_boxed();
    if let Some(c) = code {
        q = q.filter(catalog_items::code.eq(c));
    }
    q.load(conn).await
}

/// The versions of `town`'s items in force on `day`, by code.
pub async fn in_force(
    conn: &mut AsyncPgConnection,
    town: &RegionCode,
    code: Option<&str>,
    day: NaiveDate,
) -> QueryResult<Vec<CatalogItem>> {
    let all = history(conn, town, code).await?;
    let mut out = Vec::new();
    for chunk in all.chunk_by(|a, b| a.code == b.code) {
        let validity: Vec<Validity> = chunk.iter().map(CatalogItem::validity).collect();
        if let Some(v) = catalog::in_force(&validity, day)
            && let Some(item) = chunk.iter().find(|i| i.version == v)
        {
            out.push(item.clone());
        }
    }
    Ok(out)
}

/// Records the items that differ from their latest version as new versions (one import
/// holding a town's advisory lock at a time, so versions are never taken twice); returns the
/// summary and the new versions.
pub async fn import(
    conn: &mut AsyncPgConnection,
    items: Vec<ItemInput>,
    by: &str,
    now: DateTime<Utc>,
) -> QueryResult<(Summary, Vec<CatalogItem>)> {
    let mut towns: Vec<&RegionCode> = items.iter().map(|i| &i.town_code).collect();
    towns.sort_unstable();
    towns.dedup();
    for t in &towns {
        diesel::sql_query("SELECT pg_advisory_xact_lock(7270010, hashtext($1))")
            .bind::<diesel::sql_types::Text, _>(t.as_str())
            .execute(conn)
            .await?;
    }
    let mut summary = Summary::default();
    let mut new = Vec::new();
    for t in towns {
        let existing = history(conn, t, None).await?;
        for i in items.iter().filter(|i| &i.town_code == t) {
            let latest = existing
                .iter()
                .chain(new.iter())
                .filter(|e: &&CatalogItem| &e.town_code == t && e.code == i.code)
                .max_by_key(|e| e.version);
            let version = match latest {
                Some(l) if l.same_as(i) => {
                    summary.unchanged += 1;
                    continue;
                }
                Some(l) => {
                    summary.versioned += 1;
                    l.version + 1
                }
                None => {
                    summary.created += 1;
                    1
                }
            };
            if i.withdrawn {
                summary.withdrawn += 1;
            }
            new.push(CatalogItem {
                town_code: i.town_code.clone(),
                code: i.code.clone(),
                version,
                name: i.name.clone(),
                kind: i.kind.to_owned(),
                source_department: i.source_department.clone(),
                delegation: i.delegation.to_owned(),
                legal_basis: i.legal_basis.clone(),
                time_limit_days: i.time_limit_days,
                effective_from: i.effective_from,
                effective_to: i.effective_to,
                withdrawn: i.withdrawn,
                recorded_at: now,
                recorded_by: by.to_owned(),
            });
        }
    }
    for chunk in new.chunks(1000) {
        diesel::insert_into(catalog_items::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    Ok((summary, new))
}

/// One audit event per new version.
pub fn audit_events(new: &[CatalogItem]) -> Vec<super::audit::NewEvent> {
    new.iter()
        .map(|i| {
            super::audit::NewEvent::ok(
                if i.withdrawn {
                    "catalog.withdraw"
                } else {
                    "catalog.version"
                },
                "catalog_item",
                &format!("{}/{}", i.town_code, i.code),
                &i.town_code,
                None,
                serde_json::to_value(i).ok(),
            )
        })
        .collect()
}
