//! `bench mediation`: `GetMediationStats` for a county with 200,000 mediation cases, next to
//! the same query sent directly; and the blind-index look-up of a person's disputes
//! (`FindPersonDisputes`, which also decrypts, audits and commits) next to the bare index
//! query.

use crate::domain::pii::{IdNumber, Name};
use std::time::{Duration, Instant};

use chrono::{Duration as Days, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::NoTls;

use super::ingest::auth;
use crate::auth::jwt::Issuer;
use crate::config::{JwtKey, Settings};
use crate::crypto::{PiiCipher, SecretKey};
use crate::domain::pii::id_check_char;
use crate::grpc::pb;
use crate::startup::App;
use crate::store::DbUrl;

/// How `bench mediation` runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub cases: usize,
    pub persons: usize,
    pub calls: usize,
}

const TYPES: [&str; 6] = [
    "邻里",
    "婚姻家庭",
    "房屋宅基地",
    "土地承包",
    "劳动争议",
    "合同",
];
const KINDS: [&str; 3] = ["PEOPLE", "ADMINISTRATIVE", "JUDICIAL"];

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v.get(((v.len() as f64 * p).ceil() as usize).clamp(1, v.len().max(1)) - 1)
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn id_number(i: usize) -> String {
    let birth = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default()
        + Days::days((i % 20_000) as i64);
    let d17 = format!("500110{}{:03}", birth.format("%Y%m%d"), i / 20_000 % 1000);
    let c = id_check_char(d17.as_bytes()) as char;
    format!("{d17}{c}")
}

