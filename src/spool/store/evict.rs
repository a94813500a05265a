//! The byte bound on append: how a record is made to fit under `max_bytes` — an emptied
//! active segment given back, then `full_policy` (`block` refuses, `drop_oldest` deletes whole
//! oldest segments, in-flight records of theirs included).

use super::super::segment::MAGIC_LEN;
use super::{FullPolicy, Store, StoreError};

/// Room made for one record.
pub(super) struct Room {
    /// The record goes into a new segment.
    pub(super) rotate: bool,
    /// Oldest segments deleted for it, and their points not yet handed out by `read`.
    pub(super) evicted_segments: u64,
    pub(super) evicted_points: u64,
}

impl Store {
    /// Makes room for a record of `record_bytes` (and the magic of a new segment, if it needs
    /// one); `None`: policy `block` and no room, nothing changed but an emptied active segment.
    pub(super) fn make_room(&mut self, record_bytes: u64) -> Result<Option<Room>, StoreError> {
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
                FullPolicy::Block => return Ok(None),
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
        Ok(Some(Room {
            rotate,
            evicted_segments,
            evicted_points,
        }))
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
}
