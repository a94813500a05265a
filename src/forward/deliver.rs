//! The delivery driver: sends one batch and keeps going until every point of it is stored,
//! dropped with a reason, or spooled. It only applies actions: what an answer means is
//! `blueflood`'s, what to do about it `policy.rs`'s, what a 207, 400 or 413 does to the points
//! `bisect.rs`'s, whether a failed batch goes to disk `spill.rs`'s. Failures are retried with
//! one validated exponential backoff with jitter (`crate::backoff`, honouring `Retry-After` up
//! to `retry_after_max`) for as long as it takes, or until the shutdown deadline; a batch read
//! back from the spool that the deadline cuts short stays on disk, unacknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::bisect::{Batch, Part};
use super::blueflood;
use super::policy::{Action, Failure};
use super::spill::SpillPolicy;
use super::transport::{Answer, Prepared, SendError, Transport};
use crate::accounting::{DropReason, Ledger};
use crate::auth::{Token, TokenProvider};
use crate::backoff::{ExponentialBackoff, InvalidBackoff, RetryAfter};
use crate::config::settings::Compression;
use crate::events::{
    BackToSpool, DeliveryBlocked, DeliveryRetry, InFlightDropped, InternalEvent, LogLimits,
    Refusal, RequestFinished, RequestStarted, RetryAfterCapped,
};
use crate::model::Datapoint;

/// Half of every retry step is fixed and half random: retries spread out, yet none comes
/// sooner than half its step.
const EQUAL_JITTER: f64 = 0.5;
/// Retry steps stop doubling after this many failures (at `retry_initial` · 2²⁰), as they
/// always have here: a `retry_max` further away than that is never reached (Keystone's
/// backoff has no such limit).
const MAX_DOUBLINGS: u32 = 20;

/// Where a batch comes from, which decides what happens when it cannot be delivered now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Taken from the memory buffer: spooled on failure (when a spool is configured), stamped
    /// with `arrived`, when its oldest point arrived (so the delivery lag survives the spool).
    Live { arrived: Option<Instant> },
    /// Read back from the spool: retried here; left on disk if the deadline comes.
    Spooled,
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Every point is delivered, dropped with a reason, or (live) spooled.
    Done,
    /// The deadline cut a spooled batch short: it stays on disk (not to be acknowledged).
    LeftInSpool,
}

/// What every delivery task shares.
pub struct DeliveryContext {
    pub transport: Arc<dyn Transport>,
    pub auth: Arc<dyn TokenProvider>,
    pub ledger: Arc<Ledger>,
    pub logs: Arc<LogLimits>,
    pub ttl_seconds: u32,
    pub compression: Compression,
    /// `retry_initial` doubling to `retry_max`, half of each step random.
    pub retry: ExponentialBackoff,
    /// The longest wait a server's `Retry-After` can impose.
    pub retry_after_max: Duration,
    /// The request size limit: a 413 for a body well under it is rate limiting, not size.
    pub max_body_bytes: usize,
    /// Fires at the shutdown deadline: stop retrying, count what is left as lost.
    pub abort: CancellationToken,
    /// When a batch goes to disk instead of the wire (and the spool, when configured).
    pub spill: Arc<SpillPolicy>,
}

