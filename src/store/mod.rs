//! The PostgreSQL layer: the async pool (diesel-async + deadpool), embedded migrations, the
//! generated `schema.rs`, one module per table, the audit chain and the idempotency store.
//! Query functions take a connection, so a caller composes them inside one transaction.

pub mod alerts;
pub mod attachments;
pub mod audit;
pub mod calendar;
pub mod cases;
pub mod catalog;
pub mod categories;
pub mod departments;
pub mod feed;
pub mod grid_index;
pub mod idempotency;
pub mod map;
pub mod mediation;
pub mod postgis;
pub mod prepared;
pub mod regions;
pub mod reports;
pub mod requests;
pub mod schema;
pub mod stats;
pub mod workers;

use std::fmt;
use std::time::Duration;

use deadpool::Runtime;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures::FutureExt;

use crate::config::DbSettings;

/// The migrations under `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The connection pool.
pub type Pool = DeadPool<AsyncPgConnection>;
/// A pooled connection.
pub type Conn = Object<AsyncPgConnection>;

/// A PostgreSQL URL; its `Debug` and `Display` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl(String);

impl DbUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> DbUrl {
        DbUrl(url.into())
    }

    /// The URL with its password, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The same server with another database name.
    pub fn with_database(&self, db: &str) -> DbUrl {
        let (base, query) = match self.0.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (self.0.as_str(), String::new()),
        };
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let path_start = base[scheme_end..]
            .find('/')
            .map(|i| i + scheme_end)
            .unwrap_or(base.len());
        DbUrl(format!("{}/{}{}", &base[..path_start], db, query))
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres://user:secret@host/db → postgres://user:***@host/db
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                let creds = &self.0[s + 3..at];
                let user = creds.split(':').next().unwrap_or("");
                write!(f, "{}{}:***{}", &self.0[..s + 3], user, &self.0[at..])
            }
            _ => f.write_str(&self.0),
        }
    }
}

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A query failed (constraint, syntax, timeout …).
    #[error("query failed: {0}")]
    Query(DieselError),
    /// The database could not be reached, or no connection was free in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl From<DieselError> for StoreError {
    /// A lost connection or a server that cannot take the statement now (shutting down,
    /// starting, a standby since a failover) is UNAVAILABLE — the client retries, with the same
    /// request id — never a query error: the pool discards the connection, and the next one
    /// finds the primary of the moment.
    fn from(e: DieselError) -> Self {
        use DatabaseErrorKind as K;
        match e {
            DieselError::DatabaseError(
                K::ClosedConnection | K::UnableToSendCommand | K::ReadOnlyTransaction,
                info,
            ) => StoreError::Unavailable(info.message().to_owned()),
            // The server ends sessions with SQLSTATE 57P01–57P03 (admin or crash shutdown,
            // cannot connect now), which diesel reports as `Unknown` without the code: told
            // apart by the server's (English) message.
            DieselError::DatabaseError(K::Unknown, info) if server_going_away(info.message()) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            // A commit that failed (and the rollback after it): as its commit error.
            DieselError::RollbackErrorOnCommit { commit_error, .. } => {
                StoreError::from(*commit_error)
            }
            // A transaction the connection could not finish: the connection is discarded.
            DieselError::BrokenTransactionManager => {
                StoreError::Unavailable("the connection's transaction broke".into())
            }
            other => StoreError::Query(other),
        }
    }
}

/// Whether a server error says the session ends because the server stops or is not ready.
fn server_going_away(message: &str) -> bool {
    [
        "terminating connection",
        "the database system is",
        "server closed the connection",
        "connection closed",
    ]
    .iter()
    .any(|m| message.starts_with(m))
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Builds the pool. Connections are made lazily; each gets `application_name`,
/// `statement_timeout` and no parallel workers, set at connect time.
pub fn pool(url: &DbUrl, settings: &DbSettings) -> anyhow::Result<Pool> {
    let statement_timeout = settings.statement_timeout;
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    // No test query on every checkout (a round trip per RPC): a connection that broke is
    // noticed on its next use, answered UNAVAILABLE and discarded by the pool.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup =
        Box::new(move |url: &str| connect(url.to_owned(), statement_timeout).boxed());
    let manager = AsyncDieselConnectionManager::new_with_config(url.expose(), config);
    Ok(DeadPool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(settings.acquire_timeout))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(Runtime::Tokio1)
        .build()?)
}

async fn connect(
    url: String,
    statement_timeout: Duration,
) -> diesel::ConnectionResult<AsyncPgConnection> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        diesel::ConnectionError::BadConnection(e.to_string())
    })?;
    cfg.application_name("gridhub");
    // No parallel workers for the hub's short queries: starting them costs more than they
    // save (measured on the dashboard's year query: 34 ms with two workers, 12 ms without).
    cfg.options(format!(
        "-c statement_timeout={} -c max_parallel_workers_per_gather=0",
        statement_timeout.as_millis()
    ));
    let (client, connection) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

/// One connection outside the pool (CLI tools, benchmarks).
pub async fn connect_one(url: &DbUrl) -> anyhow::Result<AsyncPgConnection> {
    Ok(connect(url.expose().to_owned(), Duration::from_secs(0)).await?)
}

