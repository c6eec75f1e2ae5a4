//! Benchmarks, each run in one process on a fresh scratch database next to its
//! physical-limit baseline (see the README for results and how to reproduce):
//!
//! - `bench import --from DIR`: the national list through the `import regions` path versus
//!   a plain `COPY` of the same rows into an identical table.
//! - `bench locate`: `LocateGrid` over real gRPC at N concurrent clients over 100,000
//!   synthetic grid polygons, versus the same PostGIS query sent directly over N
//!   connections.
//! - `bench ingest`: `SyncReports` batches and single `SubmitReport`s (see [`ingest`]).
//! - `bench fanout` and `bench dashboard`: the live feed and the dashboard (see
//!   [`command_centre`]).
//! - `bench hotline`: PushWorkOrder throughput and the outbox's push latency (see [`hotline`]).
//! - `bench mediation`: mediation statistics and the blind-index look-up (see [`mediation`]).

mod command_centre;
mod hotline;
mod ingest;
mod mediation;
mod transitions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::SinkExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::NoTls;

use crate::config::{JwtKey, Settings};
use crate::crypto::SecretKey;
use crate::database::Database;
use crate::domain::geojson::GridFeature;
use crate::domain::region::RegionCode;
use crate::grpc::pb;
use crate::startup::App;
use crate::store::regions::{self, RegionInput};
use crate::store::{self, DbUrl};

