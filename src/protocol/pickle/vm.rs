//! The pickle machine: its value arena, stack and marks, the byte reader over one payload, and
//! the opcode loop. `run` only dispatches: each group of opcodes (header, stack and marks,
//! sequences, opaque dicts and sets, scalars, strings) is one method here; building
//! containers is `containers.rs`, the memo and its opcodes `memo.rs`.
//!
//! Every value built, slot filled and memo or `DUP` push is charged against
//! `PickleLimits::max_items` as it happens, so no input can make the machine do unbounded work.
//!
//! The helpers the loop calls across these files are `#[inline]`: release builds use several
//! codegen units, and splitting the module should not change what may be inlined into the loop.

use super::number::{decode_long, parse_py_int};
use super::opcodes as op;
use super::text::{escape_decode, raw_unicode_escape_decode};
use super::{FrameError, PickleLimits};
use crate::protocol::number::parse_py_float;

/// A value in the arena. Containers refer to other values by arena index, so a memo `GET` of a
/// big container costs one index, never a copy.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<'a> {
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

pub(super) struct List {
    pub(super) items: Vec<u32>,
    pub(super) depth: u32,
}

pub(super) struct Vm<'a, 'l> {
    data: &'a [u8],
    pos: usize,
    pub(super) limits: &'l PickleLimits,
    pub(super) vals: Vec<Val<'a>>,
    pub(super) owned: Vec<Vec<u8>>,
    pub(super) tuple_items: Vec<u32>,
    pub(super) lists: Vec<List>,
    pub(super) stack: Vec<u32>,
    marks: Vec<usize>,
    pub(super) memo: Vec<u32>,
    pub(super) memo_count: usize,
    items: usize,
}

pub(super) type R<T> = Result<T, FrameError>;

