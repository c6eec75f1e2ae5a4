//! Mediation: the whole workflow with the right roles, illegal steps and wrong roles,
//! agreement versions, follow-up scheduling and overdue follow-ups, the linked grid case in
//! both outcomes, masking by role with audited unmasked reads, ID-number validation,
//! ciphertext in the database, key rotation, the repeat-dispute alert, statistics against
//! hand-computed figures, and no personal data in the logs of the real binary.

use std::process::Stdio;
use std::time::{Duration, Instant};

use gridhub::crypto::{PiiCipher, SecretKey};
use gridhub::grpc::convert::timestamp;
use gridhub::grpc::pb::{self, CaseAction};
use tonic::Code;

use crate::helpers::{FreshDb, TestApp, violations};
use crate::reports::WALL;
use crate::workflow::{self, TOWN, ZFJ, handler, local, operator, town_at};

pub const TEAM: &str = "500110111201-TWH";
const OTHER_TEAM: &str = "500110111-SFS";
/// Valid GB 11643 numbers (check digits computed).
const ID_A: &str = "500110195003071234";
const ID_B: &str = "500110198001015670";
const ID_C: &str = "500110197512122465";
const PHONE_A: &str = "13811112222";
const PHONE_B: &str = "13933334444";

async fn with_teams(app: &TestApp) {
    let sql = app.sql().await;
    sql.batch_execute(&format!(
        "INSERT INTO departments (code, name, region_code, kind) VALUES
           ('{TEAM}', '马颈村人民调解委员会', '500110111201', '调解'),
           ('{OTHER_TEAM}', '打通镇司法所', '{TOWN}', '调解')
         ON CONFLICT (code) DO NOTHING"
    ))
    .await
    .unwrap();
}

fn mediator(app: &TestApp) -> String {
    app.token_unit("med-li", &["mediator"], TOWN, TEAM)
}

fn party(name: &str, role: pb::PartyRole, id: &str, phone: &str) -> pb::Party {
    pb::Party {
        name: name.into(),
        role: role as i32,
        id_number: id.into(),
        phone: phone.into(),
        address: "马颈村三组".into(),
    }
}

pub fn dispute(linked: &str) -> pb::CreateMediationCaseRequest {
    pb::CreateMediationCaseRequest {
        source: if linked.is_empty() {
            pb::MediationSource::WalkIn
        } else {
            pb::MediationSource::GridReport
        } as i32,
        linked_case_id: linked.into(),
        dispute_type: "邻里".into(),
        parties: vec![
            party("张大山", pb::PartyRole::Applicant, ID_A, PHONE_A),
            party("李小河", pb::PartyRole::Respondent, ID_B, PHONE_B),
        ],
        team: TEAM.into(),
        mediators: vec!["med-li".into()],
        kind: pb::MediationKind::People as i32,
        region_code: "500110111201".into(),
        summary: "上下游两户因排水沟堵塞发生纠纷".into(),
        ..Default::default()
    }
}

async fn create(
    app: &TestApp,
    token: &str,
    r: pb::CreateMediationCaseRequest,
) -> Result<pb::MediationCase, tonic::Status> {
    app.mediation(Some(token))
        .await
        .create_mediation_case(r)
        .await
        .map(|r| r.into_inner())
}

fn session(c: &pb::MediationCase, at: &str) -> pb::RecordSessionRequest {
    pb::RecordSessionRequest {
        id: c.id.clone(),
        expected_version: c.version,
        held_at: Some(timestamp(local(at))),
        place: "马颈村便民服务室".into(),
        participants: vec!["申请人".into(), "被申请人".into(), "调解员 李".into()],
        summary: "双方陈述意见".into(),
        ..Default::default()
    }
}

