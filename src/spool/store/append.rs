//! Appending: whether a record can ever be stored, writing it to the active segment and
//! indexing it, and starting a new segment (rotation). Making room under the byte bound is
//! `evict`.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};

use super::super::lock;
use super::super::record::{self, HEADER_BYTES, Stamp};
use super::super::segment::{MAGIC, MAGIC_LEN, SegmentWriter, segment_path, sync_dir};
use super::evict::Room;
use super::{Appended, Segment, Store, StoreError, io_error, min_opt};
use crate::model::Datapoint;

impl Store {
    /// Appends one record holding `points`, stamped with its write time and its oldest
    /// point's arrival (a bare `u64`: written then, nothing older known). An error from the
    /// fsync after a successful write (`sync_every_append`) leaves the record stored and indexed.
    pub fn append(
        &mut self,
        points: &[Datapoint],
        stamp: impl Into<Stamp>,
    ) -> Result<Appended, StoreError> {
        let stamp = stamp.into();
        let record_bytes = self.check_appendable(points)?;
        let Some(Room {
            rotate,
            evicted_segments,
            evicted_points,
        }) = self.make_room(record_bytes)?
        else {
            return Ok(Appended::Full);
        };
        if rotate {
            self.rotate()?;
        }
        self.write_record(points, stamp, record_bytes)?;
        Ok(Appended::Stored {
            evicted_segments,
            evicted_points,
        })
    }

    /// The record's size on disk, once it is known that it could ever be stored and that the
    /// directory can be written (probed again each time while it could not).
    fn check_appendable(&mut self, points: &[Datapoint]) -> Result<u64, StoreError> {
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
        Ok(record_bytes)
    }

    /// Writes the record to the active segment (there is one: room was made and rotated for)
    /// and indexes it. A write that left bytes it could not cut off seals the segment.
    fn write_record(
        &mut self,
        points: &[Datapoint],
        stamp: Stamp,
        record_bytes: u64,
    ) -> Result<(), StoreError> {
        self.buf.clear();
        record::encode(points, stamp, &mut self.buf);
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
        seg.oldest_unread_ms = min_opt(seg.oldest_unread_ms, Some(stamp.arrived_ms));
        self.bytes += record_bytes;
        self.unread_points += n;
        if self.opts.sync_every_append {
            writer.sync()?;
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
}
