//! The spool's files: a directory of append-only segment files holding `record`s, the
//! acknowledgement checkpoint, the directory lock, and recovery after a crash. Synchronous,
//! `std::fs` only; the caller decides which thread runs it.
//!
//! # Layout
//! * `lock`: held with `File::try_lock` for the life of the [`Store`], so two processes never
//!   share a spool.
//! * `NNNNNNNNNNNNNNNNNNNN.seg`: a segment, named by its 20-digit sequence number (ascending =
//!   oldest first): the magic `BFSPOOL1`, then records. Only the newest segment opened by this
//!   process is ever appended to.
//! * `ack`: the checkpoint, `segment: u64 LE | offset: u64 LE | crc32c: u32 LE`: every record
//!   before `(segment, offset)` has been delivered. Replaced atomically (`ack.tmp`, fsync,
//!   rename, fsync of the directory).
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
//! * `oldest_written_ms` assumes records are stamped in non-decreasing order (they are stamped
//!   when spooled): after a read the next unread record of that segment is taken to be no older
//!   than the one just read, which keeps the figure from needing a per-record list.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::record::{self, HEADER_BYTES, Record, RecordError};
use crate::model::Datapoint;

/// The first bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"BFSPOOL1";
const MAGIC_LEN: u64 = MAGIC.len() as u64;
const LOCK_FILE: &str = "lock";
const ACK_FILE: &str = "ack";
const ACK_TMP_FILE: &str = "ack.tmp";
const CHECKPOINT_BYTES: usize = 8 + 8 + 4;
const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_DIGITS: usize = 20;
/// Reads of a segment go through a buffer of this size, so a record is usually one copy.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// What `append` does when the bound would be passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullPolicy {
    /// Delete whole oldest segments to make room.
    DropOldest,
    /// Refuse the record (`Appended::Full`).
    Block,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bound on the sum of segment file sizes.
    pub max_bytes: u64,
    /// Rotate when the active segment would pass this.
    pub segment_bytes: u64,
    /// Bound on a record's payload length field: records longer than this are corrupt on read,
    /// refused on append.
    pub max_record_bytes: usize,
    pub full_policy: FullPolicy,
    /// `true` = `sync_data` after each append ("every batch").
    pub sync_every_append: bool,
}

/// Where a record is: its segment and the offset of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    pub segment: u64,
    pub offset: u64,
}

/// What `open` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Segments kept (holding records not yet acknowledged).
    pub segments: usize,
    /// Records and points to replay.
    pub records: u64,
    pub points: u64,
    /// Size of the kept segment files.
    pub bytes: u64,
    /// Records (or torn tails) found broken and cut off, and the bytes cut.
    pub corrupt_records: u64,
    pub corrupt_bytes: u64,
    /// Oldest `written_ms` among the records to replay.
    pub oldest_written_ms: Option<u64>,
    /// The checkpoint was missing, did not pass its checksum, or did not land on a record
    /// boundary (that segment is then replayed from its start).
    pub checkpoint_missing_or_corrupt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written. When the bound forced it (DropOldest), whole oldest segments were deleted first:
    /// `evicted_points` = their points not yet handed out by `read` (still counted as spooled).
    Stored {
        evicted_segments: u64,
        evicted_points: u64,
    },
    /// Policy Block and no room: nothing written.
    Full,
}

#[derive(Debug)]
pub struct ReadRecord {
    pub id: RecordId,
    pub written_ms: u64,
    pub points: Vec<Datapoint>,
}

#[derive(Debug)]
pub enum ReadOutcome {
    Record(ReadRecord),
    /// Nothing unread.
    Empty,
    /// A record failed its checksum (or length/parse) while being read: the rest of that segment
    /// was cut off (file truncated to the last good record when possible); `lost_points` = the
    /// points the store had counted in that part. Call `read` again.
    Corrupt {
        lost_points: u64,
        bytes: u64,
    },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreStats {
    pub bytes: u64,
    pub segments: usize,
    /// Appended/recovered, not yet handed out by read.
    pub unread_points: u64,
    /// Handed out by read, not yet acked.
    pub unacked_records: u64,
    /// Oldest unacked record (a lower bound once a segment is partly read: see the module notes).
    pub oldest_written_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("spool directory {path} is in use by another process (its lock file is held)")]
    Locked { path: PathBuf },
    #[error("spool: cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "spool: a record of {record_bytes} bytes can never be stored \
         (max_record_bytes {max_record_bytes}, max_bytes {max_bytes})"
    )]
    TooLarge {
        record_bytes: u64,
        max_record_bytes: usize,
        max_bytes: u64,
    },
    #[error("spool: ack of {got:?} out of order (next to ack: {expected:?})")]
    AckOutOfOrder {
        got: RecordId,
        expected: Option<RecordId>,
    },
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

