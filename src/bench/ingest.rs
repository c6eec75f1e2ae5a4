//! `gridhub bench ingest`: report intake over real gRPC, in one process and one run, on one
//! fresh database with 100,000 grid polygons and the fixture taxonomy:
//!
//! 1. batch ingest: `SyncReports` with 1,000-report batches from 4 concurrent clients, each
//!    a worker's phone whose backlog lies in its own quarter of the map (durable commits,
//!    grid resolution, merging and audit included);
//! 2. its physical-limit baseline: the same rows `COPY`'d into a staging table, then
//!    `INSERT … SELECT … ON CONFLICT DO NOTHING` into a table identical to `reports`;
//! 3. single submits: `SubmitReport` from 64 concurrent clients, then, on the same server at
//!    the same concurrency, what the transport alone allows: the standard gRPC health check
//!    (no token, no database) and `GetReport` of reports just written (one authenticated read);
//! 4. its baseline: single-row `INSERT … ON CONFLICT` at the same concurrency.
//!
//! Each gRPC phase ends when its last answer has arrived and every audit event it caused is
//! sealed into the chain. It prints reports/s, latency percentiles, CPU-seconds per 1,000
//! reports (this process, which runs the server and the clients, and the whole machine, which
//! adds PostgreSQL), peak RSS of this process, and each ratio to its baseline.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::SinkExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::NoTls;

use super::{random_point, random_point_in, seed_grids, stats};
use crate::config::Settings;
use crate::grpc::convert::timestamp;
use crate::grpc::pb;
use crate::store::DbUrl;

/// What to run.
pub struct Plan {
    pub grids: usize,
    pub batches: usize,
    pub batch_clients: usize,
    pub single_clients: usize,
    pub seconds: u64,
}

/// The fixture's minor classes.
const CATEGORIES: [&str; 12] = [
    "0101", "0102", "0201", "0202", "0301", "0302", "0401", "0402", "0501", "0601", "0101", "0201",
];

