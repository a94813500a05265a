//! The spool's files: a directory of append-only segment files holding `record`s and the
//! acknowledgement checkpoint, behind one index of what is unread, handed out and acked.
//! Synchronous, `std::fs` only; the caller decides which thread runs it. The parts by role:
//! `segment` (one segment file: name, magic, writer, reader, reading one record),
//! `checkpoint` (the `ack` file), `lock` (one process per directory, and whether it can be
//! written), `recovery` (what an earlier run left, at open).
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
//! * `oldest_written_ms` assumes records are stamped in non-decreasing order (they are stamped
//!   when spooled): after a read the next unread record of that segment is taken to be no older
//!   than the one just read, which keeps the figure from needing a per-record list.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::checkpoint::{ACK_FILE, read_checkpoint, write_checkpoint};
use super::lock::{self, DirLock};
use super::record::{self, HEADER_BYTES};
use super::recovery::{self, Recovered};
pub use super::segment::MAGIC;
use super::segment::{
    MAGIC_LEN, READ_BUFFER_BYTES, SegmentReader, SegmentWriter, read_record, remove_file,
    segment_path, sync_dir, truncate,
};
use crate::model::Datapoint;

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
    /// Oldest `written_ms` among the unread records (see the module notes).
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
    written_ms: u64,
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

    /// Appends one record holding `points`. An error from the fsync after a successful write
    /// (`sync_every_append`) leaves the record stored and indexed.
    pub fn append(
        &mut self,
        points: &[Datapoint],
        written_ms: u64,
    ) -> Result<Appended, StoreError> {
        let record_len = record::encoded_len(points);
        let payload_len = record_len - HEADER_BYTES;
        let record_bytes = record_len as u64;
        if payload_len > self.opts.max_record_bytes
            || u32::try_from(payload_len).is_err()
            || MAGIC_LEN.saturating_add(record_bytes) > self.opts.max_bytes
        {
            return Err(StoreError::TooLarge {
                record_bytes,
                max_record_bytes: self.opts.max_record_bytes,
                max_bytes: self.opts.max_bytes,
            });
        }
        if !self.writable {
            lock::probe_writable(&self.dir).map_err(|source| StoreError::ReadOnly {
                path: self.dir.clone(),
                source,
            })?;
            self.writable = true;
        }

        let mut evicted_segments = 0;
        let mut evicted_points = 0;
        let rotate = loop {
            let active = self.active();
            let rotate = match active {
                // A record bigger than segment_bytes goes alone into a fresh segment.
                Some(seg) => {
                    seg.len > MAGIC_LEN && seg.len + record_bytes > self.opts.segment_bytes
                }
                None => true,
            };
            let need = record_bytes + if rotate { MAGIC_LEN } else { 0 };
            if self.bytes + need <= self.opts.max_bytes {
                break rotate;
            }
            // An active segment whose records are all acked only holds space: sealing it deletes it.
            if active.is_some_and(|s| s.records > 0 && s.fully_acked()) {
                self.seal_active(true)?;
                continue;
            }
            match self.opts.full_policy {
                FullPolicy::Block => return Ok(Appended::Full),
                // Cannot happen (no segment means no bytes, and the record fits alone), but
                // never loop on it.
                FullPolicy::DropOldest if self.segments.is_empty() => break rotate,
                FullPolicy::DropOldest => {
                    let front_is_active = self.writer.is_some() && self.segments.len() == 1;
                    if front_is_active {
                        // Sealed, it becomes evictable on the next turn.
                        self.seal_active(true)?;
                    } else {
                        evicted_points += self.evict_oldest()?;
                        evicted_segments += 1;
                    }
                }
            }
        };
        if rotate {
            self.rotate()?;
        }

        self.buf.clear();
        record::encode(points, written_ms, &mut self.buf);
        let (Some(writer), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            // `rotate` leaves a writer or returns an error.
            return Err(StoreError::Io {
                op: "append to segment",
                path: self.dir.clone(),
                source: io::Error::other("no active segment"),
            });
        };
        if let Err(e) = writer.append(&self.buf) {
            if writer.broken {
                self.seal_active(false)?;
            }
            return Err(e);
        }
        let n = points.len() as u64;
        seg.len = writer.len;
        seg.records += 1;
        seg.unread_records += 1;
        seg.unread_points += n;
        seg.oldest_unread_ms = min_opt(seg.oldest_unread_ms, Some(written_ms));
        self.bytes += record_bytes;
        self.unread_points += n;
        if self.opts.sync_every_append {
            writer.sync()?;
        }
        Ok(Appended::Stored {
            evicted_segments,
            evicted_points,
        })
    }

    /// Hands out the next unread record, oldest first.
    pub fn read(&mut self) -> Result<ReadOutcome, StoreError> {
        let Some(idx) = self.segments.iter().position(|s| s.unread_records > 0) else {
            return Ok(ReadOutcome::Empty);
        };
        let seg = &self.segments[idx];
        let (seq, offset, valid_len) = (seg.seq, seg.read_offset, seg.len);
        let path = seg.path.clone();
        let mut reader = match self.reader.take() {
            Some(r) if r.seq == seq => r,
            _ => match File::open(&path) {
                Ok(file) => SegmentReader {
                    seq,
                    pos: 0,
                    inner: BufReader::with_capacity(READ_BUFFER_BYTES, file),
                },
                Err(e) => return self.lose(idx, io_error("open segment", &path)(e)),
            },
        };
        if reader.pos != offset {
            if let Err(e) = reader.inner.seek(SeekFrom::Start(offset)) {
                return self.lose(idx, io_error("seek segment", &path)(e));
            }
            reader.pos = offset;
        }
        let max = self.opts.max_record_bytes;
        let read = match read_record(&mut reader.inner, offset, valid_len, max, &mut self.buf) {
            Ok(read) => read,
            Err(e) => return self.lose(idx, io_error("read segment", &path)(e)),
        };
        match read {
            Ok((rec, took)) => {
                reader.pos = offset + took;
                self.reader = Some(reader);
                let n = rec.points.len() as u64;
                let seg = &mut self.segments[idx];
                seg.read_offset = offset + took;
                seg.unread_records -= 1;
                // `saturating`: only a record whose damage passed its checksum could disagree.
                seg.unread_points = seg.unread_points.saturating_sub(n);
                self.unread_points = self.unread_points.saturating_sub(n);
                seg.oldest_unread_ms = if seg.unread_records == 0 {
                    None
                } else {
                    seg.oldest_unread_ms.map(|m| m.max(rec.written_ms))
                };
                let id = RecordId {
                    segment: seq,
                    offset,
                };
                self.in_flight.push_back(InFlight {
                    id,
                    end: offset + took,
                    written_ms: rec.written_ms,
                });
                Ok(ReadOutcome::Record(ReadRecord {
                    id,
                    written_ms: rec.written_ms,
                    points: rec.points,
                }))
            }
            Err(_) => {
                // The reader may have buffered the damaged bytes: never reuse it.
                let seg = &self.segments[idx];
                let lost_points = seg.unread_points;
                let bytes = seg.len - offset;
                self.cut(idx, offset)?;
                Ok(ReadOutcome::Corrupt { lost_points, bytes })
            }
        }
    }

    /// Acknowledges the oldest record handed out by `read` and not yet acked: it is delivered.
    /// Acking a record already acked, or one whose segment was evicted, does nothing. The
    /// checkpoint moves in memory; `sync` persists it. An error after the ack was applied can
    /// only come from deleting the segment it emptied.
    pub fn ack(&mut self, id: RecordId) -> Result<(), StoreError> {
        let expected = self.in_flight.front().map(|f| f.id);
        if expected != Some(id) {
            if expected.is_none_or(|e| id < e) && self.was_handed_out(id) {
                return Ok(());
            }
            return Err(StoreError::AckOutOfOrder { got: id, expected });
        }
        let Some(done) = self.in_flight.pop_front() else {
            return Ok(());
        };
        self.checkpoint = Some(RecordId {
            segment: id.segment,
            offset: done.end,
        });
        let Some(idx) = self.segments.iter().position(|s| s.seq == id.segment) else {
            return Ok(());
        };
        let seg = &mut self.segments[idx];
        seg.acked_records += 1;
        if seg.sealed && seg.fully_acked() {
            self.delete_segment(idx)?;
        }
        Ok(())
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
        let in_flight = self.in_flight.iter().map(|f| f.written_ms).min();
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
            oldest_written_ms: min_opt(in_flight, unread),
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

    /// Whether `read` has handed out `id` already (so acking it again is harmless).
    fn was_handed_out(&self, id: RecordId) -> bool {
        match self.segments.iter().find(|s| s.seq == id.segment) {
            Some(seg) => id.offset < seg.read_offset,
            // Evicted or deleted once fully acked; never-created numbers are at or above next_seq.
            None => id.segment < self.next_seq,
        }
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

    /// Seals the active segment and starts the next: created new, magic written, its name made
    /// durable by an fsync of the directory.
    fn rotate(&mut self) -> Result<(), StoreError> {
        self.seal_active(true)?;
        let seq = self.next_seq;
        let path = segment_path(&self.dir, seq);
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error("create segment", &path))?;
        self.next_seq = seq.saturating_add(1);
        if let Err(e) = file.write_all(MAGIC) {
            // A file left with a partial magic is deleted and counted by the next open.
            let _ = fs::remove_file(&path);
            return Err(io_error("write segment", &path)(e));
        }
        self.segments.push_back(Segment {
            seq,
            path: path.clone(),
            len: MAGIC_LEN,
            read_offset: MAGIC_LEN,
            records: 0,
            unread_records: 0,
            unread_points: 0,
            acked_records: 0,
            oldest_unread_ms: None,
            sealed: false,
        });
        self.bytes += MAGIC_LEN;
        self.writer = Some(SegmentWriter {
            file,
            path,
            len: MAGIC_LEN,
            dirty: true,
            broken: false,
        });
        sync_dir(&self.dir)
    }

    /// Deletes the oldest (sealed) segment to make room; returns its unread points.
    fn evict_oldest(&mut self) -> Result<u64, StoreError> {
        let Some(seg) = self.segments.front() else {
            return Ok(0);
        };
        let (seq, lost) = (seg.seq, seg.unread_points);
        while self.in_flight.front().is_some_and(|f| f.id.segment == seq) {
            self.in_flight.pop_front();
        }
        self.delete_segment(0)?;
        Ok(lost)
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

    /// Segment `idx` cannot be read from its read offset on (`error`): its unread records are
    /// given up. Like a cut segment, it is deleted (if its file is still there) once the
    /// records already handed out from it are acked; an active one is sealed first, so that new
    /// records go to a new file rather than after bytes that cannot be read back.
    fn lose(&mut self, idx: usize, error: StoreError) -> Result<ReadOutcome, StoreError> {
        self.reader = None;
        let is_active = self.writer.is_some() && idx + 1 == self.segments.len();
        let seg = &mut self.segments[idx];
        let lost_points = seg.unread_points;
        self.bytes -= seg.len - seg.read_offset;
        self.unread_points = self.unread_points.saturating_sub(seg.unread_points);
        seg.len = seg.read_offset;
        seg.records -= seg.unread_records;
        seg.unread_records = 0;
        seg.unread_points = 0;
        seg.oldest_unread_ms = None;
        let done = if is_active {
            self.seal_active(false)
        } else if seg.sealed && seg.fully_acked() {
            self.delete_segment(idx)
        } else {
            Ok(())
        };
        if let Err(e) = done {
            tracing::debug!(error = %e, "spool: could not delete a segment that cannot be read");
        }
        Ok(ReadOutcome::Lost { lost_points, error })
    }

    /// Cuts segment `idx` at `offset` (a bad record found by `read`): its unread records are
    /// lost. The file is truncated when possible; the index is cut regardless.
    fn cut(&mut self, idx: usize, offset: u64) -> Result<(), StoreError> {
        self.reader = None;
        let is_active = self.writer.is_some() && idx + 1 == self.segments.len();
        let seg = &mut self.segments[idx];
        self.bytes -= seg.len - offset;
        self.unread_points = self.unread_points.saturating_sub(seg.unread_points);
        seg.len = offset;
        seg.records -= seg.unread_records;
        seg.unread_records = 0;
        seg.unread_points = 0;
        seg.oldest_unread_ms = None;
        let mut seal = false;
        if is_active {
            if let Some(w) = self.writer.as_mut() {
                if w.file.set_len(offset).is_ok() {
                    w.len = offset;
                    w.dirty = true;
                } else {
                    // Appending after bytes the index no longer trusts would hide new records
                    // behind them.
                    seal = true;
                }
            }
        } else {
            // On failure the index still no longer claims those bytes, and the next open finds
            // and cuts them again.
            let _ = truncate(&seg.path, offset);
        }
        if seal {
            self.seal_active(false)?;
        } else {
            let seg = &self.segments[idx];
            if seg.sealed && seg.fully_acked() {
                self.delete_segment(idx)?;
            }
        }
        Ok(())
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
