//! The `/buffer` document (also `/status`'s `pending`): how many points wait and where, the
//! memory and disk they take, and the delivery lag, as an SRE reads them during an outage.
//! The figures are [`crate::forward::Depth`]'s; this file only gives them their JSON names.

use serde::Serialize;

use super::AdminState;
use crate::forward::Depth;

#[derive(Debug, Serialize)]
pub struct PendingDoc {
    /// Received and not yet settled: buffered + in flight + spooled + waiting for room.
    pub pending_datapoints: u64,
    pub buffered_datapoints: u64,
    pub in_flight_datapoints: u64,
    pub spooled_datapoints: u64,
    /// Decoded by a connection blocked waiting for room (`--buffer-policy block`).
    pub waiting_datapoints: u64,
    pub pending_bytes: Bytes,
    /// The buffer's fill (what readiness's high-water mark is compared with).
    pub fill_ratio: f64,
    /// Arrival age of the oldest unsettled point, wherever it waits; `null` when none.
    pub oldest_pending_age_seconds: Option<f64>,
    pub limit_bytes: Limits,
}

#[derive(Debug, Serialize)]
pub struct Bytes {
    pub memory: u64,
    pub disk: u64,
}

#[derive(Debug, Serialize)]
pub struct Limits {
    /// `buffer_bytes` (batches in flight are bounded apart: `concurrency` bodies).
    pub memory: u64,
    /// `spool_bytes`; `null` without a spool.
    pub disk: Option<u64>,
}

impl PendingDoc {
    pub fn gather(s: &AdminState, l: &crate::accounting::LedgerSnapshot) -> PendingDoc {
        PendingDoc::from(Depth::gather(l, &s.buffer, &s.spill))
    }
}

impl From<Depth> for PendingDoc {
    fn from(d: Depth) -> Self {
        PendingDoc {
            pending_datapoints: d.pending(),
            buffered_datapoints: d.buffered,
            in_flight_datapoints: d.in_flight,
            spooled_datapoints: d.spooled,
            waiting_datapoints: d.waiting,
            pending_bytes: Bytes {
                memory: d.memory_bytes,
                disk: d.disk_bytes,
            },
            fill_ratio: d.fill_ratio,
            oldest_pending_age_seconds: d.oldest_age_seconds,
            limit_bytes: Limits {
                memory: d.memory_limit,
                disk: d.disk_limit,
            },
        }
    }
}
