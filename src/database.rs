//! The database gridhub talks to: the configured PostgreSQL (as the server's role, migrated as
//! the owner's), or the embedded cluster under the data directory. The server and every
//! command that opens the database start here.

use anyhow::Context;

use crate::config::Settings;
use crate::embedded_pg::EmbeddedPg;
use crate::store::{self, DbUrl};

/// The database gridhub talks to: the configured server, or the embedded cluster.
pub struct Database {
    pub url: DbUrl,
    /// The owner's URL, for migrations; `None`: the server's own role owns the tables.
    pub owner: Option<DbUrl>,
    embedded: Option<EmbeddedPg>,
}

impl Database {
    /// Reaches `DATABASE_URL`, or starts the embedded cluster in the data directory.
    pub async fn start(settings: &Settings) -> anyhow::Result<Database> {
        let mut db = Self::prepare(settings)?;
        db.launch(false).await?;
        Ok(db)
    }

    /// Where the database will be, without starting anything yet.
    pub fn prepare(settings: &Settings) -> anyhow::Result<Database> {
        match &settings.database_url {
            Some(u) => Ok(Database {
                url: DbUrl::new(u.clone()),
                owner: settings.owner_database_url.clone().map(DbUrl::new),
                embedded: None,
            }),
            None => {
                let pg = EmbeddedPg::prepare(&settings.data_dir)
                    .context("preparing the embedded PostgreSQL")?;
                Ok(Database {
                    url: pg.server_url(),
                    owner: Some(pg.url()),
                    embedded: Some(pg),
                })
            }
        }
    }

    /// Starts the embedded cluster, if there is one; `serve`: for the server, which runs it
    /// (see [`EmbeddedPg::launch`]).
    pub async fn launch(&mut self, serve: bool) -> anyhow::Result<()> {
        if let Some(pg) = &mut self.embedded {
            pg.launch(serve)
                .await
                .context("starting the embedded PostgreSQL")?;
            tracing::info!(url = %pg.url(), "embedded PostgreSQL running");
        }
        Ok(())
    }

    /// Runs pending migrations as the owner, then grants the server's role what it needs
    /// (see migration 16: it may read and append the audit trail, nothing more of it).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.owner {
            Some(owner) => {
                store::migrate(owner).await.context("running migrations")?;
                store::grant_server(owner, &self.url)
                    .await
                    .context("granting the server's role")
            }
            None => {
                store::migrate(&self.url)
                    .await
                    .context("running migrations")?;
                tracing::warn!(
                    "the server's database role owns the tables: it could erase the audit trail; give the owner's URL as GRIDHUB_OWNER_DATABASE_URL and the server a role of its own (docs/operations.md)"
                );
                Ok(())
            }
        }
    }

    /// Stops the embedded cluster, if this process runs it (says so only then).
    pub fn close(&self) {
        if let Some(pg) = &self.embedded {
            match pg.stop() {
                Ok(true) => tracing::info!("embedded PostgreSQL stopped"),
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "stopping the embedded PostgreSQL failed"),
            }
        }
    }
}
