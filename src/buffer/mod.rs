//! The one bounded in-memory buffer between the listeners and the forwarder.
//!
//! Bounded in bytes (each point costs [`Datapoint::buffer_cost`]). When full, the policy
//! decides: `drop_newest` refuses the incoming points and counts them as `buffer_full`;
//! `block` makes TCP readers wait for room, which stops them reading their sockets and so
//! back-pressures the sender (UDP cannot wait and always drops). Pushing never waits on HTTP:
//! only on room in this buffer.
//!
//! It also keeps the arrival times of points on their way out of it or into it (`ages.rs`):
//! the batches in flight, and the pushers blocked waiting for room, so that the delivery lag
//! can be read wherever the oldest point waits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use crate::accounting::{DropReason, Ledger};
use crate::config::settings::BufferPolicy;
use crate::events::{
    BufferDropped, BufferTaken, InternalEvent, LogLimits, PointsBuffered, PointsWaiting,
    WaitingBuffered, WaitingReleased,
};
use crate::model::Datapoint;

mod ages;
pub use ages::{Held, Holding, InFlight};

/// A buffered point and when it arrived (for the flush interval and the oldest-age figure).
#[derive(Debug)]
pub struct Entry {
    pub point: Datapoint,
    pub arrived: Instant,
}

/// Entries per chunk of [`Entries`].
const CHUNK: usize = 1024;

/// A FIFO of entries kept in fixed-size chunks, so that its memory follows its length: one
/// `VecDeque` would keep the capacity of its largest size (up to twice it, after doubling), which
/// one outage that fills the buffer would leave behind, outside the bound, for good.
#[derive(Debug, Default)]
struct Entries {
    chunks: VecDeque<VecDeque<Entry>>,
    len: usize,
}

impl Entries {
    fn push_back(&mut self, e: Entry) {
        match self.chunks.back_mut() {
            Some(c) if c.len() < CHUNK => c.push_back(e),
            _ => {
                let mut c = VecDeque::with_capacity(CHUNK);
                c.push_back(e);
                self.chunks.push_back(c);
            }
        }
        self.len += 1;
    }

    fn pop_front(&mut self) -> Option<Entry> {
        let front = self.chunks.front_mut()?;
        let e = front.pop_front();
        if front.is_empty() {
            self.chunks.pop_front();
        }
        if e.is_some() {
            self.len -= 1;
        }
        e
    }

    fn front(&self) -> Option<&Entry> {
        self.chunks.front().and_then(VecDeque::front)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: Entries,
    bytes: usize,
    /// Set at the shutdown deadline: nothing more is accepted, blocked pushers give up.
    closed: bool,
    /// Pushers blocked waiting for room (one per connection at most): id, and their points'
    /// arrival and the bytes still outside the buffer.
    waiters: Vec<(u64, Held)>,
    next_waiter: u64,
}

/// A blocked pusher's entry in [`Inner::waiters`], removed however the push ends (the future
/// dropped included).
struct Waiter<'a> {
    buffer: &'a Buffer,
    id: u64,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut inner = self.buffer.lock();
        if let Some(i) = inner.waiters.iter().position(|(id, _)| *id == self.id) {
            inner.waiters.swap_remove(i);
        }
    }
}

/// What happened to the points handed to a push. Dropped points are NOT yet counted: the
/// caller emits the event (it knows the peer and protocol to log).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushOutcome {
    pub accepted: usize,
    pub dropped: usize,
    /// `buffer_full`, or `shutdown_timeout` once the buffer is closed.
    pub reason: Option<DropReason>,
}

#[derive(Debug)]
pub struct Buffer {
    inner: Mutex<Inner>,
    max_bytes: usize,
    policy: BufferPolicy,
    ledger: Arc<Ledger>,
    logs: Arc<LogLimits>,
    /// Wakes the flusher when points arrive.
    data_ready: Notify,
    /// Wakes blocked pushers when room appears.
    room_ready: Notify,
    /// The batches taken from here and not yet settled, by age.
    in_flight: Arc<InFlight>,
}