/// `gridhub bench …`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Import the national list versus a plain COPY.
    Import {
        /// china-division directory.
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// LocateGrid latency over synthetic grids.
    Locate {
        /// Number of grid polygons.
        #[arg(long, default_value_t = 100_000)]
        grids: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
    },
    /// Report intake: SyncReports batches and single SubmitReports versus COPY and single-row INSERT.
    Ingest {
        /// Number of grid polygons.
        #[arg(long, default_value_t = 100_000)]
        grids: usize,
        /// Batches of 1,000 reports per batch client.
        #[arg(long, default_value_t = 20)]
        batches: usize,
        /// Concurrent batch clients.
        #[arg(long, default_value_t = 4)]
        batch_clients: usize,
        /// Concurrent single-submit clients.
        #[arg(long, default_value_t = 64)]
        single_clients: usize,
        /// Seconds of single submits (and of the single-row baseline).
        #[arg(long, default_value_t = 15)]
        seconds: u64,
    },
    /// WatchCases fan-out: many subscribers while reports arrive at a steady rate.
    Fanout {
        /// Concurrent WatchCases subscribers.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// HTTP/2 connections they share.
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Case events (new reports) per second.
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Seconds of load.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Every subscriber watches the whole county (else each one village).
        #[arg(long)]
        county_wide: bool,
    },
    /// PushWorkOrder throughput and the 12345 outbox's commit-to-receipt latency.
    Hotline {
        /// Concurrent PushWorkOrder clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Concurrent handlers assigning, signing and replying (each reply and sign-for is an update).
        #[arg(long, default_value_t = 8)]
        handlers: usize,
        /// Requests the handlers take through 分办, 签收 and 回复 per second, together (each
        /// makes two updates for 12345); 0: as fast as they can.
        #[arg(long, default_value_t = 100)]
        handle_rate: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// GetMediationStats for a county and the blind-index look-up of a person's disputes.
    Mediation {
        /// Mediation cases in the county.
        #[arg(long, default_value_t = 200_000)]
        cases: usize,
        /// Distinct persons among their parties.
        #[arg(long, default_value_t = 100_000)]
        persons: usize,
        /// Stats calls (and ten times as many look-ups).
        #[arg(long, default_value_t = 200)]
        calls: usize,
    },
    /// TransitionCase throughput: 立案 and 派遣 of many cases by concurrent clients.
    Transitions {
        /// Reports made first (most become cases of their own).
        #[arg(long, default_value_t = 20_000)]
        cases: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
    },
    /// GetDashboard for a town over millions of cases versus a plain GROUP BY.
    Dashboard {
        /// Cases in the county.
        #[arg(long, default_value_t = 2_000_000)]
        cases: usize,
        /// Reports per case.
        #[arg(long, default_value_t = 5)]
        reports_per_case: usize,
        /// Calls per measured range.
        #[arg(long, default_value_t = 200)]
        calls: usize,
    },
}

/// Runs a benchmark.
pub async fn run(settings: &Settings, cmd: BenchCommand) -> anyhow::Result<()> {
    let db = Database::start(settings).await?;
    let name = format!("gridhub_bench_{}", uuid::Uuid::new_v4().simple());
    let url = store::create_database(&db.url, &name, None).await?;
    store::migrate(&url).await?;
    let result = match cmd {
        BenchCommand::Import { from } => import(&url, &from).await,
        BenchCommand::Locate {
            grids,
            clients,
            seconds,
        } => locate(settings, &url, grids, clients, Duration::from_secs(seconds)).await,
        BenchCommand::Ingest {
            grids,
            batches,
            batch_clients,
            single_clients,
            seconds,
        } => {
            ingest::run(
                settings,
                &url,
                ingest::Plan {
                    grids,
                    batches,
                    batch_clients,
                    single_clients,
                    seconds,
                },
            )
            .await
        }
        BenchCommand::Fanout {
            subscribers,
            connections,
            rate,
            seconds,
            county_wide,
        } => {
            command_centre::fanout(
                settings,
                &url,
                command_centre::FanoutPlan {
                    subscribers,
                    connections,
                    rate,
                    seconds,
                    county_wide,
                },
            )
            .await
        }
        BenchCommand::Hotline {
            clients,
            handlers,
            handle_rate,
            seconds,
        } => {
            hotline::run(
                settings,
                &url,
                hotline::Plan {
                    clients,
                    handlers,
                    handle_rate,
                    seconds,
                },
            )
            .await
        }
        BenchCommand::Mediation {
            cases,
            persons,
            calls,
        } => {
            mediation::run(
                settings,
                &url,
                mediation::Plan {
                    cases,
                    persons,
                    calls,
                },
            )
            .await
        }
        BenchCommand::Transitions { cases, clients } => {
            transitions::run(settings, &url, transitions::Plan { cases, clients }).await
        }
        BenchCommand::Dashboard {
            cases,
            reports_per_case,
            calls,
        } => {
            command_centre::dashboard(
                settings,
                &url,
                command_centre::DashboardPlan {
                    cases,
                    reports_per_case,
                    calls,
                },
            )
            .await
        }
    };
    if std::env::var_os("GRIDHUB_BENCH_KEEP").is_some() {
        eprintln!("kept the scratch database {name} (GRIDHUB_BENCH_KEEP)");
    } else {
        store::drop_database(&db.url, &name).await?;
    }
    db.close();
    result
}

async fn import(url: &DbUrl, dir: &std::path::Path) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let rows = crate::import::read_dir(dir)?;
    let parse = t0.elapsed();
    let n = rows.len();
    let csv = copy_csv(&rows);
    let t1 = Instant::now();
    let (counts, rejected) = crate::import::import_rows(url, rows, false).await?;
    let db_time = t1.elapsed();
    let total = t0.elapsed();
    anyhow::ensure!(
        counts.created as usize == n && rejected == 0,
        "import incomplete: {counts:?}, {rejected} rejected"
    );

    let (client, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute("CREATE TABLE regions_copy (LIKE regions INCLUDING ALL)")
        .await?;
    let t2 = Instant::now();
    let sink = client.copy_in("COPY regions_copy (code, name, level, parent_code, fallback_owner) FROM STDIN (FORMAT csv, FORCE_NOT_NULL (fallback_owner))").await?;
    futures::pin_mut!(sink);
    for chunk in csv.chunks(1 << 20) {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await?;
    }
    let copied = sink.finish().await?;
    let copy_time = t2.elapsed();
    anyhow::ensure!(copied as usize == n, "COPY loaded {copied} of {n}");

    println!("bench import: {n} regions");
    println!("| path | time | regions/s | ratio to COPY |");
    println!("|---|---|---|---|");
    let row = |name: &str, t: Duration| {
        println!(
            "| {name} | {:.2} s | {:.0} | {:.2}× |",
            t.as_secs_f64(),
            n as f64 / t.as_secs_f64(),
            t.as_secs_f64() / copy_time.as_secs_f64()
        )
    };
    row("gridhub import regions (parse + import)", total);
    row("  of which parsing CSV/gzip", parse);
    row("  of which database import", db_time);
    row("COPY into identical table (baseline)", copy_time);
    Ok(())
}

fn copy_csv(rows: &[RegionInput]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        let level = r.level.to_string();
        let _ = w.write_record([
            r.code.as_str(),
            r.name.as_str(),
            level.as_str(),
            r.parent_code.as_deref().unwrap_or(""),
            "",
        ]);
    }
    w.into_inner().unwrap_or_default()
}

