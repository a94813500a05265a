//! Internal events: each struct here is one thing that happens to the forwarder, and its
//! `emit` both counts it in the [`Ledger`] and logs it, so a counter never moves without a log
//! line to explain it (vector's `internal_events` pattern). Events that can happen once per
//! datapoint or per frame log through a [`RateLimit`] of their own kind and reason, saying how
//! many were suppressed. The spool's events are in `events/spool.rs`, the admin server's and
//! failed accepts in `events/admin.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::accounting::{BadInput, DropReason, Ledger};
use crate::config::settings::Protocol;

mod admin;
mod spool;

pub use admin::{AcceptFailed, AdminConnectionRefused, AdminConnectionTimedOut};
pub use spool::{
    SpoolCorruptFound, SpoolEvicted, SpoolFullRefused, SpoolRecovered, SpoolSegmentLost,
    SpoolWriteFailed,
};

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
        }
    }
}

/// Datapoints that were received and dropped before reaching the buffer (bad datapoint, NaN,
/// outside the window, buffer full).
pub struct PointsDropped<'a> {
    pub peer: SocketAddr,
    pub protocol: Protocol,
    pub reason: DropReason,
    pub count: u64,
    /// What was wrong, for the log (never a datapoint's value: only its shape).
    pub detail: &'a str,
}

impl PointsDropped<'_> {
    pub fn emit(&self, ledger: &Ledger, limits: &LogLimits) {
        ledger.dropped(self.reason, self.count);
        if let Some(suppressed) = limits.points_dropped[self.reason as usize].check() {
            tracing::warn!(
                peer = %self.peer,
                protocol = self.protocol.label(),
                reason = self.reason.label(),
                count = self.count,
                detail = self.detail,
                suppressed,
                "dropped datapoints"
            );
        }
    }
}

/// Input refused as a whole: a bad frame, an oversized line, a truncated stream.
pub struct BadInputReceived<'a> {
    pub peer: SocketAddr,
    pub protocol: Protocol,
    pub what: BadInput,
    pub detail: &'a str,
}

impl BadInputReceived<'_> {
    pub fn emit(&self, ledger: &Ledger, limits: &LogLimits) {
        ledger.bad_input(self.what);
        if let Some(suppressed) = limits.bad_input[self.what as usize].check() {
            tracing::warn!(
                peer = %self.peer,
                protocol = self.protocol.label(),
                reason = self.what.label(),
                detail = self.detail,
                suppressed,
                "bad input"
            );
        }
    }
}

/// A connection refused because `max_connections` were open.
pub struct ConnectionRefused {
    pub peer: SocketAddr,
    pub limit: usize,
}

impl ConnectionRefused {
    pub fn emit(&self, ledger: &Ledger, limits: &LogLimits) {
        ledger.connection_refused();
        if let Some(suppressed) = limits.connection_refused.check() {
            tracing::warn!(peer = %self.peer, limit = self.limit, suppressed, "connection refused: limit reached");
        }
    }
}

/// A connection closed because it completed no frame or line for `idle_timeout`.
pub struct ConnectionIdle {
    pub peer: SocketAddr,
    pub idle: Duration,
}

impl ConnectionIdle {
    pub fn emit(&self, ledger: &Ledger, limits: &LogLimits) {
        ledger.connection_idle_closed();
        if let Some(suppressed) = limits.connection_idle.check() {
            tracing::info!(
                peer = %self.peer,
                idle_s = self.idle.as_secs_f64(),
                suppressed,
                "closing connection: no complete frame or line within the idle timeout"
            );
        }
    }
}

/// A connection closed to make room for a new one at `max_connections`: of those not busy
/// pushing points, the one whose last complete frame or line is oldest.
pub struct ConnectionEvicted {
    pub peer: SocketAddr,
    pub idle: Duration,
    pub limit: usize,
}

impl ConnectionEvicted {
    pub fn emit(&self, ledger: &Ledger, limits: &LogLimits) {
        ledger.connection_idle_evicted();
        if let Some(suppressed) = limits.connection_evicted.check() {
            tracing::info!(
                peer = %self.peer,
                idle_s = self.idle.as_secs_f64(),
                limit = self.limit,
                suppressed,
                "closing the connection idle longest: connection limit reached and a new sender came"
            );
        }
    }
}

/// A connection closed because incomplete frames and lines over all connections held more
/// than `partial_frame_bytes`, and it held the most. What it had decoded is already buffered.
pub struct ConnectionOverBudget {
    pub peer: SocketAddr,
    pub held: u64,
    pub limit: u64,
}

impl ConnectionOverBudget {
    pub fn emit(&self, ledger: &Ledger, limits: &LogLimits) {
        ledger.connection_partial_frame_closed();
        if let Some(suppressed) = limits.partial_frame_closed.check() {
            tracing::warn!(
                peer = %self.peer,
                held_bytes = self.held,
                limit_bytes = self.limit,
                suppressed,
                "closing connection: incomplete frames over all connections above partial_frame_bytes, and it holds the most"
            );
        }
    }
}

/// Points that left the buffer and will never be delivered.
pub struct InFlightDropped<'a> {
    pub reason: DropReason,
    pub count: u64,
    pub detail: &'a str,
}

impl InFlightDropped<'_> {
    pub fn emit(&self, ledger: &Ledger, limits: &LogLimits) {
        if self.count == 0 {
            return;
        }
        ledger.in_flight_dropped(self.reason, self.count);
        if self.reason == DropReason::ShutdownTimeout {
            // Once per batch at shutdown: always worth a line.
            tracing::error!(
                reason = self.reason.label(),
                count = self.count,
                "datapoints lost at shutdown deadline"
            );
        } else if let Some(suppressed) = limits.in_flight_dropped[self.reason as usize].check() {
            tracing::warn!(
                reason = self.reason.label(),
                count = self.count,
                detail = self.detail,
                suppressed,
                "datapoints dropped"
            );
        }
    }
}

