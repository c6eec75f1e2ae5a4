//! The audit trail: every mutation leaves a chained event; tampering is detected.

use gridhub::grpc::pb;
use tonic::Code;

use crate::helpers::TestApp;

async fn some_history(app: &TestApp) {
    app.seed_demo().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut c = app.regions(Some(&op)).await;
    for (i, name) in ["执法队", "执法大队", "综合执法大队"].iter().enumerate() {
        let d = pb::Department {
            code: "500110111-ZF".into(),
            name: name.to_string(),
            region_code: "500110111".into(),
            kind: format!("k{i}"),
            active: true,
            updated_at: None,
        };
        c.upsert_department(pb::UpsertDepartmentRequest {
            department: Some(d),
            request_id: String::new(),
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn mutations_are_listed_with_who_what_and_before_after() {
    let app = TestApp::spawn().await;
    some_history(&app).await;
    let auditor = app.token("aud", &["auditor"], "500110111");
    let mut a = app.audit(Some(&auditor)).await;
    let r = a
        .list_audit_events(pb::ListAuditEventsRequest {
            entity_type: "department".into(),
            entity_id: "500110111-ZF".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.events.len(), 3);
    let e = &r.events[1];
    assert_eq!(
        (e.actor.as_str(), e.action.as_str(), e.outcome.as_str()),
        ("op", "department.upsert", "ok")
    );
    assert_eq!(e.actor_roles, ["town_operator"]);
    assert!(
        e.before_json.contains("执法队") && e.after_json.contains("执法大队"),
        "{e:?}"
    );
    assert!(r.events[0].before_json.is_empty());
    assert!(r.events.windows(2).all(|w| w[0].seq < w[1].seq));
    // Paging through everything in the town.
    let mut seen = 0;
    let mut token = String::new();
    loop {
        let p = a
            .list_audit_events(pb::ListAuditEventsRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen += p.events.len();
        if p.next_page_token.is_empty() {
            break;
        }
        token = p.next_page_token;
    }
    assert_eq!(
        seen as i64,
        app.count("SELECT count(*) FROM audit_events WHERE region_code LIKE '500110111%'")
            .await
    );
    // An auditor of another town sees none of it.
    let other = app.token("aud2", &["auditor"], "500110112");
    let r = app
        .audit(Some(&other))
        .await
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(r.events.is_empty());
    let e = app
        .audit(Some(&other))
        .await
        .list_audit_events(pb::ListAuditEventsRequest {
            region_code: "500110111".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn an_altered_audit_row_is_reported_by_verify() {
    let app = TestApp::spawn().await;
    some_history(&app).await;
    let auditor = app.token("aud", &["auditor"], "500110");
    let mut a = app.audit(Some(&auditor)).await;
    let ok = a
        .verify_audit_chain(pb::VerifyAuditChainRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.events_checked, 4);

    let sql = app.sql().await;
    // The trigger refuses a plain edit …
    let err = sql
        .execute(
            "UPDATE audit_events SET actor = 'someone-else' WHERE seq = 3",
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
        "{err:?}"
    );
    // … and one made behind its back is caught by the chain.
    sql.batch_execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only; UPDATE audit_events SET actor = 'someone-else' WHERE seq = 3; ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;")
        .await
        .unwrap();
    let bad = a
        .verify_audit_chain(pb::VerifyAuditChainRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!bad.ok);
    assert_eq!(bad.first_broken_seq, 3);
    assert!(bad.reason.contains("altered"), "{}", bad.reason);
}

#[tokio::test]
async fn events_recorded_the_older_way_are_sealed_into_the_same_chain() {
    // During a rolling upgrade a server from before migration 12 still records its events with
    // `audit_append` (one array per column); they are chained with everyone else's, in order.
    let app = TestApp::spawn().await;
    some_history(&app).await;
    app.sql()
        .await
        .batch_execute(
            r#"SELECT audit_append(ARRAY['op-old'], ARRAY['town_operator'], ARRAY['department.upsert'],
                 ARRAY['department'], ARRAY['500110111-OLD'], ARRAY['500110111'], ARRAY[NULL::jsonb],
                 ARRAY['{"name": "旧 \"队\""}'::jsonb], ARRAY['ok'], ARRAY[''],
                 ARRAY[',"op-old",["town_operator"],"department.upsert","department","500110111-OLD","500110111",null,{"name":"旧 \"队\""},"ok",""]'])"#,
        )
        .await
        .unwrap();
    some_history(&app).await;
    let auditor = app.token("aud", &["auditor"], "500110");
    let mut a = app.audit(Some(&auditor)).await;
    let v = a
        .verify_audit_chain(pb::VerifyAuditChainRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(v.ok, "{v:?}");
    let events = a
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events.len() as i64, v.events_checked);
    let old: Vec<&pb::AuditEvent> = events
        .iter()
        .filter(|e| e.entity_id == "500110111-OLD")
        .collect();
    assert_eq!(old.len(), 1);
    assert_eq!(
        (
            old[0].actor.as_str(),
            old[0].actor_roles.as_slice(),
            old[0].before_json.as_str()
        ),
        ("op-old", &["town_operator".to_owned()][..], "")
    );
    assert!(
        old[0].after_json.contains(r#"旧 \"队\""#),
        "{}",
        old[0].after_json
    );
    // Recorded between the two histories, sealed between them.
    let pos = events
        .iter()
        .position(|e| e.entity_id == "500110111-OLD")
        .unwrap();
    assert!(pos > 0 && pos + 1 < events.len());
    assert_eq!(app.count("SELECT count(*) FROM audit_pending").await, 0);
}

#[tokio::test]
async fn a_deleted_audit_row_is_reported_by_verify() {
    let app = TestApp::spawn().await;
    some_history(&app).await;
    // The events are in the chain (sealed) before someone deletes one behind its back.
    app.seal().await;
    app.sql()
        .await
        .batch_execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only; DELETE FROM audit_events WHERE seq = 2; ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;")
        .await
        .unwrap();
    let auditor = app.token("aud", &["auditor"], "500110");
    let bad = app
        .audit(Some(&auditor))
        .await
        .verify_audit_chain(pb::VerifyAuditChainRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (bad.ok, bad.first_broken_seq, bad.events_checked),
        (false, 2, 1)
    );
}

#[tokio::test]
async fn concurrent_writers_keep_one_unbroken_chain() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut c = app.regions(Some(&op)).await;
        tasks.push(tokio::spawn(async move {
            let d = pb::Department {
                code: format!("500110111-D{i}"),
                name: format!("部门{i}"),
                region_code: "500110111".into(),
                kind: String::new(),
                active: true,
                updated_at: None,
            };
            c.upsert_department(pb::UpsertDepartmentRequest {
                department: Some(d),
                request_id: uuid::Uuid::new_v4().to_string(),
            })
            .await
            .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let auditor = app.token("aud", &["auditor"], "500110");
    let r = app
        .audit(Some(&auditor))
        .await
        .verify_audit_chain(pb::VerifyAuditChainRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.events_checked, 17);
}

/// Two servers on one database write at once; their sealers (each woken by its own commits,
/// polling for the other's) put every event into one unbroken chain, once, with nothing left
/// pending — without any reader sealing.
#[tokio::test]
async fn two_servers_seal_one_unbroken_chain() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let replica = app.replica().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let addr = if i % 2 == 0 { app.addr } else { replica.addr };
        let mut c = app.regions_at(addr, Some(&op)).await;
        tasks.push(tokio::spawn(async move {
            c.upsert_department(pb::UpsertDepartmentRequest {
                department: Some(pb::Department {
                    code: format!("500110111-R{i}"),
                    name: format!("部门{i}"),
                    region_code: "500110111".into(),
                    kind: String::new(),
                    active: true,
                    updated_at: None,
                }),
                request_id: uuid::Uuid::new_v4().to_string(),
            })
            .await
            .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let sql = app.sql().await;
    let mut sealed = false;
    for _ in 0..100 {
        let pending: i64 = sql
            .query_one("SELECT count(*) FROM audit_pending", &[])
            .await
            .unwrap()
            .get(0);
        if pending == 0 {
            sealed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(sealed, "events still pending after 5 s");
    let row = sql
        .query_one(
            "SELECT count(*), coalesce(max(seq), 0), count(DISTINCT entity_id) FILTER (WHERE entity_id LIKE '500110111-R%') FROM audit_events",
            &[],
        )
        .await
        .unwrap();
    let (n, max, departments): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    // The demo's event and one per department, numbered without gaps.
    assert_eq!((n, max, departments), (25, 25, 24));
    let auditor = app.token("aud", &["auditor"], "500110");
    let r = app
        .audit(Some(&auditor))
        .await
        .verify_audit_chain(pb::VerifyAuditChainRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.events_checked, 25);
    replica.shutdown().await;
}

/// One more audited change (a department of 打通镇).
async fn one_more_event(app: &TestApp) {
    let op = app.token("op", &["town_operator"], "500110111");
    app.regions(Some(&op))
        .await
        .upsert_department(pb::UpsertDepartmentRequest {
            department: Some(pb::Department {
                code: "500110111-YJ".into(),
                name: "应急办".into(),
                region_code: "500110111".into(),
                kind: "应急".into(),
                active: true,
                updated_at: None,
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

/// The answer of VerifyAuditChain.
async fn verify(app: &TestApp) -> pb::VerifyAuditChainResponse {
    let auditor = app.token("aud", &["auditor"], "500110");
    app.audit(Some(&auditor))
        .await
        .verify_audit_chain(pb::VerifyAuditChainRequest::default())
        .await
        .unwrap()
        .into_inner()
}

/// Records a checkpoint of the head now (the sealer does every few seconds).
async fn checkpoint(app: &TestApp) {
    app.seal().await;
    let mut conn = gridhub::store::connect_one(&app.db).await.unwrap();
    app.state()
        .app
        .anchor
        .record(&mut conn)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_servers_role_can_neither_erase_nor_unguard_the_trail() {
    let app = TestApp::spawn_as_server_role().await;
    // The server does its work as that role (the demo loads through the server's pool).
    some_history(&app).await;
    app.seal().await;
    let server = gridhub::store::DbUrl::new(app.settings.database_url.clone().unwrap());
    let (role, conn) = tokio_postgres::connect(server.expose(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let n = app.count("SELECT count(*) FROM audit_events").await;
    assert!(n > 3);
    for sql in [
        "TRUNCATE audit_events",
        "ALTER TABLE audit_events DISABLE TRIGGER ALL",
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_truncate",
        "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)",
        "UPDATE audit_events SET actor = 'x' WHERE seq = 1",
        "DROP TABLE audit_events",
    ] {
        let e = role.batch_execute(sql).await.unwrap_err();
        let code = e.code().cloned();
        assert!(
            matches!(
                code,
                Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
            ),
            "{sql}: {e:?}"
        );
    }
    // It may read and append (the sealer does), and vacuum its pending queue.
    role.batch_execute("VACUUM audit_pending").await.unwrap();
    assert_eq!(app.count("SELECT count(*) FROM audit_events").await, n);
    assert!(verify(&app).await.ok);
}

#[tokio::test]
async fn truncation_disabled_triggers_and_a_missing_tail_are_refused_or_named() {
    let app = TestApp::spawn().await;
    some_history(&app).await;
    checkpoint(&app).await;
    let owner = app.sql().await;
    // Even the owner cannot TRUNCATE while the trigger stands.
    let e = owner
        .batch_execute("TRUNCATE audit_events")
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("append-only"), "{e:?}");
    let good = verify(&app).await;
    assert!(good.ok, "{good:?}");

    // The owner disables the triggers and deletes the newest event: the chain alone is intact.
    owner
        .batch_execute(
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only;
             DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events);
             ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;",
        )
        .await
        .unwrap();
    let bad = verify(&app).await;
    assert!(!bad.ok, "{bad:?}");
    assert_eq!(bad.first_broken_seq, good.events_checked, "{bad:?}");
    assert!(bad.reason.contains("removed from its end"), "{bad:?}");

    // A new event after the deletion does not hide it: the checkpoint's event differs.
    one_more_event(&app).await;
    app.seal().await;
    let bad = verify(&app).await;
    assert!(!bad.ok, "{bad:?}");
    assert!(
        bad.reason.contains("differs from the checkpoint"),
        "{bad:?}"
    );

    // Emptied with the TRUNCATE trigger disabled: named too.
    owner
        .batch_execute(
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_truncate;
             TRUNCATE audit_events;
             ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_truncate;",
        )
        .await
        .unwrap();
    let bad = verify(&app).await;
    assert_eq!((bad.ok, bad.first_broken_seq), (false, 1), "{bad:?}");
    assert!(bad.reason.contains("emptied"), "{bad:?}");
}

#[tokio::test]
async fn an_edited_checkpoint_is_named_and_a_stopped_server_leaves_one() {
    let mut app = TestApp::spawn().await;
    some_history(&app).await;
    checkpoint(&app).await;
    let file = app.data_dir.path().join("audit-checkpoints");
    let text = std::fs::read_to_string(&file).unwrap();
    // Claim a shorter chain: the signature no longer holds.
    let line = text.lines().last().unwrap();
    let (seq, rest) = line.split_once(' ').unwrap();
    let shorter = seq.parse::<i64>().unwrap() - 1;
    let forged = text.replace(line, &format!("{shorter} {rest}"));
    assert_ne!(forged, text);
    std::fs::write(&file, forged).unwrap();
    let bad = verify(&app).await;
    assert!(!bad.ok);
    assert!(bad.reason.contains("does not verify"), "{bad:?}");
    std::fs::write(&file, &text).unwrap();
    assert!(verify(&app).await.ok);
    // A server records the head when it stops.
    one_more_event(&app).await;
    let head = app.count("SELECT max(seq) FROM audit_events").await;
    app.shutdown().await;
    let last = std::fs::read_to_string(&file).unwrap();
    let last_seq: i64 = last
        .lines()
        .last()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(last_seq, head);
}
