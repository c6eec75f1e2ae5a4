//! Benchmarks of the command centre.
//!
//! - `bench fanout`: N concurrent `WatchCases` subscribers while reports arrive at a steady
//!   rate (each report is a CREATED event); delivery latency is measured from the event's
//!   commit timestamp (set just before commit) to its arrival at the subscriber, in the same
//!   process and clock. The physical floor is the commit itself: the NOTIFY wake-up, one read of
//!   the new events and the fan-out come on top.
//! - `bench dashboard`: a county with millions of cases (and their reports) generated in SQL
//!   (older than 30 days: closed or void; recent: every status, overdue where past the deadline);
//!   `GetDashboard` for one town over gRPC versus the same figures computed by a plain
//!   `GROUP BY` over `cases` in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::NoTls;

use super::ingest::rss_mb;
use super::seed_grids;
use crate::auth::jwt::Issuer;
use crate::config::{JwtKey, Settings};
use crate::crypto::SecretKey;
use crate::grpc::convert::{from_timestamp, timestamp};
use crate::grpc::pb;
use crate::startup::App;
use crate::store::DbUrl;

/// Latency histogram: 100 µs buckets up to 30 s, shared by all subscribers.
struct Histogram {
    buckets: Vec<AtomicU64>,
}

const BUCKET_US: u64 = 100;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: (0..300_000).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn record(&self, d: Duration) {
        let i = ((d.as_micros() as u64) / BUCKET_US).min(self.buckets.len() as u64 - 1);
        self.buckets[i as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    fn percentile(&self, p: f64) -> Duration {
        let total = self.count();
        let want = ((total as f64) * p).ceil() as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= want.max(1) {
                return Duration::from_micros((i as u64 + 1) * BUCKET_US);
            }
        }
        Duration::from_micros(self.buckets.len() as u64 * BUCKET_US)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// How `bench fanout` runs.
#[derive(Debug, Clone)]
pub struct FanoutPlan {
    pub subscribers: usize,
    pub connections: usize,
    pub rate: u64,
    pub seconds: u64,
    /// Subscribers watch the whole county (every event to every subscriber) rather than one
    /// village each.
    pub county_wide: bool,
}

/// Grids of the synthetic map used by the fan-out run (2 towns, 40 villages).
const FANOUT_GRIDS: usize = 20_000;

pub async fn fanout(settings: &Settings, url: &DbUrl, plan: FanoutPlan) -> anyhow::Result<()> {
    seed_grids(url, FANOUT_GRIDS).await?;
    let (app, issuer) = super::hub(settings, url, |_| {}).await?;
    let endpoint = format!("http://{}", app.addr);
    let villages: Vec<String> = (0..FANOUT_GRIDS.div_ceil(500))
        .map(|v| format!("500110{:03}{:03}", 901 + v / 20, 201 + v % 20))
        .collect();

    // Subscribers, spread over `connections` HTTP/2 connections.
    let hist = Arc::new(Histogram::new());
    let received = Arc::new(AtomicUsize::new(0));
    let mut channels = Vec::new();
    for _ in 0..plan.connections.max(1) {
        channels.push(
            tonic::transport::Endpoint::from_shared(endpoint.clone())?
                .connect()
                .await?,
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut subs = Vec::new();
    let opened = Instant::now();
    for i in 0..plan.subscribers {
        let region = if plan.county_wide {
            "500110".to_owned()
        } else {
            villages[i % villages.len()].clone()
        };
        let token = issuer.issue(
            &format!("watcher-{i}"),
            &["town_operator".into()],
            &region,
            Duration::from_secs(3600),
        )?;
        let header: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
        let mut client = pb::case_service_client::CaseServiceClient::with_interceptor(
            channels[i % channels.len()].clone(),
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", header.clone());
                Ok(r)
            },
        );
        let mut stream = client
            .watch_cases(pb::WatchCasesRequest::default())
            .await?
            .into_inner();
        let (hist, received, mut stop) = (hist.clone(), received.clone(), stop_rx.clone());
        subs.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    m = stream.message() => match m {
                        Ok(Some(e)) => {
                            let now = Utc::now();
                            if let Some(t) = e.occurred_at.as_ref().and_then(from_timestamp) {
                                hist.record((now - t).to_std().unwrap_or_default());
                            }
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => return,
                    },
                }
            }
        }));
    }
    println!(
        "bench fanout: {} subscribers ({}) on {} connections opened in {:.1?}",
        plan.subscribers,
        if plan.county_wide {
            "each watching the whole county"
        } else {
            "each watching one of 40 villages"
        },
        plan.connections,
        opened.elapsed()
    );

    // Producers: reports at `rate` per second, spread evenly over the map.
    let producer_token = issuer.issue(
        "producer",
        &["town_operator".into()],
        "500110",
        Duration::from_secs(3600),
    )?;
    let producers = 4u64;
    let per = plan.rate.div_ceil(producers);
    let deadline = Instant::now() + Duration::from_secs(plan.seconds);
    let sent = Arc::new(AtomicUsize::new(0));
    let max_rss = Arc::new(std::sync::Mutex::new(rss_mb()));
    let sampler = {
        let (max_rss, mut stop) = (max_rss.clone(), stop_rx.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        if let Ok(mut m) = max_rss.lock() { *m = m.max(rss_mb()); }
                    }
                }
            }
        })
    };
    let cpu0 = super::ingest::process_cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let header: tonic::metadata::MetadataValue<_> =
            format!("Bearer {producer_token}").parse()?;
        let mut client = pb::report_service_client::ReportServiceClient::with_interceptor(
            tonic::transport::Endpoint::from_shared(endpoint.clone())?
                .connect()
                .await?,
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", header.clone());
                Ok(r)
            },
        );
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(p);
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while Instant::now() < deadline {
                tick.tick().await;
                let (lat, lng) = super::random_point(&mut rng, FANOUT_GRIDS);
                let r = pb::Report {
                    client_report_id: uuid::Uuid::new_v4().to_string(),
                    source: pb::ReportSource::GridApp as i32,
                    category_code: "0101".into(),
                    title: "暴露垃圾".into(),
                    location: Some(pb::LatLng { lat, lng }),
                    occurred_at: Some(timestamp(Utc::now())),
                    ..Default::default()
                };
                if client
                    .submit_report(pb::SubmitReportRequest { report: Some(r) })
                    .await
                    .is_ok()
                {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let produced = started.elapsed();
    let sent = sent.load(Ordering::Relaxed);
    // Deliveries owed: each report's event goes to the subscribers of its village (or all).
    let (db, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
    tokio::spawn(conn);
    let mut expected = 0usize;
    for row in db
        .query(
            "SELECT substr(region_code, 1, 12), count(*) FROM reports GROUP BY 1",
            &[],
        )
        .await?
    {
        let (village, n): (String, i64) = (row.get(0), row.get(1));
        let watchers = if plan.county_wide {
            plan.subscribers
        } else {
            let idx = villages
                .iter()
                .position(|v| *v == village)
                .unwrap_or(usize::MAX);
            (0..plan.subscribers)
                .filter(|i| i % villages.len() == idx)
                .count()
        };
        expected += n as usize * watchers;
    }
    // Let the last events arrive.
    let settle = Instant::now();
    while received.load(Ordering::Relaxed) < expected && settle.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = super::ingest::process_cpu_seconds() - cpu0;
    let _ = stop_tx.send(true);
    let _ = sampler.await;
    for s in subs {
        s.abort();
    }
    app.shutdown().await;

    let delivered = received.load(Ordering::Relaxed);
    let peak = max_rss.lock().map(|m| *m).unwrap_or(0.0);
    println!(
        "{} events in {:.1} s ({:.0}/s); {} deliveries ({:.0}/s); process CPU {:.1} s",
        sent,
        produced.as_secs_f64(),
        sent as f64 / produced.as_secs_f64(),
        delivered,
        delivered as f64 / produced.as_secs_f64(),
        cpu
    );
    println!("| delivery latency (commit → subscriber) | p50 | p99 | p99.9 | max |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} subscribers | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
        plan.subscribers,
        ms(hist.percentile(0.50)),
        ms(hist.percentile(0.99)),
        ms(hist.percentile(0.999)),
        ms(hist.percentile(1.0)),
    );
    println!(
        "process RSS peak (server + all subscriber clients): {peak:.0} MB; targets p99 ≤ 100 ms: {}, RSS ≤ 200 MB: {}",
        if hist.percentile(0.99) <= Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        },
        if peak <= 200.0 { "met" } else { "NOT met" }
    );
    anyhow::ensure!(
        delivered == expected,
        "deliveries: {delivered}, owed {expected}"
    );
    Ok(())
}

/// How `bench dashboard` runs.
#[derive(Debug, Clone)]
pub struct DashboardPlan {
    pub cases: usize,
    pub reports_per_case: usize,
    pub calls: usize,
}

/// Towns × villages × grids of the synthetic county.
const TOWNS: usize = 20;
const VILLAGES: usize = 20;
const GRIDS: usize = 5;

fn town(t: usize) -> String {
    format!("500110{:03}", 901 + t)
}

/// The plain query the dashboard replaces: the same figures straight from `cases`.
const PLAIN: &str = "SELECT GROUPING(status, unified_category, region_code, assignee) AS g,
        coalesce(status, unified_category, region_code, assignee, '') AS key, count(*) AS cases,
        count(*) FILTER (WHERE 'OVERDUE' = ANY (flags) AND status IN ('DISPATCHED', 'SIGNED', 'HANDLED')) AS overdue,
        count(*) FILTER (WHERE status = 'CLOSED') AS closed,
        count(*) FILTER (WHERE status = 'CLOSED' AND (deadline IS NULL OR handled_at <= deadline)) AS on_time,
        avg(extract(epoch FROM registered_at - first_reported_at)) AS register,
        avg(extract(epoch FROM dispatched_at - registered_at)) AS dispatch,
        avg(extract(epoch FROM signed_at - dispatched_at)) AS sign,
        avg(extract(epoch FROM handled_at - signed_at)) AS handle,
        avg(extract(epoch FROM closed_at - handled_at)) AS verify
   FROM cases
  WHERE region_code LIKE $1 AND first_reported_at >= $2 AND first_reported_at < $3 AND status <> 'MERGED'
  GROUP BY GROUPING SETS ((status), (unified_category), (region_code), (assignee), ())";

/// Drops the indexes (and unique constraints) of `table` except `keep`, for a bulk load;
/// returns the statements that rebuild them.
async fn drop_indexes(
    client: &tokio_postgres::Client,
    table: &str,
    keep: &[&str],
) -> anyhow::Result<Vec<String>> {
    let mut restore = Vec::new();
    // Foreign keys of other tables that lean on this table's keys go first, and come back last.
    let referencing = client
        .query(
            "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid) FROM pg_constraint WHERE confrelid = $1::text::regclass AND contype = 'f'",
            &[&table],
        )
        .await?;
    for r in &referencing {
        let (other, name): (String, String) = (r.get(0), r.get(1));
        client
            .batch_execute(&format!("ALTER TABLE {other} DROP CONSTRAINT {name}"))
            .await?;
    }
    let constraints = client
        .query(
            "SELECT conname::text, contype::text FROM pg_constraint WHERE conrelid = $1::text::regclass AND contype IN ('p', 'u')",
            &[&table],
        )
        .await?;
    let indexes = client
        .query(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
            &[&table],
        )
        .await?;
    for c in &constraints {
        let name: String = c.get(0);
        if !keep.contains(&name.as_str()) {
            client
                .batch_execute(&format!("ALTER TABLE {table} DROP CONSTRAINT {name}"))
                .await?;
        }
    }
    for i in &indexes {
        let (name, def): (String, String) = (i.get(0), i.get(1));
        if !keep.contains(&name.as_str()) {
            client
                .batch_execute(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
            restore.push(def);
        }
    }
    for c in &constraints {
        let (name, kind): (String, String) = (c.get(0), c.get(1));
        if !keep.contains(&name.as_str()) {
            restore.push(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} {} USING INDEX {name}",
                if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" }
            ));
        }
    }
    for r in &referencing {
        let (other, name, def): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        restore.push(format!("ALTER TABLE {other} ADD CONSTRAINT {name} {def}"));
    }
    Ok(restore)
}