/// Why a retry is logged as an error rather than a warning: our configuration, or the server
/// in Blueflood's place, is wrong, and waiting alone will not fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 415, 404, 405, 501, another 4xx: our request or configuration.
    ClientError,
    /// A 3xx, never followed.
    Redirect,
    /// A 400 whose body is not Blueflood's, or an answer longer than Blueflood's could be.
    NotBlueflood,
    /// Blueflood's 400 naming no point for every request: bisection waits.
    RefusesEverything,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::ClientError,
        Refusal::Redirect,
        Refusal::NotBlueflood,
        Refusal::RefusesEverything,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::ClientError => "client_error",
            Refusal::Redirect => "redirect",
            Refusal::NotBlueflood => "not_blueflood",
            Refusal::RefusesEverything => "refuses_everything",
        }
    }
}

/// A request that will be retried.
pub struct DeliveryRetry<'a> {
    pub attempt: u32,
    pub delay: Duration,
    pub points: usize,
    pub cause: &'a str,
    /// Set when this is not a passing failure (logged as an error, rate-limited per kind).
    pub refusal: Option<Refusal>,
}

impl DeliveryRetry<'_> {
    pub fn emit(&self, ledger: &Ledger, limits: &LogLimits) {
        ledger.retry();
        let Some(refusal) = self.refusal else {
            if let Some(suppressed) = limits.delivery_retry.check() {
                tracing::warn!(
                    attempt = self.attempt,
                    retry_in_ms = self.delay.as_millis() as u64,
                    points = self.points,
                    cause = self.cause,
                    suppressed,
                    "delivery failed, will retry; data is kept"
                );
            }
            return;
        };
        let Some(suppressed) = limits.delivery_refused[refusal as usize].check() else {
            return;
        };
        // `cause` holds the server's text only through `redact::foreign_text`: escaped and short.
        tracing::error!(
            attempt = self.attempt,
            retry_in_ms = self.delay.as_millis() as u64,
            points = self.points,
            kind = refusal.label(),
            cause = self.cause,
            suppressed,
            "Blueflood refuses our requests (or something in its place answers): check the configuration; data is kept"
        );
    }
}

/// A server asked (`Retry-After`) for a longer wait than `retry_after_max`: the wait is cut.
pub struct RetryAfterCapped {
    pub asked: Duration,
    pub cap: Duration,
}

impl RetryAfterCapped {
    pub fn emit(&self, limits: &LogLimits) {
        if let Some(suppressed) = limits.retry_after_capped.check() {
            tracing::warn!(
                asked_s = self.asked.as_secs(),
                waiting_s = self.cap.as_secs_f64(),
                suppressed,
                "Retry-After asks for a longer wait than retry_after_max: waiting retry_after_max"
            );
        }
    }
}

/// Keystone answered a login with a redirect, which is never followed (the request would
/// carry the key to wherever `Location` points). Loud, as a misconfiguration is: usually
/// `auth_url` says http:// where only https:// is served, or names an old path. Counted as an
/// auth failure by the provider; `limit` is the provider's own.
pub struct KeystoneRedirected<'a> {
    pub status: u16,
    /// Already escaped and bounded by the caller.
    pub location: &'a str,
}

impl KeystoneRedirected<'_> {
    pub fn emit(&self, limit: &RateLimit) {
        if let Some(suppressed) = limit.check() {
            tracing::error!(
                status = self.status,
                location = self.location,
                suppressed,
                "Keystone answered with a redirect, which is not followed: set auth_url to the final URL; data is kept"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_reason_has_its_own_limit() {
        let l = LogLimits::default();
        for r in DropReason::ALL {
            assert_eq!(
                l.points_dropped[r as usize].check(),
                Some(0),
                "{}",
                r.label()
            );
            assert_eq!(
                l.in_flight_dropped[r as usize].check(),
                Some(0),
                "{}",
                r.label()
            );
        }
        for b in BadInput::ALL {
            assert_eq!(l.bad_input[b as usize].check(), Some(0), "{}", b.label());
        }
        for r in Refusal::ALL {
            assert_eq!(
                l.delivery_refused[r as usize].check(),
                Some(0),
                "{}",
                r.label()
            );
        }
        for limit in [
            &l.connection_refused,
            &l.connection_idle,
            &l.delivery_retry,
            &l.spool_write_failed,
            &l.spool_corrupt,
            &l.spool_evicted,
            &l.spool_full_refused,
            &l.spool_lost,
            &l.accept_failed,
            &l.admin_connection_refused,
            &l.admin_connection_timed_out,
            &l.retry_after_capped,
            &l.connection_evicted,
            &l.partial_frame_closed,
        ] {
            assert_eq!(limit.check(), Some(0));
        }
        assert_eq!(l.points_dropped[DropReason::Nan as usize].check(), None);
    }

    #[test]
    fn rate_limit_lets_one_through_per_period_and_counts_the_rest() {
        let rl = RateLimit::new(Duration::from_secs(3600));
        assert_eq!(rl.check(), Some(0));
        assert_eq!(rl.check(), None);
        assert_eq!(rl.check(), None);
        let rl = RateLimit::new(Duration::from_millis(1));
        assert_eq!(rl.check(), Some(0));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(rl.check(), Some(0));
    }
}
