//! `gridhub serve --demo`: the demo town 綦江区 打通镇 with its 17 villages and communities
//! (real codes, from the fixture copied out of the national list), two synthetic grids with
//! polygons per village, a few workers and departments; prints dev tokens and example calls.
//! Loading is an upsert, so starting with `--demo` again changes nothing.

use std::net::SocketAddr;
use std::time::Duration;

use diesel_async::AsyncConnection;
use serde_json::json;

use crate::app::Context;
use crate::auth::jwt::Issuer;
use crate::config::{JwtKey, Settings};
use crate::domain::geojson::GridFeature;
use crate::domain::pii::Phone;
use crate::domain::region::RegionCode;
use crate::import;
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::{departments, regions, workers};

/// 打通镇.
pub const TOWN: &str = "500110111";
/// 马颈村.
pub const MAJING: &str = "500110111201";
/// 马颈村's people's mediation committee.
pub const MEDIATION_TEAM: &str = "500110111201-TWH";
/// 打通村.
pub const DATONG: &str = "500110111200";

/// The 綦江区 subset of the national list, as CSV files in the china-division layout.
pub fn fixture_regions() -> anyhow::Result<Vec<regions::RegionInput>> {
    import::parse_sources(&[
        include_str!("../fixtures/china-division/provinces.csv"),
        include_str!("../fixtures/china-division/cities.csv"),
        include_str!("../fixtures/china-division/areas.csv"),
        include_str!("../fixtures/china-division/streets.csv"),
        include_str!("../fixtures/china-division/villages.csv"),
    ])
}

/// A closed square polygon as GeoJSON, south-west corner at (lat, lng).
pub fn square(lat: f64, lng: f64, size: f64) -> String {
    json!({
        "type": "Polygon",
        "coordinates": [[[lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]]]
    })
    .to_string()
}

/// South-west corner of the demo town's synthetic map.
pub const ORIGIN: (f64, f64) = (28.80, 106.70);
/// Size of one village cell in degrees (about 2 km); each village holds two grids side by side.
pub const CELL: f64 = 0.02;

/// The demo grids: for the n-th village of 打通镇 (in code order) a cell in a 5-wide layout,
/// split into a western grid `…001` and an eastern grid `…002`.
pub fn demo_grids(villages: &[String]) -> Vec<GridFeature> {
    let mut out = Vec::new();
    for (n, v) in villages.iter().enumerate() {
        let lat = ORIGIN.0 + (n / 5) as f64 * CELL;
        let lng = ORIGIN.1 + (n % 5) as f64 * CELL;
        for (k, dx) in [(1, 0.0), (2, CELL / 2.0)] {
            let (Ok(code), Ok(parent)) = (
                RegionCode::parse(&format!("{v}{k:03}")),
                RegionCode::parse(v),
            ) else {
                continue;
            };
            let geometry = json!({
                "type": "Polygon",
                "coordinates": [[[lng + dx, lat], [lng + dx + CELL / 2.0, lat], [lng + dx + CELL / 2.0, lat + CELL], [lng + dx, lat + CELL], [lng + dx, lat]]]
            });
            out.push(GridFeature {
                index: out.len(),
                code,
                name: format!("{}第{}网格", v, k),
                parent_code: parent,
                fallback_owner: format!("{TOWN}-ZZB"),
                geometry: geometry.to_string(),
            });
        }
    }
    out
}