pub async fn run(settings: &Settings, url: &DbUrl, plan: Plan) -> anyhow::Result<()> {
    super::seed_grids(url, 20_000).await?;
    let villages: Vec<String> = (0..40)
        .map(|v| format!("500110{:03}{:03}", 901 + v / 20, 201 + v % 20))
        .collect();
    let teams: Vec<String> = villages.iter().map(|v| format!("{v}-TWH")).collect();
    let (client, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
    tokio::spawn(conn);
    for (v, t) in villages.iter().zip(&teams) {
        client
            .execute(
                "INSERT INTO departments (code, name, region_code, kind) VALUES ($1, '调委会', $2, '调解')",
                &[t, v],
            )
            .await?;
    }
    let key = SecretKey::generate();
    let mut s = settings.clone();
    s.listen = "127.0.0.1:0".parse()?;
    s.jwt_key = JwtKey::Hs256(key.clone());
    let pii = PiiCipher::with_keys(s.pii_key_id, &s.pii_key, &s.pii_previous_keys);

    // The data: persons with valid ID numbers, two parties per case, a year of cases.
    let started = Instant::now();
    let ids: Vec<String> = (0..plan.persons).map(id_number).collect();
    let id_index: Vec<Vec<u8>> = ids.iter().map(|i| pii.blind_index(i)).collect();
    let mut rng = StdRng::seed_from_u64(6);
    let now = Utc::now();
    let name_enc = pii.seal(&Name("张某某".into())).blob().to_vec();
    for chunk in 0..plan.cases.div_ceil(5000) {
        let n = (plan.cases - chunk * 5000).min(5000);
        let (mut case_id, mut no, mut region, mut dtype, mut kind, mut team) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let (mut status, mut outcome, mut reg, mut out_at, mut deadline, mut performed) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let (mut p_case, mut p_pos, mut p_role, mut p_id_enc, mut p_id_index, mut p_reg) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for k in 0..n {
            let i = chunk * 5000 + k;
            let id = uuid::Uuid::now_v7();
            let v = rng.random_range(0..villages.len());
            let registered = now - Days::minutes(rng.random_range(0..365 * 24 * 60));
            let roll: f64 = rng.random();
            let (st, oc) = if roll < 0.6 {
                ("SUCCEEDED", "SUCCEEDED")
            } else if roll < 0.85 {
                ("FAILED", "FAILED")
            } else {
                ("IN_MEDIATION", "")
            };
            case_id.push(id);
            no.push(format!("TJ-BENCH-{i:07}"));
            region.push(villages[v].clone());
            dtype.push(TYPES[rng.random_range(0..TYPES.len())].to_owned());
            kind.push(KINDS[rng.random_range(0..KINDS.len())].to_owned());
            team.push(teams[v].clone());
            status.push(st.to_owned());
            outcome.push(oc.to_owned());
            reg.push(registered);
            out_at.push((!oc.is_empty()).then(|| registered + Days::days(rng.random_range(1..30))));
            let d = (oc == "SUCCEEDED" && rng.random_bool(0.8))
                .then(|| (registered + Days::days(30)).date_naive());
            deadline.push(d);
            performed.push(d.map(|_| rng.random_bool(0.7)));
            for pos in 0..2i16 {
                let person = rng.random_range(0..plan.persons);
                p_case.push(id);
                p_pos.push(pos);
                p_role.push(if pos == 0 { "APPLICANT" } else { "RESPONDENT" }.to_owned());
                p_id_enc.push(
                    pii.seal(&IdNumber::from_trusted(ids[person].clone()))
                        .blob()
                        .to_vec(),
                );
                p_id_index.push(id_index[person].clone());
                p_reg.push(registered);
            }
        }
        client
            .execute(
                "INSERT INTO mediation_cases (case_id, case_no, source, region_code, dispute_type, kind, team, status, outcome,
                    summary, registered_at, outcome_at, agreement_deadline, performed, created_by)
                 SELECT c, n, 'WALK_IN', r, d, k, t, s, o, '纠纷', ra, oa, ad, p, 'bench'
                   FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                               $9::timestamptz[], $10::timestamptz[], $11::date[], $12::bool[])
                     AS x(c, n, r, d, k, t, s, o, ra, oa, ad, p)",
                &[&case_id, &no, &region, &dtype, &kind, &team, &status, &outcome, &reg, &out_at, &deadline, &performed],
            )
            .await?;
        let names: Vec<&[u8]> = p_case.iter().map(|_| name_enc.as_slice()).collect();
        client
            .execute(
                "INSERT INTO mediation_parties (case_id, position, role, name_enc, id_number_enc, id_index, registered_at)
                 SELECT * FROM unnest($1::uuid[], $2::int2[], $3::text[], $4::bytea[], $5::bytea[], $6::bytea[], $7::timestamptz[])",
                &[&p_case, &p_pos, &p_role, &names, &p_id_enc, &p_id_index, &p_reg],
            )
            .await?;
    }
    for t in ["mediation_cases", "mediation_parties"] {
        client.batch_execute(&format!("VACUUM ANALYZE {t}")).await?;
    }
    println!(
        "bench mediation: {} cases with {} parties of {} persons loaded in {:.1?}",
        plan.cases,
        plan.cases * 2,
        plan.persons,
        started.elapsed()
    );

    let mut app = App::bind(&s, url).await?;
    app.ready().await;
    let issuer = Issuer::hs256(&key, &s.jwt_audience);
    let token = issuer.issue(
        "county-operator",
        &["town_operator".into(), "mediator".into()],
        "500110",
        Duration::from_secs(3600),
    )?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))?
        .connect()
        .await?;
    let mut m = pb::mediation_service_client::MediationServiceClient::with_interceptor(
        channel,
        auth(&token)?,
    )
    .max_decoding_message_size(64 << 20);
    let from = now - Days::days(365);
    let req = pb::GetMediationStatsRequest {
        region_code: "500110".into(),
        from: Some(crate::grpc::convert::timestamp(from)),
        to: Some(crate::grpc::convert::timestamp(now + Days::days(1))),
    };
    let mut grpc_stats = Vec::new();
    let mut total = 0;
    for _ in 0..plan.calls {
        let t = Instant::now();
        let r = m.get_mediation_stats(req.clone()).await?.into_inner();
        grpc_stats.push(t.elapsed());
        total = r.total.map(|t| t.cases).unwrap_or(0);
    }
    let sql = "SELECT GROUPING(dispute_type, team, kind), count(*), count(*) FILTER (WHERE outcome = 'SUCCEEDED'),
                      count(*) FILTER (WHERE outcome = 'FAILED'),
                      avg(EXTRACT(EPOCH FROM (outcome_at - registered_at)) / 86400.0) FILTER (WHERE outcome <> ''),
                      count(*) FILTER (WHERE outcome = 'SUCCEEDED' AND agreement_deadline IS NOT NULL AND performed)
                 FROM mediation_cases WHERE region_code LIKE '500110%' AND registered_at >= $1 AND registered_at < $2
                GROUP BY GROUPING SETS ((dispute_type), (team), (kind), ())";
    let st = client.prepare(sql).await?;
    let mut direct = Vec::new();
    let until = now + Days::days(1);
    for _ in 0..plan.calls {
        let t = Instant::now();
        client.query(&st, &[&from, &until]).await?;
        direct.push(t.elapsed());
    }

    let mut grpc_find = Vec::new();
    let mut found = 0usize;
    for _ in 0..plan.calls * 10 {
        let person = rng.random_range(0..plan.persons);
        let t = Instant::now();
        let r = m
            .find_person_disputes(pb::FindPersonDisputesRequest {
                id_number: ids[person].clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        grpc_find.push(t.elapsed());
        found += r.mediation_cases.len();
    }
    let look = client
        .prepare("SELECT DISTINCT case_id FROM mediation_parties WHERE id_index = $1")
        .await?;
    let mut direct_find = Vec::new();
    for _ in 0..plan.calls * 10 {
        let person = rng.random_range(0..plan.persons);
        let t = Instant::now();
        client.query(&look, &[&id_index[person]]).await?;
        direct_find.push(t.elapsed());
    }
    app.shutdown().await;

    let (g95, d95) = (pct(&mut grpc_stats, 0.95), pct(&mut direct, 0.95));
    let (f99, b99) = (pct(&mut grpc_find, 0.99), pct(&mut direct_find, 0.99));
    println!("| path | calls | p50 | p95 | p99 | target |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| GetMediationStats, county, one year ({total} cases; gRPC) | {} | {:.1} ms | {:.1} ms | {:.1} ms | p95 ≤ 100 ms: {} |",
        plan.calls,
        ms(pct(&mut grpc_stats, 0.5)),
        ms(g95),
        ms(pct(&mut grpc_stats, 0.99)),
        if g95 <= Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "| the same GROUPING SETS query sent directly (baseline) | {} | {:.1} ms | {:.1} ms | {:.1} ms | |",
        plan.calls,
        ms(pct(&mut direct, 0.5)),
        ms(d95),
        ms(pct(&mut direct, 0.99)),
    );
    println!(
        "| FindPersonDisputes by ID number (gRPC: blind index, decrypt, audited commit; {:.1} cases per person) | {} | {:.2} ms | {:.2} ms | {:.2} ms | p99 ≤ 5 ms: {} |",
        found as f64 / grpc_find.len().max(1) as f64,
        grpc_find.len(),
        ms(pct(&mut grpc_find, 0.5)),
        ms(pct(&mut grpc_find, 0.95)),
        ms(f99),
        if f99 <= Duration::from_millis(5) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "| the bare blind-index query sent directly (baseline) | {} | {:.2} ms | {:.2} ms | {:.2} ms | |",
        direct_find.len(),
        ms(pct(&mut direct_find, 0.5)),
        ms(pct(&mut direct_find, 0.95)),
        ms(b99),
    );
    Ok(())
}
