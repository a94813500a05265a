//! Recovery when the store opens: which segment files hold records not yet acknowledged, and
//! how far each can be trusted. Segments wholly before the checkpoint are deleted, the others
//! scanned record by record and cut at their first bad record (a torn tail or damage).
//!
//! Deleting and cutting are housekeeping: the index built here is what readers trust, so when
//! they fail (or the directory cannot be written at all) the index alone leaves the bad bytes
//! out and the next open tries again. A segment that cannot be read at all is left where it
//! is, not indexed, and counted: its points were never counted, so the ledger is not touched.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::record::Record;
use super::segment::{
    MAGIC, MAGIC_LEN, READ_BUFFER_BYTES, list_segments, read_record, remove_file, segment_path,
    truncate,
};
use super::store::{RecordId, Recovery, Segment, StoreError, io_error, min_opt};

/// The index of the segments to replay, what was found, and the next segment number.
pub(super) struct Recovered {
    pub(super) segments: VecDeque<Segment>,
    pub(super) recovery: Recovery,
    pub(super) next_seq: u64,
}

/// Scans `dir`'s segments against `checkpoint`; changes files only when `writable`.
pub(super) fn recover(
    dir: &Path,
    checkpoint: Option<RecordId>,
    max_record_bytes: usize,
    writable: bool,
    buf: &mut Vec<u8>,
) -> Result<Recovered, StoreError> {
    let mut recovery = Recovery {
        checkpoint_missing_or_corrupt: checkpoint.is_none(),
        read_only: !writable,
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
    for seq in seqs {
        let seg = recover_segment(
            dir,
            seq,
            checkpoint,
            max_record_bytes,
            writable,
            buf,
            &mut recovery,
        );
        segments.extend(seg);
    }
    Ok(Recovered {
        segments,
        recovery,
        next_seq,
    })
}

/// Recovers segment `seq` into `recovery`: its index entry, or `None` when nothing in it is to
/// be replayed (wholly before the checkpoint, bad magic, all acked, or unreadable).
fn recover_segment(
    dir: &Path,
    seq: u64,
    checkpoint: Option<RecordId>,
    max_record_bytes: usize,
    writable: bool,
    buf: &mut Vec<u8>,
    recovery: &mut Recovery,
) -> Option<Segment> {
    let path = segment_path(dir, seq);
    if checkpoint.is_some_and(|c| seq < c.segment) {
        tidy(writable, recovery, || remove_file(&path));
        return None;
    }
    let ckpt_offset = checkpoint.filter(|c| c.segment == seq).map(|c| c.offset);
    let scan = match scan_segment(&path, ckpt_offset, max_record_bytes, buf) {
        Ok(scan) => scan,
        Err(e) => {
            tracing::error!(
                error = %e,
                "spool: a segment cannot be read; its records are not replayed (the file is left as it is)"
            );
            recovery.unreadable_segments += 1;
            return None;
        }
    };
    let Some(good_len) = scan.good_len else {
        recovery.corrupt_records += 1;
        recovery.corrupt_bytes += scan.file_len;
        tidy(writable, recovery, || remove_file(&path));
        return None;
    };
    if good_len < scan.file_len {
        recovery.corrupt_records += 1;
        recovery.corrupt_bytes += scan.file_len - good_len;
        tidy(writable, recovery, || truncate(&path, good_len));
    }
    let (live, start) = live_part(&scan, ckpt_offset, good_len, recovery);
    if live.records == 0 {
        tidy(writable, recovery, || remove_file(&path));
        return None;
    }
    recovery.segments += 1;
    recovery.records += live.records;
    recovery.points += live.points;
    recovery.bytes += good_len;
    recovery.oldest_arrived_ms = min_opt(recovery.oldest_arrived_ms, live.oldest_ms);
    Some(Segment {
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
    })
}

/// The records of a scanned segment still to replay and the offset to read them from: those
/// after the checkpoint when it lands on a record boundary of it, else all of them.
fn live_part(
    scan: &Scan,
    ckpt_offset: Option<u64>,
    good_len: u64,
    recovery: &mut Recovery,
) -> (Tally, u64) {
    match (ckpt_offset, scan.after_checkpoint) {
        (Some(offset), Some(after)) => (after, offset.min(good_len)),
        (Some(_), None) => {
            recovery.checkpoint_missing_or_corrupt = true;
            (scan.all, MAGIC_LEN)
        }
        (None, _) => (scan.all, MAGIC_LEN),
    }
}

/// Deletes or cuts (`op`) when the directory can be written, counting a failure: the index
/// already leaves those bytes out.
fn tidy(writable: bool, recovery: &mut Recovery, op: impl FnOnce() -> Result<(), StoreError>) {
    if !writable {
        return;
    }
    if let Err(e) = op() {
        recovery.cleanup_failures += 1;
        tracing::warn!(error = %e, "spool recovery: could not tidy a segment; the next open tries again");
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
        self.oldest_ms = min_opt(self.oldest_ms, Some(rec.arrived_ms));
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
