//! The live feed (WatchCases) across two server replicas on one database, disconnect and
//! resume without gaps or repeats, scope; and PullChanges for mobile clients.

use std::time::Duration;

use gridhub::grpc::pb::{self, CaseAction};
use tonic::Streaming;

use crate::helpers::TestApp;
use crate::reports::{WALL, report};
use crate::workflow::{act, operator, step};

const DATONG_VILLAGE: &str = "500110111200";

async fn next(s: &mut Streaming<pb::CaseEvent>) -> pb::CaseEvent {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .expect("the stream stays open")
}

async fn nothing_more(s: &mut Streaming<pb::CaseEvent>) {
    if let Ok(m) = tokio::time::timeout(Duration::from_millis(700), s.message()).await {
        panic!("unexpected event: {m:?}");
    }
}

/// A point inside 打通村's first grid.
async fn datong(app: &TestApp) -> (f64, f64) {
    let row = app
        .sql()
        .await
        .query_one(
            "SELECT ST_Y(ST_Centroid(boundary)), ST_X(ST_Centroid(boundary)) FROM regions WHERE code = '500110111200001'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn submit(app: &TestApp, region: &str, at: (f64, f64)) -> pb::SubmitReportResult {
    let w = app.token("W-x", &["grid_worker"], region);
    app.reports(Some(&w))
        .await
        .submit_report(pb::SubmitReportRequest {
            report: Some(report("0202", at, 1)),
        })
        .await
        .unwrap()
        .into_inner()
}

fn watch(resume: &str) -> pb::WatchCasesRequest {
    pb::WatchCasesRequest {
        resume_token: resume.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_feed_crosses_replicas_resumes_exactly_and_keeps_to_scope() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let replica = app.replica().await;
    let op = operator(&app);
    let village = app.token("va-dt", &["village_admin"], DATONG_VILLAGE);
    // Subscribed on the replica; every change is made on the first server.
    let mut town = app
        .cases_at(replica.addr, Some(&op))
        .await
        .watch_cases(watch(""))
        .await
        .unwrap()
        .into_inner();
    let mut dt = app
        .cases_at(replica.addr, Some(&village))
        .await
        .watch_cases(watch(""))
        .await
        .unwrap()
        .into_inner();

    let mj = "500110111201";
    let a = submit(&app, mj, WALL).await;
    let b = submit(&app, mj, (WALL.0 + 0.003, WALL.1)).await;
    let case_a = crate::workflow::get(&app, &a.case_id).await;
    let reg = act(&app, &op, step(&case_a, CaseAction::Register))
        .await
        .unwrap();
    let d = submit(&app, DATONG_VILLAGE, datong(&app).await).await;

    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next(&mut town).await);
    }
    let kinds: Vec<(&str, &str)> = seen
        .iter()
        .map(|e| (e.kind.as_str(), e.case_id.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("CREATED", a.case_id.as_str()),
            ("CREATED", b.case_id.as_str()),
            ("REGISTER", a.case_id.as_str()),
            ("CREATED", d.case_id.as_str()),
        ]
    );
    assert_eq!(seen[2].from_status, "REPORTED");
    assert_eq!(seen[2].to_status, "REGISTERED");
    assert_eq!(seen[2].version, reg.version);
    assert_eq!(seen[2].actor, "op-1");
    let tokens: Vec<i64> = seen
        .iter()
        .map(|e| e.resume_token.parse().unwrap())
        .collect();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
    // The village sees its own case only.
    let only = next(&mut dt).await;
    assert_eq!(only.case_id, d.case_id);
    nothing_more(&mut dt).await;
    nothing_more(&mut town).await;

    // Disconnect after the second event; more changes happen; resume from the second event's
    // token (on the other server this time): the rest, in order, once.
    drop(town);
    let dispatched = act(
        &app,
        &op,
        pb::TransitionCaseRequest {
            assignee: "500110111-ZFJ".into(),
            ..step(&reg, CaseAction::Dispatch)
        },
    )
    .await
    .unwrap();
    let e = submit(&app, mj, (WALL.0 - 0.003, WALL.1)).await;
    let mut resumed = app
        .cases(Some(&op))
        .await
        .watch_cases(watch(&seen[1].resume_token))
        .await
        .unwrap()
        .into_inner();
    let mut rest = Vec::new();
    for _ in 0..4 {
        rest.push(next(&mut resumed).await);
    }
    let got: Vec<(&str, &str)> = rest
        .iter()
        .map(|e| (e.kind.as_str(), e.case_id.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("REGISTER", a.case_id.as_str()),
            ("CREATED", d.case_id.as_str()),
            ("DISPATCH", a.case_id.as_str()),
            ("CREATED", e.case_id.as_str()),
        ]
    );
    assert_eq!(rest[0].resume_token, seen[2].resume_token);
    assert_eq!(rest[2].version, dispatched.version);
    assert_eq!(rest[2].assignee, "500110111-ZFJ");
    assert!(rest[2].deadline.is_some());
    nothing_more(&mut resumed).await;
    // The village subscriber never saw 马颈村's changes.
    nothing_more(&mut dt).await;
    replica.shutdown().await;
}