impl Buffer {
    pub fn new(
        max_bytes: usize,
        policy: BufferPolicy,
        ledger: Arc<Ledger>,
        logs: Arc<LogLimits>,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_bytes,
            policy,
            ledger,
            logs,
            data_ready: Notify::new(),
            room_ready: Notify::new(),
            in_flight: Arc::new(InFlight::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave `Inner` half-updated in a way that
        // matters more than losing the process, so a poisoned lock is simply taken over.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves as many of `points` (front first) as fit into the buffer; returns how many.
    /// `waiting`: the points are counted as waiting for room, and leave that state; `waiter`
    /// is their entry in the blocked pushers, whose bytes go down by what entered.
    fn push_some(
        &self,
        points: &mut VecDeque<Datapoint>,
        now: Instant,
        waiting: bool,
        waiter: Option<u64>,
    ) -> usize {
        let mut inner = self.lock();
        if inner.closed {
            return 0;
        }
        let (mut n, mut bytes) = (0usize, 0usize);
        while let Some(p) = points.front() {
            let cost = p.buffer_cost();
            if inner.bytes + cost > self.max_bytes {
                break;
            }
            inner.bytes += cost;
            bytes += cost;
            n += 1;
            if let Some(point) = points.pop_front() {
                inner.entries.push_back(Entry {
                    point,
                    arrived: now,
                });
            }
        }
        if let Some(w) = waiter
            && let Some((_, held)) = inner.waiters.iter_mut().find(|(id, _)| *id == w)
        {
            held.bytes = held.bytes.saturating_sub(bytes as u64);
        }
        drop(inner);
        if n > 0 {
            let (points, bytes) = (n as u64, bytes as u64);
            if waiting {
                WaitingBuffered { points, bytes }.emit(&self.ledger, &self.logs);
            } else {
                PointsBuffered { points, bytes }.emit(&self.ledger, &self.logs);
            }
            self.data_ready.notify_one();
        }
        n
    }

    /// Pushes without ever waiting: what does not fit is dropped as `buffer_full`.
    pub fn try_push(&self, points: Vec<Datapoint>) -> PushOutcome {
        let mut points = VecDeque::from(points);
        let accepted = self.push_some(&mut points, Instant::now(), false, None);
        let dropped = points.len();
        let reason = (dropped > 0).then(|| {
            if self.is_closed() {
                DropReason::ShutdownTimeout
            } else {
                DropReason::BufferFull
            }
        });
        PushOutcome {
            accepted,
            dropped,
            reason,
        }
    }

    /// Pushes according to the policy: `drop_newest` as [`Buffer::try_push`]; `block` waits
    /// for room, the points that do not fit counted as waiting for room meanwhile (a ledger
    /// state: received, not yet buffered). Points still held when the buffer closes (shutdown
    /// deadline) are dropped as `shutdown_timeout`.
    pub async fn push(&self, points: Vec<Datapoint>) -> PushOutcome {
        if self.policy == BufferPolicy::DropNewest {
            return self.try_push(points);
        }
        let mut points = VecDeque::from(points);
        let mut accepted = 0;
        let mut waiting = false;
        // Points that waited keep the time they arrived, not the time room appeared: their
        // age is the delivery lag an operator reads.
        let arrived = Instant::now();
        let mut waiter: Option<Waiter<'_>> = None;
        loop {
            // Register interest before trying, so room freed in between is not missed.
            let room = self.room_ready.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let id = waiter.as_ref().map(|w| w.id);
            accepted += self.push_some(&mut points, arrived, waiting, id);
            if points.is_empty() {
                return PushOutcome {
                    accepted,
                    dropped: 0,
                    reason: None,
                };
            }
            if self.is_closed() {
                if waiting {
                    WaitingReleased {
                        points: points.len() as u64,
                    }
                    .emit(&self.ledger, &self.logs);
                }
                return PushOutcome {
                    accepted,
                    dropped: points.len(),
                    reason: Some(DropReason::ShutdownTimeout),
                };
            }
            if !waiting {
                PointsWaiting {
                    points: points.len() as u64,
                }
                .emit(&self.ledger, &self.logs);
                waiting = true;
                waiter = Some(self.wait_here(&points, arrived));
            }
            room.await;
        }
    }

    /// Enters a blocked pusher's points in [`Inner::waiters`]: once per wait, not per point
    /// pushed.
    fn wait_here(&self, points: &VecDeque<Datapoint>, arrived: Instant) -> Waiter<'_> {
        let bytes: usize = points.iter().map(Datapoint::buffer_cost).sum();
        let mut inner = self.lock();
        let id = inner.next_waiter;
        inner.next_waiter += 1;
        inner.waiters.push((
            id,
            Held {
                arrived: Some(arrived),
                bytes: bytes as u64,
            },
        ));
        Waiter { buffer: self, id }
    }

    /// Takes up to `max` points from the front, oldest first, into `out`. The points leave the
    /// buffer for the forwarder (the ledger moves them to in flight).
    pub fn take(&self, max: usize, out: &mut Vec<Entry>) -> usize {
        let mut inner = self.lock();
        let n = max.min(inner.entries.len());
        let mut bytes = 0usize;
        for _ in 0..n {
            if let Some(e) = inner.entries.pop_front() {
                bytes += e.point.buffer_cost();
                out.push(e);
            }
        }
        inner.bytes -= bytes;
        drop(inner);
        if n > 0 {
            BufferTaken {
                points: n as u64,
                bytes: bytes as u64,
            }
            .emit(&self.ledger, &self.logs);
            self.room_ready.notify_waiters();
        }
        n
    }

    /// Waits until the buffer may hold points (a wake-up can be spurious: check with `take`).
    pub async fn data_ready(&self) {
        self.data_ready.notified().await;
    }

    /// Refuses all further points and drops what is buffered as `shutdown_timeout`; wakes
    /// every blocked pusher. Returns the number of points dropped.
    pub fn close_and_drop(&self) -> usize {
        let mut inner = self.lock();
        inner.closed = true;
        let n = inner.entries.len();
        let bytes = inner.bytes;
        inner.entries.clear();
        inner.bytes = 0;
        drop(inner);
        if n > 0 {
            BufferDropped {
                reason: DropReason::ShutdownTimeout,
                points: n as u64,
                bytes: bytes as u64,
            }
            .emit(&self.ledger, &self.logs);
        }
        self.room_ready.notify_waiters();
        self.data_ready.notify_one();
        n
    }

    /// Refuses all further points and takes out everything buffered (the ledger moves it to
    /// in flight), for the spool to keep at the shutdown deadline. Wakes every blocked pusher.
    pub fn close_and_take(&self) -> Vec<Datapoint> {
        let mut inner = self.lock();
        inner.closed = true;
        let bytes = inner.bytes;
        let mut points = Vec::with_capacity(inner.entries.len());
        while let Some(e) = inner.entries.pop_front() {
            points.push(e.point);
        }
        inner.bytes = 0;
        drop(inner);
        if !points.is_empty() {
            BufferTaken {
                points: points.len() as u64,
                bytes: bytes as u64,
            }
            .emit(&self.ledger, &self.logs);
        }
        self.room_ready.notify_waiters();
        self.data_ready.notify_one();
        points
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// How full the buffer is, 0 to 1: what readiness's high-water mark and the spool and
    /// replay thresholds are compared with.
    pub fn fill(&self) -> f64 {
        self.bytes() as f64 / self.max_bytes.max(1) as f64
    }

    /// When the oldest buffered point arrived, if any.
    pub fn oldest(&self) -> Option<Instant> {
        self.lock().entries.front().map(|e| e.arrived)
    }

    /// What the pushers blocked waiting for room hold: their oldest arrival and the bytes of
    /// their points not yet in the buffer.
    pub fn waiting(&self) -> Held {
        let inner = self.lock();
        inner
            .waiters
            .iter()
            .fold(Held::default(), |acc, (_, h)| acc.with(*h))
    }

    /// The batches taken from the buffer and not yet settled (the forwarder holds slots here).
    pub fn in_flight(&self) -> &Arc<InFlight> {
        &self.in_flight
    }
}

#[cfg(test)]
mod tests;
