//! Group commit for small independent mutations (12345 work orders).
//!
//! Every audited transaction appends to the one hash chain and holds the chain's lock until
//! it commits, so on this hardware single small transactions top out at several hundred per
//! second however many clients send them. A [`Group`] runs at most [`GROUPS`] transactions at
//! a time; requests that arrive meanwhile queue and go together in the next one, each in a
//! savepoint of its own (one failing rolls back alone), in the order of their keys (so two
//! groups take per-key locks in the same order and cannot deadlock), with one chain append and
//! one durable commit for all. Each answer is sent only after the commit.

use std::sync::Arc;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::grpc::error::ApiError;
use crate::grpc::mutation;
use crate::store::Pool;
use crate::store::audit::{Actor, NewEvent};

/// Transactions running at once.
pub const GROUPS: usize = 2;
/// Most requests in one transaction.
pub const MAX_GROUP: usize = 200;

/// One mutation: it pushes its audit events and returns its answer.
pub type Change<R> = Box<
    dyn for<'c> FnOnce(
            &'c mut AsyncPgConnection,
            &'c mut Vec<NewEvent>,
        ) -> BoxFuture<'c, Result<R, ApiError>>
        + Send,
>;

struct Job<R> {
    key: String,
    actor: Actor,
    change: Change<R>,
    reply: oneshot::Sender<Result<R, ApiError>>,
}

/// A queue of mutations committed in groups.
pub struct Group<R> {
    tx: mpsc::Sender<Job<R>>,
}

impl<R> Clone for Group<R> {
    fn clone(&self) -> Self {
        Group {
            tx: self.tx.clone(),
        }
    }
}

impl<R: Send + 'static> Group<R> {
    /// Starts the collector on the current runtime; it ends when the last `Group` is dropped.
    pub fn start(pool: Pool) -> Group<R> {
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(collect(rx, pool));
        Group { tx }
    }

    /// Runs `change` (by `actor`, ordered by `key` within its group) and returns its answer
    /// once committed.
    pub async fn run(&self, key: String, actor: Actor, change: Change<R>) -> Result<R, ApiError> {
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

async fn collect<R: Send + 'static>(mut rx: mpsc::Receiver<Job<R>>, pool: Pool) {
    let slots = Arc::new(Semaphore::new(GROUPS));
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

async fn run_group<R: Send + 'static>(pool: &Pool, mut jobs: Vec<Job<R>>) {
    jobs.sort_by(|a, b| a.key.cmp(&b.key));
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
            for (actor, change) in work {
                let mut events = Vec::new();
                // A savepoint per request: its failure rolls back only its own work.
                let r = conn
                    .transaction::<R, ApiError, _>(async |c| change(c, &mut events).await)
                    .await;
                if r.is_ok() {
                    audit.extend(events.into_iter().map(|e| e.by(actor.clone())));
                }
                results.push(r);
            }
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
