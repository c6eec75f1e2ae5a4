//! The command line: `serve`, `migrate`, `token issue`, `import regions|categories|calendar`,
//! `export cases`, `bench …`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::auth::jwt::Issuer;
use crate::config::{JwtKey, Options, Settings};
use crate::database::Database;
use crate::domain::principal::{Role, Scope};
use crate::startup;

/// gridhub: the data hub behind 镇村治理一张网.
#[derive(Debug, Parser)]
#[command(name = "gridhub", version, about)]
pub struct Cli {
    /// Optional TOML file with the same options (flags and GRIDHUB_* variables override it).
    #[arg(long, env = "GRIDHUB_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The server's and database's configuration, accepted by every command (shown after a
    /// command's own flags).
    #[command(flatten, next_help_heading = "Configuration (server, database, keys)")]
    pub options: Options,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (embedded PostgreSQL unless DATABASE_URL is set).
    Serve {
        /// Load the demo town 綦江区 打通镇 and print dev tokens and example calls.
        #[arg(long)]
        demo: bool,
    },
    /// Run pending database migrations and exit.
    Migrate,
    /// Development tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Bulk imports.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Personal-data keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The 12345 outbox: list and re-queue dead letters.
    Outbox {
        #[command(subcommand)]
        command: crate::outbox::OutboxCommand,
    },
    /// Exports for reports.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Benchmarks (see README): each runs on a fresh scratch database and drops it after.
    Bench {
        #[command(subcommand)]
        command: crate::bench::BenchCommand,
    },
}

/// `gridhub token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a signed JWT that a server with the same configuration accepts.
    Issue {
        /// Subject (user or system id).
        #[arg(long)]
        sub: String,
        /// Comma-separated roles, at least one besides pii_reader: grid_worker, village_admin,
        /// town_operator, dept_handler, mediator, window_clerk, hotline, auditor, admin,
        /// pii_reader.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Region code of the subtree the token may act in, or '*'.
        #[arg(long)]
        region: String,
        /// Handling unit (department code, mediation committee or worker id) the token acts
        /// for: dept_handler and mediator tokens. It must lie in --region.
        #[arg(long, default_value = "")]
        unit: String,
        /// Lifetime, e.g. 1h, 30m.
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,
        /// Private key (PEM) for RS256/ES256 deployments; HS256 uses the configured secret.
        #[arg(long)]
        signing_key: Option<PathBuf>,
    },
}

/// `gridhub import …`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Load regions from a china-division directory (villages.csv may be gzipped).
    Regions {
        /// The directory with provinces.csv, cities.csv, areas.csv, streets.csv, villages.csv[.gz].
        #[arg(long)]
        from: PathBuf,
    },
    /// Load the unified taxonomy and source-code mappings from a CSV file (see README).
    Categories {
        /// The CSV file.
        file: PathBuf,
    },
    /// Load public holidays and adjusted working days from a CSV file (date,kind,name).
    Calendar {
        /// The CSV file, e.g. fixtures/calendar-2026.csv.
        file: PathBuf,
    },
    /// Load 权责清单 items from a CSV file (see README); changed items get a new version.
    Catalog {
        /// The CSV file, e.g. fixtures/catalog-500110111.csv.
        file: PathBuf,
    },
}

/// `gridhub keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every personal value not yet under the current --pii-key (see README).
    Rotate,
}

/// `gridhub export …`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Cases of a region subtree first reported between two dates, as CSV (UTF-8 with BOM).
    Cases {
        /// Region code, e.g. 500110111.
        #[arg(long)]
        region: String,
        /// First day (YYYY-MM-DD, China Standard Time).
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day, included.
        #[arg(long)]
        to: chrono::NaiveDate,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let file = match &cli.config {
        Some(path) => Options::from_toml_file(path)?,
        None => Options::default(),
    };
    Settings::resolve(cli.options.clone().or(file))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = settings(&cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let _telemetry = crate::telemetry::init(settings.log_format);
        match cli.command {
            Command::Serve { demo } => {
                startup::serve(settings, move |state, settings, addr| async move {
                    if demo {
                        crate::demo::load_and_print(&state.app, &settings, addr).await?;
                    }
                    Ok(())
                })
                .await
            }
            Command::Migrate => {
                let db = Database::start(&settings).await?;
                let r = db.migrate().await;
                db.close();
                r?;
                println!("migrations up to date");
                Ok(())
            }
            Command::Token {
                command:
                    TokenCommand::Issue {
                        sub,
                        roles,
                        region,
                        unit,
                        ttl,
                        signing_key,
                    },
            } => {
                Role::parse_grant(&roles).map_err(|e| anyhow::anyhow!(e))?;
                Scope::parse(&region)
                    .with_context(|| format!("{region:?} is not a region code or '*'"))?;
                let issuer = match (&signing_key, &settings.jwt_key) {
                    (Some(path), _) => Issuer::from_private_pem(
                        &std::fs::read_to_string(path)?,
                        &settings.jwt_audience,
                    )?,
                    (None, JwtKey::Hs256(secret)) => Issuer::hs256(secret, &settings.jwt_audience),
                    (None, JwtKey::PublicPem(_)) => anyhow::bail!(
                        "a public key is configured: pass --signing-key with the private key"
                    ),
                };
                println!(
                    "{}",
                    issuer.issue_for_unit(&sub, &roles, &region, &unit, Duration::from(ttl))?
                );
                Ok(())
            }
            Command::Import {
                command: ImportCommand::Regions { from },
            } => crate::import::run(&settings, &from).await,
            Command::Import {
                command: ImportCommand::Categories { file },
            } => crate::import::run_categories(&settings, &file).await,
            Command::Import {
                command: ImportCommand::Calendar { file },
            } => crate::import::run_calendar(&settings, &file).await,
            Command::Import {
                command: ImportCommand::Catalog { file },
            } => crate::import::run_catalog(&settings, &file).await,
            Command::Outbox { command } => crate::outbox::run_cli(&settings, command).await,
            Command::Keys {
                command: KeysCommand::Rotate,
            } => crate::keys::run(&settings).await,
            Command::Export {
                command:
                    ExportCommand::Cases {
                        region,
                        from,
                        to,
                        out,
                    },
            } => crate::export::run(&settings, &region, from, to, out.as_deref()).await,
            Command::Bench { command } => crate::bench::run(&settings, command).await,
        }
    })
}
