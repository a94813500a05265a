//! Carbon pickle protocol payload decoder: one frame's pickle bytes (length prefix already
//! stripped) in, one `Result<RawPoint, PointError>` per element of the top-level list out.
//!
//! This module owns the pickle VM. It is a deliberately tiny subset of Python's unpickler that
//! can only ever build plain values (numbers, strings, bytes, tuples, lists; dicts and sets are
//! accepted but kept opaque), so no input can construct an object or call code, and every
//! resource it uses is bounded by [`PickleLimits`].
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

use std::borrow::Cow;

use super::line::parse_py_float;
use super::{PointError, RawPoint};

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

mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const STRING: u8 = b'S';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const UNICODE: u8 = b'V';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const INST: u8 = b'i';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const OBJ: u8 = b'o';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const EXT1: u8 = 0x82;
    pub const EXT2: u8 = 0x83;
    pub const EXT4: u8 = 0x84;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
    pub const NEXT_BUFFER: u8 = 0x97;
    pub const READONLY_BUFFER: u8 = 0x98;
}

/// Opcodes that construct objects, call code or reach outside the pickle.
fn forbidden_name(opcode: u8) -> Option<&'static str> {
    Some(match opcode {
        op::GLOBAL => "GLOBAL",
        op::STACK_GLOBAL => "STACK_GLOBAL",
        op::REDUCE => "REDUCE",
        op::BUILD => "BUILD",
        op::INST => "INST",
        op::OBJ => "OBJ",
        op::NEWOBJ => "NEWOBJ",
        op::NEWOBJ_EX => "NEWOBJ_EX",
        op::PERSID => "PERSID",
        op::BINPERSID => "BINPERSID",
        op::EXT1 => "EXT1",
        op::EXT2 => "EXT2",
        op::EXT4 => "EXT4",
        op::NEXT_BUFFER => "NEXT_BUFFER",
        op::READONLY_BUFFER => "READONLY_BUFFER",
        _ => return None,
    })
}

/// A value in the arena. Containers refer to other values by arena index, so a memo `GET` of a
/// big container costs one index, never a copy.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// An integer Python could not convert with `float()`.
    HugeInt,
    /// String or bytes taken verbatim from the payload (not yet UTF-8 checked).
    Raw(&'a [u8]),
    /// String produced by unescaping: index into `Vm::owned` (not yet UTF-8 checked).
    Owned(u32),
    Tuple {
        start: u32,
        len: u32,
        depth: u32,
    },
    List(u32),
    Dict,
    Set,
}

struct List {
    items: Vec<u32>,
    depth: u32,
}

struct Vm<'a, 'l> {
    data: &'a [u8],
    pos: usize,
    limits: &'l PickleLimits,
    vals: Vec<Val<'a>>,
    owned: Vec<Vec<u8>>,
    tuple_items: Vec<u32>,
    lists: Vec<List>,
    stack: Vec<u32>,
    marks: Vec<usize>,
    memo: Vec<u32>,
    memo_count: usize,
    items: usize,
}

const NO_MEMO: u32 = u32::MAX;
type R<T> = Result<T, FrameError>;

impl<'a, 'l> Vm<'a, 'l> {
    fn new(data: &'a [u8], limits: &'l PickleLimits) -> Self {
        // A carbon-relay point is ~40 bytes of pickle and 5 values; sizing from the payload
        // avoids regrowth on the hot path without trusting any length field.
        let guess = (data.len() / 8).min(limits.max_items).min(1 << 16);
        Vm {
            data,
            pos: 0,
            limits,
            vals: Vec::with_capacity(guess),
            owned: Vec::new(),
            tuple_items: Vec::with_capacity(guess),
            lists: Vec::new(),
            stack: Vec::with_capacity(guess),
            marks: Vec::new(),
            memo: Vec::new(),
            memo_count: 0,
            items: 0,
        }
    }

    // ---- input ----

