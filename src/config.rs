//! Configuration: command-line flags win over environment variables (`GRIDHUB_*`, plus the
//! standard `DATABASE_URL` and `OTEL_EXPORTER_OTLP_ENDPOINT`), which win over an optional
//! TOML file (`--config`), which wins over the defaults. Every option is listed in the
//! README's configuration table. Secrets (JWT secret, PII key, database password) are never
//! printed: their types redact themselves in `Debug`.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::clock::Clock;
use crate::crypto::SecretKey;
use crate::domain::calendar::OfficeHours;

/// Options settable by flag, environment or file. `None` means "not given at this layer".
#[derive(Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Address the gRPC server listens on [default: 127.0.0.1:50051].
    #[arg(long, env = "GRIDHUB_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// PostgreSQL URL; without it gridhub runs its own private cluster under --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL URL of the role that owns the tables, for migrations (and granting the
    /// server's role what it needs); the server then runs as DATABASE_URL's role, which may
    /// only read and append the audit trail [default: DATABASE_URL].
    #[arg(
        long,
        env = "GRIDHUB_OWNER_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub owner_database_url: Option<String>,
    /// PostgreSQL URL of a read replica (or the cluster's replica endpoint, e.g. several hosts
    /// with `target_session_attrs=read-only`) for reads that tolerate staleness: the
    /// dashboard, statistics, exports and the map. Each such read checks the replica's lag and
    /// runs on the primary when it is above --max-replica-lag or the replica is down.
    #[arg(
        long,
        env = "GRIDHUB_READ_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub read_database_url: Option<String>,
    /// The most a replica may lag for a read to run there [default: 5s].
    #[arg(long, env = "GRIDHUB_MAX_REPLICA_LAG", global = true)]
    pub max_replica_lag: Option<String>,
    /// Directory for the embedded cluster, generated keys and attachments [default: ./gridhub-data].
    #[arg(long, env = "GRIDHUB_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Log format: human or json [default: human].
    #[arg(long, env = "GRIDHUB_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    /// HS256 secret for development tokens (base64, 32 bytes) [default: generated in the data dir].
    #[arg(
        long,
        env = "GRIDHUB_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// PEM public key (RS256 or ES256) for production tokens; when set, HS256 is refused.
    #[arg(long, env = "GRIDHUB_JWT_PUBLIC_KEY", global = true)]
    pub jwt_public_key: Option<PathBuf>,
    /// Required `aud` claim [default: gridhub].
    #[arg(long, env = "GRIDHUB_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// Master key for personal data (base64, 32 bytes) [default: generated in the data dir].
    #[arg(long, env = "GRIDHUB_PII_KEY", global = true, hide_env_values = true)]
    pub pii_key: Option<String>,
    /// Key id of --pii-key (1–127); raise it when the key changes [default: 1].
    #[arg(long, env = "GRIDHUB_PII_KEY_ID", global = true)]
    pub pii_key_id: Option<u8>,
    /// Earlier PII master keys still needed to read old values, as `id:base64,…` (until
    /// `gridhub keys rotate` has re-encrypted everything).
    #[arg(
        long,
        env = "GRIDHUB_PII_PREVIOUS_KEYS",
        global = true,
        hide_env_values = true
    )]
    pub pii_previous_keys: Option<String>,
    /// Largest accepted or sent gRPC message in bytes [default: 4194304].
    #[arg(long, env = "GRIDHUB_MAX_MESSAGE_BYTES", global = true)]
    pub max_message_bytes: Option<usize>,
    /// Cap on the time of one RPC, e.g. 30s [default: 30s].
    #[arg(long, env = "GRIDHUB_RPC_TIMEOUT", global = true)]
    pub rpc_timeout: Option<String>,
    /// RPCs in flight at once before new ones are shed with UNAVAILABLE [default: 512].
    #[arg(long, env = "GRIDHUB_CONCURRENCY_LIMIT", global = true)]
    pub concurrency_limit: Option<usize>,
    /// HTTP/2 streams per connection [default: 1024].
    #[arg(long, env = "GRIDHUB_MAX_CONCURRENT_STREAMS", global = true)]
    pub max_concurrent_streams: Option<u32>,
    /// HTTP/2 keepalive ping interval [default: 30s].
    #[arg(long, env = "GRIDHUB_KEEPALIVE_INTERVAL", global = true)]
    pub keepalive_interval: Option<String>,
    /// HTTP/2 keepalive ping timeout [default: 10s].
    #[arg(long, env = "GRIDHUB_KEEPALIVE_TIMEOUT", global = true)]
    pub keepalive_timeout: Option<String>,
    /// Hard limit on graceful shutdown [default: 10s].
    #[arg(long, env = "GRIDHUB_SHUTDOWN_TIMEOUT", global = true)]
    pub shutdown_timeout: Option<String>,
    /// Database connections in the pool [default: 16].
    #[arg(long, env = "GRIDHUB_DB_POOL_SIZE", global = true)]
    pub db_pool_size: Option<usize>,
    /// statement_timeout set on every pooled connection [default: 30s].
    #[arg(long, env = "GRIDHUB_DB_STATEMENT_TIMEOUT", global = true)]
    pub db_statement_timeout: Option<String>,
    /// Largest attachment accepted, in bytes [default: 20971520].
    #[arg(long, env = "GRIDHUB_ATTACHMENT_MAX_BYTES", global = true)]
    pub attachment_max_bytes: Option<usize>,
    /// How long answers to request_ids are kept for resends [default: 30days].
    #[arg(long, env = "GRIDHUB_IDEMPOTENCY_RETENTION", global = true)]
    pub idempotency_retention: Option<String>,
    /// How long an RPC waits for a pooled connection before UNAVAILABLE [default: 5s].
    #[arg(long, env = "GRIDHUB_DB_ACQUIRE_TIMEOUT", global = true)]
    pub db_acquire_timeout: Option<String>,
    /// Office hours of working days, China Standard Time [default: 08:30-12:00,14:00-17:30].
    #[arg(long, env = "GRIDHUB_OFFICE_HOURS", global = true)]
    pub office_hours: Option<String>,
    /// Working hours to sign for a dispatched case, unless its category says otherwise [default: 1].
    #[arg(long, env = "GRIDHUB_SIGN_LIMIT_HOURS", global = true)]
    pub sign_limit_hours: Option<u32>,
    /// Working days to handle a dispatched case, unless its category says otherwise [default: 5].
    #[arg(long, env = "GRIDHUB_HANDLE_LIMIT_DAYS", global = true)]
    pub handle_limit_days: Option<u32>,
    /// Working days a case stays overdue before the 通报 escalation [default: 5].
    #[arg(long, env = "GRIDHUB_ESCALATE_AFTER_DAYS", global = true)]
    pub escalate_after_days: Option<u32>,
    /// How often the SLA ticker and the early-warning detectors run [default: 30s].
    #[arg(long, env = "GRIDHUB_SLA_TICK", global = true)]
    pub sla_tick: Option<String>,
    /// Spike warning: reports of one category in one grid in 24 h at least this many times the
    /// daily average of the previous 28 days [default: 3].
    #[arg(long, env = "GRIDHUB_SPIKE_FACTOR", global = true)]
    pub spike_factor: Option<f64>,
    /// Spike warning: and at least this many reports in 24 h [default: 5].
    #[arg(long, env = "GRIDHUB_SPIKE_MIN_REPORTS", global = true)]
    pub spike_min_reports: Option<u32>,
    /// Repeat-caller warning: this many reports from one phone … [default: 3].
    #[arg(long, env = "GRIDHUB_REPEAT_CALLER_THRESHOLD", global = true)]
    pub repeat_caller_threshold: Option<u32>,
    /// … within this window [default: 30days].
    #[arg(long, env = "GRIDHUB_REPEAT_CALLER_WINDOW", global = true)]
    pub repeat_caller_window: Option<String>,
    /// Service requests: working days for 咨询 and 求助 [default: 3].
    #[arg(long, env = "GRIDHUB_ENQUIRY_LIMIT_DAYS", global = true)]
    pub enquiry_limit_days: Option<u32>,
    /// Service requests: working days for 投诉, 建议 and 举报 [default: 13].
    #[arg(long, env = "GRIDHUB_COMPLAINT_LIMIT_DAYS", global = true)]
    pub complaint_limit_days: Option<u32>,
    /// Service requests: working days for 办事 when its catalog item sets none [default: 13].
    #[arg(long, env = "GRIDHUB_SERVICE_LIMIT_DAYS", global = true)]
    pub service_limit_days: Option<u32>,
    /// Service requests: working days at most for 紧急 (特急: the same day) [default: 1].
    #[arg(long, env = "GRIDHUB_URGENT_LIMIT_DAYS", global = true)]
    pub urgent_limit_days: Option<u32>,
    /// URL the 12345 updates are pushed to (JSON over HTTP(S)); unset: PullUpdates only.
    #[arg(long, env = "GRIDHUB_HOTLINE_ENDPOINT", global = true)]
    pub hotline_endpoint: Option<String>,
    /// Shared secret for the pushes' HMAC-SHA256 signature (required with an endpoint).
    #[arg(
        long,
        env = "GRIDHUB_HOTLINE_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub hotline_secret: Option<String>,
    /// Failed attempts before an update becomes a dead letter [default: 10].
    #[arg(long, env = "GRIDHUB_HOTLINE_MAX_ATTEMPTS", global = true)]
    pub hotline_max_attempts: Option<u32>,
    /// First retry delay; doubles per attempt up to --hotline-retry-max, then a random point in
    /// the upper half of that delay [default: 1s].
    #[arg(long, env = "GRIDHUB_HOTLINE_RETRY_BASE", global = true)]
    pub hotline_retry_base: Option<String>,
    /// Longest retry delay [default: 5m].
    #[arg(long, env = "GRIDHUB_HOTLINE_RETRY_MAX", global = true)]
    pub hotline_retry_max: Option<String>,
    /// Timeout of one delivery attempt [default: 5s].
    #[arg(long, env = "GRIDHUB_HOTLINE_TIMEOUT", global = true)]
    pub hotline_timeout: Option<String>,
    /// Directory of the built web console, served at `/` [default: web/dist when it exists].
    #[arg(long, env = "GRIDHUB_CONSOLE_DIR", global = true)]
    pub console_dir: Option<PathBuf>,
    /// Base map tiles for the console (an XYZ raster URL with {z}/{x}/{y}, e.g. 天地图's);
    /// unset: grids draw on a plain background, so the console works offline.
    #[arg(long, env = "GRIDHUB_MAP_TILES", global = true)]
    pub map_tiles: Option<String>,
}

