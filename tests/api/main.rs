#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test on any unexpected error"
)]

//! One integration-test binary: every test starts the real server on a free port against its
//! own fresh PostgreSQL + PostGIS database and talks real gRPC to it. Tests run in parallel.

mod helpers;

mod access;
mod audit;
mod auth;
mod command_centre;
mod console;
mod database;
mod edge;
mod failover;
mod feed;
mod grids;
mod hardening;
mod hotline;
mod idempotency;
mod layers;
mod lifecycle;
mod mediation;
mod python;
mod regions;
mod reports;
mod service;
mod telemetry;
mod tour;
mod workers;
mod workflow;
