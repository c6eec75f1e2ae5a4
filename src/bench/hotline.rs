//! `bench hotline`: `PushWorkOrder` at N concurrent clients for a while, next to a single-row
//! `INSERT … ON CONFLICT` baseline at the same concurrency; meanwhile handlers assign, sign and
//! reply to the new requests, and the outbox pushes every 签收 and 回复 to a local HTTP
//! receiver in the same process. Delivery latency runs from the update's time (taken inside
//! the transaction, just before commit) to its arrival at the receiver, on one clock.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_postgres::NoTls;

use super::ingest::{auth, process_cpu_seconds, rss_mb};
use crate::config::{HmacSecret, Settings};
use crate::grpc::pb;
use crate::grpc::pb::transition_service_request_request::Action;
use crate::store::DbUrl;

/// How `bench hotline` runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Concurrent PushWorkOrder clients.
    pub clients: usize,
    /// Concurrent handlers signing and replying.
    pub handlers: usize,
    /// Requests handled per second by all handlers together (0: unpaced).
    pub handle_rate: u32,
    /// Seconds of load.
    pub seconds: u64,
}

const SECRET: &[u8] = b"bench-hotline-signing-secret";
const DEPT: &str = "500110901-BMFW";

struct Latencies(Mutex<Vec<Duration>>);

