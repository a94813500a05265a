//! The spool's record codec: one batch of datapoints as bytes on disk and back. Pure functions,
//! no I/O, so it can be fuzzed on its own (`fuzz/fuzz_targets/spool_record.rs`).
//!
//! A record is `len: u32 LE | crc32c: u32 LE | payload[len]`, the CRC-32C covering the payload.
//! The payload is `version: u8 | written_ms: u64 LE | arrived_ms: u64 LE | count: u32 LE |
//! count × point`, a point being `name_len` (unsigned LEB128) | name (UTF-8) |
//! `timestamp_ms: i64 LE` | `value: f64 LE` (bits). `arrived_ms` is when the oldest point of
//! the batch reached the forwarder, so the delivery lag survives the spool (and a restart).
//!
//! Version 1, written by earlier forwarders, has no `arrived_ms`: it is still read, with
//! `arrived_ms = written_ms` (the batch looks as young as its write). This code writes version
//! 2 only; a forwarder older than it refuses version 2 records as corrupt, so a spool is not
//! carried back across a downgrade.
//!
//! # Decisions
//! * The length comes first and is checked against the caller's `max_record_bytes` before
//!   anything else, so a damaged length is reported as such instead of as a torn tail that would
//!   make a reader wait for gigabytes that will never come.
//! * Decoding accepts exactly one spelling of each record (varints without redundant high
//!   bytes, no bytes after the last point), so whatever decodes re-encodes to the same bytes:
//!   the fuzz target checks that, and it means a payload has one meaning.
//! * Values are stored as their bits: NaN payloads and -0.0 survive unchanged even though the
//!   product never spools non-finite values.

use crate::model::Datapoint;

/// Bytes before the payload: the length and the checksum.
pub const HEADER_BYTES: usize = 8;
/// The payload format written by this code.
pub const VERSION: u8 = 2;
/// The earlier format, without `arrived_ms`: still read.
pub const V1: u8 = 1;

/// Version, `written_ms`, `count` (version 1; version 2 adds [`ARRIVED_BYTES`]).
const PAYLOAD_FIXED_BYTES: usize = 1 + 8 + 4;
/// `arrived_ms`, in version 2 only.
const ARRIVED_BYTES: usize = 8;
/// Timestamp and value.
const POINT_FIXED_BYTES: usize = 8 + 8;
/// The smallest point: a one-byte varint for an empty name, then the fixed part. Bounds how many
/// points a payload of a given size can hold, so a damaged `count` cannot make us reserve more.
const MIN_POINT_BYTES: usize = 1 + POINT_FIXED_BYTES;

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The format it was read in ([`VERSION`] or [`V1`]).
    pub version: u8,
    /// Unix milliseconds when the batch was spooled.
    pub written_ms: u64,
    /// Unix milliseconds when its oldest point arrived (`written_ms` for a version 1 record).
    pub arrived_ms: u64,
    pub points: Vec<Datapoint>,
}

/// When a record was written and when its oldest point arrived, Unix milliseconds. A bare
/// `u64` is a write time with nothing older known (what version 1 records say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub written_ms: u64,
    pub arrived_ms: u64,
}

impl From<u64> for Stamp {
    fn from(written_ms: u64) -> Self {
        Stamp {
            written_ms,
            arrived_ms: written_ms,
        }
    }
}

/// Why the bytes at the start of a buffer are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// `buf` ends before the record does (a torn write, or just the end of the data).
    /// `needed` is the size of the whole record (header included) as far as it is known: the
    /// header size while the header itself is incomplete.
    #[error("record incomplete: {needed} bytes needed")]
    Incomplete { needed: usize },
    /// The length field is above `max_record_bytes`: corruption.
    #[error("record length {len} over the limit")]
    TooLarge { len: usize },
    #[error("record checksum mismatch")]
    Checksum,
    /// The checksum matched but the payload does not parse (unknown version, bad UTF-8,
    /// count/lengths inconsistent, trailing bytes): corruption or a future version.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// Appends one encoded record (header + payload) to `out`.
///
/// A payload over `u32::MAX` bytes cannot be represented; callers bound records well below that
/// (the store refuses anything over `max_record_bytes`). Such a record is written with a length
/// that does not match its payload, so it could only ever decode as an error.
pub fn encode(points: &[Datapoint], stamp: impl Into<Stamp>, out: &mut Vec<u8>) {
    encode_as(points, stamp.into(), VERSION, out);
}

