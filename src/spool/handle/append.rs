//! Writing a spill as records: one batch cut into records of at most
//! [`super::RECORD_POINTS`], each stamped with its write time and its oldest point's arrival,
//! on the blocking pool (called from `Spool::spill`).

use super::super::record::Stamp;
use super::super::status::unix_ms;
use super::super::store::{Appended, Store, StoreError};
use super::RECORD_POINTS;
use crate::model::Datapoint;

/// What making room for a spill did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Evicted {
    pub(super) segments: u64,
    pub(super) points: u64,
    /// The spool was full under `block`: the rest stayed in memory.
    pub(super) full: bool,
}

pub(super) type Written = Result<Evicted, (StoreError, Evicted)>;

/// Appends `points` (the oldest arrived `ago` ms before now) as records of at most
/// [`RECORD_POINTS`], stopping at the first that does not fit (`block`) or fails: how many were
/// written, and what was evicted to make room.
pub(super) fn append_all(store: &mut Store, points: &[Datapoint], ago: u64) -> (usize, Written) {
    let written_ms = unix_ms();
    let now = Stamp {
        written_ms,
        arrived_ms: written_ms.saturating_sub(ago),
    };
    let mut evicted = Evicted::default();
    let mut written = 0;
    for chunk in points.chunks(RECORD_POINTS) {
        match store.append(chunk, now) {
            Ok(Appended::Stored {
                evicted_segments,
                evicted_points,
            }) => {
                evicted.segments += evicted_segments;
                evicted.points += evicted_points;
                written += chunk.len();
            }
            Ok(Appended::Full) => {
                evicted.full = true;
                break;
            }
            Err(e) => return (written, Err((e, evicted))),
        }
    }
    (written, Ok(evicted))
}
