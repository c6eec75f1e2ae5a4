//! The audit chain's head, anchored outside the database: a server's sealer appends a signed
//! checkpoint (sequence, head hash, time) to `audit-checkpoints` under its data directory
//! whenever the head has moved (at most every [`Anchor::EVERY`], and at shutdown), and logs
//! it. The database's users cannot rewrite that file, so `VerifyAuditChain` holds the table
//! against the latest checkpoint: events removed from the end, or an emptied table, which the
//! chain alone cannot show, are named. The checkpoints are signed (HMAC-SHA-256 with a key
//! derived from the PII master key): an edited file is named too.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

use crate::crypto::{SecretKey, hmac};

/// One checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub at: DateTime<Utc>,
}

/// Where a server keeps its checkpoints.
#[derive(Debug)]
pub struct Anchor {
    path: PathBuf,
    key: SecretKey,
    /// The sequence of the last checkpoint this server recorded (read from the file once).
    last: tokio::sync::Mutex<Option<i64>>,
}

impl Anchor {
    /// How often the sealer records the head at most.
    pub const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    /// Checkpoints under `data_dir`, signed with a key derived from `master`.
    pub fn new(data_dir: &Path, master: &SecretKey) -> Anchor {
        Anchor {
            path: data_dir.join("audit-checkpoints"),
            key: master.derive("gridhub/audit/checkpoint/v1"),
            last: tokio::sync::Mutex::new(None),
        }
    }

    fn sign(&self, seq: i64, hash: &[u8], at: DateTime<Utc>) -> String {
        let text = format!("{seq} {} {}", hex::encode(hash), at.timestamp_micros());
        hex::encode(hmac(self.key.bytes(), text.as_bytes()))
    }

    /// Records the chain's head if it is past the latest checkpoint (a head behind it is never
    /// recorded: that would hide what was removed). Returns the new checkpoint.
    pub async fn record(&self, conn: &mut AsyncPgConnection) -> anyhow::Result<Option<Checkpoint>> {
        let Some((seq, hash)) = crate::store::audit::head(conn).await? else {
            return Ok(None);
        };
        // One recorder at a time; the file is read only the first time.
        let mut last = self.last.lock().await;
        if last.is_none() {
            *last = self
                .latest()
                .await
                .map_err(|e| anyhow::anyhow!(e))?
                .map(|c| c.seq);
        }
        if last.is_some_and(|l| l >= seq) {
            return Ok(None);
        }
        let at = Utc::now();
        let line = format!(
            "{seq} {} {} {}\n",
            hex::encode(&hash),
            at.timestamp_micros(),
            self.sign(seq, &hash, at)
        );
        let path = self.path.clone();
        // File I/O and its fsync off the async runtime.
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            f.write_all(line.as_bytes())?;
            f.sync_data()
        })
        .await??;
        *last = Some(seq);
        tracing::info!(seq, head = %hex::encode(&hash), "audit checkpoint");
        Ok(Some(Checkpoint { seq, hash, at }))
    }

    /// The latest checkpoint in the file; `Err` names a line whose signature does not hold.
    pub async fn latest(&self) -> Result<Option<Checkpoint>, String> {
        let path = self.path.clone();
        let line = tokio::task::spawn_blocking(move || last_line(&path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("the checkpoint file cannot be read: {e}"))?;
        let Some(line) = line else {
            return Ok(None);
        };
        let line = line.as_str();
        let bad = || format!("the latest audit checkpoint does not verify: {line:?}");
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [seq, hash, micros, mac] = parts[..] else {
            return Err(bad());
        };
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        let hash = hex::decode(hash).map_err(|_| bad())?;
        let at = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_micros)
            .ok_or_else(bad)?;
        if self.sign(seq, &hash, at) != mac {
            return Err(bad());
        }
        Ok(Some(Checkpoint { seq, hash, at }))
    }

    /// What is wrong with a chain that verified up to `checked` events (seq 1..=checked)
    /// against the latest checkpoint: `(first missing or differing seq, why)`.
    pub async fn check(
        &self,
        conn: &mut AsyncPgConnection,
        checked: i64,
    ) -> anyhow::Result<Option<(i64, String)>> {
        let cp = match self.latest().await {
            Ok(Some(cp)) => cp,
            Ok(None) => return Ok(None),
            Err(why) => return Ok(Some((0, why))),
        };
        let when = (cp.at + chrono::Duration::hours(8)).format("%Y-%m-%d %H:%M:%S CST");
        if checked < cp.seq {
            return Ok(Some((
                checked + 1,
                format!(
                    "the chain ends at event {checked}, but the checkpoint of {when} recorded event {}: events were removed from its end (or the table was emptied)",
                    cp.seq
                ),
            )));
        }
        match crate::store::audit::hash_at(conn, cp.seq).await? {
            Some(h) if h == cp.hash => Ok(None),
            _ => Ok(Some((
                cp.seq,
                format!(
                    "event {} differs from the checkpoint of {when}: the chain was rewritten",
                    cp.seq
                ),
            ))),
        }
    }
}

/// The file's last non-empty line (read from its end: the file grows by a line every few
/// seconds), `None` when there is no file or no line.
fn last_line(path: &Path) -> std::io::Result<Option<String>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // A checkpoint line is under 200 bytes.
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096)))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    Ok(String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_owned))
}
