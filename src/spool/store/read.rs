//! Reading and acknowledging: records handed out oldest first and acked in the order they were
//! handed out, and what a read does to a segment that turns out damaged (cut at the bad record)
//! or unreadable (its unread records given up).

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use super::super::record::Record;
use super::super::segment::{READ_BUFFER_BYTES, SegmentReader, read_record, truncate};
use super::{InFlight, ReadOutcome, ReadRecord, RecordId, Store, StoreError, io_error};

impl Store {
    /// Hands out the next unread record, oldest first.
    pub fn read(&mut self) -> Result<ReadOutcome, StoreError> {
        let Some(idx) = self.segments.iter().position(|s| s.unread_records > 0) else {
            return Ok(ReadOutcome::Empty);
        };
        let seg = &self.segments[idx];
        let (seq, offset, valid_len) = (seg.seq, seg.read_offset, seg.len);
        let path = seg.path.clone();
        let mut reader = match reader_at(self.reader.take(), seq, offset, &path) {
            Ok(reader) => reader,
            Err(e) => return self.lose(idx, e),
        };
        let max = self.opts.max_record_bytes;
        let read = match read_record(&mut reader.inner, offset, valid_len, max, &mut self.buf) {
            Ok(read) => read,
            Err(e) => return self.lose(idx, io_error("read segment", &path)(e)),
        };
        match read {
            Ok((rec, took)) => {
                reader.pos = offset + took;
                self.reader = Some(reader);
                Ok(ReadOutcome::Record(self.hand_out(idx, offset, took, rec)))
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

    /// Moves the record `rec` (`took` bytes at `offset` of segment `idx`) from unread to in
    /// flight.
    fn hand_out(&mut self, idx: usize, offset: u64, took: u64, rec: Record) -> ReadRecord {
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
            seg.oldest_unread_ms.map(|m| m.max(rec.arrived_ms))
        };
        let id = RecordId {
            segment: seg.seq,
            offset,
        };
        self.in_flight.push_back(InFlight {
            id,
            end: offset + took,
            arrived_ms: rec.arrived_ms,
        });
        ReadRecord {
            id,
            written_ms: rec.written_ms,
            points: rec.points,
        }
    }

    /// Whether `read` has handed out `id` already (so acking it again is harmless).
    fn was_handed_out(&self, id: RecordId) -> bool {
        match self.segments.iter().find(|s| s.seq == id.segment) {
            Some(seg) => id.offset < seg.read_offset,
            // Evicted or deleted once fully acked; never-created numbers are at or above next_seq.
            None => id.segment < self.next_seq,
        }
    }

    /// Segment `idx` cannot be read from its read offset on (`error`): its unread records are
    /// given up. Like a cut segment, it is deleted (if its file is still there) once the
    /// records already handed out from it are acked; an active one is sealed first, so that new
    /// records go to a new file rather than after bytes that cannot be read back.
    fn lose(&mut self, idx: usize, error: StoreError) -> Result<ReadOutcome, StoreError> {
        self.reader = None;
        let is_active = self.writer.is_some() && idx + 1 == self.segments.len();
        let lost_points = self.segments[idx].unread_points;
        self.forget_unread(idx, self.segments[idx].read_offset);
        let seg = &self.segments[idx];
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
        self.forget_unread(idx, offset);
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
            let _ = truncate(&self.segments[idx].path, offset);
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

    /// The index of segment `idx` ends at `len`: its unread records, all past `len`, are gone.
    fn forget_unread(&mut self, idx: usize, len: u64) {
        let seg = &mut self.segments[idx];
        self.bytes -= seg.len - len;
        self.unread_points = self.unread_points.saturating_sub(seg.unread_points);
        seg.len = len;
        seg.records -= seg.unread_records;
        seg.unread_records = 0;
        seg.unread_points = 0;
        seg.oldest_unread_ms = None;
    }
}

/// A reader of segment `seq` at `offset`: `kept` when it is that segment's, else a new one.
fn reader_at(
    kept: Option<SegmentReader>,
    seq: u64,
    offset: u64,
    path: &Path,
) -> Result<SegmentReader, StoreError> {
    let mut reader = match kept {
        Some(r) if r.seq == seq => r,
        _ => SegmentReader {
            seq,
            pos: 0,
            inner: BufReader::with_capacity(
                READ_BUFFER_BYTES,
                File::open(path).map_err(io_error("open segment", path))?,
            ),
        },
    };
    if reader.pos != offset {
        reader
            .inner
            .seek(SeekFrom::Start(offset))
            .map_err(io_error("seek segment", path))?;
        reader.pos = offset;
    }
    Ok(reader)
}
