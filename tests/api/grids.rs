//! ImportGrids validation and LocateGrid inside, on the border and outside.

use gridhub::demo::{CELL, ORIGIN, square};
use gridhub::grpc::pb;
use tonic::Code;

use crate::helpers::{TestApp, violations};
use crate::regions::fixture_records;

async fn app_with_regions() -> TestApp {
    let app = TestApp::spawn().await;
    let admin = app.token("nat-admin", &["admin"], "*");
    app.regions(Some(&admin))
        .await
        .import_regions(tokio_stream::iter(fixture_records()))
        .await
        .unwrap();
    app
}

fn feature(code: &str, parent: &str, geometry: &str) -> String {
    format!(
        r#"{{"type":"Feature","properties":{{"code":"{code}","name":"网格 {code}","parent_code":"{parent}"}},"geometry":{geometry}}}"#
    )
}

fn collection(features: &[String]) -> Vec<u8> {
    format!(
        r#"{{"type":"FeatureCollection","features":[{}]}}"#,
        features.join(",")
    )
    .into_bytes()
}

fn grids_request(features: &[String]) -> pb::ImportGridsRequest {
    pb::ImportGridsRequest {
        geojson: collection(features),
        request_id: String::new(),
    }
}

async fn grid_count(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM regions WHERE level >= 6")
        .await
}

