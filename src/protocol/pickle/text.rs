//! Python 2 string literal decoding for the text opcodes: `STRING` (a `repr` of a byte
//! string, `string-escape`) and `UNICODE` (`raw-unicode-escape`).
//!
//! Only called when an argument actually holds an escape (or, for `UNICODE`, a non-ASCII
//! byte); everything else is borrowed from the payload as is, so the common case copies nothing.

use super::FrameError;

fn hex_value(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(v)
    })
}

/// Python 2 string-escape / `codecs.escape_decode`.
pub(super) fn escape_decode(s: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter().copied().enumerate().peekable();
    while let Some((i, b)) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some((_, e)) = it.next() else {
            return Err(FrameError::BadString("trailing backslash"));
        };
        match e {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'a' => out.push(0x07),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match it.peek() {
                        Some(&(_, d @ b'0'..=b'7')) => {
                            v = v * 8 + u32::from(d - b'0');
                            it.next();
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let digits = s
                    .get(i + 2..i + 4)
                    .ok_or(FrameError::BadString("bad \\x"))?;
                let v = hex_value(digits).ok_or(FrameError::BadString("bad \\x"))?;
                out.push((v & 0xff) as u8);
                it.next();
                it.next();
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// Encodes a code point as UTF-8; a lone surrogate (legal in a Python `str`) gets its
/// generalised 3-byte form, which is invalid UTF-8, so such a name is later `NameNotUtf8`.
fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    match char::from_u32(cp) {
        Some(c) => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        None => {
            out.push(0xe0 | ((cp >> 12) & 0x0f) as u8);
            out.push(0x80 | ((cp >> 6) & 0x3f) as u8);
            out.push(0x80 | (cp & 0x3f) as u8);
        }
    }
}

/// Python's `raw_unicode_escape` decoder: `\u`/`\U` escapes count only after an odd run of
/// backslashes; every other byte is a Latin-1 code point.
pub(super) fn raw_unicode_escape_decode(s: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 2);
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b != b'\\' {
            push_code_point(&mut out, u32::from(b));
            i += 1;
            continue;
        }
        let run = s
            .get(i..)
            .unwrap_or(&[])
            .iter()
            .take_while(|&&c| c == b'\\')
            .count();
        i += run;
        let width = match s.get(i) {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => {
                out.extend(std::iter::repeat_n(b'\\', run));
                continue;
            }
        };
        out.extend(std::iter::repeat_n(b'\\', run - 1));
        let digits = s
            .get(i + 1..i + 1 + width)
            .ok_or(FrameError::BadString("truncated \\uXXXX escape"))?;
        let cp = hex_value(digits)
            .filter(|&cp| cp <= 0x10ffff)
            .ok_or(FrameError::BadString("bad \\uXXXX escape"))?;
        push_code_point(&mut out, cp);
        i += 1 + width;
    }
    Ok(out)
}
