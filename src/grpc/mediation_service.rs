//! MediationService: disputes registered, mediated in sessions, ended in an agreement or a
//! referral, followed up and closed (rules in `domain::mediation`); parties' personal data
//! encrypted with blind indexes; unmasked reads audited; links to the one net's cases.

use crate::domain::ids::*;
use chrono::{DateTime, Duration, Utc};
use futures::FutureExt;
use tonic::{Request, Response, Status};

use super::pagination::Page;
use super::pb;
use super::pb::mediation_service_server::MediationService;
use super::{State, convert, principal, requested_scope, uuid_field};
use crate::app::error::ApiError;
use crate::app::mediation::{Ending, FollowUp, NewMediation, NewParty, NewSession, Outcome, View};
use crate::app::mutation::{self, Resend};
use crate::app::{self};
use crate::domain::Violation;
use crate::domain::figures::rate;
use crate::domain::mediation::{self, Status as MStatus};
use crate::domain::pii::{Address, IdNumber, Name, Phone};
use crate::domain::region::{RegionCode, RegionLevel};
use crate::store::mediation::{self as db, AgreementRow};

crate::idempotent!(
    pb::CreateMediationCaseRequest,
    pb::RecordSessionRequest,
    pb::RecordOutcomeRequest,
    pb::RecordFollowUpRequest
);

