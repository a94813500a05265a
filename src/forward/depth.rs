//! Pending depth: every point received and not yet settled, wherever it waits — at a
//! connection blocked for room, in the buffer, in flight, in the spool — with the memory and
//! disk it takes and the arrival age of the oldest of them (the delivery lag). One gathering
//! for `/buffer`, `/status`'s `pending` and the pending gauges, so they show the same numbers.
//!
//! Counts are the ledger's; ages and memory outside the buffer come from the buffer's register
//! of batches in flight and its blocked pushers (`buffer::ages`), and the spool's oldest
//! arrival (records carry their oldest point's arrival since format version 2; an earlier
//! release's records only their write time, which stands in for it). The spool's figure can
//! understate for a while by at most one batch's time in flight before it was spooled (the
//! approximation its store notes describe).

use crate::accounting::LedgerSnapshot;
use crate::buffer::Buffer;

use super::SpillPolicy;

/// Where the unsettled points are, what they take, and how old the oldest is.
#[derive(Debug, Clone, PartialEq)]
pub struct Depth {
    pub buffered: u64,
    pub in_flight: u64,
    pub spooled: u64,
    /// Decoded by a connection blocked waiting for room (`--buffer-policy block`).
    pub waiting: u64,
    /// Charged bytes of the points in memory: buffered, in flight, waiting for room.
    pub memory_bytes: u64,
    /// The spool's files (0 without a spool).
    pub disk_bytes: u64,
    /// The buffer's fill, 0 to 1: what readiness's high-water mark is compared with.
    pub fill_ratio: f64,
    /// Seconds since the oldest unsettled point arrived; `None` when nothing is pending.
    pub oldest_age_seconds: Option<f64>,
    pub memory_limit: u64,
    /// `None` without a spool.
    pub disk_limit: Option<u64>,
}

impl Depth {
    /// Every point received (or recovered from the spool) and not yet settled.
    pub fn pending(&self) -> u64 {
        self.buffered + self.in_flight + self.spooled + self.waiting
    }

    /// Gathers the figures from the ledger snapshot `l`, the buffer and the spool.
    pub fn gather(l: &LedgerSnapshot, buffer: &Buffer, spill: &SpillPolicy) -> Depth {
        let waiting = buffer.waiting();
        let in_flight = buffer.in_flight().total();
        let memory = waiting.with(in_flight);
        let max = buffer.max_bytes() as u64;
        let spool = spill.spool().map(|s| s.status());
        let ages = [
            buffer.oldest().map(|t| t.elapsed().as_secs_f64()),
            memory.arrived.map(|t| t.elapsed().as_secs_f64()),
            spool.as_ref().and_then(|s| s.oldest_age_seconds()),
        ];
        let mut depth = Depth {
            buffered: l.buffered_points,
            in_flight: l.in_flight_points,
            spooled: l.spooled_points,
            waiting: l.waiting_points,
            memory_bytes: l.buffered_bytes + memory.bytes,
            disk_bytes: spool.as_ref().map_or(0, |s| s.bytes),
            fill_ratio: l.buffered_bytes as f64 / max.max(1) as f64,
            oldest_age_seconds: ages.into_iter().flatten().reduce(f64::max),
            memory_limit: max,
            disk_limit: spool.as_ref().map(|s| s.max_bytes),
        };
        // A figure left from points just settled must not show a lag with nothing pending.
        if depth.pending() == 0 {
            depth.oldest_age_seconds = None;
        }
        depth
    }
}
