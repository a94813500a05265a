//! The path components name events by: `crate::events::PointsDropped` and the rest. The events
//! themselves live in `accounting::events`, a child of `accounting`, because only they may move
//! a ledger counter (the mutators are `pub(in crate::accounting)`).

pub use crate::accounting::events::*;
