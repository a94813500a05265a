//! The admin server's connection events, and a failed `accept` on any listener.

use std::net::SocketAddr;
use std::time::Duration;

use super::{InternalEvent, LogLimits};
use crate::accounting::{Ledger, Listener};

/// A listener's `accept` failed (out of file descriptors, mostly): it backs off for `retry_in`
/// and accepts again; the connection waits in the kernel's queue meanwhile.
pub struct AcceptFailed<'a> {
    pub listener: Listener,
    pub error: &'a std::io::Error,
    pub retry_in: Duration,
}

impl InternalEvent for AcceptFailed<'_> {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
        ledger.accept_failed(self.listener);
        if let Some(suppressed) = limits.accept_failed.check() {
            tracing::warn!(
                listener = self.listener.label(),
                error = %self.error,
                retry_in_ms = self.retry_in.as_millis() as u64,
                suppressed,
                "accept failed"
            );
        }
    }
}

/// An admin connection was admitted (and is now open).
pub struct AdminConnectionAccepted;

impl InternalEvent for AdminConnectionAccepted {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.admin_connection_accepted();
    }
}

/// An admitted admin connection ended, for whatever reason.
pub struct AdminConnectionClosed;

impl InternalEvent for AdminConnectionClosed {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.admin_connection_closed();
    }
}

/// An admin connection refused because `admin_max_connections` were open.
pub struct AdminConnectionRefused {
    pub peer: SocketAddr,
    pub limit: usize,
}

impl InternalEvent for AdminConnectionRefused {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
        ledger.admin_connection_refused();
        if let Some(suppressed) = limits.admin_connection_refused.check() {
            tracing::warn!(
                peer = %self.peer,
                limit = self.limit,
                suppressed,
                "admin connection refused: admin_max_connections reached"
            );
        }
    }
}

/// An admin connection closed by the server: no whole request header in time (silent, slow,
/// or idle after an answer), or an answer it did not take.
pub struct AdminConnectionTimedOut<'a> {
    pub peer: SocketAddr,
    pub why: &'a str,
}

impl InternalEvent for AdminConnectionTimedOut<'_> {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
        ledger.admin_connection_timed_out();
        if let Some(suppressed) = limits.admin_connection_timed_out.check() {
            tracing::info!(
                peer = %self.peer,
                why = self.why,
                suppressed,
                "admin connection closed"
            );
        }
    }
}