// Options hold secrets as plain strings (flags and environment): never print them.
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Options(..)")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

macro_rules! merge_fields {
    ($hi:expr, $lo:expr, $($f:ident),* $(,)?) => {
        Options { $($f: $hi.$f.or($lo.$f),)* }
    };
}

impl Options {
    /// `self` where given, else `lower`.
    pub fn or(self, lower: Options) -> Options {
        merge_fields!(
            self,
            lower,
            listen,
            database_url,
            owner_database_url,
            read_database_url,
            max_replica_lag,
            data_dir,
            log_format,
            jwt_secret,
            jwt_public_key,
            jwt_audience,
            pii_key,
            pii_key_id,
            pii_previous_keys,
            max_message_bytes,
            rpc_timeout,
            concurrency_limit,
            max_concurrent_streams,
            keepalive_interval,
            keepalive_timeout,
            shutdown_timeout,
            db_pool_size,
            db_statement_timeout,
            db_acquire_timeout,
            idempotency_retention,
            attachment_max_bytes,
            office_hours,
            sign_limit_hours,
            handle_limit_days,
            escalate_after_days,
            sla_tick,
            spike_factor,
            spike_min_reports,
            repeat_caller_threshold,
            repeat_caller_window,
            enquiry_limit_days,
            complaint_limit_days,
            service_limit_days,
            urgent_limit_days,
            hotline_endpoint,
            hotline_secret,
            hotline_max_attempts,
            hotline_retry_base,
            hotline_retry_max,
            hotline_timeout,
            console_dir,
            map_tiles,
        )
    }

