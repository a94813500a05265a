//! Carbon plaintext protocol: `name value timestamp`, one datapoint per line.
//!
//! This module owns line splitting (UDP datagrams) and the parsing of one line. Its numbers are
//! read by `protocol::number` (Python `float()`, shared with the pickle decoder). NaN,
//! infinities and a timestamp of `-1` are returned as-is: the caller decides.

use std::borrow::Cow;

use super::number::parse_py_float;
use super::{PointError, RawPoint};

fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// True when the line holds nothing but spaces, tabs and a trailing `\r`.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|&b| is_sep(b) || b == b'\r')
}

/// Parses one line (without its `\n`; a trailing `\r` is tolerated). Fields are separated by
/// runs of spaces or tabs; a blank line is `FieldCount`.
pub fn parse_line(line: &[u8], max_name_bytes: usize) -> Result<RawPoint<'_>, PointError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut fields = line.split(|&b| is_sep(b)).filter(|f| !f.is_empty());
    let (Some(name), Some(value), Some(timestamp), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(PointError::FieldCount);
    };
    if name.len() > max_name_bytes {
        return Err(PointError::NameTooLong);
    }
    let name = std::str::from_utf8(name).map_err(|_| PointError::NameNotUtf8)?;
    let value = parse_py_float(value).ok_or(PointError::BadValue)?;
    let timestamp = parse_py_float(timestamp).ok_or(PointError::BadTimestamp)?;
    Ok(RawPoint {
        name: Cow::Borrowed(name),
        timestamp,
        value,
    })
}

/// Splits a UDP datagram into lines on `\n`; the empty piece after a final `\n` is skipped
/// (other empty lines are kept, so the caller can count or skip them).
pub fn split_lines(datagram: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = datagram.strip_suffix(b"\n").unwrap_or(datagram);
    let empty = datagram.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !empty)
}

#[cfg(test)]
mod tests;
