//! The authorization matrix: every RPC of the compiled descriptor set (a new RPC is in it by
//! itself) × every kind of caller — no token, forged, expired, `alg: none`, no roles, unknown
//! roles only, `pii_reader` only, each role of the policy in the town, the same role in
//! another town, a handler whose unit lies in another town — each cell asserting its code,
//! and for every answer that no object outside the caller's region and no personal data in
//! clear came back. Then replays by a different principal, and the idempotency store scanned
//! for personal data.
//!
//! Calls go through a raw codec, as a client of another gRPC implementation would: the bytes
//! of each answer are read against the descriptor of its type.

use std::str::FromStr;
use std::time::Duration;

use bytes::{Buf, BufMut};
use gridhub::auth::jwt::Claims;
use gridhub::auth::policy::{self, Access};
use gridhub::domain::principal::{Role, Scope};
use gridhub::grpc::pb;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::helpers::TestApp;
use crate::reports::WALL;
use crate::workflow::{self, TOWN, ZFJ};

/// Another town of 綦江区 (南桐镇).
const OTHER_TOWN: &str = "500110101";

/// Passes bytes through: requests are built and answers read without generated types.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = buf.remaining();
        Ok(Some(buf.copy_to_bytes(n).to_vec()))
    }
}

/// One RPC of the contract.
#[derive(Debug, Clone)]
pub struct Rpc {
    pub path: String,
    pub input: String,
    pub output: String,
    pub client_streaming: bool,
    pub server_streaming: bool,
}

/// Every RPC of the compiled descriptor set.
pub fn rpcs() -> Vec<Rpc> {
    let fds = prost_types::FileDescriptorSet::decode(gridhub::grpc::FILE_DESCRIPTOR_SET).unwrap();
    let mut out = Vec::new();
    for f in &fds.file {
        for s in &f.service {
            for m in &s.method {
                out.push(Rpc {
                    path: format!("/{}.{}/{}", f.package(), s.name(), m.name()),
                    input: m.input_type().trim_start_matches('.').to_owned(),
                    output: m.output_type().trim_start_matches('.').to_owned(),
                    client_streaming: m.client_streaming(),
                    server_streaming: m.server_streaming(),
                });
            }
        }
    }
    assert!(out.len() >= 43, "{}", out.len());
    out
}

/// Calls `rpc` with `body` (for a client stream: one message), reading a server stream for a
/// moment; the answers' bytes.
pub async fn call(
    ch: &Channel,
    rpc: &Rpc,
    body: Vec<u8>,
    auth: Option<&str>,
) -> Result<Vec<Vec<u8>>, Status> {
    let mut g = tonic::client::Grpc::new(ch.clone());
    g.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_str(&rpc.path).unwrap();
    fn with<T>(auth: Option<&str>, mut r: Request<T>) -> Request<T> {
        if let Some(a) = auth {
            r.metadata_mut().insert("authorization", a.parse().unwrap());
        }
        r.set_timeout(Duration::from_secs(20));
        r
    }
    let with_auth = |b: Vec<u8>| with(auth, Request::new(b));
    match (rpc.client_streaming, rpc.server_streaming) {
        (false, false) => g
            .unary(with_auth(body), path, Raw)
            .await
            .map(|r| vec![r.into_inner()]),
        (true, false) => g
            .client_streaming(
                with(auth, Request::new(tokio_stream::iter(vec![body]))),
                path,
                Raw,
            )
            .await
            .map(|r| vec![r.into_inner()]),
        (false, true) => {
            let mut s = g
                .server_streaming(with_auth(body), path, Raw)
                .await?
                .into_inner();
            let mut out = Vec::new();
            loop {
                match tokio::time::timeout(Duration::from_millis(300), s.message()).await {
                    Ok(Ok(Some(m))) => out.push(m),
                    Ok(Ok(None)) | Err(_) => break,
                    Ok(Err(e)) => return Err(e),
                }
            }
            Ok(out)
        }
        (true, true) => unreachable!("no bidirectional RPC in the contract"),
    }
}

/// Codes no request may ever get.
pub fn server_fault(code: Code) -> bool {
    matches!(
        code,
        Code::Internal | Code::Unknown | Code::Unavailable | Code::DataLoss
    )
}

/// Personal data of the fixtures, as stored in clear nowhere and shown only to pii_reader.
const PLAIN: [&str; 9] = [
    "张大山",
    "李小河",
    "500110195003071234",
    "500110198001015670",
    "13811112222",
    "13933334444",
    "张桂英",
    "13912345678",
    "13800000001",
];

/// Fields that place an object in a region.
fn placing(field: &str) -> bool {
    let last = field.rsplit('.').next().unwrap_or(field);
    matches!(
        last,
        "region_code" | "town_code" | "resolved_grid_code" | "grid_code" | "grid_codes"
    )
}

