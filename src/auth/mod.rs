//! Authentication and authorization, applied to every RPC in one place.
//!
//! - [`jwt`] verifies bearer tokens (HS256 for development, RS256/ES256 public keys for
//!   production; expiry and audience always checked) and issues development tokens.
//! - [`policy`] says which roles may call which RPC; a method without an entry is denied.
//! - The gRPC middleware (`grpc::middleware`) runs both before any handler and hands the
//!   handler a [`crate::domain::principal::Principal`]; handlers confine every query to the
//!   principal's scope (store read functions take the scope prefix as an argument).

pub mod jwt;
pub mod policy;