/// The index entry of one segment file.
#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// Bytes readers trust: the magic and whole good records.
    len: u64,
    /// Offset of the next record `read` hands out.
    read_offset: u64,
    /// Live records: those after the checkpoint when recovered, plus those appended.
    records: u64,
    unread_records: u64,
    unread_points: u64,
    acked_records: u64,
    /// Oldest `written_ms` among the unread records (see the module notes).
    oldest_unread_ms: Option<u64>,
    /// No longer appended to; deleted once every live record is acked.
    sealed: bool,
}

impl Segment {
    fn fully_acked(&self) -> bool {
        self.acked_records == self.records
    }
}

/// The file the active segment is appended through.
#[derive(Debug)]
struct SegmentWriter {
    file: File,
    path: PathBuf,
    /// The trusted length: what the index may claim.
    len: u64,
    /// Written since the last `sync_data`.
    dirty: bool,
    /// A failed write could not be cut off, so the file may hold bytes past `len` and nothing
    /// may be appended after them.
    broken: bool,
}

impl SegmentWriter {
    /// One `write_all` per record, so a record is either wholly there or cut off here.
    fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if let Err(source) = self.file.write_all(bytes) {
            if self.file.set_len(self.len).is_err() {
                self.broken = true;
            }
            return Err(StoreError::Io {
                op: "write segment",
                path: self.path.clone(),
                source,
            });
        }
        self.len += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.dirty {
            self.file
                .sync_data()
                .map_err(io_error("sync segment", &self.path))?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// An open read position in one segment.
struct SegmentReader {
    seq: u64,
    /// Offset the buffered reader is at.
    pos: u64,
    inner: BufReader<File>,
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
    _lock: File,
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
    /// Opens (creating it if missing) and locks `dir`, then recovers: segments wholly before the
    /// checkpoint are deleted, the others scanned record by record and cut at their first bad
    /// record. New records go to a new segment.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Store, Recovery), StoreError> {
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_error("open lock file", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_error("lock", &lock_path)(e)),
        }

        let checkpoint = read_checkpoint(&dir.join(ACK_FILE))?;
        let mut recovery = Recovery {
            checkpoint_missing_or_corrupt: checkpoint.is_none(),
            ..Recovery::default()
        };
        let seqs = list_segments(dir)?;
        // Never reuse a number at or below the checkpoint's: such a segment would be taken for
        // an acknowledged one at the next open.
        let next_seq = seqs
            .last()
            .copied()
            .max(checkpoint.map(|c| c.segment))
            .map_or(0, |s| s.saturating_add(1));

        let mut segments = VecDeque::new();
        let mut buf = Vec::new();
        for seq in seqs {
            let path = segment_path(dir, seq);
            if checkpoint.is_some_and(|c| seq < c.segment) {
                remove_file(&path)?;
                continue;
            }
            let ckpt_offset = checkpoint.filter(|c| c.segment == seq).map(|c| c.offset);
            let scan = scan_segment(&path, ckpt_offset, opts.max_record_bytes, &mut buf)?;
            let Some(good_len) = scan.good_len else {
                recovery.corrupt_records += 1;
                recovery.corrupt_bytes += scan.file_len;
                remove_file(&path)?;
                continue;
            };
            if good_len < scan.file_len {
                recovery.corrupt_records += 1;
                recovery.corrupt_bytes += scan.file_len - good_len;
                truncate(&path, good_len)?;
            }
            let (live, start) = match (ckpt_offset, scan.after_checkpoint) {
                (Some(offset), Some(after)) => (after, offset.min(good_len)),
                (Some(_), None) => {
                    recovery.checkpoint_missing_or_corrupt = true;
                    (scan.all, MAGIC_LEN)
                }
                (None, _) => (scan.all, MAGIC_LEN),
            };
            if live.records == 0 {
                remove_file(&path)?;
                continue;
            }
            recovery.segments += 1;
            recovery.records += live.records;
            recovery.points += live.points;
            recovery.bytes += good_len;
            recovery.oldest_written_ms = min_opt(recovery.oldest_written_ms, live.oldest_ms);
            segments.push_back(Segment {
                seq,
                path,
                len: good_len,
                read_offset: start,
                records: live.records,
                unread_records: live.records,
                unread_points: live.points,
                acked_records: 0,
                oldest_unread_ms: live.oldest_ms,
                sealed: true,
            });
        }

        let store = Store {
            dir: dir.to_path_buf(),
            opts,
            _lock: lock,
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
        let mut reader = match self.reader.take() {
            Some(r) if r.seq == seq => r,
            _ => {
                let file = File::open(&seg.path).map_err(io_error("open segment", &seg.path))?;
                SegmentReader {
                    seq,
                    pos: 0,
                    inner: BufReader::with_capacity(READ_BUFFER_BYTES, file),
                }
            }
        };
        if reader.pos != offset {
            reader
                .inner
                .seek(SeekFrom::Start(offset))
                .map_err(io_error("seek segment", &seg.path))?;
            reader.pos = offset;
        }
        let max = self.opts.max_record_bytes;
        let read = read_record(&mut reader.inner, offset, valid_len, max, &mut self.buf)
            .map_err(io_error("read segment", &seg.path))?;
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
        if self.checkpoint != self.persisted_checkpoint
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
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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
        remove_file(&seg.path)
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

/// Counts over a run of records.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    records: u64,
    points: u64,
    oldest_ms: Option<u64>,
}

impl Tally {
    fn add(&mut self, rec: &Record) {
        self.records += 1;
        self.points += rec.points.len() as u64;
        self.oldest_ms = min_opt(self.oldest_ms, Some(rec.written_ms));
    }
}

/// What a recovery scan found in one segment file.
#[derive(Debug)]
struct Scan {
    file_len: u64,
    /// The magic and the whole good records before the first bad one; `None`: bad magic.
    good_len: Option<u64>,
    all: Tally,
    /// Records at or after the checkpoint offset; `None` when that offset is not a record
    /// boundary (an offset past the good records has none after it, and is trusted).
    after_checkpoint: Option<Tally>,
}

fn scan_segment(
    path: &Path,
    checkpoint: Option<u64>,
    max_record_bytes: usize,
    buf: &mut Vec<u8>,
) -> Result<Scan, StoreError> {
    let file = File::open(path).map_err(io_error("open segment", path))?;
    let file_len = file
        .metadata()
        .map_err(io_error("stat segment", path))?
        .len();
    let mut scan = Scan {
        file_len,
        good_len: None,
        all: Tally::default(),
        after_checkpoint: checkpoint
            .filter(|&c| c >= MAGIC_LEN)
            .map(|_| Tally::default()),
    };
    let mut r = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    let mut magic = [0; MAGIC.len()];
    if file_len < MAGIC_LEN {
        return Ok(scan);
    }
    r.read_exact(&mut magic)
        .map_err(io_error("read segment", path))?;
    if &magic != MAGIC {
        return Ok(scan);
    }
    let mut offset = MAGIC_LEN;
    loop {
        let read = read_record(&mut r, offset, file_len, max_record_bytes, buf)
            .map_err(io_error("read segment", path))?;
        let Ok((rec, took)) = read else { break };
        let end = offset + took;
        if let Some(c) = checkpoint {
            if offset < c && c < end {
                scan.after_checkpoint = None;
            } else if let Some(after) = scan.after_checkpoint.as_mut().filter(|_| offset >= c) {
                after.add(&rec);
            }
        }
        scan.all.add(&rec);
        offset = end;
    }
    scan.good_len = Some(offset);
    Ok(scan)
}

/// Reads the record at `offset` (where `r` is positioned) without reading at or past
/// `valid_len`. The inner result is the record and its size, or why the bytes there are not one
/// (`Incomplete` also when the file ends early).
fn read_record(
    r: &mut impl Read,
    offset: u64,
    valid_len: u64,
    max_record_bytes: usize,
    buf: &mut Vec<u8>,
) -> io::Result<Result<(Record, u64), RecordError>> {
    let available = valid_len.saturating_sub(offset);
    if available < HEADER_BYTES as u64 {
        return Ok(Err(RecordError::Incomplete {
            needed: HEADER_BYTES,
        }));
    }
    buf.clear();
    buf.resize(HEADER_BYTES, 0);
    if !read_fully(r, buf)? {
        return Ok(Err(RecordError::Incomplete {
            needed: HEADER_BYTES,
        }));
    }
    // The header alone tells the record's size, or that its length field is damaged.
    let needed = match record::decode(buf, max_record_bytes) {
        Err(RecordError::Incomplete { needed }) => needed,
        Ok((rec, took)) => return Ok(Ok((rec, took as u64))),
        Err(e) => return Ok(Err(e)),
    };
    if needed as u64 > available {
        return Ok(Err(RecordError::Incomplete { needed }));
    }
    buf.resize(needed, 0);
    if !read_fully(r, &mut buf[HEADER_BYTES..])? {
        return Ok(Err(RecordError::Incomplete { needed }));
    }
    Ok(record::decode(buf, max_record_bytes).map(|(rec, took)| (rec, took as u64)))
}

/// `read_exact`, with an early end of file as `false` rather than an error.
fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// The checkpoint, or `None` when the file is missing or damaged.
fn read_checkpoint(path: &Path) -> Result<Option<RecordId>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read checkpoint", path)(e)),
    };
    let Ok(arr) = <[u8; CHECKPOINT_BYTES]>::try_from(bytes.as_slice()) else {
        return Ok(None);
    };
    let [
        s0,
        s1,
        s2,
        s3,
        s4,
        s5,
        s6,
        s7,
        o0,
        o1,
        o2,
        o3,
        o4,
        o5,
        o6,
        o7,
        c0,
        c1,
        c2,
        c3,
    ] = arr;
    if crc32c::crc32c(&arr[..16]) != u32::from_le_bytes([c0, c1, c2, c3]) {
        return Ok(None);
    }
    Ok(Some(RecordId {
        segment: u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
        offset: u64::from_le_bytes([o0, o1, o2, o3, o4, o5, o6, o7]),
    }))
}

