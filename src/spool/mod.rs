//! The durable disk spool: `record` is the on-disk record codec (pure, fuzzable), `store` the
//! segment files, the acknowledgement checkpoint and crash recovery.

pub mod record;
pub mod store;
