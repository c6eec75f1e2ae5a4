//! Mediation's use cases: a dispute registered (and the one net's case it came from flagged),
//! mediated in sessions, ended in an agreement or a referral (which moves the linked case by
//! the case workflow's rule), followed up and closed. Which step is allowed is
//! `domain::mediation::plan`; who sees the parties unmasked is decided once, in [`views`].

use crate::domain::ids::{CaseId, MediationCaseId};
use crate::domain::pii::{Address, IdNumber, Name, Phone};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel_async::AsyncPgConnection;
use futures::FutureExt;
use prost::Message;
use serde_json::json;

use super::Context;
use super::error::{ApiError, refusal};
use super::mutation::{self, Resend};
use super::pii::{self, Sight};
use crate::domain::calendar::local_day;
use crate::domain::mediation::{self, Action, Facts, Status};
use crate::domain::principal::{Principal, Role, Scope};
use crate::domain::region::RegionCode;
use crate::domain::workflow::Refusal;
use crate::store::alerts::{Alert, kind as alert_kind};
use crate::store::audit::NewEvent;
use crate::store::mediation::{
    self as db, AgreementRow, FollowUpRow, Full, Header, MediationCase, PartyRow, SessionRow,
};

/// Disputes of one person within this window raise REPEAT_DISPUTE …
const REPEAT_WINDOW_DAYS: i64 = 365;
/// … at this many.
const REPEAT_THRESHOLD: usize = 3;

/// A validated party, with its personal fields in clear (sealed before they are stored).
#[derive(Debug, Clone)]
pub struct NewParty {
    pub role: &'static str,
    pub name: Name,
    pub id_number: Option<IdNumber>,
    pub phone: Option<Phone>,
    pub address: Option<Address>,
}

/// A validated CreateMediationCase.
#[derive(Debug, Clone)]
pub struct NewMediation {
    pub source: &'static str,
    pub kind: &'static str,
    pub linked_case_id: Option<CaseId>,
    pub hotline_order_no: Option<String>,
    pub dispute_type: String,
    pub team: String,
    pub mediators: Vec<String>,
    pub summary: String,
    pub region: RegionCode,
    pub parties: Vec<NewParty>,
}

/// A validated RecordSession.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: MediationCaseId,
    pub expected_version: i64,
    pub held_at: DateTime<Utc>,
    pub place: String,
    pub participants: Vec<String>,
    pub summary: String,
}

/// How a mediation ended (RecordOutcome).
#[derive(Debug, Clone)]
pub enum Ending {
    /// An agreement (or a corrected one, on a case already SUCCEEDED).
    Agreement {
        written: bool,
        text: String,
        amount_fen: i64,
        performance_deadline: Option<NaiveDate>,
    },
    /// No agreement: referred on.
    Referral { to: String, note: String },
}

/// A validated RecordOutcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: MediationCaseId,
    pub expected_version: i64,
    pub ending: Ending,
}

/// A validated RecordFollowUp.
#[derive(Debug, Clone)]
pub struct FollowUp {
    pub id: MediationCaseId,
    pub expected_version: i64,
    pub performed: bool,
    pub note: String,
    pub close: bool,
}

/// A party as the viewer may see it ([`Sight`]): in clear for a `pii_reader`, masked for
/// anyone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyView {
    pub role: String,
    pub name: String,
    pub id_number: String,
    pub phone: String,
    pub address: String,
}

/// A mediation case as the viewer may see it.
#[derive(Debug, Clone)]
pub struct View {
    /// The stored rows (their personal columns sealed; shown only through `parties`).
    pub full: Full,
    pub parties: Vec<PartyView>,
    /// The local day the view was taken, for "follow-up overdue".
    pub today: NaiveDate,
}

/// How the transport shows a [`View`].
pub type Present<R> = fn(View) -> R;

fn refused(r: Refusal) -> ApiError {
    refusal(r, "mediation case")
}

/// What the caller is, relative to `c`.
fn actor(p: &Principal, c: &MediationCase) -> mediation::Actor {
    mediation::Actor {
        team: p.has(Role::Mediator)
            && (p.acts_for(&c.team) || c.mediators.iter().flatten().any(|m| *m == p.sub)),
        command_centre: p.has_any(&[Role::TownOperator, Role::Admin]),
    }
}

/// The steps open to `who` on the case of `v` now (for screens; `plan` stays the judge).
pub fn available(who: &Principal, v: &View) -> Vec<Action> {
    let c = &v.full.case;
    let Ok(status) = status_of(c) else {
        return Vec::new();
    };
    let facts = Facts {
        followed_up: v.full.follow_ups.iter().any(|x| x.done_at.is_some()),
    };
    mediation::available(status, actor(who, c), facts)
}

