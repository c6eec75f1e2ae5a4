//! The SLA ticker and the early-warning detectors: a background task on every replica, safe
//! with several on one database.
//!
//! Each tick is one audited transaction that first takes a transaction-scoped advisory lock
//! with `pg_try_advisory_xact_lock`: a replica that finds it taken skips the tick. The updates
//! are also idempotent by themselves (each marks only rows not marked yet, and alerts are
//! unique on their `dedup_key`), so even overlapping ticks could not act twice.
//!
//! A tick, at the workflow clock's `now`:
//! 1. dispatched cases past their sign-for deadline get SIGN_OVERDUE;
//! 2. cases with their unit past the handling deadline get OVERDUE;
//! 3. at `urge_at` (the next working morning after the deadline) the automatic 催办: URGED,
//!    urge count + 1;
//! 4. at `escalate_at` (N working days after the deadline) the 通报: ESCALATED, and an
//!    OVERDUE_ESCALATION alert;
//! 5. dashboard deltas are folded into the aggregates;
//! 6. the detectors look at reports received since their last run: SPIKE (a category in a grid
//!    far above its usual daily rate) and REPEAT_CALLER (one phone reporting often).
//!
//! What each mark does to a case is the case workflow's rule (`workflow::sla_mark`); the
//! ticker finds the cases it is due on and saves each like any transition. Every change is an
//! audit event by `system:sla`, so it is in the trail and the live feed.

use chrono::{DateTime, Duration, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Bytea, Int8, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures::FutureExt;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::app::error::ApiError;
use crate::app::mutation;
use crate::app::pii::{self, Sight};
use crate::config::WorkflowSettings;
use crate::crypto::PiiCipher;
use crate::domain::workflow::{self, Mark};
use crate::store::alerts::{self, Alert, kind};
use crate::store::audit::{Actor, NewEvent};
use crate::store::cases::Case;
use crate::store::schema::cases;
use crate::store::{Pool, stats};

/// The advisory locks of the SLA marks and of the detectors (the fold has its own).
const TICK_LOCK: i64 = 7270005;
const DETECT_LOCK: i64 = 7270006;

/// Takes a transaction-scoped advisory lock if it is free.
async fn try_lock(conn: &mut AsyncPgConnection, key: i64) -> Result<bool, ApiError> {
    Ok(diesel::select(
        sql::<Bool>("pg_try_advisory_xact_lock(")
            .bind::<Int8, _>(key)
            .sql(")"),
    )
    .get_result(conn)
    .await?)
}
/// Cases marked per step and tick: a backlog (a server down for days) is worked off over
/// several ticks instead of one long statement.
const SLA_BATCH: i64 = 2000;
/// Reports are rescanned this far back, for transactions that committed late.
const RESCAN: Duration = Duration::minutes(5);

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// False when another replica held the tick.
    pub ran: bool,
    pub sign_overdue: usize,
    pub overdue: usize,
    pub urged: usize,
    pub escalated: usize,
    pub alerts: usize,
}

/// The ticker.
#[derive(Clone)]
pub struct Ticker {
    pub pool: Pool,
    pub settings: WorkflowSettings,
    pub pii: PiiCipher,
}

fn system() -> Actor {
    Actor {
        sub: "system:sla".into(),
        roles: vec![],
        request_id: String::new(),
    }
}