#[tokio::test]
async fn a_watch_dropped_before_its_first_event_resumes_from_its_start() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = operator(&app);
    // A case reported before the start, seen by another watcher (so it is in the feed: events
    // join it once the audit sealer has chained them).
    let mut other = app
        .cases(Some(&op))
        .await
        .watch_cases(watch(""))
        .await
        .unwrap()
        .into_inner();
    let before = submit(&app, "500110111201", WALL).await;
    assert_eq!(next(&mut other).await.case_id, before.case_id);
    let watching = app
        .cases(Some(&op))
        .await
        .watch_cases(watch(""))
        .await
        .unwrap();
    // The stream's start, before any event, in its header.
    let start = watching
        .metadata()
        .get("gridhub-resume-token")
        .expect("a resume token for the stream's start")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(start.parse::<i64>().is_ok(), "{start}");
    // Dropped before any event; a case is reported meanwhile.
    drop(watching);
    let missed = submit(&app, "500110111201", (WALL.0 + 0.003, WALL.1)).await;
    let mut resumed = app
        .cases(Some(&op))
        .await
        .watch_cases(watch(&start))
        .await
        .unwrap()
        .into_inner();
    let e = next(&mut resumed).await;
    assert_eq!(
        (e.kind.as_str(), e.case_id.as_str()),
        ("CREATED", missed.case_id.as_str())
    );
    assert_ne!(
        e.case_id, before.case_id,
        "what came before the start is not replayed"
    );
    nothing_more(&mut resumed).await;
}