impl Latencies {
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.0.lock().map(|v| v.clone()).unwrap_or_default();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v.sort_unstable();
        v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A receiver that checks signatures and records each update's latency once.
async fn receiver(
    lat: Arc<Latencies>,
    seen: Arc<Mutex<HashSet<String>>>,
    bad: Arc<AtomicUsize>,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (lat, seen, bad) = (lat.clone(), seen.clone(), bad.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (lat, seen, bad) = (lat.clone(), seen.clone(), bad.clone());
                    async move {
                        let header = |k: &str| {
                            req.headers()
                                .get(k)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let (ts, sig) =
                            (header("x-gridhub-timestamp"), header("x-gridhub-signature"));
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let now = Utc::now();
                        if sig != crate::outbox::signature(SECRET, ts.parse().unwrap_or(0), &body) {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                        let json: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let id = json["update_id"].as_str().unwrap_or_default().to_owned();
                        let at =
                            serde_json::from_value::<DateTime<Utc>>(json["occurred_at"].clone());
                        let first = seen.lock().map(|mut s| s.insert(id)).unwrap_or(false);
                        if first
                            && let Ok(at) = at
                            && let Ok(mut v) = lat.0.lock()
                        {
                            v.push((now - at).to_std().unwrap_or_default());
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"{}"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

pub async fn run(settings: &Settings, url: &DbUrl, plan: Plan) -> anyhow::Result<()> {
    super::seed_grids(url, 1000).await?;
    {
        let mut conn = crate::store::connect_one(url).await?;
        crate::store::departments::upsert(
            &mut conn,
            crate::store::departments::NewDepartment {
                code: DEPT,
                name: "便民服务中心",
                region_code: "500110901",
                kind: "service_centre",
                active: true,
            },
        )
        .await?;
    }
    let lat = Arc::new(Latencies(Mutex::new(Vec::new())));
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let bad = Arc::new(AtomicUsize::new(0));
    let rx = receiver(lat.clone(), seen.clone(), bad.clone()).await?;

    let (app, issuer) = super::hub(settings, url, |s| {
        s.db.pool_size = 24;
        s.hotline.endpoint = Some(format!("http://{rx}/12345"));
        s.hotline.secret = HmacSecret(SECRET.to_vec());
    })
    .await?;
    let hour = Duration::from_secs(3600);
    let hotline_token = issuer.issue("hotline", &["hotline".into()], "500110", hour)?;
    let clerk_token = issuer.issue("clerk", &["window_clerk".into()], "500110901", hour)?;
    let handler_token =
        issuer.issue_for_unit("handler", &["dept_handler".into()], "500110901", DEPT, hour)?;
    let endpoint = format!("http://{}", app.addr);
    let channel = tonic::transport::Endpoint::from_shared(endpoint)?
        .connect()
        .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx_req) = tokio::sync::mpsc::channel::<pb::ServiceRequest>(100_000);
    let rx_req = Arc::new(tokio::sync::Mutex::new(rx_req));
    let push_lat = Arc::new(Latencies(Mutex::new(Vec::new())));
    let cpu0 = process_cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..plan.clients {
        let mut hl = pb::hotline_service_client::HotlineServiceClient::with_interceptor(
            channel.clone(),
            auth(&hotline_token)?,
        );
        let (stop, tx, push_lat) = (stop.clone(), tx.clone(), push_lat.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let order = pb::WorkOrder {
                    order_no: format!("B{c:02}-{i:07}"),
                    version: 1,
                    kind: pb::RequestKind::Help as i32,
                    urgency: pb::Urgency::Normal as i32,
                    caller: Some(pb::Applicant {
                        name: "来电人".into(),
                        phone: format!("138{:08}", (c * 1_000_000 + i) % 100_000_000),
                        id_number: String::new(),
                    }),
                    content: "路灯不亮，请尽快维修".into(),
                    address: "镇0 村0".into(),
                    region_code: format!("500110901{:03}", 201 + i % 2),
                    ..Default::default()
                };
                let t = Instant::now();
                match hl.push_work_order(order).await {
                    Ok(r) => {
                        if let Ok(mut v) = push_lat.0.lock() {
                            v.push(t.elapsed());
                        }
                        n += 1;
                        if let Some(sr) = r.into_inner().request {
                            let _ = tx.try_send(sr);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "push failed"),
                }
            }
            n
        }));
    }
    drop(tx);
    let handled = Arc::new(AtomicUsize::new(0));
    let mut handlers = Vec::new();
    for _ in 0..plan.handlers {
        let mut clerk =
            pb::service_request_service_client::ServiceRequestServiceClient::with_interceptor(
                channel.clone(),
                auth(&clerk_token)?,
            );
        let mut handler =
            pb::service_request_service_client::ServiceRequestServiceClient::with_interceptor(
                channel.clone(),
                auth(&handler_token)?,
            );
        let (rx_req, handled, stop) = (rx_req.clone(), handled.clone(), stop.clone());
        // Each handler's share of the rate: one request per `period`.
        let period = (plan.handle_rate > 0)
            .then(|| Duration::from_secs_f64(plan.handlers as f64 / f64::from(plan.handle_rate)));
        handlers.push(tokio::spawn(async move {
            let mut next_at = tokio::time::Instant::now();
            loop {
                if let Some(p) = period {
                    // Paced handlers stop with the pushes (unpaced ones finish the queue).
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    next_at += p;
                    tokio::time::sleep_until(next_at).await;
                }
                let next = rx_req.lock().await.recv().await;
                let Some(sr) = next else { return };
                let step =
                    |sr: &pb::ServiceRequest, a: Action| pb::TransitionServiceRequestRequest {
                        id: sr.id.clone(),
                        action: a as i32,
                        expected_version: sr.version,
                        assignee: DEPT.into(),
                        comment: "已派人维修".into(),
                        ..Default::default()
                    };
                let Ok(sr) = clerk
                    .transition_service_request(step(&sr, Action::Assign))
                    .await
                else {
                    continue;
                };
                let Ok(sr) = handler
                    .transition_service_request(step(&sr.into_inner(), Action::Sign))
                    .await
                else {
                    continue;
                };
                if handler
                    .transition_service_request(step(&sr.into_inner(), Action::Reply))
                    .await
                    .is_ok()
                {
                    handled.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut peak_rss = 0.0f64;
    while started.elapsed() < Duration::from_secs(plan.seconds) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak_rss = peak_rss.max(rss_mb());
    }
    stop.store(true, Ordering::Relaxed);
    let mut pushed = 0;
    for t in tasks {
        pushed += t.await?;
    }
    let push_secs = started.elapsed().as_secs_f64();
    let push_cpu = process_cpu_seconds() - cpu0;
    // Handlers finish the queue (bounded), then the outbox drains.
    let drain = Instant::now();
    for h in handlers {
        let _ = tokio::time::timeout(Duration::from_secs(120), h).await;
    }
    let (client_db, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
    tokio::spawn(conn);
    loop {
        // Every committed update in the outbox (sealed into the chain) before counting.
        client_db
            .batch_execute("SELECT audit_seal(1000000, 2147483647)")
            .await?;
        let pending: i64 = client_db
            .query_one(
                "SELECT count(*) FROM hotline_outbox WHERE state <> 'DELIVERED'",
                &[],
            )
            .await?
            .get(0);
        if pending == 0 || drain.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(rss_mb());
    }
    let updates: i64 = client_db
        .query_one("SELECT count(*) FROM hotline_outbox", &[])
        .await?
        .get(0);
    let delivered: i64 = client_db
        .query_one(
            "SELECT count(*) FROM hotline_outbox WHERE state = 'DELIVERED'",
            &[],
        )
        .await?
        .get(0);
    let (first, last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = {
        let r = client_db
            .query_one(
                "SELECT min(delivered_at), max(delivered_at) FROM hotline_outbox",
                &[],
            )
            .await?;
        (r.get(0), r.get(1))
    };
    app.shutdown().await;

    // Baseline: single-row INSERT … ON CONFLICT of a similar row at the same concurrency.
    client_db
        .batch_execute(
            "CREATE TABLE bench_orders (order_no text PRIMARY KEY, version int, payload bytea, received_at timestamptz)",
        )
        .await?;
    let base_stop = Arc::new(AtomicBool::new(false));
    let base_lat = Arc::new(Latencies(Mutex::new(Vec::new())));
    let mut base = Vec::new();
    let base_start = Instant::now();
    for c in 0..plan.clients {
        let (cl, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
        tokio::spawn(conn);
        let (stop, lat) = (base_stop.clone(), base_lat.clone());
        base.push(tokio::spawn(async move {
            let Ok(st) = cl
                .prepare("INSERT INTO bench_orders VALUES ($1, 1, $2, now()) ON CONFLICT (order_no) DO NOTHING")
                .await
            else {
                return 0usize;
            };
            let payload = vec![7u8; 300];
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if cl.execute(&st, &[&format!("X{c:02}-{n:08}"), &payload]).await.is_ok() {
                    n += 1;
                    if let Ok(mut v) = lat.0.lock() {
                        v.push(t.elapsed());
                    }
                }
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_secs(plan.seconds.min(15))).await;
    base_stop.store(true, Ordering::Relaxed);
    let mut base_n = 0;
    for b in base {
        base_n += b.await?;
    }
    let base_secs = base_start.elapsed().as_secs_f64();

    let push_rate = pushed as f64 / push_secs;
    let base_rate = base_n as f64 / base_secs;
    println!(
        "bench hotline: {} PushWorkOrder clients for {} s; {} handlers assigning, signing and replying ({}; {} requests handled); {} updates, {} delivered, {} bad signatures",
        plan.clients,
        plan.seconds,
        plan.handlers,
        if plan.handle_rate > 0 {
            format!("paced to {} requests/s", plan.handle_rate)
        } else {
            "unpaced".to_owned()
        },
        handled.load(Ordering::Relaxed),
        updates,
        delivered,
        bad.load(Ordering::Relaxed)
    );
    println!("| path | per s | p50 | p99 | CPU-s / 1,000 (process) | ratio | target |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| PushWorkOrder, {} clients (work orders accepted) | {:.0} | {:.1} ms | {:.1} ms | {:.3} | {:.0} % | ≥ 2,000/s: {} |",
        plan.clients,
        push_rate,
        ms(push_lat.pct(0.5)),
        ms(push_lat.pct(0.99)),
        push_cpu / pushed.max(1) as f64 * 1000.0,
        push_rate / base_rate * 100.0,
        if push_rate >= 2000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "| single-row INSERT … ON CONFLICT, {} connections (baseline) | {:.0} | {:.1} ms | {:.1} ms | | 100 % | |",
        plan.clients,
        base_rate,
        ms(base_lat.pct(0.5)),
        ms(base_lat.pct(0.99)),
    );
    let span = match (first, last) {
        (Some(a), Some(b)) => (b - a)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64()
            .max(0.001),
        _ => 0.001,
    };
    let p99 = lat.pct(0.99);
    println!(
        "| outbox push, commit → receipt (all {} updates) | {:.0} delivered | {:.1} ms | {:.1} ms | | | p99 ≤ 1 s: {} |",
        delivered,
        delivered as f64 / span,
        ms(lat.pct(0.5)),
        ms(p99),
        if p99 <= Duration::from_secs(1) && delivered == updates {
            "met"
        } else {
            "NOT met"
        }
    );
    println!("peak RSS of this process (server, receiver and clients): {peak_rss:.0} MB");
    Ok(())
}
