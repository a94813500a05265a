//! The open carbon TCP connections over all listeners, as one registry: it owns the two
//! bounds they share.
//!
//! - `max_connections`: when every slot is taken, a new connection makes room by closing the
//!   one idle longest (whose last complete frame or line, or its opening, is oldest), so idle
//!   or silent peers cannot keep a sender with data out. A connection busy pushing what it
//!   decoded (waiting for room under `--buffer-policy block`) is not idle; only when every
//!   connection is busy is the new one refused.
//! - `partial_frame_bytes`: the bytes all connections hold in incomplete frames and lines (the
//!   ledger's `partial_frame_bytes` gauge). When a connection's holding takes the total over
//!   the bound, the connections holding the most are closed until the rest fit.
//!
//! A connection chosen to close is removed from the registry at once (its slot and its share
//! of the budget are free for others) and told through its token; it stops at its next read.
//! What it had decoded is already in the buffer: connections flush before they read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::accounting::Ledger;
use crate::events::{
    ConnectionEvicted, ConnectionOverBudget, InternalEvent, LogLimits, PartialFrameHeld,
    PartialFrameLimitSet,
};

/// One open connection, as the registry sees it.
#[derive(Debug)]
struct Slot {
    peer: SocketAddr,
    /// Nanoseconds from the registry's epoch to the last complete frame or line (or the
    /// opening).
    last_frame_ns: AtomicU64,
    /// Bytes of incomplete input held now.
    held: AtomicU64,
    /// Pushing decoded points into the buffer (which, under `block`, waits for room).
    busy: AtomicBool,
    close: CancellationToken,
}

#[derive(Debug)]
pub struct ConnRegistry {
    max_connections: usize,
    partial_frame_limit: u64,
    epoch: Instant,
    next_id: AtomicU64,
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    ledger: Arc<Ledger>,
    logs: Arc<LogLimits>,
}

/// Why a connection could not be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

