//! blueflood-forward: receives Graphite metrics over the carbon pickle and line protocols and
//! delivers them to Blueflood's HTTP ingest API, accounting for every datapoint.
//!
//! Data flows `protocol` (pure decoders) → `ingest` (listeners) → `buffer` → `forward`
//! (batching, Blueflood client, retry); `auth`, `config`, `accounting` and `events` sit beside,
//! and `app` wires them together. See ARCHITECTURE.md for the map and the invariants.
#![forbid(unsafe_code)]

pub mod accounting;
pub mod admin;
pub mod app;
pub mod auth;
pub mod backoff;
pub mod buffer;
pub mod check;
pub mod config;
pub mod events;
pub mod files;
pub mod forward;
pub mod health;
pub mod ingest;
pub mod model;
pub mod protocol;
pub mod redact;
pub mod spool;
pub mod telemetry;
