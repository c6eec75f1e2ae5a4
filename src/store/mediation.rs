//! Mediation records: cases, parties (ciphertext and blind indexes only), sessions and
//! agreement versions (append-only, enforced by triggers) and follow-ups.

use crate::domain::ids::{CaseId, MediationCaseId};
use crate::domain::pii::{Address, IdNumber, Name, Phone, Sealed};
use crate::domain::principal::Scope;
use crate::domain::region::RegionCode;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{
    mediation_agreements, mediation_cases, mediation_follow_ups, mediation_parties,
    mediation_sessions,
};

/// A stored case.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mediation_cases, check_for_backend(diesel::pg::Pg))]
pub struct MediationCase {
    pub case_id: MediationCaseId,
    pub case_no: String,
    pub source: String,
    pub linked_case_id: Option<CaseId>,
    pub hotline_order_no: Option<String>,
    pub region_code: RegionCode,
    pub dispute_type: String,
    pub kind: String,
    pub team: String,
    pub mediators: Vec<Option<String>>,
    pub status: String,
    pub outcome: String,
    pub summary: String,
    pub referral: String,
    pub referral_note: String,
    pub registered_at: DateTime<Utc>,
    pub outcome_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The latest agreement's performance deadline.
    pub agreement_deadline: Option<NaiveDate>,
    /// What the first follow-up found.
    pub performed: Option<bool>,
    pub created_by: String,
    pub version: i64,
}

impl MediationCase {
    /// A snapshot for the audit trail: no personal data.
    pub fn audit_view(&self) -> serde_json::Value {
        serde_json::json!({
            "case_no": self.case_no,
            "status": self.status,
            "outcome": self.outcome,
            "dispute_type": self.dispute_type,
            "kind": self.kind,
            "team": self.team,
            "referral": self.referral,
            "linked_case_id": self.linked_case_id,
            "version": self.version,
        })
    }
}

/// A stored party: personal fields as ciphertext.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mediation_parties, check_for_backend(diesel::pg::Pg))]
pub struct PartyRow {
    pub case_id: MediationCaseId,
    pub position: i16,
    pub role: String,
    pub name_enc: Sealed<Name>,
    pub id_number_enc: Option<Sealed<IdNumber>>,
    pub phone_enc: Option<Sealed<Phone>>,
    pub address_enc: Option<Sealed<Address>>,
    pub id_index: Option<Vec<u8>>,
    pub phone_index: Option<Vec<u8>>,
    pub registered_at: DateTime<Utc>,
}

/// A session.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mediation_sessions, check_for_backend(diesel::pg::Pg))]
pub struct SessionRow {
    pub case_id: MediationCaseId,
    pub number: i32,
    pub held_at: DateTime<Utc>,
    pub place: String,
    pub participants: Vec<Option<String>>,
    pub summary: String,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// An agreement version.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mediation_agreements, check_for_backend(diesel::pg::Pg))]
pub struct AgreementRow {
    pub case_id: MediationCaseId,
    pub version: i32,
    pub written: bool,
    pub text: String,
    pub amount_fen: i64,
    pub performance_deadline: Option<NaiveDate>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// A follow-up.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mediation_follow_ups, check_for_backend(diesel::pg::Pg))]
pub struct FollowUpRow {
    pub case_id: MediationCaseId,
    pub number: i32,
    pub due_on: NaiveDate,
    pub done_at: Option<DateTime<Utc>>,
    pub performed: Option<bool>,
    pub note: String,
    pub recorded_by: String,
}

/// A case with everything recorded on it.
#[derive(Debug, Clone)]
pub struct Full {
    pub case: MediationCase,
    pub parties: Vec<PartyRow>,
    pub sessions: Vec<SessionRow>,
    pub agreements: Vec<AgreementRow>,
    pub follow_ups: Vec<FollowUpRow>,
}

/// A new case number for the town of `region`: `TJ` + town code + serial.
#[tracing::instrument(level = "debug", skip_all, fields(region = %region))]
pub async fn next_case_no(
    conn: &mut AsyncPgConnection,
    region: &RegionCode,
) -> QueryResult<String> {
    let serial = diesel::select(diesel::dsl::sql::<BigInt>("nextval('mediation_serial')"))
        .get_result::<i64>(conn)
        .await?;
    Ok(format!(
        "TJ{}-{serial:06}",
        crate::domain::report::town_of(region)
    ))
}

/// Stores a new case with its parties.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(
    conn: &mut AsyncPgConnection,
    case: &MediationCase,
    parties: &[PartyRow],
) -> QueryResult<()> {
    diesel::insert_into(mediation_cases::table)
        .values(case)
        .execute(conn)
        .await?;
    diesel::insert_into(mediation_parties::table)
        .values(parties)
        .execute(conn)
        .await?;
    Ok(())
}

/// One case, if within `prefix`.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix(), mediation_case_id = %id))]
pub async fn get_case(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id: MediationCaseId,
    lock: bool,
) -> QueryResult<Option<MediationCase>> {
    let prefix = scope.prefix();
    let q = mediation_cases::table
        .find(id)
        .filter(mediation_cases::region_code.like(format!("{prefix}%")))
        .select(MediationCase::as_select());
    if lock {
        q.for_update().first(conn).await.optional()
    } else {
        q.first(conn).await.optional()
    }
}

/// Everything recorded on `case`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn full(conn: &mut AsyncPgConnection, case: MediationCase) -> QueryResult<Full> {
    full_many(conn, vec![case])
        .await?
        .pop()
        .ok_or(diesel::result::Error::NotFound)
}

