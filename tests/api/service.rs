//! The service window: the 权责清单 catalog with versions by date, service requests through
//! the whole loop with the right roles (a village agent filing on someone's behalf),
//! illegal transitions and wrong roles, deadlines by kind on the working-day calendar,
//! dissatisfaction reopening the request, masking and the units' figures.

use gridhub::grpc::convert::{from_timestamp, timestamp};
use gridhub::grpc::pb;
use gridhub::grpc::pb::transition_service_request_request::Action as A;
use tonic::Code;

use crate::helpers::{TestApp, violations};
use crate::workflow::{BMFW, TOWN, ZFJ, handler, local, town_at};

pub const DATONG: &str = "500110111200";

const CATALOG_V1: &str = "\u{feff}town_code,code,name,kind,source_department,delegation,legal_basis,time_limit_days,effective_from,effective_to,withdrawn
500110111,QJ-GG-001,农村危房改造申请受理,公共服务,区住房城乡建委,委托,《重庆市农村危房改造实施办法》,5,2025-01-01,,
500110111,QJ-XK-002,临时占用道路审批,行政许可,区城市管理局,下放,《城市道路管理条例》,10,2025-01-01,,
";

pub fn clerk(app: &TestApp) -> String {
    app.token("clerk-1", &["window_clerk"], TOWN)
}

/// A village agent (代办员) of 打通村.
pub fn agent(app: &TestApp) -> String {
    app.token("agent-dt", &["window_clerk"], DATONG)
}

