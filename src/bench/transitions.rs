//! `bench transitions`: the command centre's steps at full speed. Cases are made first
//! (SyncReports over synthetic grids); then concurrent clients take each case through 立案
//! (REGISTER) and 派遣 (DISPATCH to a department), each step one `TransitionCase` with its
//! `expected_version` and a `request_id`: one audited transaction (the case's row, its
//! statistics delta, the idempotency record, the audit event). Printed: transitions a second,
//! latency, and how many were refused (none expected).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio_postgres::NoTls;

use super::ingest::{auth, process_cpu_seconds};
use super::{random_point_in, seed_grids, stats};
use crate::config::Settings;
use crate::grpc::pb;
use crate::store::DbUrl;

const GRIDS: usize = 1000;
const DEPT: &str = "500110901-ZFJ";

/// What to run.
pub struct Plan {
    pub cases: usize,
    pub clients: usize,
}

pub async fn run(settings: &Settings, url: &DbUrl, plan: Plan) -> anyhow::Result<()> {
    seed_grids(url, GRIDS).await?;
    crate::import::import_categories(url, include_str!("../../fixtures/categories.csv"), "bench")
        .await?;
    {
        let mut conn = crate::store::connect_one(url).await?;
        crate::store::departments::upsert(
            &mut conn,
            crate::store::departments::NewDepartment {
                code: DEPT,
                name: "综合行政执法队",
                region_code: "500110901",
                kind: "enforcement",
                active: true,
            },
        )
        .await?;
    }
    let (app, issuer) = super::hub(settings, url, |_| {}).await?;
    let token = issuer.issue(
        "bench-op",
        &["town_operator".into()],
        "500110",
        Duration::from_secs(3600),
    )?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))?
        .connect()
        .await?;

    // The cases: reports at random points of distinct grids' cells, one category (a few
    // merge; the rest are cases of their own).
    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(11);
    let mut reports = pb::report_service_client::ReportServiceClient::with_interceptor(
        channel.clone(),
        auth(&token)?,
    );
    let mut made = 0usize;
    while made < plan.cases {
        let batch: Vec<pb::Report> = (0..1000.min(plan.cases - made))
            .map(|_| {
                let p = random_point_in(&mut rng, 0..GRIDS);
                pb::Report {
                    client_report_id: uuid::Uuid::new_v4().to_string(),
                    source: pb::ReportSource::GridApp as i32,
                    category_code: "0301".into(),
                    title: "路灯损坏".into(),
                    description: "巡查发现".into(),
                    location: Some(pb::LatLng { lat: p.0, lng: p.1 }),
                    occurred_at: Some(crate::grpc::convert::timestamp(chrono::Utc::now())),
                    reporter_id: "W-BENCH".into(),
                    ..Default::default()
                }
            })
            .collect();
        made += batch.len();
        reports
            .sync_reports(pb::SyncReportsRequest { reports: batch })
            .await?;
    }
    let (pg, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
    tokio::spawn(conn);
    // Each case at its version (a merged report moved it on).
    let ids: Vec<(String, i64)> = pg
        .query(
            "SELECT case_id::text, version FROM cases WHERE status = 'REPORTED' ORDER BY case_id",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    println!(
        "bench transitions: {} cases from {} reports in {:.1?}",
        ids.len(),
        plan.cases,
        t.elapsed()
    );

    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let cpu0 = process_cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..plan.clients {
        let mut cases = pb::case_service_client::CaseServiceClient::with_interceptor(
            channel.clone(),
            auth(&token)?,
        );
        let (ids, next, refused) = (ids.clone(), next.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((id, mut version)) = ids.get(i).cloned() else {
                    break;
                };
                for (action, assignee) in [
                    (pb::CaseAction::Register, ""),
                    (pb::CaseAction::Dispatch, DEPT),
                ] {
                    let t = Instant::now();
                    let r = cases
                        .transition_case(pb::TransitionCaseRequest {
                            case_id: id.clone(),
                            action: action as i32,
                            expected_version: version,
                            assignee: assignee.into(),
                            request_id: uuid::Uuid::new_v4().to_string(),
                            time_limit_working_days: 5,
                            ..Default::default()
                        })
                        .await;
                    match r {
                        Ok(c) => {
                            lat.push(t.elapsed());
                            version = c.into_inner().version;
                        }
                        Err(e) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(error = %e, "transition refused");
                            break;
                        }
                    }
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    let wall = started.elapsed();
    let cpu = process_cpu_seconds() - cpu0;
    let st = stats(lat, refused.load(Ordering::Relaxed), wall);
    println!(
        "| clients | transitions | /s | p50 | p95 | p99 | max | refused | CPU-ms per 1,000 (process) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.0} | {:.1?} | {:.1?} | {:.1?} | {:.1?} | {} | {:.0} |",
        plan.clients,
        st.calls,
        st.per_sec,
        st.p50,
        st.p95,
        st.p99,
        st.max,
        st.errors,
        cpu * 1e6 / st.calls.max(1) as f64
    );
    app.shutdown().await;
    Ok(())
}
