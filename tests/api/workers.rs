//! Workers and departments: personal data encrypted at rest and masked, scope on writes.

use gridhub::grpc::pb;
use tonic::Code;

use crate::helpers::{TestApp, violations};

fn worker(id: &str, phone: &str, region: &str, grids: &[&str]) -> pb::UpsertWorkerRequest {
    pb::UpsertWorkerRequest {
        worker: Some(pb::Worker {
            worker_id: id.into(),
            name: "王芳".into(),
            phone: phone.into(),
            region_code: region.into(),
            grid_codes: grids.iter().map(|g| g.to_string()).collect(),
            active: true,
            updated_at: None,
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

#[tokio::test]
async fn phones_are_encrypted_at_rest_masked_in_responses_and_audit() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let va = app.token("va-mj", &["village_admin"], "500110111201");
    let mut c = app.regions(Some(&va)).await;
    let w = c
        .upsert_worker(worker(
            "W-MJ-009",
            "139 1234 5678",
            "500110111201",
            &["500110111201002"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.phone, "139****5678");
    assert_eq!(w.grid_codes, ["500110111201002"]);

    let row = app
        .sql()
        .await
        .query_one(
            "SELECT phone_enc, phone_index FROM workers WHERE worker_id = 'W-MJ-009'",
            &[],
        )
        .await
        .unwrap();
    let enc: Vec<u8> = row.get(0);
    assert!(
        !enc.windows(4).any(|x| x == b"1391" || x == b"5678"),
        "phone stored in clear"
    );
    let all_text = app.count("SELECT count(*) FROM workers WHERE worker_id = 'W-MJ-009' AND (name || region_code || array_to_string(grid_codes, ',')) LIKE '%13912345678%'").await;
    assert_eq!(all_text, 0);
    let audit = app.count("SELECT count(*) FROM audit_events WHERE entity_id = 'W-MJ-009' AND after::text LIKE '%139****5678%' AND after::text NOT LIKE '%13912345678%'").await;
    assert_eq!(audit, 1);

    // Masked for the command centre, whole for a pii_reader.
    let op = app.token("op", &["town_operator"], "500110111");
    let listed = app
        .regions(Some(&op))
        .await
        .list_workers(pb::ListWorkersRequest {
            grid_code: "500110111201002".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let phones: Vec<&str> = listed.workers.iter().map(|w| w.phone.as_str()).collect();
    assert_eq!(phones, ["138****0002", "139****5678"]);
    let reader = app.token("op", &["town_operator", "pii_reader"], "500110111");
    let listed = app
        .regions(Some(&reader))
        .await
        .list_workers(pb::ListWorkersRequest {
            grid_code: "500110111201002".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let phones: Vec<&str> = listed.workers.iter().map(|w| w.phone.as_str()).collect();
    assert_eq!(phones, ["13800000002", "13912345678"]);
}

#[tokio::test]
async fn bad_worker_input_names_its_fields_and_writes_nothing() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut c = app.regions(Some(&op)).await;
    let mut r = worker("王", "12345", "50011011120", &["500110111200001"]);
    r.worker.as_mut().unwrap().name = " ".into();
    let e = c.upsert_worker(r).await.unwrap_err();
    assert_eq!(
        violations(&e),
        [
            "worker.worker_id",
            "worker.name",
            "worker.phone",
            "worker.region_code",
            "worker.grid_codes[0]"
        ]
    );
    // A grid of another village, and a grid that does not exist.
    let e = c
        .upsert_worker(worker(
            "W-1",
            "13800000009",
            "500110111201",
            &["500110111200001"],
        ))
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["worker.grid_codes[0]"]);
    let e = c
        .upsert_worker(worker(
            "W-1",
            "13800000009",
            "500110111201",
            &["500110111201009"],
        ))
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["worker.grid_codes[0]"]);
    let bad_id = pb::UpsertWorkerRequest {
        request_id: "not-a-uuid".into(),
        ..worker("W-1", "13800000009", "500110111201", &[])
    };
    assert_eq!(
        violations(&c.upsert_worker(bad_id).await.unwrap_err()),
        ["request_id"]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM workers WHERE worker_id IN ('W-1', '王')")
            .await,
        0
    );
}

#[tokio::test]
async fn village_admins_cannot_write_outside_their_village() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let va = app.token("va-dt", &["village_admin"], "500110111200");
    let mut c = app.regions(Some(&va)).await;
    let e = c
        .upsert_worker(worker("W-9", "13800000009", "500110111201", &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Nor take over a worker of another village by reusing its id.
    let e = c
        .upsert_worker(worker("W-MJ-001", "13800000009", "500110111200", &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let region: String = app
        .sql()
        .await
        .query_one(
            "SELECT region_code FROM workers WHERE worker_id = 'W-MJ-001'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(region, "500110111201");
    // Its own village works.
    c.upsert_worker(worker(
        "W-DT-002",
        "13800000010",
        "500110111200",
        &["500110111200001"],
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn departments_upsert_and_list_in_scope() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut c = app.regions(Some(&op)).await;
    let d = pb::Department {
        code: "500110111-YJB".into(),
        name: "应急办".into(),
        region_code: "500110111".into(),
        kind: "应急".into(),
        active: true,
        updated_at: None,
    };
    let out = c
        .upsert_department(pb::UpsertDepartmentRequest {
            department: Some(d.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.name, "应急办");
    let all = c
        .list_departments(pb::ListDepartmentsRequest {
            region_code: "500110111".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // The demo's four (enforcement, service centre, 综治中心, 马颈村's mediation committee) and this one.
    assert_eq!(all.departments.len(), 5);
    let other = pb::Department {
        region_code: "500110112".into(),
        code: "500110112-X".into(),
        ..d
    };
    let e = c
        .upsert_department(pb::UpsertDepartmentRequest {
            department: Some(other),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let w = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let e = app
        .regions(Some(&w))
        .await
        .list_departments(pb::ListDepartmentsRequest {
            region_code: "500110111".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}