/// The MediationService implementation.
pub struct MediationApi {
    pub state: State,
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
                .ok(),
        };
        let phone = match p.phone.trim() {
            "" => None,
            raw => Phone::parse(raw, &f("phone")).map_err(|e| v.push(e)).ok(),
        };
        if p.address.chars().count() > 200 {
            v.push(Violation::new(f("address"), "at most 200 characters"));
        }
        if let Some(r) = r {
            out.push(NewParty {
                role: r,
                name: Name(name.to_owned()),
                id_number: id,
                phone,
                address: Some(p.address.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .map(Address),
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

/// The statuses a list asks for, in their stored spelling.
fn statuses(raw: &[i32]) -> Result<Vec<String>, ApiError> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            let st = match pb::MediationStatus::try_from(*s) {
                Ok(pb::MediationStatus::Registered) => MStatus::Registered,
                Ok(pb::MediationStatus::InMediation) => MStatus::InMediation,
                Ok(pb::MediationStatus::Succeeded) => MStatus::Succeeded,
                Ok(pb::MediationStatus::Failed) => MStatus::Failed,
                Ok(pb::MediationStatus::ClosedMediation) => MStatus::Closed,
                _ => {
                    return Err(ApiError::invalid(
                        format!("statuses[{i}]"),
                        "unknown status",
                    ));
                }
            };
            Ok(st.as_str().to_owned())
        })
        .collect()
}

/// A case on the wire, as the use case let the viewer see it.
fn view(v: View) -> pb::MediationCase {
    let View {
        full: f,
        parties,
        today,
    } = v;
    let parties = parties
        .into_iter()
        .map(|p| pb::Party {
            name: p.name,
            role: pb::PartyRole::from_str_name(&p.role).unwrap_or(pb::PartyRole::Unspecified)
                as i32,
            id_number: p.id_number,
            phone: p.phone,
            address: p.address,
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
        // The caller's steps: GetMediationCase fills them.
        available_steps: Vec::new(),
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
        region_code: c.region_code.into(),
        summary: c.summary,
        registered_at: Some(convert::timestamp(c.registered_at)),
        outcome_at: ts(c.outcome_at),
        closed_at: ts(c.closed_at),
        version: c.version,
    }
}

impl TryFrom<pb::CreateMediationCaseRequest> for NewMediation {
    type Error = ApiError;

    fn try_from(r: pb::CreateMediationCaseRequest) -> Result<NewMediation, ApiError> {
        let pb::CreateMediationCaseRequest {
            source: raw_source,
            linked_case_id,
            hotline_order_no,
            dispute_type,
            parties: raw_parties,
            team,
            mediators,
            kind: raw_kind,
            region_code,
            summary,
            request_id: _,
        } = r;
        let mut v = Vec::new();
        let src = source(raw_source);
        if src.is_none() {
            v.push(Violation::new(
                "source",
                "GRID_REPORT, HOTLINE, WALK_IN, COURT_REFERRAL or OTHER_SOURCE",
            ));
        }
        let k = kind(raw_kind);
        if k.is_none() {
            v.push(Violation::new("kind", "PEOPLE, ADMINISTRATIVE or JUDICIAL"));
        }
        let linked = match linked_case_id.trim() {
            "" => None,
            raw => raw
                .parse::<CaseId>()
                .map_err(|_| v.push(Violation::new("linked_case_id", "must be a UUID")))
                .ok(),
        };
        if src == Some("GRID_REPORT") && linked.is_none() && linked_case_id.trim().is_empty() {
            v.push(Violation::new("linked_case_id", "required for GRID_REPORT"));
        }
        let order = hotline_order_no.trim();
        if src == Some("HOTLINE") && order.is_empty() {
            v.push(Violation::new("hotline_order_no", "required for HOTLINE"));
        }
        let dispute_type = dispute_type.trim().to_owned();
        if dispute_type.is_empty() || dispute_type.chars().count() > 32 {
            v.push(Violation::new(
                "dispute_type",
                format!("required, e.g. {}", mediation::DISPUTE_TYPES.join("、")),
            ));
        }
        let team = team.trim().to_owned();
        if team.is_empty() {
            v.push(Violation::new(
                "team",
                "required: the team's department code",
            ));
        }
        let mediators: Vec<String> = mediators.iter().map(|m| m.trim().to_owned()).collect();
        if mediators.len() > 20
            || mediators
                .iter()
                .any(|m| m.is_empty() || m.chars().count() > 64)
        {
            v.push(Violation::new(
                "mediators",
                "at most 20 ids of 1–64 characters",
            ));
        }
        let summary = summary.trim().to_owned();
        if summary.is_empty() || summary.chars().count() > 4000 {
            v.push(Violation::new(
                "summary",
                "required, at most 4,000 characters",
            ));
        }
        let region = RegionCode::parse(region_code.trim())
            .ok()
            .filter(|c| matches!(c.level(), RegionLevel::Town | RegionLevel::Village));
        if region.is_none() {
            v.push(Violation::new(
                "region_code",
                "the town (9 digits) or village (12 digits)",
            ));
        }
        let parties = parties(&raw_parties, &mut v);
        let (Some(source), Some(kind), Some(region), true) = (src, k, region, v.is_empty()) else {
            return Err(ApiError::InvalidArgument(v));
        };
        Ok(NewMediation {
            source,
            kind,
            linked_case_id: linked,
            hotline_order_no: Some(order.to_owned()).filter(|o| !o.is_empty()),
            dispute_type,
            team,
            mediators,
            summary,
            region,
            parties,
        })
    }
}

/// RecordSession's fields, checked against `now` (a session is not in the future).
fn new_session(r: pb::RecordSessionRequest, now: DateTime<Utc>) -> Result<NewSession, ApiError> {
    let pb::RecordSessionRequest {
        id,
        expected_version,
        held_at,
        place,
        participants,
        summary,
        request_id: _,
    } = r;
    let id = uuid_field(&id, "id")?;
    let mut v = Vec::new();
    let held = held_at.as_ref().and_then(convert::from_timestamp);
    match held {
        Some(t) if t <= now + Duration::minutes(5) => {}
        _ => v.push(Violation::new("held_at", "required, not in the future")),
    }
    let (place, summary) = (place.trim().to_owned(), summary.trim().to_owned());
    if place.is_empty() || place.chars().count() > 200 {
        v.push(Violation::new("place", "required, at most 200 characters"));
    }
    if summary.is_empty() || summary.chars().count() > 8000 {
        v.push(Violation::new(
            "summary",
            "required, at most 8,000 characters",
        ));
    }
    if participants.len() > 50 {
        v.push(Violation::new("participants", "at most 50"));
    }
    let (Some(held_at), true) = (held, v.is_empty()) else {
        return Err(ApiError::InvalidArgument(v));
    };
    Ok(NewSession {
        id,
        expected_version,
        held_at,
        place,
        participants: participants.iter().map(|x| x.trim().to_owned()).collect(),
        summary,
    })
}

impl TryFrom<pb::RecordOutcomeRequest> for Outcome {
    type Error = ApiError;

    fn try_from(r: pb::RecordOutcomeRequest) -> Result<Outcome, ApiError> {
        let pb::RecordOutcomeRequest {
            id,
            expected_version,
            outcome,
            agreement,
            referral,
            referral_note,
            request_id: _,
        } = r;
        let id = uuid_field(&id, "id")?;
        let mut v = Vec::new();
        let ending = match pb::MediationStatus::try_from(outcome) {
            Ok(pb::MediationStatus::Succeeded) => {
                let pb::Agreement {
                    written,
                    text,
                    amount_fen,
                    performance_deadline,
                    version: _,
                    recorded_at: _,
                    recorded_by: _,
                } = agreement.unwrap_or_default();
                let text = text.trim().to_owned();
                if text.is_empty() || text.chars().count() > 8000 {
                    v.push(Violation::new(
                        "agreement.text",
                        "required, at most 8,000 characters",
                    ));
                }
                if amount_fen < 0 {
                    v.push(Violation::new(
                        "agreement.amount_fen",
                        "must not be negative",
                    ));
                }
                let performance_deadline = match performance_deadline.trim() {
                    "" => None,
                    d => crate::domain::catalog::date(d).or_else(|| {
                        v.push(Violation::new(
                            "agreement.performance_deadline",
                            "YYYY-MM-DD",
                        ));
                        None
                    }),
                };
                Ending::Agreement {
                    written,
                    text,
                    amount_fen,
                    performance_deadline,
                }
            }
            Ok(pb::MediationStatus::Failed) => {
                let to = match pb::Referral::try_from(referral) {
                    Ok(pb::Referral::Unspecified) | Err(_) => {
                        v.push(Violation::new(
                            "referral",
                            "LITIGATION, ARBITRATION, ADMINISTRATIVE_HANDLING or PETITION",
                        ));
                        String::new()
                    }
                    Ok(x) => x.as_str_name().to_owned(),
                };
                Ending::Referral {
                    to,
                    note: referral_note.trim().to_owned(),
                }
            }
            _ => return Err(ApiError::invalid("outcome", "SUCCEEDED or FAILED")),
        };
        if !v.is_empty() {
            return Err(ApiError::InvalidArgument(v));
        }
        Ok(Outcome {
            id,
            expected_version,
            ending,
        })
    }
}

impl TryFrom<pb::RecordFollowUpRequest> for FollowUp {
    type Error = ApiError;

    fn try_from(r: pb::RecordFollowUpRequest) -> Result<FollowUp, ApiError> {
        let pb::RecordFollowUpRequest {
            id,
            expected_version,
            performed,
            note,
            close,
            request_id: _,
        } = r;
        let id = uuid_field(&id, "id")?;
        if note.chars().count() > 4000 {
            return Err(ApiError::invalid("note", "at most 4,000 characters"));
        }
        Ok(FollowUp {
            id,
            expected_version,
            performed,
            note: note.trim().to_owned(),
            close,
        })
    }
}

/// What ListMediationCases filters by.
fn list_filter(
    state: &super::State,
    r: &pb::ListMediationCasesRequest,
) -> Result<db::Filter, ApiError> {
    Ok(db::Filter {
        statuses: statuses(&r.statuses)?,
        team: Some(r.team.trim().to_owned()).filter(|t| !t.is_empty()),
        follow_up_overdue_on: r
            .follow_up_overdue
            .then(|| app::mediation::today(&state.app)),
        linked_case: super::optional_uuid(r.linked_case_id.trim(), "linked_case_id")?,
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
        let resend = Resend::of("MediationService/CreateMediationCase", &r);
        let m = NewMediation::try_from(r)?;
        let out = app::mediation::create(&self.state.app, &p, resend, m, view).await?;
        Ok(Response::new(out))
    }

    async fn get_mediation_case(
        &self,
        req: Request<pb::GetMediationCaseRequest>,
    ) -> Result<Response<pb::MediationCase>, Status> {
        let p = principal(&req)?;
        let id = uuid_field(&req.get_ref().id, "id")?;
        let out = app::mediation::get(&self.state.app, &p, id).await?;
        let steps = app::mediation::available(&p, &out);
        Ok(Response::new(pb::MediationCase {
            available_steps: steps.iter().map(|a| a.as_str().to_owned()).collect(),
            ..view(out)
        }))
    }

    async fn list_mediation_cases(
        &self,
        req: Request<pb::ListMediationCasesRequest>,
    ) -> Result<Response<pb::ListMediationCasesResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let prefix = requested_scope(&p, &r.region_code)?;
        let f = list_filter(&self.state, &r)?;
        // Bound to the whole filter; the linked case only when given (older tokens stay valid).
        let linked = f.linked_case.map(|c| format!("|{c}")).unwrap_or_default();
        let filter = format!(
            "{prefix}|{:?}|{:?}|{}{linked}",
            f.statuses, f.team, r.follow_up_overdue
        );
        let (size, token) = (r.page_size, &r.page_token);
        let page = Page::parse(&self.state, &p, "ListMediationCases", &filter, size, token)?;
        let before = page.after_uuid()?;
        let limit = page.fetch_limit();
        let state = self.state.clone();
        let who = p.clone();
        let (rows, next) = mutation::audited(&self.state.app, &p, move |conn, audit| {
            async move {
                let mut rows = db::list(conn, &prefix, &f, before, limit).await?;
                let next = page.finish(&state, &mut rows, |c| c.case_id.to_string());
                let out = app::mediation::views(&state.app, conn, audit, rows, &who).await?;
                Ok((out, next))
            }
            .boxed()
        })
        .await?;
        Ok(Response::new(pb::ListMediationCasesResponse {
            mediation_cases: rows.into_iter().map(view).collect(),
            next_page_token: next,
        }))
    }

    async fn record_session(
        &self,
        req: Request<pb::RecordSessionRequest>,
    ) -> Result<Response<pb::MediationCase>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let resend = Resend::of("MediationService/RecordSession", &r);
        let s = new_session(r, self.state.app.workflow.clock.now())?;
        let out = app::mediation::record_session(&self.state.app, &p, resend, s, view).await?;
        Ok(Response::new(out))
    }

    async fn record_outcome(
        &self,
        req: Request<pb::RecordOutcomeRequest>,
    ) -> Result<Response<pb::MediationCase>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let resend = Resend::of("MediationService/RecordOutcome", &r);
        let o = Outcome::try_from(r)?;
        let out = app::mediation::record_outcome(&self.state.app, &p, resend, o, view).await?;
        Ok(Response::new(out))
    }

    async fn record_follow_up(
        &self,
        req: Request<pb::RecordFollowUpRequest>,
    ) -> Result<Response<pb::MediationCase>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let resend = Resend::of("MediationService/RecordFollowUp", &r);
        let f = FollowUp::try_from(r)?;
        let out = app::mediation::record_follow_up(&self.state.app, &p, resend, f, view).await?;
        Ok(Response::new(out))
    }

    async fn get_mediation_stats(
        &self,
        req: Request<pb::GetMediationStatsRequest>,
    ) -> Result<Response<pb::MediationStats>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let prefix = requested_scope(&p, &r.region_code)?;
        let now = self.state.app.workflow.clock.now();
        let (from, to) = super::figures_period(r.from.as_ref(), r.to.as_ref(), now)?;
        let mut conn = self.state.app.stale_ok().await?;
        let rows = db::stats(&mut conn, &prefix, from, to)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(mediation_stats(&rows)))
    }

    async fn find_person_disputes(
        &self,
        req: Request<pb::FindPersonDisputesRequest>,
    ) -> Result<Response<pb::ListMediationCasesResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let (id_index, phone_index) = person_key(&r, &self.state.app.pii)?;
        let out = app::mediation::find_person(&self.state.app, &p, id_index, phone_index).await?;
        Ok(Response::new(pb::ListMediationCasesResponse {
            mediation_cases: out.into_iter().map(view).collect(),
            next_page_token: String::new(),
        }))
    }
}

