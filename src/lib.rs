//! gridhub: the data hub behind 镇村治理一张网 ("one net for town and village governance").
//!
//! Where things are:
//! - [`cli`] parses the command line; [`config`] merges flags, environment and a TOML file.
//! - [`startup`] builds the gRPC server, binds, serves and shuts down; [`telemetry`] sets up
//!   logs, traces and metrics.
//! - [`domain`] holds pure types and rules (region codes, principals and scopes, GeoJSON
//!   validation, masking); no I/O.
//! - [`store`] is the PostgreSQL layer: pool, migrations, the generated `schema.rs`, one
//!   module per table, the audit chain and the idempotency store.
//! - [`auth`] verifies JWTs and applies the role policy to every RPC in one tower layer.
//! - [`app`] holds the use cases: authorization (scope, role, unit, masking), the domain rule
//!   and the store calls, each write inside the one mutation runner; background jobs call it.
//! - [`grpc`] is transport only: one file per service (request → use case input, one `app`
//!   call, answer → proto), the conversions, the error mapping, the edge check, the feed.
//! - [`embedded_pg`] runs the private PostgreSQL cluster used when no `DATABASE_URL` is set.
//! - [`anchor`] keeps signed checkpoints of the audit chain's head outside the database;
//!   [`sealer`] seals committed events into the chain; [`sla`], [`intake`] and [`outbox`] are
//!   the other background jobs.
//! - CLI tools ([`import`], [`export`], [`keys`], [`demo`], [`bench`]) use the library; the
//!   server's modules never use them.

pub mod anchor;
pub mod app;
pub mod attachments;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod database;
pub mod demo;
pub mod domain;
pub mod embedded_pg;
pub mod export;
pub mod grpc;
pub mod import;
pub mod intake;
pub mod keys;
pub mod outbox;
pub mod sealer;
pub mod sla;
pub mod startup;
pub mod store;
pub mod telemetry;
