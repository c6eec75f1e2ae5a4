//! Bad input at the edge: every request message of every RPC, built from the descriptor set,
//! with strings holding NUL, 100,000 characters or a lone surrogate (bytes that are not
//! UTF-8), empty and huge repeated fields, negative and huge numbers: never INTERNAL, UNKNOWN
//! or UNAVAILABLE, and the server still SERVING after. Then the cases seen from outside: one
//! bad report of an offline batch fails alone, a single submit with a NUL is INVALID_ARGUMENT
//! without touching its group, and over-long names are refused naming the field.

use std::collections::HashMap;

use gridhub::grpc::pb;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};
use prost_types::field_descriptor_proto::{Label, Type};
use tonic::Code;

use crate::access::{Rpc, call, rpcs, server_fault};
use crate::helpers::{TestApp, violations};
use crate::reports::{WALL, report};

/// What every field of a generated message holds.
#[derive(Debug, Clone)]
enum Fill {
    /// Strings hold these bytes; numbers are 1; repeated fields hold one item.
    Text(Vec<u8>),
    /// Every number is this; strings are short.
    Number(i64),
    /// Every float is this.
    Float(f64),
    /// Repeated fields hold this many items; strings are short.
    Many(usize),
    /// Repeated fields are empty, strings empty, numbers 0: the empty message's fields set.
    Empty,
}

struct Gen {
    messages: HashMap<String, prost_types::DescriptorProto>,
}

impl Gen {
    fn new() -> Gen {
        let fds =
            prost_types::FileDescriptorSet::decode(gridhub::grpc::FILE_DESCRIPTOR_SET).unwrap();
        let mut messages = HashMap::new();
        fn add(
            prefix: &str,
            m: &prost_types::DescriptorProto,
            out: &mut HashMap<String, prost_types::DescriptorProto>,
        ) {
            let name = format!("{prefix}.{}", m.name());
            for n in &m.nested_type {
                add(&name, n, out);
            }
            out.insert(name, m.clone());
        }
        for f in &fds.file {
            for m in &f.message_type {
                add(f.package(), m, &mut messages);
            }
        }
        Gen { messages }
    }

