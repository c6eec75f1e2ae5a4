//! MediationService: disputes registered, mediated in sessions, ended in an agreement or a
//! referral, followed up and closed (rules in `domain::mediation`); parties' personal data
//! encrypted with blind indexes; unmasked reads audited; links to the one net's cases.

use chrono::{DateTime, Duration, Utc};
use futures::FutureExt;
use serde_json::json;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::error::ApiError;
use super::feed;
use super::mutation::{self, Idempotent};
use super::pagination::Page;
use super::pb;
use super::pb::mediation_service_server::MediationService;
use super::{State, convert, principal, requested_prefix, uuid_field};
use crate::domain::Violation;
use crate::domain::mediation::{self, Action, Facts, Status as MStatus};
use crate::domain::pii::{IdNumber, Phone, mask_middle, mask_name};
use crate::domain::principal::{Principal, Role};
use crate::domain::region::{RegionCode, RegionLevel};
use crate::domain::workflow::{self, Refusal};
use crate::store::alerts::{Alert, kind as alert_kind};
use crate::store::audit::NewEvent;
use crate::store::mediation::{
    self as db, AgreementRow, FollowUpRow, Full, Header, PartyRow, SessionRow,
};
use crate::store::{self as st};

crate::idempotent!(
    pb::CreateMediationCaseRequest,
    pb::RecordSessionRequest,
    pb::RecordOutcomeRequest,
    pb::RecordFollowUpRequest
);

/// Disputes of one person within this window raise REPEAT_DISPUTE …
const REPEAT_WINDOW_DAYS: i64 = 365;
/// … at this many.
const REPEAT_THRESHOLD: usize = 3;

/// The MediationService implementation.
pub struct MediationApi {
    pub state: State,
}

fn refused(r: Refusal) -> ApiError {
    super::error::refusal(r, "mediation case")
}

/// What the caller is, relative to `c`.
fn actor(p: &Principal, c: &db::MediationCase) -> mediation::Actor {
    mediation::Actor {
        team: p.has(Role::Mediator)
            && (p.acts_for(&c.team) || c.mediators.iter().flatten().any(|m| *m == p.sub)),
        command_centre: p.has_any(&[Role::TownOperator, Role::Admin]),
    }
}

fn source(v: i32) -> Option<&'static str> {
    Some(match pb::MediationSource::try_from(v).ok()? {
        pb::MediationSource::Unspecified => return None,
        s => s.as_str_name(),
    })
}

fn kind(v: i32) -> Option<&'static str> {
    Some(match pb::MediationKind::try_from(v).ok()? {
        pb::MediationKind::Unspecified => return None,
        k => k.as_str_name(),
    })
}

fn role(v: i32) -> Option<&'static str> {
    Some(match pb::PartyRole::try_from(v).ok()? {
        pb::PartyRole::Unspecified => return None,
        r => r.as_str_name(),
    })
}

/// A validated party, with its personal fields.
struct NewParty {
    role: &'static str,
    name: String,
    id_number: Option<String>,
    phone: Option<String>,
    address: Option<String>,
}

fn parties(raw: &[pb::Party], v: &mut Vec<Violation>) -> Vec<NewParty> {
    if raw.len() < 2 || raw.len() > 50 {
        v.push(Violation::new("parties", "2 to 50 parties"));
    }
    let mut out = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let f = |x: &str| format!("parties[{i}].{x}");
        let name = p.name.trim();
        if name.is_empty() || name.chars().count() > 50 {
            v.push(Violation::new(f("name"), "required, at most 50 characters"));
        }
        let r = role(p.role);
        if r.is_none() {
            v.push(Violation::new(
                f("role"),
                "APPLICANT, RESPONDENT or THIRD_PARTY",
            ));
        }
        let id = match p.id_number.trim() {
            "" => None,
            raw => IdNumber::parse(raw, &f("id_number"))
                .map_err(|e| v.push(e))
                .ok()
                .map(|i| i.expose().to_owned()),
        };
        let phone = match p.phone.trim() {
            "" => None,
            raw => Phone::parse(raw, &f("phone"))
                .map_err(|e| v.push(e))
                .ok()
                .map(|p| p.expose().to_owned()),
        };
        if p.address.chars().count() > 200 {
            v.push(Violation::new(f("address"), "at most 200 characters"));
        }
        if let Some(r) = r {
            out.push(NewParty {
                role: r,
                name: name.to_owned(),
                id_number: id,
                phone,
                address: Some(p.address.trim().to_owned()).filter(|a| !a.is_empty()),
            });
        }
    }
    if !raw
        .iter()
        .any(|p| p.role == pb::PartyRole::Applicant as i32)
    {
        v.push(Violation::new("parties", "name at least one APPLICANT"));
    }
    out
}