#[tokio::test]
async fn feed_filters_and_bad_tokens() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = operator(&app);
    let mut registered_only = app
        .cases(Some(&op))
        .await
        .watch_cases(pb::WatchCasesRequest {
            statuses: vec!["REGISTERED".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let a = submit(&app, "500110111201", WALL).await;
    let c = crate::workflow::get(&app, &a.case_id).await;
    act(&app, &op, step(&c, CaseAction::Register))
        .await
        .unwrap();
    let e = next(&mut registered_only).await;
    assert_eq!(
        (e.kind.as_str(), e.to_status.as_str()),
        ("REGISTER", "REGISTERED")
    );
    nothing_more(&mut registered_only).await;

    let bad = app
        .cases(Some(&op))
        .await
        .watch_cases(watch("not-a-token"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let outside = app
        .cases(Some(&op))
        .await
        .watch_cases(pb::WatchCasesRequest {
            region_code: "500110112".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(outside.code(), tonic::Code::PermissionDenied);
    // Unauthenticated: refused before any stream opens.
    let anon = app
        .cases(None)
        .await
        .watch_cases(watch(""))
        .await
        .unwrap_err();
    assert_eq!(anon.code(), tonic::Code::Unauthenticated);
}

async fn pull(app: &TestApp, token: &str, cursor: &str, limit: i32) -> pb::PullChangesResponse {
    app.cases(Some(token))
        .await
        .pull_changes(pb::PullChangesRequest {
            cursor: cursor.into(),
            limit,
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn pull_changes_resumes_from_its_cursor_within_scope() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = operator(&app);
    let mj = "500110111201";
    let worker = app.token("W-MJ-001", &["grid_worker"], mj);
    let a = submit(&app, mj, WALL).await;
    let b = submit(&app, mj, (WALL.0 + 0.003, WALL.1)).await;
    let c = submit(&app, mj, (WALL.0 - 0.003, WALL.1)).await;
    submit(&app, DATONG_VILLAGE, datong(&app).await).await;

    // From the beginning, two at a time, oldest change first; 打通村's case is not hers.
    let p1 = pull(&app, &worker, "", 2).await;
    let ids: Vec<&str> = p1.cases.iter().map(|c| c.case_id.as_str()).collect();
    assert_eq!(ids, [a.case_id.as_str(), b.case_id.as_str()]);
    let p2 = pull(&app, &worker, &p1.next_cursor, 2).await;
    let ids: Vec<&str> = p2.cases.iter().map(|c| c.case_id.as_str()).collect();
    assert_eq!(ids, [c.case_id.as_str()]);
    let p3 = pull(&app, &worker, &p2.next_cursor, 2).await;
    assert!(p3.cases.is_empty());
    assert_eq!(p3.next_cursor, p2.next_cursor);

    // A change to one case: exactly that case, in its new state.
    let case_b = crate::workflow::get(&app, &b.case_id).await;
    act(&app, &op, step(&case_b, CaseAction::Register))
        .await
        .unwrap();
    let p4 = pull(&app, &worker, &p3.next_cursor, 100).await;
    assert_eq!(p4.cases.len(), 1);
    assert_eq!(p4.cases[0].case_id, b.case_id);
    assert_eq!(p4.cases[0].status, "REGISTERED");
    assert_eq!(p4.cases[0].version, 2);

    let e = app
        .cases(Some(&worker))
        .await
        .pull_changes(pb::PullChangesRequest {
            cursor: "x".into(),
            limit: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn a_slow_subscriber_catches_up_from_the_table_without_slowing_a_fast_one() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = operator(&app);
    let open = || async {
        app.cases(Some(&op))
            .await
            .watch_cases(watch(""))
            .await
            .unwrap()
            .into_inner()
    };
    // The slow client also gives the server only a small flow-control window.
    let narrow = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut slow = pb::case_service_client::CaseServiceClient::with_interceptor(
        narrow,
        crate::helpers::Bearer(Some(format!("Bearer {op}").parse().unwrap())),
    )
    .watch_cases(watch(""))
    .await
    .unwrap()
    .into_inner();
    let mut fast = open().await;
    // More events than the server's broadcast buffer (4,096) plus the stream buffers: the slow
    // subscriber, reading nothing meanwhile, falls behind and must catch up from the table.
    let total = 12000;
    let w = app.token("W-x", &["grid_worker"], "500110111201");
    let fast_reader = tokio::spawn(async move {
        let mut tokens = Vec::new();
        while tokens.len() < total {
            tokens.push(next(&mut fast).await.resume_token.parse::<i64>().unwrap());
        }
        tokens
    });
    let mut reports = app.reports(Some(&w)).await;
    for b in 0..total / 1000 {
        let batch = (0..1000)
            .map(|k| {
                let n = b * 1000 + k;
                // A 20 x 50 lattice over 马颈村's two grids.
                report(
                    "0202",
                    (
                        28.8205 + 0.0009 * (n % 20) as f64,
                        106.7405 + 0.0003 * (n / 20 % 50) as f64,
                    ),
                    1,
                )
            })
            .collect();
        let res = reports
            .sync_reports(pb::SyncReportsRequest { reports: batch })
            .await
            .unwrap()
            .into_inner();
        assert!(
            res.results
                .iter()
                .all(|r| matches!(r.result, Some(pb::sync_report_result::Result::Ok(_))))
        );
    }
    let fast_tokens = tokio::time::timeout(Duration::from_secs(60), fast_reader)
        .await
        .expect("the fast subscriber is not held back")
        .unwrap();
    let mut slow_tokens = Vec::new();
    while slow_tokens.len() < total {
        slow_tokens.push(next(&mut slow).await.resume_token.parse::<i64>().unwrap());
    }
    assert_eq!(slow_tokens, fast_tokens);
    assert!(slow_tokens.windows(2).all(|w| w[0] < w[1]));
    nothing_more(&mut slow).await;
}

#[tokio::test]
async fn shutting_down_ends_open_feeds_at_once() {
    let mut app = TestApp::spawn().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut s = app
        .cases(Some(&op))
        .await
        .watch_cases(watch(""))
        .await
        .unwrap()
        .into_inner();
    let started = std::time::Instant::now();
    app.shutdown().await;
    // The graceful shutdown did not wait for the stream (its hard limit here is 3 s).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let end = tokio::time::timeout(Duration::from_secs(2), s.message())
        .await
        .expect("the stream ends");
    // UNAVAILABLE, not OK: the feed is not over, the client reconnects and resumes.
    let status = end.expect_err("the stream ends with a status, not as finished");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
}
