//! The working-day calendar (`calendar_days`): public holidays and adjusted working days.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::calendar_days;

/// One listed day: a holiday (`working` = false) or an adjusted working day (true).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Insertable)]
#[diesel(table_name = calendar_days, check_for_backend(diesel::pg::Pg))]
pub struct CalendarDay {
    pub day: NaiveDate,
    pub working: bool,
    pub name: String,
}

/// Every listed day.
pub async fn load(conn: &mut AsyncPgConnection) -> QueryResult<BTreeMap<NaiveDate, bool>> {
    let rows: Vec<(NaiveDate, bool)> = calendar_days::table
        .select((calendar_days::day, calendar_days::working))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Upserts listed days; returns how many were written.
pub async fn upsert(conn: &mut AsyncPgConnection, days: &[CalendarDay]) -> QueryResult<usize> {
    let mut n = 0;
    for chunk in days.chunks(5000) {
        n += diesel::insert_into(calendar_days::table)
            .values(chunk)
            .on_conflict(calendar_days::day)
            .do_update()
            .set((
                calendar_days::working.eq(diesel::upsert::excluded(calendar_days::working)),
                calendar_days::name.eq(diesel::upsert::excluded(calendar_days::name)),
            ))
            .execute(conn)
            .await?;
    }
    Ok(n)
}
