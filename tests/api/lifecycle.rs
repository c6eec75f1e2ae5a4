//! Start-up and shutdown: health on shutdown and on database loss, and the embedded default
//! database driven through the real binary (start, token, data survives a restart, stop).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gridhub::grpc::pb;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::helpers::TestApp;

#[tokio::test]
async fn health_turns_not_serving_at_the_first_moment_of_shutdown() {
    let mut app = TestApp::spawn().await;
    let mut h = HealthClient::new(app.channel().await);
    let mut watch = h
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let running = app.app.take().unwrap();
    let stopping = tokio::spawn(running.shutdown());
    let next: HealthCheckResponse = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    stopping.await.unwrap();
    // The listener is gone afterwards.
    assert!(
        tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect()
            .await
            .is_err()
    );
    app.shutdown().await;
}

#[tokio::test]
async fn losing_the_database_means_not_serving_and_unavailable() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let admin = app.admin();
    let mut c = app.regions(Some(&admin)).await;
    c.get_region(pb::GetRegionRequest {
        code: "500110111201".into(),
    })
    .await
    .unwrap();
    gridhub::store::drop_database(&crate::helpers::server_url(), &app.db_name)
        .await
        .unwrap();
    let e = c
        .get_region(pb::GetRegionRequest {
            code: "500110111201".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        !e.message().contains("gridhub_test"),
        "no internals: {}",
        e.message()
    );
    let mut h = HealthClient::new(app.channel().await);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = h
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        if s.status() == ServingStatus::NotServing {
            break;
        }
        assert!(Instant::now() < deadline, "health never turned NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn gridhub(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gridhub"));
    c.arg("--data-dir").arg(data_dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("GRIDHUB_") || k == "DATABASE_URL" {
            c.env_remove(k);
        }
    }
    c
}

fn serve(data_dir: &std::path::Path, port: u16) -> Child {
    gridhub(data_dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn health(port: u16) -> Option<ServingStatus> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    let r = HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    Some(r.into_inner().status())
}

async fn wait_serving(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while health(port).await != Some(ServingStatus::Serving) {
        assert!(Instant::now() < deadline, "server never became SERVING");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn terminate(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type Client = pb::region_service_client::RegionServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        crate::helpers::Bearer,
    >,
>;

async fn client(port: u16, token: &str) -> Client {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::region_service_client::RegionServiceClient::with_interceptor(
        ch,
        crate::helpers::Bearer(Some(format!("Bearer {token}").parse().unwrap())),
    )
}

#[tokio::test]
async fn embedded_database_starts_with_the_demo_keeps_data_across_restarts_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut child = gridhub(&data)
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The demo prints a dev token and example calls.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut tx = Some(tx);
        // Read to the end, so the server never writes into a closed pipe.
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(t) = line.trim().strip_prefix("export TOKEN=")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(t.to_owned());
            }
        }
    });
    let demo_token = tokio::time::timeout(Duration::from_secs(90), rx)
        .await
        .expect("the demo prints a token")
        .unwrap();
    wait_serving(port).await;
    let mut c = client(port, &demo_token).await;
    let villages = c
        .list_regions(pb::ListRegionsRequest {
            parent_code: "500110111".into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(villages.regions.len(), 17);
    let grid = c
        .locate_grid(pb::LatLng {
            lat: 28.83,
            lng: 106.745,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grid.code, "500110111201001");

    // `token issue` with the same data directory makes tokens this server accepts.
    let out = gridhub(&data)
        .args([
            "token", "issue", "--sub", "t1", "--roles", "admin", "--region", "*", "--ttl", "10m",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut c = client(port, &token).await;
    let rec = pb::RegionRecord {
        code: "11".into(),
        name: "北京市".into(),
        level: pb::RegionLevel::Province as i32,
        ..Default::default()
    };
    let s = c
        .import_regions(tokio_stream::iter(vec![rec]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.created, 1);
    drop(c);
    terminate(child);
    assert!(
        !data.join("pg/postmaster.pid").exists(),
        "the private cluster is still running"
    );

    // Restart on the same data directory: the data is still there, the old token still works.
    let port = free_port();
    let child = serve(&data, port);
    wait_serving(port).await;
    let mut c = client(port, &token).await;
    assert_eq!(
        c.get_region(pb::GetRegionRequest { code: "11".into() })
            .await
            .unwrap()
            .into_inner()
            .name,
        "北京市"
    );
    assert_eq!(
        c.get_region(pb::GetRegionRequest {
            code: "500110111201".into()
        })
        .await
        .unwrap()
        .into_inner()
        .name,
        "马颈村村民委员会"
    );
    drop(c);
    terminate(child);
    assert!(!data.join("pg/postmaster.pid").exists());
}

/// Whether a postmaster runs from `pgdata` (its pid file names a live process).
fn postmaster_running(pgdata: &std::path::Path) -> bool {
    std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next().map(str::to_owned))
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{}", pid.trim())).exists())
}

#[tokio::test]
async fn a_cluster_adopted_after_a_crash_stops_with_the_server_that_adopted_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut crashed = serve(&data, port);
    wait_serving(port).await;
    // kill -9: the server dies, its cluster stays (as PostgreSQL does).
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    assert!(postmaster_running(&data.join("pg")));
    // A command of the CLI meanwhile uses the running cluster and leaves it running.
    let out = gridhub(&data).args(["migrate"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("embedded PostgreSQL stopped"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(postmaster_running(&data.join("pg")));
    // The restarted server adopts it, and stops it when it stops.
    let port = free_port();
    let child = serve(&data, port);
    wait_serving(port).await;
    terminate(child);
    assert!(
        !postmaster_running(&data.join("pg")),
        "the adopted cluster is still running"
    );
}
