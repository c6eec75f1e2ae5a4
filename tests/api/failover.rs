//! The hub on a real highly available PostgreSQL: etcd + Patroni + two PostgreSQL 15 +
//! PostGIS nodes with synchronous replication (`scripts/ha-cluster`), under a steady load of
//! SubmitReport and TransitionCase from several clients that retry with the same ids:
//! the primary is killed (`kill -9` of its Patroni and postmaster: the machine is gone), the
//! replica is promoted, the hub carries on without a restart (health, the feed, the SLA
//! ticker, the 12345 outbox); then a planned switchover back.
//! After each: every write answered OK is there, exactly once; the audit chain verifies; a
//! WatchCases subscriber that resumed after drops saw every event once. And the read replica:
//! the dashboard there equals the primary's, a replica that lags or is down is not read.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gridhub::grpc::pb::{self, CaseAction};
use gridhub::store::{self, DbUrl};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::TestApp;
use crate::hotline::{Answer, Receiver, SECRET, push, sign_and_reply, work_order};
use crate::reports::{WALL, report};
use crate::workflow::operator;

/// A Patroni cluster under a directory of its own, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    base: u16,
}

fn script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ha-cluster"))
}

/// A base port with the six ports after it free.
fn free_base() -> u16 {
    let pid = std::process::id() as u16;
    (0..200u16)
        .map(|i| 56_000 + ((pid.wrapping_add(i * 7)) % 300) * 10)
        .find(|b| (0..6).all(|k| std::net::TcpListener::bind(("127.0.0.1", b + k)).is_ok()))
        .expect("six free ports")
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("gridhub-ha-")
            .tempdir()
            .unwrap();
        let base = free_base();
        let c = Cluster { dir, base };
        c.run(&["start", &base.to_string()]);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(script());
        cmd.arg(args[0]).arg(self.dir.path()).args(&args[1..]);
        let out = cmd.output().expect("scripts/ha-cluster runs");
        assert!(
            out.status.success(),
            "ha-cluster {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn hosts(&self) -> String {
        format!("127.0.0.1:{},127.0.0.1:{}", self.base + 2, self.base + 4)
    }

    fn primary(&self, db: &str) -> DbUrl {
        DbUrl::new(format!(
            "postgres://postgres@{}/{db}?target_session_attrs=read-write",
            self.hosts()
        ))
    }

    fn replica(&self, db: &str) -> DbUrl {
        DbUrl::new(format!(
            "postgres://postgres@{}/{db}?target_session_attrs=read-only",
            self.hosts()
        ))
    }

    fn leader(&self) -> String {
        self.run(&["leader"])
    }

    fn port_of(&self, node: &str) -> u16 {
        if node == "node1" {
            self.base + 2
        } else {
            self.base + 4
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// What the load's clients were told OK.
#[derive(Default)]
struct Acked {
    /// client_report_id → (report_id, case_id).
    reports: HashMap<String, (String, String)>,
    /// request_id → (case_id, version after).
    registered: HashMap<String, (String, i64)>,
    /// When each OK answer came.
    times: Vec<Instant>,
    /// Answers that were not OK, by code (retried with the same ids).
    failures: HashMap<Code, usize>,
}

/// A client of the load: report, then register the new case, each retried with its ids
/// until OK (a retry after an unanswered commit replays the first answer).
async fn client_loop(
    app: Arc<TestApp>,
    (n, category): (usize, &'static str),
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) {
    let worker = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let op = operator(&app);
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        // Spread over 马颈村 ~39 m apart (the category merges within 30 m), so hundreds of
        // reports make cases of their own before they start joining earlier ones.
        let k = i * 4 + n;
        let at = (
            WALL.0 - 0.003 + 0.00035 * ((k % 17) as f64),
            WALL.1 - 0.003 + 0.00035 * ((k / 17 % 17) as f64),
        );
        let r = report(category, at, 1);
        let id = r.client_report_id.clone();
        let answer = loop {
            let res = match tokio::time::timeout(Duration::from_secs(10), async {
                app.reports(Some(&worker))
                    .await
                    .submit_report(pb::SubmitReportRequest {
                        report: Some(r.clone()),
                    })
                    .await
            })
            .await
            {
                Ok(r) => r,
                Err(_) => Err(tonic::Status::deadline_exceeded("client timeout")),
            };
            match res {
                Ok(a) => break a.into_inner(),
                Err(e) => {
                    assert_ne!(e.code(), Code::InvalidArgument, "{e:?}");
                    assert_ne!(e.code(), Code::Internal, "{e:?}");
                    *acked.lock().unwrap().failures.entry(e.code()).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        {
            let mut a = acked.lock().unwrap();
            a.reports
                .insert(id, (answer.report_id.clone(), answer.case_id.clone()));
            a.times.push(Instant::now());
        }
        if answer.outcome != pb::ReportOutcome::Created as i32 {
            continue;
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let step = pb::TransitionCaseRequest {
            case_id: answer.case_id.clone(),
            action: CaseAction::Register as i32,
            expected_version: 1,
            request_id: request_id.clone(),
            ..Default::default()
        };
        loop {
            let res = match tokio::time::timeout(Duration::from_secs(10), async {
                app.cases(Some(&op))
                    .await
                    .transition_case(step.clone())
                    .await
            })
            .await
            {
                Ok(r) => r,
                Err(_) => Err(tonic::Status::deadline_exceeded("client timeout")),
            };
            match res {
                Ok(c) => {
                    let c = c.into_inner();
                    let mut a = acked.lock().unwrap();
                    a.registered.insert(request_id, (c.case_id, c.version));
                    a.times.push(Instant::now());
                    break;
                }
                // Someone else moved the case first (a neighbour's report merged into it):
                // a decision on a stale version, as it should be.
                Err(e) if e.code() == Code::Aborted => break,
                Err(e) => {
                    assert!(
                        ![
                            Code::InvalidArgument,
                            Code::Internal,
                            Code::FailedPrecondition
                        ]
                        .contains(&e.code()),
                        "{e:?}"
                    );
                    *acked.lock().unwrap().failures.entry(e.code()).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// A WatchCases subscriber that resumes after every drop from its last token (or the
/// stream's start); returns the events' tokens in order.
async fn watcher(
    app: Arc<TestApp>,
    stop: Arc<AtomicBool>,
    ready: tokio::sync::oneshot::Sender<()>,
) -> (String, Vec<i64>) {
    let mut ready = Some(ready);
    let op = operator(&app);
    let mut start = String::new();
    let mut resume = String::new();
    let mut seen = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return (start, seen);
        }
        let stream = async {
            app.cases(Some(&op))
                .await
                .watch_cases(pb::WatchCasesRequest {
                    resume_token: resume.clone(),
                    ..Default::default()
                })
                .await
        };
        let s = match tokio::time::timeout(Duration::from_secs(5), stream).await {
            Ok(Ok(s)) => s,
            _ => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        if resume.is_empty() {
            resume = s
                .metadata()
                .get("gridhub-resume-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if start.is_empty() {
                start = resume.clone();
            }
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
        let mut s = s.into_inner();
        loop {
            if stop.load(Ordering::Relaxed) {
                return (start, seen);
            }
            match tokio::time::timeout(Duration::from_millis(500), s.message()).await {
                Err(_) => continue,
                Ok(Ok(Some(e))) => {
                    resume = e.resume_token.clone();
                    seen.push(e.resume_token.parse().unwrap());
                }
                Ok(_) => break,
            }
        }
    }
}

/// The operator's dashboard of the town, all time (without its as-of time).
async fn dashboard(app: &TestApp) -> pb::Dashboard {
    dashboard_within(app, Duration::ZERO).await.0
}

async fn health(app: &TestApp) -> ServingStatus {
    let mut h = HealthClient::new(app.channel().await);
    match h
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
    {
        Ok(r) => r.into_inner().status(),
        Err(_) => ServingStatus::Unknown,
    }
}

/// Runs the load while `disrupt` happens; returns the longest pause between OK answers, and
/// how long after the new primary answered the hub answered OK again.
async fn under_load<F>(
    app: &Arc<TestApp>,
    cluster: &Arc<Cluster>,
    (to, category): (&str, &'static str),
    disrupt: F,
) -> (
    Duration,
    Duration,
    bool,
    Arc<Mutex<Acked>>,
    (String, Vec<i64>),
)
where
    F: FnOnce(&Cluster),
{
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let (ready, watching) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn(watcher(app.clone(), stop.clone(), ready));
    watching.await.unwrap();
    let clients: Vec<_> = (0..4)
        .map(|n| {
            let args = (n, category);
            tokio::spawn(client_loop(app.clone(), args, stop.clone(), acked.clone()))
        })
        .collect();
    // Steady load first.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = acked.lock().unwrap().times.len();
    assert!(before > 4, "the load runs: {before} answers in 4 s");
    let t0 = Instant::now();
    tokio::task::block_in_place(|| disrupt(cluster));
    // Health goes NOT_SERVING while no primary answers (seen by polling), SERVING again.
    let mut saw_not_serving = false;
    let promoted = loop {
        if health(app).await == ServingStatus::NotServing {
            saw_not_serving = true;
        }
        let c = cluster.clone();
        let leader = tokio::task::spawn_blocking(move || c.leader())
            .await
            .unwrap();
        if leader == to {
            // The new primary answers writes.
            let url = cluster.primary("postgres");
            if let Ok((c, conn)) =
                tokio_postgres::connect(url.expose(), tokio_postgres::NoTls).await
            {
                tokio::spawn(conn);
                if c.simple_query("SELECT 1").await.is_ok()
                    && cluster.port_of(to)
                        == c.query_one("SELECT inet_server_port()", &[])
                            .await
                            .map(|r| r.get::<_, i32>(0) as u16)
                            .unwrap_or(0)
                {
                    break Instant::now();
                }
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "no new primary in 90 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The first OK answer after the new primary answered.
    let recovered = loop {
        let first = acked
            .lock()
            .unwrap()
            .times
            .iter()
            .copied()
            .find(|t| *t >= promoted);
        if let Some(t) = first {
            break t - promoted;
        }
        assert!(
            promoted.elapsed() < Duration::from_secs(60),
            "the hub never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(app).await != ServingStatus::Serving {
        assert!(
            Instant::now() < deadline,
            "health never came back to SERVING"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Steady load after.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    // Let the feed deliver what the last writes made.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watched = watch.await.unwrap();
    let times = acked.lock().unwrap().times.clone();
    let gap = times
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .max()
        .unwrap_or_default();
    (gap, recovered, saw_not_serving, acked, watched)
}

/// Every acknowledged write is there exactly once; the chain verifies; the watcher saw the
/// feed's events exactly once each, none missing (compared with a catch-up from the table).
async fn check(app: &TestApp, acked: &Acked, (start, seen): &(String, Vec<i64>)) {
    // RPCs in the gap failed fast and said so: UNAVAILABLE only (no timeouts, no INTERNAL).
    assert!(
        acked.failures.keys().all(|c| *c == Code::Unavailable),
        "{:?}",
        acked.failures
    );
    let sql = app.sql().await;
    for (client_id, (report_id, _)) in &acked.reports {
        let rows = sql
            .query(
                "SELECT report_id::text FROM reports WHERE client_report_id = $1::text::uuid",
                &[client_id],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "report {client_id} once");
        assert_eq!(&rows[0].get::<_, String>(0), report_id);
    }
    for (request_id, (case_id, version)) in &acked.registered {
        let n: i64 = sql
            .query_one(
                "SELECT count(*) FROM audit_events WHERE entity_type = 'case' AND entity_id = $1
                   AND action = 'case.transition' AND after->>'kind' = 'REGISTER'",
                &[case_id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "one REGISTER of {case_id} ({request_id})");
        let v: i64 = sql
            .query_one(
                "SELECT version FROM cases WHERE case_id = $1::text::uuid",
                &[case_id],
            )
            .await
            .unwrap()
            .get(0);
        assert!(v >= *version);
    }
    let verified = app
        .audit(Some(&app.admin()))
        .await
        .verify_audit_chain(pb::VerifyAuditChainRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(verified.ok, "{verified:?}");
    // The watcher's events: in order, once each, and every one the table holds after its start.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len());
    let mut replay = app
        .cases(Some(&operator(app)))
        .await
        .watch_cases(pb::WatchCasesRequest {
            resume_token: start.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut all = Vec::new();
    while let Ok(Ok(Some(e))) =
        tokio::time::timeout(Duration::from_millis(1500), replay.message()).await
    {
        all.push(e.resume_token.parse::<i64>().unwrap());
    }
    let last = *seen.last().unwrap_or(&0);
    let expected: Vec<i64> = all.into_iter().filter(|t| *t <= last).collect();
    assert_eq!(seen, &expected, "the resumed watcher saw every event once");
    assert!(
        seen.len() >= acked.reports.len(),
        "{} events for {} reports",
        seen.len(),
        acked.reports.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run alone by scripts/test (GRIDHUB_HA_TESTS): Patroni's leases and the measured gap want the machine's cores, not 120 tests beside them"]
async fn the_hub_rides_out_a_patroni_failover_and_a_switchover_without_losing_a_write() {
    let cluster = Arc::new(tokio::task::spawn_blocking(Cluster::start).await.unwrap());
    let name = "gridhub_ha";
    let base = cluster.primary("postgres");
    let db = store::create_database(&base, name, None).await.unwrap();
    store::migrate(&db).await.unwrap();
    let read = cluster.replica(name);
    // The 12345 platform's endpoint: the outbox pushes to it.
    let receiver = Receiver::start(Arc::new(|_, _| Answer::Ok)).await;
    let endpoint = receiver.url();
    let app = TestApp::spawn_on(db.clone(), name, |s| {
        s.hotline.endpoint = Some(endpoint);
        s.hotline.secret = gridhub::config::HmacSecret(SECRET.as_bytes().to_vec());
        s.hotline.poll = Duration::from_millis(50);
        s.hotline.retry_base = Duration::from_millis(100);
        s.hotline.retry_max = Duration::from_secs(1);
        s.workflow.sla_tick = Duration::from_secs(1);
        s.db.pool_size = 12;
        s.db.acquire_timeout = Duration::from_secs(2);
        s.db.read_url = Some(read.expose().to_owned());
        s.db.max_replica_lag = Duration::from_secs(5);
    })
    .await;
    app.seed_demo().await;
    let app = Arc::new(app);
    assert_eq!(cluster.leader(), "node1");

    // 1. The primary's machine dies: Patroni promotes the synchronous standby.
    let killed_at = chrono::Utc::now();
    let (gap, recovered, not_serving, acked, watched) =
        under_load(&app, &cluster, ("node2", "0301"), |c| {
            c.run(&["kill", "node1"]);
        })
        .await;
    assert!(
        not_serving,
        "health was NOT_SERVING while no primary answered"
    );
    let acked = Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap();
    eprintln!(
        "failover: longest pause between OK answers {gap:?}; hub answered {recovered:?} after the new primary; {} reports, {} registrations acknowledged; not-OK answers {:?}",
        acked.reports.len(),
        acked.registered.len(),
        acked.failures
    );
    assert!(gap < Duration::from_secs(30), "failover gap {gap:?}");
    check(&app, &acked, &watched).await;
    // The SLA ticker (every second here) carried on on the new primary.
    let ticked: chrono::DateTime<chrono::Utc> = app
        .sql()
        .await
        .query_one("SELECT max(mark) FROM detector_marks", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        ticked > killed_at,
        "the ticker's last mark {ticked} is after the failover"
    );
    // The outbox deliverer carried on: a 12345 order signed and replied to now is pushed.
    let sr = push(&app, work_order("HA-AFTER-FAILOVER", 1))
        .await
        .unwrap()
        .request
        .unwrap();
    sign_and_reply(&app, &sr).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver
        .log()
        .iter()
        .filter(|r| r.order_no == "HA-AFTER-FAILOVER" && r.answered == Answer::Ok && r.signature_ok)
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the outbox never pushed after the failover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The old primary rejoins as a replica.
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || {
        c.run(&["restart", "node1"]);
        c.run(&["wait", "node1", "180"]);
    })
    .await
    .unwrap();

    // 2. A planned switchover back.
    let (gap, recovered, _, acked, watched) = under_load(&app, &cluster, ("node1", "0302"), |c| {
        c.run(&["switchover", "node1"]);
    })
    .await;
    let acked = Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap();
    eprintln!(
        "switchover: longest pause between OK answers {gap:?}; hub answered {recovered:?} after the new primary; {} reports, {} registrations acknowledged; not-OK answers {:?}",
        acked.reports.len(),
        acked.registered.len(),
        acked.failures
    );
    assert!(gap < Duration::from_secs(30), "switchover gap {gap:?}");
    check(&app, &acked, &watched).await;

    // 3. The read replica. Another hub reads only the primary; once the replica has caught
    // up, the dashboard read there equals the primary's.
    let primary_only = TestApp::spawn_on(db.clone(), name, |_| {}).await;
    let on_primary = dashboard(&primary_only).await;
    assert!(on_primary.total > 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while dashboard(&app).await != on_primary {
        assert!(
            Instant::now() < deadline,
            "the replica's dashboard never caught up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The replica is read: with its replay held up (a query on the replica holds a table
    // that the primary then locks exclusively: replay waits for the query, up to
    // max_standby_streaming_delay), a hub that allows ten minutes' lag shows the figures from
    // before a new report; the 5-second hub, once the replica is 5 s behind, reads the
    // primary and shows the report.
    let primary_sql = app.sql().await;
    primary_sql
        .batch_execute("CREATE TABLE ha_probe (x int)")
        .await
        .unwrap();
    let replica_sql = {
        let url = cluster.replica(name);
        let (c, conn) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while replica_sql
        .batch_execute("BEGIN; SELECT count(*) FROM ha_probe")
        .await
        .is_err()
    {
        let _ = replica_sql.batch_execute("ROLLBACK").await;
        assert!(
            Instant::now() < deadline,
            "ha_probe never reached the replica"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lenient = TestApp::spawn_on(db.clone(), name, |s| {
        s.db.read_url = Some(read.expose().to_owned());
        s.db.max_replica_lag = Duration::from_secs(600);
    })
    .await;
    primary_sql
        .batch_execute("BEGIN; LOCK TABLE ha_probe IN ACCESS EXCLUSIVE MODE; COMMIT")
        .await
        .unwrap();
    let w = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    app.reports(Some(&w))
        .await
        .submit_report(pb::SubmitReportRequest {
            report: Some(report("0601", (WALL.0 + 0.001, WALL.1 - 0.001), 1)),
        })
        .await
        .unwrap();
    let fresh = dashboard(&primary_only).await;
    assert_eq!(fresh.total, on_primary.total + 1);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        dashboard(&lenient).await.total,
        on_primary.total,
        "read on the held-up replica"
    );
    assert_eq!(
        dashboard(&app).await,
        fresh,
        "too far behind: read on the primary"
    );
    replica_sql.batch_execute("ROLLBACK").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while dashboard(&lenient).await != fresh {
        assert!(
            Instant::now() < deadline,
            "the replica never caught up again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // What the replica spares the primary: GetDashboard throughput while writes run, with
    // and without the replica (printed for docs/scale-out.md, not asserted: on one machine
    // both nodes share the same two cores).
    for (label, hub) in [("primary only", &primary_only), ("with replica", &*app)] {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Acked::default()));
        let shared = Arc::new(TestApp::spawn_on(db.clone(), name, |_| {}).await);
        let writers: Vec<_> = (0..2)
            .map(|n| {
                let args = (n, "0401");
                tokio::spawn(client_loop(
                    shared.clone(),
                    args,
                    stop.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        let t = Instant::now();
        let mut reads = 0u32;
        while t.elapsed() < Duration::from_secs(5) {
            let batch: Vec<_> = (0..4).map(|_| dashboard(hub)).collect();
            reads += futures::future::join_all(batch).await.len() as u32;
        }
        let secs = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        let writes = acked.lock().unwrap().times.len();
        eprintln!(
            "dashboard {label}: {:.1} reads/s while {:.1} writes/s",
            f64::from(reads) / secs,
            writes as f64 / secs
        );
    }

    // With the replica stopped, reads fall back to the primary.
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.run(&["kill", "node2"]))
        .await
        .unwrap();
    // Losing the synchronous standby stalls the primary's commits until Patroni releases it
    // from synchronous replication (within its ttl): a read may meet UNAVAILABLE meanwhile
    // (seen once in CI), which a client retries; within the ttl it is answered, from the
    // primary.
    let t = Instant::now();
    let (via_replica_hub, waited) = dashboard_within(&app, Duration::from_secs(30)).await;
    let (on_primary, _) = dashboard_within(&primary_only, Duration::from_secs(30)).await;
    eprintln!(
        "replica stopped: the replica hub answered after {waited:?} ({:?} in all)",
        t.elapsed()
    );
    assert_eq!(via_replica_hub, on_primary);
}

/// The dashboard, retried while it answers UNAVAILABLE (at most `limit`), and how long that took.
async fn dashboard_within(app: &TestApp, limit: Duration) -> (pb::Dashboard, Duration) {
    let t = Instant::now();
    let token = operator(app);
    loop {
        match app
            .cases(Some(&token))
            .await
            .get_dashboard(pb::GetDashboardRequest::default())
            .await
        {
            Ok(d) => {
                let mut d = d.into_inner();
                d.as_of = None;
                return (d, t.elapsed());
            }
            Err(e) if e.code() == Code::Unavailable && t.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("dashboard after {:?}: {e:?}", t.elapsed()),
        }
    }
}
