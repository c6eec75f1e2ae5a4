//! Grid reports into one net: idempotent intake, offline batches, locating, taxonomy, one
//! event → one case, manual merge and split, attachments.

use chrono::{Duration, Utc};
use gridhub::domain::merge::offset;
use gridhub::grpc::convert::timestamp;
use gridhub::grpc::pb::{self, ReportOutcome, ReportSource, sync_report_result};
use tonic::Code;

use crate::helpers::{TestApp, violations};

/// 马颈村's western grid 500110111201001 spans lat 28.82–28.84, lng 106.74–106.75.
pub const WALL: (f64, f64) = (28.83, 106.745);
const MAJING_WORKER_REGION: &str = "500110111201";

pub fn report(category: &str, at: (f64, f64), hours_ago: i64) -> pb::Report {
    pb::Report {
        client_report_id: uuid::Uuid::new_v4().to_string(),
        source: ReportSource::GridApp as i32,
        category_code: category.into(),
        title: format!("{category} 事件"),
        description: "现场情况".into(),
        location: Some(pb::LatLng {
            lat: at.0,
            lng: at.1,
        }),
        grid_code: String::new(),
        occurred_at: Some(timestamp(Utc::now() - Duration::hours(hours_ago))),
        reporter_id: "W-MJ-001".into(),
        ..Default::default()
    }
}

fn ok(r: &pb::SyncReportResult) -> &pb::SubmitReportResult {
    match &r.result {
        Some(sync_report_result::Result::Ok(a)) => a,
        other => panic!("expected ok, got {other:?}"),
    }
}

