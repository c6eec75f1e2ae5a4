//! The audit chain's sealer, a background task of every server: it seals the events of
//! committed transactions into the chain (`store::audit::seal`) and keeps the signed
//! checkpoints of its head ([`Anchor`]).

use diesel_async::SimpleAsyncConnection;

use crate::anchor::Anchor;
use crate::store::audit;

/// A server's sealer: seals after each audited commit of this process (see [`audit::committed`]) and
/// at least every [`Sealer::POLL`] (for the commits of other replicas and of the CLI).
pub struct Sealer;

impl Sealer {
    pub const POLL: std::time::Duration = std::time::Duration::from_millis(50);
    /// How long a woken sealer waits for more commits before sealing.
    pub const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

    /// How often the sealer vacuums the pending table (a queue of short-lived rows: autovacuum
    /// looks at it only once a minute, and dead rows slow every look for pending ones).
    pub const VACUUM: std::time::Duration = std::time::Duration::from_secs(1);

    /// Runs until `stop` turns true; records a checkpoint of the head in `anchor` whenever
    /// it moved, at most every [`Anchor::EVERY`].
    pub async fn run(
        pool: crate::store::Pool,
        anchor: std::sync::Arc<Anchor>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut vacuumed = std::time::Instant::now();
        let mut anchored: Option<std::time::Instant> = None;
        loop {
            // Register before sealing, so a commit during the seal wakes the next round.
            let woken = audit::woken();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match pool.get().await {
                Ok(mut conn) => {
                    if let Err(e) = audit::seal(&mut conn).await {
                        tracing::warn!(error = %e, "audit: sealing failed; retrying");
                    }
                    if anchored.is_none_or(|t| t.elapsed() >= Anchor::EVERY) {
                        anchored = Some(std::time::Instant::now());
                        if let Err(e) = anchor.record(&mut conn).await {
                            tracing::warn!(error = %e, "audit: recording a checkpoint failed");
                        }
                    }
                    if vacuumed.elapsed() >= Self::VACUUM {
                        vacuumed = std::time::Instant::now();
                        if let Err(e) = conn.batch_execute("VACUUM audit_pending").await {
                            tracing::debug!(error = %e, "audit: vacuum of the pending table failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "audit: no connection to seal with"),
            }
            let was_woken = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = &mut woken => true,
                _ = tokio::time::sleep(Self::POLL) => false,
            };
            if was_woken {
                // Let a few more commits gather: one seal (and one fsync) for them all.
                tokio::time::sleep(Self::GATHER).await;
            }
        }
    }
}