/// Everything recorded on each of `cases`: four queries whatever their number, sent together
/// (pipelined on the one connection), so they cost one round trip.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn full_many(
    conn: &mut AsyncPgConnection,
    cases: Vec<MediationCase>,
) -> QueryResult<Vec<Full>> {
    if cases.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<MediationCaseId> = cases.iter().map(|c| c.case_id).collect();
    let conn: &AsyncPgConnection = conn;
    let (parties, sessions, agreements, follow_ups) = futures::try_join!(
        mediation_parties::table
            .filter(mediation_parties::case_id.eq_any(&ids))
            .order((mediation_parties::case_id, mediation_parties::position))
            .select(PartyRow::as_select())
            .load(&mut &*conn),
        mediation_sessions::table
            .filter(mediation_sessions::case_id.eq_any(&ids))
            .order((mediation_sessions::case_id, mediation_sessions::number))
            .select(SessionRow::as_select())
            .load(&mut &*conn),
        mediation_agreements::table
            .filter(mediation_agreements::case_id.eq_any(&ids))
            .order((mediation_agreements::case_id, mediation_agreements::version))
            .select(AgreementRow::as_select())
            .load(&mut &*conn),
        mediation_follow_ups::table
            .filter(mediation_follow_ups::case_id.eq_any(&ids))
            .order((mediation_follow_ups::case_id, mediation_follow_ups::number))
            .select(FollowUpRow::as_select())
            .load(&mut &*conn),
    )?;
    Ok(cases
        .into_iter()
        .map(|case| {
            let id = case.case_id;
            Full {
                case,
                parties: of_case(&parties, id, |p: &PartyRow| p.case_id),
                sessions: of_case(&sessions, id, |p: &SessionRow| p.case_id),
                agreements: of_case(&agreements, id, |p: &AgreementRow| p.case_id),
                follow_ups: of_case(&follow_ups, id, |p: &FollowUpRow| p.case_id),
            }
        })
        .collect())
}

/// The rows of `rows` that belong to case `id`, in their order.
fn of_case<T: Clone>(
    rows: &[T],
    id: MediationCaseId,
    case_of: impl Fn(&T) -> MediationCaseId,
) -> Vec<T> {
    rows.iter().filter(|r| case_of(r) == id).cloned().collect()
}

/// What ListMediationCases filters by.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub statuses: Vec<String>,
    pub team: Option<String>,
    /// Cases with a follow-up due before this day and not done.
    pub follow_up_overdue_on: Option<NaiveDate>,
    /// Cases linked to this case of the one net.
    pub linked_case: Option<CaseId>,
}

