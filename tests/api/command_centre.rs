//! The command centre's overview: the dashboard against hand-computed figures, the early
//! warnings (each fires, and not below its threshold), and the monthly CSV export.

use chrono::{DateTime, Duration, Utc};
use gridhub::grpc::convert::timestamp;
use gridhub::grpc::pb::{self, CaseAction};
use tonic::Streaming;

use crate::helpers::TestApp;
use crate::reports::{WALL, report};
use crate::workflow::{BMFW, ZFJ, act, dispatch, get, handler, local, operator, step, town_at};

async fn submit_at(
    app: &TestApp,
    region: &str,
    category: &str,
    at: (f64, f64),
    when: DateTime<Utc>,
) -> pb::Case {
    let w = app.token("W-x", &["grid_worker"], region);
    let mut r = report(category, at, 0);
    r.occurred_at = Some(timestamp(when));
    let res = app
        .reports(Some(&w))
        .await
        .submit_report(pb::SubmitReportRequest { report: Some(r) })
        .await
        .unwrap()
        .into_inner();
    get(app, &res.case_id).await
}

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

fn count(v: &[pb::Count]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = v.iter().map(|c| (c.key.clone(), c.count)).collect();
    out.sort();
    out
}

fn secs(d: &Option<prost_types::Duration>) -> f64 {
    let d = d.as_ref().unwrap();
    d.seconds as f64 + d.nanos as f64 / 1e9
}