#[tokio::test]
async fn valid_grids_import_and_are_located() {
    let app = app_with_regions().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut c = app.regions(Some(&op)).await;
    let f = [
        feature(
            "500110111201001",
            "500110111201",
            &square(28.9, 106.6, 0.01),
        ),
        feature(
            "500110111201001001",
            "500110111201001",
            &square(28.901, 106.601, 0.002),
        ),
    ];
    let s = c
        .import_grids(grids_request(&f))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.created, s.rejected), (2, 0));
    let s = c
        .import_grids(grids_request(&f))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.created, s.updated, s.unchanged), (0, 0, 2));
    // The finest grid wins: the micro-grid inside the grid.
    let r = c
        .locate_grid(pb::LatLng {
            lat: 28.902,
            lng: 106.602,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.code, "500110111201001001");
    assert_eq!(r.level(), pb::RegionLevel::MicroGrid);
    let r = c
        .locate_grid(pb::LatLng {
            lat: 28.908,
            lng: 106.608,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.code, "500110111201001");
    assert_eq!(
        r.boundary_geojson, None,
        "LocateGrid leaves the polygon out"
    );
    let full = c
        .get_region(pb::GetRegionRequest { code: r.code })
        .await
        .unwrap()
        .into_inner();
    assert!(full.boundary_geojson.unwrap().contains("MultiPolygon"));
}

#[tokio::test]
async fn malformed_geojson_names_every_bad_field_and_writes_nothing() {
    let app = app_with_regions().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut c = app.regions(Some(&op)).await;
    let unclosed = r#"{"type":"Polygon","coordinates":[[[106.6,28.9],[106.61,28.9],[106.61,28.91],[106.6,28.92]]]}"#;
    let out_of_range = r#"{"type":"Polygon","coordinates":[[[196.6,28.9],[106.61,28.9],[106.61,28.91],[196.6,28.9]]]}"#;
    let f = [
        feature(
            "500110111201001",
            "500110111201",
            &square(28.9, 106.6, 0.01),
        ),
        feature("500110111201002", "500110111201", unclosed),
        feature("500110111201003", "500110111201", out_of_range),
        feature("5001101112010", "500110111201", &square(28.9, 106.6, 0.01)),
        feature(
            "500110111201004",
            "500110111202",
            &square(28.9, 106.6, 0.01),
        ),
    ];
    let e = c.import_grids(grids_request(&f)).await.unwrap_err();
    assert_eq!(
        violations(&e),
        [
            "features[1].geometry.coordinates[0]",
            "features[2].geometry.coordinates[0][0]",
            "features[3].properties.code",
            "features[4].properties.parent_code",
        ]
    );
    let e = c
        .import_grids(pb::ImportGridsRequest {
            geojson: b"{not json".to_vec(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["geojson"]);
    assert_eq!(grid_count(&app).await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE action = 'grid.import'")
            .await,
        0
    );
}

#[tokio::test]
async fn self_intersecting_polygons_are_refused_by_postgis_and_nothing_is_written() {
    let app = app_with_regions().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut c = app.regions(Some(&op)).await;
    let bowtie = r#"{"type":"Polygon","coordinates":[[[106.6,28.9],[106.61,28.91],[106.61,28.9],[106.6,28.91],[106.6,28.9]]]}"#;
    let f = [
        feature(
            "500110111201001",
            "500110111201",
            &square(28.9, 106.6, 0.01),
        ),
        feature("500110111201002", "500110111201", bowtie),
    ];
    let e = c.import_grids(grids_request(&f)).await.unwrap_err();
    assert_eq!(violations(&e), ["features[1].geometry"]);
    assert!(e.message().contains("nothing was written"));
    assert_eq!(grid_count(&app).await, 0);
}

#[tokio::test]
async fn grids_with_unknown_villages_are_rejected_in_the_summary() {
    let app = app_with_regions().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut c = app.regions(Some(&op)).await;
    let f = [
        feature(
            "500110111201001",
            "500110111201",
            &square(28.9, 106.6, 0.01),
        ),
        feature(
            "500110111299001",
            "500110111299",
            &square(28.8, 106.6, 0.01),
        ),
    ];
    let s = c
        .import_grids(grids_request(&f))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.created, s.rejected), (1, 1));
    assert_eq!(s.rejections[0].index, 1);
    // A grid outside the operator's town is refused outright.
    let f = [feature(
        "500110112201001",
        "500110112201",
        &square(28.9, 106.6, 0.01),
    )];
    assert_eq!(
        c.import_grids(grids_request(&f)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn locate_inside_on_the_border_and_outside() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = app.token("op", &["town_operator"], "500110111");
    let mut c = app.regions(Some(&op)).await;
    // 马颈村 is the 8th village of 打通镇 in code order: row 1, column 2 of the demo map.
    let (lat0, lng0) = (ORIGIN.0 + CELL, ORIGIN.1 + 2.0 * CELL);
    let inside = c
        .locate_grid(pb::LatLng {
            lat: lat0 + CELL / 2.0,
            lng: lng0 + CELL / 4.0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inside.code, "500110111201001");
    let east = c
        .locate_grid(pb::LatLng {
            lat: lat0 + CELL / 2.0,
            lng: lng0 + 3.0 * CELL / 4.0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(east.code, "500110111201002");
    // On the shared border of 001 and 002: inside both; the lower code wins deterministically.
    let border = c
        .locate_grid(pb::LatLng {
            lat: lat0 + CELL / 2.0,
            lng: lng0 + 0.0 + CELL / 2.0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(border.code, "500110111201001");
    // On the outer edge of the whole map (south-west corner of the first village).
    let corner = c
        .locate_grid(pb::LatLng {
            lat: ORIGIN.0,
            lng: ORIGIN.1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(corner.code, "500110111001001");
    // Outside every grid.
    let e = c
        .locate_grid(pb::LatLng {
            lat: ORIGIN.0 - 0.001,
            lng: ORIGIN.1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .locate_grid(pb::LatLng {
            lat: 91.0,
            lng: f64::NAN,
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["lat", "lng"]);
}

#[tokio::test]
async fn a_worker_only_locates_grids_of_its_own_village() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let w = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let mut c = app.regions(Some(&w)).await;
    let (lat0, lng0) = (ORIGIN.0 + CELL, ORIGIN.1 + 2.0 * CELL);
    let own = c
        .locate_grid(pb::LatLng {
            lat: lat0 + CELL / 2.0,
            lng: lng0 + CELL / 4.0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.code, "500110111201001");
    // 打通村 is the cell to the west.
    let e = c
        .locate_grid(pb::LatLng {
            lat: lat0 + CELL / 2.0,
            lng: lng0 - CELL / 4.0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}
