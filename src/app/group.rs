//! Group commit for small independent mutations (12345 work orders).
//!
//! Every audited transaction appends to the one hash chain and holds the chain's lock while
//! it commits, and each small transaction costs its round trips and a durable commit. A
//! [`Group`] runs at most [`groups`] transactions at a time; requests that arrive meanwhile
//! queue and go together in the next one, in the order of their keys (so two groups take
//! per-key locks in the same order and cannot deadlock), with one chain append and one durable
//! commit for all. Each answer is sent only after the commit. The requests of a group share a
//! context ([`Shared`]): it may lock and read what all of them need in one round trip before
//! the first, and write what they queued in one statement after the last. A request that
//! writes itself first sets a savepoint ([`Step::writes`]), so its failure rolls back alone; a
//! failed statement outside a savepoint, or a failed queued write, fails the whole group and
//! every request in it is told to send again (the 12345 push is idempotent).

use std::sync::Arc;

use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::app::error::ApiError;
use crate::app::mutation;
use crate::store::Pool;
use crate::store::audit::{Actor, NewEvent};

/// Transactions of one group commit running at once: one per core (2 to 8). Fewer, larger
/// groups share their fixed costs (round trips, the chain append, the commit) among more
/// requests. On 2 cores, 2 groups instead of 4 measured less machine CPU per request and a
/// shorter tail for both users: `bench ingest` (single submits, same throughput, ~20 % less
/// CPU) and `bench hotline` (work orders 2,268–2,560 → 2,643–2,840/s alone, 1,799 → 2,115/s
/// with the handlers).
pub fn groups() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}
/// Most requests in one transaction.
pub const MAX_GROUP: usize = 200;

/// What the requests of one group share (created empty for each group), and the group's hooks
/// around them.
pub trait Shared: Default + Send + 'static {
    /// Runs before the first request, with the keys of all requests of the group (sorted; a
    /// key may repeat).
    fn prepare<'c>(
        &'c mut self,
        _conn: &'c mut AsyncPgConnection,
        _keys: &'c [String],
    ) -> BoxFuture<'c, Result<(), ApiError>> {
        async { Ok(()) }.boxed()
    }

    /// Runs after the last request, before the audit append: writes what requests queued.
    /// An error fails the whole group.
    fn flush<'c>(
        &'c mut self,
        _conn: &'c mut AsyncPgConnection,
    ) -> BoxFuture<'c, Result<(), ApiError>> {
        async { Ok(()) }.boxed()
    }
}

impl Shared for () {}

/// A request's place in its group. A request calls [`Step::writes`] before its first write,
/// which sets its savepoint: its failure then rolls back only its own work. A request that
/// fails without having written needs no savepoint (most requests read, decide and queue their
/// writes in the shared context, saving a round trip).
pub struct Step {
    index: usize,
    saved: bool,
}

impl Step {
    /// Sets this request's savepoint, once.
    pub async fn writes(&mut self, conn: &mut AsyncPgConnection) -> Result<(), ApiError> {
        if !self.saved {
            conn.batch_execute(&format!("SAVEPOINT job{}", self.index))
                .await?;
            self.saved = true;
        }
        Ok(())
    }
}

/// One mutation: it pushes its audit events and returns its answer.
pub type Change<R, S> = Box<
    dyn for<'c> FnOnce(
            &'c mut AsyncPgConnection,
            &'c mut Vec<NewEvent>,
            &'c mut S,
            &'c mut Step,
        ) -> BoxFuture<'c, Result<R, ApiError>>
        + Send,
>;

struct Job<R, S> {
    key: String,
    actor: Actor,
    change: Change<R, S>,
    reply: oneshot::Sender<Result<R, ApiError>>,
}

/// A queue of mutations committed in groups.
pub struct Group<R, S = ()> {
    tx: mpsc::Sender<Job<R, S>>,
}

impl<R, S> Clone for Group<R, S> {
    fn clone(&self) -> Self {
        Group {
            tx: self.tx.clone(),
        }
    }
}

impl<R: Send + 'static, S: Shared> Group<R, S> {
    /// Starts the collector on the current runtime; it ends when the last `Group` is dropped.
    pub fn start(pool: Pool) -> Group<R, S> {
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(collect(rx, pool));
        Group { tx }
    }

    /// Runs `change` (by `actor`, ordered by `key` within its group) and returns its answer
    /// once committed.
    pub async fn run(
        &self,
        key: String,
        actor: Actor,
        change: Change<R, S>,
    ) -> Result<R, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                key,
                actor,
                change,
                reply,
            })
            .await
            .map_err(|_| ApiError::Unavailable("the group commit stopped".into()))?;
        rx.await
            .map_err(|_| ApiError::Unavailable("the group commit dropped the request".into()))?
    }
}

async fn collect<R: Send + 'static, S: Shared>(mut rx: mpsc::Receiver<Job<R, S>>, pool: Pool) {
    let slots = Arc::new(Semaphore::new(groups()));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            run_group(&pool, jobs).await;
            drop(permit);
        });
    }
}

async fn run_group<R: Send + 'static, S: Shared>(pool: &Pool, mut jobs: Vec<Job<R, S>>) {
    jobs.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<String> = jobs.iter().map(|j| j.key.clone()).collect();
    let (work, replies): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .map(|j| ((j.actor, j.change), j.reply))
        .unzip();
    let system = Actor {
        sub: "gridhub-group".into(),
        roles: Vec::new(),
        request_id: String::new(),
    };
    let outcome = mutation::transact_on(pool, system, move |conn, audit| {
        async move {
            let mut results = Vec::with_capacity(work.len());
            let mut shared = S::default();
            shared.prepare(conn, &keys).await?;
            for (i, (actor, change)) in work.into_iter().enumerate() {
                let mut step = Step {
                    index: i,
                    saved: false,
                };
                let mut events = Vec::new();
                let r = change(conn, &mut events, &mut shared, &mut step).await;
                match &r {
                    Ok(_) => audit.extend(events.into_iter().map(|e| e.by(actor.clone()))),
                    // Savepoints nest without being released (a release would be one more
                    // round trip each; the commit releases them all).
                    Err(_) if step.saved => {
                        conn.batch_execute(&format!("ROLLBACK TO SAVEPOINT job{i}"))
                            .await?
                    }
                    // It wrote nothing, but a failed statement would have aborted the
                    // transaction: then the whole group fails.
                    Err(_) => {
                        diesel::sql_query("SELECT 1").execute(conn).await?;
                    }
                }
                results.push(r);
            }
            shared.flush(conn).await?;
            Ok(results)
        }
        .boxed()
    })
    .await;
    match outcome {
        Ok(results) => {
            for (reply, r) in replies.into_iter().zip(results) {
                let _ = reply.send(r);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, requests = replies.len(), "group commit failed");
            for reply in replies {
                let _ = reply.send(Err(ApiError::Unavailable(
                    "the transaction did not commit; send again".into(),
                )));
            }
        }
    }
}