impl Ticker {
    /// Runs every `sla_tick` until `stop`.
    pub fn spawn(self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let now = self.settings.clock.now();
                match self.tick(now).await {
                    Ok(r) if r.sign_overdue + r.overdue + r.urged + r.escalated + r.alerts > 0 => {
                        tracing::info!(?r, "sla tick")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "sla tick failed"),
                }
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(self.settings.sla_tick) => {}
                }
            }
        })
    }

    /// One tick at `now` (see the module docs): the SLA marks, the fold and the detectors, each
    /// in a transaction of its own, so that one failing does not hold up the others.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, ApiError> {
        let marks = self.marks(now).await;
        let folded = mutation::transact_on(&self.pool, system(), |conn, _| {
            async move { Ok(stats::fold(conn).await?) }.boxed()
        })
        .await;
        let this = self.clone();
        let detected = mutation::transact_on(&self.pool, system(), move |conn, audit| {
            async move {
                if !try_lock(conn, DETECT_LOCK).await? {
                    return Ok(0);
                }
                this.detect(conn, audit, now).await
            }
            .boxed()
        })
        .await;
        let mut r = marks?;
        r.alerts += detected?;
        folded?;
        Ok(r)
    }

    /// The SLA marks and the escalation alerts, in one transaction. What a mark does is the
    /// case workflow's rule ([`workflow::sla_mark`]); the query here only narrows the cases
    /// to those it may apply to, and each is written like any transition (`save_flow`).
    async fn marks(&self, now: DateTime<Utc>) -> Result<TickReport, ApiError> {
        let this = self.clone();
        mutation::transact_on(&self.pool, system(), move |conn, audit| {
            async move {
                let mut r = TickReport::default();
                if !try_lock(conn, TICK_LOCK).await? {
                    return Ok(r);
                }
                r.ran = true;
                for mark in Mark::ALL {
                    let marked = this.mark(conn, audit, mark, now).await?;
                    match mark {
                        Mark::SignOverdue => r.sign_overdue = marked.len(),
                        Mark::Overdue => r.overdue = marked.len(),
                        Mark::AutoUrge => r.urged = marked.len(),
                        Mark::Escalate => {
                            r.escalated = marked.len();
                            for c in &marked {
                                r.alerts += raise(conn, audit, this.escalation(c, now)).await?;
                            }
                        }
                    }
                }
                Ok(r)
            }
            .boxed()
        })
        .await
    }

    /// Applies `mark` to the cases it is due on (at most [`SLA_BATCH`]); returns them as saved.
    /// Rows another transaction holds are skipped: the next tick sees them.
    async fn mark(
        &self,
        conn: &mut AsyncPgConnection,
        audit: &mut Vec<NewEvent>,
        mark: Mark,
        now: DateTime<Utc>,
    ) -> Result<Vec<Case>, ApiError> {
        let (due, unmarked) = match mark {
            Mark::SignOverdue => (
                "sign_deadline <= ",
                " AND NOT ('SIGN_OVERDUE' = ANY (flags))",
            ),
            Mark::Overdue => ("deadline <= ", " AND NOT ('OVERDUE' = ANY (flags))"),
            Mark::AutoUrge => ("urge_at <= ", ""),
            Mark::Escalate => ("escalate_at <= ", ""),
        };
        let statuses: Vec<&str> = mark.statuses().iter().map(|s| s.as_str()).collect();
        let due_cases: Vec<Case> = cases::table
            .select(Case::as_select())
            .filter(cases::status.eq_any(statuses))
            .filter(sql::<Bool>(due).bind::<Timestamptz, _>(now).sql(unmarked))
            .order(cases::case_id)
            .limit(SLA_BATCH)
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        let mut saved = Vec::new();
        for c in due_cases {
            let Some(next) = c.flow().and_then(|f| workflow::sla_mark(&f, mark, now)) else {
                continue;
            };
            let s = crate::store::cases::save_flow(conn, c.case_id, &next).await?;
            audit.push(NewEvent::ok(
                "case.sla",
                "case",
                &s.case_id.to_string(),
                &s.region_code,
                Some(c.before()),
                Some(s.change(mark.as_str(), "")),
            ));
            saved.push(s);
        }
        Ok(saved)
    }

    /// The OVERDUE_ESCALATION alert of an escalated case.
    fn escalation(&self, c: &Case, now: DateTime<Utc>) -> Alert {
        Alert {
            alert_id: Uuid::now_v7(),
            kind: kind::OVERDUE_ESCALATION.into(),
            region_code: c.region_code.clone(),
            category: c.unified_category.clone(),
            case_id: Some(c.case_id),
            subject: c.case_no.clone(),
            detail: json!({
                "message": format!("case {} is still overdue {} working days after its deadline (通报)", c.case_no, self.settings.limits.escalate_days),
                "deadline": c.deadline, "assignee": c.assignee, "urge_count": c.urge_count,
            }),
            dedup_key: format!(
                "ESCALATE:{}:{}",
                c.case_id,
                c.deadline.map(|d| d.timestamp()).unwrap_or(0)
            ),
            raised_at: now,
        }
    }

    /// The early-warning detectors over reports received since their last run.
    async fn detect(
        &self,
        conn: &mut AsyncPgConnection,
        audit: &mut Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<usize, ApiError> {
        // Report ids are UUIDv7 stamped at receipt: the scan uses the primary key.
        let scan_start = Utc::now();
        let mark: Option<DateTime<Utc>> =
            diesel::sql_query("SELECT mark FROM detector_marks WHERE name = 'reports'")
                .get_result::<DetectorMark>(conn)
                .await
                .optional()?
                .map(|m| m.mark);
        let since = mark
            .map(|m| m - RESCAN)
            .unwrap_or(scan_start - Duration::days(1));
        let lower = uuid_floor(since);
        let s = &self.settings;
        let mut raised = 0;

        let spikes: Vec<Spike> = diesel::sql_query(
            "WITH recent AS (
                 SELECT DISTINCT region_code, unified_category FROM reports
                  WHERE report_id >= $1 AND resolved_grid_code <> '' AND unified_category <> '')
             SELECT r.region_code, r.unified_category,
                    (SELECT count(*) FROM reports x WHERE x.region_code = r.region_code AND x.unified_category = r.unified_category
                        AND x.occurred_at > $2 - interval '24 hours' AND x.occurred_at <= $2) AS day_n,
                    (SELECT count(*) FROM reports x WHERE x.region_code = r.region_code AND x.unified_category = r.unified_category
                        AND x.occurred_at > $2 - interval '29 days' AND x.occurred_at <= $2 - interval '24 hours') AS base_n
               FROM recent r",
        )
        .bind::<diesel::sql_types::Uuid, _>(lower)
        .bind::<Timestamptz, _>(now)
        .load(conn)
        .await?;
        let day = (now + Duration::hours(8)).date_naive();
        for sp in spikes {
            let usual = sp.base_n as f64 / 28.0;
            if sp.day_n < i64::from(s.spike_min_reports)
                || (sp.day_n as f64) < s.spike_factor * usual
            {
                continue;
            }
            let a = Alert {
                alert_id: Uuid::now_v7(),
                kind: kind::SPIKE.into(),
                region_code: sp.region_code.clone(),
                category: sp.unified_category.clone(),
                case_id: None,
                subject: sp.region_code.to_string(),
                detail: json!({
                    "message": format!("{} reports of {} in {} in 24 h; usually {:.1} a day", sp.day_n, sp.unified_category, sp.region_code, usual),
                    "reports_24h": sp.day_n, "usual_per_day": usual, "baseline_days": 28,
                }),
                dedup_key: format!("SPIKE:{}:{}:{day}", sp.region_code, sp.unified_category),
                raised_at: now,
            };
            raised += raise(conn, audit, a).await?;
        }

        let window = Duration::from_std(s.repeat_caller_window).unwrap_or(Duration::days(30));
        let callers: Vec<Caller> = diesel::sql_query(
            "WITH recent AS (
                 SELECT DISTINCT reporter_phone_index AS ix FROM reports
                  WHERE report_id >= $1 AND reporter_phone_index IS NOT NULL)
             SELECT r.ix, count(*) AS n,
                    (array_agg(x.reporter_phone_enc ORDER BY x.occurred_at DESC))[1] AS enc,
                    (array_agg(x.region_code ORDER BY x.occurred_at DESC))[1] AS region_code
               FROM recent r JOIN reports x ON x.reporter_phone_index = r.ix
                AND x.occurred_at > $2 AND x.occurred_at <= $3
              GROUP BY r.ix HAVING count(*) >= $4",
        )
        .bind::<diesel::sql_types::Uuid, _>(lower)
        .bind::<Timestamptz, _>(now - window)
        .bind::<Timestamptz, _>(now)
        .bind::<Int8, _>(i64::from(s.repeat_caller_threshold))
        .load(conn)
        .await?;
        for c in callers {
            let masked = pii::show(
                &self.pii,
                c.enc.as_ref(),
                "reports.reporter_phone_enc",
                Sight::Masked,
            );
            let days = window.num_days();
            let a = Alert {
                alert_id: Uuid::now_v7(),
                kind: kind::REPEAT_CALLER.into(),
                region_code: c.region_code.clone(),
                category: String::new(),
                case_id: None,
                subject: masked.clone(),
                detail: json!({
                    "message": format!("{masked} reported {} times in {days} days", c.n),
                    "reports": c.n, "window_days": days,
                }),
                dedup_key: format!("REPEAT_CALLER:{}:{day}", hex::encode(&c.ix)),
                raised_at: now,
            };
            raised += raise(conn, audit, a).await?;
        }
        diesel::sql_query(
            "INSERT INTO detector_marks (name, mark) VALUES ('reports', $1)
             ON CONFLICT (name) DO UPDATE SET mark = excluded.mark",
        )
        .bind::<Timestamptz, _>(scan_start)
        .execute(conn)
        .await?;
        Ok(raised)
    }
}

