//! The arrival times and memory of points that are no longer in the buffer and not yet
//! settled: the register of batches in flight (the flusher's hands, each delivery task, a
//! spool record being replayed), and the shape both it and the buffer's blocked pushers report,
//! [`Held`]. `/buffer` and the pending gauges read it for the delivery lag: a point's age must
//! not vanish from view because it left the buffer. One slot per batch, never per point, and
//! the slots live in a `Vec` that stops growing at the number of batches in flight, so holding
//! one costs a lock and no allocation on the hot path.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The oldest arrival among some points, and the memory they are charged
/// ([`crate::model::Datapoint::buffer_cost`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// When the oldest of them arrived; `None` when there are none, or when their age is
    /// shown elsewhere (a spool record being replayed stays the spool's until acknowledged).
    pub arrived: Option<Instant>,
    pub bytes: u64,
}

impl Held {
    /// Both together: the older arrival, the sum of the bytes.
    pub fn with(self, other: Held) -> Held {
        Held {
            arrived: older(self.arrived, other.arrived),
            bytes: self.bytes + other.bytes,
        }
    }
}

pub(super) fn older(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Default)]
struct Slots {
    next: u64,
    batches: Vec<(u64, Held)>,
    /// The flusher's hands: the body being filled and the points taken for it.
    hands: Held,
}

/// The batches in flight, each held by a [`Holding`] for as long as its points are unsettled.
#[derive(Debug, Default)]
pub struct InFlight {
    slots: Mutex<Slots>,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // The slots are plain figures: a panic elsewhere cannot leave them inconsistent.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers one batch until the returned [`Holding`] is dropped (its delivery settled).
    pub fn hold(self: &Arc<Self>, held: Held) -> Holding {
        let mut s = self.lock();
        let id = s.next;
        s.next += 1;
        s.batches.push((id, held));
        Holding {
            register: self.clone(),
            id,
            arrived: held.arrived,
        }
    }

    /// What the flusher holds outside any batch now (replacing what it said before).
    pub fn set_hands(&self, held: Held) {
        self.lock().hands = held;
    }

    /// The oldest arrival and the bytes over every batch and the flusher's hands.
    pub fn total(&self) -> Held {
        let s = self.lock();
        s.batches.iter().fold(s.hands, |acc, (_, h)| acc.with(*h))
    }
}

/// One batch's slot in [`InFlight`]; given back when dropped.
#[derive(Debug)]
pub struct Holding {
    register: Arc<InFlight>,
    id: u64,
    arrived: Option<Instant>,
}

impl Holding {
    /// When the batch's oldest point arrived (what a spill stamps its records with).
    pub fn arrived(&self) -> Option<Instant> {
        self.arrived
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        let mut s = self.register.lock();
        if let Some(i) = s.batches.iter().position(|(id, _)| *id == self.id) {
            s.batches.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_oldest_batch_and_all_bytes_are_seen_until_each_is_dropped() {
        let reg = Arc::new(InFlight::default());
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(reg.total(), Held::default());
        let a = reg.hold(Held {
            arrived: Some(t1),
            bytes: 10,
        });
        let b = reg.hold(Held {
            arrived: Some(t0),
            bytes: 5,
        });
        reg.set_hands(Held {
            arrived: None,
            bytes: 1,
        });
        assert_eq!(
            reg.total(),
            Held {
                arrived: Some(t0),
                bytes: 16
            }
        );
        drop(b);
        assert_eq!(
            reg.total(),
            Held {
                arrived: Some(t1),
                bytes: 11
            }
        );
        drop(a);
        reg.set_hands(Held::default());
        assert_eq!(reg.total(), Held::default());
    }
}
