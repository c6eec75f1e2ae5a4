//! The 12345 integration: work orders in (resend, update, stale version), a located order
//! merging with a grid report into one case and following it, PullUpdates resuming without
//! gaps, and the push outbox against a real HTTP receiver in the test: failures, an outage,
//! dead letters and two replicas delivering.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use gridhub::grpc::convert::timestamp;
use gridhub::grpc::pb::transition_service_request_request::Action as A;
use gridhub::grpc::pb::{self, CaseAction};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tonic::Code;

use crate::helpers::{TestApp, violations};
use crate::reports::WALL;
use crate::service::{act, assign, callback, clerk, reply, step};
use crate::workflow::{self, BMFW, ZFJ, handler, operator};

pub const SECRET: &str = "test-secret-for-12345-pushes";
const MAJING: &str = "500110111201";

pub fn hotline(app: &TestApp) -> String {
    app.token("hotline-12345", &["hotline"], "500110")
}

pub fn work_order(no: &str, version: i32) -> pb::WorkOrder {
    pb::WorkOrder {
        order_no: no.into(),
        version,
        kind: pb::RequestKind::Help as i32,
        urgency: pb::Urgency::Normal as i32,
        caller: Some(pb::Applicant {
            name: "刘先生".into(),
            phone: "13800001111".into(),
            id_number: String::new(),
        }),
        content: "路边围墙垮塌，影响通行".into(),
        address: "綦江区打通镇马颈村公路边".into(),
        region_code: MAJING.into(),
        ..Default::default()
    }
}

pub async fn push(
    app: &TestApp,
    o: pb::WorkOrder,
) -> Result<pb::PushWorkOrderResult, tonic::Status> {
    app.hotline(Some(&hotline(app)))
        .await
        .push_work_order(o)
        .await
        .map(|r| r.into_inner())
}

