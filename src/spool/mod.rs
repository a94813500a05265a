//! The durable disk spool behind the memory buffer: `record` (the checksummed record codec,
//! pure), `store` (segment files, checkpoint, recovery; synchronous), `handle` (the async
//! front, ledger moves, fallback to memory on disk errors) and `drain` (replays the spool to
//! Blueflood at a bounded rate).

pub mod drain;
pub mod handle;
pub mod record;
pub mod store;

pub use handle::{Refused, Replay, Spool, SpoolOpenError, SpoolStatus};
