//! The embedded default database: a private PostgreSQL cluster started from the installed
//! binaries (initdb / pg_ctl) under `<data_dir>/pg`, listening only on a free loopback port
//! with password (SCRAM) authentication, and stopped again on shutdown. Data survives
//! restarts. PostgreSQL refuses to run as root, so when gridhub runs as root the cluster
//! runs as the `postgres` system user (via `runuser`), which owns the cluster directory.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::store::DbUrl;

/// The database gridhub uses inside its cluster.
pub const DATABASE: &str = "gridhub";
const SUPERUSER: &str = "gridhub";
/// The role the server runs as.
const SERVER_ROLE: &str = "gridhub_server";

/// A running private cluster.
#[derive(Debug)]
pub struct EmbeddedPg {
    bin_dir: PathBuf,
    pgdata: PathBuf,
    run_as: Option<String>,
    port: u16,
    password: String,
    server_password: String,
    /// Stop the cluster at the end: this process started it, or (a server) adopted it from a
    /// server that crashed.
    stop_at_exit: bool,
}

impl EmbeddedPg {
    /// Decides where the cluster will listen and with which password, without starting
    /// anything (so the server can bind and report NOT_SERVING while the cluster starts).
    /// A cluster already running from this data directory (after a crash) is adopted.
    pub fn prepare(data_dir: &Path) -> anyhow::Result<EmbeddedPg> {
        let bin_dir = find_bin_dir()?;
        fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        let run_as = running_as_root().then(|| "postgres".to_owned());
        let server_password = password(&data_dir, "pg-server-password")?;
        let password = password(&data_dir, "pg-password")?;
        let mut pg = EmbeddedPg {
            bin_dir,
            pgdata: data_dir.join("pg"),
            run_as,
            port: 0,
            password,
            server_password,
            stop_at_exit: false,
        };
        pg.port = match pg.running_port() {
            Some(port) => port,
            None => free_port()?,
        };
        Ok(pg)
    }