/// Cases within `prefix` before `before` (ids are time-ordered), newest first.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn list(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    f: &Filter,
    before: Option<MediationCaseId>,
    limit: i64,
) -> QueryResult<Vec<MediationCase>> {
    let prefix = scope.prefix();
    let mut q = mediation_cases::table
        .filter(mediation_cases::region_code.like(format!("{prefix}%")))
        .order(mediation_cases::case_id.desc())
        .limit(limit)
        .select(MediationCase::as_select())
        .into_boxed();
    if !f.statuses.is_empty() {
        q = q.filter(mediation_cases::status.eq_any(f.statuses.clone()));
    }
    if let Some(t) = &f.team {
        q = q.filter(mediation_cases::team.eq(t.clone()));
    }
    if let Some(c) = f.linked_case {
        q = q.filter(mediation_cases::linked_case_id.eq(c));
    }
    if let Some(day) = f.follow_up_overdue_on {
        q = q.filter(
            mediation_cases::case_id.eq_any(
                mediation_follow_ups::table
                    .filter(mediation_follow_ups::done_at.is_null())
                    .filter(mediation_follow_ups::due_on.lt(day))
                    .select(mediation_follow_ups::case_id),
            ),
        );
    }
    if let Some(b) = before {
        q = q.filter(mediation_cases::case_id.lt(b));
    }
    q.load(conn).await
}

/// The cases within `prefix` where a party's ID-number index (or, without one, phone index) is
/// the one given, registered at or after `since`, newest first, in one query (the parties'
/// match is a subquery).
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn cases_of_person(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id_index: Option<&[u8]>,
    phone_index: Option<&[u8]>,
    since: DateTime<Utc>,
) -> QueryResult<Vec<MediationCase>> {
    let prefix = scope.prefix();
    let parties = mediation_parties::table
        .filter(mediation_parties::registered_at.ge(since))
        .select(mediation_parties::case_id)
        .into_boxed();
    let parties = match (id_index, phone_index) {
        (Some(i), _) => parties.filter(mediation_parties::id_index.eq(i.to_vec())),
        (None, Some(p)) => parties.filter(mediation_parties::phone_index.eq(p.to_vec())),
        (None, None) => return Ok(Vec::new()),
    };
    mediation_cases::table
        .filter(mediation_cases::region_code.like(format!("{prefix}%")))
        .filter(mediation_cases::case_id.eq_any(parties))
        .order(mediation_cases::case_id.desc())
        .select(MediationCase::as_select())
        .load(conn)
        .await
}

