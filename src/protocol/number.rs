//! Number text as carbon senders write it, shared by both protocols: a line's value and
//! timestamp, and a pickle `FLOAT` argument or a string used as a number.
//!
//! Numbers are parsed with Rust's `f64::from_str` after trimming ASCII whitespace. Like Python's
//! `float()` it accepts an optional sign, exponents, `1.`/`.5`, and `nan`/`inf`/`infinity` in any
//! case. Known differences, all on inputs no carbon sender writes: Python also accepts `_`
//! digit separators (`1_000`) and non-ASCII digits / Unicode whitespace; we reject those.
//! NaN and infinities are returned as-is: the caller decides.

/// Python `float()` of a byte string, as far as carbon senders need (see the module doc).
pub(super) fn parse_py_float(s: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(s.trim_ascii()).ok()?;
    if s.is_empty() {
        return None;
    }
    s.parse::<f64>().ok()
}