    /// Reads a TOML file of the same options (snake_case keys).
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Options> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// How tokens are verified.
#[derive(Debug, Clone)]
pub enum JwtKey {
    /// Development: HS256 with a shared secret.
    Hs256(SecretKey),
    /// Production: RS256 or ES256 public key (PEM text).
    PublicPem(String),
}

/// Server limits and hardening.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub rpc_timeout: Duration,
    pub concurrency_limit: usize,
    pub max_concurrent_streams: u32,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// Database pool settings.
#[derive(Debug, Clone)]
pub struct DbSettings {
    pub pool_size: usize,
    pub statement_timeout: Duration,
    pub acquire_timeout: Duration,
    /// A read replica for reads that tolerate staleness.
    pub read_url: Option<String>,
    /// The most it may lag for such a read.
    pub max_replica_lag: Duration,
}

/// The command centre's rules: working time, default time limits, the SLA ticker and the
/// early-warning thresholds.
#[derive(Debug, Clone)]
pub struct WorkflowSettings {
    pub office_hours: OfficeHours,
    /// Defaults where a category sets no limit; `escalate_days` applies to all.
    pub limits: crate::domain::workflow::Limits,
    pub sla_tick: Duration,
    pub spike_factor: f64,
    pub spike_min_reports: u32,
    pub repeat_caller_threshold: u32,
    pub repeat_caller_window: Duration,
    /// Service requests' time limits by kind and urgency.
    pub service_limits: crate::domain::request::TimeLimits,
    /// The workflow's clock (tests set a manual one).
    pub clock: Clock,
}

/// Pushing updates to the 12345 platform.
#[derive(Debug, Clone)]
pub struct HotlineSettings {
    /// Where to push; `None`: PullUpdates only.
    pub endpoint: Option<String>,
    /// HMAC-SHA256 key of the signature.
    pub secret: HmacSecret,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub timeout: Duration,
    /// How often the outbox is polled when idle.
    pub poll: Duration,
}

/// The shared signing secret (never printed).
#[derive(Clone, Default)]
pub struct HmacSecret(pub Vec<u8>);

impl std::fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacSecret(***)")
    }
}

