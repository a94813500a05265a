//! The spool's figures as `/status` and `/metrics` show them: a copy kept current by the
//! handle after each disk operation, so that reading them never waits behind a disk write.

use std::path::PathBuf;

/// Figures for `/status` and `/metrics`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SpoolStatus {
    pub dir: PathBuf,
    /// The store has been opened (at start, or on a later retry).
    pub opened: bool,
    pub available: bool,
    /// The directory can be written (false: replayed only; see `store`'s read-only notes).
    pub writable: bool,
    pub max_bytes: u64,
    pub bytes: u64,
    pub segments: usize,
    pub unread_points: u64,
    /// When the oldest point of an unacknowledged record arrived (Unix ms; a version 1
    /// record's write time).
    pub oldest_arrived_ms: Option<u64>,
    /// Points found on disk at start, and how many of those have been read back since.
    pub recovered_points: u64,
    pub replayed_points: u64,
    pub corrupt_records: u64,
    pub corrupt_bytes: u64,
    /// Segments that could not be opened or read back while running (their points counted
    /// `spool_lost`), and those that could not be read at all when the spool was opened.
    pub lost_segments: u64,
    pub evicted_segments: u64,
    /// Spills refused because the spool was full under `block` (the points stayed in memory).
    pub full_refusals: u64,
    pub write_errors: u64,
}

impl SpoolStatus {
    /// The spool's part of the delivery lag: seconds since [`SpoolStatus::oldest_arrived_ms`].
    pub fn oldest_age_seconds(&self) -> Option<f64> {
        self.oldest_arrived_ms
            .map(|ms| (unix_ms().saturating_sub(ms)) as f64 / 1000.0)
    }
}

/// Now in epoch milliseconds, as the store keeps segment ages.
pub(super) fn unix_ms() -> u64 {
    u64::try_from(crate::model::now_ms()).unwrap_or(0)
}
