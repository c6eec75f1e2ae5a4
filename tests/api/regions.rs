//! Importing the real 綦江区 subset and browsing it.

use gridhub::grpc::pb::{self, RegionLevel};
use tonic::Code;

use crate::helpers::{TestApp, violations};

/// The 綦江区 fixture as ImportRegions records.
pub fn fixture_records() -> Vec<pb::RegionRecord> {
    gridhub::demo::fixture_regions()
        .unwrap()
        .into_iter()
        .map(|r| pb::RegionRecord {
            level: r.level as i32,
            parent_code: r.parent_code.unwrap_or_default(),
            code: r.code,
            name: r.name,
            fallback_owner: r.fallback_owner,
            request_id: String::new(),
        })
        .collect()
}

#[tokio::test]
async fn import_real_subset_and_browse_it() {
    let app = TestApp::spawn().await;
    let admin = app.token("nat-admin", &["admin"], "*");
    let mut c = app.regions(Some(&admin)).await;
    let records = fixture_records();
    let n = records.len() as u64;
    let s = c
        .import_regions(tokio_stream::iter(records.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (s.created, s.updated, s.unchanged, s.rejected),
        (n, 0, 0, 0)
    );
    assert_eq!(n, 514);

    // Importing again changes nothing; a renamed village is an update.
    let mut again = records.clone();
    let i = again.iter().position(|r| r.code == "500110111201").unwrap();
    again[i].name = "马颈村".into();
    let s = c
        .import_regions(tokio_stream::iter(again))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.created, s.updated, s.unchanged), (0, 1, n - 1));

    let r = c
        .get_region(pb::GetRegionRequest {
            code: "500110111201".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.name.as_str(), r.level(), r.parent_code.as_str()),
        ("马颈村", RegionLevel::Village, "500110111")
    );

    // The 17 villages and communities of 打通镇, in pages of 5.
    let mut codes = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .list_regions(pb::ListRegionsRequest {
                parent_code: "500110111".into(),
                page_size: 5,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        codes.extend(page.regions.into_iter().map(|r| r.code));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 4);
    assert_eq!(codes.len(), 17);
    assert_eq!(codes.first().map(String::as_str), Some("500110111001"));
    assert_eq!(codes.last().map(String::as_str), Some("500110111210"));
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(codes, sorted);

    // Filter by level over the whole subtree.
    let towns = c
        .list_regions(pb::ListRegionsRequest {
            parent_code: "500110".into(),
            level: RegionLevel::Town as i32,
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(towns.regions.len(), 31);
}

#[tokio::test]
async fn page_tokens_are_bound_to_caller_and_filter() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let mut c = app.regions(Some(&app.admin())).await;
    let page = c
        .list_regions(pb::ListRegionsRequest {
            parent_code: "500110111".into(),
            page_size: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    // Same caller, other filter.
    let e = c
        .list_regions(pb::ListRegionsRequest {
            parent_code: "500110112".into(),
            page_size: 5,
            page_token: page.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["page_token"]);
    // Other caller, same filter.
    let other = app.token("admin-2", &["admin"], "500110");
    let mut c2 = app.regions(Some(&other)).await;
    let e = c2
        .list_regions(pb::ListRegionsRequest {
            parent_code: "500110111".into(),
            page_size: 5,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["page_token"]);
    let e = c
        .list_regions(pb::ListRegionsRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["page_size"]);
}

#[tokio::test]
async fn bad_codes_are_rejected_with_their_fields_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let admin = app.token("nat-admin", &["admin"], "*");
    let mut c = app.regions(Some(&admin)).await;
    let mut records = fixture_records();
    records[3].code = "5001101A1".into();
    records[7].level = RegionLevel::Grid as i32;
    records[9].parent_code = "500111".into();
    records.push(records[10].clone());
    let dup = records.len() - 1;
    let e = c
        .import_regions(tokio_stream::iter(records))
        .await
        .unwrap_err();
    assert_eq!(
        violations(&e),
        [
            "records[3].code".to_string(),
            "records[7].level".into(),
            "records[9].parent_code".into(),
            format!("records[{dup}].code")
        ]
    );
    assert_eq!(app.count("SELECT count(*) FROM regions").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM audit_events").await, 0);

    let e = c
        .get_region(pb::GetRegionRequest {
            code: "12345".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["code"]);
    let e = c
        .get_region(pb::GetRegionRequest {
            code: "500110111201".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn records_with_unknown_parents_are_rejected_and_the_rest_imported() {
    let app = TestApp::spawn().await;
    let admin = app.token("nat-admin", &["admin"], "*");
    let mut c = app.regions(Some(&admin)).await;
    let records: Vec<_> = fixture_records()
        .into_iter()
        .filter(|r| r.code.len() != 9 || r.code == "500110111")
        .collect();
    let n = records.len() as u64;
    let s = c
        .import_regions(tokio_stream::iter(records))
        .await
        .unwrap()
        .into_inner();
    // Villages of the 30 other towns have no parent.
    assert_eq!(s.rejected, 480 - 17);
    assert_eq!(s.created, n - s.rejected);
    assert!(s.rejections.iter().all(|r| r.reason.contains("parent")));
    assert_eq!(
        app.count("SELECT count(*) FROM regions").await as u64,
        s.created
    );
}

#[tokio::test]
async fn imports_outside_the_callers_region_are_denied() {
    let app = TestApp::spawn().await;
    let county_admin = app.token("qj-admin", &["admin"], "500110");
    let mut c = app.regions(Some(&county_admin)).await;
    let e = c
        .import_regions(tokio_stream::iter(fixture_records()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(app.count("SELECT count(*) FROM regions").await, 0);
}

#[tokio::test]
async fn the_import_command_loads_a_china_division_directory() {
    let db = crate::helpers::FreshDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    // The fixture, with villages gzipped as in the national data set.
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/china-division");
    for f in ["provinces.csv", "cities.csv", "areas.csv", "streets.csv"] {
        std::fs::copy(format!("{src}/{f}"), dir.path().join(f)).unwrap();
    }
    let villages = std::fs::read(format!("{src}/villages.csv")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.path().join("villages.csv.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut gz, &villages).unwrap();
    gz.finish().unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gridhub"))
            .args(["import", "regions", "--from"])
            .arg(dir.path())
            .env("DATABASE_URL", db.url.expose())
            .env("GRIDHUB_DATA_DIR", dir.path().join("data"))
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("514 created, 0 updated, 0 unchanged, 0 rejected"),
        "{text}"
    );
    let out = run();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 created, 0 updated, 514 unchanged"));
    let (client, conn) = tokio_postgres::connect(db.url.expose(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM regions WHERE code LIKE '500110111%' AND level = 5",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 17);
    let audited: i64 = client.query_one("SELECT count(*) FROM audit_events WHERE action = 'region.import' AND actor = 'gridhub-cli'", &[]).await.unwrap().get(0);
    assert_eq!(audited, 2);
}
