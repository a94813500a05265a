//! The store's vocabulary: its options, where a record is, and what each operation returns or
//! fails with. `store` re-exports all of it.

use std::io;
use std::path::{Path, PathBuf};

use crate::model::Datapoint;

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
    /// Oldest `arrived_ms` among the records to replay (the oldest point's arrival).
    pub oldest_arrived_ms: Option<u64>,
    /// The checkpoint was missing, did not pass its checksum, or did not land on a record
    /// boundary (that segment is then replayed from its start).
    pub checkpoint_missing_or_corrupt: bool,
    /// The directory cannot be written: replayed, but nothing deleted, cut or checkpointed.
    pub read_only: bool,
    /// Segment files that could not be read at all: left in place, not replayed.
    pub unreadable_segments: u64,
    /// Deletes and cuts that failed (the index leaves those bytes out regardless).
    pub cleanup_failures: u64,
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
    /// The next segment could not be opened or read (`error` says why): its unread records,
    /// `lost_points`, were given up; call `read` again for the following segment.
    Lost {
        lost_points: u64,
        error: StoreError,
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
    pub oldest_arrived_ms: Option<u64>,
    /// Names can be created in the directory (see the module notes on read-only directories).
    pub writable: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("spool directory {path} is in use by another process (it holds the directory's lock)")]
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
    #[error("spool directory {path} cannot be written: {source}")]
    ReadOnly {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub(in crate::spool) fn io_error(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}