    fn byte(&mut self) -> R<u8> {
        let b = *self.data.get(self.pos).ok_or(FrameError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(FrameError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(FrameError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> R<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A length field; one that does not fit in `usize` cannot be satisfied by the payload.
    fn len_u64(&mut self) -> R<usize> {
        let n = u64::from_le_bytes(self.fixed()?);
        usize::try_from(n).map_err(|_| FrameError::Truncated)
    }

    fn len_u32(&mut self) -> R<usize> {
        let n = u32::from_le_bytes(self.fixed()?);
        usize::try_from(n).map_err(|_| FrameError::Truncated)
    }

    fn len_i32(&mut self) -> R<usize> {
        let n = i32::from_le_bytes(self.fixed()?);
        usize::try_from(n).map_err(|_| FrameError::Malformed("negative length"))
    }

    /// A text-opcode argument, without its `\n`.
    fn line(&mut self) -> R<&'a [u8]> {
        let rest = self.data.get(self.pos..).ok_or(FrameError::Truncated)?;
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(FrameError::Truncated)?;
        let s = rest.get(..n).ok_or(FrameError::Truncated)?;
        self.pos += n + 1;
        Ok(s)
    }

    // ---- bookkeeping ----

    fn charge(&mut self, n: usize) -> R<()> {
        self.items = self.items.saturating_add(n);
        if self.items > self.limits.max_items {
            return Err(FrameError::TooManyItems);
        }
        Ok(())
    }

    fn alloc(&mut self, v: Val<'a>) -> R<u32> {
        self.charge(1)?;
        let idx = u32::try_from(self.vals.len()).map_err(|_| FrameError::TooManyItems)?;
        self.vals.push(v);
        Ok(idx)
    }

    fn push_new(&mut self, v: Val<'a>) -> R<()> {
        let idx = self.alloc(v)?;
        self.stack.push(idx);
        Ok(())
    }

    /// Items below the innermost mark belong to an outer frame of Python's metastack and are
    /// invisible to stack operations.
    fn base(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> R<u32> {
        if self.stack.len() <= self.base() {
            return Err(FrameError::Malformed("stack underflow"));
        }
        self.stack
            .pop()
            .ok_or(FrameError::Malformed("stack underflow"))
    }

    fn top(&self) -> R<u32> {
        if self.stack.len() <= self.base() {
            return Err(FrameError::Malformed("stack underflow"));
        }
        self.stack
            .last()
            .copied()
            .ok_or(FrameError::Malformed("stack underflow"))
    }

    fn pop_mark(&mut self) -> R<usize> {
        self.marks.pop().ok_or(FrameError::Malformed("no MARK"))
    }

    fn depth(&self, idx: u32) -> u32 {
        match self.vals.get(idx as usize) {
            Some(Val::Tuple { depth, .. }) => *depth,
            Some(Val::List(l)) => self.lists.get(*l as usize).map_or(0, |l| l.depth),
            Some(Val::Dict | Val::Set) => 1,
            _ => 0,
        }
    }

    fn check_depth(&self, depth: u32) -> R<()> {
        if depth as usize > self.limits.max_depth {
            return Err(FrameError::TooDeep);
        }
        Ok(())
    }

    fn max_depth_from(&self, from: usize) -> u32 {
        self.stack
            .get(from..)
            .unwrap_or(&[])
            .iter()
            .map(|&i| self.depth(i))
            .max()
            .unwrap_or(0)
    }

    // ---- containers ----

    /// Builds a tuple from the stack items at `from..` and pushes it in their place.
    fn make_tuple(&mut self, from: usize) -> R<()> {
        let n = self.stack.len().saturating_sub(from);
        self.charge(n)?;
        let depth = self.max_depth_from(from) + 1;
        self.check_depth(depth)?;
        let start = u32::try_from(self.tuple_items.len()).map_err(|_| FrameError::TooManyItems)?;
        let len = u32::try_from(n).map_err(|_| FrameError::TooManyItems)?;
        self.tuple_items.extend(self.stack.drain(from..));
        self.push_new(Val::Tuple { start, len, depth })
    }

    fn tuple_n(&mut self, n: usize) -> R<()> {
        let from = self
            .stack
            .len()
            .checked_sub(n)
            .filter(|&f| f >= self.base())
            .ok_or(FrameError::Malformed("stack underflow"))?;
        self.make_tuple(from)
    }

    fn make_list(&mut self, from: usize) -> R<()> {
        let n = self.stack.len().saturating_sub(from);
        self.charge(n)?;
        let depth = self.max_depth_from(from) + 1;
        self.check_depth(depth)?;
        let id = u32::try_from(self.lists.len()).map_err(|_| FrameError::TooManyItems)?;
        let items: Vec<u32> = self.stack.drain(from..).collect();
        self.lists.push(List { items, depth });
        self.push_new(Val::List(id))
    }

    /// Appends the stack items at `from..` to the list just below them.
    fn extend_list(&mut self, from: usize) -> R<()> {
        let n = self.stack.len().saturating_sub(from);
        if from <= self.base() {
            return Err(FrameError::Malformed("APPEND without a list"));
        }
        let target = *self
            .stack
            .get(from - 1)
            .ok_or(FrameError::Malformed("APPEND without a list"))?;
        let Some(Val::List(id)) = self.vals.get(target as usize).copied() else {
            return Err(FrameError::Malformed("APPEND to a non-list"));
        };
        self.charge(n)?;
        let child_depth = self.max_depth_from(from) + 1;
        let list = self
            .lists
            .get_mut(id as usize)
            .ok_or(FrameError::Malformed("bad list"))?;
        let depth = list.depth.max(child_depth);
        if depth as usize > self.limits.max_depth {
            return Err(FrameError::TooDeep);
        }
        list.depth = depth;
        list.items.extend(self.stack.drain(from..));
        Ok(())
    }

    /// Consumes the stack items at `from..` into the dict/set just below them (contents are
    /// discarded: such values are never a valid datapoint).
    fn fill_opaque(&mut self, from: usize, dict: bool) -> R<()> {
        let n = self.stack.len().saturating_sub(from);
        if from <= self.base() {
            return Err(FrameError::Malformed("SETITEM/ADDITEMS without a target"));
        }
        let target = *self
            .stack
            .get(from - 1)
            .ok_or(FrameError::Malformed("SETITEM/ADDITEMS without a target"))?;
        match (self.vals.get(target as usize), dict) {
            (Some(Val::Dict), true) if n.is_multiple_of(2) => {}
            (Some(Val::Set), false) => {}
            _ => return Err(FrameError::Malformed("SETITEM/ADDITEMS on a wrong target")),
        }
        self.charge(n)?;
        self.stack.truncate(from);
        Ok(())
    }

    // ---- memo ----

    fn memo_put(&mut self, id: u64) -> R<()> {
        let top = self.top()?;
        let id = usize::try_from(id)
            .ok()
            .filter(|&i| i < self.limits.max_memo)
            .ok_or(FrameError::MemoTooLarge)?;
        if id >= self.memo.len() {
            self.memo.resize(id + 1, NO_MEMO);
        }
        if let Some(slot) = self.memo.get_mut(id) {
            if *slot == NO_MEMO {
                self.memo_count += 1;
                if self.memo_count > self.limits.max_memo {
                    return Err(FrameError::MemoTooLarge);
                }
            }
            *slot = top;
        }
        Ok(())
    }

    fn memo_get(&mut self, id: u64) -> R<()> {
        let idx = usize::try_from(id)
            .ok()
            .and_then(|i| self.memo.get(i).copied())
            .filter(|&v| v != NO_MEMO)
            .ok_or(FrameError::MissingMemo(id))?;
        self.charge(1)?;
        self.stack.push(idx);
        Ok(())
    }

    fn text_memo_id(s: &[u8]) -> R<u64> {
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or(FrameError::Malformed("bad memo id"))
    }

    // ---- the machine ----

    fn run(&mut self) -> R<u32> {
        loop {
            let opcode = self.byte()?;
            match opcode {
                op::PROTO => {
                    let v = self.byte()?;
                    if v > 5 {
                        return Err(FrameError::UnsupportedProtocol(v));
                    }
                }
                // Frame boundaries are only a read-ahead hint; the payload is already in memory.
                op::FRAME => {
                    self.take(8)?;
                }
                op::STOP => return self.pop(),
                op::MARK => {
                    if self.marks.len() >= self.limits.max_depth {
                        return Err(FrameError::TooDeep);
                    }
                    self.marks.push(self.stack.len());
                }
                op::POP => {
                    // Python 3: POP on an empty segment discards the mark instead.
                    if self.stack.len() > self.base() {
                        self.stack.pop();
                    } else {
                        self.pop_mark()?;
                    }
                }
                op::POP_MARK => {
                    let from = self.pop_mark()?;
                    self.stack.truncate(from);
                }
                op::DUP => {
                    let top = self.top()?;
                    self.charge(1)?;
                    self.stack.push(top);
                }
                op::EMPTY_LIST => self.make_list(self.stack.len())?,
                op::LIST => {
                    let from = self.pop_mark()?;
                    self.make_list(from)?;
                }
                op::APPEND => {
                    let from = self.stack.len().saturating_sub(1);
                    if from < self.base() || self.stack.is_empty() {
                        return Err(FrameError::Malformed("stack underflow"));
                    }
                    self.extend_list(from)?;
                }
                op::APPENDS => {
                    let from = self.pop_mark()?;
                    self.extend_list(from)?;
                }
                op::EMPTY_TUPLE => self.make_tuple(self.stack.len())?,
                op::TUPLE => {
                    let from = self.pop_mark()?;
                    self.make_tuple(from)?;
                }
                op::TUPLE1 => self.tuple_n(1)?,
                op::TUPLE2 => self.tuple_n(2)?,
                op::TUPLE3 => self.tuple_n(3)?,
                op::EMPTY_DICT => self.push_new(Val::Dict)?,
                op::DICT => {
                    let from = self.pop_mark()?;
                    let n = self.stack.len().saturating_sub(from);
                    if n % 2 != 0 {
                        return Err(FrameError::Malformed("DICT with odd item count"));
                    }
                    self.charge(n)?;
                    self.stack.truncate(from);
                    self.push_new(Val::Dict)?;
                }
                op::SETITEM => {
                    let from = self.stack.len().saturating_sub(2);
                    if self.stack.len() < 2 || from < self.base() {
                        return Err(FrameError::Malformed("stack underflow"));
                    }
                    self.fill_opaque(from, true)?;
                }
                op::SETITEMS => {
                    let from = self.pop_mark()?;
                    self.fill_opaque(from, true)?;
                }
                op::EMPTY_SET => self.push_new(Val::Set)?,
                op::ADDITEMS => {
                    let from = self.pop_mark()?;
                    self.fill_opaque(from, false)?;
                }
                op::FROZENSET => {
                    let from = self.pop_mark()?;
                    self.charge(self.stack.len().saturating_sub(from))?;
                    self.stack.truncate(from);
                    self.push_new(Val::Set)?;
                }
                op::NONE => self.push_new(Val::None)?,
                op::NEWTRUE => self.push_new(Val::Bool(true))?,
                op::NEWFALSE => self.push_new(Val::Bool(false))?,
                op::INT => {
                    let s = self.line()?;
                    let v = match s {
                        b"00" => Val::Bool(false),
                        b"01" => Val::Bool(true),
                        _ => parse_py_int(s).ok_or(FrameError::Malformed("bad INT"))?,
                    };
                    self.push_new(v)?;
                }
                op::BININT => {
                    let v = i32::from_le_bytes(self.fixed()?);
                    self.push_new(Val::Int(i64::from(v)))?;
                }
                op::BININT1 => {
                    let v = self.byte()?;
                    self.push_new(Val::Int(i64::from(v)))?;
                }
                op::BININT2 => {
                    let v = u16::from_le_bytes(self.fixed()?);
                    self.push_new(Val::Int(i64::from(v)))?;
                }
                op::LONG => {
                    let s = self.line()?;
                    let s = s.strip_suffix(b"L").unwrap_or(s);
                    let v = parse_py_int(s).ok_or(FrameError::Malformed("bad LONG"))?;
                    self.push_new(v)?;
                }
                op::LONG1 => {
                    let n = usize::from(self.byte()?);
                    let s = self.take(n)?;
                    self.push_new(decode_long(s))?;
                }
                op::LONG4 => {
                    let n = self.len_i32()?;
                    let s = self.take(n)?;
                    self.push_new(decode_long(s))?;
                }
                op::FLOAT => {
                    let s = self.line()?;
                    let v = parse_py_float(s).ok_or(FrameError::Malformed("bad FLOAT"))?;
                    self.push_new(Val::Float(v))?;
                }
                op::BINFLOAT => {
                    let v = f64::from_be_bytes(self.fixed()?);
                    self.push_new(Val::Float(v))?;
                }
                op::STRING => {
                    let s = self.line()?;
                    let v = self.string_literal(s)?;
                    self.push_new(v)?;
                }
                op::BINSTRING => {
                    let n = self.len_i32()?;
                    let s = self.take(n)?;
                    self.push_new(Val::Raw(s))?;
                }
                op::SHORT_BINSTRING | op::SHORT_BINBYTES | op::SHORT_BINUNICODE => {
                    let n = usize::from(self.byte()?);
                    let s = self.take(n)?;
                    self.push_new(Val::Raw(s))?;
                }
                op::BINUNICODE | op::BINBYTES => {
                    let n = self.len_u32()?;
                    let s = self.take(n)?;
                    self.push_new(Val::Raw(s))?;
                }
                op::BINUNICODE8 | op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = self.len_u64()?;
                    let s = self.take(n)?;
                    self.push_new(Val::Raw(s))?;
                }
                op::UNICODE => {
                    let s = self.line()?;
                    let v = self.unicode_literal(s)?;
                    self.push_new(v)?;
                }
                op::PUT => {
                    let id = Self::text_memo_id(self.line()?)?;
                    self.memo_put(id)?;
                }
                op::BINPUT => {
                    let id = self.byte()?;
                    self.memo_put(u64::from(id))?;
                }
                op::LONG_BINPUT => {
                    let id = u32::from_le_bytes(self.fixed()?);
                    self.memo_put(u64::from(id))?;
                }
                op::MEMOIZE => {
                    let id =
                        u64::try_from(self.memo_count).map_err(|_| FrameError::MemoTooLarge)?;
                    self.memo_put(id)?;
                }
                op::GET => {
                    let id = Self::text_memo_id(self.line()?)?;
                    self.memo_get(id)?;
                }
                op::BINGET => {
                    let id = self.byte()?;
                    self.memo_get(u64::from(id))?;
                }
                op::LONG_BINGET => {
                    let id = u32::from_le_bytes(self.fixed()?);
                    self.memo_get(u64::from(id))?;
                }
                other => {
                    return Err(match forbidden_name(other) {
                        Some(name) => FrameError::ForbiddenOpcode {
                            opcode: other,
                            name,
                        },
                        None => FrameError::UnknownOpcode(other),
                    });
                }
            }
        }
    }

    fn store_owned(&mut self, bytes: Vec<u8>) -> R<Val<'a>> {
        let id = u32::try_from(self.owned.len()).map_err(|_| FrameError::TooManyItems)?;
        self.owned.push(bytes);
        Ok(Val::Owned(id))
    }

    /// `STRING`: a Python 2 `repr` of a byte string, decoded like `codecs.escape_decode`.
    fn string_literal(&mut self, s: &'a [u8]) -> R<Val<'a>> {
        let inner = match s {
            [q, inner @ .., q2] if q == q2 && (*q == b'\'' || *q == b'"') => inner,
            _ => return Err(FrameError::BadString("STRING argument must be quoted")),
        };
        if !inner.contains(&b'\\') {
            return Ok(Val::Raw(inner));
        }
        let decoded = escape_decode(inner)?;
        self.store_owned(decoded)
    }

    /// `UNICODE`: `raw-unicode-escape`, i.e. Latin-1 bytes plus `\uXXXX` / `\UXXXXXXXX`.
    fn unicode_literal(&mut self, s: &'a [u8]) -> R<Val<'a>> {
        if s.iter().all(|&b| b.is_ascii() && b != b'\\') {
            return Ok(Val::Raw(s));
        }
        let decoded = raw_unicode_escape_decode(s)?;
        self.store_owned(decoded)
    }

    // ---- conversion to datapoints ----

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

/// Text integer as Python's `int(s, 0)` reads pickle output: decimal (any size; beyond i64 it
/// becomes the nearest f64) or `0x`/`0o`/`0b` prefixed (i64 range only).
fn parse_py_int(s: &[u8]) -> Option<Val<'static>> {
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
fn decode_long(b: &[u8]) -> Val<'static> {
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

fn hex_value(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(v)
    })
}

/// Python 2 string-escape / `codecs.escape_decode`.
fn escape_decode(s: &[u8]) -> R<Vec<u8>> {
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
fn raw_unicode_escape_decode(s: &[u8]) -> R<Vec<u8>> {
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

#[cfg(test)]
mod tests;
