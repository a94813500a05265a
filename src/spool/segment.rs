//! One segment file on disk: its name (a 20-digit sequence number, then `.seg`), its magic,
//! the writer that appends records to it and the reader that hands them out, reading one
//! record without trusting the bytes, and the few file operations the store makes on segments
//! (list, delete, truncate, make a directory's names durable).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::record::{self, HEADER_BYTES, Record, RecordError};
use super::store::{StoreError, io_error};

/// The first bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"BFSPOOL1";
pub(super) const MAGIC_LEN: u64 = MAGIC.len() as u64;
const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_DIGITS: usize = 20;
/// Reads of a segment go through a buffer of this size, so a record is usually one copy.
pub(super) const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The file the active segment is appended through.
#[derive(Debug)]
pub(super) struct SegmentWriter {
    pub(super) file: File,
    pub(super) path: PathBuf,
    /// The trusted length: what the index may claim.
    pub(super) len: u64,
    /// Written since the last `sync_data`.
    pub(super) dirty: bool,
    /// A failed write could not be cut off, so the file may hold bytes past `len` and nothing
    /// may be appended after them.
    pub(super) broken: bool,
}

impl SegmentWriter {
    /// One `write_all` per record, so a record is either wholly there or cut off here.
    pub(super) fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
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

    pub(super) fn sync(&mut self) -> Result<(), StoreError> {
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
pub(super) struct SegmentReader {
    pub(super) seq: u64,
    /// Offset the buffered reader is at.
    pub(super) pos: u64,
    pub(super) inner: BufReader<File>,
}

/// Reads the record at `offset` (where `r` is positioned) without reading at or past
/// `valid_len`. The inner result is the record and its size, or why the bytes there are not one
/// (`Incomplete` also when the file ends early).
pub(super) fn read_record(
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
pub(super) fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

pub(super) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"))
}

/// Sequence numbers of the segment files in `dir`, ascending. Anything else is ignored.
pub(super) fn list_segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
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

pub(super) fn remove_file(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("delete", path)(e)),
    }
}

pub(super) fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error("open segment", path))?;
    file.set_len(len).map_err(io_error("truncate", path))?;
    file.sync_all().map_err(io_error("sync segment", path))
}

/// Makes created, renamed and deleted names in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync directory", dir))
}