pub async fn dashboard(
    settings: &Settings,
    url: &DbUrl,
    plan: DashboardPlan,
) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute("SET synchronous_commit = off; SET maintenance_work_mem = '512MB'")
        .await?;
    // Cases over the last 365 days, in chunks (the aggregate triggers see every row). Ids are
    // sequential, as server-made UUIDv7 are time-ordered; secondary indexes are rebuilt after.
    let t0 = Instant::now();
    let rebuild_cases = drop_indexes(&client, "cases", &["cases_pkey"]).await?;
    let chunk = 100_000usize;
    let mut done = 0;
    while done < plan.cases {
        let n = chunk.min(plan.cases - done);
        client
            .execute(
                &format!(
                    "WITH g AS (
                       SELECT i, (i % {TOWNS}) AS t, ((i / {TOWNS}) % {VILLAGES}) AS v, ((i / {}) % {GRIDS}) AS k,
                              hashint8(i) AS h, now() - (hashint8(i * 7) % 31536000 + 31536000) % 31536000 * interval '1 second' AS f
                         FROM generate_series($1::int8, $2::int8) i),
                     s AS (
                       SELECT *, CASE WHEN f < now() - interval '30 days'
                                   THEN CASE WHEN (h % 10 + 10) % 10 = 9 THEN 'VOID' ELSE 'CLOSED' END
                                   ELSE (ARRAY['REPORTED','REGISTERED','DISPATCHED','SIGNED','HANDLED','CLOSED','CLOSED','CLOSED','CLOSED','VOID'])[1 + (h % 10 + 10) % 10]
                              END AS status
                         FROM g)
                     INSERT INTO cases (case_id, case_no, status, unified_category, grid_code, region_code, owner, lat, lng,
                                        first_reported_at, last_reported_at, report_count, flags, assignee,
                                        registered_at, dispatched_at, signed_at, handled_at, closed_at, deadline)
                     SELECT lpad(to_hex(i), 32, '0')::uuid, 'B' || i, status, (ARRAY['0101','0102','0201','0202','0301','0302','0401','0501','0601','0102'])[1 + ((h / 10) % 10 + 10) % 10],
                            '500110' || lpad((901 + t)::text, 3, '0') || lpad((201 + v)::text, 3, '0') || lpad((1 + k)::text, 3, '0'),
                            '500110' || lpad((901 + t)::text, 3, '0') || lpad((201 + v)::text, 3, '0') || lpad((1 + k)::text, 3, '0'),
                            '', 28.8, 106.7, f, f + interval '2 hours', {rpc},
                            CASE WHEN status IN ('DISPATCHED', 'SIGNED') AND f + interval '4 days' <= now() THEN ARRAY['OVERDUE'] ELSE '{{}}'::text[] END,
                            CASE WHEN status IN ('DISPATCHED','SIGNED','HANDLED','CLOSED') THEN '500110' || lpad((901 + t)::text, 3, '0') || '-U' || ((h / 100) % 3 + 3) % 3 ELSE '' END,
                            CASE WHEN status <> 'REPORTED' THEN f + interval '1 hour' END,
                            CASE WHEN status IN ('DISPATCHED','SIGNED','HANDLED','CLOSED') THEN f + interval '2 hours' END,
                            CASE WHEN status IN ('SIGNED','HANDLED','CLOSED') THEN f + interval '3 hours' END,
                            CASE WHEN status IN ('HANDLED','CLOSED') THEN f + interval '1 day' + ((h / 1000) % 5 + 5) % 5 * interval '1 day' END,
                            CASE WHEN status = 'CLOSED' THEN f + interval '6 days' END,
                            CASE WHEN status IN ('DISPATCHED','SIGNED','HANDLED','CLOSED') THEN f + interval '4 days' END
                       FROM s",
                    TOWNS * VILLAGES,
                    rpc = plan.reports_per_case
                ),
                &[&(done as i64), &((done + n - 1) as i64)],
            )
            .await?;
        done += n;
        eprint!("\r  cases {done}/{}", plan.cases);
    }
    eprintln!();
    for stmt in &rebuild_cases {
        client.batch_execute(stmt).await?;
    }
    let cases_time = t0.elapsed();
    // Reports: `reports_per_case` per case, loaded the way a bulk load is: the table's indexes
    // dropped, one INSERT … SELECT, the indexes rebuilt (random UUID keys inserted one by one
    // into 10 million-row indexes would take this machine most of an hour).
    let t1 = Instant::now();
    if plan.reports_per_case > 0 {
        let rebuild = drop_indexes(&client, "reports", &[]).await?;
        client
            .execute(
                "INSERT INTO reports (report_id, client_report_id, payload_hash, source, category_code, unified_category,
                                      title, lat, lng, resolved_grid_code, region_code, occurred_at, submitted_by,
                                      case_id, first_outcome, first_case_id, merge_reason)
                 SELECT (lpad(to_hex((extract(epoch FROM c.first_reported_at + r * interval '10 minutes') * 1000)::int8), 12, '0')
                         || '7' || substr(md5(c.case_id::text || r::text), 1, 19))::uuid,
                        gen_random_uuid(), '\\x00', 1, c.unified_category, c.unified_category,
                        '报告', c.lat, c.lng, c.grid_code, c.region_code, c.first_reported_at + r * interval '10 minutes',
                        'bench', c.case_id, CASE WHEN r = 0 THEN 1 ELSE 3 END, c.case_id, '{}'
                   FROM cases c CROSS JOIN generate_series(0, $1 - 1) r",
                &[&(plan.reports_per_case as i32)],
            )
            .await?;
        eprintln!(
            "  reports inserted in {:.0} s; rebuilding indexes",
            t1.elapsed().as_secs_f64()
        );
        for stmt in &rebuild {
            client.batch_execute(stmt).await?;
        }
    }
    let reports_time = t1.elapsed();
    let t2 = Instant::now();
    let folded: i64 = client
        .query_one("SELECT case_stats_fold()", &[])
        .await?
        .get(0);
    for t in [
        "cases",
        "reports",
        "case_stats",
        "case_stats_delta",
        "case_stats_town_month",
        "case_grid_month",
    ] {
        client.batch_execute(&format!("VACUUM ANALYZE {t}")).await?;
    }
    let stats_rows: i64 = client
        .query_one("SELECT count(*) FROM case_stats", &[])
        .await?
        .get(0);
    println!(
        "bench dashboard: {} cases in {:.0} s, {} reports in {:.0} s; {folded} deltas folded into {stats_rows} aggregate rows in {:.1} s",
        plan.cases,
        cases_time.as_secs_f64(),
        plan.cases * plan.reports_per_case,
        reports_time.as_secs_f64(),
        t2.elapsed().as_secs_f64()
    );

    let key = SecretKey::generate();
    let mut s = settings.clone();
    s.listen = "127.0.0.1:0".parse()?;
    s.jwt_key = JwtKey::Hs256(key.clone());
    let mut app = App::bind(&s, url).await?;
    app.ready().await;
    let token = Issuer::hs256(&key, &s.jwt_audience).issue(
        "bench",
        &["town_operator".into()],
        "500110",
        Duration::from_secs(3600),
    )?;
    let header: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
    let mut grpc = pb::case_service_client::CaseServiceClient::with_interceptor(
        tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))?
            .connect()
            .await?,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", header.clone());
            Ok(r)
        },
    );
    let stmt = client.prepare(PLAIN).await?;
    println!(
        "| range | path | calls | p50 | p95 | max | cases per call |\n|---|---|---|---|---|---|---|"
    );
    let mut ratios = Vec::new();
    for (label, days) in [("30 days", 30i64), ("365 days", 365)] {
        let mut rng = StdRng::seed_from_u64(days as u64);
        // Whole local days (China Standard Time), as the dashboard counts them.
        let tomorrow =
            (Utc::now() + chrono::Duration::hours(8)).date_naive() + chrono::Duration::days(1);
        let end = tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
            - chrono::Duration::hours(8);
        let start = end - chrono::Duration::days(days);
        let (mut api, mut plain) = (Vec::new(), Vec::new());
        let mut total = 0i64;
        for _ in 0..plan.calls {
            let t = town(rng.random_range(0..TOWNS));
            let c0 = Instant::now();
            let d = grpc
                .get_dashboard(pb::GetDashboardRequest {
                    region_code: t.clone(),
                    start_time: Some(timestamp(start)),
                    end_time: Some(timestamp(end)),
                })
                .await?
                .into_inner();
            api.push(c0.elapsed());
            total += d.total;
            let c1 = Instant::now();
            let rows = client
                .query(&stmt, &[&format!("{t}%"), &start, &end])
                .await?;
            plain.push(c1.elapsed());
            let plain_total: i64 = rows
                .iter()
                .find(|r| r.get::<_, i32>(0) == 15)
                .map(|r| r.get(2))
                .unwrap_or(0);
            anyhow::ensure!(
                plain_total == d.total,
                "dashboard total {} differs from GROUP BY {}",
                d.total,
                plain_total
            );
        }
        let a = super::stats(api, 0, Duration::from_secs(1));
        let p = super::stats(plain, 0, Duration::from_secs(1));
        println!(
            "| {label} | GetDashboard (gRPC, aggregates) | {} | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
            a.calls,
            ms(a.p50),
            ms(a.p95),
            ms(a.max),
            total / plan.calls.max(1) as i64
        );
        println!(
            "| {label} | plain GROUP BY over cases (baseline) | {} | {:.1} ms | {:.1} ms | {:.1} ms | |",
            p.calls,
            ms(p.p50),
            ms(p.p95),
            ms(p.max)
        );
        ratios.push((label, a.p95, p.p95));
    }
    app.shutdown().await;
    for (label, a, p) in ratios {
        println!(
            "{label}: GetDashboard p95 {:.1} ms is {:.1}× faster than the plain GROUP BY; target p95 ≤ 50 ms: {}",
            ms(a),
            p.as_secs_f64() / a.as_secs_f64().max(1e-9),
            if a <= Duration::from_millis(50) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    Ok(())
}