/// The local day now, by the workflow clock.
pub fn today(ctx: &Context) -> NaiveDate {
    local_day(ctx.workflow.clock.now())
}

/// The views of `cases` for `viewer`, their details read in one query per table. Personal data
/// is unmasked only for a `pii_reader`, and each such read is an audit event.
pub async fn views(
    ctx: &Context,
    conn: &mut AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    cases: Vec<MediationCase>,
    viewer: &Principal,
) -> Result<Vec<View>, ApiError> {
    let sight = Sight::of(viewer);
    if sight == Sight::Whole {
        for c in &cases {
            audit.push(NewEvent::ok(
                "pii.read",
                "mediation_case",
                &c.case_id.to_string(),
                &c.region_code,
                None,
                Some(json!({"fields": ["parties.name", "parties.id_number", "parties.phone", "parties.address"]})),
            ));
        }
    }
    let today = today(ctx);
    Ok(db::full_many(conn, cases)
        .await?
        .into_iter()
        .map(|full| View {
            parties: full.parties.iter().map(|p| party(ctx, p, sight)).collect(),
            full,
            today,
        })
        .collect())
}

/// One party as `sight` lets the viewer see it.
fn party(ctx: &Context, p: &PartyRow, sight: Sight) -> PartyView {
    let c = &ctx.pii;
    PartyView {
        role: p.role.clone(),
        name: pii::show(c, Some(&p.name_enc), "mediation_parties.name_enc", sight),
        id_number: pii::show(
            c,
            p.id_number_enc.as_ref(),
            "mediation_parties.id_number_enc",
            sight,
        ),
        phone: pii::show(
            c,
            p.phone_enc.as_ref(),
            "mediation_parties.phone_enc",
            sight,
        ),
        address: pii::show(
            c,
            p.address_enc.as_ref(),
            "mediation_parties.address_enc",
            sight,
        ),
    }
}

async fn view(
    ctx: &Context,
    conn: &mut AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    c: MediationCase,
    viewer: &Principal,
) -> Result<View, ApiError> {
    views(ctx, conn, audit, vec![c], viewer)
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal("a shown case went missing".into()))
}

/// Locks a case in `scope` and checks its version.
async fn locked(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id: MediationCaseId,
    expected: i64,
) -> Result<MediationCase, ApiError> {
    let c = db::get_case(conn, scope, id, true)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("mediation case {id} not found")))?;
    if expected < 1 {
        return Err(ApiError::invalid(
            "expected_version",
            "required: the version you acted on",
        ));
    }
    if c.version != expected {
        return Err(ApiError::Aborted(format!(
            "mediation case {} is at version {}, not {expected}: reload it and decide again",
            c.case_no, c.version
        )));
    }
    Ok(c)
}

fn status_of(c: &MediationCase) -> Result<Status, ApiError> {
    Status::parse(&c.status).ok_or_else(|| {
        ApiError::Internal(format!(
            "mediation case {} has status {}",
            c.case_no, c.status
        ))
    })
}

/// The header of `c` as it stands, to be changed by a step.
fn header(c: &MediationCase) -> Header {
    Header {
        status: c.status.clone(),
        outcome: c.outcome.clone(),
        referral: c.referral.clone(),
        referral_note: c.referral_note.clone(),
        outcome_at: c.outcome_at,
        closed_at: c.closed_at,
    }
}

/// Follow-up `number` of case `id`, due on `due_on` and not yet done.
fn follow_up_due(id: MediationCaseId, number: i32, due_on: NaiveDate) -> FollowUpRow {
    FollowUpRow {
        case_id: id,
        number,
        due_on,
        done_at: None,
        performed: None,
        note: String::new(),
        recorded_by: String::new(),
    }
}

