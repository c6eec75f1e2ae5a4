//! Pushing the 12345 updates from the outbox to the platform's endpoint.
//!
//! Each replica runs a [`Deliverer`] when an endpoint is configured. A step claims due
//! updates with `FOR UPDATE SKIP LOCKED` (rows another replica holds are skipped, so no update
//! is in flight twice), only the oldest undelivered update of each work order (so the order
//! per work order is kept, and nothing passes a dead letter), POSTs them concurrently and
//! records each outcome in the same transaction. A failure is retried with exponential
//! back-off and jitter; after `max_attempts` failures the update is a dead letter until an
//! operator re-queues it (`gridhub outbox retry`).
//!
//! The request: `POST <endpoint>` with the update as JSON and the headers
//! `X-Gridhub-Update-Id`, `X-Gridhub-Timestamp` (Unix seconds) and
//! `X-Gridhub-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. Any 2xx is
//! success. Delivery is at-least-once: a receiver recognises a repeat by its update id.

use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncConnection;
use futures::FutureExt;
use futures::future::join_all;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::error::ApiError;
use crate::config::HotlineSettings;
use crate::store::Pool;
use crate::store::requests::{self as db, OutboxRow};

/// Updates claimed per step.
pub const BATCH: i64 = 128;

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    format!("v1={}", hex::encode(crate::crypto::hmac(secret, &msg)))
}

/// The delay before retry number `attempts` (1 = the first retry): `base · 2^(attempts-1)`,
/// capped at `max`, then a random point in its upper half (jitter, so that a receiver coming
/// back is not hit by every sender at once).
pub fn backoff(base: Duration, max: Duration, attempts: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let d = exp.min(max);
    let half = d / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// Delivers the outbox of one replica.
pub struct Deliverer {
    pool: Pool,
    settings: HotlineSettings,
    endpoint: String,
    client: reqwest::Client,
}

impl Deliverer {
    /// A deliverer, or `None` when no endpoint is configured.
    pub fn new(pool: Pool, settings: HotlineSettings) -> anyhow::Result<Option<Deliverer>> {
        let Some(endpoint) = settings.endpoint.clone() else {
            return Ok(None);
        };
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Some(Deliverer {
            pool,
            settings,
            endpoint,
            client,
        }))
    }

    /// Runs until `stop` turns true (finishing the step under way).
    pub fn spawn(self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if *stop.borrow() {
                    return;
                }
                let sent = match self.step().await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "hotline outbox step failed");
                        0
                    }
                };
                if sent == 0 {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(self.settings.poll) => {}
                    }
                }
            }
        })
    }

    /// One round: claim, deliver, record. Returns the number of updates attempted.
    pub async fn step(&self) -> Result<usize, ApiError> {
        let mut conn = self.pool.get().await?;
        conn.transaction::<usize, ApiError, _>(async |conn| {
            let rows = db::claim_due(conn, Utc::now(), BATCH).await?;
            if rows.is_empty() {
                return Ok(0);
            }
            let results = join_all(rows.iter().map(|r| self.send(r).boxed())).await;
            let now = Utc::now();
            for (row, result) in rows.iter().zip(results) {
                match result {
                    Ok(()) => db::mark_delivered(conn, row.seq, now).await?,
                    Err(e) => {
                        let attempts = row.attempts as u32 + 1;
                        let next = (attempts < self.settings.max_attempts).then(|| {
                            now + backoff(
                                self.settings.retry_base,
                                self.settings.retry_max,
                                attempts,
                            )
                        });
                        if next.is_none() {
                            tracing::warn!(update_id = %row.update_id, order_no = %row.order_no, attempts, error = %e, "hotline update is a dead letter");
                        } else {
                            tracing::debug!(update_id = %row.update_id, attempts, error = %e, "hotline update delivery failed; will retry");
                        }
                        db::mark_failed(conn, row.seq, &e, next).await?;
                    }
                }
            }
            Ok(rows.len())
        })
        .await
    }

    async fn send(&self, row: &OutboxRow) -> Result<(), String> {
        let body = serde_json::to_vec(&row.payload).map_err(|e| e.to_string())?;
        let ts = Utc::now().timestamp();
        let resp = self
            .client
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .header("x-gridhub-update-id", row.update_id.to_string())
            .header("x-gridhub-timestamp", ts.to_string())
            .header(
                "x-gridhub-signature",
                signature(&self.settings.secret.0, ts, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| format!("request failed: {}", without_url(&e)))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

/// A reqwest error without the URL (it may carry credentials in its query).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "transport error".to_owned()
    };
    if let Some(src) = std::error::Error::source(e) {
        s.push_str(": ");
        s.push_str(&src.to_string());
    }
    s
}

