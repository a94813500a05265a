//! The memo: `PUT`/`MEMOIZE` remember the stack top under an id, `GET` pushes it again. It
//! stores arena indices, so fetching a memoised container costs one index, never a copy.
//!
//! Ids must be below `max_memo` (Python assigns them densely from 0), so the memo is a plain
//! vector with `NO_MEMO` in the slots never stored.

use super::FrameError;
use super::opcodes as op;
use super::vm::{R, Vm};

/// A memo slot never stored.
pub(super) const NO_MEMO: u32 = u32::MAX;

impl Vm<'_, '_> {
    /// `PUT`, `BINPUT`, `LONG_BINPUT`, `MEMOIZE`, `GET`, `BINGET`, `LONG_BINGET`.
    #[inline]
    pub(super) fn memo_op(&mut self, opcode: u8) -> R<()> {
        match opcode {
            op::PUT | op::BINPUT | op::LONG_BINPUT => {
                let id = self.memo_id(opcode)?;
                self.memo_put(id)
            }
            op::MEMOIZE => {
                let id = u64::try_from(self.memo_count).map_err(|_| FrameError::MemoTooLarge)?;
                self.memo_put(id)
            }
            op::GET | op::BINGET | op::LONG_BINGET => {
                let id = self.memo_id(opcode)?;
                self.memo_get(id)
            }
            other => Err(op::refusal(other)),
        }
    }

    /// The id argument of a memo opcode: a text line, one byte or a little-endian `u32`.
    #[inline]
    fn memo_id(&mut self, opcode: u8) -> R<u64> {
        match opcode {
            op::PUT | op::GET => Self::text_memo_id(self.line()?),
            op::BINPUT | op::BINGET => Ok(u64::from(self.byte()?)),
            op::LONG_BINPUT | op::LONG_BINGET => Ok(u64::from(u32::from_le_bytes(self.fixed()?))),
            other => Err(op::refusal(other)),
        }
    }

    #[inline]
    pub(super) fn memo_put(&mut self, id: u64) -> R<()> {
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

    #[inline]
    pub(super) fn memo_get(&mut self, id: u64) -> R<()> {
        let idx = usize::try_from(id)
            .ok()
            .and_then(|i| self.memo.get(i).copied())
            .filter(|&v| v != NO_MEMO)
            .ok_or(FrameError::MissingMemo(id))?;
        self.charge(1)?;
        self.stack.push(idx);
        Ok(())
    }

    #[inline]
    pub(super) fn text_memo_id(s: &[u8]) -> R<u64> {
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or(FrameError::Malformed("bad memo id"))
    }
}
