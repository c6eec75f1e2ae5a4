//! Where a read that tolerates staleness runs: the dashboard, statistics, exports and the map.
//!
//! With a read replica configured (`--read-database-url`), such a read takes a connection from
//! the replica's pool and first asks the replica how far behind it is
//! ([`crate::store::replica_lag`]); within `--max-replica-lag` it reads there, otherwise — too
//! far behind, cut off from its primary, down — it reads on the primary. After a failed
//! attempt the replica is left alone for a moment, so an outage costs one connect attempt, not
//! one per read. Writes, and reads that must see the caller's own writes (a case after its
//! step, lists a screen reloads after acting), always use the primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::store::{self, Conn as PooledConnection, Pool};

use super::error::ApiError;

/// How long the replica is left alone after it failed to answer.
const BACKOFF: Duration = Duration::from_secs(2);

/// The replica (if any) and its bound.
#[derive(Clone)]
pub struct Reads {
    replica: Option<Pool>,
    max_lag: Duration,
    /// When the replica may be tried again (milliseconds since `epoch`; 0: now).
    retry_at: Arc<AtomicU64>,
    epoch: Instant,
}

impl Reads {
    /// Reads on the primary only.
    pub fn primary_only() -> Reads {
        Reads::new(None, Duration::ZERO)
    }

    pub fn new(replica: Option<Pool>, max_lag: Duration) -> Reads {
        Reads {
            replica,
            max_lag,
            retry_at: Arc::default(),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A connection for a read that tolerates staleness up to the bound: the replica's when
    /// it is within it, else the primary's.
    pub async fn stale_ok(&self, primary: &Pool) -> Result<PooledConnection, ApiError> {
        if let Some(replica) = &self.replica
            && self.now_ms() >= self.retry_at.load(Ordering::Relaxed)
        {
            match self.on_replica(replica).await {
                Ok(Some(conn)) => return Ok(conn),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "read replica unavailable; reading on the primary");
                    self.retry_at.store(
                        self.now_ms() + BACKOFF.as_millis() as u64,
                        Ordering::Relaxed,
                    );
                }
            }
        }
        Ok(primary.get().await?)
    }

    /// A replica connection when the replica is within the bound; `None` when it lags.
    async fn on_replica(&self, replica: &Pool) -> anyhow::Result<Option<PooledConnection>> {
        let mut conn = replica.get().await?;
        match store::replica_lag(&mut conn).await? {
            Some(lag) if lag <= self.max_lag => Ok(Some(conn)),
            lag => {
                tracing::debug!(?lag, bound = ?self.max_lag, "read replica behind; reading on the primary");
                Ok(None)
            }
        }
    }
}
