//! Hardening: message size limit, load shedding, grpc-web, and hostile input that must neither
//! panic the server nor write anything.

use std::time::Duration;

use gridhub::grpc::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::helpers::TestApp;

#[tokio::test]
async fn messages_over_the_size_limit_are_refused() {
    let app = TestApp::spawn().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let big = pb::ImportGridsRequest {
        geojson: vec![b' '; 5 * 1024 * 1024],
        request_id: String::new(),
    };
    let e = app
        .regions(Some(&op))
        .await
        .import_grids(big)
        .await
        .unwrap_err();
    // tonic answers OUT_OF_RANGE for an oversized message (grpc-go says RESOURCE_EXHAUSTED).
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("4194304"), "{e:?}");
    // Just under the limit the message is decoded and judged on its content.
    let under = pb::ImportGridsRequest {
        geojson: vec![b' '; 4 * 1024 * 1024 - 64],
        request_id: String::new(),
    };
    let e = app
        .regions(Some(&op))
        .await
        .import_grids(under)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
}

#[tokio::test]
async fn beyond_the_concurrency_limit_new_rpcs_are_shed_at_once() {
    let app = TestApp::spawn_with(|s| s.limits.concurrency_limit = 1).await;
    let admin = app.token("nat-admin", &["admin"], "*");
    // A client stream kept open holds the only slot.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::RegionRecord>(1);
    let mut holder = app.regions(Some(&admin)).await;
    let held = tokio::spawn(async move {
        holder
            .import_regions(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let e = app
        .regions(Some(&admin))
        .await
        .get_region(pb::GetRegionRequest { code: "50".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("overloaded"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shed, not queued"
    );
    // Health checks are never shed.
    let mut h = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    h.check(tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    })
    .await
    .unwrap();
    // Once the slot is free, calls go through again.
    tx.send(pb::RegionRecord {
        code: "50".into(),
        name: "重庆市".into(),
        level: pb::RegionLevel::Province as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    drop(tx);
    assert_eq!(held.await.unwrap().unwrap().into_inner().created, 1);
    app.regions(Some(&admin))
        .await
        .get_region(pb::GetRegionRequest { code: "50".into() })
        .await
        .unwrap();
}

#[tokio::test]
async fn grpc_web_clients_are_served() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let token = app.admin();
    // GetRegion over HTTP/1.1 with the grpc-web wire format, as a browser would send it.
    let body = prost::Message::encode_to_vec(&pb::GetRegionRequest {
        code: "500110111201".into(),
    });
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /gridhub.v1.RegionService/GetRegion HTTP/1.1\r\nhost: {}\r\ncontent-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        app.addr,
        frame.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&frame).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("application/grpc-web"), "{text}");
    assert!(text.contains("马颈村村民委员会"), "{text}");
    assert!(text.contains("grpc-status:0"), "{text}");
}

#[tokio::test]
async fn hostile_input_gets_clear_errors_and_never_a_panic() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = app.token("op", &["town_operator", "admin"], "500110111");
    let mut c = app.regions(Some(&op)).await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nasty: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, 0x01],
        deep.into_bytes(),
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"code":"５００１１０１１１２０１００１"},"geometry":{"type":"Polygon","coordinates":[[[1e400,1],[2,2],[3,3],[1e400,1]]]}}]}"#.as_bytes().to_vec(),
        br#"{"type":"FeatureCollection","features":[null, 1, "x", {"type":"Feature","geometry":null,"properties":[]}]}"#.to_vec(),
        br#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"code":"500110111201001","name":"x","parent_code":"500110111201"},"geometry":{"type":"MultiPolygon","coordinates":[[[[106.6,28.9],[106.6,28.9],[106.6,28.9],[106.6,28.9]]]]}}]}"#.to_vec(),
    ];
    let before = app.count("SELECT count(*) FROM regions").await;
    for (i, g) in nasty.into_iter().enumerate() {
        let e = c
            .import_grids(pb::ImportGridsRequest {
                geojson: g,
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "input {i}: {e:?}");
    }
    for code in [
        "",
        "٥٠٠١١٠",
        "50011011120１",
        "500110111201001002003",
        "'; DROP TABLE regions; --",
        "\u{0}",
    ] {
        let e = c
            .get_region(pb::GetRegionRequest { code: code.into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{code:?}");
    }
    for (lat, lng) in [
        (f64::INFINITY, 0.0),
        (f64::NAN, f64::NAN),
        (-90.0000001, 180.0000001),
    ] {
        let e = c.locate_grid(pb::LatLng { lat, lng }).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
    }
    assert_eq!(app.count("SELECT count(*) FROM regions").await, before);
    // Still serving after all of it.
    c.get_region(pb::GetRegionRequest {
        code: "500110111201".into(),
    })
    .await
    .unwrap();
}
