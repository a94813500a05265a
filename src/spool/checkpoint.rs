//! The acknowledgement checkpoint: the file `ack` holding `segment: u64 LE | offset: u64 LE |
//! crc32c: u32 LE` — every record before `(segment, offset)` has been delivered. Replaced
//! atomically (`ack.tmp`, fsync, rename, fsync of the directory), so a crash leaves the old or
//! the new checkpoint, never a mix; a damaged one reads as missing (everything is replayed).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::segment::sync_dir;
use super::store::{RecordId, StoreError, io_error};

pub(super) const ACK_FILE: &str = "ack";
/// Also the name [`super::lock::probe_writable`] creates and removes.
pub(super) const ACK_TMP_FILE: &str = "ack.tmp";
const CHECKPOINT_BYTES: usize = 8 + 8 + 4;

/// The checkpoint, or `None` when the file is missing or damaged.
pub(super) fn read_checkpoint(path: &Path) -> Result<Option<RecordId>, StoreError> {
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

pub(super) fn encode_checkpoint(c: RecordId) -> [u8; CHECKPOINT_BYTES] {
    let mut out = [0; CHECKPOINT_BYTES];
    out[..8].copy_from_slice(&c.segment.to_le_bytes());
    out[8..16].copy_from_slice(&c.offset.to_le_bytes());
    let crc = crc32c::crc32c(&out[..16]);
    out[16..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Replaces `ack` so that a crash leaves either the old or the new checkpoint, never a mix.
pub(super) fn write_checkpoint(dir: &Path, c: RecordId) -> Result<(), StoreError> {
    let tmp = dir.join(ACK_TMP_FILE);
    let mut file = File::create(&tmp).map_err(io_error("create checkpoint", &tmp))?;
    file.write_all(&encode_checkpoint(c))
        .map_err(io_error("write checkpoint", &tmp))?;
    file.sync_all().map_err(io_error("sync checkpoint", &tmp))?;
    let path = dir.join(ACK_FILE);
    fs::rename(&tmp, &path).map_err(io_error("rename checkpoint to", &path))?;
    sync_dir(dir)
}