pub async fn import_catalog(app: &TestApp, csv: &str) -> pb::ImportCatalogResponse {
    app.catalog(Some(&app.admin()))
        .await
        .import_catalog(pb::ImportCatalogRequest {
            csv: csv.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

pub fn applicant() -> pb::Applicant {
    pb::Applicant {
        name: "张桂英".into(),
        phone: "13912345678".into(),
        // A valid GB 11643 number (check digit 4).
        id_number: "500110195003071234".into(),
    }
}

pub fn new_request(kind: pb::RequestKind, region: &str) -> pb::CreateServiceRequestRequest {
    pb::CreateServiceRequestRequest {
        kind: kind as i32,
        applicant: Some(applicant()),
        content: "申请农村危房改造补助".into(),
        region_code: region.into(),
        ..Default::default()
    }
}

pub async fn create(
    app: &TestApp,
    token: &str,
    r: pb::CreateServiceRequestRequest,
) -> Result<pb::ServiceRequest, tonic::Status> {
    app.requests(Some(token))
        .await
        .create_service_request(r)
        .await
        .map(|r| r.into_inner())
}

pub fn step(sr: &pb::ServiceRequest, action: A) -> pb::TransitionServiceRequestRequest {
    pb::TransitionServiceRequestRequest {
        id: sr.id.clone(),
        action: action as i32,
        expected_version: sr.version,
        ..Default::default()
    }
}

pub async fn act(
    app: &TestApp,
    token: &str,
    r: pb::TransitionServiceRequestRequest,
) -> Result<pb::ServiceRequest, tonic::Status> {
    app.requests(Some(token))
        .await
        .transition_service_request(r)
        .await
        .map(|r| r.into_inner())
}

pub fn assign(sr: &pb::ServiceRequest, unit: &str) -> pb::TransitionServiceRequestRequest {
    pb::TransitionServiceRequestRequest {
        assignee: unit.into(),
        ..step(sr, A::Assign)
    }
}

pub fn reply(sr: &pb::ServiceRequest, text: &str) -> pb::TransitionServiceRequestRequest {
    pb::TransitionServiceRequestRequest {
        comment: text.into(),
        ..step(sr, A::Reply)
    }
}

pub fn callback(
    sr: &pb::ServiceRequest,
    s: pb::Satisfaction,
) -> pb::TransitionServiceRequestRequest {
    pb::TransitionServiceRequestRequest {
        satisfaction: s as i32,
        ..step(sr, A::RecordSatisfaction)
    }
}

fn deadline(sr: &pb::ServiceRequest) -> chrono::DateTime<chrono::Utc> {
    from_timestamp(sr.deadline.as_ref().unwrap()).unwrap()
}

#[tokio::test]
async fn catalog_changes_are_versions_and_the_list_answers_by_date() {
    let (app, _clock) = town_at(local("2026-11-25 10:00")).await;
    let s = import_catalog(&app, CATALOG_V1).await;
    assert_eq!((s.created, s.versioned, s.unchanged), (2, 0, 0));
    // The same file again changes nothing.
    let s = import_catalog(&app, CATALOG_V1).await;
    assert_eq!((s.created, s.versioned, s.unchanged), (0, 0, 2));
    // A new time limit from March 2026, then the county takes the permit back (收回) in December.
    let v2 = "town_code,code,name,kind,source_department,delegation,legal_basis,time_limit_days,effective_from,effective_to,withdrawn\n500110111,QJ-GG-001,农村危房改造申请受理,公共服务,区住房城乡建委,委托,《重庆市农村危房改造实施办法》,3,2026-03-01,,\n500110111,QJ-XK-002,临时占用道路审批,行政许可,区城市管理局,下放,《城市道路管理条例》,10,2026-12-01,,收回\n";
    let s = import_catalog(&app, v2).await;
    assert_eq!((s.created, s.versioned, s.withdrawn), (0, 2, 1));

    let mut c = app.catalog(Some(&clerk(&app))).await;
    let on = |day: &str| pb::ListCatalogItemsRequest {
        town_code: TOWN.into(),
        as_of: day.into(),
        ..Default::default()
    };
    let items = |r: pb::ListCatalogItemsResponse| -> Vec<(String, i32, i32)> {
        r.items
            .into_iter()
            .map(|i| (i.code, i.version, i.time_limit))
            .collect()
    };
    let r = c
        .list_catalog_items(on("2025-03-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        items(r),
        vec![("QJ-GG-001".into(), 1, 5), ("QJ-XK-002".into(), 1, 10)]
    );
    let r = c
        .list_catalog_items(on("2026-06-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        items(r),
        vec![("QJ-GG-001".into(), 2, 3), ("QJ-XK-002".into(), 1, 10)]
    );
    // From 1 December 2026 the permit is withdrawn: gone from the list, still in history.
    let r = c
        .list_catalog_items(on("2026-12-15"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(items(r), vec![("QJ-GG-001".into(), 2, 3)]);
    let r = c
        .list_catalog_items(pb::ListCatalogItemsRequest {
            town_code: TOWN.into(),
            history: true,
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.items.len(), 3);
    assert!(!r.next_page_token.is_empty());
    let rest = c
        .list_catalog_items(pb::ListCatalogItemsRequest {
            town_code: TOWN.into(),
            history: true,
            page_size: 3,
            page_token: r.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.items[0].withdrawn);
    assert_eq!(
        rest.items[0].kind,
        pb::CatalogKind::AdministrativeLicensing as i32
    );
    assert_eq!(rest.items[0].delegation, pb::Delegation::Devolved as i32);
    let v1 = c
        .get_catalog_item(pb::GetCatalogItemRequest {
            town_code: TOWN.into(),
            code: "QJ-GG-001".into(),
            version: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (v1.time_limit, v1.effective_from.as_str()),
        (5, "2025-01-01")
    );
    let e = c
        .get_catalog_item(pb::GetCatalogItemRequest {
            town_code: TOWN.into(),
            code: "QJ-XK-002".into(),
            as_of: "2027-01-01".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // Every version is in the audit trail.
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE entity_type = 'catalog_item'")
            .await,
        4
    );
}

#[tokio::test]
async fn catalog_import_is_checked_and_scoped() {
    let (app, _clock) = town_at(local("2026-11-25 10:00")).await;
    let bad = "town_code,code,name,kind,source_department,delegation,legal_basis,time_limit_days,effective_from,effective_to,withdrawn\n500110111,QJ-1,名称,许可,,委托,,5,2025-01-01,,\n500110111201,QJ-2,,公共服务,,转交,,900,2025-02-30,2024-01-01,\n";
    let e = app
        .catalog(Some(&app.admin()))
        .await
        .import_catalog(pb::ImportCatalogRequest {
            csv: bad.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let v = violations(&e);
    for f in [
        "line 2.kind",
        "line 3.town_code",
        "line 3.name",
        "line 3.delegation",
        "line 3.time_limit",
        "line 3.effective_from",
    ] {
        assert!(v.contains(&f.to_string()), "{f} in {v:?}");
    }
    assert_eq!(app.count("SELECT count(*) FROM catalog_items").await, 0);
    // A grid worker may not import; another town's operator may not import for 打通镇.
    let w = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let e = app
        .catalog(Some(&w))
        .await
        .import_catalog(pb::ImportCatalogRequest {
            csv: CATALOG_V1.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let other = app.token("op-x", &["town_operator"], "500110112");
    let e = app
        .catalog(Some(&other))
        .await
        .import_catalog(pb::ImportCatalogRequest {
            csv: CATALOG_V1.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = app
        .catalog(Some(&other))
        .await
        .list_catalog_items(pb::ListCatalogItemsRequest {
            town_code: TOWN.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_village_agent_files_on_behalf_and_the_request_goes_round_the_loop() {
    // Wednesday 23 September 2026, 10:00: 中秋 (25–27 Sep) and 国庆 (1–7 Oct) lie ahead.
    let (app, clock) = town_at(local("2026-09-23 10:00")).await;
    import_catalog(&app, CATALOG_V1).await;
    let agent = agent(&app);
    let mut req = new_request(pb::RequestKind::Service, DATONG);
    req.catalog_item_code = "QJ-GG-001".into();
    req.on_behalf = true;
    let sr = create(&app, &agent, req).await.unwrap();
    assert!(sr.on_behalf);
    assert_eq!(sr.filed_by, "agent-dt");
    assert_eq!(
        (sr.catalog_item_code.as_str(), sr.catalog_item_version),
        ("QJ-GG-001", 1)
    );
    assert_eq!(sr.status, pb::ServiceRequestStatus::Accepted as i32);
    // The item's 5 working days: 24, 28, 29, 30 September, 8 October.
    assert_eq!(deadline(&sr), local("2026-10-08 17:30"));
    assert!(
        sr.request_no.starts_with("FW500110111-"),
        "{}",
        sr.request_no
    );
    // Masked for the clerk; whole for a pii_reader.
    let a = sr.applicant.clone().unwrap();
    assert_eq!(a.name, "张**");
    assert_eq!(a.phone, "139****5678");
    assert!(a.id_number.starts_with("500110********"), "{}", a.id_number);
    let reader = app.token("pii-1", &["window_clerk", "pii_reader"], TOWN);
    let full = app
        .requests(Some(&reader))
        .await
        .get_service_request(pb::GetServiceRequestRequest { id: sr.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.applicant.unwrap(), applicant());
    // Nothing personal in the database or the audit trail in plaintext.
    let plain = app
        .count("SELECT count(*) FROM service_requests WHERE position('13912345678' in encode(applicant_enc, 'escape')) > 0 OR position(convert_to('张桂英', 'UTF8') in applicant_enc) > 0")
        .await;
    assert_eq!(plain, 0);
    let leaked = app
        .count("SELECT count(*) FROM audit_events WHERE after::text LIKE '%13912345678%' OR after::text LIKE '%张桂英%'")
        .await;
    assert_eq!(leaked, 0);

    // Wrong roles and states.
    let clerk = clerk(&app);
    let bmfw = handler(&app, BMFW);
    let e = act(&app, &bmfw, assign(&sr, BMFW)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = act(&app, &clerk, step(&sr, A::Sign)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = act(&app, &clerk, step(&sr, A::Archive)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("request is ACCEPTED"),
        "{}",
        e.message()
    );
    let e = act(&app, &clerk, assign(&sr, "nobody")).await.unwrap_err();
    assert_eq!(violations(&e), vec!["assignee"]);

    let sr = act(&app, &clerk, assign(&sr, BMFW)).await.unwrap();
    assert_eq!(sr.assignee, BMFW);
    // Another unit's handler cannot sign for it; a stale version is refused.
    let e = act(&app, &handler(&app, ZFJ), step(&sr, A::Sign))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let mut stale = step(&sr, A::Sign);
    stale.expected_version -= 1;
    assert_eq!(
        act(&app, &bmfw, stale).await.unwrap_err().code(),
        Code::Aborted
    );
    let sr = act(&app, &bmfw, step(&sr, A::Sign)).await.unwrap();
    let e = act(&app, &bmfw, reply(&sr, " ")).await.unwrap_err();
    assert_eq!(violations(&e), vec!["comment"]);
    clock.set(local("2026-09-29 15:00"));
    let sr = act(&app, &bmfw, reply(&sr, "已受理，材料已报区住建委"))
        .await
        .unwrap();
    assert_eq!(sr.status, pb::ServiceRequestStatus::Replied as i32);
    assert_eq!(sr.reply, "已受理，材料已报区住建委");
    let sr = act(&app, &clerk, callback(&sr, pb::Satisfaction::Satisfied))
        .await
        .unwrap();
    assert_eq!(sr.status, pb::ServiceRequestStatus::Visited as i32);
    let sr = act(&app, &clerk, step(&sr, A::Archive)).await.unwrap();
    assert_eq!(sr.status, pb::ServiceRequestStatus::Archived as i32);
    assert!(sr.archived_at.is_some());
    // Every step is audited, with who and from → to.
    let steps = app
        .count(&format!(
            "SELECT count(*) FROM audit_events WHERE entity_id = '{}' AND action IN ('service_request.create', 'service_request.transition')",
            sr.id
        ))
        .await;
    assert_eq!(steps, 6);
    // The request names the item version in force that day even after the item changes.
    let after = "town_code,code,name,kind,source_department,delegation,legal_basis,time_limit_days,effective_from,effective_to,withdrawn\n500110111,QJ-GG-001,农村危房改造申请受理,公共服务,区住房城乡建委,委托,,2,2026-01-01,,\n";
    import_catalog(&app, after).await;
    let again = app
        .requests(Some(&clerk))
        .await
        .get_service_request(pb::GetServiceRequestRequest { id: sr.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.catalog_item_version, 1);
}

#[tokio::test]
async fn deadlines_follow_kind_and_urgency_on_the_calendar() {
    let (app, _clock) = town_at(local("2026-09-23 10:00")).await;
    let clerk = clerk(&app);
    let make = |kind, urgency: pb::Urgency| {
        let mut r = new_request(kind, TOWN);
        r.urgency = urgency as i32;
        r
    };
    let cases = [
        // 3 working days: 24, 28, 29 September (25–27 are 中秋).
        (
            pb::RequestKind::Enquiry,
            pb::Urgency::Normal,
            "2026-09-29 17:30",
        ),
        (
            pb::RequestKind::Help,
            pb::Urgency::Normal,
            "2026-09-29 17:30",
        ),
        // 13 working days: 24, 28, 29, 30 Sep, 8, 9, 10 (adjusted Saturday), 12–16, 19 Oct.
        (
            pb::RequestKind::Complaint,
            pb::Urgency::Normal,
            "2026-10-19 17:30",
        ),
        (
            pb::RequestKind::Complaint,
            pb::Urgency::Urgent,
            "2026-09-24 17:30",
        ),
        (
            pb::RequestKind::Suggestion,
            pb::Urgency::Critical,
            "2026-09-23 17:30",
        ),
    ];
    for (kind, urgency, want) in cases {
        let sr = create(&app, &clerk, make(kind, urgency)).await.unwrap();
        assert_eq!(deadline(&sr), local(want), "{kind:?} {urgency:?}");
    }
    // A SERVICE request needs an item in force; bad input names every field.
    let e = create(&app, &clerk, new_request(pb::RequestKind::Service, TOWN))
        .await
        .unwrap_err();
    assert_eq!(violations(&e), vec!["catalog_item_code"]);
    let mut r = new_request(pb::RequestKind::Service, TOWN);
    r.catalog_item_code = "NOPE".into();
    let e = create(&app, &clerk, r).await.unwrap_err();
    assert_eq!(violations(&e), vec!["catalog_item_code"]);
    let bad = pb::CreateServiceRequestRequest {
        kind: 0,
        applicant: Some(pb::Applicant {
            name: String::new(),
            phone: "12".into(),
            id_number: "500110195003071230".into(),
        }),
        content: String::new(),
        region_code: "5001".into(),
        ..Default::default()
    };
    let mut v = violations(&create(&app, &clerk, bad).await.unwrap_err());
    v.sort();
    assert_eq!(
        v,
        vec![
            "applicant.id_number",
            "applicant.name",
            "applicant.phone",
            "content",
            "kind",
            "region_code"
        ]
    );
    // Outside the clerk's region; a grid worker may not file.
    let e = create(
        &app,
        &agent(&app),
        new_request(pb::RequestKind::Help, "500110111201"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let w = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let e = create(&app, &w, new_request(pb::RequestKind::Help, "500110111201"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(app.count("SELECT count(*) FROM service_requests").await, 5);
}

/// The town's request figures of November 2026.
async fn november_stats(app: &TestApp, token: &str) -> pb::ServiceRequestStats {
    app.requests(Some(token))
        .await
        .get_service_request_stats(pb::GetServiceRequestStatsRequest {
            region_code: TOWN.into(),
            from: Some(timestamp(local("2026-11-01 00:00"))),
            to: Some(timestamp(local("2026-12-01 00:00"))),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn dissatisfaction_reopens_and_counts_against_the_unit() {
    let (app, clock) = town_at(local("2026-11-23 09:00")).await;
    let clerk = clerk(&app);
    let bmfw = handler(&app, BMFW);
    let zfj = handler(&app, ZFJ);
    // Request 1 (BMFW): replied on time, then 不满意 → reopened to BMFW, replied again, 满意.
    let a = create(&app, &clerk, new_request(pb::RequestKind::Help, TOWN))
        .await
        .unwrap();
    let a = act(&app, &clerk, assign(&a, BMFW)).await.unwrap();
    let a = act(&app, &bmfw, step(&a, A::Sign)).await.unwrap();
    let a = act(&app, &bmfw, reply(&a, "已协调")).await.unwrap();
    let a = act(&app, &clerk, callback(&a, pb::Satisfaction::Dissatisfied))
        .await
        .unwrap();
    assert_eq!(a.status, pb::ServiceRequestStatus::Assigned as i32);
    assert_eq!(a.assignee, BMFW);
    assert_eq!((a.reopen_count, a.dissatisfied_count), (1, 1));
    assert!(a.flags.contains(&"REOPENED".to_string()));
    // A fresh 3 working days from Monday 23 November: Thursday 26th.
    assert_eq!(deadline(&a), local("2026-11-26 17:30"));
    // The reply that 不满意 reopened still counts for the unit that made it.
    let reopened = november_stats(&app, &clerk).await;
    let mid = reopened.units.iter().find(|x| x.unit == BMFW).unwrap();
    assert_eq!(
        (
            mid.replied,
            mid.replied_on_time,
            mid.dissatisfied,
            mid.reopened
        ),
        (1, 1, 1, 1),
        "{reopened:?}"
    );
    let a = act(&app, &bmfw, step(&a, A::Sign)).await.unwrap();
    let a = act(&app, &bmfw, reply(&a, "已再次协调解决")).await.unwrap();
    let a = act(
        &app,
        &clerk,
        callback(&a, pb::Satisfaction::BasicallySatisfied),
    )
    .await
    .unwrap();
    assert_eq!(a.status, pb::ServiceRequestStatus::Visited as i32);
    // Request 2 (ZFJ): asks for 2 more days before the deadline, granted; replies late anyway.
    let b = create(&app, &clerk, new_request(pb::RequestKind::Enquiry, TOWN))
        .await
        .unwrap();
    let b = act(&app, &clerk, assign(&b, ZFJ)).await.unwrap();
    let b = act(&app, &zfj, step(&b, A::Sign)).await.unwrap();
    let ask = pb::TransitionServiceRequestRequest {
        extension_working_days: 2,
        comment: "需现场核实".into(),
        ..step(&b, A::RequestExtension)
    };
    let b = act(&app, &zfj, ask).await.unwrap();
    assert_eq!(b.extension_working_days, 2);
    let b = act(&app, &clerk, step(&b, A::ApproveExtension))
        .await
        .unwrap();
    // 26 November + 2 working days = Monday 30 November.
    assert_eq!(deadline(&b), local("2026-11-30 17:30"));
    let b = act(&app, &clerk, step(&b, A::Urge)).await.unwrap();
    assert_eq!(b.urge_count, 1);
    // Request 3: never assigned.
    create(&app, &clerk, new_request(pb::RequestKind::Complaint, TOWN))
        .await
        .unwrap();
    clock.set(local("2026-12-01 10:00"));
    // Overdue now: listed as such.
    let overdue = app
        .requests(Some(&clerk))
        .await
        .list_service_requests(pb::ListServiceRequestsRequest {
            overdue_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(overdue.service_requests.len(), 1);
    assert_eq!(overdue.service_requests[0].id, b.id);
    assert!(
        overdue.service_requests[0]
            .flags
            .contains(&"OVERDUE".to_string())
    );
    let b = act(&app, &zfj, reply(&b, "已答复")).await.unwrap();
    act(&app, &clerk, callback(&b, pb::Satisfaction::Satisfied))
        .await
        .unwrap();

    let stats = november_stats(&app, &clerk).await;
    assert_eq!((stats.total, stats.from_hotline), (3, 0));
    // Replies, each counted: A's two on time (the 23rd, by the 23rd's and the 26th's
    // deadlines), B's late → 2 of 3.
    assert!((stats.on_time_rate - 2.0 / 3.0).abs() < 1e-9, "{stats:?}");
    // Callbacks: A 不满意 + 基本满意, B 满意 → 2 of 3 satisfied.
    assert!(
        (stats.satisfaction_rate - 2.0 / 3.0).abs() < 1e-9,
        "{stats:?}"
    );
    let unit = |u: &str| stats.units.iter().find(|x| x.unit == u).unwrap().clone();
    let (x, y) = (unit(BMFW), unit(ZFJ));
    assert_eq!(
        (
            x.assigned,
            x.replied,
            x.replied_on_time,
            x.satisfied,
            x.dissatisfied,
            x.reopened
        ),
        (1, 2, 2, 1, 1, 1)
    );
    assert_eq!(
        (
            y.assigned,
            y.replied,
            y.replied_on_time,
            y.satisfied,
            y.dissatisfied,
            y.reopened
        ),
        (1, 1, 0, 1, 0, 0)
    );
}
