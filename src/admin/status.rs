//! The `/status` document: buffer depth, pending depth (`/buffer`'s document), delivery
//! state, the whole ledger, auth state and version, as one JSON object whose schema the README
//! documents.

use std::collections::BTreeMap;

use serde::Serialize;

use super::AdminState;
use crate::accounting::Listener;
use crate::auth::AuthStatus;
use crate::health::Phase;

#[derive(Debug, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub uptime_seconds: f64,
    pub phase: Phase,
    pub ready: bool,
    pub not_ready_reason: Option<String>,
    pub buffer: BufferStatus,
    /// Everything received and not yet settled, wherever it waits: the `/buffer` document.
    pub pending: super::pending::PendingDoc,
    /// `null` when no spool is configured.
    pub spool: Option<SpoolStatusDoc>,
    pub delivery: DeliveryStatus,
    pub ledger: LedgerStatus,
    pub connections: ConnectionStatus,
    pub auth: AuthStatus,
    pub admin: AdminStatus,
}

#[derive(Debug, Serialize)]
pub struct BufferStatus {
    pub datapoints: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub fill_ratio: f64,
    pub oldest_age_seconds: Option<f64>,
    pub policy: &'static str,
}

#[derive(Debug, Serialize)]
pub struct SpoolStatusDoc {
    pub dir: String,
    /// False after a disk error, until the spool works again (data stays in memory meanwhile).
    pub available: bool,
    /// Blueflood is failing: new batches go to the spool instead of the wire.
    pub spooling: bool,
    pub datapoints: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub segments: usize,
    pub oldest_age_seconds: Option<f64>,
    pub full_policy: &'static str,
    /// Datapoints found on disk at start, and how many of them have been read back so far.
    pub replay_total: u64,
    pub replay_done: u64,
    pub written_total: u64,
    pub read_total: u64,
    pub corrupt_records: u64,
    pub corrupt_bytes: u64,
    pub evicted_segments: u64,
    pub full_refusals: u64,
    pub write_errors: u64,
    /// False while the directory cannot be written: what it holds is still replayed.
    pub writable: bool,
    /// Segments that could not be read back (their datapoints counted `spool_lost`, or, at
    /// start, never counted).
    pub lost_segments: u64,
}

#[derive(Debug, Serialize)]
pub struct DeliveryStatus {
    pub in_flight_requests: u64,
    pub in_flight_datapoints: u64,
    pub last_success_unix_seconds: Option<f64>,
    pub last_error: Option<String>,
    pub last_error_unix_seconds: Option<f64>,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub retries: u64,
}

#[derive(Debug, Serialize)]
pub struct LedgerStatus {
    pub received: BTreeMap<&'static str, u64>,
    pub received_total: u64,
    pub delivered: u64,
    pub dropped: BTreeMap<&'static str, u64>,
    pub dropped_total: u64,
    /// Decoded by a connection that waits for room in the buffer (`--buffer-policy block`).
    pub waiting_for_room: u64,
    pub buffered: u64,
    pub in_flight: u64,
    pub spooled: u64,
    /// Datapoints found in the spool at start (an earlier run's).
    pub recovered: u64,
    pub bad_input: BTreeMap<&'static str, u64>,
    /// `received + recovered = delivered + dropped_total + waiting_for_room + buffered +
    /// in_flight + spooled` (while nothing moves).
    pub balanced: bool,
}

#[derive(Debug, Serialize)]
pub struct ConnectionStatus {
    pub open: u64,
    pub accepted: u64,
    pub refused: u64,
    pub idle_closed: u64,
    /// Closed to make room for a new connection at the limit (the one idle longest).
    pub idle_evicted: u64,
    /// Bytes of incomplete frames and lines held by all connections, and their bound.
    pub partial_frame_bytes: u64,
    pub partial_frame_limit_bytes: u64,
    /// Closed because incomplete frames went over the bound and they held the most.
    pub partial_frame_closed: u64,
    /// Failed `accept` calls of the carbon listeners (out of file descriptors, mostly).
    pub accept_errors: u64,
}

/// The admin server's own connections and bounds.
#[derive(Debug, Serialize)]
pub struct AdminStatus {
    pub max_connections: usize,
    pub header_timeout_seconds: f64,
    pub connections: AdminConnectionStatus,
}

#[derive(Debug, Serialize)]
pub struct AdminConnectionStatus {
    pub open: u64,
    pub accepted: u64,
    /// Over `admin_max_connections`: answered 503 and closed.
    pub refused: u64,
    /// Closed for sending no whole request header in time (or taking no answer).
    pub timed_out: u64,
    pub accept_errors: u64,
}