fn success(c: &pb::MediationCase, deadline: &str, text: &str) -> pb::RecordOutcomeRequest {
    pb::RecordOutcomeRequest {
        id: c.id.clone(),
        expected_version: c.version,
        outcome: pb::MediationStatus::Succeeded as i32,
        agreement: Some(pb::Agreement {
            written: true,
            text: text.into(),
            amount_fen: 50_000,
            performance_deadline: deadline.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn failure(c: &pb::MediationCase, referral: pb::Referral) -> pb::RecordOutcomeRequest {
    pb::RecordOutcomeRequest {
        id: c.id.clone(),
        expected_version: c.version,
        outcome: pb::MediationStatus::Failed as i32,
        referral: referral as i32,
        referral_note: "双方分歧较大".into(),
        ..Default::default()
    }
}

fn follow_up(c: &pb::MediationCase, performed: bool, close: bool) -> pb::RecordFollowUpRequest {
    pb::RecordFollowUpRequest {
        id: c.id.clone(),
        expected_version: c.version,
        performed,
        note: "现场查看".into(),
        close,
        ..Default::default()
    }
}

async fn overdue(app: &TestApp, op: &str) -> Vec<pb::MediationCase> {
    app.mediation(Some(op))
        .await
        .list_mediation_cases(pb::ListMediationCasesRequest {
            follow_up_overdue: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .mediation_cases
}

async fn repeat_alerts(app: &TestApp) -> Vec<pb::Alert> {
    app.cases(Some(&app.admin()))
        .await
        .list_alerts(pb::ListAlertsRequest {
            kind: "REPEAT_DISPUTE".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alerts
}

#[tokio::test]
async fn a_dispute_from_a_grid_case_is_mediated_agreed_followed_up_and_closes_the_case() {
    let (app, clock) = town_at(local("2026-11-25 11:00")).await;
    with_teams(&app).await;
    let grid_case = workflow::new_case(&app, "0202", WALL).await;
    let med = mediator(&app);
    let c = create(&app, &med, dispute(&grid_case.case_id))
        .await
        .unwrap();
    assert_eq!(c.status, pb::MediationStatus::Registered as i32);
    assert!(c.case_no.starts_with("TJ500110111-"), "{}", c.case_no);
    // The grid case records the referral.
    let g = workflow::get(&app, &grid_case.case_id).await;
    assert!(g.flags.contains(&"MEDIATION".to_string()), "{:?}", g.flags);
    // Masked for the mediator; whole for a pii_reader, and that read is audited.
    assert_eq!(c.parties[0].name, "张**");
    assert_eq!(c.parties[0].id_number, "500110********1234");
    assert_eq!(c.parties[0].phone, "138****2222");
    assert_eq!(c.parties[0].address, "***");
    let reads = "SELECT count(*) FROM audit_events WHERE action = 'pii.read'";
    assert_eq!(app.count(reads).await, 0);
    let reader = app.token("pii-1", &["town_operator", "pii_reader"], TOWN);
    let full = app
        .mediation(Some(&reader))
        .await
        .get_mediation_case(pb::GetMediationCaseRequest { id: c.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.parties[0].name, "张大山");
    assert_eq!(full.parties[0].id_number, ID_A);
    assert_eq!(full.parties[1].phone, PHONE_B);
    assert_eq!(app.count(reads).await, 1);
    let op = operator(&app);
    let masked = app
        .mediation(Some(&op))
        .await
        .get_mediation_case(pb::GetMediationCaseRequest { id: c.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(masked.parties[1].phone, "139****4444");
    assert_eq!(app.count(reads).await, 1);
    // The steps open to each caller: the team's mediator records sessions; the command centre
    // has nothing to do yet; answers other than GetMediationCase leave them out.
    let steps = |t: String, id: String| {
        let app = &app;
        async move {
            app.mediation(Some(&t))
                .await
                .get_mediation_case(pb::GetMediationCaseRequest { id })
                .await
                .unwrap()
                .into_inner()
                .available_steps
        }
    };
    assert_eq!(steps(med.clone(), c.id.clone()).await, ["SESSION"]);
    assert!(masked.available_steps.is_empty());
    assert!(c.available_steps.is_empty());

    // Wrong roles and states.
    let other = app.token_unit("med-wang", &["mediator"], TOWN, OTHER_TEAM);
    let rec = |t: String, r| {
        let app = &app;
        async move {
            app.mediation(Some(&t))
                .await
                .record_session(r)
                .await
                .map(|r| r.into_inner())
        }
    };
    assert_eq!(
        rec(other, session(&c, "2026-11-25 10:00"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        rec(op.clone(), session(&c, "2026-11-25 10:00"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let mut m = app.mediation(Some(&med)).await;
    let e = m
        .record_outcome(success(&c, "2026-12-05", "清理水沟"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("mediation case is REGISTERED"),
        "{}",
        e.message()
    );
    let mut future = session(&c, "2026-11-25 10:00");
    future.held_at = Some(timestamp(local("2026-12-25 10:00")));
    assert_eq!(
        violations(&m.record_session(future).await.unwrap_err()),
        vec!["held_at"]
    );

    // Two sessions; the second ends in a written agreement: clear the ditch within 10 days.
    let c = m
        .record_session(session(&c, "2026-11-25 10:00"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status, pb::MediationStatus::InMediation as i32);
    clock.set(local("2026-11-26 11:00"));
    let mut stale = session(&c, "2026-11-26 10:00");
    stale.expected_version -= 1;
    assert_eq!(
        m.record_session(stale).await.unwrap_err().code(),
        Code::Aborted
    );
    let c = m
        .record_session(session(&c, "2026-11-26 10:00"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.sessions.len(), 2);
    let c = m
        .record_outcome(success(&c, "2026-12-06", "上游户于12月6日前清理水沟"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status, pb::MediationStatus::Succeeded as i32);
    let a = c.agreement.clone().unwrap();
    assert_eq!((a.version, a.amount_fen, a.written), (1, 50_000, true));
    assert_eq!(c.follow_ups.len(), 1);
    assert_eq!(c.follow_ups[0].due_on, "2026-12-07");
    assert_eq!(
        steps(med.clone(), c.id.clone()).await,
        ["CORRECT_AGREEMENT", "FOLLOW_UP"]
    );
    assert!(
        steps(op.clone(), c.id.clone()).await.is_empty(),
        "closes only after a follow-up"
    );
    // The grid case is closed with the mediation's outcome.
    let g = workflow::get(&app, &grid_case.case_id).await;
    assert_eq!(g.status, "CLOSED");
    assert!(g.flags.contains(&"MEDIATED".to_string()));
    // A correction is a new version; the old one is kept; the follow-up moves with it.
    let c = m
        .record_outcome(success(
            &c,
            "2026-12-05",
            "上游户于12月5日前清理水沟并加固沟壁",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.agreement.as_ref().unwrap().version, 2);
    assert_eq!(c.agreement_history.len(), 2);
    assert_eq!(c.agreement_history[0].text, "上游户于12月6日前清理水沟");
    assert_eq!(c.follow_ups.len(), 1);
    assert_eq!(c.follow_ups[0].due_on, "2026-12-06");
    assert_eq!(
        app.count("SELECT count(*) FROM mediation_agreements").await,
        2
    );
    // Agreements and sessions cannot be edited in place.
    let edit = app
        .sql()
        .await
        .execute("UPDATE mediation_agreements SET text = 'x'", &[])
        .await;
    assert!(edit.is_err());
    // The team's follow-up visit can close the case at once (the visit is recorded first).
    let c = m
        .record_follow_up(follow_up(&c, true, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status, pb::MediationStatus::ClosedMediation as i32);
    assert!(c.follow_ups[0].performed);
    let e = app
        .mediation(Some(&op))
        .await
        .record_follow_up(follow_up(&c, true, true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn follow_ups_are_scheduled_listed_when_overdue_and_the_centre_closes_only_after_one() {
    let (app, clock) = town_at(local("2026-11-25 09:00")).await;
    with_teams(&app).await;
    let med = mediator(&app);
    let mut m = app.mediation(Some(&med)).await;
    let c = create(&app, &med, dispute("")).await.unwrap();
    let c = m
        .record_session(session(&c, "2026-11-25 09:00"))
        .await
        .unwrap()
        .into_inner();
    let c = m
        .record_outcome(success(&c, "2026-12-05", "十日内清理水沟"))
        .await
        .unwrap()
        .into_inner();
    let op = operator(&app);
    // The command centre cannot close a success nobody followed up.
    let e = app
        .mediation(Some(&op))
        .await
        .record_follow_up(follow_up(&c, true, true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(overdue(&app, &op).await.is_empty());
    // Day 12: the follow-up (due 6 December) is overdue.
    clock.set(local("2026-12-07 09:00"));
    let late = overdue(&app, &op).await;
    assert_eq!(late.len(), 1);
    assert!(late[0].follow_ups[0].overdue);
    let c = m
        .record_follow_up(follow_up(&c, true, false))
        .await
        .unwrap()
        .into_inner();
    assert!(c.follow_ups[0].performed && c.follow_ups[0].done_at.is_some());
    assert!(overdue(&app, &op).await.is_empty());
    let c = app
        .mediation(Some(&op))
        .await
        .record_follow_up(follow_up(&c, true, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status, pb::MediationStatus::ClosedMediation as i32);
}

#[tokio::test]
async fn a_failed_mediation_refers_on_and_reopens_a_closed_grid_case() {
    let (app, _clock) = town_at(local("2026-11-25 09:00")).await;
    with_teams(&app).await;
    // A grid case closed by the command centre.
    let op = operator(&app);
    let g = workflow::registered(&app, WALL).await;
    let g = workflow::act(&app, &op, workflow::dispatch(&g, ZFJ, 3))
        .await
        .unwrap();
    let h = handler(&app, ZFJ);
    let g = workflow::act(&app, &h, workflow::step(&g, CaseAction::Sign))
        .await
        .unwrap();
    let g = workflow::act(&app, &h, workflow::step(&g, CaseAction::Feedback))
        .await
        .unwrap();
    let g = workflow::act(&app, &op, workflow::step(&g, CaseAction::VerifyOk))
        .await
        .unwrap();
    assert_eq!(g.status, "CLOSED");
    let med = mediator(&app);
    let mut m = app.mediation(Some(&med)).await;
    let c = create(&app, &med, dispute(&g.case_id)).await.unwrap();
    let c = m
        .record_session(session(&c, "2026-11-25 09:00"))
        .await
        .unwrap()
        .into_inner();
    let e = m
        .record_outcome(failure(&c, pb::Referral::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(violations(&e), vec!["referral"]);
    let c = m
        .record_outcome(failure(&c, pb::Referral::Litigation))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status, pb::MediationStatus::Failed as i32);
    assert_eq!(c.referral, pb::Referral::Litigation as i32);
    assert!(c.follow_ups.is_empty());
    let g = workflow::get(&app, &g.case_id).await;
    assert_eq!(g.status, "REGISTERED", "back to the command centre");
    assert!(
        g.flags.contains(&"REFERRED_LITIGATION".to_string()),
        "{:?}",
        g.flags
    );
    // A failure needs no follow-up to close.
    let c = m
        .record_follow_up(follow_up(&c, false, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status, pb::MediationStatus::ClosedMediation as i32);
}

#[tokio::test]
async fn personal_data_is_validated_encrypted_and_repeat_disputes_raise_an_alert() {
    let (app, _clock) = town_at(local("2026-11-25 09:00")).await;
    with_teams(&app).await;
    let med = mediator(&app);
    let mut bad = dispute("");
    bad.parties[1].id_number = "500110198001015671".into();
    bad.parties[0].phone = "1381111222".into();
    let mut v = violations(&create(&app, &med, bad).await.unwrap_err());
    v.sort();
    assert_eq!(v, vec!["parties[0].phone", "parties[1].id_number"]);
    let mut one = dispute("");
    one.parties.truncate(1);
    one.parties[0].role = pb::PartyRole::Respondent as i32;
    let v = violations(&create(&app, &med, one).await.unwrap_err());
    assert!(v.contains(&"parties".to_string()), "{v:?}");
    assert_eq!(app.count("SELECT count(*) FROM mediation_cases").await, 0);

    // 张大山 (ID_A) in two disputes: no alert; in a third (with someone else): an alert.
    create(&app, &med, dispute("")).await.unwrap();
    create(&app, &med, dispute("")).await.unwrap();
    assert!(repeat_alerts(&app).await.is_empty());
    let mut third = dispute("");
    third.parties[1] = party("王三", pb::PartyRole::Respondent, ID_C, "");
    third.dispute_type = "合同".into();
    create(&app, &med, third).await.unwrap();
    let a = repeat_alerts(&app).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].subject, "500110********1234");
    // Its message says what happened, with the figures, and nobody's data in clear.
    assert!(
        a[0].message.contains("3 disputes in 365 days"),
        "{:?}",
        a[0].message
    );
    assert!(
        a[0].message.contains("500110********1234"),
        "{:?}",
        a[0].message
    );
    assert!(!a[0].message.contains(ID_A), "{:?}", a[0].message);
    // 李小河 (ID_B) is in two: nothing for him.

    // The blind index finds a person's disputes without decrypting everything; audited.
    let found = app
        .mediation(Some(&med))
        .await
        .find_person_disputes(pb::FindPersonDisputesRequest {
            id_number: ID_A.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.mediation_cases.len(), 3);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE action = 'pii.lookup'")
            .await,
        1
    );
    // Only ciphertext in the database and no personal data in the audit trail (sealed or
    // still pending).
    app.seal().await;
    for needle in [ID_A, ID_B, PHONE_A, "张大山", "马颈村三组"] {
        let n = app
            .sql()
            .await
            .query_one(
                "SELECT count(*) FROM mediation_parties WHERE position(convert_to($1, 'UTF8') in name_enc || coalesce(id_number_enc, '') || coalesce(phone_enc, '') || coalesce(address_enc, '')) > 0",
                &[&needle],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert_eq!(n, 0, "{needle} in plaintext");
        let n = app
            .sql()
            .await
            .query_one(
                "SELECT (SELECT count(*) FROM audit_events WHERE coalesce(after::text, '') || coalesce(before::text, '') LIKE '%' || $1 || '%')
                      + (SELECT count(*) FROM audit_pending WHERE array_to_string(tails, ' ') || coalesce(afters::text, '') || coalesce(befores::text, '') LIKE '%' || $1 || '%')",
                &[&needle],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert_eq!(n, 0, "{needle} in the audit trail");
    }
}

#[tokio::test]
async fn key_rotation_keeps_everything_readable() {
    let (app, _clock) = town_at(local("2026-11-25 09:00")).await;
    with_teams(&app).await;
    let med = mediator(&app);
    let c = create(&app, &med, dispute("")).await.unwrap();
    let old = app.settings.pii_key.clone();
    // The new key, id 2; the old one kept for reading until the rotation is done.
    let new = SecretKey::generate();
    let mut settings = app.settings.clone();
    settings.pii_key = new.clone();
    settings.pii_key_id = 2;
    settings.pii_previous_keys = vec![(1, old.clone())];
    let cipher = PiiCipher::with_keys(2, &new, &[(1, old)]);
    let counts = gridhub::keys::rotate(&app.db, &cipher).await.unwrap();
    let n = |col: &str| counts.iter().find(|(c, _)| c == col).unwrap().1;
    assert_eq!(n("mediation_parties.name_enc"), 2);
    assert_eq!(n("mediation_parties.id_number_enc"), 2);
    assert!(n("workers.phone_enc") >= 3, "{counts:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM mediation_parties WHERE get_byte(name_enc, 0) <> 130 OR get_byte(id_number_enc, 0) <> 130")
            .await,
        0
    );
    // Again: nothing left to do.
    let again = gridhub::keys::rotate(&app.db, &cipher).await.unwrap();
    assert!(again.iter().all(|(_, n)| *n == 0), "{again:?}");
    // A server with only the new key reads everything, and the blind index still finds people.
    settings.pii_previous_keys.clear();
    let mut replica = gridhub::startup::App::bind(&settings, &app.db)
        .await
        .unwrap();
    replica.ready().await;
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", replica.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let reader = app.token("pii-1", &["mediator", "pii_reader"], TOWN);
    let header: tonic::metadata::MetadataValue<_> = format!("Bearer {reader}").parse().unwrap();
    let mut client = pb::mediation_service_client::MediationServiceClient::with_interceptor(
        ch,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", header.clone());
            Ok(r)
        },
    );
    let got = client
        .get_mediation_case(pb::GetMediationCaseRequest { id: c.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.parties[0].id_number, ID_A);
    assert_eq!(got.parties[1].name, "李小河");
    let found = client
        .find_person_disputes(pb::FindPersonDisputesRequest {
            phone: PHONE_B.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.mediation_cases.len(), 1);
    replica.shutdown().await;
}

#[tokio::test]
async fn statistics_match_hand_computed_figures() {
    let (app, clock) = town_at(local("2026-11-02 09:00")).await;
    with_teams(&app).await;
    let med = mediator(&app);
    let other = app.token_unit("med-wang", &["mediator"], TOWN, OTHER_TEAM);
    let mut m = app.mediation(Some(&med)).await;
    let mut o = app.mediation(Some(&other)).await;
    // A: 邻里, PEOPLE, TEAM: agreement after 2 days with a deadline, performed at follow-up.
    let a = create(&app, &med, dispute("")).await.unwrap();
    let a = m
        .record_session(session(&a, "2026-11-02 09:00"))
        .await
        .unwrap()
        .into_inner();
    // B: 邻里, PEOPLE, TEAM: fails after 1 day.
    let b = create(&app, &med, dispute("")).await.unwrap();
    let b = m
        .record_session(session(&b, "2026-11-02 09:00"))
        .await
        .unwrap()
        .into_inner();
    // C: 合同, ADMINISTRATIVE, OTHER_TEAM: still registered.
    let mut c = dispute("");
    c.dispute_type = "合同".into();
    c.kind = pb::MediationKind::Administrative as i32;
    c.team = OTHER_TEAM.into();
    c.mediators = vec!["med-wang".into()];
    c.region_code = TOWN.into();
    create(&app, &other, c).await.unwrap();
    clock.set(local("2026-11-03 09:00"));
    m.record_outcome(failure(&b, pb::Referral::Arbitration))
        .await
        .unwrap();
    clock.set(local("2026-11-04 09:00"));
    let a = m
        .record_outcome(success(&a, "2026-11-10", "赔偿500元"))
        .await
        .unwrap()
        .into_inner();
    clock.set(local("2026-11-11 09:00"));
    let a = m
        .record_follow_up(follow_up(&a, true, true))
        .await
        .unwrap()
        .into_inner();
    // Another team's mediator cannot act on TEAM's case.
    assert_eq!(
        o.record_follow_up(follow_up(&a, true, false))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    let stats = app
        .mediation(Some(&operator(&app)))
        .await
        .get_mediation_stats(pb::GetMediationStatsRequest {
            region_code: TOWN.into(),
            from: Some(timestamp(local("2026-11-01 00:00"))),
            to: Some(timestamp(local("2026-12-01 00:00"))),
        })
        .await
        .unwrap()
        .into_inner();
    let t = stats.total.clone().unwrap();
    assert_eq!((t.cases, t.succeeded, t.failed), (3, 1, 1));
    assert!((t.success_rate - 0.5).abs() < 1e-9);
    // A: 2 days, B: 1 day.
    assert!((t.average_days_to_outcome - 1.5).abs() < 1e-6, "{t:?}");
    assert_eq!((t.performed_on_time, t.with_deadline), (1, 1));
    let by = |v: &[pb::MediationFigures], k: &str| v.iter().find(|x| x.key == k).unwrap().clone();
    let n = by(&stats.by_type, "邻里");
    assert_eq!((n.cases, n.succeeded, n.failed), (2, 1, 1));
    assert_eq!(by(&stats.by_type, "合同").cases, 1);
    assert_eq!(by(&stats.by_team, TEAM).cases, 2);
    assert_eq!(by(&stats.by_team, OTHER_TEAM).succeeded, 0);
    assert_eq!(by(&stats.by_kind, "PEOPLE").cases, 2);
    assert_eq!(by(&stats.by_kind, "ADMINISTRATIVE").cases, 1);
    // A range of partial months reads the cases themselves: the same figures.
    let partial = app
        .mediation(Some(&operator(&app)))
        .await
        .get_mediation_stats(pb::GetMediationStatsRequest {
            region_code: TOWN.into(),
            from: Some(timestamp(local("2026-10-15 00:00"))),
            to: Some(timestamp(local("2026-11-20 00:00"))),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(partial.total, stats.total);
    assert_eq!(partial.by_type, stats.by_type);
    // Ranges starting or ending inside a day read those hours' cases one by one and the whole
    // days from the daily figures: the same figures; an hour before the registrations: none.
    let range = |from: &str, to: &str| pb::GetMediationStatsRequest {
        region_code: TOWN.into(),
        from: Some(timestamp(local(from))),
        to: Some(timestamp(local(to))),
    };
    for (from, to, whole) in [
        ("2026-10-20 13:30", "2026-11-02 09:30", true),
        ("2026-11-02 09:00", "2026-11-02 09:01", true),
        ("2026-10-31 23:00", "2026-11-02 08:59", false),
    ] {
        let s = app
            .mediation(Some(&operator(&app)))
            .await
            .get_mediation_stats(range(from, to))
            .await
            .unwrap()
            .into_inner();
        if whole {
            assert_eq!(s.total, stats.total, "{from} – {to}");
            assert_eq!(s.by_team, stats.by_team, "{from} – {to}");
            assert_eq!(s.by_kind, stats.by_kind, "{from} – {to}");
        } else {
            assert_eq!(s.total.unwrap().cases, 0, "{from} – {to}");
            assert!(s.by_kind.is_empty(), "{from} – {to}");
        }
    }
    let none = app
        .mediation(Some(&operator(&app)))
        .await
        .get_mediation_stats(pb::GetMediationStatsRequest {
            region_code: TOWN.into(),
            from: Some(timestamp(local("2026-12-01 00:00"))),
            to: Some(timestamp(local("2027-03-01 00:00"))),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.total.unwrap().cases, 0);
    assert!(none.by_type.is_empty());
}

/// The real binary with debug logs: registering disputes (one with a bad ID number) and a
/// 12345 order leaves no ID number or phone in the log output.
#[tokio::test]
async fn no_personal_data_in_the_logs() {
    let db = FreshDb::create().await;
    let key = SecretKey::generate().to_base64();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let logs = tempfile::NamedTempFile::new().unwrap();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridhub"))
        .args([
            "serve",
            "--log-format",
            "json",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("DATABASE_URL", db.url.expose())
        .env("GRIDHUB_JWT_SECRET", &key)
        .env("GRIDHUB_PII_KEY", SecretKey::generate().to_base64())
        .env("GRIDHUB_DATA_DIR", tempfile::tempdir().unwrap().path())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(logs.reopen().unwrap())
        .spawn()
        .unwrap();
    let issuer =
        gridhub::auth::jwt::Issuer::hs256(&SecretKey::from_base64(&key).unwrap(), "gridhub");
    let admin = issuer
        .issue(
            "admin-1",
            &["admin".into(), "pii_reader".into()],
            "*",
            Duration::from_secs(600),
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let channel = loop {
        if let Ok(ch) = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            break ch;
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let header: tonic::metadata::MetadataValue<_> = format!("Bearer {admin}").parse().unwrap();
    let auth = move |mut r: tonic::Request<()>| {
        r.metadata_mut().insert("authorization", header.clone());
        Ok(r)
    };
    let mut regions = pb::region_service_client::RegionServiceClient::with_interceptor(
        channel.clone(),
        auth.clone(),
    );
    let records: Vec<pb::RegionRecord> = [
        ("50", "", 1),
        ("5001", "50", 2),
        ("500110", "5001", 3),
        ("500110111", "500110", 4),
        ("500110111201", "500110111", 5),
    ]
    .into_iter()
    .map(|(code, parent, level)| pb::RegionRecord {
        code: code.into(),
        name: format!("区{code}"),
        level,
        parent_code: parent.into(),
        ..Default::default()
    })
    .collect();
    let mut ok = false;
    for _ in 0..50 {
        if regions
            .import_regions(tokio_stream::iter(records.clone()))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok);
    regions
        .upsert_department(pb::UpsertDepartmentRequest {
            department: Some(pb::Department {
                code: TEAM.into(),
                name: "马颈村人民调解委员会".into(),
                region_code: "500110111201".into(),
                kind: "调解".into(),
                active: true,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let mut med = pb::mediation_service_client::MediationServiceClient::with_interceptor(
        channel.clone(),
        auth.clone(),
    );
    let c = med
        .create_mediation_case(dispute(""))
        .await
        .unwrap()
        .into_inner();
    med.get_mediation_case(pb::GetMediationCaseRequest { id: c.id })
        .await
        .unwrap();
    let mut bad = dispute("");
    bad.parties[1].id_number = "500110198001015671".into();
    med.create_mediation_case(bad).await.unwrap_err();
    let mut hl = pb::hotline_service_client::HotlineServiceClient::with_interceptor(channel, auth);
    let mut order = crate::hotline::work_order("LOG-1", 1);
    order.caller.as_mut().unwrap().phone = PHONE_A.into();
    hl.push_work_order(order).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().unwrap().to_string()])
        .status();
    assert!(server.wait().await.unwrap().success());
    let text = std::fs::read_to_string(logs.path()).unwrap();
    assert!(
        text.contains("MediationService/CreateMediationCase"),
        "the calls were logged"
    );
    for needle in [
        ID_A,
        ID_B,
        "500110198001015671",
        PHONE_A,
        PHONE_B,
        "张大山",
        "李小河",
    ] {
        assert!(!text.contains(needle), "{needle} in the logs");
    }
}

/// The k-th of 64 places in 马颈村 (its demo cell spans 28.82–28.84 N, 106.74–106.76 E), at
/// least 280 m apart: no two reports at them join one case.
fn majing_place(k: usize) -> (f64, f64) {
    (
        28.8215 + 0.0025 * (k % 8) as f64,
        106.7415 + 0.0025 * (k / 8 % 8) as f64,
    )
}

/// A grid case in `status` (one of the workflow's), reported at the k-th place (and a merged
/// one's target at the next).
async fn grid_case_in(app: &TestApp, status: &str, k: usize) -> pb::Case {
    let at = majing_place(k);
    let op = operator(app);
    let h = handler(app, ZFJ);
    if status == "REPORTED" {
        return workflow::new_case(app, "0202", at).await;
    }
    if status == "MERGED" {
        let a = workflow::registered(app, at).await;
        let b = workflow::registered(app, majing_place(k + 1)).await;
        app.cases(Some(&op))
            .await
            .merge_cases(pb::MergeCasesRequest {
                target_case_id: a.case_id.clone(),
                source_case_ids: vec![b.case_id.clone()],
                comment: "同一事件".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        return workflow::get(app, &b.case_id).await;
    }
    let mut c = workflow::registered(app, at).await;
    let path: &[(&str, CaseAction)] = &[
        ("DISPATCHED", CaseAction::Dispatch),
        ("SIGNED", CaseAction::Sign),
        ("HANDLED", CaseAction::Feedback),
        ("CLOSED", CaseAction::VerifyOk),
    ];
    if status == "VOID" {
        return workflow::act(app, &op, workflow::step(&c, CaseAction::Void))
            .await
            .unwrap();
    }
    for (reached, action) in path {
        if c.status == status {
            break;
        }
        let (who, req) = match action {
            CaseAction::Dispatch => (&op, workflow::dispatch(&c, ZFJ, 3)),
            CaseAction::Sign | CaseAction::Feedback => (&h, workflow::step(&c, *action)),
            _ => (&op, workflow::step(&c, *action)),
        };
        c = workflow::act(app, who, req).await.unwrap();
        assert_eq!(c.status, *reached);
    }
    assert_eq!(c.status, status);
    c
}

#[tokio::test]
async fn every_grid_case_status_takes_either_mediation_outcome_through_the_case_workflow() {
    let (app, _clock) = town_at(local("2026-11-25 09:00")).await;
    with_teams(&app).await;
    let statuses = [
        "REPORTED",
        "REGISTERED",
        "DISPATCHED",
        "SIGNED",
        "HANDLED",
        "CLOSED",
        "VOID",
        "MERGED",
    ];
    let med = mediator(&app);
    let mut m = app.mediation(Some(&med)).await;
    let mut k = 0;
    for status in statuses {
        for succeed in [true, false] {
            k += 2;
            let g = grid_case_in(&app, status, k).await;
            let c = create(&app, &med, dispute(&g.case_id)).await;
            let c = match c {
                Ok(c) => c,
                // A dispute may not be linked to a case that is no longer one of its own.
                Err(e) if matches!(status, "VOID" | "MERGED") => {
                    assert_eq!(e.code(), Code::FailedPrecondition, "{status}: {e:?}");
                    continue;
                }
                Err(e) => panic!("{status}: {e:?}"),
            };
            let c = m
                .record_session(session(&c, "2026-11-25 09:00"))
                .await
                .unwrap()
                .into_inner();
            let req = if succeed {
                success(&c, "2026-12-31", "双方同意疏通排水沟")
            } else {
                failure(&c, pb::Referral::Litigation)
            };
            let out = m.record_outcome(req).await;
            let out = out
                .unwrap_or_else(|e| panic!("{status} × success {succeed}: {e:?}"))
                .into_inner();
            let after = workflow::get(&app, &g.case_id).await;
            let expect = match (status, succeed) {
                ("CLOSED" | "VOID" | "MERGED", true) => status,
                (_, true) => "CLOSED",
                ("CLOSED", false) => "REGISTERED",
                (s, false) => s,
            };
            assert_eq!(after.status, expect, "{status} × success {succeed}");
            assert_eq!(
                out.status,
                if succeed {
                    pb::MediationStatus::Succeeded
                } else {
                    pb::MediationStatus::Failed
                } as i32
            );
            if succeed && !matches!(status, "CLOSED" | "VOID" | "MERGED") {
                assert!(after.flags.contains(&"MEDIATED".to_string()));
            }
        }
    }
    // The figures stay defined: the dashboard sums every case, each counted once.
    let d = app
        .cases(Some(&operator(&app)))
        .await
        .get_dashboard(pb::GetDashboardRequest {
            region_code: TOWN.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let count = |q: &'static str| {
        let app = &app;
        async move { app.count(q).await }
    };
    // A merged case lives on in its target: the dashboard counts it there.
    assert_eq!(
        d.total,
        count("SELECT count(*) FROM cases WHERE status <> 'MERGED'").await
    );
    assert_eq!(
        d.closed,
        count("SELECT count(*) FROM cases WHERE status = 'CLOSED'").await
    );
    // Closed by a mediation: handled at the success, on time against the deadline it had.
    assert_eq!(
        d.closed_on_time,
        count(
            "SELECT count(*) FROM cases WHERE status = 'CLOSED'
               AND (deadline IS NULL OR handled_at <= deadline)"
        )
        .await
    );
    assert!(d.closed >= 6, "{d:?}");
}

#[tokio::test]
async fn a_12345_request_follows_its_case_closed_by_a_mediation() {
    // Real time, as the 12345 tests: merging looks at the time gap.
    let (app, _clock) = workflow::town_at(chrono::Utc::now()).await;
    with_teams(&app).await;
    let case = workflow::new_case(&app, "0202", WALL).await;
    let mut o = crate::hotline::work_order("2026112500999", 1);
    o.location = Some(pb::LatLng {
        lat: WALL.0 + 0.00018,
        lng: WALL.1,
    });
    o.category_code = "HL-0307".into();
    o.received_at = Some(timestamp(chrono::Utc::now()));
    let hotline = crate::hotline::hotline(&app);
    let pushed = app
        .hotline(Some(&hotline))
        .await
        .push_work_order(o)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pushed.case_id, case.case_id, "one event, one case");
    let op = operator(&app);
    let case = workflow::get(&app, &case.case_id).await;
    let g = workflow::act(&app, &op, workflow::step(&case, CaseAction::Register))
        .await
        .unwrap();
    let g = workflow::act(&app, &op, workflow::dispatch(&g, ZFJ, 3))
        .await
        .unwrap();
    let med = mediator(&app);
    let mut m = app.mediation(Some(&med)).await;
    let c = create(&app, &med, dispute(&g.case_id)).await.unwrap();
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let held = (today - chrono::Duration::days(1))
        .format("%Y-%m-%d 09:00")
        .to_string();
    let due = (today + chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    let c = m
        .record_session(session(&c, &held))
        .await
        .unwrap()
        .into_inner();
    m.record_outcome(success(&c, &due, "双方同意疏通排水沟"))
        .await
        .unwrap();
    assert_eq!(workflow::get(&app, &g.case_id).await.status, "CLOSED");
    let sr_status: String = app
        .sql()
        .await
        .query_one(
            "SELECT status FROM service_requests WHERE hotline_order_no = '2026112500999'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sr_status, "REPLIED", "the request follows its case");
    let updates = app
        .hotline(Some(&hotline))
        .await
        .pull_updates(pb::PullUpdatesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        updates
            .updates
            .iter()
            .any(|u| u.kind == pb::UpdateKind::UpdateReplied as i32 && u.text.contains("调解成功")),
        "12345 hears the reply: {updates:?}"
    );
}