/// Raises REPEAT_DISPUTE for parties with ≥ 3 disputes in 12 months.
async fn repeat_disputes(
    ctx: &Context,
    conn: &mut AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    m: &MediationCase,
    parties: &[PartyRow],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let since = now - Duration::days(REPEAT_WINDOW_DAYS);
    // Repeats are counted across the county (the first six digits of the town's code).
    let town = crate::domain::report::town_of(&m.region_code);
    let county = Scope::parse(&town[..6.min(town.len())]).ok_or_else(|| {
        ApiError::Internal(format!(
            "mediation case {} has region {}",
            m.case_no, m.region_code
        ))
    })?;
    for p in parties {
        let disputes = db::cases_of_person(
            conn,
            &county,
            p.id_index.as_deref(),
            p.phone_index.as_deref(),
            since,
        )
        .await?;
        if disputes.len() < REPEAT_THRESHOLD {
            continue;
        }
        let who = match &p.id_number_enc {
            Some(enc) => pii::show(
                &ctx.pii,
                Some(enc),
                "mediation_parties.id_number_enc",
                Sight::Masked,
            ),
            None => pii::show(
                &ctx.pii,
                p.phone_enc.as_ref(),
                "mediation_parties.phone_enc",
                Sight::Masked,
            ),
        };
        let key = hex::encode(
            p.id_index
                .as_deref()
                .or(p.phone_index.as_deref())
                .unwrap_or_default(),
        );
        let alert = Alert {
            alert_id: uuid::Uuid::now_v7(),
            kind: alert_kind::REPEAT_DISPUTE.into(),
            region_code: m.region_code.clone(),
            category: m.dispute_type.clone(),
            case_id: None,
            detail: json!({
                "message": format!(
                    "{who} is a party to {} disputes in {REPEAT_WINDOW_DAYS} days, the latest {} ({})",
                    disputes.len(), m.case_no, m.dispute_type
                ),
                "disputes": disputes.len(), "window_days": REPEAT_WINDOW_DAYS, "mediation_case": m.case_no,
            }),
            subject: who,
            dedup_key: format!("REPEAT_DISPUTE:{key}:{}", disputes.len()),
            raised_at: now,
        };
        crate::sla::raise(conn, audit, alert).await?;
    }
    Ok(())
}

/// CreateMediationCase: a new dispute in the caller's region, for the caller's own team if
/// the caller is a mediator; the linked case of the one net is flagged.
pub async fn create<R>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    m: NewMediation,
    present: Present<R>,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
{
    super::ensure_in_scope(who, "region", m.region.as_str())?;
    if who.has(Role::Mediator)
        && !who.has_any(&[Role::TownOperator, Role::Admin])
        && !who.acts_for(&m.team)
    {
        return Err(ApiError::PermissionDenied(format!(
            "a mediator registers cases for their own team, not {}",
            m.team
        )));
    }
    let (ctx2, who2) = (ctx.clone(), who.clone());
    let now = ctx.workflow.clock.now();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let region = m.region.as_str();
            super::check_unit_in_town(conn, &m.team, region)
                .await
                .map_err(|_| {
                    ApiError::invalid(
                        "team",
                        format!("{} is not an active department of the town", m.team),
                    )
                })?;
            if let Some(id) = m.linked_case_id
                && crate::store::cases::get(conn, &who2.scope, id)
                    .await?
                    .is_none()
            {
                return Err(ApiError::invalid(
                    "linked_case_id",
                    "no such case in your region",
                ));
            }
            let id = MediationCaseId::generate();
            let case = MediationCase {
                case_id: id,
                case_no: db::next_case_no(conn, &m.region).await?,
                source: m.source.to_owned(),
                linked_case_id: m.linked_case_id,
                hotline_order_no: m.hotline_order_no,
                region_code: m.region.clone(),
                dispute_type: m.dispute_type,
                kind: m.kind.to_owned(),
                team: m.team,
                mediators: m.mediators.into_iter().map(Some).collect(),
                status: Status::Registered.as_str().to_owned(),
                outcome: String::new(),
                summary: m.summary,
                referral: String::new(),
                referral_note: String::new(),
                registered_at: now,
                outcome_at: None,
                closed_at: None,
                agreement_deadline: None,
                performed: None,
                created_by: who2.sub.clone(),
                version: 1,
            };
            let pii = &ctx2.pii;
            let rows: Vec<PartyRow> = m
                .parties
                .iter()
                .enumerate()
                .map(|(i, x)| PartyRow {
                    case_id: id,
                    position: i as i16,
                    role: x.role.to_owned(),
                    name_enc: pii.seal(&x.name),
                    id_number_enc: x.id_number.as_ref().map(|s| pii.seal(s)),
                    phone_enc: x.phone.as_ref().map(|s| pii.seal(s)),
                    address_enc: x.address.as_ref().map(|s| pii.seal(s)),
                    id_index: x.id_number.as_ref().map(|s| pii.blind_index(s.expose())),
                    phone_index: x.phone.as_ref().map(|s| pii.blind_index(s.expose())),
                    registered_at: now,
                })
                .collect();
            db::insert(conn, &case, &rows).await?;
            audit.push(NewEvent::ok(
                "mediation.create",
                "mediation_case",
                &id.to_string(),
                &case.region_code,
                None,
                Some(case.audit_view()),
            ));
            if let Some(cid) = m.linked_case_id {
                super::cases::refer_to_mediation(conn, audit, cid, &case.case_no).await?;
            }
            repeat_disputes(&ctx2, conn, audit, &case, &rows, now).await?;
            Ok(present(view(&ctx2, conn, audit, case, &who2).await?))
        }
        .boxed()
    })
    .await
}