impl ConnRegistry {
    pub fn new(
        max_connections: usize,
        partial_frame_bytes: usize,
        ledger: Arc<Ledger>,
        logs: Arc<LogLimits>,
    ) -> Self {
        let limit = partial_frame_bytes as u64;
        PartialFrameLimitSet { bytes: limit }.emit(&ledger, &logs);
        Self {
            max_connections,
            partial_frame_limit: limit,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            slots: Mutex::new(HashMap::new()),
            ledger,
            logs,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        // Every update under this lock is one map operation: a panic cannot leave it
        // half-done, so a poisoned lock is taken over.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ns(&self) -> u64 {
        self.ns_at(Instant::now())
    }

    fn ns_at(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// A slot for a new connection from `peer`: a free one, or the one of the connection idle
    /// longest, which is told to close. Refused when every connection is busy.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<ConnSlot, Refused> {
        let now = self.now_ns();
        let slot = Arc::new(Slot {
            peer,
            last_frame_ns: AtomicU64::new(now),
            held: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            close: CancellationToken::new(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut slots = self.lock();
        let evicted = if slots.len() >= self.max_connections {
            let victim = slots
                .iter()
                .filter(|(_, s)| !s.busy.load(Ordering::Relaxed))
                .min_by_key(|(_, s)| s.last_frame_ns.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            let Some(victim) = victim.and_then(|v| slots.remove(&v)) else {
                return Err(Refused);
            };
            Some(victim)
        } else {
            None
        };
        slots.insert(id, slot.clone());
        drop(slots);
        if let Some(victim) = evicted {
            victim.close.cancel();
            let idle_ns = now.saturating_sub(victim.last_frame_ns.load(Ordering::Relaxed));
            ConnectionEvicted {
                peer: victim.peer,
                idle: Duration::from_nanos(idle_ns),
                limit: self.max_connections,
            }
            .emit(&self.ledger, &self.logs);
        }
        Ok(ConnSlot {
            registry: self.clone(),
            id,
            slot,
        })
    }

    /// Closes the connections holding the most until what the others hold fits the budget.
    /// Returns whether `me` is one of them.
    fn enforce_budget(&self, me: u64) -> bool {
        let mut victims = Vec::new();
        let mut slots = self.lock();
        let mut live: u64 = slots.values().map(|s| s.held.load(Ordering::Relaxed)).sum();
        while live > self.partial_frame_limit {
            let Some((&id, _)) = slots
                .iter()
                .max_by_key(|(_, s)| s.held.load(Ordering::Relaxed))
            else {
                break;
            };
            let Some(victim) = slots.remove(&id) else {
                break;
            };
            let held = victim.held.load(Ordering::Relaxed);
            live = live.saturating_sub(held);
            victims.push((id, victim, held));
        }
        drop(slots);
        let mut me_closed = false;
        for (id, victim, held) in victims {
            me_closed |= id == me;
            victim.close.cancel();
            ConnectionOverBudget {
                peer: victim.peer,
                held,
                limit: self.partial_frame_limit,
            }
            .emit(&self.ledger, &self.logs);
        }
        me_closed
    }
}

/// A connection's place in the registry, released when dropped.
#[derive(Debug)]
pub struct ConnSlot {
    registry: Arc<ConnRegistry>,
    id: u64,
    slot: Arc<Slot>,
}

impl ConnSlot {
    /// Fires when the registry closes this connection (to make room, or over the budget).
    pub fn closing(&self) -> &CancellationToken {
        &self.slot.close
    }

    /// A complete frame or line arrived at `at` (the connection is not idle).
    pub fn frame_completed_at(&self, at: Instant) {
        self.slot
            .last_frame_ns
            .store(self.registry.ns_at(at), Ordering::Relaxed);
    }

    /// Busy while pushing decoded points (a wait for room is not idleness).
    pub fn set_busy(&self, busy: bool) {
        self.slot.busy.store(busy, Ordering::Relaxed);
    }

    /// The connection now holds `bytes` of incomplete input. Returns `true` when it must close:
    /// the total went over the budget and it is among those holding the most.
    #[must_use]
    pub fn hold(&self, bytes: usize) -> bool {
        let new = bytes as u64;
        let old = self.slot.held.swap(new, Ordering::Relaxed);
        if new == old {
            return false;
        }
        let r = &self.registry;
        let total = PartialFrameHeld { add: new, sub: old }.emit(&r.ledger, &r.logs);
        new > old && total > r.partial_frame_limit && r.enforce_budget(self.id)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        let held = self.slot.held.swap(0, Ordering::Relaxed);
        let r = &self.registry;
        PartialFrameHeld { add: 0, sub: held }.emit(&r.ledger, &r.logs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max: usize, budget: usize) -> (Arc<ConnRegistry>, Arc<Ledger>) {
        let ledger = Arc::new(Ledger::default());
        let r = ConnRegistry::new(max, budget, ledger.clone(), Arc::new(LogLimits::default()));
        (Arc::new(r), ledger)
    }

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_full_registry_closes_the_connection_idle_longest_and_skips_busy_ones() {
        let (r, ledger) = registry(3, 1 << 20);
        let a = r.admit(peer(1)).expect("a");
        let b = r.admit(peer(2)).expect("b");
        let c = r.admit(peer(3)).expect("c");
        // `a` is idle longest but busy; then `c`, then `b`.
        let t0 = Instant::now();
        a.frame_completed_at(t0);
        c.frame_completed_at(t0 + Duration::from_millis(1));
        b.frame_completed_at(t0 + Duration::from_millis(2));
        a.set_busy(true);
        let d = r.admit(peer(4)).expect("d");
        assert!(c.closing().is_cancelled());
        assert!(!a.closing().is_cancelled() && !b.closing().is_cancelled());
        assert_eq!(ledger.snapshot().connections_idle_evicted, 1);
        // The evicted connection's end does not free a second slot.
        drop(c);
        b.set_busy(true);
        d.set_busy(true);
        assert_eq!(r.admit(peer(5)).err(), Some(Refused));
        drop(d);
        assert!(r.admit(peer(6)).is_ok());
    }

    #[test]
    fn over_the_budget_the_largest_holders_close_and_release_what_they_held() {
        let (r, ledger) = registry(10, 100);
        let a = r.admit(peer(1)).expect("a");
        let b = r.admit(peer(2)).expect("b");
        let c = r.admit(peer(3)).expect("c");
        assert!(!a.hold(60));
        assert!(!b.hold(30));
        assert_eq!(ledger.snapshot().partial_frame_bytes, 90);
        // `c` takes the total to 120: `a`, the largest, closes; `c` stays.
        assert!(!c.hold(30));
        assert!(a.closing().is_cancelled());
        assert!(!b.closing().is_cancelled() && !c.closing().is_cancelled());
        // Still counted until the connection is gone.
        assert_eq!(ledger.snapshot().partial_frame_bytes, 120);
        drop(a);
        // `b` grows past everyone: it is the one that closes.
        assert!(b.hold(90));
        let s = ledger.snapshot();
        assert_eq!(s.connections_partial_frame_closed, 2);
        drop((b, c));
        let s = ledger.snapshot();
        assert_eq!((s.partial_frame_bytes, s.partial_frame_limit), (0, 100));
    }
}
