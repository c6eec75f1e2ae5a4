//! The command centre's screen from the server's side: the one map's RPC (grids with their
//! open and overdue cases, open cases as points, scoped like every read) and the console's
//! files served on the hub's own port beside gRPC, with their security headers. The console
//! itself is tested in a real browser (web/tests, run by scripts/test).

use gridhub::grpc::pb;
use tonic::Code;

use crate::helpers::TestApp;
use crate::reports::WALL;
use crate::workflow::{self, TOWN, operator};

#[tokio::test]
async fn the_map_shows_the_towns_grids_with_their_open_cases_and_nothing_outside_its_scope() {
    let (app, _clock) = workflow::town_at(workflow::local("2026-11-25 09:00")).await;
    let case = workflow::new_case(&app, "0101", WALL).await;
    let op = operator(&app);
    let map = app
        .cases(Some(&op))
        .await
        .get_case_map(pb::GetCaseMapRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(map.region_code, TOWN);
    assert!(!map.grids.is_empty(), "the demo town's grids");
    assert!(map.grids.iter().all(|g| g.code.starts_with(TOWN)));
    assert!(
        map.grids
            .iter()
            .all(|g| g.boundary_geojson.contains("Polygon"))
    );
    let grid = map
        .grids
        .iter()
        .find(|g| g.code == case.grid_code)
        .expect("the case's grid is on the map");
    assert_eq!(grid.open_cases, 1);
    assert_eq!(grid.overdue_cases, 0);
    assert!(!grid.workers.is_empty(), "its grid worker");
    let all_open: i64 = map.grids.iter().map(|g| g.open_cases).sum();
    assert_eq!(all_open, 1);
    assert_eq!(map.cases.len(), 1);
    let point = &map.cases[0];
    assert_eq!(point.case_id, case.case_id);
    assert_eq!(point.case_no, case.case_no);
    assert_eq!(point.status, "REPORTED");
    assert!((point.lat - WALL.0).abs() < 1e-9 && (point.lng - WALL.1).abs() < 1e-9);
    assert!(map.next_page_token.is_empty());

    // Points come in pages (newest first); the grids only with the first.
    let second = workflow::new_case(&app, "0202", (WALL.0 + 0.005, WALL.1)).await;
    let page = |token: String| {
        let app = &app;
        let op = op.clone();
        async move {
            app.cases(Some(&op))
                .await
                .get_case_map(pb::GetCaseMapRequest {
                    page_size: 1,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = page(String::new()).await;
    assert_eq!(first.cases.len(), 1);
    assert_eq!(first.cases[0].case_id, second.case_id);
    assert!(!first.grids.is_empty() && !first.next_page_token.is_empty());
    let rest = page(first.next_page_token).await;
    assert_eq!(rest.cases.len(), 1);
    assert_eq!(rest.cases[0].case_id, case.case_id);
    assert!(rest.grids.is_empty() && rest.next_page_token.is_empty());

    // A finished case leaves the map.
    let void = workflow::act(
        &app,
        &op,
        pb::TransitionCaseRequest {
            comment: "重复上报".into(),
            ..workflow::step(&case, pb::CaseAction::Void)
        },
    )
    .await
    .unwrap();
    assert_eq!(void.status, "VOID");
    let map = app
        .cases(Some(&op))
        .await
        .get_case_map(pb::GetCaseMapRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(map.cases.len(), 1, "the second case is still open");
    assert_eq!(map.grids.iter().map(|g| g.open_cases).sum::<i64>(), 1);

    // Another town's operator sees nothing of this one.
    let other = app.token("op-2", &["town_operator"], "500110101");
    let refused = app
        .cases(Some(&other))
        .await
        .get_case_map(pb::GetCaseMapRequest {
            region_code: TOWN.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let own = app
        .cases(Some(&other))
        .await
        .get_case_map(pb::GetCaseMapRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(own.grids.is_empty() && own.cases.is_empty());
}

#[tokio::test]
async fn the_console_is_served_beside_the_rpcs_with_its_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>一张网</title>",
    )
    .unwrap();
    std::fs::write(dir.path().join("assets/app-1234.js"), "console.log(1)").unwrap();
    let path = dir.path().to_owned();
    let app = TestApp::spawn_with(move |s| {
        s.console.dir = Some(path);
        s.console.map_tiles = Some("https://t0.tianditu.gov.cn/img_w/{z}/{x}/{y}".into());
    })
    .await;
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::new();

    let index = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    let h = index.headers().clone();
    assert_eq!(h["cache-control"], "no-cache");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("https://t0.tianditu.gov.cn"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(index.text().await.unwrap().contains("一张网"));

    let asset = http
        .get(format!("{base}/assets/app-1234.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
    assert!(
        asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(
        asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );

    // Any other page is the console's (it routes itself); a missing asset is not.
    let deep = http.get(format!("{base}/cases/x")).send().await.unwrap();
    assert_eq!(deep.status(), 200);
    assert!(deep.text().await.unwrap().contains("一张网"));

    let config = http
        .get(format!("{base}/config.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["map_tiles"],
        "https://t0.tianditu.gov.cn/img_w/{z}/{x}/{y}"
    );

    // gRPC on the same port is untouched, and a GET never reaches an RPC.
    let admin = app.admin();
    app.regions(Some(&admin))
        .await
        .list_regions(pb::ListRegionsRequest::default())
        .await
        .unwrap();
    let sneaky = http
        .get(format!("{base}/gridhub.v1.CaseService/ListCases"))
        .send()
        .await
        .unwrap();
    assert_eq!(sneaky.status(), 200);
    assert!(sneaky.text().await.unwrap().contains("一张网"));
}

#[tokio::test]
async fn without_a_built_console_a_get_says_how_to_build_it() {
    let app = TestApp::spawn_with(|s| s.console.dir = None).await;
    let r = reqwest::get(format!("http://{}/", app.addr)).await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("npm run build"));
}

#[tokio::test]
async fn the_caller_learns_what_it_may_call_and_the_cases_next_steps_open_to_it() {
    let (app, _clock) = workflow::town_at(workflow::local("2026-11-25 09:00")).await;
    let case = workflow::new_case(&app, "0101", WALL).await;
    let op = operator(&app);
    let who = |token: String| {
        let app = &app;
        async move {
            let mut c = pb::session_service_client::SessionServiceClient::with_interceptor(
                app.channel().await,
                crate::helpers::Bearer(Some(format!("Bearer {token}").parse().unwrap())),
            );
            c.who_am_i(pb::WhoAmIRequest {}).await
        }
    };
    let me = who(op.clone()).await.unwrap().into_inner();
    assert_eq!(me.subject, "op-1");
    assert_eq!(me.roles, ["town_operator"]);
    assert_eq!(me.region_code, TOWN);
    assert!(!me.pii_reader);
    let has = |m: &str| me.methods.iter().any(|x| x.ends_with(m));
    assert!(has("/TransitionCase") && has("/GetCaseMap") && has("/GetDashboard"));
    assert!(!has("/ImportRegions"), "admin only");
    assert!(!has("/PushWorkOrder"), "12345 only");
    assert!(me.methods.windows(2).all(|w| w[0] < w[1]), "sorted");

    // The same case: the command centre may register or void it; a unit's handler nothing yet.
    let steps = |token: String| {
        let app = &app;
        let id = case.case_id.clone();
        async move {
            app.cases(Some(&token))
                .await
                .get_case(pb::GetCaseRequest { case_id: id })
                .await
                .unwrap()
                .into_inner()
                .available_actions
        }
    };
    use pb::CaseAction as A;
    assert_eq!(
        steps(op.clone()).await,
        [A::Register as i32, A::Void as i32]
    );
    let zfj = workflow::handler(&app, workflow::ZFJ);
    assert!(steps(zfj.clone()).await.is_empty());
    // Dispatched to the unit: its handler may sign, return or ask for time.
    let registered = workflow::act(&app, &op, workflow::step(&case, A::Register))
        .await
        .unwrap();
    workflow::act(&app, &op, workflow::dispatch(&registered, workflow::ZFJ, 3))
        .await
        .unwrap();
    assert_eq!(
        steps(zfj).await,
        [A::Sign as i32, A::Return as i32, A::RequestExtension as i32]
    );
    // Three working days from Wednesday: Thursday, Friday, Monday (the server's calendar).
    let dispatched = workflow::get(&app, &case.case_id).await;
    assert_eq!(dispatched.working_days_left, 3);
    assert_eq!(
        registered.working_days_left, 0,
        "no deadline, and not filled by writes"
    );
    // Lists carry no steps (they depend on who asks, and a list is not where one acts).
    let list = app
        .cases(Some(&op))
        .await
        .list_cases(pb::ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.cases.iter().all(|c| c.available_actions.is_empty()));
}

#[tokio::test]
async fn the_dashboard_downloads_the_export_as_the_command_writes_it_and_audits_it() {
    let (app, _clock) = workflow::town_at(workflow::local("2026-11-25 09:00")).await;
    let case = workflow::new_case(&app, "0101", WALL).await;
    let op = operator(&app);
    let export = |token: String, from: &str, to: &str| {
        let app = &app;
        let r = pb::ExportCasesRequest {
            region_code: String::new(),
            from_date: from.into(),
            to_date: to.into(),
        };
        async move {
            let mut s = app
                .cases(Some(&token))
                .await
                .export_cases(r)
                .await?
                .into_inner();
            let mut bytes = Vec::new();
            while let Some(c) = s.message().await? {
                bytes.extend(c.data);
            }
            Ok::<_, tonic::Status>(bytes)
        }
    };
    // Yesterday and today in China: the report was made an hour ago, perhaps before midnight.
    let today = chrono::Utc::now() + chrono::Duration::hours(8);
    let yesterday = today - chrono::Duration::days(1);
    let day = today.format("%Y-%m-%d").to_string();
    let from = yesterday.format("%Y-%m-%d").to_string();
    let csv = export(op.clone(), &from, &day).await.unwrap();
    let text = String::from_utf8(csv.clone()).unwrap();
    assert!(text.starts_with("\u{feff}案件编号,状态,"), "{text}");
    assert!(text.contains(&case.case_no));
    // The same bytes as the command's writer.
    let mut conn = gridhub::store::connect_one(&app.db).await.unwrap();
    let mut direct = Vec::new();
    gridhub::app::export::write_cases(
        &mut conn,
        &gridhub::domain::principal::Scope::parse(TOWN).unwrap(),
        yesterday.date_naive(),
        today.date_naive(),
        &mut direct,
    )
    .await
    .unwrap();
    assert_eq!(csv, direct);
    // The export is in the audit trail (once the sealer has chained it).
    let mut exports = 0;
    for _ in 0..100 {
        exports = app
            .count("SELECT count(*) FROM audit_events WHERE action = 'case.export'")
            .await;
        if exports > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(exports, 1);
    // Bad input names its field; a year and a day is too long; another town is refused.
    let e = export(op.clone(), "2026-13-01", &day).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("from_date"), "{e:?}");
    let e = export(op.clone(), "2025-01-01", "2026-11-25")
        .await
        .unwrap_err();
    assert!(e.message().contains("to_date"), "{e:?}");
    let e = export(op.clone(), "2026-11-25", "2026-11-24")
        .await
        .unwrap_err();
    assert!(e.message().contains("to_date"), "{e:?}");
    let worker = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let e = export(worker, &day, &day).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_requests_next_steps_follow_the_window_and_the_assigned_unit() {
    use crate::service::{assign, clerk, create, new_request};
    use gridhub::grpc::pb::transition_service_request_request::Action as A;
    let (app, _clock) = workflow::town_at(workflow::local("2026-11-25 09:00")).await;
    let window = clerk(&app);
    let sr = create(
        &app,
        &window,
        new_request(pb::RequestKind::Help, "500110111201"),
    )
    .await
    .unwrap();
    let steps = |token: String| {
        let app = &app;
        let id = sr.id.clone();
        async move {
            app.requests(Some(&token))
                .await
                .get_service_request(pb::GetServiceRequestRequest { id })
                .await
                .unwrap()
                .into_inner()
                .available_actions
        }
    };
    assert_eq!(steps(window.clone()).await, [A::Assign as i32]);
    let bmfw = workflow::handler(&app, workflow::BMFW);
    assert!(steps(bmfw.clone()).await.is_empty());
    crate::service::act(&app, &window, assign(&sr, workflow::BMFW))
        .await
        .unwrap();
    assert_eq!(
        steps(bmfw).await,
        [A::Sign as i32, A::Return as i32, A::RequestExtension as i32]
    );
    assert_eq!(
        steps(window).await,
        [A::Urge as i32, A::Supervise as i32],
        "the window may press the unit"
    );
}

#[tokio::test]
async fn a_cases_12345_request_and_mediation_are_found_by_the_case() {
    use chrono::Utc;
    // Real time: the grid report and the order are stamped with it (the merge looks at times).
    let (app, _clock) = workflow::town_at(Utc::now()).await;
    let case = workflow::new_case(&app, "0202", WALL).await;
    let other = workflow::new_case(&app, "0202", (WALL.0 + 0.004, WALL.1)).await;
    // 12345's order 20 m away joins the case.
    let mut o = crate::hotline::work_order("2026112500777", 1);
    o.location = Some(pb::LatLng {
        lat: WALL.0 + 0.00018,
        lng: WALL.1,
    });
    o.category_code = "HL-0307".into();
    o.received_at = Some(gridhub::grpc::convert::timestamp(Utc::now()));
    let pushed = app
        .hotline(Some(&crate::hotline::hotline(&app)))
        .await
        .push_work_order(o)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pushed.case_id, case.case_id);
    let requests = |case_id: &str| {
        let app = &app;
        let r = pb::ListServiceRequestsRequest {
            case_id: case_id.into(),
            ..Default::default()
        };
        async move {
            app.requests(Some(&operator(app)))
                .await
                .list_service_requests(r)
                .await
                .map(|r| r.into_inner().service_requests)
        }
    };
    let found = requests(&case.case_id).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].hotline_order_no, "2026112500777");
    assert!(requests(&other.case_id).await.unwrap().is_empty());
    let e = requests("nope").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // A mediation linked to the case.
    let mediator = app.token_unit("med-li", &["mediator"], TOWN, crate::mediation::TEAM);
    let m = app
        .mediation(Some(&mediator))
        .await
        .create_mediation_case(crate::mediation::dispute(&case.case_id))
        .await
        .unwrap()
        .into_inner();
    let linked = |case_id: &str| {
        let app = &app;
        let token = mediator.clone();
        let r = pb::ListMediationCasesRequest {
            linked_case_id: case_id.into(),
            ..Default::default()
        };
        async move {
            app.mediation(Some(&token))
                .await
                .list_mediation_cases(r)
                .await
                .map(|r| r.into_inner().mediation_cases)
        }
    };
    let found = linked(&case.case_id).await.unwrap();
    assert_eq!(
        found.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        [m.id]
    );
    assert!(linked(&other.case_id).await.unwrap().is_empty());
}
