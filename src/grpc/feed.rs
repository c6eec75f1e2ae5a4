//! The live feed behind `WatchCases`.
//!
//! Events are the audit trail's own events about cases, reports and alerts (see
//! `store::feed`): written in the transaction of the change, in commit order, numbered by the
//! chain's `seq`, which is also the resume token. A trigger on `audit_events` sends one small
//! NOTIFY per transaction; each server replica keeps one dedicated LISTEN connection, reads
//! what is new from the table (falling back to polling every second if the connection is
//! lost) and broadcasts it to its subscribers over a bounded channel. A subscriber that falls
//! behind (the channel overwrote events it had not taken) catches up from the table, so a slow
//! client never slows the others and never misses an event.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tonic::Status;

use super::{convert, pb};
use crate::domain::payloads::{CaseBefore, CaseChange, ReportAccepted, ReportSplit};
use crate::store::audit::Event;
use crate::store::{self, DbUrl, Pool};

/// Events kept for subscribers that are momentarily slower than the feed.
const BUFFER: usize = 4096;
/// Events read per query.
const PAGE: i64 = 1000;
/// Polling interval when no notification arrives (and while the listener reconnects).
const POLL: Duration = Duration::from_secs(1);

/// One event of the feed, with what subscribers filter on.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub seq: i64,
    pub region_code: String,
    pub event: pb::CaseEvent,
}

impl FeedEvent {
    /// Whether a subscriber with this filter gets the event.
    pub fn matches(&self, f: &Filter) -> bool {
        let e = &self.event;
        if !f.scope.contains(&self.region_code) {
            return false;
        }
        if e.kind == "ALERT" {
            return !f.exclude_alerts
                && f.category
                    .as_deref()
                    .is_none_or(|c| c == e.unified_category);
        }
        (f.statuses.is_empty() || f.statuses.contains(&e.to_status))
            && f.category
                .as_deref()
                .is_none_or(|c| c == e.unified_category)
    }
}

/// What a subscriber asked for (within its scope).
#[derive(Debug, Clone)]
pub struct Filter {
    /// The region the subscriber watches (its own, or a subtree of it).
    pub scope: crate::domain::principal::Scope,
    pub statuses: Vec<String>,
    pub category: Option<String>,
    pub exclude_alerts: bool,
}

/// The feed event of an audit event, if it is one.
pub fn to_event(e: &Event) -> Option<FeedEvent> {
    let after = e.after.as_ref();
    let mut ev = pb::CaseEvent {
        resume_token: e.seq.to_string(),
        occurred_at: Some(convert::timestamp(e.occurred_at)),
        actor: e.actor.clone(),
        region_code: e.region_code.clone(),
        ..Default::default()
    };
    // Which case an event is about is decided once, for the feed and PullChanges alike.
    ev.case_id = store::feed::case_of(e)
        .map(|u| u.to_string())
        .unwrap_or_default();
    match (e.entity_type.as_str(), e.action.as_str()) {
        ("case", action) => {
            let c = CaseChange::read(after).unwrap_or_default();
            ev.kind = match action {
                "case.merge" => "MERGED".to_owned(),
                "case.absorb" => "ABSORBED".to_owned(),
                _ => c.kind,
            };
            ev.from_status = CaseBefore::read(e.before.as_ref())
                .unwrap_or_default()
                .status;
            ev.case_no = c.case_no;
            ev.to_status = c.status;
            ev.version = c.version;
            ev.assignee = c.assignee;
            ev.unified_category = c.unified_category;
            ev.comment = c.comment;
            ev.deadline = c.deadline.map(convert::timestamp);
        }
        ("report", "report.accept") => {
            let r = ReportAccepted::read(after).unwrap_or_default();
            ev.case_no = r.case_no;
            ev.unified_category = r.unified_category;
            if r.outcome == "CREATED" {
                ev.kind = "CREATED".to_owned();
                ev.to_status = "REPORTED".to_owned();
                ev.version = 1;
            } else {
                ev.kind = "REPORT_ADDED".to_owned();
            }
        }
        ("report", "report.split") => {
            let r = ReportSplit::read(after).unwrap_or_default();
            ev.case_no = r.case_no;
            ev.unified_category = r.unified_category.unwrap_or_default();
            ev.comment = r.comment.unwrap_or_default();
            ev.kind = "SPLIT".to_owned();
            ev.to_status = "REPORTED".to_owned();
        }
        ("alert", _) => {
            let a: store::alerts::Alert = serde_json::from_value(after?.clone()).ok()?;
            ev.kind = "ALERT".to_owned();
            ev.unified_category = a.category.clone();
            ev.alert = Some(convert::alert(a));
        }
        _ => return None,
    }
    Some(FeedEvent {
        seq: e.seq,
        region_code: e.region_code.clone(),
        event: ev,
    })
}