fn encode_as(points: &[Datapoint], stamp: Stamp, version: u8, out: &mut Vec<u8>) {
    let total = encoded_len_as(points, version);
    out.reserve(total);
    let start = out.len();
    let payload_len = total - HEADER_BYTES;
    out.extend_from_slice(&u32::try_from(payload_len).unwrap_or(u32::MAX).to_le_bytes());
    // The checksum is patched in once the payload is there.
    out.extend_from_slice(&[0; 4]);
    out.push(version);
    out.extend_from_slice(&stamp.written_ms.to_le_bytes());
    if version == VERSION {
        out.extend_from_slice(&stamp.arrived_ms.to_le_bytes());
    }
    out.extend_from_slice(
        &u32::try_from(points.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for p in points {
        put_varint(out, p.name.len() as u64);
        out.extend_from_slice(p.name.as_bytes());
        out.extend_from_slice(&p.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&p.value.to_bits().to_le_bytes());
    }
    let crc = crc32c::crc32c(&out[start + HEADER_BYTES..]);
    out[start + 4..start + HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
}

/// Exact encoded size of a record holding `points` (header included), without encoding.
pub fn encoded_len(points: &[Datapoint]) -> usize {
    encoded_len_as(points, VERSION)
}

/// Exact encoded size of `rec` in the version it was read in.
pub fn record_len(rec: &Record) -> usize {
    encoded_len_as(&rec.points, rec.version)
}

/// Re-encodes `rec` in the version it was read in (for the codec's one-spelling checks).
pub fn encode_record(rec: &Record, out: &mut Vec<u8>) {
    let stamp = Stamp {
        written_ms: rec.written_ms,
        arrived_ms: rec.arrived_ms,
    };
    encode_as(&rec.points, stamp, rec.version, out);
}

fn encoded_len_as(points: &[Datapoint], version: u8) -> usize {
    let arrived = if version == VERSION { ARRIVED_BYTES } else { 0 };
    HEADER_BYTES
        + PAYLOAD_FIXED_BYTES
        + arrived
        + points
            .iter()
            .map(|p| varint_len(p.name.len() as u64) + p.name.len() + POINT_FIXED_BYTES)
            .sum::<usize>()
}

/// Decodes the record at the start of `buf`; returns it and the bytes it took.
///
/// `max_record_bytes` bounds the payload length field. Never panics, and allocates at most what
/// the payload (already in `buf`) could hold.
pub fn decode(buf: &[u8], max_record_bytes: usize) -> Result<(Record, usize), RecordError> {
    let Some((header, rest)) = buf.split_first_chunk::<HEADER_BYTES>() else {
        return Err(RecordError::Incomplete {
            needed: HEADER_BYTES,
        });
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if len > max_record_bytes {
        return Err(RecordError::TooLarge { len });
    }
    let Some(payload) = rest.get(..len) else {
        return Err(RecordError::Incomplete {
            needed: HEADER_BYTES.saturating_add(len),
        });
    };
    if crc32c::crc32c(payload) != u32::from_le_bytes([c0, c1, c2, c3]) {
        return Err(RecordError::Checksum);
    }
    let record = decode_payload(payload)?;
    Ok((record, HEADER_BYTES + len))
}

fn decode_payload(payload: &[u8]) -> Result<Record, RecordError> {
    let mut r = Cursor(payload);
    let version = r
        .array::<1>()
        .ok_or(RecordError::Malformed("empty payload"))?[0];
    if version != VERSION && version != V1 {
        return Err(RecordError::Malformed("unknown version"));
    }
    let written_ms = u64::from_le_bytes(r.array().ok_or(TRUNCATED)?);
    let arrived_ms = if version == VERSION {
        u64::from_le_bytes(r.array().ok_or(TRUNCATED)?)
    } else {
        written_ms
    };
    let count = u32::from_le_bytes(r.array().ok_or(TRUNCATED)?) as usize;
    if count > r.0.len() / MIN_POINT_BYTES {
        return Err(RecordError::Malformed("count exceeds the payload"));
    }
    let mut points = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = r.varint()?;
        let name = usize::try_from(name_len)
            .ok()
            .and_then(|n| r.take(n))
            .ok_or(RecordError::Malformed("name runs past the payload"))?;
        let name =
            std::str::from_utf8(name).map_err(|_| RecordError::Malformed("name not UTF-8"))?;
        let timestamp_ms = i64::from_le_bytes(r.array().ok_or(TRUNCATED)?);
        let value = f64::from_bits(u64::from_le_bytes(r.array().ok_or(TRUNCATED)?));
        points.push(Datapoint {
            name: name.into(),
            timestamp_ms,
            value,
        });
    }
    if !r.0.is_empty() {
        return Err(RecordError::Malformed("bytes after the last point"));
    }
    Ok(Record {
        version,
        written_ms,
        arrived_ms,
        points,
    })
}

const TRUNCATED: RecordError = RecordError::Malformed("payload ends inside a field");

/// The unread rest of a payload.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.0.split_first_chunk::<N>()?;
        self.0 = tail;
        Some(*head)
    }

    /// Unsigned LEB128, canonical only: a last byte of zero after the first would be a second
    /// spelling of a shorter varint.
    fn varint(&mut self) -> Result<u64, RecordError> {
        let mut value = 0u64;
        for i in 0..10 {
            let [b] = self.array::<1>().ok_or(TRUNCATED)?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(RecordError::Malformed("varint overflows 64 bits"));
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(RecordError::Malformed("overlong varint"));
                }
                return Ok(value);
            }
        }
        Err(RecordError::Malformed("varint overflows 64 bits"))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    // One byte per started group of 7 significant bits, at least one.
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

#[cfg(test)]
mod tests;