/// `gridhub outbox …`: the 12345 updates waiting to be pushed.
#[derive(Debug, clap::Subcommand)]
pub enum OutboxCommand {
    /// List updates: dead letters by default.
    List {
        /// pending, delivered, dead or all.
        #[arg(long, default_value = "dead")]
        state: String,
        /// At most this many, oldest first.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Put dead letters back in the queue (all of them, or those named).
    Retry {
        /// Update ids; none: every dead letter.
        ids: Vec<uuid::Uuid>,
    },
}

/// `gridhub outbox list|retry`: operators look at and re-queue dead letters.
pub async fn run_cli(settings: &crate::config::Settings, cmd: OutboxCommand) -> anyhow::Result<()> {
    let db = crate::database::Database::start(settings).await?;
    db.migrate().await?;
    let result = async {
        let mut conn = crate::store::connect_one(&db.url).await?;
        match cmd {
            OutboxCommand::List { state, limit } => {
                let filter = match state.as_str() {
                    "all" => None,
                    "pending" => Some("PENDING"),
                    "delivered" => Some("DELIVERED"),
                    "dead" => Some("DEAD"),
                    other => anyhow::bail!("--state {other}: pending, delivered, dead or all"),
                };
                let rows = db::outbox(&mut conn, filter, limit.clamp(1, 100_000)).await?;
                println!("update_id\torder_no\tkind\tstate\tattempts\tcreated_at\tlast_error");
                for r in &rows {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        r.update_id,
                        r.order_no,
                        crate::domain::payloads::HotlineUpdate::read(&r.payload)
                            .unwrap_or_default()
                            .kind,
                        r.state,
                        r.attempts,
                        r.created_at.to_rfc3339(),
                        r.last_error
                    );
                }
                eprintln!("{} updates", rows.len());
            }
            OutboxCommand::Retry { ids } => {
                let ids = (!ids.is_empty()).then_some(ids);
                let n = db::requeue(&mut conn, ids.as_deref(), Utc::now()).await?;
                println!("re-queued {n} dead letters");
            }
        }
        Ok(())
    }
    .await;
    db.close();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_and_body() {
        // Checked with: printf '1764000000.{"a":1}' | openssl dgst -sha256 -hmac 'secret-secret-secret'
        let s = signature(b"secret-secret-secret", 1764000000, br#"{"a":1}"#);
        assert_eq!(
            s,
            "v1=f2ff7e9318c288d3c16cb278e15f0cb9eed6bc5853b06e38696cff9e1567f799"
        );
        assert_ne!(
            s,
            signature(b"secret-secret-secret", 1764000001, br#"{"a":1}"#)
        );
        assert_ne!(
            s,
            signature(b"secret-secret-secreT", 1764000000, br#"{"a":1}"#)
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempts in 1..=12 {
            let full = base.saturating_mul(1 << (attempts - 1)).min(max);
            for _ in 0..50 {
                let d = backoff(base, max, attempts);
                assert!(d >= full / 2 && d <= full, "{attempts}: {d:?}");
            }
        }
        assert!(backoff(base, max, 40) <= max);
    }
}
