//! Authentication and authorization: tokens, roles and region scope, denial as well as success.

use gridhub::auth::jwt::Claims;
use gridhub::grpc::pb;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::Code;

use crate::helpers::TestApp;

fn get(code: &str) -> pb::GetRegionRequest {
    pb::GetRegionRequest { code: code.into() }
}

#[tokio::test]
async fn missing_expired_forged_and_foreign_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let e = app
        .regions(None)
        .await
        .get_region(get("500110111201"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    let now = jsonwebtoken::get_current_timestamp();
    let claims = |exp: u64, aud: &str| Claims {
        sub: "x".into(),
        roles: vec!["admin".into()],
        region: "500110".into(),
        exp,
        iat: now,
        aud: aud.into(),
        unit: String::new(),
    };
    let sign = |c: &Claims, key: &[u8]| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            c,
            &EncodingKey::from_secret(key),
        )
        .unwrap()
    };

    let expired = sign(&claims(now - 600, "gridhub"), app.key.bytes());
    let forged = sign(
        &claims(now + 600, "gridhub"),
        b"not the server's secret, guessed by someone",
    );
    let wrong_aud = sign(&claims(now + 600, "another-system"), app.key.bytes());
    let none_alg = {
        // An unsigned token ("alg": "none") must never pass.
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            e.encode(r#"{"alg":"none","typ":"JWT"}"#),
            e.encode(serde_json::to_vec(&claims(now + 600, "gridhub")).unwrap())
        )
    };
    for (what, t) in [
        ("expired", expired),
        ("forged", forged),
        ("wrong audience", wrong_aud),
        ("alg none", none_alg),
        ("garbage", "abc.def.ghi".into()),
    ] {
        let e = app
            .regions(Some(&t))
            .await
            .get_region(get("500110111201"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{what}: {e:?}");
    }
    // The same claims, properly signed, pass.
    let good = sign(&claims(now + 600, "gridhub"), app.key.bytes());
    app.regions(Some(&good))
        .await
        .get_region(get("500110111201"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_grid_worker_of_majing_sees_its_village_and_not_datong() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let w = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let mut c = app.regions(Some(&w)).await;

    // Its own village, its grids and its workers.
    let own = c
        .get_region(get("500110111201"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.name, "马颈村村民委员会");
    let grids = c
        .list_regions(pb::ListRegionsRequest {
            parent_code: "500110111201".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        grids
            .regions
            .iter()
            .map(|r| r.code.as_str())
            .collect::<Vec<_>>(),
        ["500110111201001", "500110111201002"]
    );
    let ws = c
        .list_workers(pb::ListWorkersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ws.workers
            .iter()
            .map(|w| w.worker_id.as_str())
            .collect::<Vec<_>>(),
        ["W-MJ-001", "W-MJ-002"]
    );

    // 打通村 (500110111200) and the town above are denied.
    for code in ["500110111200", "500110111200001", "500110111"] {
        let e = c.get_region(get(code)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{code}");
    }
    let e = c
        .list_regions(pb::ListRegionsRequest {
            parent_code: "500110111200".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = c
        .list_workers(pb::ListWorkersRequest {
            region_code: "500110111200".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Listing "everything" only ever yields its own subtree.
    let all = c
        .list_regions(pb::ListRegionsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!all.regions.is_empty());
    assert!(
        all.regions
            .iter()
            .all(|r| r.code.starts_with("500110111201"))
    );
}

#[tokio::test]
async fn roles_are_checked_before_any_handler_runs() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let w = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let e = app
        .regions(Some(&w))
        .await
        .import_regions(tokio_stream::iter(crate::regions::fixture_records()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = app
        .audit(Some(&w))
        .await
        .verify_audit_chain(pb::VerifyAuditChainRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = app
        .regions(Some(&w))
        .await
        .upsert_worker(pb::UpsertWorkerRequest {
            worker: Some(pb::Worker {
                worker_id: "W-X".into(),
                name: "x".into(),
                region_code: "500110111201".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(
        app.count("SELECT count(*) FROM workers WHERE worker_id = 'W-X'")
            .await,
        0
    );
    // A token with no known role can read nothing that needs one.
    let nobody = app.token("n", &["visitor"], "500110111201");
    let e = app
        .audit(Some(&nobody))
        .await
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn health_needs_no_token() {
    // Reflection without a token is exercised by the Python end-to-end test, which builds
    // every message from it before sending any token.
    let app = TestApp::spawn().await;
    let mut h = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    let r = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: "gridhub.v1.RegionService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}
