//! The carbon listeners' events: points received or dropped before the buffer, input refused
//! as a whole, and the life of a TCP connection (accepted, refused, closed idle, evicted, over
//! the `partial_frame_bytes` budget) with the bytes it holds in incomplete frames.

use std::net::SocketAddr;
use std::time::Duration;

use super::{InternalEvent, LogLimits};
use crate::accounting::{BadInput, DropReason, Ledger};
use crate::config::settings::Protocol;

/// Datapoints decoded from one read (a frame, a batch of lines, a datagram). Hot path: only
/// adds.
pub struct PointsReceived {
    pub protocol: Protocol,
    pub count: u64,
}

impl InternalEvent for PointsReceived {
    type Output = ();

    #[inline]
    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.received(self.protocol, self.count);
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

impl InternalEvent for PointsDropped<'_> {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
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

impl InternalEvent for BadInputReceived<'_> {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
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

/// A TCP connection was admitted (and is now open).
pub struct ConnectionAccepted;

impl InternalEvent for ConnectionAccepted {
    type Output = ();

    #[inline]
    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.connection_accepted();
    }
}

/// An admitted TCP connection ended, for whatever reason.
pub struct ConnectionClosed;

impl InternalEvent for ConnectionClosed {
    type Output = ();

    #[inline]
    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.connection_closed();
    }
}

/// A connection refused because `max_connections` were open.
pub struct ConnectionRefused {
    pub peer: SocketAddr,
    pub limit: usize,
}

impl InternalEvent for ConnectionRefused {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
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

impl InternalEvent for ConnectionIdle {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
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

impl InternalEvent for ConnectionEvicted {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
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

impl InternalEvent for ConnectionOverBudget {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
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

/// The `partial_frame_bytes` bound, set once at start so `/status` can show it.
pub struct PartialFrameLimitSet {
    pub bytes: u64,
}

impl InternalEvent for PartialFrameLimitSet {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.set_partial_frame_limit(self.bytes);
    }
}

/// A connection now holds `add` more and `sub` fewer bytes of incomplete input. Yields the
/// total all connections hold after the change, which decides whether the budget is enforced.
/// Hot path (per read): only adds.
pub struct PartialFrameHeld {
    pub add: u64,
    pub sub: u64,
}

impl InternalEvent for PartialFrameHeld {
    type Output = u64;

    #[inline]
    fn emit(self, ledger: &Ledger, _: &LogLimits) -> u64 {
        ledger.partial_frame_held(self.add, self.sub)
    }
}