fn encode_checkpoint(c: RecordId) -> [u8; CHECKPOINT_BYTES] {
    let mut out = [0; CHECKPOINT_BYTES];
    out[..8].copy_from_slice(&c.segment.to_le_bytes());
    out[8..16].copy_from_slice(&c.offset.to_le_bytes());
    let crc = crc32c::crc32c(&out[..16]);
    out[16..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Replaces `ack` so that a crash leaves either the old or the new checkpoint, never a mix.
fn write_checkpoint(dir: &Path, c: RecordId) -> Result<(), StoreError> {
    let tmp = dir.join(ACK_TMP_FILE);
    let mut file = File::create(&tmp).map_err(io_error("create checkpoint", &tmp))?;
    file.write_all(&encode_checkpoint(c))
        .map_err(io_error("write checkpoint", &tmp))?;
    file.sync_all().map_err(io_error("sync checkpoint", &tmp))?;
    let path = dir.join(ACK_FILE);
    fs::rename(&tmp, &path).map_err(io_error("rename checkpoint to", &path))?;
    sync_dir(dir)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"))
}

/// Sequence numbers of the segment files in `dir`, ascending. Anything else is ignored.
fn list_segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        let name = entry.file_name();
        let Some(digits) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else {
            continue;
        };
        if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(seq) = digits.parse::<u64>() else {
            continue;
        };
        if entry
            .file_type()
            .map_err(io_error("stat", &entry.path()))?
            .is_file()
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

fn remove_file(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("delete", path)(e)),
    }
}

fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error("open segment", path))?;
    file.set_len(len).map_err(io_error("truncate", path))?;
    file.sync_all().map_err(io_error("sync segment", path))
}

/// Makes created, renamed and deleted names in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync directory", dir))
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests;
