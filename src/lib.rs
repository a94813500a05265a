//! blueflood-forward: receives Graphite metrics over the carbon pickle and line protocols and
//! delivers them to Blueflood's HTTP ingest API, accounting for every datapoint.
//!
//! Data flows `protocol` (pure decoders) → `ingest` (listeners) → `buffer` → `forward`
//! (batching, Blueflood client, retry); `auth`, `config` and `accounting` sit beside.
//! See ARCHITECTURE.md for the map and the invariants.
#![forbid(unsafe_code)]

pub mod accounting;
pub mod config;
pub mod model;
pub mod protocol;
