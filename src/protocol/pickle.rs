//! Carbon pickle protocol payload decoder: one frame's pickle bytes (length prefix already
//! stripped) in, one `Result<RawPoint, PointError>` per element of the top-level list out.
//!
//! This module owns the public entry ([`decode_frame`], [`FrameError`], [`PickleLimits`]) and
//! the step from the machine's final value to datapoints. The machine (`vm.rs`) is a
//! deliberately tiny subset of Python's unpickler that can only ever build plain values
//! (numbers, strings, bytes, tuples, lists; dicts and sets are accepted but kept opaque), so no
//! input can construct an object or call code, and every resource it uses is bounded by
//! [`PickleLimits`].
//!
//! # Why not `serde-pickle`
//! `serde-pickle` 1.2 (the crate originally chosen) was measured against the same inputs
//! (`tests/it/protocol_hostile.rs` holds the probes, `benches/protocol.rs` the speed comparison):
//! * Speed (criterion quick mode, `benches/protocol.rs`, same machine): on the carbon-relay
//!   fixture (protocol 2, 1200 points in 500-point frames) it decodes 1.8 M points/s into
//!   `Vec<(String, (f64, f64))>` and 1.7 M points/s into `Value`, versus 16 M points/s for this
//!   decoder (18 M points/s on a CPython protocol-2 500-point frame). That is below the 3 M
//!   points per CPU-second the whole pipeline needs, before any other work. It builds a generic
//!   value tree and allocates every string, and one bad element fails a typed decode.
//! * Nesting: no depth bound. A 1 MiB frame of `]` followed by `a`s (≈ 500 k nested lists)
//!   aborts the whole process with a stack overflow while converting/dropping the value tree
//!   (reproduced in a child process by `serde_pickle_overflows_stack_on_deep_nesting`).
//! * Memo: every `GET` of a memoised value is a deep clone. A 60 KiB string memoised once and
//!   fetched 100 000 times (a ≈ 260 KiB frame) would materialise ≈ 6 GB; the probe
//!   (`serde_pickle_memo_fetch_deep_copies`) measures 61 440 000 bytes of strings built from a
//!   63 456-byte frame with 1 000 fetches (≈ 970x amplification).
//! * Memo correctness: it refuses ("recursive structure found") a CPython frame in which a
//!   memoised tuple is listed several times (`py3-generated-proto*` frame 0), a pattern the brief
//!   says senders use.
//! * Globals: it cannot be configured so that no global resolves: `builtins.set`, `frozenset`,
//!   `bytearray`, `list`, `int`, `_codecs.encode` and `copy_reg._reconstructor` are always
//!   emulated through `REDUCE` (no code runs, but the frame is not refused either).
//!
//! # Decisions
//! * Refused with [`FrameError::ForbiddenOpcode`]: `GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`,
//!   `INST`, `OBJ`, `NEWOBJ`, `NEWOBJ_EX`, `PERSID`, `BINPERSID`, `EXT1/2/4`, `NEXT_BUFFER`,
//!   `READONLY_BUFFER`.
//! * Dicts and sets (`EMPTY_DICT`, `DICT`, `SETITEM(S)`, `EMPTY_SET`, `ADDITEMS`, `FROZENSET`)
//!   are built as opaque placeholders whose contents are discarded (but counted against
//!   `max_items`): a dict element is a per-point `Shape` error, a top-level dict is `NotAList`.
//! * Integers wider than i64 are converted to the nearest f64 (approximately for `LONG1/4`); one
//!   beyond the f64 range (Python's `float()` would raise) is a per-point `BadValue` /
//!   `BadTimestamp`.
//! * Memo ids must be below `max_memo` (Python assigns them densely from 0), so the memo is a
//!   plain vector.
//! * Nesting depth is measured when a container is built or appended to, and the number of open
//!   `MARK`s is bounded by the same limit. A list mutated after being nested (or made cyclic via
//!   the memo) can evade the depth count, which is harmless: nothing here recurses, values live
//!   in a flat arena, and `max_items` bounds the work.
//! * Bytes after `STOP` are ignored, as Python's `pickle.loads` does.
//! * Names are passed through byte-for-byte (control characters, NUL, `;tags` included); the
//!   caller decides what to do with them.
//!
//! # Layout
//! * `vm.rs`: the machine (arena, stack, marks, byte reader) and the opcode loop, one method
//!   per opcode group; `containers.rs` builds tuples, lists and the opaque dicts and sets;
//!   `memo.rs` the memo.
//! * `opcodes.rs`: the opcode table and which opcodes refuse a frame.
//! * `text.rs`: Python 2 `string-escape` and `raw-unicode-escape` decoding.
//! * `number.rs`: integer text and `LONG1`/`LONG4`; float text is `protocol::number`, shared
//!   with the line protocol.

mod containers;
mod memo;
mod number;
mod opcodes;
mod text;
mod vm;

use std::borrow::Cow;

use super::number::parse_py_float;
use super::{PointError, RawPoint};
use vm::{R, Val, Vm};

/// Resource bounds for one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleLimits {
    /// Deepest container nesting, and most simultaneously open `MARK`s.
    pub max_depth: usize,
    /// Total values built, container slots filled, memo/`DUP` pushes and (per 64 bytes)
    /// unescaped name copies handed out.
    pub max_items: usize,
    /// Memo entries; also the exclusive upper bound of a memo id.
    pub max_memo: usize,
    /// Longest accepted metric name, in UTF-8 bytes.
    pub max_name_bytes: usize,
}

impl Default for PickleLimits {
    fn default() -> Self {
        PickleLimits {
            max_depth: 16,
            max_items: 1_000_000,
            max_memo: 100_000,
            max_name_bytes: 4096,
        }
    }
}

