//! The buffer's events: points in, points waiting for room (`block`), points out to the
//! forwarder, points dropped at the shutdown deadline. Hot path (per push, per take): plain
//! structs whose `emit` only adds, logging nothing (the buffer's drops are logged by the
//! caller's `PointsDropped`, which knows the peer).

use super::{InternalEvent, LogLimits};
use crate::accounting::{DropReason, Ledger};

/// Points entered the buffer straight from a connection.
pub struct PointsBuffered {
    pub points: u64,
    pub bytes: u64,
}

impl InternalEvent for PointsBuffered {
    type Output = ();

    #[inline]
    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.buffered(self.points, self.bytes);
    }
}

/// Decoded points a connection could not push yet: it waits for room in the buffer.
pub struct PointsWaiting {
    pub points: u64,
}

impl InternalEvent for PointsWaiting {
    type Output = ();

    #[inline]
    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.waiting_for_room(self.points);
    }
}

/// Points that waited for room entered the buffer.
pub struct WaitingBuffered {
    pub points: u64,
    pub bytes: u64,
}

impl InternalEvent for WaitingBuffered {
    type Output = ();

    #[inline]
    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.waiting_to_buffered(self.points, self.bytes);
    }
}

/// Points that waited for room stopped waiting without entering the buffer (it closed at the
/// shutdown deadline): the pusher's caller counts them dropped.
pub struct WaitingReleased {
    pub points: u64,
}

impl InternalEvent for WaitingReleased {
    type Output = ();

    #[inline]
    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.waiting_released(self.points);
    }
}

/// Points left the buffer for a batch that is now in flight (or for the spool at the deadline).
pub struct BufferTaken {
    pub points: u64,
    pub bytes: u64,
}

impl InternalEvent for BufferTaken {
    type Output = ();

    #[inline]
    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.buffer_to_in_flight(self.points, self.bytes);
    }
}

/// Buffered points dropped without being sent (shutdown deadline). Logged by the shutdown
/// sequence, which reports every loss at once.
pub struct BufferDropped {
    pub reason: DropReason,
    pub points: u64,
    pub bytes: u64,
}

impl InternalEvent for BufferDropped {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.buffer_dropped(self.reason, self.points, self.bytes);
    }
}