/// A synthetic report: mostly random places, one in ten near one of 1,000 hotspots (so that
/// merging happens).
fn synthetic(
    rng: &mut StdRng,
    area: std::ops::Range<usize>,
    hotspots: &[((f64, f64), &'static str)],
) -> pb::Report {
    let (point, category) = if rng.random_bool(0.1) {
        let (p, c) = hotspots[rng.random_range(0..hotspots.len())];
        let near = crate::domain::merge::offset(
            p,
            rng.random_range(-20.0..20.0),
            rng.random_range(-20.0..20.0),
        );
        // Stay on the map: a hotspot in an edge grid must not send reports off every grid.
        (
            if super::on_map(near, area.end) {
                near
            } else {
                p
            },
            c,
        )
    } else {
        (
            random_point_in(rng, area),
            CATEGORIES[rng.random_range(0..CATEGORIES.len())],
        )
    };
    pb::Report {
        client_report_id: uuid::Uuid::new_v4().to_string(),
        source: pb::ReportSource::GridApp as i32,
        category_code: category.into(),
        title: "巡查发现问题".into(),
        description: "网格员巡查时发现，现场已拍照。".into(),
        location: Some(pb::LatLng {
            lat: point.0,
            lng: point.1,
        }),
        occurred_at: Some(timestamp(
            Utc::now() - chrono::Duration::minutes(rng.random_range(0..48 * 60)),
        )),
        reporter_id: "W-BENCH".into(),
        ..Default::default()
    }
}

/// CPU seconds this process has used (user and system).
pub(crate) fn process_cpu_seconds() -> f64 {
    cpu_seconds_of_stat(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// utime + stime of a `/proc/<pid>/stat` line: fields 14 and 15, in USER_HZ (100 per second
/// on Linux). Counted from field 3 (the state, right after the parenthesised command name,
/// which may hold spaces), they are the 12th and 13th.
fn cpu_seconds_of_stat(stat: &str) -> f64 {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / 100.0
}

fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system (idle iowait skipped) irq softirq steal
    (f.iter().take(3).sum::<f64>() + f.iter().skip(5).take(3).sum::<f64>()) / 100.0
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

pub(crate) fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Adds the bearer token to every call.
pub(crate) type Auth =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;

/// An interceptor that sends `token`.
pub(crate) fn auth(token: &str) -> anyhow::Result<Auth> {
    let header: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
    Ok(Box::new(move |mut r: tonic::Request<()>| {
        r.metadata_mut().insert("authorization", header.clone());
        Ok(r)
    }))
}
type Client = pb::report_service_client::ReportServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Auth>,
>;

/// A connection of its own to the server at `addr`.
async fn channel(addr: std::net::SocketAddr) -> anyhow::Result<tonic::transport::Channel> {
    Ok(
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await?,
    )
}

async fn client(addr: std::net::SocketAddr, token: &str) -> anyhow::Result<Client> {
    Ok(
        pb::report_service_client::ReportServiceClient::with_interceptor(
            channel(addr).await?,
            auth(token)?,
        )
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20),
    )
}

/// Runs the ingest benchmark on the migrated scratch database at `url`.
pub async fn run(settings: &Settings, url: &DbUrl, plan: Plan) -> anyhow::Result<()> {
    let t = Instant::now();
    seed_grids(url, plan.grids).await?;
    crate::import::import_categories(url, include_str!("../../fixtures/categories.csv"), "bench")
        .await?;
    println!(
        "bench ingest: seeded {} grid polygons and the taxonomy in {:.1?}",
        plan.grids,
        t.elapsed()
    );

    // A 1,000-report batch is about 0.3 MB; the default 4 MiB limit holds it.
    let (app, issuer) = super::hub(settings, url, |_| {}).await?;
    let token = issuer.issue(
        "bench",
        &["town_operator".into()],
        "500110",
        Duration::from_secs(3600),
    )?;

    // The same reports for the gRPC run and the COPY baseline.
    let mut rng = StdRng::seed_from_u64(7);
    // Each batch client is a worker's phone: its backlog lies in its own part of the map (one
    // band of rows per client), as a grid worker's reports lie in their own grids.
    let band = |c: usize| {
        let per = plan.grids / plan.batch_clients.max(1);
        c * per..(c + 1) * per
    };
    let hotspots_in = |rng: &mut StdRng,
                       area: std::ops::Range<usize>,
                       n: usize|
     -> Vec<((f64, f64), &'static str)> {
        (0..n)
            .map(|_| {
                (
                    random_point_in(rng, area.clone()),
                    CATEGORIES[rng.random_range(0..CATEGORIES.len())],
                )
            })
            .collect()
    };
    let band_hotspots: Vec<_> = (0..plan.batch_clients)
        .map(|c| hotspots_in(&mut rng, band(c), 250))
        .collect();
    let hotspots = hotspots_in(&mut rng, 0..plan.grids, 1000);
    let batches: Vec<Vec<pb::Report>> = (0..plan.batches * plan.batch_clients)
        .map(|i| {
            let c = i % plan.batch_clients;
            (0..1000)
                .map(|_| synthetic(&mut rng, band(c), &band_hotspots[c]))
                .collect()
        })
        .collect();
    let total = batches.len() * 1000;

    // Seals what the server's sealer has not yet: a phase ends when its events are in the
    // audit chain, not when the last answer arrives.
    let (drain, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
    tokio::spawn(conn);

    // 1. Batch ingest.
    let (cpu0, mcpu0) = (process_cpu_seconds(), machine_cpu_seconds());
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut per_client: Vec<Vec<Vec<pb::Report>>> =
        (0..plan.batch_clients).map(|_| Vec::new()).collect();
    for (i, b) in batches.iter().enumerate() {
        per_client[i % plan.batch_clients].push(b.clone());
    }
    let max_rss = std::sync::Arc::new(std::sync::Mutex::new(0.0f64));
    for mine in per_client {
        let mut c = client(app.addr, &token).await?;
        let max_rss = max_rss.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            for b in mine {
                let t = Instant::now();
                let r = c
                    .sync_reports(pb::SyncReportsRequest { reports: b })
                    .await?
                    .into_inner();
                latencies.push(t.elapsed());
                failed += r
                    .results
                    .iter()
                    .filter(|x| !matches!(x.result, Some(pb::sync_report_result::Result::Ok(_))))
                    .count();
                if let Ok(mut m) = max_rss.lock() {
                    *m = m.max(rss_mb());
                }
            }
            anyhow::Ok((latencies, failed))
        }));
    }
    let (mut lat, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (l, f) = t.await??;
        lat.extend(l);
        failed += f;
    }
    seal_all(&drain).await?;
    let wall = started.elapsed();
    let (cpu, mcpu) = (process_cpu_seconds() - cpu0, machine_cpu_seconds() - mcpu0);
    anyhow::ensure!(failed == 0, "{failed} reports were refused");
    let batch = stats(lat, 0, wall);
    let batch_rate = total as f64 / wall.as_secs_f64();
    let cases: i64 = drain
        .query_one("SELECT count(*) FROM cases", &[])
        .await?
        .get(0);

    // 2. COPY baseline over the same rows.
    let (pg, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
    tokio::spawn(conn);
    pg.batch_execute(
        "CREATE TABLE reports_copy (LIKE reports INCLUDING ALL);
         CREATE UNLOGGED TABLE reports_staging (LIKE reports INCLUDING DEFAULTS);",
    )
    .await?;
    let case_id = uuid::Uuid::now_v7();
    let mut csv = csv::Writer::from_writer(Vec::new());
    for r in batches.iter().flatten() {
        let l = r.location.unwrap_or_default();
        let occurred = r
            .occurred_at
            .as_ref()
            .and_then(crate::grpc::convert::from_timestamp)
            .unwrap_or_else(Utc::now)
            .to_rfc3339();
        csv.write_record([
            uuid::Uuid::now_v7().to_string().as_str(),
            r.client_report_id.as_str(),
            "\\x00",
            "1",
            r.category_code.as_str(),
            r.title.as_str(),
            r.description.as_str(),
            l.lat.to_string().as_str(),
            l.lng.to_string().as_str(),
            "500110901201001",
            occurred.as_str(),
            "bench",
            case_id.to_string().as_str(),
            "1",
            case_id.to_string().as_str(),
            "{}",
        ])?;
    }
    let csv = csv.into_inner()?;
    let (cpu0c, mcpu0c) = (process_cpu_seconds(), machine_cpu_seconds());
    let t = Instant::now();
    let moved = copy_then_insert(
        &pg,
        "COPY reports_staging (report_id, client_report_id, payload_hash, source, category_code, title, description, lat, lng, region_code, occurred_at, submitted_by, case_id, first_outcome, first_case_id, merge_reason) FROM STDIN (FORMAT csv)",
        &csv[..],
        "INSERT INTO reports_copy SELECT * FROM reports_staging ON CONFLICT DO NOTHING",
    )
    .await?;
    let copy_wall = t.elapsed();
    let (cpuc, mcpuc) = (
        process_cpu_seconds() - cpu0c,
        machine_cpu_seconds() - mcpu0c,
    );
    anyhow::ensure!(moved as usize == total, "baseline moved {moved} of {total}");
    let copy_rate = total as f64 / copy_wall.as_secs_f64();

    // 2b. The same load for every row the batches wrote: their reports, cases and audit
    // events, copied out and loaded again into identical tables (same indexes, no triggers,
    // no foreign keys). What the intake must write at the least, loaded at the physical limit.
    let floor = write_floor(url, &pg).await?;

    // 3. Single submits.
    let mut submitters = Vec::new();
    for k in 0..plan.single_clients {
        submitters.push(Submitter {
            client: client(app.addr, &token).await?,
            rng: StdRng::seed_from_u64(100 + k as u64),
            hotspots: hotspots.clone(),
            grids: plan.grids,
        });
    }
    let single = closed_loop(
        submitters,
        Duration::from_secs(plan.seconds),
        Some(&max_rss),
        Some(&drain),
    )
    .await?;
    let (cpus, mcpus) = (single.cpu, single.machine_cpu);
    let single = single.stats;

    // 3b. What the transport alone allows at the same concurrency, on the same server: the
    // standard health check (no token, no database), and `GetReport` of reports just written
    // (the token, the policy, a pooled connection, one indexed read, the answer).
    let mut checkers = Vec::new();
    for _ in 0..plan.single_clients {
        checkers.push(Checker(tonic_health::pb::health_client::HealthClient::new(
            channel(app.addr).await?,
        )));
    }
    let health = closed_loop(
        checkers,
        Duration::from_secs(plan.seconds),
        Some(&max_rss),
        None,
    )
    .await?;
    let ids: Vec<String> = drain
        .query(
            "SELECT report_id::text FROM reports ORDER BY random() LIMIT 10000",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let ids = std::sync::Arc::new(ids);
    let mut readers = Vec::new();
    for k in 0..plan.single_clients {
        readers.push(Reader {
            client: client(app.addr, &token).await?,
            ids: ids.clone(),
            next: k * 97,
        });
    }
    let read = closed_loop(
        readers,
        Duration::from_secs(plan.seconds),
        Some(&max_rss),
        None,
    )
    .await?;
    app.shutdown().await;

    // 4. Single-row INSERT … ON CONFLICT at the same concurrency.
    let mut inserters = Vec::new();
    for k in 0..plan.single_clients {
        let (client, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
        tokio::spawn(conn);
        inserters.push(Inserter {
            stmt: client.prepare(INSERT_ONE).await?,
            client,
            rng: StdRng::seed_from_u64(200 + k as u64),
            case_id: case_id.to_string(),
        });
    }
    let base = closed_loop(inserters, Duration::from_secs(plan.seconds), None, None).await?;
    let (cpub, mcpub) = (base.cpu, base.machine_cpu);
    let base = base.stats;

    let per_k = |cpu: f64, n: f64| cpu / n * 1000.0;
    println!(
        "\n{} reports in {} batches of 1,000 from {} clients; {} cases opened",
        total,
        batches.len(),
        plan.batch_clients,
        cases
    );
    println!("| path | reports/s | p50 | p99 | CPU-s/1,000 (process / machine) | ratio |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| SyncReports, 1,000-report batches, {} clients | {:.0} | {:.0} ms/batch | {:.0} ms/batch | {:.3} / {:.3} | {:.0} % |",
        plan.batch_clients,
        batch_rate,
        batch.p50.as_secs_f64() * 1e3,
        batch.p99.as_secs_f64() * 1e3,
        per_k(cpu, total as f64),
        per_k(mcpu, total as f64),
        batch_rate / copy_rate * 100.0
    );
    println!(
        "| COPY to staging + INSERT … SELECT … ON CONFLICT (baseline) | {:.0} | | | {:.3} / {:.3} | 100 % |",
        copy_rate,
        per_k(cpuc, total as f64),
        per_k(mcpuc, total as f64)
    );
    println!(
        "| COPY + INSERT … SELECT of every row the batches wrote ({} rows: reports, cases, audit events; same indexes, no triggers) | {:.0} | | | {:.3} / {:.3} | {:.0} % (the batches: {:.0} %) |",
        floor.rows,
        total as f64 / floor.wall.as_secs_f64(),
        per_k(floor.cpu, total as f64),
        per_k(floor.machine_cpu, total as f64),
        total as f64 / floor.wall.as_secs_f64() / copy_rate * 100.0,
        batch_rate * floor.wall.as_secs_f64() / total as f64 * 100.0
    );
    println!(
        "| SubmitReport, {} clients | {:.0} | {:.1} ms | {:.1} ms | {:.3} / {:.3} | {:.0} % |",
        plan.single_clients,
        single.per_sec,
        single.p50.as_secs_f64() * 1e3,
        single.p99.as_secs_f64() * 1e3,
        per_k(cpus, single.calls as f64),
        per_k(mcpus, single.calls as f64),
        single.per_sec / base.per_sec * 100.0
    );
    for (path, run) in [
        ("gRPC health Check (no token, no database)", &health),
        (
            "GetReport of a report just written (token, policy, one read)",
            &read,
        ),
    ] {
        println!(
            "| {path}, {} clients | {:.0} | {:.1} ms | {:.1} ms | {:.3} / {:.3} | {:.0} % |",
            plan.single_clients,
            run.stats.per_sec,
            run.stats.p50.as_secs_f64() * 1e3,
            run.stats.p99.as_secs_f64() * 1e3,
            per_k(run.cpu, run.stats.calls as f64),
            per_k(run.machine_cpu, run.stats.calls as f64),
            run.stats.per_sec / base.per_sec * 100.0
        );
    }
    println!(
        "| single-row INSERT … ON CONFLICT, {} connections (baseline) | {:.0} | {:.1} ms | {:.1} ms | {:.3} / {:.3} | 100 % |",
        plan.single_clients,
        base.per_sec,
        base.p50.as_secs_f64() * 1e3,
        base.p99.as_secs_f64() * 1e3,
        per_k(cpub, base.calls as f64),
        per_k(mcpub, base.calls as f64)
    );
    let sampled = max_rss.lock().map(|m| *m).unwrap_or(0.0);
    println!(
        "single-submit errors: {}; RSS of this process (server and all clients) during the gRPC runs: max sampled {:.0} MB, peak over the whole run {:.0} MB",
        single.errors,
        sampled,
        peak_rss_mb()
    );
    Ok(())
}

/// One client of a closed loop: sends its next call when the last is answered.
trait Caller: Send + 'static {
    type Error: std::fmt::Display + Send;
    fn call(&mut self) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send;
}

/// The single-row baseline's statement: a report row alone (no merge, no case, no audit).
const INSERT_ONE: &str = "INSERT INTO reports_copy (report_id, client_report_id, payload_hash, source, category_code, title, description, lat, lng, region_code, occurred_at, submitted_by, case_id, first_outcome, first_case_id, merge_reason)
                     VALUES ($1::text::uuid, $2::text::uuid, '\\x00', 1, $3, '巡查发现问题', '网格员巡查时发现，现场已拍照。', $4, $5, '500110901201001', now(), 'bench', $6::text::uuid, 1, $6::text::uuid, '{}')
                     ON CONFLICT DO NOTHING";

/// A connection of the single-row baseline, inserting reports anywhere on the map.
struct Inserter {
    client: tokio_postgres::Client,
    stmt: tokio_postgres::Statement,
    rng: StdRng,
    case_id: String,
}

impl Caller for Inserter {
    type Error = tokio_postgres::Error;
    async fn call(&mut self) -> Result<(), Self::Error> {
        let (la, ln) = random_point(&mut self.rng, 100_000);
        let ids = (
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::new_v4().to_string(),
        );
        self.client
            .execute(
                &self.stmt,
                &[&ids.0, &ids.1, &"0101", &la, &ln, &self.case_id],
            )
            .await
            .map(drop)
    }
}

/// A phone submitting reports anywhere on the map, one in ten near a hotspot.
struct Submitter {
    client: Client,
    rng: StdRng,
    hotspots: Vec<((f64, f64), &'static str)>,
    grids: usize,
}

impl Caller for Submitter {
    type Error = tonic::Status;
    async fn call(&mut self) -> Result<(), Self::Error> {
        let r = synthetic(&mut self.rng, 0..self.grids, &self.hotspots);
        self.client
            .submit_report(pb::SubmitReportRequest { report: Some(r) })
            .await
            .map(drop)
    }
}

/// The standard health check, as a load balancer sends it.
struct Checker(tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>);

impl Caller for Checker {
    type Error = tonic::Status;
    async fn call(&mut self) -> Result<(), Self::Error> {
        self.0
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .map(drop)
    }
}

/// Reads reports by id, going round a shared list.
struct Reader {
    client: Client,
    ids: std::sync::Arc<Vec<String>>,
    next: usize,
}

impl Caller for Reader {
    type Error = tonic::Status;
    async fn call(&mut self) -> Result<(), Self::Error> {
        self.next = (self.next + 1) % self.ids.len().max(1);
        let report_id = self.ids.get(self.next).cloned().unwrap_or_default();
        self.client
            .get_report(pb::GetReportRequest { report_id })
            .await
            .map(drop)
    }
}

/// A closed loop's calls and the CPU they took (this process; the whole machine).
struct Run {
    stats: super::Stats,
    cpu: f64,
    machine_cpu: f64,
}

/// Runs each caller in a loop of its own for `dur`; the latency of every answered call,
/// the failed ones counted (the first logged). With `max_rss`, samples the process's RSS into
/// it every 200 calls of each caller. With `seal`, the loop ends when the audit events its
/// calls caused are sealed into the chain.
async fn closed_loop<C: Caller>(
    callers: Vec<C>,
    dur: Duration,
    max_rss: Option<&std::sync::Arc<std::sync::Mutex<f64>>>,
    seal: Option<&tokio_postgres::Client>,
) -> anyhow::Result<Run> {
    let (cpu0, mcpu0) = (process_cpu_seconds(), machine_cpu_seconds());
    let started = Instant::now();
    let deadline = started + dur;
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|mut c| {
            let max_rss = max_rss.cloned();
            tokio::spawn(async move {
                let (mut lat, mut errors, mut calls) = (Vec::new(), 0usize, 0usize);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match c.call().await {
                        Ok(()) => lat.push(t.elapsed()),
                        Err(e) => {
                            if errors == 0 {
                                tracing::warn!(error = %e, "bench call failed");
                            }
                            errors += 1;
                        }
                    }
                    calls += 1;
                    if calls % 200 == 0
                        && let Some(Ok(mut m)) = max_rss.as_ref().map(|m| m.lock())
                    {
                        *m = m.max(rss_mb());
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    if let Some(c) = seal {
        seal_all(c).await?;
    }
    let wall = started.elapsed();
    Ok(Run {
        stats: stats(lat, errors, wall),
        cpu: process_cpu_seconds() - cpu0,
        machine_cpu: machine_cpu_seconds() - mcpu0,
    })
}

/// Seals every pending audit event into the chain.
async fn seal_all(c: &tokio_postgres::Client) -> anyhow::Result<()> {
    c.batch_execute("SELECT audit_seal(1000000, 2147483647)")
        .await?;
    Ok(())
}

/// The time to load a set of rows at the physical limit.
struct Floor {
    rows: u64,
    wall: Duration,
    cpu: f64,
    machine_cpu: f64,
}

/// Copies every row of the intake's tables out, then times loading them again into identical
/// tables (`LIKE … INCLUDING ALL`: the same indexes; no triggers or foreign keys) by `COPY`
/// into staging and `INSERT … SELECT … ON CONFLICT DO NOTHING`, as the baseline does, the
/// tables at once on a connection each.
async fn write_floor(url: &DbUrl, pg: &tokio_postgres::Client) -> anyhow::Result<Floor> {
    use futures::TryStreamExt;
    use tokio::io::AsyncWriteExt;
    // Events recorded but not yet sealed into the chain count too.
    seal_all(pg).await?;
    let mut dumps = Vec::new();
    for t in ["reports", "cases", "audit_events"] {
        // Generated columns are computed again on load, as on the first write.
        let columns: Vec<String> = pg
            .query(
                "SELECT quote_ident(column_name) FROM information_schema.columns
                  WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER'
                  ORDER BY ordinal_position",
                &[&t],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let columns = columns.join(", ");
        pg.batch_execute(&format!(
            "CREATE TABLE {t}_floor (LIKE {t} INCLUDING ALL);
             CREATE UNLOGGED TABLE {t}_floor_staging (LIKE {t} INCLUDING DEFAULTS);"
        ))
        .await?;
        let out = pg
            .copy_out(&format!("COPY {t} ({columns}) TO STDOUT (FORMAT binary)"))
            .await?;
        // To a file, not memory: the process's RSS is the server's figure.
        let path =
            std::env::temp_dir().join(format!("gridhub-floor-{}-{t}.bin", std::process::id()));
        let mut file = tokio::fs::File::create(&path).await?;
        futures::pin_mut!(out);
        while let Some(b) = out.try_next().await? {
            file.write_all(&b).await?;
        }
        file.flush().await?;
        dumps.push((t, columns, path));
    }
    // One connection per table, loading at once: both cores, as the intake's clients use them.
    let mut loaders = Vec::new();
    for _ in &dumps {
        let (c, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
        tokio::spawn(conn);
        loaders.push(c);
    }
    let (cpu0, mcpu0) = (process_cpu_seconds(), machine_cpu_seconds());
    let t0 = Instant::now();
    let loads = dumps.iter().zip(loaders).map(|((t, columns, path), c)| async move {
        copy_then_insert(
            &c,
            &format!("COPY {t}_floor_staging ({columns}) FROM STDIN (FORMAT binary)"),
            tokio::fs::File::open(path).await?,
            &format!(
                "INSERT INTO {t}_floor ({columns}) SELECT {columns} FROM {t}_floor_staging ON CONFLICT DO NOTHING"
            ),
        )
        .await
    });
    let rows: u64 = futures::future::try_join_all(loads)
        .await?
        .into_iter()
        .sum();
    for (_, _, path) in &dumps {
        let _ = std::fs::remove_file(path);
    }
    Ok(Floor {
        rows,
        wall: t0.elapsed(),
        cpu: process_cpu_seconds() - cpu0,
        machine_cpu: machine_cpu_seconds() - mcpu0,
    })
}

/// The baselines' load: `copy` (a `COPY … FROM STDIN`) fed from `data` in 1 MB chunks, then
/// `insert` (the `INSERT … SELECT` out of the staging table); returns the rows inserted.
async fn copy_then_insert(
    c: &tokio_postgres::Client,
    copy: &str,
    mut data: impl tokio::io::AsyncRead + Unpin,
    insert: &str,
) -> anyhow::Result<u64> {
    use tokio::io::AsyncReadExt;
    let sink = c.copy_in(copy).await?;
    futures::pin_mut!(sink);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = data.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        sink.send(bytes::Bytes::copy_from_slice(&buf[..n])).await?;
    }
    sink.finish().await?;
    Ok(c.execute(insert, &[]).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_is_user_plus_system_time() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime …
        let stat = "4242 (tokio rt) S 1 4242 4242 0 -1 4194560 900 0 3 0 250 50 7 9 20 0 12 0";
        assert_eq!(cpu_seconds_of_stat(stat), 3.0);
        assert_eq!(cpu_seconds_of_stat(""), 0.0);
    }
}