/// Fully resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: Option<String>,
    pub owner_database_url: Option<String>,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub jwt_key: JwtKey,
    pub jwt_audience: String,
    pub pii_key: SecretKey,
    /// Key id of `pii_key`.
    pub pii_key_id: u8,
    /// Earlier master keys by id.
    pub pii_previous_keys: Vec<(u8, SecretKey)>,
    pub limits: Limits,
    pub db: DbSettings,
    pub idempotency_retention: Duration,
    pub attachment_max_bytes: usize,
    pub workflow: WorkflowSettings,
    pub hotline: HotlineSettings,
    pub console: ConsoleSettings,
}

/// The web console the hub serves beside its RPCs.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    /// The built console's files; `None`: no console (GET / answers 404 saying how to build it).
    pub dir: Option<PathBuf>,
    /// The base map's tile URL template, if any.
    pub map_tiles: Option<String>,
}

fn duration(v: Option<String>, default: &str, name: &str) -> anyhow::Result<Duration> {
    let s = v.unwrap_or_else(|| default.to_owned());
    humantime::parse_duration(&s)
        .with_context(|| format!("{name}: {s:?} is not a duration like 30s or 5m"))
}

impl Settings {
    /// Resolves options (already merged flag > env > file) against the defaults. Keys not
    /// given are read from, or generated into, `<data_dir>/secrets/`.
    pub fn resolve(o: Options) -> anyhow::Result<Settings> {
        let data_dir = o.data_dir.unwrap_or_else(|| PathBuf::from("gridhub-data"));
        let jwt_key = match (o.jwt_public_key, o.jwt_secret) {
            (Some(path), _) => JwtKey::PublicPem(
                fs::read_to_string(&path)
                    .with_context(|| format!("reading JWT public key {}", path.display()))?,
            ),
            (None, Some(s)) => {
                JwtKey::Hs256(SecretKey::from_base64(&s).context("GRIDHUB_JWT_SECRET")?)
            }
            (None, None) => JwtKey::Hs256(key_file(&data_dir, "jwt-hs256.key")?),
        };
        let pii_key = match o.pii_key {
            Some(s) => SecretKey::from_base64(&s).context("GRIDHUB_PII_KEY")?,
            None => key_file(&data_dir, "pii.key")?,
        };
        if o.hotline_endpoint.as_deref().is_some_and(|e| !e.is_empty())
            && o.hotline_secret.as_deref().is_none_or(|s| s.len() < 16)
        {
            bail!(
                "hotline_endpoint needs hotline_secret (at least 16 characters) to sign its pushes"
            );
        }
        let pii_key_id = match o.pii_key_id.unwrap_or(1) {
            id @ 1..=127 => id,
            id => bail!("pii_key_id {id}: 1 to 127"),
        };
        let mut pii_previous_keys = Vec::new();
        for part in o
            .pii_previous_keys
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (id, key) = part
                .split_once(':')
                .context("pii_previous_keys: entries are id:base64")?;
            let id: u8 = id
                .trim()
                .parse()
                .ok()
                .filter(|i| (1..=127).contains(i) && *i != pii_key_id)
                .context("pii_previous_keys: ids are 1 to 127 and not the current key's")?;
            pii_previous_keys.push((
                id,
                SecretKey::from_base64(key.trim()).context("pii_previous_keys")?,
            ));
        }
        let max_message_bytes = o.max_message_bytes.unwrap_or(4 * 1024 * 1024);
        if max_message_bytes < 1024 {
            bail!("max_message_bytes must be at least 1024");
        }
        Ok(Settings {
            listen: o
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051))),
            database_url: o.database_url.filter(|s| !s.is_empty()),
            owner_database_url: o.owner_database_url.filter(|s| !s.is_empty()),
            data_dir,
            log_format: o.log_format.unwrap_or_default(),
            jwt_key,
            jwt_audience: o.jwt_audience.unwrap_or_else(|| "gridhub".to_owned()),
            pii_key,
            pii_key_id,
            pii_previous_keys,
            limits: Limits {
                max_message_bytes,
                rpc_timeout: duration(o.rpc_timeout, "30s", "rpc_timeout")?,
                concurrency_limit: o.concurrency_limit.unwrap_or(512).max(1),
                max_concurrent_streams: o.max_concurrent_streams.unwrap_or(1024).max(1),
                keepalive_interval: duration(o.keepalive_interval, "30s", "keepalive_interval")?,
                keepalive_timeout: duration(o.keepalive_timeout, "10s", "keepalive_timeout")?,
                shutdown_timeout: duration(o.shutdown_timeout, "10s", "shutdown_timeout")?,
            },
            db: DbSettings {
                pool_size: o.db_pool_size.unwrap_or(16).max(1),
                statement_timeout: duration(o.db_statement_timeout, "30s", "db_statement_timeout")?,
                acquire_timeout: duration(o.db_acquire_timeout, "5s", "db_acquire_timeout")?,
                read_url: o.read_database_url.filter(|s| !s.is_empty()),
                max_replica_lag: duration(o.max_replica_lag, "5s", "max_replica_lag")?,
            },
            idempotency_retention: duration(
                o.idempotency_retention,
                "30days",
                "idempotency_retention",
            )?,
            attachment_max_bytes: o
                .attachment_max_bytes
                .unwrap_or(crate::attachments::DEFAULT_MAX_BYTES),
            workflow: WorkflowSettings {
                office_hours: match o.office_hours {
                    Some(s) => OfficeHours::parse(&s).map_err(anyhow::Error::msg)?,
                    None => OfficeHours::default(),
                },
                limits: crate::domain::workflow::Limits {
                    sign_hours: positive(o.sign_limit_hours, 1, "sign_limit_hours")?,
                    handle_days: positive(o.handle_limit_days, 5, "handle_limit_days")?,
                    escalate_days: positive(o.escalate_after_days, 5, "escalate_after_days")?,
                },
                sla_tick: duration(o.sla_tick, "30s", "sla_tick")?,
                spike_factor: match o.spike_factor.unwrap_or(3.0) {
                    f if f.is_finite() && f >= 1.0 => f,
                    _ => bail!("spike_factor must be at least 1"),
                },
                spike_min_reports: positive(o.spike_min_reports, 5, "spike_min_reports")?,
                repeat_caller_threshold: positive(
                    o.repeat_caller_threshold,
                    3,
                    "repeat_caller_threshold",
                )?,
                repeat_caller_window: duration(
                    o.repeat_caller_window,
                    "30days",
                    "repeat_caller_window",
                )?,
                service_limits: crate::domain::request::TimeLimits {
                    enquiry_help_days: positive(o.enquiry_limit_days, 3, "enquiry_limit_days")?,
                    complaint_days: positive(o.complaint_limit_days, 13, "complaint_limit_days")?,
                    service_days: positive(o.service_limit_days, 13, "service_limit_days")?,
                    urgent_days: positive(o.urgent_limit_days, 1, "urgent_limit_days")?,
                },
                clock: Clock::system(),
            },
            hotline: HotlineSettings {
                endpoint: match o.hotline_endpoint.filter(|e| !e.is_empty()) {
                    Some(e) if e.starts_with("http://") || e.starts_with("https://") => Some(e),
                    Some(e) => bail!("hotline_endpoint: {e:?} is not an http:// or https:// URL"),
                    None => None,
                },
                secret: HmacSecret(o.hotline_secret.unwrap_or_default().into_bytes()),
                max_attempts: positive(o.hotline_max_attempts, 10, "hotline_max_attempts")?,
                retry_base: duration(o.hotline_retry_base, "1s", "hotline_retry_base")?,
                retry_max: duration(o.hotline_retry_max, "5m", "hotline_retry_max")?,
                timeout: duration(o.hotline_timeout, "5s", "hotline_timeout")?,
                poll: Duration::from_millis(100),
            },
            console: ConsoleSettings {
                dir: match o.console_dir {
                    Some(d) if !d.join("index.html").is_file() => {
                        bail!(
                            "console_dir: {} has no index.html (build it: cd web && npm run build)",
                            d.display()
                        )
                    }
                    Some(d) => Some(d),
                    None => {
                        Some(PathBuf::from("web/dist")).filter(|d| d.join("index.html").is_file())
                    }
                },
                map_tiles: match o.map_tiles.filter(|t| !t.is_empty()) {
                    Some(t) if t.starts_with("https://") || t.starts_with("http://") => Some(t),
                    Some(t) => bail!("map_tiles: {t:?} is not an http:// or https:// URL template"),
                    None => None,
                },
            },
        })
    }
}