/// Loads the demo town (idempotent).
pub async fn load(ctx: &Context) -> anyhow::Result<()> {
    let rows: Vec<_> = fixture_regions()?
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i as u64, r))
        .collect();
    let villages: Vec<String> = rows
        .iter()
        .filter(|(_, r)| r.code.len() == 12 && r.code.starts_with(TOWN))
        .map(|(_, r)| r.code.clone())
        .collect();
    let grids = demo_grids(&villages);
    let villages_len = villages.len();
    let pii = ctx.pii.clone();
    let mut conn = ctx.pool.get().await?;
    conn.transaction::<_, anyhow::Error, _>(async move |conn| {
        {
            let (counts, _) = regions::import(conn, rows, |_| {}).await?;
            let g = regions::upsert_grids(conn, &grids).await?;
            // The town's own outline: the villages' map with a margin around it, owned by the
            // command centre (属地兜底) wherever no grid covers a point.
            let rows = villages_len.div_ceil(5) as f64;
            let margin = CELL / 2.0;
            let outline = json!({
                "type": "Polygon",
                "coordinates": [[
                    [ORIGIN.1 - margin, ORIGIN.0 - margin], [ORIGIN.1 + 5.0 * CELL + margin, ORIGIN.0 - margin],
                    [ORIGIN.1 + 5.0 * CELL + margin, ORIGIN.0 + rows * CELL + margin], [ORIGIN.1 - margin, ORIGIN.0 + rows * CELL + margin],
                    [ORIGIN.1 - margin, ORIGIN.0 - margin]
                ]]
            });
            let town = RegionCode::parse(TOWN)?;
            regions::set_boundary(conn, &town, &outline.to_string(), &format!("{TOWN}-ZZB")).await?;
            for (code, name, kind) in [
                (format!("{TOWN}-ZFJ"), "打通镇综合行政执法大队", "执法"),
                (format!("{TOWN}-BMFW"), "打通镇便民服务中心", "服务"),
                (format!("{TOWN}-ZZB"), "打通镇综治中心", "综治"),
            ] {
                departments::upsert(conn, departments::NewDepartment { code: &code, name, region_code: TOWN, kind, active: true }).await?;
            }
            // 马颈村's people's mediation committee (人民调解委员会).
            departments::upsert(conn, departments::NewDepartment { code: MEDIATION_TEAM, name: "马颈村人民调解委员会", region_code: MAJING, kind: "调解", active: true }).await?;
            for (id, name, phone, village, grid) in [
                ("W-MJ-001", "王芳", "13800000001", MAJING, format!("{MAJING}001")),
                ("W-MJ-002", "赵强", "13800000002", MAJING, format!("{MAJING}002")),
                ("W-DT-001", "陈静", "13800000003", DATONG, format!("{DATONG}001")),
            ] {
                workers::upsert(
                    conn,
                    workers::NewWorker {
                        worker_id: id,
                        name,
                        phone_enc: Some(pii.seal(&Phone::from_trusted(phone.to_owned()))),
                        phone_index: Some(pii.blind_index(phone)),
                        region_code: village,
                        grid_codes: vec![Some(grid)],
                        active: true,
                    },
                )
                .await?;
            }
            let (cats, maps) = import::parse_categories(include_str!("../fixtures/categories.csv"))?;
            crate::store::categories::import(conn, cats, maps).await?;
            let days = import::parse_calendar(include_str!("../fixtures/calendar-2026.csv"))?;
            crate::store::calendar::upsert(conn, &days).await?;
            let actor = Actor { sub: "gridhub-demo".into(), roles: vec!["admin".into()], request_id: String::new() };
            let summary = json!({"regions_created": counts.created, "grids_created": g.created, "workers": 3, "departments": 4});
            audit::append(conn, &actor, vec![NewEvent::ok("demo.load", "demo", TOWN, TOWN, None, Some(summary))]).await?;
            Ok(())
        }
    })
    .await?;
    // Sealed now: a command has no sealer running beside it.
    audit::seal(&mut conn).await?;
    Ok(())
}

/// Loads the town's 权责清单 (`fixtures/catalog-500110111.csv`), one audit event per new version.
async fn load_catalog(ctx: &Context) -> anyhow::Result<()> {
    let items =
        crate::domain::catalog::parse_catalog(include_str!("../fixtures/catalog-500110111.csv"))
            .map_err(|v| anyhow::anyhow!("demo catalog: {v:?}"))?;
    let mut conn = ctx.pool.get().await?;
    conn.transaction::<_, anyhow::Error, _>(async move |conn| {
        let (_, new) =
            crate::store::catalog::import(conn, items, "gridhub-demo", chrono::Utc::now()).await?;
        let actor = Actor {
            sub: "gridhub-demo".into(),
            roles: vec!["admin".into()],
            request_id: String::new(),
        };
        audit::append(conn, &actor, crate::store::catalog::audit_events(&new)).await?;
        Ok(())
    })
    .await?;
    // Sealed now: a command has no sealer running beside it.
    audit::seal(&mut conn).await?;
    Ok(())
}