/// RecordSession: a session held by the team.
pub async fn record_session<R>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    s: NewSession,
    present: Present<R>,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
{
    let (ctx2, who2) = (ctx.clone(), who.clone());
    let now = ctx.workflow.clock.now();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let c = locked(conn, &who2.scope, s.id, s.expected_version).await?;
            let next = mediation::plan(
                status_of(&c)?,
                Action::Session,
                actor(&who2, &c),
                Facts::default(),
            )
            .map_err(refused)?;
            let full = db::full(conn, c.clone()).await?;
            let number = full.sessions.len() as i32 + 1;
            let row = SessionRow {
                case_id: s.id,
                number,
                held_at: s.held_at,
                place: s.place,
                participants: s.participants.into_iter().map(Some).collect(),
                summary: s.summary,
                recorded_by: who2.sub.clone(),
                recorded_at: now,
            };
            db::add_session(conn, &row).await?;
            let mut h = header(&c);
            h.status = next.as_str().to_owned();
            let saved = db::save_header(conn, s.id, &h).await?;
            audit.push(NewEvent::ok(
                "mediation.session",
                "mediation_case",
                &s.id.to_string(),
                &c.region_code,
                Some(c.audit_view()),
                Some(json!({"session": number, "status": saved.status, "version": saved.version})),
            ));
            Ok(present(view(&ctx2, conn, audit, saved, &who2).await?))
        }
        .boxed()
    })
    .await
}

/// RecordOutcome: an agreement (a new version of it on a case already SUCCEEDED) with its
/// follow-up scheduled, or a referral; the linked case of the one net moves with it.
pub async fn record_outcome<R>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    o: Outcome,
    present: Present<R>,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
{
    let (ctx2, who2) = (ctx.clone(), who.clone());
    let now = ctx.workflow.clock.now();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let id = o.id;
            let c = locked(conn, &who2.scope, id, o.expected_version).await?;
            let status = status_of(&c)?;
            let succeeded = matches!(o.ending, Ending::Agreement { .. });
            let action = match (succeeded, status) {
                (true, Status::Succeeded) => Action::Correct,
                (true, _) => Action::Succeed,
                (false, _) => Action::Fail,
            };
            let next = mediation::plan(status, action, actor(&who2, &c), Facts::default())
                .map_err(refused)?;
            let full = db::full(conn, c.clone()).await?;
            let mut h = header(&c);
            h.status = next.as_str().to_owned();
            match o.ending {
                Ending::Agreement {
                    written,
                    text,
                    amount_fen,
                    performance_deadline,
                } => {
                    let row = AgreementRow {
                        case_id: id,
                        version: full.agreements.len() as i32 + 1,
                        written,
                        text,
                        amount_fen,
                        performance_deadline,
                        recorded_by: who2.sub.clone(),
                        recorded_at: now,
                    };
                    db::add_agreement(conn, &row).await?;
                    db::set_agreement_deadline(conn, id, performance_deadline).await?;
                    if action == Action::Succeed {
                        h.outcome = "SUCCEEDED".into();
                        h.outcome_at = Some(now);
                    }
                    // The follow-up is scheduled from the (latest) agreement; an open one moves.
                    let due = mediation::follow_up_due(today(&ctx2), performance_deadline);
                    match full.follow_ups.iter().find(|f| f.done_at.is_none()) {
                        Some(open) => db::reschedule_follow_up(conn, id, open.number, due).await?,
                        None => {
                            let number = full.follow_ups.len() as i32 + 1;
                            db::add_follow_up(conn, &follow_up_due(id, number, due)).await?;
                        }
                    }
                }
                Ending::Referral { to, note } => {
                    h.outcome = "FAILED".into();
                    h.outcome_at = Some(now);
                    h.referral = to;
                    h.referral_note = note;
                }
            }
            let saved = db::save_header(conn, id, &h).await?;
            let versions = full.agreements.len() + usize::from(succeeded);
            audit.push(NewEvent::ok(
                "mediation.outcome",
                "mediation_case",
                &id.to_string(),
                &c.region_code,
                Some(c.audit_view()),
                Some(json!({"action": action.as_str(), "case": saved.audit_view(), "agreement_versions": versions})),
            ));
            if action != Action::Correct
                && let Some(case_id) = saved.linked_case_id
            {
                let outcome = (succeeded, saved.referral.as_str());
                super::cases::follow_mediation(
                    &ctx2,
                    conn,
                    audit,
                    case_id,
                    outcome,
                    &saved.case_no,
                    now,
                )
                .await?;
            }
            Ok(present(view(&ctx2, conn, audit, saved, &who2).await?))
        }
        .boxed()
    })
    .await
}

