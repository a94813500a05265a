//! The durable disk spool behind the memory buffer: `record` (the checksummed record codec,
//! pure), `store` (the index of segment files; synchronous) with its parts `segment`,
//! `checkpoint`, `lock` and `recovery`, `handle` (the async front, ledger moves, fallback to
//! memory on disk errors; its figures in `status`). Storage only: replaying the spool to
//! Blueflood is `forward::replay`; nothing here imports `forward`.

mod checkpoint;
pub mod handle;
mod lock;
pub mod record;
mod recovery;
mod segment;
mod status;
pub mod store;

pub use handle::{Refused, Replay, Spool, SpoolOpenError, SpoolStatus};
