//! The unified taxonomy (`categories`) and the source systems' codes mapped onto it.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{Array, Double, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::domain::merge::MergeRule;

/// A unified category to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryInput {
    pub code: String,
    pub name: String,
    pub parent_code: Option<String>,
    pub merge_radius_m: f64,
    pub merge_window_hours: i32,
    /// Working hours to sign for a dispatched case (None: the server default).
    pub sign_limit_hours: Option<i32>,
    /// Working days to handle it (None: the server default).
    pub handle_limit_days: Option<i32>,
}

/// A source code mapped to a unified code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingInput {
    pub source_system: String,
    pub source_code: String,
    pub unified_code: String,
}

/// Upserts categories (majors before minors) and mappings; returns (categories, mappings) written.
pub async fn import(
    conn: &mut AsyncPgConnection,
    mut cats: Vec<CategoryInput>,
    maps: Vec<MappingInput>,
) -> QueryResult<(usize, usize)> {
    cats.sort_by_key(|c| c.parent_code.is_some());
    for chunk in cats.chunks(2000) {
        diesel::sql_query(
            "INSERT INTO categories AS c (code, name, parent_code, merge_radius_m, merge_window_hours, sign_limit_hours, handle_limit_days)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int4[], $6::int4[], $7::int4[])
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, parent_code = excluded.parent_code,
                 merge_radius_m = excluded.merge_radius_m, merge_window_hours = excluded.merge_window_hours,
                 sign_limit_hours = excluded.sign_limit_hours, handle_limit_days = excluded.handle_limit_days, updated_at = now()",
        )
        .bind::<Array<Text>, _>(chunk.iter().map(|c| c.code.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(chunk.iter().map(|c| c.name.as_str()).collect::<Vec<_>>())
        .bind::<Array<diesel::sql_types::Nullable<Text>>, _>(chunk.iter().map(|c| c.parent_code.as_deref()).collect::<Vec<_>>())
        .bind::<Array<Double>, _>(chunk.iter().map(|c| c.merge_radius_m).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(chunk.iter().map(|c| c.merge_window_hours).collect::<Vec<_>>())
        .bind::<Array<diesel::sql_types::Nullable<Integer>>, _>(chunk.iter().map(|c| c.sign_limit_hours).collect::<Vec<_>>())
        .bind::<Array<diesel::sql_types::Nullable<Integer>>, _>(chunk.iter().map(|c| c.handle_limit_days).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    for chunk in maps.chunks(5000) {
        diesel::sql_query(
            "INSERT INTO category_mappings (source_system, source_code, unified_code)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
             ON CONFLICT (source_system, source_code) DO UPDATE SET unified_code = excluded.unified_code",
        )
        .bind::<Array<Text>, _>(chunk.iter().map(|m| m.source_system.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(chunk.iter().map(|m| m.source_code.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(chunk.iter().map(|m| m.unified_code.as_str()).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    Ok((cats.len(), maps.len()))
}

#[derive(QueryableByName)]
struct Resolved {
    #[diesel(sql_type = Text)]
    source_system: String,
    #[diesel(sql_type = Text)]
    source_code: String,
    #[diesel(sql_type = Text)]
    unified: String,
    #[diesel(sql_type = Double)]
    radius: f64,
    #[diesel(sql_type = Integer)]
    window_hours: i32,
}

/// A unified category with its merge rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Unified {
    pub code: String,
    pub rule: MergeRule,
}

/// Maps (source_system, source_code) pairs: the system's own mapping first, then a mapping
/// for any system (`source_system` empty), then the code itself if it is a unified code.
pub async fn resolve(
    mut conn: &AsyncPgConnection,
    pairs: &[(String, String)],
) -> QueryResult<HashMap<(String, String), Unified>> {
    let systems: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
    let codes: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
    let rows: Vec<Resolved> = ResolveCategories {
        b1: systems,
        b2: codes,
    }
    .load(&mut conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let rule = MergeRule {
                radius_m: r.radius,
                window: chrono::Duration::hours(r.window_hours as i64),
            };
            (
                (r.source_system, r.source_code),
                Unified {
                    code: r.unified,
                    rule,
                },
            )
        })
        .collect())
}

// `categories_resolve` (migration 12): the system's own mapping, then a mapping for any
// system, then the code itself as a unified code.
crate::prepared!(struct ResolveCategories = "SELECT source_system, source_code, unified, radius, window_hours FROM categories_resolve($1, $2)" { b1: B1 => Array<Text>, b2: B2 => Array<Text> });

/// The time limits a category sets (sign-for hours, handling days); `None` where it sets none
/// or the code is unknown.
pub async fn limits(
    conn: &mut AsyncPgConnection,
    code: &str,
) -> QueryResult<(Option<i32>, Option<i32>)> {
    use super::schema::categories;
    Ok(categories::table
        .find(code)
        .select((categories::sign_limit_hours, categories::handle_limit_days))
        .first(conn)
        .await
        .optional()?
        .unwrap_or((None, None)))
}