/// Why a whole frame was refused. No point of a refused frame is emitted.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FrameError {
    #[error("forbidden pickle opcode {name} (0x{opcode:02x})")]
    ForbiddenOpcode { opcode: u8, name: &'static str },
    #[error("unknown pickle opcode 0x{0:02x}")]
    UnknownOpcode(u8),
    #[error("unsupported pickle protocol {0}")]
    UnsupportedProtocol(u8),
    #[error("pickle frame is truncated")]
    Truncated,
    #[error("malformed pickle: {0}")]
    Malformed(&'static str),
    #[error("bad string literal in pickle: {0}")]
    BadString(&'static str),
    #[error("pickle memo id {0} was never stored")]
    MissingMemo(u64),
    #[error("pickle is not a list")]
    NotAList,
    #[error("pickle nests deeper than the limit")]
    TooDeep,
    #[error("pickle builds more values than the limit")]
    TooManyItems,
    #[error("pickle memo exceeds the limit")]
    MemoTooLarge,
}

impl FrameError {
    /// Stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::ForbiddenOpcode { .. } => "forbidden_opcode",
            FrameError::UnknownOpcode(_) => "bad_opcode",
            FrameError::UnsupportedProtocol(_) => "unsupported_protocol",
            FrameError::Truncated => "truncated",
            FrameError::Malformed(_) => "malformed",
            FrameError::BadString(_) => "bad_string",
            FrameError::MissingMemo(_) => "missing_memo",
            FrameError::NotAList => "not_a_list",
            FrameError::TooDeep => "too_deep",
            FrameError::TooManyItems => "too_many_items",
            FrameError::MemoTooLarge => "memo_too_large",
        }
    }
}

/// Decodes one frame. On `Ok`, appends one entry per element of the top-level list to `out`;
/// on `Err`, `out` is left exactly as it was.
pub fn decode_frame<'a>(
    payload: &'a [u8],
    limits: &PickleLimits,
    out: &mut Vec<Result<RawPoint<'a>, PointError>>,
) -> Result<(), FrameError> {
    let mut vm = Vm::new(payload, limits);
    let top = vm.run()?;
    let start = out.len();
    let result = vm.emit(top, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

// What counts as a datapoint is decided here, next to `PointError`, not in the machine: the
// machine only builds values.

impl<'a> Vm<'a, '_> {
    fn seq(&self, idx: u32) -> Option<&[u32]> {
        match self.vals.get(idx as usize)? {
            Val::Tuple { start, len, .. } => {
                let start = *start as usize;
                self.tuple_items.get(start..start + *len as usize)
            }
            Val::List(l) => self.lists.get(*l as usize).map(|l| l.items.as_slice()),
            _ => None,
        }
    }

    fn pair(&self, idx: u32) -> Option<(u32, u32)> {
        match self.seq(idx)? {
            &[a, b] => Some((a, b)),
            _ => None,
        }
    }

    fn number(&self, idx: u32) -> Option<f64> {
        match *self.vals.get(idx as usize)? {
            Val::Int(i) => Some(i as f64),
            Val::Float(f) => Some(f),
            Val::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Val::Raw(s) => parse_py_float(s),
            Val::Owned(o) => parse_py_float(self.owned.get(o as usize)?),
            _ => None,
        }
    }

    fn emit(
        &mut self,
        top: u32,
        out: &mut Vec<Result<RawPoint<'a>, PointError>>,
    ) -> Result<(), FrameError> {
        let Some(Val::List(list)) = self.vals.get(top as usize).copied() else {
            return Err(FrameError::NotAList);
        };
        let items = match self.lists.get_mut(list as usize) {
            Some(l) => std::mem::take(&mut l.items),
            None => return Err(FrameError::NotAList),
        };
        out.reserve(items.len());
        for &elem in &items {
            let point = self.point(elem)?;
            out.push(point);
        }
        Ok(())
    }

    /// Outer `Err` refuses the frame (budget), inner `Err` is this element's problem.
    fn point(&mut self, elem: u32) -> R<Result<RawPoint<'a>, PointError>> {
        let Some((name_idx, data_idx)) = self.pair(elem) else {
            return Ok(Err(PointError::Shape));
        };
        let Some((ts_idx, value_idx)) = self.pair(data_idx) else {
            return Ok(Err(PointError::Shape));
        };
        let max = self.limits.max_name_bytes;
        let name = match self.vals.get(name_idx as usize).copied() {
            Some(Val::Raw(b)) => match check_name(b, max) {
                Err(e) => return Ok(Err(e)),
                Ok(s) => Cow::Borrowed(s),
            },
            Some(Val::Owned(o)) => {
                let bytes = self.owned.get(o as usize).map(Vec::as_slice).unwrap_or(&[]);
                let name = match check_name(bytes, max) {
                    Err(e) => return Ok(Err(e)),
                    Ok(s) => s.to_owned(),
                };
                // A memoised escaped name can be referenced by every element: charge the copies.
                self.charge(1 + name.len() / 64)?;
                Cow::Owned(name)
            }
            _ => return Ok(Err(PointError::Shape)),
        };
        let Some(timestamp) = self.number(ts_idx) else {
            return Ok(Err(PointError::BadTimestamp));
        };
        let Some(value) = self.number(value_idx) else {
            return Ok(Err(PointError::BadValue));
        };
        Ok(Ok(RawPoint {
            name,
            timestamp,
            value,
        }))
    }
}

fn check_name(b: &[u8], max: usize) -> Result<&str, PointError> {
    if b.is_empty() {
        return Err(PointError::EmptyName);
    }
    if b.len() > max {
        return Err(PointError::NameTooLong);
    }
    std::str::from_utf8(b).map_err(|_| PointError::NameNotUtf8)
}

#[cfg(test)]
mod tests;
