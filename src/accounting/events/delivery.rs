//! Delivery's events: requests started, finished, stored or failed; points delivered, dropped
//! in flight or handed back to the spool; retries and why they are loud; no request possible
//! (no token).

use std::time::Duration;

use super::{InternalEvent, LogLimits};
use crate::accounting::{DropReason, Ledger};

/// A request to Blueflood is about to be sent.
pub struct RequestStarted;

impl InternalEvent for RequestStarted {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.request_started();
    }
}

/// A request to Blueflood has its answer, or failed, or was abandoned at the deadline.
pub struct RequestFinished {
    /// The answer's status; `None` when the request failed without one.
    pub status: Option<u16>,
    pub seconds: f64,
    pub points: usize,
    /// The deadline abandoned it: not a request outcome, so not in the distributions.
    pub abandoned: bool,
}

impl InternalEvent for RequestFinished {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.request_finished();
        if !self.abandoned {
            ledger
                .instruments()
                .observe_request(self.status, self.seconds, self.points);
        }
    }
}

/// Blueflood stored a request (whole or in part).
pub struct RequestStored;

impl InternalEvent for RequestStored {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.request_ok();
    }
}

/// A request failed; `cause` says why (never a secret: a status or a transport error).
pub struct RequestFailed<'a> {
    pub cause: &'a str,
}

impl InternalEvent for RequestFailed<'_> {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.request_failed(self.cause);
    }
}

/// No request could be sent (no token from the identity service): shown as the last error,
/// not counted as a request.
pub struct DeliveryBlocked<'a> {
    pub cause: &'a str,
}

impl InternalEvent for DeliveryBlocked<'_> {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.delivery_blocked(self.cause);
    }
}

/// In-flight points were stored by Blueflood.
pub struct PointsDelivered {
    pub points: u64,
}

impl InternalEvent for PointsDelivered {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.delivered(self.points);
    }
}

/// Points read back from the spool whose delivery was cut short (shutdown deadline): never
/// acknowledged, so still on disk for the next start.
pub struct BackToSpool {
    pub points: u64,
}

impl InternalEvent for BackToSpool {
    type Output = ();

    fn emit(self, ledger: &Ledger, _: &LogLimits) {
        ledger.in_flight_back_to_spool(self.points);
    }
}

/// Points that left the buffer and will never be delivered.
pub struct InFlightDropped<'a> {
    pub reason: DropReason,
    pub count: u64,
    pub detail: &'a str,
}

impl InternalEvent for InFlightDropped<'_> {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
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

impl InternalEvent for DeliveryRetry<'_> {
    type Output = ();

    fn emit(self, ledger: &Ledger, limits: &LogLimits) {
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

impl InternalEvent for RetryAfterCapped {
    type Output = ();

    fn emit(self, _: &Ledger, limits: &LogLimits) {
        self.log(limits);
    }
}

impl RetryAfterCapped {
    fn log(&self, limits: &LogLimits) {
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