async fn pull(app: &TestApp, cursor: &str, limit: i32) -> pb::PullUpdatesResponse {
    app.hotline(Some(&hotline(app)))
        .await
        .pull_updates(pb::PullUpdatesRequest {
            cursor: cursor.into(),
            limit,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Takes a hotline request through 分办 → 签收 → 回复 (two updates for 12345).
pub async fn sign_and_reply(app: &TestApp, sr: &pb::ServiceRequest) -> pb::ServiceRequest {
    let sr = act(app, &clerk(app), assign(sr, BMFW)).await.unwrap();
    let h = handler(app, BMFW);
    let sr = act(app, &h, step(&sr, A::Sign)).await.unwrap();
    act(app, &h, reply(&sr, "已处理")).await.unwrap()
}

#[tokio::test]
async fn work_orders_are_idempotent_on_number_and_version() {
    let (app, _clock) = workflow::town_at(workflow::local("2026-11-25 09:10")).await;
    let first = push(&app, work_order("2026112500123", 1)).await.unwrap();
    assert_eq!(
        first.outcome,
        pb::push_work_order_result::Outcome::Created as i32
    );
    let sr = first.request.unwrap();
    assert_eq!(sr.hotline_order_no, "2026112500123");
    assert_eq!(sr.hotline_version, 1);
    assert_eq!(sr.applicant.as_ref().unwrap().phone, "138****1111");
    // Help: 3 working days from Wednesday 25 November = Monday 30 November.
    assert_eq!(
        gridhub::grpc::convert::from_timestamp(sr.deadline.as_ref().unwrap()).unwrap(),
        workflow::local("2026-11-30 17:30")
    );
    // The same version again: acknowledged, nothing changed.
    let again = push(&app, work_order("2026112500123", 1)).await.unwrap();
    assert_eq!(
        again.outcome,
        pb::push_work_order_result::Outcome::Unchanged as i32
    );
    assert_eq!(again.request.as_ref().unwrap().id, sr.id);
    assert_eq!(again.request.unwrap().version, sr.version);
    // The same version with other content is a conflict and changes nothing.
    let mut other = work_order("2026112500123", 1);
    other.content = "别的内容".into();
    let e = push(&app, other).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    // Version 2 corrects the phone: the request is updated and says what changed.
    let mut v2 = work_order("2026112500123", 2);
    v2.caller.as_mut().unwrap().phone = "13800002222".into();
    let up = push(&app, v2).await.unwrap();
    assert_eq!(
        up.outcome,
        pb::push_work_order_result::Outcome::Updated as i32
    );
    assert_eq!(up.changed_fields, vec!["caller.phone"]);
    let r = up.request.unwrap();
    assert_eq!((r.hotline_version, r.id.as_str()), (2, sr.id.as_str()));
    assert_eq!(r.applicant.unwrap().phone, "138****2222");
    // Version 1 arriving late is ignored and says so.
    let late = push(&app, work_order("2026112500123", 1)).await.unwrap();
    assert_eq!(
        late.outcome,
        pb::push_work_order_result::Outcome::Stale as i32
    );
    assert!(late.message.contains("older"), "{}", late.message);
    assert_eq!(
        late.request.unwrap().applicant.unwrap().phone,
        "138****2222"
    );
    assert_eq!(app.count("SELECT count(*) FROM service_requests").await, 1);
    // Stored encrypted: no plaintext phone anywhere.
    assert_eq!(
        app.count("SELECT count(*) FROM service_requests WHERE position(convert_to('13800002222', 'UTF8') in applicant_enc) > 0")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE after::text LIKE '%1380000%'")
            .await,
        0
    );
    // Bad input names its fields; only the hotline (or an admin) may push.
    let bad = pb::WorkOrder {
        order_no: "no spaces".into(),
        version: 0,
        ..Default::default()
    };
    let mut v = violations(&push(&app, bad).await.unwrap_err());
    v.sort();
    assert_eq!(
        v,
        vec![
            "caller.name",
            "caller.phone",
            "content",
            "kind",
            "order_no",
            "region_code",
            "version"
        ]
    );
    let e = app
        .hotline(Some(&clerk(&app)))
        .await
        .push_work_order(work_order("X-1", 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // A hotline scoped to another county cannot place orders in 打通镇.
    let elsewhere = app.token("hotline-x", &["hotline"], "500112");
    let e = app
        .hotline(Some(&elsewhere))
        .await
        .push_work_order(work_order("X-2", 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_located_order_joins_the_grid_case_and_12345_hears_it_move() {
    // Real time: the grid report is stamped with it, and merging looks at the time gap.
    let (app, _clock) = workflow::town_at(Utc::now()).await;
    // The grid worker's report of the collapsed wall.
    let case = workflow::new_case(&app, "0202", WALL).await;
    // 12345's order 20 m away, in its own category code (HL-0307 → 0202).
    let mut o = work_order("2026112500123", 1);
    o.location = Some(pb::LatLng {
        lat: WALL.0 + 0.00018,
        lng: WALL.1,
    });
    o.category_code = "HL-0307".into();
    o.received_at = Some(timestamp(Utc::now()));
    let r = push(&app, o).await.unwrap();
    assert_eq!(
        r.outcome,
        pb::push_work_order_result::Outcome::Created as i32
    );
    assert_eq!(r.case_id, case.case_id, "one event, one case");
    let sr = r.request.unwrap();
    let case = workflow::get(&app, &case.case_id).await;
    assert_eq!(case.report_ids.len(), 2);

    // The command centre runs the case; the request follows it.
    let op = operator(&app);
    let case = workflow::act(&app, &op, workflow::step(&case, CaseAction::Register))
        .await
        .unwrap();
    let case = workflow::act(&app, &op, workflow::dispatch(&case, ZFJ, 3))
        .await
        .unwrap();
    let zfj = handler(&app, ZFJ);
    let case = workflow::act(&app, &zfj, workflow::step(&case, CaseAction::Sign))
        .await
        .unwrap();
    let view = app
        .requests(Some(&clerk(&app)))
        .await
        .get_service_request(pb::GetServiceRequestRequest { id: sr.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.status, pb::ServiceRequestStatus::SignedFor as i32);
    assert_eq!(view.assignee, ZFJ);
    let updates = pull(&app, "", 100).await;
    assert_eq!(updates.updates.len(), 1);
    let u = &updates.updates[0];
    assert_eq!(u.kind, pb::UpdateKind::UpdateSigned as i32);
    assert_eq!(
        (u.order_no.as_str(), u.unit.as_str()),
        ("2026112500123", ZFJ)
    );
    let case = workflow::act(&app, &zfj, workflow::step(&case, CaseAction::Feedback))
        .await
        .unwrap();
    let close = pb::TransitionCaseRequest {
        comment: "围墙已清理并设置警示".into(),
        ..workflow::step(&case, CaseAction::VerifyOk)
    };
    workflow::act(&app, &op, close).await.unwrap();
    let more = pull(&app, &updates.next_cursor, 100).await;
    assert_eq!(more.updates.len(), 1);
    assert_eq!(more.updates[0].kind, pb::UpdateKind::UpdateReplied as i32);
    assert_eq!(more.updates[0].text, "围墙已清理并设置警示");
    assert_ne!(more.updates[0].update_id, u.update_id);
    // Nothing new: the cursor stays.
    let none = pull(&app, &more.next_cursor, 100).await;
    assert!(none.updates.is_empty());
    assert_eq!(none.next_cursor, more.next_cursor);
    // The same pull again gives the same ids (stable update ids, at-least-once).
    let replay = pull(&app, &updates.next_cursor, 100).await;
    assert_eq!(replay.updates[0].update_id, more.updates[0].update_id);

    // 12345 calls back: 不满意 → the request reopens (重办) to the unit that handled it.
    let h = hotline(&app);
    let view = app
        .requests(Some(&h))
        .await
        .get_service_request(pb::GetServiceRequestRequest { id: sr.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.status, pb::ServiceRequestStatus::Replied as i32);
    let reopened = act(&app, &h, callback(&view, pb::Satisfaction::Dissatisfied))
        .await
        .unwrap();
    assert_eq!(reopened.status, pb::ServiceRequestStatus::Assigned as i32);
    assert_eq!(
        (reopened.assignee.as_str(), reopened.reopen_count),
        (ZFJ, 1)
    );
    // The hotline may not assign or archive.
    let e = act(&app, &h, assign(&reopened, BMFW)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Out of scope for a hotline of another county.
    let other = app.token("hotline-x", &["hotline"], "500112");
    let theirs = app
        .hotline(Some(&other))
        .await
        .pull_updates(pb::PullUpdatesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.updates.is_empty());
}

#[tokio::test]
async fn pull_updates_resumes_without_gaps_or_repeats() {
    let (app, _clock) = workflow::town_at(workflow::local("2026-11-25 09:10")).await;
    for i in 0..5 {
        let sr = push(&app, work_order(&format!("P-{i}"), 1))
            .await
            .unwrap()
            .request
            .unwrap();
        sign_and_reply(&app, &sr).await;
    }
    let all = pull(&app, "", 1000).await.updates;
    assert_eq!(all.len(), 10);
    let mut cursor = String::new();
    let mut seen = Vec::new();
    loop {
        let page = pull(&app, &cursor, 3).await;
        if page.updates.is_empty() {
            break;
        }
        seen.extend(page.updates.iter().map(|u| u.update_id.clone()));
        cursor = page.next_cursor;
    }
    let ids: Vec<String> = all.iter().map(|u| u.update_id.clone()).collect();
    assert_eq!(seen, ids);
    // Per order: 签收 before 回复.
    for i in 0..5 {
        let kinds: Vec<i32> = all
            .iter()
            .filter(|u| u.order_no == format!("P-{i}"))
            .map(|u| u.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                pb::UpdateKind::UpdateSigned as i32,
                pb::UpdateKind::UpdateReplied as i32
            ]
        );
    }
    let e = app
        .hotline(Some(&hotline(&app)))
        .await
        .pull_updates(pb::PullUpdatesRequest {
            cursor: "abc".into(),
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), vec!["cursor"]);
}

/// What the receiver answers to one request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Answer {
    Ok,
    Fail,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub update_id: String,
    pub order_no: String,
    pub kind: String,
    pub signature_ok: bool,
    pub answered: Answer,
}

pub type Policy = Arc<dyn Fn(&Received, usize) -> Answer + Send + Sync>;

/// A real HTTP receiver on a fixed port that can go down and come back.
pub struct Receiver {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    policy: Arc<Mutex<Policy>>,
    tasks: Option<JoinSet<()>>,
}

impl Receiver {
    pub async fn start(policy: Policy) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut r = Receiver {
            addr,
            log: Arc::default(),
            policy: Arc::new(Mutex::new(policy)),
            tasks: None,
        };
        r.serve(listener);
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/12345/updates", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let (log, policy) = (self.log.clone(), self.policy.clone());
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, policy) = (log.clone(), policy.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (log, policy) = (log.clone(), policy.clone());
                        async move {
                            let h = |k: &str| {
                                req.headers()
                                    .get(k)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let (id, ts, sig) = (
                                h("x-gridhub-update-id"),
                                h("x-gridhub-timestamp"),
                                h("x-gridhub-signature"),
                            );
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let expected = gridhub::outbox::signature(
                                SECRET.as_bytes(),
                                ts.parse().unwrap_or(0),
                                &body,
                            );
                            let json: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            let mut got = Received {
                                update_id: id.clone(),
                                order_no: json["order_no"].as_str().unwrap_or("").into(),
                                kind: json["kind"].as_str().unwrap_or("").into(),
                                signature_ok: sig == expected
                                    && json["update_id"].as_str() == Some(id.as_str()),
                                answered: Answer::Ok,
                            };
                            let n = log.lock().unwrap().len();
                            got.answered = (policy.lock().unwrap())(&got, n);
                            log.lock().unwrap().push(got.clone());
                            let status = match got.answered {
                                Answer::Ok => 200,
                                Answer::Fail => 500,
                            };
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        self.tasks = Some(tasks);
    }

    /// Stops accepting and drops every open connection: connection refused until `up`.
    async fn down(&mut self) {
        if let Some(mut t) = self.tasks.take() {
            t.shutdown().await;
        }
    }

    async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn set(&self, p: Policy) {
        *self.policy.lock().unwrap() = p;
    }

    pub fn log(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}

async fn pushing_app(r: &Receiver, max_attempts: u32) -> TestApp {
    let (url, clock) = (
        r.url(),
        gridhub::clock::Clock::manual(workflow::local("2026-11-25 09:10")),
    );
    let app = TestApp::spawn_with(move |s| {
        s.workflow.clock = clock;
        s.hotline.endpoint = Some(url);
        s.hotline.secret = gridhub::config::HmacSecret(SECRET.as_bytes().to_vec());
        s.hotline.max_attempts = max_attempts;
        s.hotline.retry_base = Duration::from_millis(50);
        s.hotline.retry_max = Duration::from_millis(400);
        s.hotline.timeout = Duration::from_secs(2);
        s.hotline.poll = Duration::from_millis(20);
    })
    .await;
    app.seed_demo().await;
    app
}

/// Waits until `cond` holds on the outbox, or fails after 30 s.
async fn until(app: &TestApp, what: &str, q: &str, want: i64) {
    for _ in 0..600 {
        if app.count(q).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {} after 30 s, wanted {want}", app.count(q).await);
}

/// Checks the receiver's log: every update arrived with a valid signature, and the first
/// successful delivery of each work order's updates came in commit order.
async fn check_delivered(app: &TestApp, log: &[Received]) {
    let rows = app
        .sql()
        .await
        .query(
            "SELECT update_id::text, order_no FROM hotline_outbox ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    let want: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        log.iter().all(|r| r.signature_ok),
        "bad signature in {log:?}"
    );
    let delivered: Vec<&Received> = log.iter().filter(|r| r.answered == Answer::Ok).collect();
    let ids: HashSet<&str> = delivered.iter().map(|r| r.update_id.as_str()).collect();
    for (id, _) in &want {
        assert!(ids.contains(id.as_str()), "{id} never delivered");
    }
    let mut per_order: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut firsts = HashSet::new();
    for r in &delivered {
        if firsts.insert(r.update_id.as_str()) {
            per_order.entry(&r.order_no).or_default().push(&r.update_id);
        }
    }
    for (order, got) in per_order {
        let expected: Vec<&str> = want
            .iter()
            .filter(|(_, o)| o == order)
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(got, expected, "order of {order}");
    }
}

#[tokio::test]
async fn pushes_survive_failures_and_an_outage_in_order_and_signed() {
    // The first two attempts fail; then the receiver is down for a while; then it is back.
    let fail_first: Policy = Arc::new(|_, n| if n < 2 { Answer::Fail } else { Answer::Ok });
    let mut rx = Receiver::start(fail_first).await;
    let app = pushing_app(&rx, 50).await;
    let mut requests = Vec::new();
    for i in 0..4 {
        let sr = push(&app, work_order(&format!("W-{i}"), 1))
            .await
            .unwrap()
            .request
            .unwrap();
        requests.push(sign_and_reply(&app, &sr).await);
    }
    until(
        &app,
        "first deliveries",
        "SELECT count(*) FROM hotline_outbox WHERE state = 'DELIVERED'",
        8,
    )
    .await;
    // Down: the next updates cannot be delivered and wait, retried with back-off.
    rx.down().await;
    for sr in &requests {
        act(
            &app,
            &clerk(&app),
            callback(sr, pb::Satisfaction::Dissatisfied),
        )
        .await
        .unwrap();
    }
    let mut again = Vec::new();
    for sr in &requests {
        let cur = app
            .requests(Some(&clerk(&app)))
            .await
            .get_service_request(pb::GetServiceRequestRequest { id: sr.id.clone() })
            .await
            .unwrap()
            .into_inner();
        let h = handler(&app, BMFW);
        let cur = act(&app, &h, step(&cur, A::Sign)).await.unwrap();
        again.push(cur);
    }
    assert_eq!(app.count("SELECT count(*) FROM hotline_outbox").await, 12);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        app.count("SELECT count(*) FROM hotline_outbox WHERE state = 'PENDING' AND attempts > 0")
            .await
            >= 1,
        "attempts were made during the outage"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM hotline_outbox WHERE state = 'DELIVERED'")
            .await,
        8
    );
    rx.up().await;
    until(
        &app,
        "all delivered",
        "SELECT count(*) FROM hotline_outbox WHERE state = 'DELIVERED'",
        12,
    )
    .await;
    let log = rx.log();
    assert!(log.iter().filter(|r| r.answered == Answer::Fail).count() >= 2);
    check_delivered(&app, &log).await;
    assert!(log.iter().any(|r| r.kind == "SIGNED") && log.iter().any(|r| r.kind == "REPLIED"));
}

#[tokio::test]
async fn a_dead_receiver_for_one_order_makes_dead_letters_while_others_flow() {
    let policy: Policy = Arc::new(|r, _| {
        if r.order_no == "DEAD-1" {
            Answer::Fail
        } else {
            Answer::Ok
        }
    });
    let rx = Receiver::start(policy).await;
    let app = pushing_app(&rx, 3).await;
    let mut ids = Vec::new();
    for no in ["DEAD-1", "OK-1", "OK-2"] {
        let sr = push(&app, work_order(no, 1))
            .await
            .unwrap()
            .request
            .unwrap();
        sign_and_reply(&app, &sr).await;
        ids.push(sr.id);
    }
    until(
        &app,
        "others delivered",
        "SELECT count(*) FROM hotline_outbox WHERE state = 'DELIVERED'",
        4,
    )
    .await;
    until(
        &app,
        "dead letter",
        "SELECT count(*) FROM hotline_outbox WHERE state = 'DEAD'",
        1,
    )
    .await;
    // The dead order's second update waits behind its first: order is kept.
    let held = app
        .count("SELECT count(*) FROM hotline_outbox WHERE order_no = 'DEAD-1' AND state = 'PENDING' AND attempts = 0")
        .await;
    assert_eq!(held, 1);
    let tries = rx.log().iter().filter(|r| r.order_no == "DEAD-1").count();
    assert_eq!(tries, 3, "max_attempts attempts, then a dead letter");
    // A request's page shows its order's updates and how their pushes went.
    let shown = |sr: pb::ServiceRequest| {
        sr.hotline_updates
            .iter()
            .map(|u| {
                (
                    u.kind(),
                    u.delivery.clone(),
                    u.attempts,
                    u.delivered_at.is_some(),
                )
            })
            .collect::<Vec<_>>()
    };
    let get = |id: String| {
        let app = &app;
        async move {
            app.requests(Some(&clerk(app)))
                .await
                .get_service_request(pb::GetServiceRequestRequest { id })
                .await
                .unwrap()
                .into_inner()
        }
    };
    use pb::UpdateKind::{UpdateReplied, UpdateSigned};
    assert_eq!(
        shown(get(ids[0].clone()).await),
        [
            (UpdateSigned, "DEAD".to_owned(), 3, false),
            (UpdateReplied, "PENDING".to_owned(), 0, false),
        ]
    );
    assert_eq!(
        shown(get(ids[1].clone()).await),
        [
            (UpdateSigned, "DELIVERED".to_owned(), 1, true),
            (UpdateReplied, "DELIVERED".to_owned(), 1, true),
        ]
    );
    // Lists leave them out.
    let listed = app
        .requests(Some(&clerk(&app)))
        .await
        .list_service_requests(pb::ListServiceRequestsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!listed.service_requests.is_empty());
    assert!(
        listed
            .service_requests
            .iter()
            .all(|r| r.hotline_updates.is_empty())
    );
    // The operator fixes the receiver and re-queues (what `gridhub outbox retry` does).
    rx.set(Arc::new(|_, _| Answer::Ok));
    let state = app.state().clone();
    let mut conn = state.app.pool.get().await.unwrap();
    let n = gridhub::store::requests::requeue(&mut conn, None, Utc::now())
        .await
        .unwrap();
    assert_eq!(n, 1);
    until(
        &app,
        "all delivered",
        "SELECT count(*) FROM hotline_outbox WHERE state = 'DELIVERED'",
        6,
    )
    .await;
    check_delivered(&app, &rx.log()).await;
}

#[tokio::test]
async fn two_replicas_deliver_every_update_once() {
    let rx = Receiver::start(Arc::new(|_, _| Answer::Ok)).await;
    let app = pushing_app(&rx, 10).await;
    let replica = app.replica().await;
    for i in 0..15 {
        let sr = push(&app, work_order(&format!("R-{i}"), 1))
            .await
            .unwrap()
            .request
            .unwrap();
        sign_and_reply(&app, &sr).await;
    }
    until(
        &app,
        "all delivered",
        "SELECT count(*) FROM hotline_outbox WHERE state = 'DELIVERED'",
        30,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = rx.log();
    let mut seen = HashMap::new();
    for r in &log {
        *seen.entry(r.update_id.clone()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 30);
    assert!(seen.values().all(|n| *n == 1), "double sends: {seen:?}");
    check_delivered(&app, &log).await;
    replica.shutdown().await;
}

#[tokio::test]
async fn concurrent_pushes_of_one_order_make_one_request() {
    let (app, _clock) = workflow::town_at(workflow::local("2026-11-25 09:10")).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = app.hotline(Some(&hotline(&app))).await;
        // Half of them push another order at the same time, so groups mix keys.
        let no = if i % 2 == 0 { "C-1" } else { "C-2" };
        tasks.push(tokio::spawn(async move {
            let mut c = client;
            c.push_work_order(work_order(no, 1))
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut created = HashMap::new();
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        let sr = r.request.unwrap();
        if r.outcome == pb::push_work_order_result::Outcome::Created as i32 {
            *created.entry(sr.hotline_order_no.clone()).or_insert(0) += 1;
        } else {
            assert_eq!(
                r.outcome,
                pb::push_work_order_result::Outcome::Unchanged as i32
            );
        }
        ids.entry(sr.hotline_order_no).or_default().insert(sr.id);
    }
    assert_eq!(created.get("C-1"), Some(&1));
    assert_eq!(created.get("C-2"), Some(&1));
    assert!(ids.values().all(|s| s.len() == 1), "{ids:?}");
    assert_eq!(app.count("SELECT count(*) FROM service_requests").await, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE action = 'work_order.receive'")
            .await,
        2
    );
}
