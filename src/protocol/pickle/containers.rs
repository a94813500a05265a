//! The containers the machine builds from stack segments: tuples and lists (kept in the
//! arena, referred to by index) and the opaque dicts and sets, with the nesting depth bound
//! checked as each is built or appended to.

use super::FrameError;
use super::vm::{List, R, Val, Vm};

impl<'a> Vm<'a, '_> {
    #[inline]
    fn depth(&self, idx: u32) -> u32 {
        match self.vals.get(idx as usize) {
            Some(Val::Tuple { depth, .. }) => *depth,
            Some(Val::List(l)) => self.lists.get(*l as usize).map_or(0, |l| l.depth),
            Some(Val::Dict | Val::Set) => 1,
            _ => 0,
        }
    }

    #[inline]
    fn check_depth(&self, depth: u32) -> R<()> {
        if depth as usize > self.limits.max_depth {
            return Err(FrameError::TooDeep);
        }
        Ok(())
    }

    #[inline]
    fn max_depth_from(&self, from: usize) -> u32 {
        self.stack
            .get(from..)
            .unwrap_or(&[])
            .iter()
            .map(|&i| self.depth(i))
            .max()
            .unwrap_or(0)
    }

    /// Builds a tuple from the stack items at `from..` and pushes it in their place.
    #[inline]
    pub(super) fn make_tuple(&mut self, from: usize) -> R<()> {
        let n = self.stack.len().saturating_sub(from);
        self.charge(n)?;
        let depth = self.max_depth_from(from) + 1;
        self.check_depth(depth)?;
        let start = u32::try_from(self.tuple_items.len()).map_err(|_| FrameError::TooManyItems)?;
        let len = u32::try_from(n).map_err(|_| FrameError::TooManyItems)?;
        self.tuple_items.extend(self.stack.drain(from..));
        self.push_new(Val::Tuple { start, len, depth })
    }

    #[inline]
    pub(super) fn tuple_n(&mut self, n: usize) -> R<()> {
        let from = self
            .stack
            .len()
            .checked_sub(n)
            .filter(|&f| f >= self.base())
            .ok_or(FrameError::Malformed("stack underflow"))?;
        self.make_tuple(from)
    }

    #[inline]
    pub(super) fn make_list(&mut self, from: usize) -> R<()> {
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
    #[inline]
    pub(super) fn extend_list(&mut self, from: usize) -> R<()> {
        let n = self.stack.len().saturating_sub(from);
        let target = self.target_below(from, "APPEND without a list")?;
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
    #[inline]
    pub(super) fn fill_opaque(&mut self, from: usize, dict: bool) -> R<()> {
        let n = self.stack.len().saturating_sub(from);
        let target = self.target_below(from, "SETITEM/ADDITEMS without a target")?;
        match (self.vals.get(target as usize), dict) {
            (Some(Val::Dict), true) if n.is_multiple_of(2) => {}
            (Some(Val::Set), false) => {}
            _ => return Err(FrameError::Malformed("SETITEM/ADDITEMS on a wrong target")),
        }
        self.charge(n)?;
        self.stack.truncate(from);
        Ok(())
    }

    /// `DICT`: the key/value pairs at `from..` become one opaque dict.
    #[inline]
    pub(super) fn make_dict(&mut self, from: usize) -> R<()> {
        let n = self.stack.len().saturating_sub(from);
        if !n.is_multiple_of(2) {
            return Err(FrameError::Malformed("DICT with odd item count"));
        }
        self.charge(n)?;
        self.stack.truncate(from);
        self.push_new(Val::Dict)
    }

    /// `FROZENSET`: the items at `from..` become one opaque set.
    #[inline]
    pub(super) fn make_frozenset(&mut self, from: usize) -> R<()> {
        self.charge(self.stack.len().saturating_sub(from))?;
        self.stack.truncate(from);
        self.push_new(Val::Set)
    }

    /// The container that items at `from..` are added to: the stack item just below them,
    /// which must be above the innermost mark (`missing` otherwise).
    #[inline]
    fn target_below(&self, from: usize, missing: &'static str) -> R<u32> {
        if from <= self.base() {
            return Err(FrameError::Malformed(missing));
        }
        self.stack
            .get(from - 1)
            .copied()
            .ok_or(FrameError::Malformed(missing))
    }
}