/// The feed of one server: a broadcast of every committed feed event.
#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<FeedEvent>>,
    stop: watch::Receiver<bool>,
}

impl Feed {
    /// Starts following the database at `url` (LISTEN) and `pool` (reads) until `stop`.
    pub fn start(url: DbUrl, pool: Pool, stop: watch::Receiver<bool>) -> (Feed, JoinHandle<()>) {
        let (tx, _) = broadcast::channel(BUFFER);
        let feed = Feed {
            tx: tx.clone(),
            stop: stop.clone(),
        };
        let task = tokio::spawn(follow(url, pool, tx, stop));
        (feed, task)
    }

    /// A receiver of events committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedEvent>> {
        self.tx.subscribe()
    }

    /// Turns true when the server shuts down: subscribers end their streams.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }
}

/// A LISTEN connection: yields () per notification; the channel closes when the connection is
/// lost, and the connection closes when the receiver is dropped.
async fn listen(url: &DbUrl) -> Result<mpsc::Receiver<()>, tokio_postgres::Error> {
    let (client, mut conn) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls).await?;
    let (ntx, nrx) = mpsc::channel(1);
    let poller = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        loop {
            tokio::select! {
                _ = ntx.closed() => break,
                m = messages.next() => match m {
                    // A full channel already holds a wake-up: nothing is lost by dropping this one.
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                        let _ = ntx.try_send(());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
            }
        }
    });
    client.batch_execute("LISTEN gridhub_feed").await?;
    // The client keeps the session open until the poller ends.
    tokio::spawn(async move {
        let _ = poller.await;
        drop(client);
    });
    Ok(nrx)
}

