//! The disk spool's events: opened (what an earlier run left), a disk operation failed, full
//! (evicted or refused), a record found corrupt, a segment that cannot be read back.

use std::time::Duration;

use super::LogLimits;
use crate::accounting::{DropReason, Ledger};

/// The spool was opened: what an earlier run left on disk.
pub struct SpoolRecovered<'a> {
    pub dir: &'a std::path::Path,
    pub recovery: &'a crate::spool::store::Recovery,
}

impl SpoolRecovered<'_> {
    pub fn emit(&self, ledger: &Ledger) {
        let r = self.recovery;
        ledger.recovered(r.points);
        if r.corrupt_records > 0 {
            tracing::error!(
                dir = %self.dir.display(),
                corrupt_records = r.corrupt_records,
                corrupt_bytes = r.corrupt_bytes,
                "spool: damaged records found and cut off (torn last write or corruption); the rest is replayed"
            );
        }
        if r.read_only {
            tracing::warn!(
                dir = %self.dir.display(),
                "spool directory cannot be written: what it holds is replayed, but acknowledgements \
                 stay in memory (a restart replays it again) and new batches stay in memory"
            );
        }
        if r.unreadable_segments > 0 || r.cleanup_failures > 0 {
            tracing::error!(
                dir = %self.dir.display(),
                unreadable_segments = r.unreadable_segments,
                cleanup_failures = r.cleanup_failures,
                "spool: some segment files could not be read or tidied; the others are replayed"
            );
        }
        tracing::info!(
            dir = %self.dir.display(),
            segments = r.segments,
            records = r.records,
            datapoints = r.points,
            bytes = r.bytes,
            checkpoint_missing_or_corrupt = r.checkpoint_missing_or_corrupt,
            "spool opened; datapoints left by an earlier run will be replayed"
        );
    }
}

/// A spool operation failed on the disk; the spool rests and the points stay in memory.
pub struct SpoolWriteFailed<'a> {
    pub op: &'static str,
    pub error: &'a crate::spool::store::StoreError,
    pub retry_in: Duration,
}

impl SpoolWriteFailed<'_> {
    pub fn emit(&self, limits: &LogLimits) {
        if let Some(suppressed) = limits.spool_write_failed.check() {
            tracing::error!(
                op = self.op,
                error = %self.error,
                retry_in_s = self.retry_in.as_secs(),
                suppressed,
                "spool disk error: keeping datapoints in memory until the spool works again"
            );
        }
    }
}

/// The spool was full and its oldest segments were deleted (`spool_full_policy = drop_oldest`).
pub struct SpoolEvicted {
    pub segments: u64,
    pub points: u64,
}

impl SpoolEvicted {
    pub fn emit(&self, ledger: &Ledger, limits: &LogLimits) {
        ledger.spool_dropped(DropReason::SpoolFull, self.points);
        if let Some(suppressed) = limits.spool_evicted.check() {
            tracing::warn!(
                segments = self.segments,
                count = self.points,
                reason = DropReason::SpoolFull.label(),
                suppressed,
                "spool full: oldest segments deleted"
            );
        }
    }
}

/// The spool was full under `spool_full_policy = block`: the points stay in memory (and when
/// memory fills, the buffer policy applies).
pub struct SpoolFullRefused {
    pub kept_in_memory: u64,
}

impl SpoolFullRefused {
    pub fn emit(&self, limits: &LogLimits) {
        if let Some(suppressed) = limits.spool_full_refused.check() {
            tracing::warn!(
                kept_in_memory = self.kept_in_memory,
                suppressed,
                "spool full (policy block): keeping datapoints in memory"
            );
        }
    }
}

/// A spooled record failed its checksum when read back: the rest of its segment is cut off.
pub struct SpoolCorruptFound {
    pub points: u64,
    pub bytes: u64,
}

impl SpoolCorruptFound {
    pub fn emit(&self, ledger: &Ledger, limits: &LogLimits) {
        ledger.spool_dropped(DropReason::SpoolCorrupt, self.points);
        if let Some(suppressed) = limits.spool_corrupt.check() {
            tracing::error!(
                count = self.points,
                bytes = self.bytes,
                reason = DropReason::SpoolCorrupt.label(),
                suppressed,
                "spool: corrupt record found while reading; the rest of its segment was cut off"
            );
        }
    }
}

/// A spool segment could not be opened or read back (deleted while running, made unreadable,
/// an I/O error): its unread points are lost, and the drainer goes on with the next segment.
pub struct SpoolSegmentLost<'a> {
    pub points: u64,
    pub error: &'a crate::spool::store::StoreError,
}

impl SpoolSegmentLost<'_> {
    pub fn emit(&self, ledger: &Ledger, limits: &LogLimits) {
        ledger.spool_dropped(DropReason::SpoolLost, self.points);
        if let Some(suppressed) = limits.spool_lost.check() {
            tracing::error!(
                count = self.points,
                error = %self.error,
                reason = DropReason::SpoolLost.label(),
                suppressed,
                "spool: a segment cannot be read back; its datapoints are lost, the next segments are replayed"
            );
        }
    }
}
