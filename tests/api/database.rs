//! The database under stress: pool exhaustion, cancelled RPCs, key expiry.

use std::time::{Duration, Instant};

use gridhub::grpc::pb;
use tonic::Code;

use crate::helpers::TestApp;

fn dept(code: &str) -> pb::UpsertDepartmentRequest {
    pb::UpsertDepartmentRequest {
        department: Some(pb::Department {
            code: code.into(),
            name: "部门".into(),
            region_code: "500110111".into(),
            kind: String::new(),
            active: true,
            updated_at: None,
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

#[tokio::test]
async fn an_exhausted_pool_answers_unavailable_within_the_acquire_timeout() {
    let app = TestApp::spawn_with(|s| {
        s.db.pool_size = 1;
        s.db.acquire_timeout = Duration::from_millis(300);
    })
    .await;
    app.seed_demo().await;
    let op = app.token("op", &["town_operator"], "500110111");
    // Another session locks the table, so the first write holds the only pooled connection.
    let locker = app.sql().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE departments IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut c1 = app.regions(Some(&op)).await;
    let blocked = tokio::spawn(async move { c1.upsert_department(dept("500110111-A")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let e = app
        .regions(Some(&op))
        .await
        .get_region(pb::GetRegionRequest {
            code: "500110111".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    locker.batch_execute("COMMIT").await.unwrap();
    blocked.await.unwrap().unwrap();
    app.regions(Some(&op))
        .await
        .get_region(pb::GetRegionRequest {
            code: "500110111".into(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn cancelled_rpcs_leave_no_connection_inside_a_transaction() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut tasks = Vec::new();
    for i in 0..60u64 {
        let mut c = app.regions(Some(&op)).await;
        tasks.push(tokio::spawn(async move {
            let mut r = tonic::Request::new(dept(&format!("500110111-C{i}")));
            // Deadlines from 1 ms to 15 ms: the server drops the handler at all kinds of points.
            r.set_timeout(Duration::from_micros(1000 + (i % 15) * 1000));
            let _ = c.upsert_department(r).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let q = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND state LIKE 'idle in transaction%'",
        app.db_name
    );
    assert_eq!(app.count(&q).await, 0);
    // Whatever committed is whole: each department has exactly one audit event, and the chain holds.
    let orphans = app
        .count("SELECT count(*) FROM departments d WHERE code LIKE '500110111-C%' AND (SELECT count(*) FROM audit_events a WHERE a.entity_id = d.code) <> 1")
        .await;
    assert_eq!(orphans, 0);
    let auditor = app.token("aud", &["auditor"], "500110111");
    let v = app
        .audit(Some(&auditor))
        .await
        .verify_audit_chain(pb::VerifyAuditChainRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(v.ok, "{v:?}");
    // And the server still works.
    app.regions(Some(&op))
        .await
        .upsert_department(dept("500110111-AFTER"))
        .await
        .unwrap();
}

#[tokio::test]
async fn old_idempotency_keys_expire() {
    // The server's own hourly janitor keeps keys for ten years here, so only the call below expires.
    let app =
        TestApp::spawn_with(|s| s.idempotency_retention = Duration::from_secs(10 * 365 * 86_400))
            .await;
    let sql = app.sql().await;
    sql.batch_execute(
        "INSERT INTO idempotency_keys (principal, request_id, method, payload_hash, principal_hash, response, created_at) VALUES
           ('a', gen_random_uuid(), 'm', '\\x00', '\\x00', '\\x00', now() - interval '31 days'),
           ('a', gen_random_uuid(), 'm', '\\x00', '\\x00', '\\x00', now() - interval '29 days')",
    )
    .await
    .unwrap();
    let mut conn = gridhub::store::connect_one(&app.db).await.unwrap();
    assert_eq!(
        gridhub::store::idempotency::expire(&mut conn, 30)
            .await
            .unwrap(),
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 1);
}