#[tokio::test]
async fn the_dashboard_matches_hand_computed_figures() {
    // Monday 2026-11-23; every report was seen at 08:00.
    let t0 = local("2026-11-23 09:00");
    let (app, clock) = town_at(t0).await;
    let (op, zfj) = (operator(&app), handler(&app, ZFJ));
    let seen = t0 - Duration::hours(1);
    let mj = "500110111201";
    let h = |n: f64| t0 + Duration::seconds((n * 3600.0) as i64);

    let c1 = submit_at(&app, mj, "0202", WALL, seen).await;
    let c2 = submit_at(&app, mj, "0202", (28.835, 106.745), seen).await;
    let c3 = submit_at(&app, mj, "0101", (28.83, 106.742), seen).await;
    let c4 = submit_at(&app, "500110111200", "0101", datong(&app).await, seen).await;
    assert_eq!(c4.grid_code, "500110111200001");
    let c5 = submit_at(&app, mj, "0202", (28.825, 106.745), seen).await;
    let c6 = submit_at(&app, mj, "0202", (28.83, 106.755), seen).await;

    // Everyone but c4 is registered at 09:00 (1 h after the report).
    let mut reg = Vec::new();
    for c in [&c1, &c2, &c3, &c5, &c6] {
        reg.push(act(&app, &op, step(c, CaseAction::Register)).await.unwrap());
    }
    let [c1, c2, c3, c5, c6] = reg.try_into().unwrap();
    act(&app, &op, step(&c5, CaseAction::Void)).await.unwrap();
    // Dispatched at 10:00: c1 (3 days), c2 and c6 (1 day, due Tuesday 17:30) to the
    // enforcement team, c3 to the service centre.
    clock.set(h(1.0));
    let c1 = act(&app, &op, dispatch(&c1, ZFJ, 3)).await.unwrap();
    let c2 = act(&app, &op, dispatch(&c2, ZFJ, 1)).await.unwrap();
    act(&app, &op, dispatch(&c3, BMFW, 0)).await.unwrap();
    let c6 = act(&app, &op, dispatch(&c6, ZFJ, 1)).await.unwrap();
    // c1: signed 10:30, handled 12:30, closed 13:00: on time.
    clock.set(h(1.5));
    let c1 = act(&app, &zfj, step(&c1, CaseAction::Sign)).await.unwrap();
    clock.set(h(2.0));
    act(&app, &zfj, step(&c6, CaseAction::Sign)).await.unwrap();
    clock.set(h(3.5));
    let c1 = act(&app, &zfj, step(&c1, CaseAction::Feedback))
        .await
        .unwrap();
    clock.set(h(4.0));
    act(&app, &op, step(&c1, CaseAction::VerifyOk))
        .await
        .unwrap();
    // Tuesday 18:00: c2 and c6 are overdue.
    clock.set(local("2026-11-24 18:00"));
    let tick = app.tick().await;
    assert_eq!(tick.overdue, 2);
    // c2: signed 18:30 (32.5 h after dispatch), handled 19:30, closed 20:00: late.
    let c2 = get(&app, &c2.case_id).await;
    clock.set(local("2026-11-24 18:30"));
    let c2 = act(&app, &zfj, step(&c2, CaseAction::Sign)).await.unwrap();
    clock.set(local("2026-11-24 19:30"));
    let c2 = act(&app, &zfj, step(&c2, CaseAction::Feedback))
        .await
        .unwrap();
    clock.set(local("2026-11-24 20:00"));
    act(&app, &op, step(&c2, CaseAction::VerifyOk))
        .await
        .unwrap();

    let dash = |start: DateTime<Utc>, end: DateTime<Utc>| {
        let op = op.clone();
        let app = &app;
        async move {
            app.cases(Some(&op))
                .await
                .get_dashboard(pb::GetDashboardRequest {
                    region_code: String::new(),
                    start_time: Some(timestamp(start)),
                    end_time: Some(timestamp(end)),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let d = dash(local("2026-11-23 00:00"), local("2026-11-24 00:00")).await;
    assert_eq!(d.total, 6);
    let s = |v: &[(&str, i64)]| {
        v.iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        count(&d.by_status),
        s(&[
            ("CLOSED", 2),
            ("DISPATCHED", 1),
            ("REPORTED", 1),
            ("SIGNED", 1),
            ("VOID", 1)
        ])
    );
    assert_eq!(count(&d.by_category), s(&[("0101", 2), ("0202", 4)]));
    assert_eq!(
        count(&d.by_grid),
        s(&[
            ("500110111200001", 1),
            ("500110111201001", 4),
            ("500110111201002", 1)
        ])
    );
    assert_eq!((d.overdue, d.closed, d.closed_on_time), (1, 2, 1));
    assert!((d.on_time_rate - 0.5).abs() < 1e-9);
    let stages: Vec<(String, i64, f64)> = d
        .stages
        .iter()
        .map(|s| (s.stage.clone(), s.cases, secs(&s.average)))
        .collect();
    let want = [
        ("REGISTER", 5, 3600.0),
        ("DISPATCH", 4, 3600.0),
        ("SIGN", 3, (0.5 + 32.5 + 1.0) / 3.0 * 3600.0),
        ("HANDLE", 2, 1.5 * 3600.0),
        ("VERIFY", 2, 1800.0),
    ];
    for ((name, n, avg), (wn, wc, wa)) in stages.iter().zip(want) {
        assert_eq!((name.as_str(), *n), (wn, wc));
        assert!((avg - wa).abs() < 1.0, "{name}: {avg} vs {wa}");
    }
    let units: Vec<(String, i64, i64, i64, i64)> = d
        .units
        .iter()
        .map(|u| {
            (
                u.assignee.clone(),
                u.cases,
                u.closed,
                u.closed_on_time,
                u.overdue,
            )
        })
        .collect();
    assert_eq!(
        units,
        [(BMFW.to_owned(), 1, 0, 0, 0), (ZFJ.to_owned(), 3, 2, 1, 1)]
    );
    let zfj_figures = d.units.iter().find(|u| u.assignee == ZFJ).unwrap();
    assert!((secs(&zfj_figures.average_handling) - 1.5 * 3600.0).abs() < 1.0);
    // The same figures after the deltas are folded into the aggregates.
    let folded = app.tick().await;
    assert!(folded.ran);
    let again = dash(local("2026-11-23 00:00"), local("2026-11-24 00:00")).await;
    assert_eq!(
        (
            again.total,
            again.overdue,
            again.closed_on_time,
            count(&again.by_grid)
        ),
        (d.total, d.overdue, d.closed_on_time, count(&d.by_grid))
    );
    assert_eq!(
        app.count("SELECT count(*) FROM case_stats_delta").await,
        0,
        "folded"
    );
    // Whole months come from the monthly rollups: November and the whole year agree.
    for (start, end) in [
        (local("2026-11-01 00:00"), local("2026-12-01 00:00")),
        (local("2026-01-01 00:00"), local("2027-01-01 00:00")),
        (local("2026-10-15 00:00"), local("2027-02-01 00:00")),
    ] {
        let m = dash(start, end).await;
        assert_eq!(
            (
                m.total,
                m.overdue,
                m.closed,
                m.closed_on_time,
                count(&m.by_status)
            ),
            (
                d.total,
                d.overdue,
                d.closed,
                d.closed_on_time,
                count(&d.by_status)
            )
        );
        assert_eq!(count(&m.by_grid), count(&d.by_grid));
        assert_eq!(count(&m.by_category), count(&d.by_category));
        let units: Vec<(String, i64, i64)> = m
            .units
            .iter()
            .map(|u| (u.assignee.clone(), u.cases, u.closed_on_time))
            .collect();
        assert_eq!(units, [(BMFW.to_owned(), 1, 0), (ZFJ.to_owned(), 3, 1)]);
        let sign = m.stages.iter().find(|s| s.stage == "SIGN").unwrap();
        assert!((secs(&sign.average) - (0.5 + 32.5 + 1.0) / 3.0 * 3600.0).abs() < 1.0);
    }
    // The county (a shorter prefix) sees the same town's figures.
    let county = app
        .cases(Some(&app.admin()))
        .await
        .get_dashboard(pb::GetDashboardRequest {
            region_code: "500110".into(),
            start_time: Some(timestamp(local("2026-11-01 00:00"))),
            end_time: Some(timestamp(local("2026-12-01 00:00"))),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (county.total, count(&county.by_grid), county.closed_on_time),
        (d.total, count(&d.by_grid), d.closed_on_time)
    );
    // Another day, or a village: other figures.
    let empty = dash(local("2026-11-24 00:00"), local("2026-11-26 00:00")).await;
    assert_eq!(empty.total, 0);
    let village = app
        .cases(Some(&op))
        .await
        .get_dashboard(pb::GetDashboardRequest {
            region_code: "500110111200".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(village.total, 1);
    // The figures equal a plain GROUP BY over the cases.
    let plain = app
        .count(
            "SELECT count(*) FROM cases WHERE status <> 'MERGED' AND region_code LIKE '500110111%'",
        )
        .await;
    assert_eq!(plain, d.total);
    // Out of scope: refused.
    let worker = app.token("W-DT-001", &["grid_worker"], "500110111200");
    let e = app
        .cases(Some(&worker))
        .await
        .get_dashboard(pb::GetDashboardRequest {
            region_code: "500110111".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
}

async fn sync(app: &TestApp, region: &str, reports: Vec<pb::Report>) {
    let w = app.token("W-x", &["grid_worker"], region);
    let res = app
        .reports(Some(&w))
        .await
        .sync_reports(pb::SyncReportsRequest { reports })
        .await
        .unwrap()
        .into_inner();
    assert!(
        res.results
            .iter()
            .all(|r| matches!(r.result, Some(pb::sync_report_result::Result::Ok(_))))
    );
}

fn near(at: (f64, f64), k: usize) -> (f64, f64) {
    (at.0 + 0.0001 * k as f64, at.1)
}

async fn alerts(app: &TestApp, token: &str, kind: &str) -> Vec<pb::Alert> {
    app.cases(Some(token))
        .await
        .list_alerts(pb::ListAlertsRequest {
            kind: kind.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alerts
}

async fn next_alert(s: &mut Streaming<pb::CaseEvent>) -> pb::CaseEvent {
    loop {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), s.message())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        if e.kind == "ALERT" {
            return e;
        }
    }
}

#[tokio::test]
async fn spikes_and_repeat_callers_raise_alerts_only_above_their_thresholds() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = operator(&app);
    let mj = "500110111201";
    let mut feed = app
        .cases(Some(&op))
        .await
        .watch_cases(pb::WatchCasesRequest::default())
        .await
        .unwrap()
        .into_inner();

    // Grid 001: four 暴露垃圾 reports today: below the minimum of five.
    sync(
        &app,
        mj,
        (0..4).map(|k| report("0101", near(WALL, k), 2)).collect(),
    )
    .await;
    app.tick().await;
    assert!(alerts(&app, &op, "SPIKE").await.is_empty());
    // A fifth: five in 24 h with no usual rate: a spike.
    sync(&app, mj, vec![report("0101", near(WALL, 9), 1)]).await;
    app.tick().await;
    let spikes = alerts(&app, &op, "SPIKE").await;
    assert_eq!(spikes.len(), 1, "{spikes:?}");
    assert_eq!(spikes[0].region_code, "500110111201001");
    assert_eq!(spikes[0].unified_category, "0101");
    let detail: serde_json::Value = serde_json::from_str(&spikes[0].detail_json).unwrap();
    assert_eq!(detail["reports_24h"], 5);
    // The alert is in the live feed too.
    let e = next_alert(&mut feed).await;
    assert_eq!(e.alert.as_ref().unwrap().kind, "SPIKE");
    // Detection is idempotent: ticking again raises nothing new.
    app.tick().await;
    assert_eq!(alerts(&app, &op, "SPIKE").await.len(), 1);

    // Grid 002 usually has two a day (56 in the previous 28 days): five today is under 3×.
    let east = (28.83, 106.755);
    let base: Vec<pb::Report> = (0..56)
        .map(|k| report("0101", near(east, k % 7), 30 + (k as i64) * 11))
        .collect();
    sync(&app, mj, base).await;
    sync(
        &app,
        mj,
        (0..5).map(|k| report("0101", near(east, k), 1)).collect(),
    )
    .await;
    app.tick().await;
    assert_eq!(alerts(&app, &op, "SPIKE").await.len(), 1);
    // … and seven is over it.
    sync(
        &app,
        mj,
        (0..2).map(|k| report("0101", near(east, k), 1)).collect(),
    )
    .await;
    app.tick().await;
    assert_eq!(alerts(&app, &op, "SPIKE").await.len(), 2);

    // One phone reporting three times in 30 days; another twice.
    let with_phone = |phone: &str, k: usize| {
        let mut r = report("0301", near((28.825, 106.742), k * 20), 24 * k as i64 + 1);
        r.reporter_phone = phone.into();
        r
    };
    sync(
        &app,
        mj,
        (0..2).map(|k| with_phone("13912345678", k)).collect(),
    )
    .await;
    sync(
        &app,
        mj,
        (0..2).map(|k| with_phone("13700001111", k)).collect(),
    )
    .await;
    app.tick().await;
    assert!(alerts(&app, &op, "REPEAT_CALLER").await.is_empty());
    sync(&app, mj, vec![with_phone("13912345678", 5)]).await;
    app.tick().await;
    let callers = alerts(&app, &op, "REPEAT_CALLER").await;
    assert_eq!(callers.len(), 1);
    assert_eq!(callers[0].subject, "139****5678");
    assert!(!callers[0].detail_json.contains("13912345678"));
    // Masked in reports too, unless the reader holds pii_reader.
    let listed = app
        .reports(Some(&op))
        .await
        .list_reports(pb::ListReportsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .reports;
    assert!(listed.iter().any(|r| r.reporter_phone == "139****5678"));
    let reader = app.token("pii", &["town_operator", "pii_reader"], "500110111");
    let listed = app
        .reports(Some(&reader))
        .await
        .list_reports(pb::ListReportsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .reports;
    assert!(listed.iter().any(|r| r.reporter_phone == "13912345678"));
    // Stored encrypted: no plaintext in the table.
    let plain = app
        .count("SELECT count(*) FROM reports WHERE position('13912345678'::bytea in coalesce(reporter_phone_enc, ''::bytea)) > 0 OR description LIKE '%13912345678%'")
        .await;
    assert_eq!(plain, 0);
    // Another village does not see 马颈村's alerts.
    let dt = app.token("va", &["village_admin"], "500110111200");
    assert!(alerts(&app, &dt, "").await.is_empty());
}

#[tokio::test]
async fn the_monthly_export_is_csv_with_a_bom_that_spreadsheets_read() {
    let (app, _clock) = town_at(local("2026-11-25 10:00")).await;
    let op = operator(&app);
    let c = submit_at(
        &app,
        "500110111201",
        "0202",
        WALL,
        local("2026-11-20 08:00"),
    )
    .await;
    let c = act(&app, &op, step(&c, CaseAction::Register))
        .await
        .unwrap();
    act(&app, &op, dispatch(&c, ZFJ, 3)).await.unwrap();
    submit_at(
        &app,
        "500110111201",
        "0101",
        (28.825, 106.745),
        local("2026-10-31 08:00"),
    )
    .await;
    let mut conn = gridhub::store::connect_one(&app.db).await.unwrap();
    let mut out = Vec::new();
    let n = gridhub::app::export::write_cases(
        &mut conn,
        &gridhub::domain::principal::Scope::parse("500110111").unwrap(),
        "2026-11-01".parse().unwrap(),
        "2026-11-30".parse().unwrap(),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(n, 1, "October's case is left out");
    assert_eq!(&out[..3], b"\xEF\xBB\xBF");
    let text = String::from_utf8(out[3..].to_vec()).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[0], "案件编号");
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][0], c.case_no.as_str());
    assert_eq!(&rows[0][1], "DISPATCHED");
    assert_eq!(&rows[0][3], "围墙挡墙倒塌");
    assert_eq!(&rows[0][6], ZFJ);
    assert_eq!(&rows[0][7], "2026-11-20 08:00");
    assert_eq!(&rows[0][10], "2026-11-30 17:30");
}
