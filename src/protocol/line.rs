//! Carbon plaintext protocol: `name value timestamp`, one datapoint per line.
//!
//! This module owns line splitting (UDP datagrams) and the parsing of one line, plus the
//! Python-`float()`-like number parser the pickle decoder shares.
//!
//! Numbers are parsed with Rust's `f64::from_str` after trimming ASCII whitespace. Like Python's
//! `float()` it accepts an optional sign, exponents, `1.`/`.5`, and `nan`/`inf`/`infinity` in any
//! case. Known differences, all on inputs no carbon sender writes: Python also accepts `_`
//! digit separators (`1_000`) and non-ASCII digits / Unicode whitespace; we reject those.
//! NaN, infinities and a timestamp of `-1` are returned as-is: the caller decides.

use std::borrow::Cow;

use super::{PointError, RawPoint};

fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Python `float()` of a byte string, as far as carbon senders need (see the module doc).
pub(crate) fn parse_py_float(s: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(s.trim_ascii()).ok()?;
    if s.is_empty() {
        return None;
    }
    s.parse::<f64>().ok()
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
mod tests {
    use super::*;

    fn ok(line: &str) -> (String, f64, f64) {
        let p = parse_line(line.as_bytes(), 4096).unwrap();
        (p.name.into_owned(), p.value, p.timestamp)
    }

    #[test]
    fn basic_line() {
        assert_eq!(ok("a.b.c 1.5 1700000000"), ("a.b.c".into(), 1.5, 1.7e9));
    }

    #[test]
    fn name_is_borrowed() {
        let p = parse_line(b"a.b 1 2", 100).unwrap();
        assert!(matches!(p.name, Cow::Borrowed("a.b")));
    }

    #[test]
    fn whitespace_runs_tabs_and_cr() {
        assert_eq!(ok("  a.b \t 2\t\t3  \r"), ("a.b".into(), 2.0, 3.0));
        assert_eq!(ok("a 1 2\r"), ("a".into(), 1.0, 2.0));
    }

    #[test]
    fn tagged_name_passes_through() {
        assert_eq!(ok("a.b;env=prod;dc=x 1 2").0, "a.b;env=prod;dc=x");
    }

    #[test]
    fn python_float_forms() {
        assert_eq!(ok("a 1e3 -1").1, 1000.0);
        assert_eq!(ok("a 1e3 -1").2, -1.0);
        assert_eq!(ok("a .5 5.").1, 0.5);
        assert_eq!(ok("a +2 1").1, 2.0);
        assert!(ok("a nan 1").1.is_nan());
        assert!(ok("a NaN 1").1.is_nan());
        assert_eq!(ok("a inf 1").1, f64::INFINITY);
        assert_eq!(ok("a -Infinity 1").1, f64::NEG_INFINITY);
        assert_eq!(ok("a 1e400 1").1, f64::INFINITY);
    }

    #[test]
    fn bad_numbers() {
        assert_eq!(parse_line(b"a x 1", 100), Err(PointError::BadValue));
        assert_eq!(parse_line(b"a 1 x", 100), Err(PointError::BadTimestamp));
        assert_eq!(parse_line(b"a 1e 1", 100), Err(PointError::BadValue));
        assert_eq!(parse_line(b"a 0x10 1", 100), Err(PointError::BadValue));
        assert_eq!(parse_line(b"a 1_0 1", 100), Err(PointError::BadValue));
    }

    #[test]
    fn field_count() {
        for l in [
            &b""[..],
            b"   ",
            b"\r",
            b"a",
            b"a 1",
            b"a 1 2 3",
            b"a\x0b1 2",
        ] {
            assert_eq!(parse_line(l, 100), Err(PointError::FieldCount), "{l:?}");
        }
    }

    #[test]
    fn name_errors() {
        assert_eq!(
            parse_line(b"\xff\xfe 1 2", 100),
            Err(PointError::NameNotUtf8)
        );
        assert_eq!(parse_line(b"abcd 1 2", 3), Err(PointError::NameTooLong));
        assert!(parse_line(b"abc 1 2", 3).is_ok());
        let long = format!("{} 1 2", "x".repeat(10_000));
        assert_eq!(
            parse_line(long.as_bytes(), 4096),
            Err(PointError::NameTooLong)
        );
    }

    #[test]
    fn non_ascii_name() {
        assert_eq!(ok("métrique.温度 1 2").0, "métrique.温度");
    }

    #[test]
    fn blank() {
        assert!(is_blank(b""));
        assert!(is_blank(b" \t\r"));
        assert!(!is_blank(b" a "));
    }

    #[test]
    fn splitting() {
        let v: Vec<&[u8]> = split_lines(b"a 1 2\nb 3 4\n").collect();
        assert_eq!(v, vec![&b"a 1 2"[..], b"b 3 4"]);
        let v: Vec<&[u8]> = split_lines(b"a 1 2\n\nb 3 4").collect();
        assert_eq!(v, vec![&b"a 1 2"[..], b"", b"b 3 4"]);
        assert_eq!(split_lines(b"").count(), 0);
        assert_eq!(split_lines(b"\n").count(), 1);
        let v: Vec<&[u8]> = split_lines(b"a\r\n").collect();
        assert_eq!(v, vec![&b"a\r"[..]]);
    }
}
