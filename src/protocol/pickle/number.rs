//! Integer decoding for the pickle number opcodes: the text of `INT` / `LONG` as Python's
//! `int()` reads it, and the little-endian two's complement of `LONG1` / `LONG4`.
//!
//! Both give an exact `Val::Int` within i64, the nearest f64 beyond it, and `Val::HugeInt`
//! beyond the f64 range (where Python's `float()` would raise). Float text (`FLOAT`, and
//! strings used as numbers) is `protocol::number`, shared with the line protocol.

use super::vm::Val;

/// Text integer as Python's `int(s, 0)` reads pickle output: decimal (any size; beyond i64 it
/// becomes the nearest f64) or `0x`/`0o`/`0b` prefixed (i64 range only).
#[inline]
pub(super) fn parse_py_int(s: &[u8]) -> Option<Val<'static>> {
    let s = std::str::from_utf8(s).ok()?.trim();
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, s.get(1..)?),
        b'+' => (false, s.get(1..)?),
        _ => (false, s),
    };
    let radix = match digits.get(..2) {
        Some("0x" | "0X") => 16,
        Some("0o" | "0O") => 8,
        Some("0b" | "0B") => 2,
        _ => 10,
    };
    if radix != 10 {
        let body = digits.get(2..)?;
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let v = i64::from_str_radix(body, radix).ok()?;
        return Some(Val::Int(if neg { v.checked_neg()? } else { v }));
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Ok(v) = s.parse::<i64>() {
        return Some(Val::Int(v));
    }
    let f: f64 = s.parse().ok()?;
    Some(if f.is_finite() {
        Val::Float(f)
    } else {
        Val::HugeInt
    })
}

/// `LONG1`/`LONG4`: little-endian two's complement of any width.
#[inline]
pub(super) fn decode_long(b: &[u8]) -> Val<'static> {
    if b.len() <= 8 {
        let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut a = [fill; 8];
        if let Some(dst) = a.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
        return Val::Int(i64::from_le_bytes(a));
    }
    let negative = b.last().is_some_and(|&x| x & 0x80 != 0);
    // Magnitude of a negative number is (!bits) + 1; the +1 is below f64 precision here.
    let mut acc = 0.0f64;
    for &byte in b.iter().rev() {
        let byte = if negative { !byte } else { byte };
        acc = acc * 256.0 + f64::from(byte);
        if !acc.is_finite() {
            return Val::HugeInt;
        }
    }
    Val::Float(if negative { -(acc + 1.0) } else { acc })
}
