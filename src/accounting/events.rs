//! Internal events (vector's `internal_events` pattern): each struct here is one thing that
//! happens to the forwarder, and its [`InternalEvent::emit`] is the only code that moves a
//! [`Ledger`] counter: the mutators are visible to this module and no further, so counting a
//! point anywhere else does not compile. An `emit` logs what needs explaining; events that can
//! happen once per datapoint or per frame log through a [`RateLimit`] of their own kind and
//! reason, saying how many were suppressed, and the hot-path ones (per frame, per push) log
//! nothing and only add.
//!
//! Events live by the component that emits them: `ingest.rs`, `buffer.rs`, `spool.rs`,
//! `admin.rs` (and failed accepts), `delivery.rs`, `auth.rs`. They take plain figures, never a
//! component's own types, so this module imports nothing above `accounting` (see
//! `tests/it/layers.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{BadInput, DropReason, Ledger};

mod admin;
mod auth;
mod buffer;
mod delivery;
mod ingest;
mod spool;

pub use admin::{
    AcceptFailed, AdminConnectionAccepted, AdminConnectionClosed, AdminConnectionRefused,
    AdminConnectionTimedOut,
};
pub use auth::KeystoneRedirected;
pub use buffer::{
    BufferDropped, BufferTaken, PointsBuffered, PointsWaiting, WaitingBuffered, WaitingReleased,
};
pub use delivery::{
    BackToSpool, DeliveryBlocked, DeliveryRetry, InFlightDropped, PointsDelivered, Refusal,
    RequestFailed, RequestFinished, RequestStarted, RequestStored, RetryAfterCapped,
};
pub use ingest::{
    BadInputReceived, ConnectionAccepted, ConnectionClosed, ConnectionEvicted, ConnectionIdle,
    ConnectionOverBudget, ConnectionRefused, PartialFrameHeld, PartialFrameLimitSet, PointsDropped,
    PointsReceived,
};
pub use spool::{
    SpoolCorruptFound, SpoolEvicted, SpoolFullRefused, SpoolRead, SpoolRecovered, SpoolSegmentLost,
    SpoolWriteFailed, SpoolWritten,
};

/// One thing that happened, counted and (when worth a line) logged in one step.
///
/// One shape for every event: the ledger and the log limits are two arguments rather than one
/// bundle because every emitter already holds both (as `Arc`s shared with the rest of the
/// program), so no component needs a new type to emit, and an event that only counts ignores
/// the limits at no cost once inlined.
pub trait InternalEvent {
    /// What the caller learns from counting: `()`, except for a gauge whose new total the
    /// caller acts on ([`PartialFrameHeld`]), read in the same atomic step as the change.
    type Output;

    fn emit(self, ledger: &Ledger, logs: &LogLimits) -> Self::Output;
}

/// Lets one log line through per period; counts the rest.
#[derive(Debug)]
pub struct RateLimit {
    start: Instant,
    period_ms: u64,
    /// Milliseconds since `start` when the next line may be logged.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    pub fn new(period: Duration) -> Self {
        Self {
            start: Instant::now(),
            period_ms: period.as_millis().max(1) as u64,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were suppressed before it.
    pub fn check(&self) -> Option<u64> {
        let now = self.start.elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.period_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// One rate limiter per kind of noisy event (and, for drops and bad input, per reason),
/// shared by every task: a flood of one kind never hides the first line of another.
#[derive(Debug)]
pub struct LogLimits {
    /// `PointsDropped`, per [`DropReason`].
    points_dropped: [RateLimit; DropReason::ALL.len()],
    /// `BadInputReceived`, per [`BadInput`].
    bad_input: [RateLimit; BadInput::ALL.len()],
    connection_refused: RateLimit,
    connection_idle: RateLimit,
    /// `InFlightDropped`, per [`DropReason`].
    in_flight_dropped: [RateLimit; DropReason::ALL.len()],
    delivery_retry: RateLimit,
    spool_write_failed: RateLimit,
    spool_corrupt: RateLimit,
    spool_evicted: RateLimit,
    spool_full_refused: RateLimit,
    spool_lost: RateLimit,
    accept_failed: RateLimit,
    admin_connection_refused: RateLimit,
    admin_connection_timed_out: RateLimit,
    /// `DeliveryRetry` with a [`Refusal`], per kind.
    delivery_refused: [RateLimit; Refusal::ALL.len()],
    retry_after_capped: RateLimit,
    connection_evicted: RateLimit,
    partial_frame_closed: RateLimit,
    keystone_redirected: RateLimit,
}

impl Default for LogLimits {
    fn default() -> Self {
        let every = |p| RateLimit::new(Duration::from_secs(p));
        Self {
            points_dropped: std::array::from_fn(|_| every(10)),
            bad_input: std::array::from_fn(|_| every(10)),
            connection_refused: every(10),
            connection_idle: every(10),
            in_flight_dropped: std::array::from_fn(|_| every(10)),
            delivery_retry: every(5),
            spool_write_failed: every(10),
            spool_corrupt: every(10),
            spool_evicted: every(10),
            spool_full_refused: every(10),
            spool_lost: every(10),
            accept_failed: every(10),
            admin_connection_refused: every(10),
            admin_connection_timed_out: every(10),
            delivery_refused: std::array::from_fn(|_| every(10)),
            retry_after_capped: every(10),
            connection_evicted: every(10),
            partial_frame_closed: every(10),
            keystone_redirected: every(10),
        }
    }
}

#[cfg(test)]
mod tests;
