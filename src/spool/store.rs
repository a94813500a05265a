//! The spool's files: a directory of append-only segment files holding `record`s and the
//! acknowledgement checkpoint, behind one index of what is unread, handed out and acked.
//! Synchronous, `std::fs` only; the caller decides which thread runs it. This file owns the
//! index itself (opening, syncing, figures, sealing and deleting segments); the operations on
//! it by role: `store/append` (writing records, rotation), `store/evict` (the byte bound),
//! `store/read` (handing out, acking, damaged or unreadable segments met while reading). The
//! files below it: `segment` (one segment file: name, magic, writer, reader, reading one
//! record), `checkpoint` (the `ack` file), `lock` (one process per directory, and whether it
//! can be written), `recovery` (what an earlier run left, at open).
//!
//! # Layout
//! * The directory itself is locked (`flock` on a handle of it) for the life of the [`Store`],
//!   so two processes never share a spool; there is no lock file to delete.
//! * `NNNNNNNNNNNNNNNNNNNN.seg`: a segment, named by its 20-digit sequence number (ascending =
//!   oldest first): the magic `BFSPOOL1`, then records. Only the newest segment opened by this
//!   process is ever appended to.
//! * `ack`: the checkpoint (see `checkpoint`): every record before `(segment, offset)` has
//!   been delivered.
//!
//! # Decisions
//! * The in-memory index (per segment: trusted length, live records, unread records and points)
//!   is the truth for readers: bytes past a segment's trusted length are never read, so a write
//!   that failed half-way and could not be cut off is harmless.
//! * Recovery cuts a segment at its first bad record (torn tail or damage) rather than trying to
//!   resynchronise past it: records carry no sync marker, and a guess could replay garbage.
//! * A checkpoint that does not land on a record boundary of its segment is not trusted for
//!   that segment, which is replayed from its start: duplicates are preferred to losses.
//! * The checkpoint is written by `sync`, not by every `ack`: a crash may replay what was acked
//!   since the last `sync` (again duplicates, never losses; a segment emptied by acks is deleted
//!   at once, so its records do not come back).
//! * A segment that can no longer be opened or read while running (deleted, its permissions
//!   changed, an I/O error) loses its unread records — [`ReadOutcome::Lost`], counted by the
//!   caller — and reading goes on with the next segment: one bad file never stops the replay
//!   of the others. Like a cut segment, it is deleted once what was handed out from it is
//!   acked (if its file is still there).
//! * A directory that cannot be written (permissions, a read-only mount, the immutable
//!   attribute) is still opened and replayed: nothing is deleted or cut, the checkpoint moves
//!   in memory only, and appends are refused ([`StoreError::ReadOnly`]; `append` probes again
//!   each time, so a directory made writable is used again). Delivery stays at least once: a
//!   restart replays what was delivered, which Blueflood's idempotent ingest absorbs.
//! * `oldest_arrived_ms` (the arrival of the oldest point to replay: the delivery lag) assumes
//!   records are appended in non-decreasing arrival order: after a read the next unread record
//!   of that segment is taken to be no older than the one just read, which keeps the figure
//!   from needing a per-record list. Appends are nearly in that order (a failed batch can be
//!   spooled after younger ones, by at most its time in flight), so the figure can understate
//!   by that much while such a record waits behind a younger one.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

use super::checkpoint::{ACK_FILE, read_checkpoint, write_checkpoint};
use super::lock::{self, DirLock};
use super::recovery::{self, Recovered};
pub use super::segment::MAGIC;
use super::segment::{SegmentReader, SegmentWriter, remove_file};

mod append;
mod evict;
mod read;
mod types;

pub(super) use types::io_error;
pub use types::{
    Appended, FullPolicy, ReadOutcome, ReadRecord, RecordId, Recovery, StoreError, StoreOptions,
    StoreStats,
};

/// The index entry of one segment file.
#[derive(Debug)]
pub(super) struct Segment {
    pub(super) seq: u64,
    pub(super) path: PathBuf,
    /// Bytes readers trust: the magic and whole good records.
    pub(super) len: u64,
    /// Offset of the next record `read` hands out.
    pub(super) read_offset: u64,
    /// Live records: those after the checkpoint when recovered, plus those appended.
    pub(super) records: u64,
    pub(super) unread_records: u64,
    pub(super) unread_points: u64,
    pub(super) acked_records: u64,
    /// Oldest `arrived_ms` among the unread records (see the module notes).
    pub(super) oldest_unread_ms: Option<u64>,
    /// No longer appended to; deleted once every live record is acked.
    pub(super) sealed: bool,
}