/// The mediation figures on the wire: the total (set 0) and by type, team and kind (sets 1–3);
/// the success rate by `domain::figures::rate`, of the cases decided.
fn mediation_stats(rows: &[db::Figures]) -> pb::MediationStats {
    let fig = |x: &db::Figures| pb::MediationFigures {
        key: x.key.clone(),
        cases: x.cases,
        succeeded: x.succeeded,
        failed: x.failed,
        success_rate: rate(
            i64::from(x.succeeded),
            i64::from(x.succeeded) + i64::from(x.failed),
        ),
        average_days_to_outcome: x.days_to_outcome,
        performed_on_time: x.performed_on_time,
        with_deadline: x.with_deadline,
    };
    let pick = |set: i32| rows.iter().filter(|x| x.set == set).map(fig).collect();
    pb::MediationStats {
        total: Some(
            rows.iter()
                .find(|x| x.set == 0)
                .map(fig)
                .unwrap_or_default(),
        ),
        by_type: pick(1),
        by_team: pick(2),
        by_kind: pick(3),
    }
}

/// The blind indexes (ID number, phone) FindPersonDisputes looks a person up by.
type PersonIndexes = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The blind index of the one person FindPersonDisputes looks for: by ID number or by phone.
fn person_key(
    r: &pb::FindPersonDisputesRequest,
    pii: &crate::crypto::PiiCipher,
) -> Result<PersonIndexes, ApiError> {
    Ok(match (r.id_number.trim(), r.phone.trim()) {
        ("", "") => {
            return Err(ApiError::invalid(
                "id_number",
                "give an ID number or a phone",
            ));
        }
        (id, "") => (
            Some(
                pii.blind_index(
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
                pii.blind_index(
                    Phone::parse(ph, "phone")
                        .map_err(|e| ApiError::InvalidArgument(vec![e]))?
                        .expose(),
                ),
            ),
        ),
        _ => {
            return Err(ApiError::invalid(
                "phone",
                "give an ID number or a phone, not both",
            ));
        }
    })
}
