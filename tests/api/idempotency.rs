//! AIP-155 request_id: a retry returns the first answer; a reuse with another payload is refused.

use gridhub::grpc::pb;
use tonic::Code;

use crate::helpers::TestApp;

fn dept(name: &str, request_id: &str) -> pb::UpsertDepartmentRequest {
    pb::UpsertDepartmentRequest {
        department: Some(pb::Department {
            code: "500110111-SJ".into(),
            name: name.into(),
            region_code: "500110111".into(),
            kind: "服务".into(),
            active: true,
            updated_at: None,
        }),
        request_id: request_id.into(),
    }
}

#[tokio::test]
async fn a_retried_request_id_returns_the_first_response_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut c = app.regions(Some(&op)).await;
    let id = uuid::Uuid::new_v4().to_string();
    let first = c
        .upsert_department(dept("社建办", &id))
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = c
        .upsert_department(dept("社建办", &id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first, second,
        "the stored first response, updated_at included"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE entity_id = '500110111-SJ'")
            .await,
        1
    );

    // Same id, other payload.
    let e = c
        .upsert_department(dept("社会事务办", &id))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(e.message().contains("different request"), "{}", e.message());
    let name: String = app
        .sql()
        .await
        .query_one(
            "SELECT name FROM departments WHERE code = '500110111-SJ'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "社建办");

    // The same id from another caller is another request.
    let op2 = app.token("op2", &["town_operator"], "500110111");
    let other = app
        .regions(Some(&op2))
        .await
        .upsert_department(dept("社会事务办", &id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.name, "社会事务办");
}

#[tokio::test]
async fn concurrent_retries_take_effect_once() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let id = uuid::Uuid::new_v4().to_string();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut c = app.regions(Some(&op)).await;
        let r = dept("社建办", &id);
        tasks.push(tokio::spawn(async move {
            c.upsert_department(r).await.map(|r| r.into_inner())
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap().unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE entity_id = '500110111-SJ'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 1);
}

#[tokio::test]
async fn a_streamed_import_is_idempotent_too() {
    let app = TestApp::spawn().await;
    let admin = app.token("nat-admin", &["admin"], "*");
    let mut c = app.regions(Some(&admin)).await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut records = crate::regions::fixture_records();
    records[0].request_id = id.clone();
    let first = c
        .import_regions(tokio_stream::iter(records.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = c
        .import_regions(tokio_stream::iter(records.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first, again,
        "a resend reports the first import, not 'unchanged'"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE action = 'region.import'")
            .await,
        1
    );
    records[5].name = "改名".into();
    let e = c
        .import_regions(tokio_stream::iter(records))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
}