/// What a caller may be shown: objects in its region (or its region's ancestors, which name
/// nobody's data), personal data in clear only with pii_reader.
fn check_answer(rpc: &Rpc, bytes: &[u8], scope: &Scope, pii: bool, who: &str) {
    let fields = gridhub::grpc::edge::string_fields(&rpc.output, bytes)
        .unwrap_or_else(|| panic!("{who} {}: undecodable answer", rpc.path));
    for (field, value) in &fields {
        if placing(field) && !value.is_empty() {
            assert!(
                scope.overlaps(value),
                "{who} {}: {field} = {value} lies outside {scope}",
                rpc.path
            );
        }
        if !pii {
            for p in PLAIN {
                assert!(
                    !value.contains(p),
                    "{who} {}: {field} shows personal data in clear",
                    rpc.path
                );
            }
        }
    }
}

/// A token with raw claims, signed with `key` (HS256).
fn signed(key: &[u8], claims: &Claims) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

fn claims(sub: &str, roles: &[&str], region: &str, unit: &str, exp_in: i64) -> Claims {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    Claims {
        sub: sub.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        region: region.into(),
        exp: (now + exp_in) as u64,
        iat: now as u64,
        aud: "gridhub".into(),
        unit: unit.into(),
    }
}

/// `alg: none`: a header and claims with no signature.
fn unsigned(c: &Claims) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b.encode(serde_json::to_vec(c).unwrap())
    )
}

/// What a cell must answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Unauthenticated,
    Denied,
    /// The policy admits the caller: no server fault, and what comes back is the caller's.
    Admitted,
}

struct Caller {
    name: String,
    auth: Option<String>,
    /// Scope and roles the server should see (for admitted callers).
    scope: Scope,
    roles: Vec<Role>,
    fixed: Option<Expect>,
}

/// The data the probes ask about: a case, its report, a mediation and a service request of
/// 打通镇, with personal data.
struct Fixtures {
    probes: Vec<(String, Vec<u8>)>,
}