    /// Initializes the cluster on first use, starts it unless it already runs, and makes sure
    /// the `gridhub` database and PostGIS exist. A server (`serve`) runs the cluster: it
    /// stops it at the end, also one it found running after a crash, unless another live
    /// server of this data directory runs it. Other commands stop only what they started.
    pub async fn launch(&mut self, serve: bool) -> anyhow::Result<()> {
        let data_dir = self
            .pgdata
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if let Some(user) = &self.run_as {
            // The cluster user must reach the data directory.
            fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o755))?;
            let ok = Command::new("runuser")
                .args(["-u", user, "--", "test", "-x"])
                .arg(&data_dir)
                .status()?;
            if !ok.success() {
                bail!(
                    "the {user} user cannot reach {}; choose a --data-dir outside private home directories",
                    data_dir.display()
                );
            }
        }
        if !self.pgdata.join("PG_VERSION").exists() {
            self.initdb(&data_dir)?;
        }
        if self.running_port().is_none() {
            self.pg_ctl_start()?;
            self.stop_at_exit = true;
        } else if serve {
            match self.live_server() {
                Some(pid) => tracing::warn!(
                    pid,
                    "another gridhub server runs this data directory's PostgreSQL; it stays running when this one stops"
                ),
                None => {
                    tracing::info!(
                        "adopting the PostgreSQL left running by a server that stopped without shutting down"
                    );
                    self.stop_at_exit = true;
                }
            }
        }
        if serve {
            fs::write(self.server_pid_file(), std::process::id().to_string())?;
        }
        self.ensure_database().await
    }

    /// Where a server writes its process id.
    fn server_pid_file(&self) -> PathBuf {
        self.pgdata
            .parent()
            .map(|d| d.join("serve.pid"))
            .unwrap_or_else(|| PathBuf::from("serve.pid"))
    }

    /// Another live gridhub process that recorded itself as this data directory's server.
    fn live_server(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.server_pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if pid == std::process::id() {
            return None;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains("gridhub")
            .then_some(pid)
    }

    /// [`EmbeddedPg::prepare`] and [`EmbeddedPg::launch`] in one, for a command other than
    /// the server.
    pub async fn start(data_dir: &Path) -> anyhow::Result<EmbeddedPg> {
        let mut pg = Self::prepare(data_dir)?;
        pg.launch(false).await?;
        Ok(pg)
    }

    /// URL of the gridhub database as the server's role (`gridhub_server`: it may read and
    /// append the audit trail, nothing more of it).
    pub fn server_url(&self) -> DbUrl {
        DbUrl::new(format!(
            "postgres://{SERVER_ROLE}:{}@127.0.0.1:{}/{DATABASE}",
            self.server_password, self.port
        ))
    }

    /// URL of the gridhub database as its owner (migrations).
    pub fn url(&self) -> DbUrl {
        DbUrl::new(format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{DATABASE}",
            self.password, self.port
        ))
    }

    /// Stops the cluster if this process runs it (see [`EmbeddedPg::launch`]); whether it did.
    pub fn stop(&self) -> anyhow::Result<bool> {
        if !self.stop_at_exit {
            return Ok(false);
        }
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("pg_ctl stop failed: {status}");
        }
        let pid_file = self.server_pid_file();
        if fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == std::process::id().to_string()) {
            let _ = fs::remove_file(pid_file);
        }
        Ok(true)
    }

    fn command(&self, bin: &str) -> Command {
        let path = self.bin_dir.join(bin);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn initdb(&self, data_dir: &Path) -> anyhow::Result<()> {
        fs::create_dir_all(&self.pgdata)?;
        fs::set_permissions(&self.pgdata, fs::Permissions::from_mode(0o700))?;
        let pwfile = data_dir.join(".pg-pwfile");
        fs::write(&pwfile, &self.password)?;
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))?;
        if let Some(user) = &self.run_as {
            chown(&self.pgdata, user)?;
            chown(&pwfile, user)?;
        }
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(&self.pgdata)
            .args([
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--no-locale",
                "--auth=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output();
        let _ = fs::remove_file(&pwfile);
        let out = out?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// The port of a cluster already running from this data directory.
    fn running_port(&self) -> Option<u16> {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.pgdata)
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        let pid = fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        pid.lines().nth(3)?.trim().parse().ok()
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='' -c max_connections=200",
            self.port
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(self.pgdata.join("postgres.log"))
            .args(["-w", "-t", "120", "-o", &opts, "start"])
            .output()?;
        if !out.status.success() {
            let log = fs::read_to_string(self.pgdata.join("postgres.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            bail!(
                "pg_ctl start failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    async fn ensure_database(&self) -> anyhow::Result<()> {
        let admin = self.url().with_database("postgres");
        let (client, conn) = tokio_postgres::connect(admin.expose(), tokio_postgres::NoTls)
            .await
            .context("connecting to the embedded cluster")?;
        tokio::spawn(conn);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
            .await?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
                .await?;
        }
        // The server's own role; migrations grant it its tables.
        let role_exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&SERVER_ROLE])
            .await?
            .is_some();
        let verb = if role_exists { "ALTER" } else { "CREATE" };
        client
            .batch_execute(&format!(
                "{verb} ROLE {SERVER_ROLE} LOGIN PASSWORD '{}'",
                self.server_password
            ))
            .await?;
        drop(client);
        let (client, conn) =
            tokio_postgres::connect(self.url().expose(), tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        client.batch_execute("CREATE EXTENSION IF NOT EXISTS postgis").await.context(
            "creating the PostGIS extension (install it: apt-get install postgresql-15-postgis-3, or run scripts/serve)",
        )?;
        Ok(())
    }
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn chown(path: &Path, user: &str) -> anyhow::Result<()> {
    let status = Command::new("chown")
        .args(["-R", &format!("{user}:")])
        .arg(path)
        .status()?;
    if !status.success() {
        bail!("chown {} to {user} failed", path.display());
    }
    Ok(())
}

/// The cluster password, generated on first use into `<data_dir>/secrets/pg-password`.
fn password(data_dir: &Path, name: &str) -> anyhow::Result<String> {
    let dir = data_dir.join("secrets");
    let path = dir.join(name);
    if let Ok(p) = fs::read_to_string(&path) {
        return Ok(p.trim().to_owned());
    }
    fs::create_dir_all(&dir)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    let p: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    fs::write(&path, &p)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    Ok(p)
}

/// `GRIDHUB_PG_BIN`, else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("GRIDHUB_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = candidates
        .into_iter()
        .rev()
        .find(|d| d.join("initdb").exists())
    {
        return Ok(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    bail!("no PostgreSQL server binaries found (install postgresql-15, or set GRIDHUB_PG_BIN)")
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}