/// Loads the demo and prints dev tokens and copy-paste calls.
pub async fn load_and_print(
    ctx: &Context,
    settings: &Settings,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    load(ctx).await?;
    load_catalog(ctx).await?;
    let JwtKey::Hs256(secret) = &settings.jwt_key else {
        println!(
            "demo loaded; tokens are issued by your identity provider (RS256/ES256 configured)"
        );
        return Ok(());
    };
    let issuer = Issuer::hs256(secret, &settings.jwt_audience);
    let day = Duration::from_secs(24 * 3600);
    let op = issuer.issue(
        "demo-operator",
        &["town_operator".into(), "auditor".into(), "admin".into()],
        TOWN,
        day,
    )?;
    let worker = issuer.issue("W-MJ-001", &["grid_worker".into()], MAJING, day)?;
    let handler = issuer.issue_for_unit(
        "demo-handler",
        &["dept_handler".into()],
        TOWN,
        &format!("{TOWN}-ZFJ"),
        day,
    )?;
    let clerk = issuer.issue("demo-clerk", &["window_clerk".into()], TOWN, day)?;
    let hotline = issuer.issue("12345", &["hotline".into()], "500110", day)?;
    let mediator = issuer.issue_for_unit(
        "demo-mediator",
        &["mediator".into()],
        TOWN,
        MEDIATION_TEAM,
        day,
    )?;
    // The same exports in a file, for another terminal: `source <data-dir>/demo.env`.
    let env = format!(
        "export A={addr}\nexport TOKEN={op}\nexport WORKER_TOKEN={worker}\nexport HANDLER_TOKEN={handler}\nexport CLERK_TOKEN={clerk}\nexport HOTLINE_TOKEN={hotline}\nexport MEDIATOR_TOKEN={mediator}\n"
    );
    let env_file = settings.data_dir.join("demo.env");
    std::fs::write(&env_file, env)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600))?;
    }
    // Not println!: a closed stdout (a pipe whose reader left) must not take the server down.
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        r#"
gridhub demo: 綦江区 打通镇 ({TOWN}) with 17 villages and communities, 34 grids, 3 workers.

  export TOKEN={op}
  export WORKER_TOKEN={worker}   # grid worker of 马颈村 {MAJING}
  export HANDLER_TOKEN={handler}   # handler of the enforcement team {TOWN}-ZFJ
  export CLERK_TOKEN={clerk}   # window clerk of the 便民服务中心
  export HOTLINE_TOKEN={hotline}   # the 12345 platform of 綦江区
  export MEDIATOR_TOKEN={mediator}   # mediator of 马颈村's mediation committee {MEDIATION_TEAM}

  (the same in {env}: in another terminal, `source {env}`; README's tour goes on from there)

  The command centre's console: http://{addr}/ — sign in by pasting $TOKEN (the operator),
  or another token above to see the screen as that role.{console_note}

  grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d '{{"parent_code":"{TOWN}"}}' {addr} gridhub.v1.RegionService/ListRegions
  grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d '{{"lat":{lat:.4},"lng":{lng:.4}}}' {addr} gridhub.v1.RegionService/LocateGrid
  grpcurl -plaintext -H "authorization: Bearer $WORKER_TOKEN" -d '{{"code":"{DATONG}"}}' {addr} gridhub.v1.RegionService/GetRegion   # PERMISSION_DENIED
  grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d '{{}}' {addr} gridhub.v1.AuditService/VerifyAuditChain
  grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d '{{}}' {addr} gridhub.v1.CaseService/WatchCases   # the live feed
  grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d '{{"region_code":"{TOWN}"}}' {addr} gridhub.v1.CaseService/GetDashboard
  grpcurl -plaintext -H "authorization: Bearer $CLERK_TOKEN" -d '{{"town_code":"{TOWN}"}}' {addr} gridhub.v1.CatalogService/ListCatalogItems
  grpcurl -plaintext -H "authorization: Bearer $HOTLINE_TOKEN" -d '{{"order_no":"2026112500123","version":1,"kind":"HELP","caller":{{"name":"刘先生","phone":"13800001111"}},"content":"路边围墙垮塌","region_code":"{MAJING}"}}' {addr} gridhub.v1.HotlineService/PushWorkOrder
  grpcurl -plaintext -H "authorization: Bearer $HOTLINE_TOKEN" -d '{{}}' {addr} gridhub.v1.HotlineService/PullUpdates
"#,
        env = env_file.display(),
        console_note = if settings.console.dir.is_some() {
            ""
        } else {
            "\n  (not built here: cd web && npm ci && npm run build, or run scripts/serve)"
        },
        lat = ORIGIN.0 + CELL / 2.0,
        lng = ORIGIN.1 + CELL / 4.0,
    );
    let _ = out.flush();
    Ok(())
}