/// Creates database `name` on the server of `base` (with PostGIS); returns its URL.
pub async fn create_database(
    base: &DbUrl,
    name: &str,
    template: Option<&str>,
) -> anyhow::Result<DbUrl> {
    let (client, conn) = tokio_postgres::connect(base.expose(), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let template = template
        .map(|t| format!(" TEMPLATE \"{t}\""))
        .unwrap_or_default();
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\"{template}"))
        .await?;
    let url = base.with_database(name);
    let (client, conn) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS postgis")
        .await?;
    Ok(url)
}

/// Drops database `name` on the server of `base`, disconnecting its sessions.
pub async fn drop_database(base: &DbUrl, name: &str) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(base.expose(), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    Ok(())
}

/// Runs pending migrations under an advisory lock, so replicas starting together migrate once.
pub async fn migrate(url: &DbUrl) -> anyhow::Result<()> {
    use diesel::{Connection, RunQueryDsl};
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    let url = url.expose().to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)?;
        diesel::sql_query("SELECT pg_advisory_lock(7270001)").execute(&mut conn)?;
        let result = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e}"));
        diesel::sql_query("SELECT pg_advisory_unlock(7270001)").execute(&mut conn)?;
        result
    })
    .await?
}

/// Grants the role that `server` logs in as what the server needs (`gridhub_grant_server`),
/// connected as the owner; nothing when both are one role.
pub async fn grant_server(owner: &DbUrl, server: &DbUrl) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(server.expose(), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let role: String = client
        .query_one("SELECT current_user::text", &[])
        .await?
        .get(0);
    drop(client);
    let (client, conn) = tokio_postgres::connect(owner.expose(), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let me: String = client
        .query_one("SELECT current_user::text", &[])
        .await?
        .get(0);
    if me != role {
        client
            .execute("SELECT gridhub_grant_server($1)", &[&role])
            .await?;
    }
    Ok(())
}

/// The pool of a read replica: like [`pool`], but waiting at most a second for a connection
/// (a read that cannot have one soon goes to the primary instead).
pub fn replica_pool(url: &DbUrl, settings: &DbSettings) -> anyhow::Result<Pool> {
    let quick = settings.acquire_timeout.min(Duration::from_secs(1));
    pool(
        url,
        &DbSettings {
            acquire_timeout: quick,
            ..settings.clone()
        },
    )
}

/// How far behind its primary the server of `conn` is replaying, in seconds: 0 on a primary
/// or a standby that has replayed all it received; `None` when a standby is not receiving
/// (cut off from its primary: how stale it is cannot be known).
pub async fn replica_lag(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Option<Duration>> {
    use diesel::sql_types::{Double, Nullable};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Lag {
        #[diesel(sql_type = Nullable<Double>)]
        seconds: Option<f64>,
    }
    let lag: Lag = diesel::sql_query(
        "SELECT CASE
                  WHEN NOT pg_is_in_recovery() THEN 0::float8
                  WHEN NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver) THEN NULL
                  WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
                  ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8
                END AS seconds",
    )
    .get_result(conn)
    .await?;
    Ok(lag.seconds.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// Checks that the database answers (used by the health watcher).
pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    use diesel_async::RunQueryDsl;
    let mut conn = pool.get().await?;
    diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_and_stopping_servers_are_unavailable_not_query_errors() {
        use DatabaseErrorKind as K;
        let db = |kind, message: &str| {
            StoreError::from(DieselError::DatabaseError(
                kind,
                Box::new(message.to_owned()),
            ))
        };
        for (kind, message) in [
            (K::UnableToSendCommand, "connection closed"),
            (
                K::ClosedConnection,
                "server closed the connection unexpectedly",
            ),
            (
                K::ReadOnlyTransaction,
                "cannot execute UPDATE in a read-only transaction",
            ),
            (
                K::Unknown,
                "terminating connection due to administrator command",
            ),
            (K::Unknown, "the database system is shutting down"),
            (K::Unknown, "the database system is in recovery mode"),
        ] {
            assert!(
                matches!(db(kind, message), StoreError::Unavailable(_)),
                "{kind:?} {message}"
            );
        }
        let lost = DieselError::DatabaseError(K::UnableToSendCommand, Box::new("x".to_owned()));
        let rolled = DieselError::RollbackErrorOnCommit {
            rollback_error: Box::new(DieselError::BrokenTransactionManager),
            commit_error: Box::new(lost),
        };
        assert!(matches!(
            StoreError::from(rolled),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            db(K::Unknown, "division by zero"),
            StoreError::Query(_)
        ));
        assert!(matches!(
            db(K::UniqueViolation, "duplicate key value"),
            StoreError::Query(_)
        ));
    }

    #[test]
    fn url_password_is_hidden() {
        let u = DbUrl::new("postgres://gridhub:s3cret@127.0.0.1:5555/gridhub");
        assert_eq!(
            u.to_string(),
            "postgres://gridhub:***@127.0.0.1:5555/gridhub"
        );
        assert!(!format!("{u:?}").contains("s3cret"));
    }

    #[test]
    fn with_database_swaps_the_path() {
        let u = DbUrl::new("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable");
        assert_eq!(
            u.with_database("t1").expose(),
            "postgres://postgres@127.0.0.1:5432/t1?sslmode=disable"
        );
        let u = DbUrl::new("postgres://postgres@127.0.0.1:5432");
        assert_eq!(
            u.with_database("t1").expose(),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
    }
}