async fn follow(
    url: DbUrl,
    pool: Pool,
    tx: broadcast::Sender<Arc<FeedEvent>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last: Option<i64> = None;
    let mut wake: Option<mpsc::Receiver<()>> = None;
    // Said once per outage, and not at all while the database is still starting (or not yet
    // migrated: the hub listens before it migrates).
    let (mut listened, mut listen_failing, mut read_failing) = (false, false, false);
    let mut read_once = false;
    loop {
        if *stop.borrow() {
            return;
        }
        if wake.is_none() {
            match listen(&url).await {
                Ok(w) => {
                    if listen_failing && listened {
                        tracing::info!("feed: listening again");
                    }
                    wake = Some(w);
                    (listened, listen_failing) = (true, false);
                }
                Err(e) if !listen_failing => {
                    listen_failing = true;
                    if listened {
                        tracing::warn!(error = %e, "feed: lost LISTEN; polling every second until it is back");
                    } else {
                        tracing::debug!(error = %e, "feed: database not reachable yet; polling");
                    }
                }
                Err(_) => {}
            }
        }
        match read_new(&pool, &tx, &mut last).await {
            Ok(()) => (read_failing, read_once) = (false, true),
            Err(e) if !read_failing && read_once => {
                read_failing = true;
                tracing::warn!(error = %e, "feed: reading events failed; retrying");
            }
            Err(_) => {}
        }
        let notified = async {
            match wake.as_mut() {
                Some(w) => w.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            alive = notified => if !alive { wake = None },
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Broadcasts every feed event after `last` (the first call only sets `last` to the head).
/// `last` moves to the chain's head even when the events since were none of the feed's
/// (work orders, catalog versions …): every event up to the head has committed (sequence
/// numbers are taken under the chain's lock, held until commit), so the next read starts
/// there instead of scanning them again.
async fn read_new(
    pool: &Pool,
    tx: &broadcast::Sender<Arc<FeedEvent>>,
    last: &mut Option<i64>,
) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    let head = store::feed::head(&mut conn).await?;
    let Some(mut seq) = *last else {
        *last = Some(head);
        return Ok(());
    };
    // Nobody is watching: nothing to read. Checked after reading the head, so a subscriber
    // that arrives now reads its own start from the table at or after `head` and misses nothing.
    if tx.receiver_count() == 0 {
        *last = Some(head);
        return Ok(());
    }
    while seq < head {
        let events = store::feed::between(&mut conn, seq, head, PAGE).await?;
        for e in &events {
            seq = e.seq;
            if let Some(fe) = to_event(e) {
                // No receivers is fine: nobody is watching.
                let _ = tx.send(Arc::new(fe));
            }
        }
        *last = Some(seq);
        if (events.len() as i64) < PAGE {
            *last = Some(head);
            return Ok(());
        }
    }
    Ok(())
}

/// The response header of `WatchCases` holding the resume token of the stream's start.
pub const RESUME_HEADER: &str = "gridhub-resume-token";

/// Events read per catch-up query.
const CATCH_UP_PAGE: i64 = 500;

/// One WatchCases subscriber: catch up from the table after `last`, then follow the live
/// broadcast; when it falls behind, catch up from the table again.
/// How a watch ends when its server goes away.
fn going_away() -> Status {
    Status::unavailable("server shutting down: reconnect and resume with your last resume_token")
}

pub async fn subscriber(
    pool: Pool,
    filter: Filter,
    mut last: i64,
    mut live: broadcast::Receiver<Arc<FeedEvent>>,
    tx: mpsc::Sender<Result<pb::CaseEvent, Status>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // Catch up.
        loop {
            let events = match pool.get().await {
                Ok(mut conn) => {
                    store::feed::after(&mut conn, last, &filter.scope, CATCH_UP_PAGE).await
                }
                Err(e) => {
                    let _ = tx
                        .send(Err(crate::app::error::ApiError::from(e).into()))
                        .await;
                    return;
                }
            };
            let events = match events {
                Ok(e) => e,
                Err(e) => {
                    let _ = tx
                        .send(Err(crate::app::error::ApiError::from(e).into()))
                        .await;
                    return;
                }
            };
            for e in &events {
                last = e.seq;
                if let Some(fe) = to_event(e).filter(|fe| fe.matches(&filter))
                    && tx.send(Ok(fe.event)).await.is_err()
                {
                    return;
                }
            }
            if (events.len() as i64) < CATCH_UP_PAGE {
                break;
            }
        }
        // Follow.
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                // The only change is to true: shutting down. The stream ends UNAVAILABLE, not
                // OK: the feed is not finished, the client reconnects (to another replica)
                // and resumes with its last resume token.
                _ = stop.changed() => {
                    let _ = tx.send(Err(going_away())).await;
                    return;
                }
                got = live.recv() => match got {
                    Ok(fe) => {
                        if fe.seq <= last {
                            continue;
                        }
                        last = fe.seq;
                        if fe.matches(&filter) && tx.send(Ok(fe.event.clone())).await.is_err() {
                            return;
                        }
                    }
                    // Fell behind: the table has everything.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::info!(skipped = n, "watch subscriber fell behind; catching up from the table");
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let _ = tx.send(Err(going_away())).await;
                        return;
                    }
                },
            }
        }
    }
}