/// A case on the wire; personal data masked unless `unmasked`.
fn view(state: &State, f: Full, unmasked: bool, today: chrono::NaiveDate) -> pb::MediationCase {
    let pii = &state.pii;
    let open = |b: &Option<Vec<u8>>, what: &'static str| b.as_ref().and_then(|b| pii.open(b, what));
    let parties = f
        .parties
        .iter()
        .map(|p| {
            let name = pii
                .open(&p.name_enc, "mediation_parties.name_enc")
                .unwrap_or_else(|| "***".into());
            let id = open(&p.id_number_enc, "mediation_parties.id_number_enc").unwrap_or_default();
            let phone = open(&p.phone_enc, "mediation_parties.phone_enc").unwrap_or_default();
            let address = open(&p.address_enc, "mediation_parties.address_enc").unwrap_or_default();
            let role =
                pb::PartyRole::from_str_name(&p.role).unwrap_or(pb::PartyRole::Unspecified) as i32;
            if unmasked {
                pb::Party {
                    name,
                    role,
                    id_number: id,
                    phone,
                    address,
                }
            } else {
                pb::Party {
                    name: mask_name(&name),
                    role,
                    id_number: if id.is_empty() {
                        id
                    } else {
                        mask_middle(&id, 6, 4)
                    },
                    phone: if phone.is_empty() {
                        phone
                    } else {
                        Phone::from_trusted(phone).masked()
                    },
                    address: if address.is_empty() {
                        address
                    } else {
                        "***".into()
                    },
                }
            }
        })
        .collect();
    let agreement = |a: &AgreementRow| pb::Agreement {
        version: a.version,
        written: a.written,
        text: a.text.clone(),
        amount_fen: a.amount_fen,
        performance_deadline: a
            .performance_deadline
            .map(|d| d.to_string())
            .unwrap_or_default(),
        recorded_at: Some(convert::timestamp(a.recorded_at)),
        recorded_by: a.recorded_by.clone(),
    };
    let c = f.case;
    let ts = |t: Option<DateTime<Utc>>| t.map(convert::timestamp);
    pb::MediationCase {
        id: c.case_id.to_string(),
        case_no: c.case_no,
        source: pb::MediationSource::from_str_name(&c.source).unwrap_or_default() as i32,
        linked_case_id: c.linked_case_id.map(|u| u.to_string()).unwrap_or_default(),
        hotline_order_no: c.hotline_order_no.unwrap_or_default(),
        dispute_type: c.dispute_type,
        parties,
        team: c.team,
        mediators: c.mediators.into_iter().flatten().collect(),
        kind: pb::MediationKind::from_str_name(&c.kind).unwrap_or_default() as i32,
        status: match MStatus::parse(&c.status) {
            Some(MStatus::Registered) => pb::MediationStatus::Registered,
            Some(MStatus::InMediation) => pb::MediationStatus::InMediation,
            Some(MStatus::Succeeded) => pb::MediationStatus::Succeeded,
            Some(MStatus::Failed) => pb::MediationStatus::Failed,
            Some(MStatus::Closed) => pb::MediationStatus::ClosedMediation,
            None => pb::MediationStatus::Unspecified,
        } as i32,
        sessions: f
            .sessions
            .iter()
            .map(|s| pb::Session {
                number: s.number,
                held_at: Some(convert::timestamp(s.held_at)),
                place: s.place.clone(),
                participants: s.participants.iter().flatten().cloned().collect(),
                summary: s.summary.clone(),
                recorded_by: s.recorded_by.clone(),
            })
            .collect(),
        agreement: f.agreements.last().map(agreement),
        agreement_history: f.agreements.iter().map(agreement).collect(),
        referral: pb::Referral::from_str_name(&c.referral).unwrap_or_default() as i32,
        referral_note: c.referral_note,
        follow_ups: f
            .follow_ups
            .iter()
            .map(|x| pb::FollowUp {
                due_on: x.due_on.to_string(),
                done_at: ts(x.done_at),
                performed: x.performed.unwrap_or(false),
                note: x.note.clone(),
                overdue: x.done_at.is_none() && x.due_on < today,
                recorded_by: x.recorded_by.clone(),
            })
            .collect(),
        region_code: c.region_code,
        summary: c.summary,
        registered_at: Some(convert::timestamp(c.registered_at)),
        outcome_at: ts(c.outcome_at),
        closed_at: ts(c.closed_at),
        version: c.version,
    }
}

fn today(state: &State) -> chrono::NaiveDate {
    crate::grpc::service_request_service::local_day(state.workflow.clock.now())
}

