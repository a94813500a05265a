//! The ledger: one set of counters the whole program shares, so that every datapoint that
//! entered is either delivered, dropped with a named reason, waiting for room, buffered, in
//! flight or spooled.
//!
//! Invariant (checked by the tests at quiescence): `received + recovered = delivered +
//! dropped (all reasons) + waiting_for_room + buffered + in_flight + spooled`, where
//! `recovered` counts the points found in the disk spool at start (written by an earlier run),
//! `waiting_for_room` the points a connection has decoded and waits to push into a full buffer
//! (`--buffer-policy block`), and `spooled` the points on disk not yet read back for delivery.
//! Moves between the last six are made by the component that owns the points, with
//! `Ordering::Relaxed` increments: a snapshot taken while points move may be off by the points
//! in motion, never at rest.
//!
//! Every counter moves only inside an event's `emit` ([`events`], a child of this module):
//! the mutators are `pub(in crate::accounting)`, so a count anywhere else does not compile.
//! The reads (`snapshot`, `requests_ok`, `last_error`, `last_success`) are public.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::settings::Protocol;
use crate::model::now_secs_f64;

pub mod events;
mod instruments;
mod reasons;
pub use instruments::{Instruments, StatusClass};
pub use reasons::{BadInput, DropReason, Listener};

/// Shared counters. Cheap to update from any task; read with [`Ledger::snapshot`].
#[derive(Debug, Default)]
pub struct Ledger {
    received: [AtomicU64; 3],
    delivered: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    buffered_points: AtomicU64,
    buffered_bytes: AtomicU64,
    in_flight_points: AtomicU64,
    spooled_points: AtomicU64,
    recovered: AtomicU64,
    spool_written: AtomicU64,
    spool_read: AtomicU64,
    bad_input: [AtomicU64; BadInput::ALL.len()],
    requests_ok: AtomicU64,
    requests_failed: AtomicU64,
    retries: AtomicU64,
    connections_accepted: AtomicU64,
    connections_refused: AtomicU64,
    connections_open: AtomicU64,
    connections_idle_closed: AtomicU64,
    requests_in_flight: AtomicU64,
    /// Decoded by a connection, waiting for room in the buffer (policy `block`).
    waiting_points: AtomicU64,
    /// Connections closed to make room for a new one at `max_connections`.
    connections_idle_evicted: AtomicU64,
    /// Connections closed because incomplete frames over all connections held more than
    /// `partial_frame_bytes`.
    connections_partial_frame_closed: AtomicU64,
    /// Bytes of incomplete frames and lines held by all connections now, and the bound.
    partial_frame_bytes: AtomicU64,
    partial_frame_limit: AtomicU64,
    /// Unix milliseconds of the last request Blueflood stored (0 = never).
    last_success_ms: AtomicU64,
    /// The last delivery failure (redacted: status and transport errors only) and when.
    last_error: Mutex<Option<(String, f64)>>,
    accept_errors: [AtomicU64; Listener::ALL.len()],
    admin_connections_accepted: AtomicU64,
    admin_connections_refused: AtomicU64,
    admin_connections_timed_out: AtomicU64,
    admin_connections_open: AtomicU64,
    /// Distributions (request durations, batch sizes), recorded by the same events.
    instruments: Instruments,
}

fn protocol_index(p: Protocol) -> usize {
    match p {
        Protocol::Pickle => 0,
        Protocol::LineTcp => 1,
        Protocol::LineUdp => 2,
    }
}

