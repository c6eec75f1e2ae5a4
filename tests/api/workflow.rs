//! The command centre's workflow: the closed loop with the right roles, illegal transitions
//! and wrong roles, stale versions, working-day deadlines on an imported calendar, extensions,
//! and the SLA ticker's overdue → 催办 → 通报 with a controllable clock.

use chrono::{DateTime, Utc};
use gridhub::clock::Clock;
use gridhub::grpc::convert::from_timestamp;
use gridhub::grpc::pb::{self, CaseAction};
use tonic::Code;

use crate::helpers::{TestApp, violations};
use crate::reports::{WALL, report};

pub const TOWN: &str = "500110111";
pub const ZFJ: &str = "500110111-ZFJ";
pub const BMFW: &str = "500110111-BMFW";

/// 2026-11-25 is a Wednesday.
pub fn local(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_str(&format!("{s} +0800"), "%Y-%m-%d %H:%M %z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Holidays 10-01..07 and the adjusted working Saturday 10-10 of 2026.
pub const CALENDAR: &str = "date,kind,name\n2026-10-01,holiday,国庆节\n2026-10-02,holiday,国庆节\n2026-10-03,holiday,国庆节\n2026-10-04,holiday,国庆节\n2026-10-05,holiday,国庆节\n2026-10-06,holiday,国庆节\n2026-10-07,holiday,国庆节\n2026-10-10,workday,国庆节调休上班\n";

/// The demo town with a manual clock at `at`; returns the app and the clock.
pub async fn town_at(at: DateTime<Utc>) -> (TestApp, Clock) {
    let clock = Clock::manual(at);
    let c = clock.clone();
    let app = TestApp::spawn_with(move |s| s.workflow.clock = c).await;
    app.seed_demo().await;
    (app, clock)
}

pub fn operator(app: &TestApp) -> String {
    app.token("op-1", &["town_operator"], TOWN)
}

pub fn handler(app: &TestApp, unit: &str) -> String {
    app.token_unit("h-1", &["dept_handler"], TOWN, unit)
}

/// A new case from one grid worker report at `at`.
pub async fn new_case(app: &TestApp, category: &str, at: (f64, f64)) -> pb::Case {
    let w = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let r = app
        .reports(Some(&w))
        .await
        .submit_report(pb::SubmitReportRequest {
            report: Some(report(category, at, 1)),
        })
        .await
        .unwrap()
        .into_inner();
    get(app, &r.case_id).await
}

pub async fn get(app: &TestApp, id: &str) -> pb::Case {
    app.cases(Some(&app.admin()))
        .await
        .get_case(pb::GetCaseRequest { case_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

pub fn step(c: &pb::Case, action: CaseAction) -> pb::TransitionCaseRequest {
    pb::TransitionCaseRequest {
        case_id: c.case_id.clone(),
        action: action as i32,
        expected_version: c.version,
        ..Default::default()
    }
}

pub async fn act(
    app: &TestApp,
    token: &str,
    req: pb::TransitionCaseRequest,
) -> Result<pb::Case, tonic::Status> {
    app.cases(Some(token))
        .await
        .transition_case(req)
        .await
        .map(|r| r.into_inner())
}

pub fn dispatch(c: &pb::Case, unit: &str, days: i32) -> pb::TransitionCaseRequest {
    pb::TransitionCaseRequest {
        assignee: unit.into(),
        time_limit_working_days: days,
        ..step(c, CaseAction::Dispatch)
    }
}

/// A new registered case at `at`.
pub async fn registered(app: &TestApp, at: (f64, f64)) -> pb::Case {
    let c = new_case(app, "0202", at).await;
    act(app, &operator(app), step(&c, CaseAction::Register))
        .await
        .unwrap()
}

fn deadline(c: &pb::Case) -> DateTime<Utc> {
    from_timestamp(c.deadline.as_ref().unwrap()).unwrap()
}

#[tokio::test]
async fn the_closed_loop_with_the_right_roles_is_audited_step_by_step() {
    let (app, clock) = town_at(local("2026-11-25 09:00")).await;
    let (op, h) = (operator(&app), handler(&app, ZFJ));
    let c = new_case(&app, "0202", WALL).await;
    assert_eq!((c.status.as_str(), c.version), ("REPORTED", 1));

    let c = act(&app, &op, step(&c, CaseAction::Register))
        .await
        .unwrap();
    assert_eq!((c.status.as_str(), c.version), ("REGISTERED", 2));
    clock.set(local("2026-11-25 10:00"));
    let c = act(&app, &op, dispatch(&c, ZFJ, 3)).await.unwrap();
    assert_eq!(c.status, "DISPATCHED");
    assert_eq!(c.assignee, ZFJ);
    assert_eq!(deadline(&c), local("2026-11-30 17:30"));
    assert_eq!(
        from_timestamp(c.sign_deadline.as_ref().unwrap()).unwrap(),
        local("2026-11-25 11:00")
    );
    clock.set(local("2026-11-25 10:20"));
    let c = act(&app, &h, step(&c, CaseAction::Sign)).await.unwrap();
    assert_eq!(c.status, "SIGNED");
    clock.set(local("2026-11-26 15:00"));
    let c = act(&app, &h, step(&c, CaseAction::Feedback)).await.unwrap();
    assert_eq!(c.status, "HANDLED");
    // Verification fails once: back to handling, then handled again and closed.
    let c = act(&app, &op, step(&c, CaseAction::VerifyFail))
        .await
        .unwrap();
    assert_eq!(c.status, "SIGNED");
    let c = act(&app, &h, step(&c, CaseAction::Feedback)).await.unwrap();
    let c = act(
        &app,
        &op,
        pb::TransitionCaseRequest {
            comment: "现场核查已修复".into(),
            ..step(&c, CaseAction::VerifyOk)
        },
    )
    .await
    .unwrap();
    assert_eq!((c.status.as_str(), c.version), ("CLOSED", 8));
    assert!(c.closed_at.is_some());
    // The citizen is not satisfied: reopened to the same unit with a new deadline.
    let c = act(&app, &op, step(&c, CaseAction::Reopen)).await.unwrap();
    assert_eq!(c.status, "DISPATCHED");
    assert!(c.flags.contains(&"REOPENED".to_owned()));
    assert_eq!(c.assignee, ZFJ);

    let events = app
        .audit(Some(&app.admin()))
        .await
        .list_audit_events(pb::ListAuditEventsRequest {
            entity_type: "case".into(),
            entity_id: c.case_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let steps: Vec<(String, String, String)> = events
        .iter()
        .filter(|e| e.action == "case.transition")
        .map(|e| {
            let b: serde_json::Value = serde_json::from_str(&e.before_json).unwrap();
            let a: serde_json::Value = serde_json::from_str(&e.after_json).unwrap();
            (
                e.actor.clone(),
                b["status"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("op-1", "REPORTED", "REGISTERED"),
        ("op-1", "REGISTERED", "DISPATCHED"),
        ("h-1", "DISPATCHED", "SIGNED"),
        ("h-1", "SIGNED", "HANDLED"),
        ("op-1", "HANDLED", "SIGNED"),
        ("h-1", "SIGNED", "HANDLED"),
        ("op-1", "HANDLED", "CLOSED"),
        ("op-1", "CLOSED", "DISPATCHED"),
    ];
    assert_eq!(
        steps,
        expected
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn illegal_transitions_wrong_roles_and_stale_versions_change_nothing() {
    let (app, _clock) = town_at(local("2026-11-25 09:00")).await;
    let op = operator(&app);
    let c = new_case(&app, "0202", WALL).await;

    // Illegal in the current state: FAILED_PRECONDITION naming it.
    for a in [
        CaseAction::Dispatch,
        CaseAction::VerifyOk,
        CaseAction::Reopen,
        CaseAction::Urge,
        CaseAction::ApproveExtension,
    ] {
        let e = act(&app, &op, step(&c, a)).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{a:?}: {e:?}");
        assert!(e.message().contains("case is REPORTED"), "{}", e.message());
    }
    // Wrong roles: the command centre does not sign; a grid worker does not register; a
    // handler of another unit does not sign; an auditor may not call TransitionCase at all.
    let c = act(&app, &op, step(&c, CaseAction::Register))
        .await
        .unwrap();
    let w = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let e = act(&app, &w, step(&c, CaseAction::Void)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let c = act(&app, &op, dispatch(&c, ZFJ, 0)).await.unwrap();
    let e = act(&app, &op, step(&c, CaseAction::Sign))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let other = handler(&app, BMFW);
    let e = act(&app, &other, step(&c, CaseAction::Sign))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let auditor = app.token("aud", &["auditor"], TOWN);
    let e = act(&app, &auditor, step(&c, CaseAction::Urge))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Another town's operator does not even see the case.
    let elsewhere = app.token("op-2", &["town_operator"], "500110112");
    let e = act(&app, &elsewhere, step(&c, CaseAction::Urge))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // Stale version: ABORTED.
    let stale = pb::TransitionCaseRequest {
        expected_version: c.version - 1,
        ..step(&c, CaseAction::Urge)
    };
    let e = act(&app, &op, stale).await.unwrap_err();
    assert_eq!(e.code(), Code::Aborted);
    // Bad input: every violation listed.
    let bad = pb::TransitionCaseRequest {
        case_id: "nope".into(),
        action: 99,
        expected_version: 0,
        extension_working_days: 100,
        ..Default::default()
    };
    let e = act(&app, &op, bad).await.unwrap_err();
    let mut v = violations(&e);
    v.sort();
    assert_eq!(
        v,
        [
            "action",
            "case_id",
            "expected_version",
            "extension_working_days"
        ]
    );
    // Dispatching to an unknown unit.
    let back = act(&app, &handler(&app, ZFJ), step(&c, CaseAction::Return))
        .await
        .unwrap();
    assert_eq!(back.status, "REGISTERED");
    assert_eq!(back.deadline, None);
    let e = act(&app, &op, dispatch(&back, "NO-SUCH-UNIT", 0))
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["assignee"]);
    let e = act(&app, &op, step(&back, CaseAction::Dispatch))
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["assignee"]);
    // None of the refusals wrote anything.
    assert_eq!(get(&app, &c.case_id).await.version, back.version);
    let n = app
        .count(&format!(
            "SELECT count(*) FROM audit_events WHERE entity_id = '{}' AND action = 'case.transition'",
            c.case_id
        ))
        .await;
    assert_eq!(n, 3);
}

#[tokio::test]
async fn a_resent_transition_returns_the_first_answer_and_acts_once() {
    let (app, _clock) = town_at(local("2026-11-25 09:00")).await;
    let op = operator(&app);
    let c = new_case(&app, "0202", WALL).await;
    let req = pb::TransitionCaseRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..step(&c, CaseAction::Register)
    };
    let first = act(&app, &op, req.clone()).await.unwrap();
    let again = act(&app, &op, req.clone()).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(get(&app, &c.case_id).await.version, 2);
    let other = pb::TransitionCaseRequest {
        comment: "different".into(),
        ..req
    };
    assert_eq!(
        act(&app, &op, other).await.unwrap_err().code(),
        Code::AlreadyExists
    );
}

#[tokio::test]
async fn deadlines_skip_weekends_and_holidays_and_count_adjusted_saturdays() {
    let (app, clock) = town_at(local("2026-11-27 10:00")).await;
    gridhub::import::import_calendar(&app.db, CALENDAR, "test")
        .await
        .unwrap();
    let op = operator(&app);
    // Friday + 3 working days: over the weekend to Wednesday.
    let c = registered(&app, WALL).await;
    let c = act(&app, &op, dispatch(&c, ZFJ, 3)).await.unwrap();
    assert_eq!(deadline(&c), local("2026-12-02 17:30"));
    // Friday 17:00 + 1 working hour to sign: 30 minutes Friday, 30 Monday morning.
    clock.set(local("2026-11-27 17:00"));
    let c2 = registered(&app, (WALL.0 + 0.003, WALL.1)).await;
    let c2 = act(&app, &op, dispatch(&c2, ZFJ, 1)).await.unwrap();
    assert_eq!(
        from_timestamp(c2.sign_deadline.as_ref().unwrap()).unwrap(),
        local("2026-11-30 09:00")
    );
    assert_eq!(deadline(&c2), local("2026-11-30 17:30"));
    // Wednesday before the National Day holiday + 3: Thu 10-08, Fri 10-09, the adjusted
    // working Saturday 10-10.
    clock.set(local("2026-09-30 16:00"));
    let c3 = registered(&app, (WALL.0 - 0.003, WALL.1)).await;
    let c3 = act(&app, &op, dispatch(&c3, ZFJ, 3)).await.unwrap();
    assert_eq!(deadline(&c3), local("2026-10-10 17:30"));
    // Without a time limit, the server default (5 working days).
    clock.set(local("2026-11-25 10:00"));
    let c4 = registered(&app, (WALL.0 + 0.006, WALL.1)).await;
    let c4 = act(&app, &op, dispatch(&c4, ZFJ, 0)).await.unwrap();
    assert_eq!(deadline(&c4), local("2026-12-02 17:30"));
    // A class with its own limits (地质灾害隐患: sign within 1 hour, handle within 1 day).
    let c5 = new_case(&app, "0601", (WALL.0 + 0.009, WALL.1)).await;
    let c5 = act(&app, &op, step(&c5, CaseAction::Register))
        .await
        .unwrap();
    let c5 = act(&app, &op, dispatch(&c5, ZFJ, 0)).await.unwrap();
    assert_eq!(deadline(&c5), local("2026-11-26 17:30"));
}

#[tokio::test]
async fn extensions_are_approved_or_rejected_and_asked_for_in_time() {
    let (app, clock) = town_at(local("2026-11-25 10:00")).await;
    let (op, h) = (operator(&app), handler(&app, ZFJ));
    let c = new_case(&app, "0202", WALL).await;
    let c = act(&app, &op, step(&c, CaseAction::Register))
        .await
        .unwrap();
    let c = act(&app, &op, dispatch(&c, ZFJ, 3)).await.unwrap();
    assert_eq!(deadline(&c), local("2026-11-30 17:30"));
    let ask = |c: &pb::Case| pb::TransitionCaseRequest {
        extension_working_days: 2,
        comment: "需协调供电公司".into(),
        ..step(c, CaseAction::RequestExtension)
    };
    let asked = act(&app, &h, ask(&c)).await.unwrap();
    assert_eq!(asked.extension_requested_days, 2);
    assert!(asked.flags.contains(&"EXTENSION_REQUESTED".to_owned()));
    // The handler cannot approve its own request.
    let e = act(&app, &h, step(&asked, CaseAction::ApproveExtension))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let approved = act(&app, &op, step(&asked, CaseAction::ApproveExtension))
        .await
        .unwrap();
    assert_eq!(deadline(&approved), local("2026-12-02 17:30"));
    assert_eq!(approved.extension_requested_days, 0);
    assert!(approved.flags.is_empty(), "{:?}", approved.flags);
    // A second request is rejected: the deadline stays.
    let asked = act(&app, &h, ask(&approved)).await.unwrap();
    let rejected = act(&app, &op, step(&asked, CaseAction::RejectExtension))
        .await
        .unwrap();
    assert_eq!(deadline(&rejected), local("2026-12-02 17:30"));
    assert_eq!(rejected.extension_requested_days, 0);
    // Nothing pending: nothing to decide.
    let e = act(&app, &op, step(&rejected, CaseAction::RejectExtension))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    // After the deadline it is too late to ask.
    clock.set(local("2026-12-03 09:00"));
    let e = act(&app, &h, ask(&rejected)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("deadline"), "{}", e.message());
}

#[tokio::test]
async fn overdue_then_automatic_urge_then_escalation_on_the_working_day_clock() {
    let (app, clock) = town_at(local("2026-11-25 10:00")).await;
    let op = operator(&app);
    let c = new_case(&app, "0202", WALL).await;
    let c = act(&app, &op, step(&c, CaseAction::Register))
        .await
        .unwrap();
    let c = act(&app, &op, dispatch(&c, ZFJ, 1)).await.unwrap();
    // Due Thursday 17:30; 催办 Friday 08:30; 通报 five working days after the deadline.
    assert_eq!(deadline(&c), local("2026-11-26 17:30"));
    let flags = |c: &pb::Case| c.flags.clone();

    clock.set(local("2026-11-25 12:00"));
    let r = app.tick().await;
    assert_eq!((r.sign_overdue, r.overdue), (1, 0));
    assert_eq!(flags(&get(&app, &c.case_id).await), ["SIGN_OVERDUE"]);

    clock.set(local("2026-11-26 17:29"));
    assert_eq!(app.tick().await.overdue, 0);
    clock.set(local("2026-11-26 17:31"));
    assert_eq!(app.tick().await.overdue, 1);
    let now = get(&app, &c.case_id).await;
    assert!(now.flags.contains(&"OVERDUE".to_owned()));

    clock.set(local("2026-11-27 08:29"));
    assert_eq!(app.tick().await.urged, 0);
    clock.set(local("2026-11-27 08:31"));
    assert_eq!(app.tick().await.urged, 1);
    let now = get(&app, &c.case_id).await;
    assert_eq!(now.urge_count, 1);
    assert!(now.flags.contains(&"URGED".to_owned()));
    // Once only.
    clock.set(local("2026-11-27 10:00"));
    assert_eq!(app.tick().await.urged, 0);

    // 5 working days after Thursday 11-26: Fri, Mon, Tue, Wed, Thu 12-03 at 17:30.
    clock.set(local("2026-12-03 17:29"));
    assert_eq!(app.tick().await.escalated, 0);
    clock.set(local("2026-12-03 17:31"));
    // Two replicas' tickers at once escalate once.
    let replica = app.replica().await;
    let other = gridhub::sla::Ticker {
        pool: replica.state.app.pool.clone(),
        settings: replica.state.app.workflow.clone(),
        pii: replica.state.app.pii.clone(),
    };
    let (a, b) = tokio::join!(app.tick(), other.tick(clock.now()));
    let b = b.unwrap();
    assert_eq!(a.escalated + b.escalated, 1, "{a:?} {b:?}");
    replica.shutdown().await;
    let now = get(&app, &c.case_id).await;
    assert!(now.flags.contains(&"ESCALATED".to_owned()));
    assert_eq!(app.tick().await.escalated, 0);

    let alerts = app
        .cases(Some(&op))
        .await
        .list_alerts(pb::ListAlertsRequest {
            kind: "OVERDUE_ESCALATION".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].case_id, c.case_id);
    assert!(
        alerts[0].message.contains(&c.case_no),
        "{}",
        alerts[0].message
    );
    // Every step is in the trail, by the ticker.
    let n = app
        .count(&format!(
            "SELECT count(*) FROM audit_events WHERE entity_id = '{}' AND action = 'case.sla' AND actor = 'system:sla'",
            c.case_id
        ))
        .await;
    assert_eq!(n, 4);
    // Handling late still closes, counted as not on time.
    let h = handler(&app, ZFJ);
    let c = act(&app, &h, step(&now, CaseAction::Sign)).await.unwrap();
    let c = act(&app, &h, step(&c, CaseAction::Feedback)).await.unwrap();
    let c = act(&app, &op, step(&c, CaseAction::VerifyOk))
        .await
        .unwrap();
    assert_eq!(c.status, "CLOSED");
}

#[tokio::test]
async fn the_ticker_runs_by_itself_in_the_background() {
    let clock = Clock::manual(local("2026-11-25 10:00"));
    let c2 = clock.clone();
    let app = TestApp::spawn_with(move |s| {
        s.workflow.clock = c2;
        s.workflow.sla_tick = std::time::Duration::from_millis(100);
    })
    .await;
    app.seed_demo().await;
    let op = operator(&app);
    let c = new_case(&app, "0202", WALL).await;
    let c = act(&app, &op, step(&c, CaseAction::Register))
        .await
        .unwrap();
    let c = act(&app, &op, dispatch(&c, ZFJ, 1)).await.unwrap();
    clock.set(local("2026-11-27 09:00"));
    let mut flags = Vec::new();
    for _ in 0..100 {
        flags = get(&app, &c.case_id).await.flags;
        if flags.contains(&"URGED".to_owned()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(flags.contains(&"OVERDUE".to_owned()), "{flags:?}");
    assert!(flags.contains(&"URGED".to_owned()), "{flags:?}");
}