/// Loads and shows a case; an unmasked answer is audited as a read of personal data.
async fn show(
    state: &State,
    conn: &mut diesel_async::AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    c: db::MediationCase,
    viewer: &Principal,
) -> Result<pb::MediationCase, ApiError> {
    show_many(state, conn, audit, vec![c], viewer)
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal("a shown case went missing".into()))
}

/// [`show`] for several cases, their details read in one query per table.
async fn show_many(
    state: &State,
    conn: &mut diesel_async::AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    cases: Vec<db::MediationCase>,
    viewer: &Principal,
) -> Result<Vec<pb::MediationCase>, ApiError> {
    let unmasked = viewer.has(Role::PiiReader);
    if unmasked {
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
    let day = today(state);
    Ok(db::full_many(conn, cases)
        .await?
        .into_iter()
        .map(|f| view(state, f, unmasked, day))
        .collect())
}

/// Moves the linked case of the one net with the mediation's outcome, by the case workflow's
/// rule ([`workflow::mediation_outcome`]); 12345 requests joined to the case follow it.
async fn move_linked_case(
    state: &State,
    conn: &mut diesel_async::AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    m: &db::MediationCase,
    succeeded: bool,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some(id) = m.linked_case_id else {
        return Ok(());
    };
    let Some(case) = st::cases::lock(conn, "", id).await? else {
        return Ok(());
    };
    let Some(flow) = case.flow() else {
        return Ok(());
    };
    let Some(next) = workflow::mediation_outcome(&flow, succeeded, &m.referral, now) else {
        return Ok(());
    };
    let (what, comment) = if succeeded {
        (
            "MEDIATION_SUCCEEDED",
            format!("调解成功，案件 {} 结案", m.case_no),
        )
    } else {
        (
            "MEDIATION_FAILED",
            format!("调解不成，转{}（{}）", m.referral, m.case_no),
        )
    };
    let saved = st::cases::save_flow(conn, id, &next).await?;
    audit.push(NewEvent::ok(
        "case.transition",
        "case",
        &id.to_string(),
        &saved.region_code,
        Some(feed::case_before(&case)),
        Some(feed::case_change(&saved, what, &comment)),
    ));
    let cal = crate::domain::calendar::Calendar::new(
        st::calendar::load(conn).await?,
        state.workflow.office_hours.clone(),
    );
    crate::requests::follow_case(conn, audit, &saved, None, &comment, now, &cal).await?;
    Ok(())
}

/// Raises REPEAT_DISPUTE for parties with ≥ 3 disputes in 12 months.
async fn repeat_disputes(
    state: &State,
    conn: &mut diesel_async::AsyncPgConnection,
    audit: &mut Vec<NewEvent>,
    m: &db::MediationCase,
    parties: &[PartyRow],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let since = now - Duration::days(REPEAT_WINDOW_DAYS);
    let town = crate::domain::report::town_of(&m.region_code);
    for p in parties {
        let disputes = db::cases_of_person(
            conn,
            &town[..6.min(town.len())],
            p.id_index.as_deref(),
            p.phone_index.as_deref(),
            since,
        )
        .await?;
        if disputes.len() < REPEAT_THRESHOLD {
            continue;
        }
        let who = p
            .id_number_enc
            .as_ref()
            .and_then(|b| state.pii.open(b, "mediation_parties.id_number_enc"))
            .map(|i| mask_middle(&i, 6, 4))
            .or_else(|| {
                p.phone_enc
                    .as_ref()
                    .and_then(|b| state.pii.open(b, "mediation_parties.phone_enc"))
                    .map(|ph| Phone::from_trusted(ph).masked())
            })
            .unwrap_or_default();
        let key = hex::encode(
            p.id_index
                .as_deref()
                .or(p.phone_index.as_deref())
                .unwrap_or_default(),
        );
        crate::sla::raise(
            conn,
            audit,
            Alert {
                alert_id: Uuid::now_v7(),
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
            },
        )
        .await?;
    }
    Ok(())
}

/// Locks a case and checks its version.
async fn locked(
    conn: &mut diesel_async::AsyncPgConnection,
    prefix: &str,
    id: Uuid,
    expected: i64,
) -> Result<db::MediationCase, ApiError> {
    let c = db::get_case(conn, prefix, id, true)
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

fn status_of(c: &db::MediationCase) -> Result<MStatus, ApiError> {
    MStatus::parse(&c.status).ok_or_else(|| {
        ApiError::Internal(format!(
            "mediation case {} has status {}",
            c.case_no, c.status
        ))
    })
}

#[tonic::async_trait]
impl MediationService for MediationApi {
    async fn create_mediation_case(
        &self,
        req: Request<pb::CreateMediationCaseRequest>,
    ) -> Result<Response<pb::MediationCase>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let mut v = Vec::new();
        let src = source(r.source);
        if src.is_none() {
            v.push(Violation::new(
                "source",
                "GRID_REPORT, HOTLINE, WALK_IN, COURT_REFERRAL or OTHER_SOURCE",
            ));
        }
        let k = kind(r.kind);
        if k.is_none() {
            v.push(Violation::new("kind", "PEOPLE, ADMINISTRATIVE or JUDICIAL"));
        }
        let linked = match r.linked_case_id.trim() {
            "" => None,
            raw => Uuid::parse_str(raw)
                .map_err(|_| v.push(Violation::new("linked_case_id", "must be a UUID")))
                .ok(),
        };
        if src == Some("GRID_REPORT") && linked.is_none() && r.linked_case_id.trim().is_empty() {
            v.push(Violation::new("linked_case_id", "required for GRID_REPORT"));
        }
        if src == Some("HOTLINE") && r.hotline_order_no.trim().is_empty() {
            v.push(Violation::new("hotline_order_no", "required for HOTLINE"));
        }
        let dt = r.dispute_type.trim().to_owned();
        if dt.is_empty() || dt.chars().count() > 32 {
            v.push(Violation::new(
                "dispute_type",
                format!("required, e.g. {}", mediation::DISPUTE_TYPES.join("、")),
            ));
        }
        if r.team.trim().is_empty() {
            v.push(Violation::new(
                "team",
                "required: the team's department code",
            ));
        }
        if r.mediators.len() > 20
            || r.mediators
                .iter()
                .any(|m| m.trim().is_empty() || m.chars().count() > 64)
        {
            v.push(Violation::new(
                "mediators",
                "at most 20 ids of 1–64 characters",
            ));
        }
        let summary = r.summary.trim().to_owned();
        if summary.is_empty() || summary.chars().count() > 4000 {
            v.push(Violation::new(
                "summary",
                "required, at most 4,000 characters",
            ));
        }
        let region = RegionCode::parse(r.region_code.trim())
            .ok()
            .filter(|c| matches!(c.level(), RegionLevel::Town | RegionLevel::Village));
        if region.is_none() {
            v.push(Violation::new(
                "region_code",
                "the town (9 digits) or village (12 digits)",
            ));
        }
        let ps = parties(&r.parties, &mut v);
        let (Some(src), Some(k), Some(region), true) = (src, k, region, v.is_empty()) else {
            return Err(ApiError::InvalidArgument(v).into());
        };
        if !p.scope.contains(region.as_str()) {
            return Err(ApiError::PermissionDenied(format!(
                "region {} is outside your region {}",
                region.as_str(),
                p.scope
            ))
            .into());
        }
        let team = r.team.trim().to_owned();
        if p.has(Role::Mediator)
            && !p.has_any(&[Role::TownOperator, Role::Admin])
            && !p.acts_for(&team)
        {
            return Err(ApiError::PermissionDenied(format!(
                "a mediator registers cases for their own team, not {team}"
            ))
            .into());
        }
        let state = self.state.clone();
        let who = p.clone();
        let now = state.workflow.clock.now();
        let (rid, payload) = (r.request_id().to_owned(), r.payload());
        let out = mutation::run(
            &self.state,
            &p,
            "MediationService/CreateMediationCase",
            &rid,
            &payload,
            move |conn, audit| {
                async move {
                    super::check_unit_in_town(conn, &team, region.as_str())
                        .await
                        .map_err(|_| {
                            ApiError::invalid(
                                "team",
                                format!("{team} is not an active department of the town"),
                            )
                        })?;
                    if let Some(id) = linked
                        && st::cases::get(conn, who.scope.prefix(), id)
                            .await?
                            .is_none()
                    {
                        return Err(ApiError::invalid(
                            "linked_case_id",
                            "no such case in your region",
                        ));
                    }
                    let id = Uuid::now_v7();
                    let case = db::MediationCase {
                        case_id: id,
                        case_no: db::next_case_no(conn, region.as_str()).await?,
                        source: src.to_owned(),
                        linked_case_id: linked,
                        hotline_order_no: Some(r.hotline_order_no.trim().to_owned())
                            .filter(|o| !o.is_empty()),
                        region_code: region.as_str().to_owned(),
                        dispute_type: dt,
                        kind: k.to_owned(),
                        team,
                        mediators: r
                            .mediators
                            .iter()
                            .map(|m| Some(m.trim().to_owned()))
                            .collect(),
                        status: MStatus::Registered.as_str().to_owned(),
                        outcome: String::new(),
                        summary,
                        referral: String::new(),
                        referral_note: String::new(),
                        registered_at: now,
                        outcome_at: None,
                        closed_at: None,
                        agreement_deadline: None,
                        performed: None,
                        created_by: who.sub.clone(),
                        version: 1,
                    };
                    let pii = &state.pii;
                    let rows: Vec<PartyRow> = ps
                        .iter()
                        .enumerate()
                        .map(|(i, x)| PartyRow {
                            case_id: id,
                            position: i as i16,
                            role: x.role.to_owned(),
                            name_enc: pii.encrypt(&x.name),
                            id_number_enc: x.id_number.as_deref().map(|s| pii.encrypt(s)),
                            phone_enc: x.phone.as_deref().map(|s| pii.encrypt(s)),
                            address_enc: x.address.as_deref().map(|s| pii.encrypt(s)),
                            id_index: x.id_number.as_deref().map(|s| pii.blind_index(s)),
                            phone_index: x.phone.as_deref().map(|s| pii.blind_index(s)),
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
                    if let Some(cid) = linked {
                        let flagged = db::flag_case(conn, cid, "MEDIATION").await?;
                        audit.push(NewEvent::ok(
                            "case.transition",
                            "case",
                            &cid.to_string(),
                            &flagged.region_code,
                            None,
                            Some(feed::case_change(
                                &flagged,
                                "REFERRED_TO_MEDIATION",
                                &format!("转调解 {}", case.case_no),
                            )),
                        ));
                    }
                    repeat_disputes(&state, conn, audit, &case, &rows, now).await?;
                    show(&state, conn, audit, case, &who).await
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(out))
    }

    async fn get_mediation_case(
        &self,
        req: Request<pb::GetMediationCaseRequest>,
    ) -> Result<Response<pb::MediationCase>, Status> {
        let p = principal(&req)?;
        let id = uuid_field(&req.get_ref().id, "id")?;
        let state = self.state.clone();
        let who = p.clone();
        // In a transaction of its own: an unmasked read is written to the audit trail.
        let out = mutation::audited(&self.state, &p, move |conn, audit| {
            async move {
                let c = db::get_case(conn, who.scope.prefix(), id, false)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("mediation case {id} not found")))?;
                show(&state, conn, audit, c, &who).await
            }
            .boxed()
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn list_mediation_cases(
        &self,
        req: Request<pb::ListMediationCasesRequest>,
    ) -> Result<Response<pb::ListMediationCasesResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let prefix = requested_prefix(&p, &r.region_code)?;
        let mut statuses = Vec::new();
        for (i, s) in r.statuses.iter().enumerate() {
            let st = match pb::MediationStatus::try_from(*s) {
                Ok(pb::MediationStatus::Registered) => MStatus::Registered,
                Ok(pb::MediationStatus::InMediation) => MStatus::InMediation,
                Ok(pb::MediationStatus::Succeeded) => MStatus::Succeeded,
                Ok(pb::MediationStatus::Failed) => MStatus::Failed,
                Ok(pb::MediationStatus::ClosedMediation) => MStatus::Closed,
                _ => {
                    return Err(
                        ApiError::invalid(format!("statuses[{i}]"), "unknown status").into(),
                    );
                }
            };
            statuses.push(st.as_str().to_owned());
        }
        let f = db::Filter {
            statuses,
            team: Some(r.team.trim().to_owned()).filter(|t| !t.is_empty()),
            follow_up_overdue_on: r.follow_up_overdue.then(|| today(&self.state)),
        };
        let filter = format!(
            "{prefix}|{:?}|{:?}|{}",
            f.statuses, f.team, r.follow_up_overdue
        );
        let page = Page::parse(
            &self.state,
            &p,
            "ListMediationCases",
            &filter,
            r.page_size,
            &r.page_token,
        )?;
        let before = page
            .after
            .as_deref()
            .map(|a| Uuid::parse_str(a).map_err(|_| ApiError::invalid("page_token", "corrupt")))
            .transpose()?;
        let limit = page.fetch_limit();
        let state = self.state.clone();
        let who = p.clone();
        let (rows, next) = mutation::audited(&self.state, &p, move |conn, audit| {
            async move {
                let mut rows = db::list(conn, &prefix, &f, before, limit).await?;
                let next = page.finish(&state, &mut rows, |c| c.case_id.to_string());
                let out = show_many(&state, conn, audit, rows, &who).await?;
                Ok((out, next))
            }
            .boxed()
        })
        .await?;
        Ok(Response::new(pb::ListMediationCasesResponse {
            mediation_cases: rows,
            next_page_token: next,
        }))
    }

    async fn record_session(
        &self,
        req: Request<pb::RecordSessionRequest>,
    ) -> Result<Response<pb::MediationCase>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let id = uuid_field(&r.id, "id")?;
        let now = self.state.workflow.clock.now();
        let mut v = Vec::new();
        let held = r.held_at.as_ref().and_then(convert::from_timestamp);
        match held {
            Some(t) if t <= now + Duration::minutes(5) => {}
            _ => v.push(Violation::new("held_at", "required, not in the future")),
        }
        if r.place.trim().is_empty() || r.place.chars().count() > 200 {
            v.push(Violation::new("place", "required, at most 200 characters"));
        }
        if r.summary.trim().is_empty() || r.summary.chars().count() > 8000 {
            v.push(Violation::new(
                "summary",
                "required, at most 8,000 characters",
            ));
        }
        if r.participants.len() > 50 {
            v.push(Violation::new("participants", "at most 50"));
        }
        let (Some(held), true) = (held, v.is_empty()) else {
            return Err(ApiError::InvalidArgument(v).into());
        };
        let state = self.state.clone();
        let who = p.clone();
        let (rid, payload) = (r.request_id().to_owned(), r.payload());
        let out = mutation::run(&self.state, &p, "MediationService/RecordSession", &rid, &payload, move |conn, audit| {
            async move {
                let c = locked(conn, who.scope.prefix(), id, r.expected_version).await?;
                let next = mediation::plan(status_of(&c)?, Action::Session, actor(&who, &c), Facts::default()).map_err(refused)?;
                let full = db::full(conn, c.clone()).await?;
                db::add_session(conn, &SessionRow {
                    case_id: id,
                    number: full.sessions.len() as i32 + 1,
                    held_at: held,
                    place: r.place.trim().to_owned(),
                    participants: r.participants.iter().map(|x| Some(x.trim().to_owned())).collect(),
                    summary: r.summary.trim().to_owned(),
                    recorded_by: who.sub.clone(),
                    recorded_at: now,
                })
                .await?;
                let saved = db::save_header(conn, id, &Header {
                    status: next.as_str().to_owned(),
                    outcome: c.outcome.clone(),
                    referral: c.referral.clone(),
                    referral_note: c.referral_note.clone(),
                    outcome_at: c.outcome_at,
                    closed_at: c.closed_at,
                })
                .await?;
                audit.push(NewEvent::ok("mediation.session", "mediation_case", &id.to_string(), &c.region_code, Some(c.audit_view()), Some(json!({"session": full.sessions.len() + 1, "status": saved.status, "version": saved.version}))));
                show(&state, conn, audit, saved, &who).await
            }
            .boxed()
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn record_outcome(
        &self,
        req: Request<pb::RecordOutcomeRequest>,
    ) -> Result<Response<pb::MediationCase>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let id = uuid_field(&r.id, "id")?;
        let succeeded = match pb::MediationStatus::try_from(r.outcome) {
            Ok(pb::MediationStatus::Succeeded) => true,
            Ok(pb::MediationStatus::Failed) => false,
            _ => return Err(ApiError::invalid("outcome", "SUCCEEDED or FAILED").into()),
        };
        let mut v = Vec::new();
        let agreement = if succeeded {
            let a = r.agreement.clone().unwrap_or_default();
            if a.text.trim().is_empty() || a.text.chars().count() > 8000 {
                v.push(Violation::new(
                    "agreement.text",
                    "required, at most 8,000 characters",
                ));
            }
            if a.amount_fen < 0 {
                v.push(Violation::new(
                    "agreement.amount_fen",
                    "must not be negative",
                ));
            }
            let deadline = match a.performance_deadline.trim() {
                "" => None,
                d => crate::domain::catalog::date(d).or_else(|| {
                    v.push(Violation::new(
                        "agreement.performance_deadline",
                        "YYYY-MM-DD",
                    ));
                    None
                }),
            };
            Some((a, deadline))
        } else {
            None
        };
        let referral = if succeeded {
            String::new()
        } else {
            match pb::Referral::try_from(r.referral) {
                Ok(pb::Referral::Unspecified) | Err(_) => {
                    v.push(Violation::new(
                        "referral",
                        "LITIGATION, ARBITRATION, ADMINISTRATIVE_HANDLING or PETITION",
                    ));
                    String::new()
                }
                Ok(x) => x.as_str_name().to_owned(),
            }
        };
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v).into());
        }
        let state = self.state.clone();
        let who = p.clone();
        let now = state.workflow.clock.now();
        let (rid, payload) = (r.request_id().to_owned(), r.payload());
        let out = mutation::run(&self.state, &p, "MediationService/RecordOutcome", &rid, &payload, move |conn, audit| {
            async move {
                let c = locked(conn, who.scope.prefix(), id, r.expected_version).await?;
                let status = status_of(&c)?;
                let action = match (succeeded, status) {
                    (true, MStatus::Succeeded) => Action::Correct,
                    (true, _) => Action::Succeed,
                    (false, _) => Action::Fail,
                };
                let next = mediation::plan(status, action, actor(&who, &c), Facts::default()).map_err(refused)?;
                let full = db::full(conn, c.clone()).await?;
                let mut header = Header {
                    status: next.as_str().to_owned(),
                    outcome: c.outcome.clone(),
                    referral: c.referral.clone(),
                    referral_note: c.referral_note.clone(),
                    outcome_at: c.outcome_at,
                    closed_at: c.closed_at,
                };
                if let Some((a, deadline)) = &agreement {
                    let version = full.agreements.len() as i32 + 1;
                    db::add_agreement(conn, &AgreementRow {
                        case_id: id,
                        version,
                        written: a.written,
                        text: a.text.trim().to_owned(),
                        amount_fen: a.amount_fen,
                        performance_deadline: *deadline,
                        recorded_by: who.sub.clone(),
                        recorded_at: now,
                    })
                    .await?;
                    db::set_agreement_deadline(conn, id, *deadline).await?;
                    if action == Action::Succeed {
                        header.outcome = "SUCCEEDED".into();
                        header.outcome_at = Some(now);
                    }
                    // The follow-up is scheduled from the (latest) agreement; an open one moves.
                    let due = mediation::follow_up_due(today(&state), *deadline);
                    match full.follow_ups.iter().find(|f| f.done_at.is_none()) {
                        Some(open) => db::reschedule_follow_up(conn, id, open.number, due).await?,
                        None => {
                            db::add_follow_up(conn, &FollowUpRow {
                                case_id: id,
                                number: full.follow_ups.len() as i32 + 1,
                                due_on: due,
                                done_at: None,
                                performed: None,
                                note: String::new(),
                                recorded_by: String::new(),
                            })
                            .await?;
                        }
                    }
                } else {
                    header.outcome = "FAILED".into();
                    header.outcome_at = Some(now);
                    header.referral = referral.clone();
                    header.referral_note = r.referral_note.trim().to_owned();
                }
                let saved = db::save_header(conn, id, &header).await?;
                audit.push(NewEvent::ok("mediation.outcome", "mediation_case", &id.to_string(), &c.region_code, Some(c.audit_view()), Some(json!({"action": action.as_str(), "case": saved.audit_view(), "agreement_versions": full.agreements.len() + usize::from(agreement.is_some())}))));
                if action != Action::Correct {
                    move_linked_case(&state, conn, audit, &saved, succeeded, now).await?;
                }
                show(&state, conn, audit, saved, &who).await
            }
            .boxed()
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn record_follow_up(
        &self,
        req: Request<pb::RecordFollowUpRequest>,
    ) -> Result<Response<pb::MediationCase>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let id = uuid_field(&r.id, "id")?;
        if r.note.chars().count() > 4000 {
            return Err(ApiError::invalid("note", "at most 4,000 characters").into());
        }
        let state = self.state.clone();
        let who = p.clone();
        let now = state.workflow.clock.now();
        let (rid, payload) = (r.request_id().to_owned(), r.payload());
        let out = mutation::run(&self.state, &p, "MediationService/RecordFollowUp", &rid, &payload, move |conn, audit| {
            async move {
                let c = locked(conn, who.scope.prefix(), id, r.expected_version).await?;
                let status = status_of(&c)?;
                let a = actor(&who, &c);
                let full = db::full(conn, c.clone()).await?;
                // A follow-up by the team; the command centre may only close.
                let mut header = Header {
                    status: c.status.clone(),
                    outcome: c.outcome.clone(),
                    referral: c.referral.clone(),
                    referral_note: c.referral_note.clone(),
                    outcome_at: c.outcome_at,
                    closed_at: c.closed_at,
                };
                let mut followed = full.follow_ups.iter().any(|f| f.done_at.is_some());
                if a.team {
                    mediation::plan(status, Action::FollowUp, a, Facts::default()).map_err(refused)?;
                    let number = match full.follow_ups.iter().find(|f| f.done_at.is_none()) {
                        Some(open) => open.number,
                        None => {
                            let n = full.follow_ups.len() as i32 + 1;
                            db::add_follow_up(conn, &FollowUpRow {
                                case_id: id,
                                number: n,
                                due_on: today(&state),
                                done_at: None,
                                performed: None,
                                note: String::new(),
                                recorded_by: String::new(),
                            })
                            .await?;
                            n
                        }
                    };
                    db::complete_follow_up(conn, id, number, r.performed, r.note.trim(), &who.sub, now).await?;
                    db::set_first_performed(conn, id, r.performed).await?;
                    followed = true;
                }
                if r.close {
                    let next = mediation::plan(status, Action::Close, a, Facts { followed_up: followed }).map_err(refused)?;
                    header.status = next.as_str().to_owned();
                    header.closed_at = Some(now);
                } else if !a.team {
                    mediation::plan(status, Action::FollowUp, a, Facts::default()).map_err(refused)?;
                }
                let saved = db::save_header(conn, id, &header).await?;
                audit.push(NewEvent::ok("mediation.follow_up", "mediation_case", &id.to_string(), &c.region_code, Some(c.audit_view()), Some(json!({"performed": r.performed, "closed": r.close, "case": saved.audit_view()}))));
                show(&state, conn, audit, saved, &who).await
            }
            .boxed()
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn get_mediation_stats(
        &self,
        req: Request<pb::GetMediationStatsRequest>,
    ) -> Result<Response<pb::MediationStats>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let prefix = requested_prefix(&p, &r.region_code)?;
        let (from, to) = super::time_range(r.from.as_ref(), r.to.as_ref())?;
        let now = self.state.workflow.clock.now();
        let from = from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let to = to.unwrap_or(now + Duration::days(1));
        if from >= to {
            return Err(ApiError::invalid("to", "must be after from").into());
        }
        let mut conn = self.state.pool.get().await.map_err(ApiError::from)?;
        let rows = db::stats(&mut conn, &prefix, from, to)
            .await
            .map_err(ApiError::from)?;
        let fig = |x: &db::Figures| pb::MediationFigures {
            key: x.key.clone(),
            cases: x.cases,
            succeeded: x.succeeded,
            failed: x.failed,
            success_rate: if x.succeeded + x.failed > 0 {
                f64::from(x.succeeded) / f64::from(x.succeeded + x.failed)
            } else {
                0.0
            },
            average_days_to_outcome: x.days_to_outcome,
            performed_on_time: x.performed_on_time,
            with_deadline: x.with_deadline,
        };
        let pick = |set: i32| {
            rows.iter()
                .filter(|x| x.set == set)
                .map(fig)
                .collect::<Vec<_>>()
        };
        Ok(Response::new(pb::MediationStats {
            total: Some(
                rows.iter()
                    .find(|x| x.set == 0)
                    .map(fig)
                    .unwrap_or_default(),
            ),
            by_type: pick(1),
            by_team: pick(2),
            by_kind: pick(3),
        }))
    }

    async fn find_person_disputes(
        &self,
        req: Request<pb::FindPersonDisputesRequest>,
    ) -> Result<Response<pb::ListMediationCasesResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let (id_index, phone_index) = match (r.id_number.trim(), r.phone.trim()) {
            ("", "") => {
                return Err(ApiError::invalid("id_number", "give an ID number or a phone").into());
            }
            (id, "") => (
                Some(
                    self.state.pii.blind_index(
                        IdNumber::parse(id, "id_number")
                            .map_err(|e| ApiError::InvalidArgument(vec![e]))?
                            .expose(),
                    ),
                ),
                None,
            ),
            ("", ph) => (
                None,
                Some(
                    self.state.pii.blind_index(
                        Phone::parse(ph, "phone")
                            .map_err(|e| ApiError::InvalidArgument(vec![e]))?
                            .expose(),
                    ),
                ),
            ),
            _ => {
                return Err(
                    ApiError::invalid("phone", "give an ID number or a phone, not both").into(),
                );
            }
        };
        let state = self.state.clone();
        let who = p.clone();
        let out = mutation::audited(&self.state, &p, move |conn, audit| {
            async move {
                let cases = db::cases_of_person(conn, who.scope.prefix(), id_index.as_deref(), phone_index.as_deref(), DateTime::<Utc>::UNIX_EPOCH).await?;
                audit.push(NewEvent::ok("pii.lookup", "person", "", who.scope.prefix(), None, Some(json!({"by": if id_index.is_some() { "id_number" } else { "phone" }, "found": cases.len()}))));
                show_many(&state, conn, audit, cases, &who).await
            }
            .boxed()
        })
        .await?;
        Ok(Response::new(pb::ListMediationCasesResponse {
            mediation_cases: out,
            next_page_token: String::new(),
        }))
    }
}