fn err(r: &pb::SyncReportResult) -> &tonic_types::pb::Status {
    match &r.result {
        Some(sync_report_result::Result::Error(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn bad_fields(s: &tonic_types::pb::Status) -> Vec<String> {
    let st = tonic::Status::with_details(
        Code::from_i32(s.code),
        s.message.clone(),
        prost::Message::encode_to_vec(s).into(),
    );
    violations(&st)
}

async fn demo() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let w = app.token("W-MJ-001", &["grid_worker"], MAJING_WORKER_REGION);
    (app, w)
}

#[tokio::test]
async fn morning_sync_stores_once_merges_the_wall_and_answers_a_resend_identically() {
    let (app, w) = demo().await;
    let mut c = app.reports(Some(&w)).await;
    let mut batch = vec![
        report("0202", WALL, 16),
        report("0202", offset(WALL, 15.0, 0.0), 15),
        report("0202", offset(WALL, 0.0, 25.0), 15),
        report("0401", offset(WALL, -800.0, 300.0), 16),
        report("0101", offset(WALL, 500.0, -200.0), 17),
        report("0301", offset(WALL, -300.0, -300.0), 17),
        report("0501", offset(WALL, 600.0, 200.0), 18),
    ];
    for k in 0..7 {
        batch.push(report(
            "0102",
            offset(WALL, -900.0 + 120.0 * k as f64, -350.0),
            19,
        ));
    }
    for r in &mut batch {
        r.grid_code = "500110111201001".into();
    }
    let first = c
        .sync_reports(pb::SyncReportsRequest {
            reports: batch.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    // The connection dropped before the answer: the phone sends the same batch again.
    let second = c
        .sync_reports(pb::SyncReportsRequest {
            reports: batch.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second, "a resend returns the first answers");
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 14);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE action = 'report.accept'")
            .await,
        14
    );

    let wall: Vec<&pb::SubmitReportResult> = first.results[..3].iter().map(ok).collect();
    assert_eq!(wall[0].outcome(), ReportOutcome::Created);
    assert_eq!(
        (wall[1].outcome(), wall[2].outcome()),
        (ReportOutcome::Merged, ReportOutcome::Merged)
    );
    assert!(wall.iter().all(|r| r.case_id == wall[0].case_id));
    assert!(
        wall[0].case_no.starts_with("500110111-"),
        "{}",
        wall[0].case_no
    );
    let others: std::collections::HashSet<&str> = first.results[3..7]
        .iter()
        .map(|r| ok(r).case_id.as_str())
        .collect();
    assert_eq!(others.len(), 4, "different events, different cases");

    let op = app.token("op", &["town_operator"], "500110111");
    let case = app
        .cases(Some(&op))
        .await
        .get_case(pb::GetCaseRequest {
            case_id: wall[0].case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(case.report_ids.len(), 3);
    assert_eq!(case.status, "REPORTED");
    assert_eq!(case.unified_category, "0202");
    assert!(
        case.merge_reasons_json[0].contains("opened"),
        "{:?}",
        case.merge_reasons_json
    );
    assert!(
        case.merge_reasons_json[1].contains("joined")
            && case.merge_reasons_json[1].contains("distance_m"),
        "{:?}",
        case.merge_reasons_json
    );

    // Everything located in her grids; the dispute is a case in the 矛盾纠纷 class.
    let mut reps = app.reports(Some(&w)).await;
    let listed = reps
        .list_reports(pb::ListReportsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.reports.len(), 14);
    assert!(
        listed
            .reports
            .iter()
            .all(|r| r.resolved_grid_code.starts_with("500110111201")),
        "{:?}",
        listed
            .reports
            .iter()
            .map(|r| &r.resolved_grid_code)
            .collect::<Vec<_>>()
    );
    let dispute = reps
        .get_report(pb::GetReportRequest {
            report_id: ok(&first.results[3]).report_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dispute.unified_category, "0401");
}

#[tokio::test]
async fn a_conflicting_resend_is_refused_for_that_report_only() {
    let (app, w) = demo().await;
    let mut c = app.reports(Some(&w)).await;
    let r = report("0202", WALL, 1);
    let first = c
        .submit_report(pb::SubmitReportRequest {
            report: Some(r.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let again = c
        .submit_report(pb::SubmitReportRequest {
            report: Some(r.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let mut changed = r.clone();
    changed.title = "另一件事".into();
    let e = c
        .submit_report(pb::SubmitReportRequest {
            report: Some(changed.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let batch = c
        .sync_reports(pb::SyncReportsRequest {
            reports: vec![report("0101", WALL, 1), changed, r],
        })
        .await
        .unwrap()
        .into_inner();
    ok(&batch.results[0]);
    assert_eq!(err(&batch.results[1]).code, Code::AlreadyExists as i32);
    assert_eq!(ok(&batch.results[2]), &first);
    let title: String = app
        .sql()
        .await
        .query_one(
            "SELECT title FROM reports WHERE report_id::text = $1",
            &[&first.report_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(title, "0202 事件");
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 2);
}

#[tokio::test]
async fn a_thousand_report_batch_with_bad_items_in_the_middle() {
    let (app, w) = demo().await;
    let mut batch: Vec<pb::Report> = (0..1000)
        .map(|k| {
            report(
                "0101",
                offset(
                    WALL,
                    -1000.0 + (k / 40) as f64 * 80.0,
                    -400.0 + (k % 40) as f64 * 20.0,
                ),
                2,
            )
        })
        .collect();
    batch[500].location = Some(pb::LatLng {
        lat: 95.0,
        lng: 106.0,
    });
    batch[501].attachments = vec!["ab".repeat(32)];
    batch[502].location = Some(pb::LatLng {
        lat: 28.83,
        lng: 106.73,
    }); // 打通村, not hers
    batch[503].occurred_at = None;
    // The last report reuses the id of report 960 (in the batch's northern row) with another
    // payload: placed at report 0 (the southern row), whose chunk is stored first. The batch
    // is stored in chunks of nearby reports, yet the conflict is still the later one's.
    batch[999].client_report_id = batch[960].client_report_id.clone();
    batch[999].location = batch[0].location;
    let out = sync(&app, &w, batch.clone()).await;
    assert_eq!(out.results.len(), 1000);
    assert!(matches!(
        out.results[960].result,
        Some(sync_report_result::Result::Ok(_))
    ));
    assert_eq!(err(&out.results[999]).code, Code::AlreadyExists as i32);
    assert_eq!(bad_fields(err(&out.results[500])), ["location.lat"]);
    assert_eq!(bad_fields(err(&out.results[501])), ["attachments[0]"]);
    assert_eq!(err(&out.results[502]).code, Code::PermissionDenied as i32);
    assert_eq!(bad_fields(err(&out.results[503])), ["occurred_at"]);
    let good = out
        .results
        .iter()
        .filter(|r| matches!(r.result, Some(sync_report_result::Result::Ok(_))))
        .count();
    assert_eq!(good, 995);
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 995);
    // A resend of the whole batch (a lost response) gets the same answer for every report.
    let again = sync(&app, &w, batch).await;
    assert_eq!(out, again, "a resend returns the first answers");
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 995);
    let e = app
        .reports(Some(&w))
        .await
        .sync_reports(pb::SyncReportsRequest {
            reports: (0..1001).map(|_| report("0101", WALL, 1)).collect(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["reports"]);
}

async fn sync(app: &TestApp, token: &str, reports: Vec<pb::Report>) -> pb::SyncReportsResponse {
    app.reports(Some(token))
        .await
        .sync_reports(pb::SyncReportsRequest { reports })
        .await
        .unwrap()
        .into_inner()
}

async fn submit(app: &TestApp, token: &str, r: pb::Report) -> pb::SubmitReportResult {
    app.reports(Some(token))
        .await
        .submit_report(pb::SubmitReportRequest { report: Some(r) })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn merging_follows_distance_category_and_time_window() {
    let (app, w) = demo().await;
    let base = submit(&app, &w, report("0201", WALL, 80)).await;
    let at20 = submit(&app, &w, report("0201", offset(WALL, 20.0, 0.0), 80)).await;
    let at200 = submit(&app, &w, report("0201", offset(WALL, 200.0, 0.0), 80)).await;
    let other_class = submit(&app, &w, report("0101", offset(WALL, 5.0, 0.0), 80)).await;
    let inside_window = submit(&app, &w, report("0201", offset(WALL, 10.0, 0.0), 80 - 71)).await;
    let outside_window = submit(&app, &w, report("0201", offset(WALL, -10.0, 0.0), 0)).await;
    assert_eq!(at20.case_id, base.case_id);
    assert_eq!(at20.outcome(), ReportOutcome::Merged);
    assert_ne!(at200.case_id, base.case_id);
    assert_eq!(at200.outcome(), ReportOutcome::Created);
    assert_ne!(other_class.case_id, base.case_id);
    assert_eq!(
        inside_window.case_id, base.case_id,
        "71 h after the case's last report"
    );
    // The case's last report is now 9 h old and this one is 0 h: inside again, so use a
    // report far in the past instead to check the window's far edge.
    assert_eq!(outside_window.case_id, base.case_id);
    let old = submit(&app, &w, report("0201", offset(WALL, 0.0, 10.0), 80 + 73)).await;
    assert_ne!(
        old.case_id, base.case_id,
        "73 h before the case's first report"
    );
}

#[tokio::test]
async fn simultaneous_reports_of_one_pothole_end_in_one_case() {
    let (app, w) = demo().await;
    for k in 0..8 {
        let spot = offset(WALL, -700.0 + 150.0 * k as f64, 0.0);
        let (a, b) = (
            report("0201", spot, 1),
            report("0201", offset(spot, 10.0, 0.0), 1),
        );
        let (ca, cb) = (app.reports(Some(&w)).await, app.reports(Some(&w)).await);
        let (ra, rb) = tokio::join!(
            async move {
                ca.clone()
                    .submit_report(pb::SubmitReportRequest { report: Some(a) })
                    .await
            },
            async move {
                cb.clone()
                    .submit_report(pb::SubmitReportRequest { report: Some(b) })
                    .await
            }
        );
        let (ra, rb) = (ra.unwrap().into_inner(), rb.unwrap().into_inner());
        assert_eq!(ra.case_id, rb.case_id, "pair {k}");
        let mut outcomes = [ra.outcome(), rb.outcome()];
        outcomes.sort_by_key(|o| *o as i32);
        assert_eq!(outcomes, [ReportOutcome::Created, ReportOutcome::Merged]);
    }
    assert_eq!(app.count("SELECT count(*) FROM cases").await, 8);
}

#[tokio::test]
async fn fifty_concurrent_identical_submissions_store_one_row_and_give_fifty_identical_answers() {
    let (app, w) = demo().await;
    let r = report("0301", WALL, 1);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let mut c = app.reports(Some(&w)).await;
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            c.submit_report(pb::SubmitReportRequest { report: Some(r) })
                .await
                .map(|x| x.into_inner())
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap().unwrap());
    }
    assert!(answers.windows(2).all(|p| p[0] == p[1]));
    assert_eq!(answers[0].outcome(), ReportOutcome::Created);
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM cases").await, 1);
}

#[tokio::test]
async fn split_and_manual_merge_correct_the_machine_with_audit() {
    let (app, w) = demo().await;
    let a = submit(&app, &w, report("0202", WALL, 3)).await;
    let b = submit(&app, &w, report("0202", offset(WALL, 10.0, 0.0), 2)).await;
    let c = submit(&app, &w, report("0202", offset(WALL, 20.0, 0.0), 1)).await;
    assert!(a.case_id == b.case_id && b.case_id == c.case_id);
    let op = app.token("op", &["town_operator"], "500110111");
    let mut cases = app.cases(Some(&op)).await;
    let split = cases
        .split_report(pb::SplitReportRequest {
            report_id: c.report_id.clone(),
            comment: "不是同一堵墙".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(split.case_id, a.case_id);
    assert_eq!(split.report_ids, std::slice::from_ref(&c.report_id));
    let old = cases
        .get_case(pb::GetCaseRequest {
            case_id: a.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.report_ids.len(), 2);
    // A grid worker may not correct the machine.
    let e = app
        .cases(Some(&w))
        .await
        .merge_cases(pb::MergeCasesRequest {
            target_case_id: a.case_id.clone(),
            source_case_ids: vec![split.case_id.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let merged = cases
        .merge_cases(pb::MergeCasesRequest {
            target_case_id: a.case_id.clone(),
            source_case_ids: vec![split.case_id.clone()],
            comment: "还是同一堵墙".into(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(merged.report_ids.len(), 3);
    assert!(merged.version > old.version);
    let gone = cases
        .get_case(pb::GetCaseRequest {
            case_id: split.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (gone.status.as_str(), gone.merged_into.as_str()),
        ("MERGED", a.case_id.as_str())
    );
    // Merging a finished case is refused and names its state.
    let e = cases
        .merge_cases(pb::MergeCasesRequest {
            target_case_id: a.case_id.clone(),
            source_case_ids: vec![split.case_id.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("MERGED"));
    // The only report of a case cannot be split off.
    let lone = submit(&app, &w, report("0501", offset(WALL, -500.0, 0.0), 1)).await;
    let e = cases
        .split_report(pb::SplitReportRequest {
            report_id: lone.report_id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    for action in ["report.split", "case.merge", "case.absorb"] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM audit_events WHERE action = '{action}' AND actor = 'op'"
            ))
            .await,
            1,
            "{action}"
        );
    }
}

#[tokio::test]
async fn grid_mismatch_outside_all_grids_and_unmapped_categories_are_flagged() {
    let (app, w) = demo().await;
    let mut claimed = report("0101", WALL, 1);
    claimed.grid_code = "500110111201002".into();
    let r = submit(&app, &w, claimed).await;
    assert_eq!(r.flags, ["GRID_MISMATCH"]);
    let stored = app
        .reports(Some(&w))
        .await
        .get_report(pb::GetReportRequest {
            report_id: r.report_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            stored.grid_code.as_str(),
            stored.resolved_grid_code.as_str()
        ),
        ("500110111201002", "500110111201001")
    );

    // In the town's margin, outside every grid: the town's fallback owner has it.
    let op = app.token("op", &["town_operator"], "500110111");
    let margin = (
        gridhub::demo::ORIGIN.0 - 0.005,
        gridhub::demo::ORIGIN.1 + 0.01,
    );
    let out = submit(&app, &op, report("0501", margin, 1)).await;
    assert_eq!(out.flags, ["OUTSIDE_GRID"]);
    let stored = app
        .reports(Some(&op))
        .await
        .get_report(pb::GetReportRequest {
            report_id: out.report_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            stored.region_code.as_str(),
            stored.owner.as_str(),
            stored.resolved_grid_code.as_str()
        ),
        ("500110111", "500110111-ZZB", "")
    );
    let case = app
        .cases(Some(&op))
        .await
        .get_case(pb::GetCaseRequest {
            case_id: out.case_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (case.assignee.as_str(), case.flags.clone()),
        ("500110111-ZZB", vec!["OUTSIDE_GRID".to_string()])
    );
    // Nowhere known at all.
    let e = app
        .reports(Some(&op))
        .await
        .submit_report(pb::SubmitReportRequest {
            report: Some(report("0501", (40.0, 116.4), 1)),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["report.location"]);

    // Unknown category: accepted, flagged, in triage, never merged automatically.
    let u1 = submit(&app, &w, report("XYZ-999", offset(WALL, 0.0, 300.0), 1)).await;
    let u2 = submit(&app, &w, report("XYZ-999", offset(WALL, 0.0, 301.0), 1)).await;
    assert_eq!(u1.flags, ["UNMAPPED_CATEGORY"]);
    assert_ne!(u1.case_id, u2.case_id);
    let triage = app
        .cases(Some(&op))
        .await
        .get_case(pb::GetCaseRequest {
            case_id: u1.case_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (triage.unified_category.as_str(), triage.flags.clone()),
        ("", vec!["TRIAGE".to_string()])
    );
}

#[tokio::test]
async fn line_system_codes_map_onto_the_unified_taxonomy_and_merge_across_channels() {
    let (app, w) = demo().await;
    let grid = submit(&app, &w, report("0202", WALL, 2)).await;
    let op = app.token("cg-system", &["town_operator"], "500110111");
    let mut line = report("CG-0302", offset(WALL, 20.0, 0.0), 1);
    line.source = ReportSource::LineSystem as i32;
    line.source_system = "城管".into();
    let joined = submit(&app, &op, line).await;
    assert_eq!(joined.case_id, grid.case_id);
    assert_eq!(joined.outcome(), ReportOutcome::Merged);
    let mut nameless = report("CG-0302", WALL, 1);
    nameless.source = ReportSource::LineSystem as i32;
    let e = app
        .reports(Some(&op))
        .await
        .submit_report(pb::SubmitReportRequest {
            report: Some(nameless),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["report.source_system"]);
}

#[tokio::test]
async fn a_worker_reports_only_inside_her_village_and_reads_only_its_reports() {
    let (app, w) = demo().await;
    let e = app
        .reports(Some(&w))
        .await
        .submit_report(pb::SubmitReportRequest {
            report: Some(report("0101", (28.83, 106.73), 1)),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 0);
    let dt = app.token("W-DT-001", &["grid_worker"], "500110111200");
    let theirs = submit(&app, &dt, report("0101", (28.83, 106.73), 1)).await;
    let e = app
        .reports(Some(&w))
        .await
        .get_report(pb::GetReportRequest {
            report_id: theirs.report_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = app
        .cases(Some(&w))
        .await
        .get_case(pb::GetCaseRequest {
            case_id: theirs.case_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let mine = app
        .reports(Some(&w))
        .await
        .list_reports(pb::ListReportsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(mine.reports.is_empty());
    let e = app
        .reports(Some(&w))
        .await
        .list_reports(pb::ListReportsRequest {
            region_code: "500110111200".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = app
        .reports(Some(&app.token("aud", &["auditor"], "500110111")))
        .await
        .submit_report(pb::SubmitReportRequest {
            report: Some(report("0101", WALL, 1)),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "auditors only read");
}

fn chunks(content_type: &str, bytes: &[u8], size: usize) -> Vec<pb::AttachmentChunk> {
    bytes
        .chunks(size)
        .enumerate()
        .map(|(i, c)| pb::AttachmentChunk {
            content_type: if i == 0 {
                content_type.into()
            } else {
                String::new()
            },
            data: c.to_vec(),
        })
        .collect()
}

#[tokio::test]
async fn attachments_round_trip_once_and_are_limited_by_size_and_type() {
    let app = TestApp::spawn_with(|s| s.attachment_max_bytes = 100_000).await;
    app.seed_demo().await;
    let w = app.token("W-MJ-001", &["grid_worker"], MAJING_WORKER_REGION);
    let mut c = app.reports(Some(&w)).await;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend((0..50_000u32).map(|i| (i % 251) as u8));
    let a = c
        .upload_attachment(tokio_stream::iter(chunks("image/png", &png, 16 * 1024)))
        .await
        .unwrap()
        .into_inner();
    use sha2::Digest;
    assert_eq!(a.attachment_id, hex::encode(sha2::Sha256::digest(&png)));
    assert_eq!(
        (a.content_type.as_str(), a.size_bytes),
        ("image/png", png.len() as i64)
    );
    let again = c
        .upload_attachment(tokio_stream::iter(chunks("image/png", &png, 7000)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, a);
    assert_eq!(app.count("SELECT count(*) FROM attachments").await, 1);
    let id = &a.attachment_id;
    let on_disk = app
        .data_dir
        .path()
        .join("attachments")
        .join(&id[..2])
        .join(&id[2..4])
        .join(id);
    assert_eq!(std::fs::read(on_disk).unwrap(), png);
    let mut r = report("0202", WALL, 1);
    r.attachments = vec![a.attachment_id.clone()];
    let stored = submit(&app, &w, r).await;
    let got = c
        .get_report(pb::GetReportRequest {
            report_id: stored.report_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.attachments, std::slice::from_ref(&a.attachment_id));

    // A reader of the region downloads the bytes a report cites, in chunks of at most 64 KiB.
    let op = app.token("op-1", &["town_operator"], "500110111");
    let download = |token: String, id: String| {
        let app = &app;
        async move {
            let mut s = app
                .reports(Some(&token))
                .await
                .download_attachment(pb::DownloadAttachmentRequest { attachment_id: id })
                .await?
                .into_inner();
            let mut chunks = Vec::new();
            while let Some(c) = s.message().await? {
                chunks.push(c);
            }
            Ok::<_, tonic::Status>(chunks)
        }
    };
    let got = download(op.clone(), id.clone()).await.unwrap();
    assert_eq!(got[0].content_type, "image/png");
    assert!(got.iter().all(|c| c.data.len() <= 64 * 1024));
    assert_eq!(
        got.iter().flat_map(|c| c.data.clone()).collect::<Vec<_>>(),
        png
    );
    // Another town's reader, an unknown id and a malformed one learn nothing.
    let other = app.token("op-2", &["town_operator"], "500110101");
    let e = download(other, id.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = download(op.clone(), "0".repeat(64)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = download(op, "../etc/passwd".into()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    let big = vec![0xFFu8; 100_001];
    let e = c
        .upload_attachment(tokio_stream::iter(chunks("image/jpeg", &big, 30_000)))
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["data"]);
    let e = c
        .upload_attachment(tokio_stream::iter(chunks(
            "application/pdf",
            b"%PDF-1.7",
            100,
        )))
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["content_type"]);
    let e = c
        .upload_attachment(tokio_stream::iter(chunks("image/jpeg", &png, 100_000)))
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["data"], "PNG bytes declared as JPEG");
    let mut unknown = report("0202", WALL, 1);
    unknown.attachments = vec!["0".repeat(64)];
    let e = c
        .submit_report(pb::SubmitReportRequest {
            report: Some(unknown),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["report.attachments[0]"]);
    assert_eq!(app.count("SELECT count(*) FROM attachments").await, 1);
}

#[tokio::test]
async fn a_resend_after_the_idempotency_window_is_answered_from_the_stored_report() {
    let app = TestApp::spawn_with(|s| s.idempotency_retention = std::time::Duration::ZERO).await;
    app.seed_demo().await;
    let w = app.token("W-MJ-001", &["grid_worker"], MAJING_WORKER_REGION);
    let r = report("0202", WALL, 1);
    let first = submit(&app, &w, r.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let late = submit(&app, &w, r).await;
    assert_eq!(late.outcome(), ReportOutcome::AlreadyReceived);
    assert_eq!(
        (late.report_id.as_str(), late.case_id.as_str()),
        (first.report_id.as_str(), first.case_id.as_str())
    );
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 1);
}

#[tokio::test]
async fn the_categories_command_loads_a_taxonomy() {
    let db = crate::helpers::FreshDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taxonomy.csv");
    std::fs::write(&file, "type,code,name,parent_code,merge_radius_m,merge_window_hours,source_system,source_code\ncategory,09,环境保护,,,,,\ncategory,0901,违规焚烧,09,100,12,,\nmapping,0901,,,,,环保,HB-11\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridhub"))
        .args(["import", "categories"])
        .arg(&file)
        .env("DATABASE_URL", db.url.expose())
        .env("GRIDHUB_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2 categories and 1 mappings"));
    let (client, conn) = tokio_postgres::connect(db.url.expose(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client.query_one("SELECT c.merge_radius_m, c.merge_window_hours FROM category_mappings m JOIN categories c ON c.code = m.unified_code WHERE m.source_system = '环保' AND m.source_code = 'HB-11'", &[]).await.unwrap();
    assert_eq!((row.get::<_, f64>(0), row.get::<_, i32>(1)), (100.0, 12));
    std::fs::write(&file, "type,code,name\ncategory,09 09,坏,\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridhub"))
        .args(["import", "categories"])
        .arg(&file)
        .env("DATABASE_URL", db.url.expose())
        .env("GRIDHUB_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
}

#[tokio::test]
async fn grouped_submissions_keep_each_senders_scope_and_name() {
    let (app, majing) = demo().await;
    let datong = app.token("W-DT-001", &["grid_worker"], "500110111200");
    let dt_spot = (28.83, 106.73);
    let mut tasks = Vec::new();
    for k in 0..40 {
        let (token, at) = match k % 4 {
            0 => (majing.clone(), offset(WALL, 30.0 * k as f64, 0.0)),
            1 => (datong.clone(), offset(dt_spot, 30.0 * k as f64, 0.0)),
            2 => (majing.clone(), offset(dt_spot, 30.0 * k as f64, 0.0)), // not hers
            _ => (datong.clone(), offset(WALL, 30.0 * k as f64, 0.0)),    // not theirs
        };
        let mut c = app.reports(Some(&token)).await;
        tasks.push(tokio::spawn(async move {
            (
                k,
                c.submit_report(pb::SubmitReportRequest {
                    report: Some(report("0101", at, 1)),
                })
                .await,
            )
        }));
    }
    for t in tasks {
        let (k, r) = t.await.unwrap();
        match k % 4 {
            0 | 1 => assert!(r.is_ok(), "{k}: {r:?}"),
            _ => assert_eq!(r.unwrap_err().code(), Code::PermissionDenied, "{k}"),
        }
    }
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 20);
    assert_eq!(app.count("SELECT count(*) FROM reports WHERE submitted_by = 'W-MJ-001' AND region_code LIKE '500110111201%'").await, 10);
    assert_eq!(app.count("SELECT count(*) FROM reports WHERE submitted_by = 'W-DT-001' AND region_code LIKE '500110111200%'").await, 10);
    assert_eq!(app.count("SELECT count(*) FROM audit_events a JOIN reports r ON r.report_id::text = a.entity_id WHERE a.actor = r.submitted_by AND a.actor_roles = '{grid_worker}'").await, 20);
}

#[tokio::test]
async fn reports_and_cases_are_listed_with_filters_and_pages() {
    let (app, w) = demo().await;
    let mut batch: Vec<pb::Report> = (0..12)
        .map(|k| report("0101", offset(WALL, -900.0 + 150.0 * k as f64, -300.0), 2))
        .collect();
    batch.push(report("0202", WALL, 1));
    batch.push(report("0202", offset(WALL, 10.0, 0.0), 1));
    let mut claimed = report("0301", offset(WALL, 0.0, -200.0), 1);
    claimed.grid_code = "500110111201002".into();
    batch.push(claimed);
    let out = sync(&app, &w, batch).await;
    let wall_case = ok(&out.results[12]).case_id.clone();
    let mut c = app.reports(Some(&w)).await;
    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let p = c
            .list_reports(pb::ListReportsRequest {
                page_size: 4,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(p.reports.into_iter().map(|r| r.report_id));
        if p.next_page_token.is_empty() {
            break;
        }
        token = p.next_page_token;
    }
    assert_eq!((seen.len(), pages), (15, 4));
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
    let of_case = c
        .list_reports(pb::ListReportsRequest {
            case_id: wall_case.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(of_case.reports.len(), 2);
    let flagged = c
        .list_reports(pb::ListReportsRequest {
            flag: "GRID_MISMATCH".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(flagged.reports.len(), 1);
    let litter = c
        .list_reports(pb::ListReportsRequest {
            unified_category: "0101".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(litter.reports.len(), 12);
    let future = c
        .list_reports(pb::ListReportsRequest {
            start_time: Some(timestamp(Utc::now() + Duration::hours(1))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(future.reports.is_empty());

    let op = app.token("op", &["town_operator"], "500110111");
    let mut cases = app.cases(Some(&op)).await;
    let all = cases
        .list_cases(pb::ListCasesRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.cases.len(), 14);
    let walls = cases
        .list_cases(pb::ListCasesRequest {
            unified_category: "0202".into(),
            statuses: vec!["REPORTED".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        walls
            .cases
            .iter()
            .map(|c| c.case_id.as_str())
            .collect::<Vec<_>>(),
        [wall_case.as_str()]
    );
    let none = cases
        .list_cases(pb::ListCasesRequest {
            statuses: vec!["CLOSED".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.cases.is_empty());
    let e = app
        .cases(Some(&w))
        .await
        .list_cases(pb::ListCasesRequest {
            region_code: "500110111".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn the_intake_sees_new_grids_at_once() {
    let (app, _) = demo().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let margin = (
        gridhub::demo::ORIGIN.0 - 0.005,
        gridhub::demo::ORIGIN.1 + 0.01,
    );
    let before = submit(&app, &op, report("0501", margin, 1)).await;
    assert_eq!(before.flags, ["OUTSIDE_GRID"]);
    // A new grid of 打通垭社区 drawn over the margin.
    let square = gridhub::demo::square(margin.0 - 0.001, margin.1 - 0.001, 0.002);
    let fc = format!(
        r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","properties":{{"code":"500110111001009","name":"新网格","parent_code":"500110111001"}},"geometry":{square}}}]}}"#
    );
    app.regions(Some(&op))
        .await
        .import_grids(pb::ImportGridsRequest {
            geojson: fc.into_bytes(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let after = submit(&app, &op, report("0301", margin, 1)).await;
    assert!(after.flags.is_empty(), "{:?}", after.flags);
    let stored = app
        .reports(Some(&op))
        .await
        .get_report(pb::GetReportRequest {
            report_id: after.report_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.resolved_grid_code, "500110111001009");
    // The same through a batch.
    let out = sync(&app, &op, vec![report("0101", margin, 1)]).await;
    assert!(ok(&out.results[0]).flags.is_empty());
}

#[tokio::test]
async fn an_attachment_is_citable_only_from_the_region_it_was_uploaded_in() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let here = app.token("W-MJ-001", &["grid_worker"], MAJING_WORKER_REGION);
    // A worker of another town (南桐镇) uploads a photo.
    let there = app.token("W-NT-001", &["grid_worker"], "500110101");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend((0..2_000u32).map(|i| (i % 241) as u8));
    let upload = |t: String| {
        let app = &app;
        let png = png.clone();
        async move {
            app.reports(Some(&t))
                .await
                .upload_attachment(tokio_stream::iter(chunks("image/png", &png, 1024)))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let a = upload(there).await;
    // 马颈村's worker knows its hash but may not cite it: it is unknown here.
    let mut r = report("0101", WALL, 1);
    r.attachments = vec![a.attachment_id.clone()];
    let e = app
        .reports(Some(&here))
        .await
        .submit_report(pb::SubmitReportRequest {
            report: Some(r.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), vec!["report.attachments[0]"]);
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 0);
    // Once uploaded here too, it is one attachment of both regions, and citable.
    let b = upload(here.clone()).await;
    assert_eq!(b.attachment_id, a.attachment_id);
    app.reports(Some(&here))
        .await
        .submit_report(pb::SubmitReportRequest { report: Some(r) })
        .await
        .unwrap();
    assert_eq!(
        app.count("SELECT cardinality(upload_regions)::int8 FROM attachments")
            .await,
        2
    );
}