fn positive(v: Option<u32>, default: u32, name: &str) -> anyhow::Result<u32> {
    match v.unwrap_or(default) {
        0 => bail!("{name} must be at least 1"),
        n => Ok(n),
    }
}

/// Reads a key file from `<data_dir>/secrets/`, creating it (mode 0600) on first use.
fn key_file(data_dir: &Path, name: &str) -> anyhow::Result<SecretKey> {
    let dir = data_dir.join("secrets");
    let path = dir.join(name);
    if let Ok(text) = fs::read_to_string(&path) {
        return SecretKey::from_base64(&text)
            .with_context(|| format!("{} is not a valid key", path.display()));
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    restrict(&dir, 0o700)?;
    let key = SecretKey::generate();
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, key.to_base64())?;
    restrict(&tmp, 0o600)?;
    // Two processes racing here: the rename is atomic, and the loser re-reads the winner's key.
    if fs::hard_link(&tmp, &path).is_err() {
        let _ = fs::remove_file(&tmp);
        let text = fs::read_to_string(&path)?;
        return SecretKey::from_base64(&text)
            .with_context(|| format!("{} is not a valid key", path.display()));
    }
    let _ = fs::remove_file(&tmp);
    Ok(key)
}

fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_defaults_fill_the_rest() {
        let flags = Options {
            listen: Some("127.0.0.1:6000".parse().unwrap()),
            ..Options::default()
        };
        let file: Options = toml::from_str(
            "listen = \"127.0.0.1:7000\"\nrpc_timeout = \"5s\"\njwt_secret = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\npii_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"",
        )
        .unwrap();
        let s = Settings::resolve(flags.or(file)).unwrap();
        assert_eq!(s.listen.port(), 6000);
        assert_eq!(s.limits.rpc_timeout, Duration::from_secs(5));
        assert_eq!(s.limits.max_message_bytes, 4 * 1024 * 1024);
        assert_eq!(s.jwt_audience, "gridhub");
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        assert!(toml::from_str::<Options>("lissen = \"x\"").is_err());
    }

    #[test]
    fn generated_keys_persist_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let a = key_file(dir.path(), "pii.key").unwrap();
        let b = key_file(dir.path(), "pii.key").unwrap();
        assert_eq!(a.bytes(), b.bytes());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("secrets/pii.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn secrets_do_not_appear_in_debug() {
        let o = Options {
            jwt_secret: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
            pii_key: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
            data_dir: Some(tempfile::tempdir().unwrap().path().to_path_buf()),
            ..Options::default()
        };
        let s = Settings::resolve(o).unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("AAAAAAAA"), "{dbg}");
    }
}