impl Ledger {
    pub(in crate::accounting) fn received(&self, protocol: Protocol, n: u64) {
        self.received[protocol_index(protocol)].fetch_add(n, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn dropped(&self, reason: DropReason, n: u64) {
        self.dropped[reason.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn bad_input(&self, what: BadInput) {
        self.bad_input[what.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Points entered the buffer.
    pub(in crate::accounting) fn buffered(&self, points: u64, bytes: u64) {
        self.buffered_points.fetch_add(points, Ordering::Relaxed);
        self.buffered_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Points left the buffer for a batch that is now in flight.
    pub(in crate::accounting) fn buffer_to_in_flight(&self, points: u64, bytes: u64) {
        self.in_flight_points.fetch_add(points, Ordering::Relaxed);
        self.buffered_points.fetch_sub(points, Ordering::Relaxed);
        self.buffered_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// In-flight points were stored by Blueflood.
    pub(in crate::accounting) fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
        self.in_flight_points.fetch_sub(n, Ordering::Relaxed);
    }

    /// In-flight points were dropped (rejected, too large, shutdown).
    pub(in crate::accounting) fn in_flight_dropped(&self, reason: DropReason, n: u64) {
        self.dropped(reason, n);
        self.in_flight_points.fetch_sub(n, Ordering::Relaxed);
    }

    /// Buffered points were dropped without being sent (shutdown deadline).
    pub(in crate::accounting) fn buffer_dropped(
        &self,
        reason: DropReason,
        points: u64,
        bytes: u64,
    ) {
        self.dropped(reason, points);
        self.buffered_points.fetch_sub(points, Ordering::Relaxed);
        self.buffered_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// In-flight points were written to the spool.
    pub(in crate::accounting) fn in_flight_to_spool(&self, n: u64) {
        self.spool_written.fetch_add(n, Ordering::Relaxed);
        self.spooled_points.fetch_add(n, Ordering::Relaxed);
        self.in_flight_points.fetch_sub(n, Ordering::Relaxed);
    }

    /// Points read back from the spool for delivery.
    pub(in crate::accounting) fn spool_to_in_flight(&self, n: u64) {
        self.spool_read.fetch_add(n, Ordering::Relaxed);
        self.in_flight_points.fetch_add(n, Ordering::Relaxed);
        self.spooled_points.fetch_sub(n, Ordering::Relaxed);
    }

    /// Points read back from the spool whose delivery was cut short (shutdown deadline): they
    /// were never acknowledged, so they are still on disk and the next start replays them.
    pub(in crate::accounting) fn in_flight_back_to_spool(&self, n: u64) {
        self.spooled_points.fetch_add(n, Ordering::Relaxed);
        self.in_flight_points.fetch_sub(n, Ordering::Relaxed);
    }

    /// Points found in the spool at start (written by an earlier run).
    pub(in crate::accounting) fn recovered(&self, n: u64) {
        self.recovered.fetch_add(n, Ordering::Relaxed);
        self.spooled_points.fetch_add(n, Ordering::Relaxed);
    }

    /// Spooled points were lost (evicted, found corrupt, or their segment unreadable).
    pub(in crate::accounting) fn spool_dropped(&self, reason: DropReason, n: u64) {
        self.dropped(reason, n);
        self.spooled_points.fetch_sub(n, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn request_ok(&self) {
        self.requests_ok.fetch_add(1, Ordering::Relaxed);
        self.last_success_ms
            .store((now_secs_f64() * 1000.0) as u64, Ordering::Relaxed);
    }

    /// Requests Blueflood stored so far (whole or in part): a bisection reads it to tell one
    /// bad point from a Blueflood that refuses everything.
    pub fn requests_ok(&self) -> u64 {
        self.requests_ok.load(Ordering::Relaxed)
    }

    /// A request failed; `error` says why (never a secret: a status or a transport error).
    pub(in crate::accounting) fn request_failed(&self, error: &str) {
        self.requests_failed.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some((error.to_string(), now_secs_f64()));
    }

    /// No request could be sent (no token from the identity service); `cause` says why (an
    /// `AuthError` message, never a secret). Shown as the last error, not counted as a request.
    pub(in crate::accounting) fn delivery_blocked(&self, cause: &str) {
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some((cause.to_string(), now_secs_f64()));
    }

    pub(in crate::accounting) fn request_started(&self) {
        self.requests_in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn request_finished(&self) {
        self.requests_in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Unix seconds of the last request Blueflood stored, if any.
    pub fn last_success(&self) -> Option<f64> {
        match self.last_success_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms as f64 / 1000.0),
        }
    }

    /// The last delivery failure (a failed request, or no token to send one with) and its Unix
    /// time, if any.
    pub fn last_error(&self) -> Option<(String, f64)> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(in crate::accounting) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn connection_accepted(&self) {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn connection_idle_closed(&self) {
        self.connections_idle_closed.fetch_add(1, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn connection_idle_evicted(&self) {
        self.connections_idle_evicted
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn connection_partial_frame_closed(&self) {
        self.connections_partial_frame_closed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Decoded points a connection could not push yet: it waits for room in the buffer.
    pub(in crate::accounting) fn waiting_for_room(&self, n: u64) {
        self.waiting_points.fetch_add(n, Ordering::Relaxed);
    }

    /// Points that waited for room entered the buffer.
    pub(in crate::accounting) fn waiting_to_buffered(&self, points: u64, bytes: u64) {
        self.buffered(points, bytes);
        self.waiting_points.fetch_sub(points, Ordering::Relaxed);
    }

    /// Points that waited for room stopped waiting without entering the buffer: the caller
    /// counts them dropped (the buffer closed at the shutdown deadline).
    pub(in crate::accounting) fn waiting_released(&self, n: u64) {
        self.waiting_points.fetch_sub(n, Ordering::Relaxed);
    }

    /// The bound on bytes held in incomplete frames (`partial_frame_bytes`), for `/status`.
    pub(in crate::accounting) fn set_partial_frame_limit(&self, bytes: u64) {
        self.partial_frame_limit.store(bytes, Ordering::Relaxed);
    }

    /// A connection now holds `add` more and `sub` fewer bytes of incomplete input; returns
    /// the total held by all connections after the change.
    pub(in crate::accounting) fn partial_frame_held(&self, add: u64, sub: u64) -> u64 {
        if add >= sub {
            self.partial_frame_bytes
                .fetch_add(add - sub, Ordering::Relaxed)
                .saturating_add(add - sub)
        } else {
            self.partial_frame_bytes
                .fetch_sub(sub - add, Ordering::Relaxed)
                .saturating_sub(sub - add)
        }
    }

    pub(in crate::accounting) fn accept_failed(&self, listener: Listener) {
        self.accept_errors[listener.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn admin_connection_accepted(&self) {
        self.admin_connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        self.admin_connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn admin_connection_closed(&self) {
        self.admin_connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn admin_connection_refused(&self) {
        self.admin_connections_refused
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(in crate::accounting) fn admin_connection_timed_out(&self) {
        self.admin_connections_timed_out
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn instruments(&self) -> &Instruments {
        &self.instruments
    }

    pub fn snapshot(&self) -> LedgerSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LedgerSnapshot {
            received_pickle: load(&self.received[0]),
            received_line_tcp: load(&self.received[1]),
            received_line_udp: load(&self.received[2]),
            delivered: load(&self.delivered),
            dropped: DropReason::ALL.map(|r| (r, load(&self.dropped[r.index()]))),
            buffered_points: load(&self.buffered_points),
            buffered_bytes: load(&self.buffered_bytes),
            in_flight_points: load(&self.in_flight_points),
            spooled_points: load(&self.spooled_points),
            recovered: load(&self.recovered),
            spool_written: load(&self.spool_written),
            spool_read: load(&self.spool_read),
            bad_input: BadInput::ALL.map(|b| (b, load(&self.bad_input[b.index()]))),
            requests_ok: load(&self.requests_ok),
            requests_failed: load(&self.requests_failed),
            retries: load(&self.retries),
            connections_accepted: load(&self.connections_accepted),
            connections_refused: load(&self.connections_refused),
            connections_open: load(&self.connections_open),
            connections_idle_closed: load(&self.connections_idle_closed),
            requests_in_flight: load(&self.requests_in_flight),
            waiting_points: load(&self.waiting_points),
            connections_idle_evicted: load(&self.connections_idle_evicted),
            connections_partial_frame_closed: load(&self.connections_partial_frame_closed),
            partial_frame_bytes: load(&self.partial_frame_bytes),
            partial_frame_limit: load(&self.partial_frame_limit),
            accept_errors: Listener::ALL.map(|l| (l, load(&self.accept_errors[l.index()]))),
            admin_connections_accepted: load(&self.admin_connections_accepted),
            admin_connections_refused: load(&self.admin_connections_refused),
            admin_connections_timed_out: load(&self.admin_connections_timed_out),
            admin_connections_open: load(&self.admin_connections_open),
        }
    }
}

/// A copy of every counter at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSnapshot {
    pub received_pickle: u64,
    pub received_line_tcp: u64,
    pub received_line_udp: u64,
    pub delivered: u64,
    pub dropped: [(DropReason, u64); DropReason::ALL.len()],
    pub buffered_points: u64,
    pub buffered_bytes: u64,
    pub in_flight_points: u64,
    /// On disk in the spool, not yet read back.
    pub spooled_points: u64,
    /// Found in the spool at start.
    pub recovered: u64,
    /// Written to the spool (total).
    pub spool_written: u64,
    /// Read back from the spool for delivery (total).
    pub spool_read: u64,
    pub bad_input: [(BadInput, u64); BadInput::ALL.len()],
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub retries: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    pub connections_open: u64,
    pub connections_idle_closed: u64,
    pub requests_in_flight: u64,
    /// Decoded by a connection, waiting for room in the buffer (policy `block`).
    pub waiting_points: u64,
    pub connections_idle_evicted: u64,
    pub connections_partial_frame_closed: u64,
    /// Bytes held in incomplete frames and lines now, and their bound.
    pub partial_frame_bytes: u64,
    pub partial_frame_limit: u64,
    /// Failed `accept` calls, per listener.
    pub accept_errors: [(Listener, u64); Listener::ALL.len()],
    pub admin_connections_accepted: u64,
    /// Over `admin_max_connections`: answered 503 and closed.
    pub admin_connections_refused: u64,
    /// Closed for not sending a whole request header in `admin_header_timeout`, or for not
    /// taking an answer.
    pub admin_connections_timed_out: u64,
    pub admin_connections_open: u64,
}

impl LedgerSnapshot {
    pub fn received(&self) -> u64 {
        self.received_pickle + self.received_line_tcp + self.received_line_udp
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }

    pub fn accept_errors(&self, listener: Listener) -> u64 {
        self.accept_errors
            .iter()
            .find(|(l, _)| *l == listener)
            .map_or(0, |(_, n)| *n)
    }

    pub fn bad_input(&self, what: BadInput) -> u64 {
        self.bad_input
            .iter()
            .find(|(b, _)| *b == what)
            .map_or(0, |(_, n)| *n)
    }

    /// `received + recovered = delivered + dropped + waiting_for_room + buffered +
    /// in_flight + spooled`.
    pub fn balanced(&self) -> bool {
        self.received() + self.recovered
            == self.delivered
                + self.dropped_total()
                + self.waiting_points
                + self.buffered_points
                + self.in_flight_points
                + self.spooled_points
    }
}