/// Cell size of the synthetic grid map, degrees (about 100 m).
const CELL: f64 = 0.001;
const ORIGIN: (f64, f64) = (28.5, 106.5);
const COLS: usize = 400;

/// Synthetic hierarchy: county 500110, towns 500110901…, 20 villages per town, 500 grids per
/// village, laid out as square cells `COLS` wide.
pub(crate) async fn seed_grids(url: &DbUrl, n: usize) -> anyhow::Result<()> {
    let mut conn = store::connect_one(url).await?;
    let mut rows = vec![
        RegionInput {
            code: "50".into(),
            name: "重庆市".into(),
            level: 1,
            parent_code: None,
            fallback_owner: String::new(),
        },
        RegionInput {
            code: "5001".into(),
            name: "市辖区".into(),
            level: 2,
            parent_code: Some("50".into()),
            fallback_owner: String::new(),
        },
        RegionInput {
            code: "500110".into(),
            name: "綦江区".into(),
            level: 3,
            parent_code: Some("5001".into()),
            fallback_owner: String::new(),
        },
    ];
    let villages = n.div_ceil(500);
    for v in 0..villages {
        let town = format!("500110{:03}", 901 + v / 20);
        if v % 20 == 0 {
            rows.push(RegionInput {
                code: town.clone(),
                name: format!("镇{}", v / 20),
                level: 4,
                parent_code: Some("500110".into()),
                fallback_owner: String::new(),
            });
        }
        rows.push(RegionInput {
            code: format!("{town}{:03}", 201 + v % 20),
            name: format!("村{v}"),
            level: 5,
            parent_code: Some(town),
            fallback_owner: String::new(),
        });
    }
    let indexed = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i as u64, r))
        .collect();
    regions::import(&mut conn, indexed, |_| {}).await?;
    let mut batch = Vec::with_capacity(5000);
    for k in 0..n {
        let v = k / 500;
        let village = format!("500110{:03}{:03}", 901 + v / 20, 201 + v % 20);
        let (lat, lng) = (
            ORIGIN.0 + (k / COLS) as f64 * CELL,
            ORIGIN.1 + (k % COLS) as f64 * CELL,
        );
        batch.push(GridFeature {
            index: k,
            code: RegionCode::parse(&format!("{village}{:03}", k % 500 + 1))?,
            name: format!("网格{k}"),
            parent_code: RegionCode::parse(&village)?,
            fallback_owner: String::new(),
            geometry: crate::demo::square(lat, lng, CELL),
        });
        if batch.len() == 5000 || k + 1 == n {
            regions::upsert_grids(&mut conn, &batch).await?;
            batch.clear();
        }
    }
    use diesel_async::RunQueryDsl;
    diesel::sql_query("ANALYZE regions")
        .execute(&mut conn)
        .await?;
    Ok(())
}

pub(crate) fn random_point(rng: &mut StdRng, n: usize) -> (f64, f64) {
    random_point_in(rng, 0..n)
}

/// Whether `p` lies on the synthetic map of `n` grids.
pub(crate) fn on_map(p: (f64, f64), n: usize) -> bool {
    let rows = n.div_ceil(COLS) as f64;
    (ORIGIN.0..ORIGIN.0 + rows * CELL).contains(&p.0)
        && (ORIGIN.1..ORIGIN.1 + COLS as f64 * CELL).contains(&p.1)
}

/// A random point inside one of the synthetic grids numbered `cells` (row-major, `COLS` wide).
pub(crate) fn random_point_in(rng: &mut StdRng, cells: std::ops::Range<usize>) -> (f64, f64) {
    let k = rng.random_range(cells);
    let (lat, lng) = (
        ORIGIN.0 + (k / COLS) as f64 * CELL,
        ORIGIN.1 + (k % COLS) as f64 * CELL,
    );
    (
        lat + rng.random_range(0.05..0.95) * CELL,
        lng + rng.random_range(0.05..0.95) * CELL,
    )
}

/// A hub on a bench's scratch database: a free port, a signing key of its own (tokens from
/// the returned issuer), `adjust` applied to the settings first; serving when returned.
pub(crate) async fn hub(
    settings: &Settings,
    url: &DbUrl,
    adjust: impl FnOnce(&mut Settings),
) -> anyhow::Result<(App, crate::auth::jwt::Issuer)> {
    let key = crate::crypto::SecretKey::generate();
    let mut s = settings.clone();
    s.listen = "127.0.0.1:0".parse()?;
    s.jwt_key = crate::config::JwtKey::Hs256(key.clone());
    s.db.pool_size = 16;
    adjust(&mut s);
    let mut app = App::bind(&s, url).await?;
    app.ready().await;
    Ok((app, crate::auth::jwt::Issuer::hs256(&key, &s.jwt_audience)))
}

