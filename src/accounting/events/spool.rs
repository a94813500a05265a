//! The disk spool's events: opened (what an earlier run left), points written and read back,
//! a disk operation failed, full (evicted or refused), a record found corrupt, a segment that
//! cannot be read back. Plain figures and the error as text: the events know nothing of the
//! spool's own types (`accounting` sits below `spool`).

use std::fmt::Display;
use std::path::Path;
use std::time::Duration;

use super::{InternalEvent, LogLimits};
use crate::accounting::{DropReason, Ledger};

/// The spool was opened: what an earlier run left on disk.
pub struct SpoolRecovered<'a> {
    pub dir: &'a Path,
    /// Segments kept, and the records, points and bytes in them to replay.
    pub segments: usize,
    pub records: u64,
    pub points: u64,
    pub bytes: u64,
    /// Records (or torn tails) found broken and cut off, and the bytes cut.
    pub corrupt_records: u64,
    pub corrupt_bytes: u64,
    pub checkpoint_missing_or_corrupt: bool,
    /// The directory cannot be written: replayed, changing nothing on disk.
    pub read_only: bool,
    pub unreadable_segments: u64,
    pub cleanup_failures: u64,
}

impl InternalEvent for SpoolRecovered<'_> {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.recovered(self.points);
        if self.corrupt_records > 0 {
            tracing::error!(
                dir = %self.dir.display(),
                corrupt_records = self.corrupt_records,
                corrupt_bytes = self.corrupt_bytes,
                "spool: damaged records found and cut off (torn last write or corruption); the rest is replayed"
            );
        }
        if self.read_only {
            tracing::warn!(
                dir = %self.dir.display(),
                "spool directory cannot be written: what it holds is replayed, but acknowledgements \
                 stay in memory (a restart replays it again) and new batches stay in memory"
            );
        }
        if self.unreadable_segments > 0 || self.cleanup_failures > 0 {
            tracing::error!(
                dir = %self.dir.display(),
                unreadable_segments = self.unreadable_segments,
                cleanup_failures = self.cleanup_failures,
                "spool: some segment files could not be read or tidied; the others are replayed"
            );
        }
        tracing::info!(
            dir = %self.dir.display(),
            segments = self.segments,
            records = self.records,
            datapoints = self.points,
            bytes = self.bytes,
            checkpoint_missing_or_corrupt = self.checkpoint_missing_or_corrupt,
            "spool opened; datapoints left by an earlier run will be replayed"
        );
    }
}

/// In-flight points were written to the spool (only what was fully written).
pub struct SpoolWritten {
    pub points: u64,
}

impl InternalEvent for SpoolWritten {
    type Output = ();

    #[inline]
    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.in_flight_to_spool(self.points);
    }
}

/// A record's points were read back from the spool for delivery.
pub struct SpoolRead {
    pub points: u64,
}

impl InternalEvent for SpoolRead {
    type Output = ();

    #[inline]
    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.spool_to_in_flight(self.points);
    }
}

/// A spool operation failed on the disk; the spool rests and the points stay in memory.
pub struct SpoolWriteFailed<'a> {
    pub op: &'static str,
    pub error: &'a dyn Display,
    pub retry_in: Duration,
}

impl InternalEvent for SpoolWriteFailed<'_> {
    type Output = ();

    fn emit(self, _: &Ledger, limits: &LogLimits) {
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

impl InternalEvent for SpoolEvicted {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
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

impl InternalEvent for SpoolFullRefused {
    type Output = ();

    fn emit(self, _: &Ledger, limits: &LogLimits) {
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

impl InternalEvent for SpoolCorruptFound {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
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
    pub error: &'a dyn Display,
}

impl InternalEvent for SpoolSegmentLost<'_> {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
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