    /// Message `name` with every field set as `fill` says, nested messages `depth` deep.
    fn encode(&self, name: &str, fill: &Fill, depth: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(m) = self.messages.get(name) else {
            return out;
        };
        for f in &m.field {
            let n = f.number() as u32;
            let repeated = f.label() == Label::Repeated;
            let count = match (fill, repeated) {
                (Fill::Empty, true) => 0,
                (Fill::Many(k), true) => *k,
                _ => 1,
            };
            for _ in 0..count {
                match f.r#type() {
                    Type::String | Type::Bytes => {
                        let v: &[u8] = match fill {
                            Fill::Text(b) => b,
                            Fill::Empty => b"",
                            _ => b"x",
                        };
                        encode_key(n, WireType::LengthDelimited, &mut out);
                        encode_varint(v.len() as u64, &mut out);
                        out.extend_from_slice(v);
                    }
                    Type::Message => {
                        if depth == 0 {
                            continue;
                        }
                        let inner = if repeated && matches!(fill, Fill::Many(_)) {
                            // Huge lists of small items (a list of huge items is too large).
                            self.encode(f.type_name().trim_start_matches('.'), &Fill::Empty, 0)
                        } else {
                            self.encode(f.type_name().trim_start_matches('.'), fill, depth - 1)
                        };
                        encode_key(n, WireType::LengthDelimited, &mut out);
                        encode_varint(inner.len() as u64, &mut out);
                        out.extend_from_slice(&inner);
                    }
                    Type::Double | Type::Fixed64 | Type::Sfixed64 => {
                        encode_key(n, WireType::SixtyFourBit, &mut out);
                        let v = match fill {
                            Fill::Float(x) if f.r#type() == Type::Double => x.to_bits(),
                            Fill::Number(x) => *x as u64,
                            _ => 1f64.to_bits(),
                        };
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    Type::Float | Type::Fixed32 | Type::Sfixed32 => {
                        encode_key(n, WireType::ThirtyTwoBit, &mut out);
                        let v = match fill {
                            Fill::Float(x) if f.r#type() == Type::Float => (*x as f32).to_bits(),
                            Fill::Number(x) => *x as u32,
                            _ => 1f32.to_bits(),
                        };
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    Type::Sint32 | Type::Sint64 => {
                        let x = match fill {
                            Fill::Number(x) => *x,
                            Fill::Empty => 0,
                            _ => 1,
                        };
                        encode_key(n, WireType::Varint, &mut out);
                        encode_varint(((x << 1) ^ (x >> 63)) as u64, &mut out);
                    }
                    _ => {
                        // int32/int64/uint32/uint64/bool/enum: a varint.
                        let x = match fill {
                            Fill::Number(x) => *x,
                            Fill::Empty => 0,
                            _ => 1,
                        };
                        encode_key(n, WireType::Varint, &mut out);
                        encode_varint(x as u64, &mut out);
                    }
                }
            }
        }
        out
    }
}

fn fills() -> Vec<(&'static str, Fill)> {
    vec![
        ("NUL", Fill::Text("坏\u{0}".as_bytes().to_vec())),
        (
            "100,000 characters",
            Fill::Text("长".repeat(100_000).into_bytes()),
        ),
        // U+D800 as CESU-8: not UTF-8, so not a protobuf string.
        ("lone surrogate", Fill::Text(vec![0xed, 0xa0, 0x80])),
        ("empty", Fill::Empty),
        ("huge repeated", Fill::Many(5_000)),
        ("negative", Fill::Number(-1)),
        ("most negative", Fill::Number(i64::MIN)),
        ("huge", Fill::Number(i64::MAX)),
        ("NaN", Fill::Float(f64::NAN)),
        ("infinite", Fill::Float(f64::INFINITY)),
    ]
}

#[tokio::test]
async fn no_request_of_any_shape_is_a_server_fault() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let g = Gen::new();
    let ch = app.channel().await;
    // Every role, the whole country: every RPC is admitted and reaches its handler.
    let all: Vec<&str> = gridhub::domain::principal::Role::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();
    let token = format!(
        "Bearer {}",
        app.token_unit("fuzz", &all, "*", "500110111-ZFJ")
    );
    let mut calls = 0;
    for rpc in rpcs() {
        let rpc: Rpc = rpc;
        for (what, fill) in fills() {
            let body = g.encode(&rpc.input, &fill, 3);
            let has_text =
                gridhub::grpc::edge::string_fields(&rpc.input, &body).is_none_or(|f| !f.is_empty());
            calls += 1;
            if let Err(s) = call(&ch, &rpc, body, Some(&token)).await {
                assert!(
                    !server_fault(s.code()),
                    "{} with {what}: {:?} {}",
                    rpc.path,
                    s.code(),
                    s.message()
                );
                if (what == "NUL" || what == "lone surrogate") && has_text {
                    // The edge check names the field, whatever the RPC. (A batch of reports
                    // answers per report instead, with OK.)
                    assert_eq!(s.code(), Code::InvalidArgument, "{} with {what}", rpc.path);
                    assert!(!violations(&s).is_empty(), "{} with {what}", rpc.path);
                }
            }
        }
    }
    assert!(calls > 400, "{calls}");
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
    let r = h
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

#[tokio::test]
async fn one_bad_report_of_a_batch_fails_alone() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let w = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let good = |k: f64| report("0101", (WALL.0 + k * 0.003, WALL.1), 1);
    let mut bad = good(1.0);
    bad.title = "坏\u{0}".into();
    let batch = vec![good(0.0), bad, good(2.0)];
    let r = app
        .reports(Some(&w))
        .await
        .sync_reports(pb::SyncReportsRequest {
            reports: batch.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    use pb::sync_report_result::Result as R;
    let codes: Vec<i32> = r
        .results
        .iter()
        .map(|x| match &x.result {
            Some(R::Error(e)) => e.code,
            _ => 0,
        })
        .collect();
    assert_eq!(codes, vec![0, Code::InvalidArgument as i32, 0], "{r:?}");
    let Some(R::Error(e)) = &r.results[1].result else {
        unreachable!()
    };
    let bad_request = e
        .details
        .iter()
        .find_map(|d| tonic_types::pb::BadRequest::decode(d.value.as_slice()).ok());
    assert_eq!(
        bad_request.unwrap().field_violations[0].field,
        "title",
        "{e:?}"
    );
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 2);
}

#[tokio::test]
async fn a_single_submit_with_a_nul_is_refused_without_touching_its_group() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let w = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    for field in ["title", "description", "category_code", "reporter_id"] {
        let mut bad = report("0101", WALL, 1);
        match field {
            "title" => bad.title = "墙\u{0}".into(),
            "description" => bad.description = "\u{0}".into(),
            "category_code" => bad.category_code = "01\u{0}01".into(),
            _ => bad.reporter_id = "x\u{0}".into(),
        }
        let good = report("0101", (WALL.0 + 0.003, WALL.1), 1);
        let (mut a, mut b) = (app.reports(Some(&w)).await, app.reports(Some(&w)).await);
        let (bad_r, good_r) = tokio::join!(
            a.submit_report(pb::SubmitReportRequest { report: Some(bad) }),
            b.submit_report(pb::SubmitReportRequest { report: Some(good) })
        );
        let e = bad_r.unwrap_err();
        assert_eq!(violations(&e), vec![format!("report.{field}")]);
        good_r.unwrap();
    }
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 4);
}

#[tokio::test]
async fn names_and_comments_have_bounds() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let admin = app.admin();
    let long = "长".repeat(100_000);
    let e = app
        .regions(Some(&admin))
        .await
        .upsert_department(pb::UpsertDepartmentRequest {
            department: Some(pb::Department {
                code: "500110111-X".into(),
                name: long.clone(),
                region_code: "500110111".into(),
                kind: "执法".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), vec!["department.name"]);
    let e = app
        .regions(Some(&admin))
        .await
        .upsert_worker(pb::UpsertWorkerRequest {
            worker: Some(pb::Worker {
                worker_id: "W-X".into(),
                name: long.clone(),
                region_code: "500110111201".into(),
                active: true,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), vec!["worker.name"]);
    let e = app
        .cases(Some(&admin))
        .await
        .merge_cases(pb::MergeCasesRequest {
            target_case_id: uuid::Uuid::new_v4().to_string(),
            source_case_ids: vec![uuid::Uuid::new_v4().to_string()],
            comment: long.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), vec!["comment"]);
    let e = app
        .cases(Some(&admin))
        .await
        .split_report(pb::SplitReportRequest {
            comment: long,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(violations(&e).contains(&"comment".to_string()));
    assert_eq!(
        app.count("SELECT count(*) FROM workers WHERE worker_id = 'W-X'")
            .await,
        0
    );
}