async fn fixtures(app: &TestApp) -> Fixtures {
    // A case dispatched to 打通镇's enforcement team.
    let case = workflow::registered(app, WALL).await;
    let case = workflow::act(
        app,
        &workflow::operator(app),
        workflow::dispatch(&case, ZFJ, 3),
    )
    .await
    .unwrap();
    let med = app.token_unit("med-li", &["mediator"], TOWN, crate::mediation::TEAM);
    let m = app
        .mediation(Some(&med))
        .await
        .create_mediation_case(crate::mediation::dispute(&case.case_id))
        .await
        .unwrap()
        .into_inner();
    let sr = crate::service::create(
        app,
        &crate::service::clerk(app),
        pb::CreateServiceRequestRequest {
            on_behalf: true,
            ..crate::service::new_request(pb::RequestKind::Help, "500110111201")
        },
    )
    .await
    .unwrap();
    let probes = vec![
        (
            "/gridhub.v1.CaseService/GetCase".to_owned(),
            pb::GetCaseRequest {
                case_id: case.case_id.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/gridhub.v1.ReportService/GetReport".to_owned(),
            pb::GetReportRequest {
                report_id: case.report_ids[0].clone(),
            }
            .encode_to_vec(),
        ),
        (
            "/gridhub.v1.MediationService/GetMediationCase".to_owned(),
            pb::GetMediationCaseRequest { id: m.id.clone() }.encode_to_vec(),
        ),
        (
            "/gridhub.v1.MediationService/FindPersonDisputes".to_owned(),
            pb::FindPersonDisputesRequest {
                id_number: "500110195003071234".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/gridhub.v1.ServiceRequestService/GetServiceRequest".to_owned(),
            pb::GetServiceRequestRequest { id: sr.id.clone() }.encode_to_vec(),
        ),
        (
            "/gridhub.v1.RegionService/GetRegion".to_owned(),
            pb::GetRegionRequest {
                code: "500110111201".into(),
            }
            .encode_to_vec(),
        ),
        (
            "/gridhub.v1.RegionService/ListWorkers".to_owned(),
            pb::ListWorkersRequest {
                region_code: TOWN.into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ];
    Fixtures { probes }
}

fn callers(app: &TestApp) -> Vec<Caller> {
    let key = app.key.bytes().to_vec();
    let town = Scope::parse(TOWN).unwrap();
    let mut out = vec![
        Caller {
            name: "no token".into(),
            auth: None,
            scope: town.clone(),
            roles: vec![],
            fixed: Some(Expect::Unauthenticated),
        },
        Caller {
            name: "forged".into(),
            auth: Some(format!(
                "Bearer {}",
                signed(
                    b"not the server's key",
                    &claims("x", &["admin"], "*", "", 600)
                )
            )),
            scope: town.clone(),
            roles: vec![],
            fixed: Some(Expect::Unauthenticated),
        },
        Caller {
            name: "expired".into(),
            auth: Some(format!(
                "Bearer {}",
                signed(&key, &claims("x", &["admin"], "*", "", -3600))
            )),
            scope: town.clone(),
            roles: vec![],
            fixed: Some(Expect::Unauthenticated),
        },
        Caller {
            name: "alg none".into(),
            auth: Some(format!(
                "Bearer {}",
                unsigned(&claims("x", &["admin"], "*", "", 600))
            )),
            scope: town.clone(),
            roles: vec![],
            fixed: Some(Expect::Unauthenticated),
        },
        Caller {
            name: "no roles".into(),
            auth: Some(format!(
                "Bearer {}",
                signed(&key, &claims("x", &[], "*", "", 600))
            )),
            scope: town.clone(),
            roles: vec![],
            fixed: Some(Expect::Denied),
        },
        Caller {
            name: "unknown roles only".into(),
            auth: Some(format!(
                "Bearer {}",
                signed(&key, &claims("x", &["visitor", "root"], "*", "", 600))
            )),
            scope: town.clone(),
            roles: vec![],
            fixed: Some(Expect::Denied),
        },
        Caller {
            name: "pii_reader only".into(),
            auth: Some(format!(
                "Bearer {}",
                signed(&key, &claims("x", &["pii_reader"], "*", "", 600))
            )),
            scope: town.clone(),
            roles: vec![],
            fixed: Some(Expect::Denied),
        },
    ];
    for role in Role::ALL {
        if role == Role::PiiReader {
            continue;
        }
        for region in [TOWN, OTHER_TOWN] {
            out.push(Caller {
                name: format!("{role} of {region}"),
                auth: Some(format!(
                    "Bearer {}",
                    app.token_unit(&format!("{role}-{region}"), &[role.as_str()], region, ZFJ)
                )),
                scope: Scope::parse(region).unwrap(),
                roles: vec![role],
                fixed: None,
            });
        }
    }
    // A handler of the other town whose unit is a department of 打通镇.
    out.push(Caller {
        name: "dept_handler of the other town acting for 打通镇's unit".into(),
        auth: Some(format!(
            "Bearer {}",
            app.token_unit("h-x", &["dept_handler"], OTHER_TOWN, ZFJ)
        )),
        scope: Scope::parse(OTHER_TOWN).unwrap(),
        roles: vec![Role::DeptHandler],
        fixed: None,
    });
    // With pii_reader, personal data in clear is the point; the region still binds.
    out.push(Caller {
        name: "town_operator + pii_reader of the other town".into(),
        auth: Some(format!(
            "Bearer {}",
            app.token("op-x", &["town_operator", "pii_reader"], OTHER_TOWN)
        )),
        scope: Scope::parse(OTHER_TOWN).unwrap(),
        roles: vec![Role::TownOperator, Role::PiiReader],
        fixed: None,
    });
    out
}

fn expect(c: &Caller, rpc: &Rpc) -> Expect {
    if let Some(e) = c.fixed {
        return e;
    }
    match policy::access(&rpc.path) {
        Some(Access::Public) => Expect::Admitted,
        Some(Access::Roles(r)) if c.roles.iter().any(|x| r.contains(x)) => Expect::Admitted,
        _ => Expect::Denied,
    }
}

#[tokio::test]
async fn every_rpc_against_every_kind_of_caller() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let fx = fixtures(&app).await;
    let ch = app.channel().await;
    let rpcs = rpcs();
    let mut cells = 0;
    for c in callers(&app) {
        for rpc in &rpcs {
            if matches!(policy::access(&rpc.path), Some(Access::Public)) {
                continue;
            }
            let e = expect(&c, rpc);
            let mut bodies = vec![Vec::new()];
            bodies.extend(
                fx.probes
                    .iter()
                    .filter(|(p, _)| *p == rpc.path)
                    .map(|(_, b)| b.clone()),
            );
            for body in bodies {
                cells += 1;
                let who = &c.name;
                let r = call(&ch, rpc, body, c.auth.as_deref()).await;
                match (e, r) {
                    (Expect::Unauthenticated, Err(s)) => {
                        assert_eq!(s.code(), Code::Unauthenticated, "{who} {}: {s:?}", rpc.path)
                    }
                    (Expect::Denied, Err(s)) => {
                        assert_eq!(
                            s.code(),
                            Code::PermissionDenied,
                            "{who} {}: {s:?}",
                            rpc.path
                        );
                        assert!(
                            s.message().contains("needs one of the roles"),
                            "{who} {}: refused by the policy, not later: {s:?}",
                            rpc.path
                        );
                    }
                    (Expect::Admitted, Err(s)) => {
                        assert!(!server_fault(s.code()), "{who} {}: {s:?}", rpc.path);
                        assert_ne!(s.code(), Code::Unauthenticated, "{who} {}", rpc.path);
                        assert!(
                            !s.message().contains("needs one of the roles"),
                            "{who} {}: {s:?}",
                            rpc.path
                        );
                    }
                    (Expect::Admitted, Ok(answers)) => {
                        for a in answers {
                            check_answer(
                                rpc,
                                &a,
                                &c.scope,
                                c.roles.contains(&Role::PiiReader),
                                who,
                            );
                        }
                    }
                    (e, Ok(_)) => panic!("{who} {}: answered OK, expected {e:?}", rpc.path),
                }
            }
        }
    }
    assert!(cells > 1000, "{cells} cells");
}

#[tokio::test]
async fn a_replay_never_shows_more_than_a_fresh_call() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let case = workflow::new_case(&app, "0202", WALL).await;
    let rid = uuid::Uuid::new_v4().to_string();
    let register = pb::TransitionCaseRequest {
        request_id: rid.clone(),
        ..workflow::step(&case, pb::CaseAction::Register)
    };
    let op = app.token("op-1", &["town_operator"], TOWN);
    let first = workflow::act(&app, &op, register.clone()).await.unwrap();
    // The same principal gets the same answer, byte for byte.
    let again = workflow::act(&app, &op, register.clone()).await.unwrap();
    assert_eq!(first.encode_to_vec(), again.encode_to_vec());
    // The same sub in another town: refused, not shown 打通镇's case.
    let elsewhere = app.token("op-1", &["town_operator"], OTHER_TOWN);
    let e = workflow::act(&app, &elsewhere, register.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert!(!e.message().contains(&case.case_no), "{e:?}");

    // A mediation registered with pii_reader, replayed without it.
    let with_pii = app.token_unit(
        "med-li",
        &["mediator", "pii_reader"],
        TOWN,
        crate::mediation::TEAM,
    );
    let without = app.token_unit("med-li", &["mediator"], TOWN, crate::mediation::TEAM);
    let create = pb::CreateMediationCaseRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..crate::mediation::dispute(&case.case_id)
    };
    let full = app
        .mediation(Some(&with_pii))
        .await
        .create_mediation_case(create.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.parties[0].name, "张大山");
    let e = app
        .mediation(Some(&without))
        .await
        .create_mediation_case(create.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert!(!e.message().contains("张大山"));
    let same = app
        .mediation(Some(&with_pii))
        .await
        .create_mediation_case(create)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.encode_to_vec(), full.encode_to_vec());

    // Nothing personal in the idempotency store (UpsertWorker's phone too).
    let admin = app.token("adm", &["admin", "pii_reader"], TOWN);
    app.regions(Some(&admin))
        .await
        .upsert_worker(pb::UpsertWorkerRequest {
            worker: Some(pb::Worker {
                worker_id: "W-MJ-9".into(),
                name: "李四".into(),
                phone: "13912345678".into(),
                region_code: "500110111201".into(),
                grid_codes: vec!["500110111201002".into()],
                active: true,
                ..Default::default()
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap();
    let stored = app.count("SELECT count(*) FROM idempotency_keys").await;
    assert_eq!(stored, 3);
    for p in PLAIN.iter().chain(["李四"].iter()) {
        let hits: i64 = app
            .sql()
            .await
            .query_one(
                "SELECT count(*) FROM idempotency_keys WHERE position(convert_to($1, 'UTF8') IN response) > 0",
                &[p],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(hits, 0, "{p} stored in clear");
    }
}

#[tokio::test]
async fn a_unit_of_another_town_pulls_nothing_of_it() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let case = workflow::registered(&app, WALL).await;
    workflow::act(
        &app,
        &workflow::operator(&app),
        workflow::dispatch(&case, ZFJ, 3),
    )
    .await
    .unwrap();
    // Its own town's handler pulls it; the other town's, claiming the unit, does not.
    let own = app.token_unit("h-1", &["dept_handler"], TOWN, ZFJ);
    let pulled = |t: String| {
        let app = &app;
        async move {
            app.cases(Some(&t))
                .await
                .pull_changes(pb::PullChangesRequest::default())
                .await
                .unwrap()
                .into_inner()
                .cases
        }
    };
    assert_eq!(pulled(own).await.len(), 1);
    let other = app.token_unit("h-x", &["dept_handler"], OTHER_TOWN, ZFJ);
    assert_eq!(pulled(other).await, vec![]);
}