pub(crate) struct Stats {
    pub(crate) calls: usize,
    pub(crate) errors: usize,
    pub(crate) p50: Duration,
    pub(crate) p95: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
    pub(crate) per_sec: f64,
}

pub(crate) fn stats(mut lat: Vec<Duration>, errors: usize, wall: Duration) -> Stats {
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Stats {
        calls: lat.len(),
        errors,
        p50: pct(0.50),
        p95: pct(0.95),
        p99: pct(0.99),
        max: lat.last().copied().unwrap_or_default(),
        per_sec: lat.len() as f64 / wall.as_secs_f64(),
    }
}

async fn locate(
    settings: &Settings,
    url: &DbUrl,
    n: usize,
    clients: usize,
    dur: Duration,
) -> anyhow::Result<()> {
    let t = Instant::now();
    seed_grids(url, n).await?;
    println!(
        "bench locate: seeded {n} grid polygons in {:.1?}",
        t.elapsed()
    );

    // The server, in this process, on a free port, with its own key.
    let key = SecretKey::generate();
    let mut s = settings.clone();
    s.listen = "127.0.0.1:0".parse()?;
    s.jwt_key = JwtKey::Hs256(key.clone());
    s.db.pool_size = clients.max(4);
    let mut app = App::bind(&s, url).await?;
    app.ready().await;
    let token = crate::auth::jwt::Issuer::hs256(&key, &s.jwt_audience).issue(
        "bench",
        &["town_operator".into()],
        "500110",
        Duration::from_secs(3600),
    )?;
    let endpoint = format!("http://{}", app.addr);

    // gRPC clients.
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())?
            .connect()
            .await?;
        let header: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
        let mut client = pb::region_service_client::RegionServiceClient::with_interceptor(
            channel,
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", header.clone());
                Ok(r)
            },
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(c as u64);
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let (la, ln) = random_point(&mut rng, n);
                let t = Instant::now();
                match client.locate_grid(pb::LatLng { lat: la, lng: ln }).await {
                    Ok(_) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let started = Instant::now();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    let grpc = stats(all, errors, started.elapsed());
    app.shutdown().await;

    // Baseline: the same query straight to PostgreSQL over `clients` connections.
    let sql = Arc::new(
        "SELECT code FROM regions WHERE boundary IS NOT NULL AND ST_Covers(boundary, ST_SetSRID(ST_MakePoint($1, $2), 4326)) AND level >= 6 AND code LIKE $3 ORDER BY level DESC, ST_Area(boundary), code LIMIT 1".to_owned(),
    );
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, conn) = tokio_postgres::connect(url.expose(), NoTls)
            .await
            .context("baseline connect")?;
        tokio::spawn(conn);
        let sql = sql.clone();
        tasks.push(tokio::spawn(async move {
            let stmt = client.prepare(&sql).await?;
            let mut rng = StdRng::seed_from_u64(1000 + c as u64);
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let (la, ln) = random_point(&mut rng, n);
                let t = Instant::now();
                match client.query_opt(&stmt, &[&ln, &la, &"500110%"]).await {
                    Ok(Some(_)) => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            Ok::<_, tokio_postgres::Error>((lat, errors))
        }));
    }
    let started = Instant::now();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await??;
        all.extend(l);
        errors += e;
    }
    let base = stats(all, errors, started.elapsed());

    println!(
        "LocateGrid, {clients} concurrent clients, {n} grids, {}s each:",
        dur.as_secs()
    );
    println!("| path | calls | errors | calls/s | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for (name, s) in [
        ("gRPC LocateGrid (auth, scope, pool, proto)", &grpc),
        ("direct SQL, same query (baseline)", &base),
    ] {
        println!(
            "| {name} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
            s.calls,
            s.errors,
            s.per_sec,
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3,
            s.max.as_secs_f64() * 1e3
        );
    }
    println!(
        "throughput ratio gRPC/baseline: {:.2}; p99 target ≤ 5 ms: {}",
        grpc.per_sec / base.per_sec,
        if grpc.p99 <= Duration::from_millis(5) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