impl Segment {
    fn fully_acked(&self) -> bool {
        self.acked_records == self.records
    }
}

/// A record handed out by `read`, not yet acked.
#[derive(Debug)]
struct InFlight {
    id: RecordId,
    end: u64,
    /// When its oldest point arrived (its write time for a version 1 record).
    arrived_ms: u64,
}

/// The spool directory, open and locked.
pub struct Store {
    dir: PathBuf,
    opts: StoreOptions,
    /// Held, never read: the lock lives as long as this handle.
    _lock: DirLock,
    /// Names can be created and removed in `dir` (see the module notes).
    writable: bool,
    /// Oldest first; while `writer` is set, the last one is the active segment.
    segments: VecDeque<Segment>,
    writer: Option<SegmentWriter>,
    reader: Option<SegmentReader>,
    in_flight: VecDeque<InFlight>,
    checkpoint: Option<RecordId>,
    persisted_checkpoint: Option<RecordId>,
    next_seq: u64,
    bytes: u64,
    unread_points: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating it if missing) and locks `dir`, then recovers (see `recovery`). New
    /// records go to a new segment. A directory that cannot be written opens read-only.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Store, Recovery), StoreError> {
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        let lock = lock::lock(dir)?;
        let writable = lock::probe_writable(dir).is_ok();
        let checkpoint = read_checkpoint(&dir.join(ACK_FILE))?;
        let mut buf = Vec::new();
        let Recovered {
            segments,
            recovery,
            next_seq,
        } = recovery::recover(dir, checkpoint, opts.max_record_bytes, writable, &mut buf)?;
        let store = Store {
            dir: dir.to_path_buf(),
            opts,
            _lock: lock,
            writable,
            segments,
            writer: None,
            reader: None,
            in_flight: VecDeque::new(),
            checkpoint,
            persisted_checkpoint: checkpoint,
            next_seq,
            bytes: recovery.bytes,
            unread_points: recovery.points,
            buf,
        };
        Ok((store, recovery))
    }

    /// Makes what was appended durable (`sync_data` of the active segment, if written since the
    /// last sync) and persists the checkpoint if it moved.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if let Some(w) = self.writer.as_mut() {
            w.sync()?;
        }
        if self.writable
            && self.checkpoint != self.persisted_checkpoint
            && let Some(c) = self.checkpoint
        {
            write_checkpoint(&self.dir, c)?;
            self.persisted_checkpoint = Some(c);
        }
        Ok(())
    }

    pub fn stats(&self) -> StoreStats {
        let in_flight = self.in_flight.iter().map(|f| f.arrived_ms).min();
        let unread = self
            .segments
            .iter()
            .filter_map(|s| s.oldest_unread_ms)
            .min();
        StoreStats {
            bytes: self.bytes,
            segments: self.segments.len(),
            unread_points: self.unread_points,
            unacked_records: self.in_flight.len() as u64,
            oldest_arrived_ms: min_opt(in_flight, unread),
            writable: self.writable,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether names can be created in the directory (as of open, or the last append).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The segment being appended to, if any.
    fn active(&self) -> Option<&Segment> {
        self.writer.as_ref().and(self.segments.back())
    }

    /// Stops appending to the active segment; deletes it if every record in it is acked.
    /// `sync` = make its data durable first (skipped after a failed write, where it would fail too).
    fn seal_active(&mut self, sync: bool) -> Result<(), StoreError> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        let idx = self.segments.len() - 1;
        self.segments[idx].sealed = true;
        if sync {
            writer.sync()?;
        }
        if self.segments[idx].fully_acked() {
            self.delete_segment(idx)?;
        }
        Ok(())
    }

    /// Forgets segment `idx` and deletes its file.
    fn delete_segment(&mut self, idx: usize) -> Result<(), StoreError> {
        let Some(seg) = self.segments.remove(idx) else {
            return Ok(());
        };
        self.bytes -= seg.len;
        self.unread_points = self.unread_points.saturating_sub(seg.unread_points);
        if self.reader.as_ref().is_some_and(|r| r.seq == seg.seq) {
            self.reader = None;
        }
        if self.writer.is_some() && idx == self.segments.len() {
            self.writer = None;
        }
        if !self.writable {
            // Forgotten here, replayed again after a restart (at least once).
            return Ok(());
        }
        remove_file(&seg.path)
    }
}

pub(super) fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests;