#[derive(QueryableByName)]
struct DetectorMark {
    #[diesel(sql_type = Timestamptz)]
    mark: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Spike {
    #[diesel(sql_type = Text)]
    region_code: crate::domain::region::RegionCode,
    #[diesel(sql_type = Text)]
    unified_category: String,
    #[diesel(sql_type = Int8)]
    day_n: i64,
    #[diesel(sql_type = Int8)]
    base_n: i64,
}

#[derive(QueryableByName)]
struct Caller {
    #[diesel(sql_type = Bytea)]
    ix: Vec<u8>,
    #[diesel(sql_type = Int8)]
    n: i64,
    #[diesel(sql_type = Nullable<Bytea>)]
    enc: Option<crate::domain::pii::Sealed<crate::domain::pii::Phone>>,
    #[diesel(sql_type = Text)]
    region_code: crate::domain::region::RegionCode,
}

/// The smallest UUIDv7 of millisecond `t`: a lower bound for ids generated at or after it.
fn uuid_floor(t: DateTime<Utc>) -> Uuid {
    let ms = t.timestamp_millis().max(0) as u64;
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    Uuid::from_bytes(b)
}

/// Stores an alert (unless it exists) and audits it; returns 1 if it is new.
pub async fn raise(
    conn: &mut AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    a: Alert,
) -> Result<usize, ApiError> {
    let Some(stored) = alerts::raise(conn, &a).await? else {
        return Ok(0);
    };
    audit.push(NewEvent::ok(
        "alert.raise",
        "alert",
        &stored.alert_id.to_string(),
        &stored.region_code,
        None,
        Some(serde_json::to_value(&stored).unwrap_or_default()),
    ));
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_floor_is_below_every_id_of_that_millisecond() {
        let t = Utc::now();
        let floor = uuid_floor(t);
        let id = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            t.timestamp() as u64,
            t.timestamp_subsec_nanos(),
        ));
        assert!(floor <= id);
        assert!(uuid_floor(t + Duration::milliseconds(2)) > id);
    }
}