/// Appends a session (numbered after the last).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn add_session(conn: &mut AsyncPgConnection, s: &SessionRow) -> QueryResult<()> {
    diesel::insert_into(mediation_sessions::table)
        .values(s)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Appends an agreement version.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn add_agreement(conn: &mut AsyncPgConnection, a: &AgreementRow) -> QueryResult<()> {
    diesel::insert_into(mediation_agreements::table)
        .values(a)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Schedules a follow-up.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn add_follow_up(conn: &mut AsyncPgConnection, f: &FollowUpRow) -> QueryResult<()> {
    diesel::insert_into(mediation_follow_ups::table)
        .values(f)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Records the latest agreement's performance deadline on the case.
#[tracing::instrument(level = "debug", skip_all, fields(mediation_case_id = %id))]
pub async fn set_agreement_deadline(
    conn: &mut AsyncPgConnection,
    id: MediationCaseId,
    deadline: Option<NaiveDate>,
) -> QueryResult<()> {
    diesel::update(mediation_cases::table.find(id))
        .set(mediation_cases::agreement_deadline.eq(deadline))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Records what the first follow-up found (later ones do not change it).
#[tracing::instrument(level = "debug", skip_all, fields(mediation_case_id = %id))]
pub async fn set_first_performed(
    conn: &mut AsyncPgConnection,
    id: MediationCaseId,
    performed: bool,
) -> QueryResult<()> {
    diesel::update(
        mediation_cases::table
            .find(id)
            .filter(mediation_cases::performed.is_null()),
    )
    .set(mediation_cases::performed.eq(Some(performed)))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Moves the open follow-up `number` to `due`.
#[tracing::instrument(level = "debug", skip_all, fields(mediation_case_id = %case_id))]
pub async fn reschedule_follow_up(
    conn: &mut AsyncPgConnection,
    case_id: MediationCaseId,
    number: i32,
    due: NaiveDate,
) -> QueryResult<()> {
    diesel::update(mediation_follow_ups::table.find((case_id, number)))
        .set(mediation_follow_ups::due_on.eq(due))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Fills in the follow-up `number`.
#[tracing::instrument(level = "debug", skip_all, fields(mediation_case_id = %case_id))]
pub async fn complete_follow_up(
    conn: &mut AsyncPgConnection,
    case_id: MediationCaseId,
    number: i32,
    performed: bool,
    note: &str,
    by: &str,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(mediation_follow_ups::table.find((case_id, number)))
        .set((
            mediation_follow_ups::done_at.eq(Some(at)),
            mediation_follow_ups::performed.eq(Some(performed)),
            mediation_follow_ups::note.eq(note),
            mediation_follow_ups::recorded_by.eq(by),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The new state of a case's header after a step.
#[derive(Debug, Clone)]
pub struct Header {
    pub status: String,
    pub outcome: String,
    pub referral: String,
    pub referral_note: String,
    pub outcome_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// Writes a case's header, bumping its version.
#[tracing::instrument(level = "debug", skip_all, fields(mediation_case_id = %id))]
pub async fn save_header(
    conn: &mut AsyncPgConnection,
    id: MediationCaseId,
    h: &Header,
) -> QueryResult<MediationCase> {
    diesel::update(mediation_cases::table.find(id))
        .set((
            mediation_cases::status.eq(&h.status),
            mediation_cases::outcome.eq(&h.outcome),
            mediation_cases::referral.eq(&h.referral),
            mediation_cases::referral_note.eq(&h.referral_note),
            mediation_cases::outcome_at.eq(h.outcome_at),
            mediation_cases::closed_at.eq(h.closed_at),
            mediation_cases::version.eq(mediation_cases::version + 1),
        ))
        .returning(MediationCase::as_returning())
        .get_result(conn)
        .await
}

/// Figures of one group of cases (see `MediationFigures`).
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// 0: total, 1: by type, 2: by team, 3: by kind.
    pub set: i32,
    pub key: String,
    pub cases: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub days_to_outcome: f64,
    pub decided: i32,
    pub performed_on_time: i32,
    pub with_deadline: i32,
}

/// The summed figures of one breakdown key, as read.
#[derive(Debug, Clone, Default, QueryableByName)]
struct Sums {
    #[diesel(sql_type = Integer)]
    dim: i32,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = BigInt)]
    cases: i64,
    #[diesel(sql_type = BigInt)]
    succeeded: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
    #[diesel(sql_type = BigInt)]
    decided: i64,
    #[diesel(sql_type = Double)]
    secs: f64,
    #[diesel(sql_type = BigInt)]
    with_deadline: i64,
    #[diesel(sql_type = BigInt)]
    performed_on_time: i64,
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.cases += o.cases;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.decided += o.decided;
        self.secs += o.secs;
        self.with_deadline += o.with_deadline;
        self.performed_on_time += o.performed_on_time;
    }

    fn figures(&self, set: i32) -> Figures {
        let int = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        Figures {
            set,
            key: self.key.clone(),
            cases: int(self.cases),
            succeeded: int(self.succeeded),
            failed: int(self.failed),
            days_to_outcome: if self.decided > 0 {
                self.secs / 86_400.0 / self.decided as f64
            } else {
                0.0
            },
            decided: int(self.decided),
            performed_on_time: int(self.performed_on_time),
            with_deadline: int(self.with_deadline),
        }
    }
}

/// How a time range is read: whole local months from the monthly figures, the whole local
/// days of its partial months from the daily figures, and the cases of its partial days one by
/// one. Every part is half-open; an empty part has its start at or after its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spans {
    pub months: (NaiveDate, NaiveDate),
    pub days: [(NaiveDate, NaiveDate); 2],
    pub cases: [(DateTime<Utc>, DateTime<Utc>); 2],
}

/// Splits `[from, to)` into [`Spans`] (local time is UTC+8, as the triggers keep it).
pub fn spans(from: DateTime<Utc>, to: DateTime<Utc>) -> Spans {
    let offset = chrono::Duration::hours(8);
    let local_day = |t: DateTime<Utc>| (t + offset).date_naive();
    let at = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map_or(from, |t| t.and_utc() - offset)
    };
    // The first local midnight at or after `from`, and the last at or before `to`.
    let first_day = {
        let d = local_day(from);
        if at(d) == from {
            d
        } else {
            d.succ_opt().unwrap_or(d)
        }
    };
    let last_day = local_day(to);
    if first_day >= last_day {
        let none = (last_day, last_day);
        return Spans {
            months: none,
            days: [none, none],
            cases: [(from, to), (to, to)],
        };
    }
    let cases = [(from, at(first_day)), (at(last_day), to)];
    let (m_from, m_to) = whole_local_months(at(first_day), at(last_day));
    if m_from < m_to {
        Spans {
            months: (m_from, m_to),
            days: [(first_day, m_from), (m_to, last_day)],
            cases,
        }
    } else {
        Spans {
            months: (last_day, last_day),
            days: [(first_day, last_day), (last_day, last_day)],
            cases,
        }
    }
}

/// Figures of the cases registered in `[from, to)` within `prefix`, by dispute type, team and
/// kind, and in total (the sum over the kinds: every case has one). The figures come from
/// `mediation_figures` (kept by triggers, migration 7) at the coarsest grain that fits (see
/// [`spans`]); only cases of partial days are read one by one. What one case contributes is
/// defined once, by the SQL function `mediation_case_figures` (migration 17), which the
/// triggers and this query both call. An agreement counts as
/// performed on time when the first follow-up recorded on it found it performed.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix()))]
pub async fn stats(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<Vec<Figures>> {
    let prefix = scope.prefix();
    use diesel::sql_types::Date;
    let sp = spans(from, to);
    // Region codes are digits: the subtree is the range [prefix, prefix + ':').
    let (lo, hi) = (prefix.to_owned(), format!("{prefix}:"));
    let sums: Vec<Sums> = diesel::sql_query(
        "WITH f AS (
            SELECT dim, key, cases, succeeded, failed, decided, secs, with_deadline, performed_on_time
              FROM mediation_figures
             WHERE grain = 'month' AND period >= $3 AND period < $4 AND region_code >= $1 AND region_code < $2
            UNION ALL
            SELECT dim, key, cases, succeeded, failed, decided, secs, with_deadline, performed_on_time
              FROM mediation_figures
             WHERE grain = 'day' AND period >= $5 AND period < $6 AND region_code >= $1 AND region_code < $2
            UNION ALL
            SELECT dim, key, cases, succeeded, failed, decided, secs, with_deadline, performed_on_time
              FROM mediation_figures
             WHERE grain = 'day' AND period >= $7 AND period < $8 AND region_code >= $1 AND region_code < $2
            UNION ALL
            SELECT x.dim, x.key, x.cases, x.succeeded, x.failed, x.decided, x.secs, x.with_deadline, x.performed_on_time
              FROM mediation_cases c
             CROSS JOIN LATERAL mediation_case_figures(c) x
             WHERE c.region_code LIKE $13
               AND ((c.registered_at >= $9 AND c.registered_at < $10) OR (c.registered_at >= $11 AND c.registered_at < $12)))
         SELECT dim::int4 AS dim, key, sum(cases)::int8 AS cases, sum(succeeded)::int8 AS succeeded,
                sum(failed)::int8 AS failed, sum(decided)::int8 AS decided, sum(secs)::float8 AS secs,
                sum(with_deadline)::int8 AS with_deadline, sum(performed_on_time)::int8 AS performed_on_time
           FROM f
          GROUP BY dim, key
         HAVING sum(cases) <> 0
          ORDER BY dim, key",
    )
    .bind::<Text, _>(lo)
    .bind::<Text, _>(hi)
    .bind::<Date, _>(sp.months.0)
    .bind::<Date, _>(sp.months.1)
    .bind::<Date, _>(sp.days[0].0)
    .bind::<Date, _>(sp.days[0].1)
    .bind::<Date, _>(sp.days[1].0)
    .bind::<Date, _>(sp.days[1].1)
    .bind::<Timestamptz, _>(sp.cases[0].0)
    .bind::<Timestamptz, _>(sp.cases[0].1)
    .bind::<Timestamptz, _>(sp.cases[1].0)
    .bind::<Timestamptz, _>(sp.cases[1].1)
    .bind::<Text, _>(format!("{prefix}%"))
    .load(conn)
    .await?;
    let mut total = Sums::default();
    for s in sums.iter().filter(|s| s.dim == 3) {
        total.add(s);
    }
    Ok(std::iter::once(total.figures(0))
        .chain(sums.iter().map(|s| s.figures(s.dim)))
        .collect())
}

/// The whole local (China Standard Time) months inside `[from, to)`, as `[first, end)` month
/// starts; empty (`first >= end`) when there is none.
pub fn whole_local_months(from: DateTime<Utc>, to: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    use chrono::Datelike;
    let local = |t: DateTime<Utc>| (t + chrono::Duration::hours(8)).naive_utc();
    let (f, t) = (local(from), local(to));
    let month_start = |d: NaiveDate| d.with_day(1).unwrap_or(d);
    let next_month = |d: NaiveDate| {
        let (y, m) = if d.month() == 12 {
            (d.year() + 1, 1)
        } else {
            (d.year(), d.month() + 1)
        };
        NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d)
    };
    let first_start = month_start(f.date());
    let first = if f == first_start.and_hms_opt(0, 0, 0).unwrap_or(f) {
        first_start
    } else {
        next_month(first_start)
    };
    let end = month_start(t.date());
    (first, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_str(&format!("{s} +0800"), "%Y-%m-%d %H:%M %z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn spans_of_a_range() {
        // A year from a mid-morning: partial days at both ends, then days, then months.
        let (from, to) = (local("2025-11-26 10:00"), local("2026-11-26 10:00"));
        let s = spans(from, to);
        assert_eq!(s.months, (d("2025-12-01"), d("2026-11-01")));
        assert_eq!(
            s.days,
            [
                (d("2025-11-27"), d("2025-12-01")),
                (d("2026-11-01"), d("2026-11-26"))
            ]
        );
        assert_eq!(
            s.cases,
            [
                (from, local("2025-11-27 00:00")),
                (local("2026-11-26 00:00"), to)
            ]
        );
        // Whole months: nothing read day by day or case by case.
        let s = spans(local("2026-11-01 00:00"), local("2026-12-01 00:00"));
        assert_eq!(s.months, (d("2026-11-01"), d("2026-12-01")));
        assert!(s.days.iter().all(|(a, b)| a >= b));
        assert!(s.cases.iter().all(|(a, b)| a >= b));
        // Within one month: whole days only, no month.
        let s = spans(local("2026-10-15 00:00"), local("2026-10-20 12:00"));
        assert!(s.months.0 >= s.months.1);
        assert_eq!(s.days[0], (d("2026-10-15"), d("2026-10-20")));
        assert!(s.days[1].0 >= s.days[1].1);
        assert_eq!(
            s.cases[1],
            (local("2026-10-20 00:00"), local("2026-10-20 12:00"))
        );
        // Within one day: cases only.
        let s = spans(local("2026-10-15 08:00"), local("2026-10-15 20:00"));
        assert!(s.months.0 >= s.months.1);
        assert!(s.days.iter().all(|(a, b)| a >= b));
        assert_eq!(
            s.cases[0],
            (local("2026-10-15 08:00"), local("2026-10-15 20:00"))
        );
        assert!(s.cases[1].0 >= s.cases[1].1);
    }

    #[test]
    fn whole_local_months_of_a_range() {
        assert_eq!(
            whole_local_months(local("2026-11-01 00:00"), local("2026-12-01 00:00")),
            (d("2026-11-01"), d("2026-12-01"))
        );
        assert_eq!(
            whole_local_months(local("2025-11-26 10:00"), local("2026-11-26 10:00")),
            (d("2025-12-01"), d("2026-11-01"))
        );
        let (a, b) = whole_local_months(local("2026-11-03 00:00"), local("2026-11-20 00:00"));
        assert!(a >= b);
        assert_eq!(
            whole_local_months(local("2026-12-01 00:00"), local("2027-01-01 00:00")),
            (d("2026-12-01"), d("2027-01-01"))
        );
    }
}