impl Status {
    pub fn gather(s: &AdminState) -> Status {
        let l = s.ledger.snapshot();
        let auth = s.auth.status();
        let max = s.buffer.max_bytes() as u64;
        let fill = l.buffered_bytes as f64 / max.max(1) as f64;
        let readiness = s.health.readiness(fill, auth.credentials_loaded);
        let (last_error, last_error_at) = match s.ledger.last_error() {
            Some((msg, at)) => (Some(msg), Some(at)),
            None => (None, None),
        };
        Status {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: s.health.started.elapsed().as_secs_f64(),
            phase: s.health.phase(),
            ready: readiness.is_ok(),
            not_ready_reason: readiness.err().map(|r| r.reason()),
            buffer: BufferStatus {
                datapoints: l.buffered_points,
                bytes: l.buffered_bytes,
                max_bytes: max,
                fill_ratio: fill,
                oldest_age_seconds: s.buffer.oldest().map(|t| t.elapsed().as_secs_f64()),
                policy: match s.buffer_policy {
                    crate::config::settings::BufferPolicy::DropNewest => "drop_newest",
                    crate::config::settings::BufferPolicy::Block => "block",
                },
            },
            pending: super::pending::PendingDoc::gather(s, &l),
            spool: s.spill.spool().map(|spool| {
                let st = spool.status();
                SpoolStatusDoc {
                    dir: st.dir.display().to_string(),
                    available: st.available,
                    spooling: s.spill.blueflood_failing(),
                    datapoints: l.spooled_points,
                    bytes: st.bytes,
                    max_bytes: st.max_bytes,
                    segments: st.segments,
                    oldest_age_seconds: st.oldest_age_seconds(),
                    full_policy: match spool.settings().full_policy {
                        crate::config::settings::SpoolFullPolicy::DropOldest => "drop_oldest",
                        crate::config::settings::SpoolFullPolicy::Block => "block",
                    },
                    replay_total: st.recovered_points,
                    replay_done: st.replayed_points,
                    written_total: l.spool_written,
                    read_total: l.spool_read,
                    corrupt_records: st.corrupt_records,
                    corrupt_bytes: st.corrupt_bytes,
                    evicted_segments: st.evicted_segments,
                    full_refusals: st.full_refusals,
                    write_errors: st.write_errors,
                    writable: st.writable,
                    lost_segments: st.lost_segments,
                }
            }),
            delivery: DeliveryStatus {
                in_flight_requests: l.requests_in_flight,
                in_flight_datapoints: l.in_flight_points,
                last_success_unix_seconds: s.ledger.last_success(),
                last_error,
                last_error_unix_seconds: last_error_at,
                requests_ok: l.requests_ok,
                requests_failed: l.requests_failed,
                retries: l.retries,
            },
            ledger: LedgerStatus {
                received: BTreeMap::from([
                    ("pickle", l.received_pickle),
                    ("line_tcp", l.received_line_tcp),
                    ("line_udp", l.received_line_udp),
                ]),
                received_total: l.received(),
                delivered: l.delivered,
                dropped: l.dropped.iter().map(|(r, n)| (r.label(), *n)).collect(),
                dropped_total: l.dropped_total(),
                waiting_for_room: l.waiting_points,
                buffered: l.buffered_points,
                in_flight: l.in_flight_points,
                spooled: l.spooled_points,
                recovered: l.recovered,
                bad_input: l.bad_input.iter().map(|(b, n)| (b.label(), *n)).collect(),
                balanced: l.balanced(),
            },
            connections: ConnectionStatus {
                open: l.connections_open,
                accepted: l.connections_accepted,
                refused: l.connections_refused,
                idle_closed: l.connections_idle_closed,
                idle_evicted: l.connections_idle_evicted,
                partial_frame_bytes: l.partial_frame_bytes,
                partial_frame_limit_bytes: l.partial_frame_limit,
                partial_frame_closed: l.connections_partial_frame_closed,
                accept_errors: l.accept_errors(Listener::Pickle)
                    + l.accept_errors(Listener::LineTcp),
            },
            auth,
            admin: AdminStatus {
                max_connections: s.max_connections,
                header_timeout_seconds: s.header_timeout.as_secs_f64(),
                connections: AdminConnectionStatus {
                    open: l.admin_connections_open,
                    accepted: l.admin_connections_accepted,
                    refused: l.admin_connections_refused,
                    timed_out: l.admin_connections_timed_out,
                    accept_errors: l.accept_errors(Listener::Admin),
                },
            },
        }
    }
}
