//! Carbon plaintext protocol (placeholder until the decoder lands).
use super::{PointError, RawPoint};
use std::borrow::Cow;

pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

pub fn split_lines(datagram: &[u8]) -> impl Iterator<Item = &[u8]> {
    datagram.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}

pub fn parse_line(line: &[u8], _max_name_bytes: usize) -> Result<RawPoint<'_>, PointError> {
    let s = std::str::from_utf8(line).map_err(|_| PointError::NameNotUtf8)?;
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() != 3 {
        return Err(PointError::FieldCount);
    }
    Ok(RawPoint {
        name: Cow::Borrowed(f[0]),
        value: f[1].parse().map_err(|_| PointError::BadValue)?,
        timestamp: f[2].parse().map_err(|_| PointError::BadTimestamp)?,
    })
}