impl<'a, 'l> Vm<'a, 'l> {
    pub(super) fn new(data: &'a [u8], limits: &'l PickleLimits) -> Self {
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

    #[inline]
    pub(super) fn byte(&mut self) -> R<u8> {
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

    #[inline]
    pub(super) fn fixed<const N: usize>(&mut self) -> R<[u8; N]> {
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
    #[inline]
    pub(super) fn line(&mut self) -> R<&'a [u8]> {
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

    #[inline]
    pub(super) fn charge(&mut self, n: usize) -> R<()> {
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

    #[inline]
    pub(super) fn push_new(&mut self, v: Val<'a>) -> R<()> {
        let idx = self.alloc(v)?;
        self.stack.push(idx);
        Ok(())
    }

    /// Items below the innermost mark belong to an outer frame of Python's metastack and are
    /// invisible to stack operations.
    #[inline]
    pub(super) fn base(&self) -> usize {
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

    #[inline]
    pub(super) fn top(&self) -> R<u32> {
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

    // ---- the machine ----

    /// Runs to `STOP` and returns the arena index of the value it leaves.
    pub(super) fn run(&mut self) -> R<u32> {
        loop {
            let opcode = self.byte()?;
            match opcode {
                op::STOP => return self.pop(),
                op::PROTO | op::FRAME => self.header(opcode)?,
                op::MARK | op::POP | op::POP_MARK | op::DUP => self.stack_op(opcode)?,
                op::EMPTY_LIST
                | op::LIST
                | op::APPEND
                | op::APPENDS
                | op::EMPTY_TUPLE
                | op::TUPLE
                | op::TUPLE1
                | op::TUPLE2
                | op::TUPLE3 => self.sequence_op(opcode)?,
                op::EMPTY_DICT
                | op::DICT
                | op::SETITEM
                | op::SETITEMS
                | op::EMPTY_SET
                | op::ADDITEMS
                | op::FROZENSET => self.opaque_op(opcode)?,
                op::NONE
                | op::NEWTRUE
                | op::NEWFALSE
                | op::INT
                | op::BININT
                | op::BININT1
                | op::BININT2
                | op::LONG
                | op::LONG1
                | op::LONG4
                | op::FLOAT
                | op::BINFLOAT => self.scalar_op(opcode)?,
                op::STRING
                | op::BINSTRING
                | op::SHORT_BINSTRING
                | op::SHORT_BINBYTES
                | op::SHORT_BINUNICODE
                | op::BINUNICODE
                | op::BINBYTES
                | op::BINUNICODE8
                | op::BINBYTES8
                | op::BYTEARRAY8
                | op::UNICODE => self.string_op(opcode)?,
                op::PUT
                | op::BINPUT
                | op::LONG_BINPUT
                | op::MEMOIZE
                | op::GET
                | op::BINGET
                | op::LONG_BINGET => self.memo_op(opcode)?,
                other => return Err(op::refusal(other)),
            }
        }
    }

    // Each group method below matches only the opcodes `run` sends it; its fallback arm is
    // `run`'s own, so an opcode reaching the wrong group is still refused, never executed.

    #[inline]
    fn header(&mut self, opcode: u8) -> R<()> {
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
            other => return Err(op::refusal(other)),
        }
        Ok(())
    }

    #[inline]
    fn stack_op(&mut self, opcode: u8) -> R<()> {
        match opcode {
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
            other => return Err(op::refusal(other)),
        }
        Ok(())
    }

    #[inline]
    fn sequence_op(&mut self, opcode: u8) -> R<()> {
        match opcode {
            op::EMPTY_LIST => self.make_list(self.stack.len()),
            op::LIST => {
                let from = self.pop_mark()?;
                self.make_list(from)
            }
            op::APPEND => {
                let from = self.stack.len().saturating_sub(1);
                if from < self.base() || self.stack.is_empty() {
                    return Err(FrameError::Malformed("stack underflow"));
                }
                self.extend_list(from)
            }
            op::APPENDS => {
                let from = self.pop_mark()?;
                self.extend_list(from)
            }
            op::EMPTY_TUPLE => self.make_tuple(self.stack.len()),
            op::TUPLE => {
                let from = self.pop_mark()?;
                self.make_tuple(from)
            }
            op::TUPLE1 => self.tuple_n(1),
            op::TUPLE2 => self.tuple_n(2),
            op::TUPLE3 => self.tuple_n(3),
            other => Err(op::refusal(other)),
        }
    }

    #[inline]
    fn opaque_op(&mut self, opcode: u8) -> R<()> {
        match opcode {
            op::EMPTY_DICT => self.push_new(Val::Dict),
            op::DICT => {
                let from = self.pop_mark()?;
                self.make_dict(from)
            }
            op::SETITEM => {
                let from = self.stack.len().saturating_sub(2);
                if self.stack.len() < 2 || from < self.base() {
                    return Err(FrameError::Malformed("stack underflow"));
                }
                self.fill_opaque(from, true)
            }
            op::SETITEMS => {
                let from = self.pop_mark()?;
                self.fill_opaque(from, true)
            }
            op::EMPTY_SET => self.push_new(Val::Set),
            op::ADDITEMS => {
                let from = self.pop_mark()?;
                self.fill_opaque(from, false)
            }
            op::FROZENSET => {
                let from = self.pop_mark()?;
                self.make_frozenset(from)
            }
            other => Err(op::refusal(other)),
        }
    }

    /// `None`, booleans and numbers.
    #[inline]
    fn scalar_op(&mut self, opcode: u8) -> R<()> {
        let v = match opcode {
            op::NONE => Val::None,
            op::NEWTRUE => Val::Bool(true),
            op::NEWFALSE => Val::Bool(false),
            op::INT => match self.line()? {
                b"00" => Val::Bool(false),
                b"01" => Val::Bool(true),
                s => parse_py_int(s).ok_or(FrameError::Malformed("bad INT"))?,
            },
            op::BININT => Val::Int(i64::from(i32::from_le_bytes(self.fixed()?))),
            op::BININT1 => Val::Int(i64::from(self.byte()?)),
            op::BININT2 => Val::Int(i64::from(u16::from_le_bytes(self.fixed()?))),
            op::LONG => {
                let s = self.line()?;
                let s = s.strip_suffix(b"L").unwrap_or(s);
                parse_py_int(s).ok_or(FrameError::Malformed("bad LONG"))?
            }
            op::LONG1 => {
                let n = usize::from(self.byte()?);
                decode_long(self.take(n)?)
            }
            op::LONG4 => {
                let n = self.len_i32()?;
                decode_long(self.take(n)?)
            }
            op::FLOAT => {
                let s = self.line()?;
                Val::Float(parse_py_float(s).ok_or(FrameError::Malformed("bad FLOAT"))?)
            }
            op::BINFLOAT => Val::Float(f64::from_be_bytes(self.fixed()?)),
            other => return Err(op::refusal(other)),
        };
        self.push_new(v)
    }

    #[inline]
    fn string_op(&mut self, opcode: u8) -> R<()> {
        let v = match opcode {
            op::STRING => {
                let s = self.line()?;
                self.string_literal(s)?
            }
            op::UNICODE => {
                let s = self.line()?;
                self.unicode_literal(s)?
            }
            op::BINSTRING => {
                let n = self.len_i32()?;
                Val::Raw(self.take(n)?)
            }
            op::SHORT_BINSTRING | op::SHORT_BINBYTES | op::SHORT_BINUNICODE => {
                let n = usize::from(self.byte()?);
                Val::Raw(self.take(n)?)
            }
            op::BINUNICODE | op::BINBYTES => {
                let n = self.len_u32()?;
                Val::Raw(self.take(n)?)
            }
            op::BINUNICODE8 | op::BINBYTES8 | op::BYTEARRAY8 => {
                let n = self.len_u64()?;
                Val::Raw(self.take(n)?)
            }
            other => return Err(op::refusal(other)),
        };
        self.push_new(v)
    }

    // ---- strings ----

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
}
