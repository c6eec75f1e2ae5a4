//! Group commit for single report submissions.
//!
//! Each `SubmitReport` is a tiny transaction whose fixed costs (locks, the audit-chain append,
//! the durable commit) dwarf the report itself, and the audit append serializes every writer.
//! The intake therefore runs at most [`groups`](crate::app::group::groups) transactions at a time
//! (one per core); reports that arrive while they run queue up and go together in the next
//! transaction, each with its own sender (scope check, `submitted_by`, audit actor) and its own
//! result. Under light load a report goes alone and at once; under heavy load the cost per
//! report approaches the batch path's.

use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::app::error::ApiError;
use crate::app::mutation;
use crate::store::Pool;
use crate::store::audit::Actor;
use crate::store::grid_index::GridCache;
use crate::store::reports::{self, Item, ItemResult};

/// Most reports in one group.
pub const MAX_GROUP: usize = 500;

struct Job {
    item: Item,
    reply: oneshot::Sender<Result<ItemResult, String>>,
}

/// The queue of single submissions.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Job>,
}

impl Intake {
    /// Starts the collector on the current runtime; it ends when the last `Intake` is dropped.
    pub fn start(pool: Pool, grids: Arc<GridCache>, retention: chrono::Duration) -> Intake {
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(collect(rx, pool, grids, retention));
        Intake { tx }
    }

    /// Stores one report (in a group with whatever else is waiting) and returns its result.
    pub async fn submit(&self, item: Item) -> Result<ItemResult, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { item, reply })
            .await
            .map_err(|_| ApiError::Unavailable("intake stopped".into()))?;
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(ApiError::Unavailable(e)),
            Err(_) => Err(ApiError::Unavailable("intake dropped the report".into())),
        }
    }
}

/// What a sender hears when its report could not be stored (details stay in the log).
const FAILED: &str = "report intake failed; retry with the same client_report_id";

async fn run(
    pool: &Pool,
    grids: &Arc<GridCache>,
    items: Vec<Item>,
    retention: chrono::Duration,
) -> Result<Vec<ItemResult>, ApiError> {
    let grids = grids.clone();
    let system = Actor {
        sub: "gridhub-intake".into(),
        roles: Vec::new(),
        request_id: String::new(),
    };
    // The intake records its audit events itself, each by its report's sender.
    mutation::transact_on(pool, system, move |conn, _| {
        async move { Ok(reports::ingest(conn, &grids, items, retention).await?) }.boxed()
    })
    .await
}

async fn collect(
    mut rx: mpsc::Receiver<Job>,
    pool: Pool,
    grids: Arc<GridCache>,
    retention: chrono::Duration,
) {
    let slots = Arc::new(Semaphore::new(crate::app::group::groups()));
    loop {
        // Wait for a free slot first: while all slots are busy, reports queue up and then
        // leave together.
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
        let (pool, grids) = (pool.clone(), grids.clone());
        tokio::spawn(async move {
            let (items, replies): (Vec<Item>, Vec<_>) =
                jobs.into_iter().map(|j| (j.item, j.reply)).unzip();
            match run(&pool, &grids, items.clone(), retention).await {
                Ok(results) => {
                    for (reply, r) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(r));
                    }
                }
                Err(e) if items.len() > 1 => {
                    // One report must not take its neighbours down: retry each alone.
                    tracing::warn!(error = %e, reports = items.len(), "grouped intake failed; retrying one by one");
                    for (item, reply) in items.into_iter().zip(replies) {
                        let r = run(&pool, &grids, vec![item], retention)
                            .await
                            .map(|mut v| v.pop());
                        let _ = reply.send(match r {
                            Ok(Some(r)) => Ok(r),
                            Ok(None) | Err(_) => Err(FAILED.to_owned()),
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "intake failed");
                    for reply in replies {
                        let _ = reply.send(Err(FAILED.to_owned()));
                    }
                }
            }
            drop(permit);
        });
    }
}