/// RecordFollowUp: the team records whether the agreement was performed; either the team or
/// the command centre may close (the command centre only close).
pub async fn record_follow_up<R>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    f: FollowUp,
    present: Present<R>,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
{
    let (ctx2, who2) = (ctx.clone(), who.clone());
    let now = ctx.workflow.clock.now();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let id = f.id;
            let c = locked(conn, &who2.scope, id, f.expected_version).await?;
            let status = status_of(&c)?;
            let a = actor(&who2, &c);
            let full = db::full(conn, c.clone()).await?;
            let mut h = header(&c);
            let mut followed = full.follow_ups.iter().any(|x| x.done_at.is_some());
            if a.team {
                mediation::plan(status, Action::FollowUp, a, Facts::default()).map_err(refused)?;
                let number = match full.follow_ups.iter().find(|x| x.done_at.is_none()) {
                    Some(open) => open.number,
                    None => {
                        let n = full.follow_ups.len() as i32 + 1;
                        db::add_follow_up(conn, &follow_up_due(id, n, today(&ctx2))).await?;
                        n
                    }
                };
                db::complete_follow_up(conn, id, number, f.performed, &f.note, &who2.sub, now)
                    .await?;
                db::set_first_performed(conn, id, f.performed).await?;
                followed = true;
            }
            if f.close {
                let facts = Facts {
                    followed_up: followed,
                };
                let next = mediation::plan(status, Action::Close, a, facts).map_err(refused)?;
                h.status = next.as_str().to_owned();
                h.closed_at = Some(now);
            } else if !a.team {
                mediation::plan(status, Action::FollowUp, a, Facts::default()).map_err(refused)?;
            }
            let saved = db::save_header(conn, id, &h).await?;
            audit.push(NewEvent::ok(
                "mediation.follow_up",
                "mediation_case",
                &id.to_string(),
                &c.region_code,
                Some(c.audit_view()),
                Some(json!({"performed": f.performed, "closed": f.close, "case": saved.audit_view()})),
            ));
            Ok(present(view(&ctx2, conn, audit, saved, &who2).await?))
        }
        .boxed()
    })
    .await
}

/// GetMediationCase: one case of the caller's region, in a transaction of its own (an
/// unmasked read is written to the audit trail).
pub async fn get(ctx: &Context, who: &Principal, id: MediationCaseId) -> Result<View, ApiError> {
    let (ctx2, who2) = (ctx.clone(), who.clone());
    mutation::audited(ctx, who, move |conn, audit| {
        async move {
            let c = db::get_case(conn, &who2.scope, id, false)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("mediation case {id} not found")))?;
            view(&ctx2, conn, audit, c, &who2).await
        }
        .boxed()
    })
    .await
}

/// FindPersonDisputes: the cases of the caller's region one person (by the blind index of an
/// ID number or a phone) is a party to; the lookup itself is audited.
pub async fn find_person(
    ctx: &Context,
    who: &Principal,
    id_index: Option<Vec<u8>>,
    phone_index: Option<Vec<u8>>,
) -> Result<Vec<View>, ApiError> {
    let (ctx2, who2) = (ctx.clone(), who.clone());
    mutation::audited(ctx, who, move |conn, audit| {
        async move {
            let prefix = who2.scope.prefix();
            let cases = db::cases_of_person(
                conn,
                &who2.scope,
                id_index.as_deref(),
                phone_index.as_deref(),
                DateTime::<Utc>::UNIX_EPOCH,
            )
            .await?;
            let by = if id_index.is_some() {
                "id_number"
            } else {
                "phone"
            };
            audit.push(NewEvent::ok(
                "pii.lookup",
                "person",
                "",
                prefix,
                None,
                Some(json!({"by": by, "found": cases.len()})),
            ));
            views(&ctx2, conn, audit, cases, &who2).await
        }
        .boxed()
    })
    .await
}