impl DeliveryContext {
    /// The wait after failure `attempt` (from 0): exponential backoff with equal jitter (half
    /// the step fixed, half random), never shorter than the server's `Retry-After`, itself cut
    /// to `retry_after_max`.
    pub(super) fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let retry_after = retry_after.map(|asked| {
            let capped = RetryAfter::capped(asked, self.retry_after_max);
            if capped.was_cut() {
                self.emit(RetryAfterCapped {
                    asked,
                    cap: self.retry_after_max,
                });
            }
            capped
        });
        self.retry
            .delay_honouring(attempt.min(MAX_DOUBLINGS), retry_after)
    }

    /// The delivery retry policy from the configured bounds (which `config` has checked).
    pub fn retry_policy(
        retry_initial: Duration,
        retry_max: Duration,
    ) -> Result<ExponentialBackoff, InvalidBackoff> {
        ExponentialBackoff::new(retry_initial, retry_max, EQUAL_JITTER)
    }

    /// Sleeps unless the deadline comes first; `false` when aborted.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.abort.cancelled() => false,
        }
    }

    pub(super) fn drop_points(&self, reason: DropReason, n: usize, detail: &str) {
        self.emit(InFlightDropped {
            reason,
            count: n as u64,
            detail,
        });
    }

    /// Counts and logs one event, through the one event shape.
    pub(super) fn emit<E: InternalEvent>(&self, event: E) -> E::Output {
        event.emit(&self.ledger, &self.logs)
    }

    /// One point alone encodes larger than a request may be.
    pub(super) fn drop_too_large(&self, n: usize) {
        self.drop_points(
            DropReason::TooLarge,
            n,
            "one datapoint encodes larger than the request size limit",
        );
    }

    /// Delivers `points` (whose encoded body is `json`) and accounts for every one of them.
    pub async fn deliver(&self, points: Vec<Datapoint>, json: Vec<u8>, origin: Origin) -> Settled {
        let first = Part {
            points,
            json: Some(json),
            delay: Duration::ZERO,
        };
        let mut batch = Batch::new(first, self.ledger.requests_ok());
        while let Some(part) = batch.queue.pop_front() {
            if let Err(mut left) = self.deliver_part(part, &mut batch, origin).await {
                for p in batch.queue {
                    left.extend(p.points);
                }
                return self.cut_short(left, origin).await;
            }
        }
        Settled::Done
    }

    /// The deadline came first: spool what is live (or count it lost), leave what came from
    /// the spool on disk.
    async fn cut_short(&self, points: Vec<Datapoint>, origin: Origin) -> Settled {
        match origin {
            Origin::Spooled => {
                self.emit(BackToSpool {
                    points: points.len() as u64,
                });
                Settled::LeftInSpool
            }
            Origin::Live { .. } => {
                self.spill.keep_at_deadline(points).await;
                Settled::Done
            }
        }
    }

    /// The one delivery driver: sends one part until its answer settles it (pushing any
    /// sub-parts onto the batch's queue), applying what `policy.rs` makes of each answer.
    /// `Err` with the part's points when the shutdown deadline cut it short.
    async fn deliver_part(
        &self,
        part: Part,
        batch: &mut Batch,
        origin: Origin,
    ) -> Result<(), Vec<Datapoint>> {
        let Part {
            mut points,
            json,
            delay,
        } = part;
        let n = points.len();
        if !delay.is_zero() && !self.sleep(delay).await {
            return Err(points);
        }
        let json = json.unwrap_or_else(|| blueflood::encode_body(&points, self.ttl_seconds));
        let body = Prepared::new(json, self.compression).with_points(n);
        let mut attempt: u32 = 0;
        let mut reauthenticated = false;
        loop {
            if self.abort.is_cancelled() {
                return Err(points);
            }
            let failure = match self.auth.token().await {
                Err(e) => {
                    // Auth down never costs data: keep the batch (or spool it) and back off.
                    let failure = Failure::new(format!("authentication failed: {e}"));
                    self.emit(DeliveryBlocked {
                        cause: &failure.cause,
                    });
                    failure
                }
                Ok(token) => {
                    let Some(sent) = self.send_once(&body, token.as_ref(), n, attempt).await else {
                        return Err(points);
                    };
                    match self.judge(sent, n, body.json.len()) {
                        Action::Settle(settlement) => {
                            self.settle(settlement, points, batch);
                            return Ok(());
                        }
                        Action::Reauthenticate { status } => {
                            if let Some(t) = &token {
                                self.auth.invalidate(t);
                            }
                            if !reauthenticated {
                                reauthenticated = true;
                                continue;
                            }
                            Failure::new(format!("HTTP {status} after re-authentication"))
                        }
                        Action::Retry(failure) => failure,
                    }
                }
            };
            points = match self.spill.after_failure(points, origin).await {
                Ok(()) => {
                    tracing::debug!(
                        datapoints = n,
                        cause = failure.cause,
                        "delivery failed; batch spooled"
                    );
                    return Ok(());
                }
                Err(p) => p,
            };
            let delay = self.backoff(attempt, failure.retry_after);
            self.retry(attempt, delay, n, &failure.cause, failure.refusal);
            attempt += 1;
            reauthenticated = false;
            if !self.sleep(delay).await {
                return Err(points);
            }
        }
    }

    /// One request, counted in flight, timed and traced. `None` when the deadline aborted it.
    async fn send_once(
        &self,
        body: &Prepared,
        token: Option<&Token>,
        points: usize,
        attempt: u32,
    ) -> Option<Result<Answer, SendError>> {
        // Signed fields: OpenTelemetry has no unsigned integers (u64 would export as text).
        let span = tracing::info_span!(
            "blueflood.request",
            datapoints = points as i64,
            bytes = body.wire.len() as i64,
            retry = i64::from(attempt),
            status = tracing::field::Empty,
        );
        self.emit(RequestStarted);
        let started = Instant::now();
        let sent = tokio::select! {
            r = self.transport.send(body, token).instrument(span.clone()) => Some(r),
            () = self.abort.cancelled() => None,
        };
        let status = sent
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|a| a.status);
        if sent.is_some() {
            span.record("status", i64::from(status.unwrap_or(0)));
        }
        self.emit(RequestFinished {
            status,
            seconds: started.elapsed().as_secs_f64(),
            points,
            abandoned: sent.is_none(),
        });
        sent
    }

    pub(super) fn retry(
        &self,
        attempt: u32,
        delay: Duration,
        points: usize,
        cause: &str,
        refusal: Option<Refusal>,
    ) {
        self.emit(DeliveryRetry {
            attempt: attempt + 1,
            delay,
            points,
            cause,
            refusal,
        });
    }
}
