//! Delivers one batch: sends it, reads the verdict, and keeps going until every point of the
//! batch is either stored or dropped with a reason. Transient failures are retried with
//! exponential backoff and jitter (honouring `Retry-After`, up to `retry_after_max`) for as
//! long as it takes, or until the shutdown deadline. What a 207, a 400 or a 413 does to the
//! batch (drop the listed points, bisect, split) is decided in `bisect.rs`.
//!
//! With a spool, a live batch that fails is written to disk instead of being retried in memory
//! (the spool's drainer retries it), and what the shutdown deadline cuts short is spooled
//! instead of dropped. A batch read back from the spool is retried here; if the deadline cuts
//! it short it simply stays on disk, unacknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::answer::EXCERPT_CHARS;
use super::bisect::{Batch, Part, Too413};
use super::blueflood::{self, Verdict};
use super::transport::{Answer, Prepared, SendError, Transport};
use crate::accounting::{DropReason, Ledger};
use crate::auth::{Token, TokenProvider};
use crate::backoff::{ExponentialBackoff, InvalidBackoff, RetryAfter};
use crate::config::settings::Compression;
use crate::events::{DeliveryRetry, InFlightDropped, LogLimits, Refusal, RetryAfterCapped};
use crate::model::Datapoint;
use crate::redact::foreign_text as excerpt;
use crate::spool::{Refused, Spool};
use crate::telemetry::metrics::Instruments;

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
    /// Taken from the memory buffer: spooled on failure (when a spool is configured).
    Live,
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
    pub instruments: Arc<Instruments>,
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
    /// The disk spool, when configured.
    pub spool: Option<Arc<Spool>>,
}

impl DeliveryContext {
    /// The wait after failure `attempt` (from 0): exponential backoff with equal jitter (half
    /// the step fixed, half random), never shorter than the server's `Retry-After`, itself cut
    /// to `retry_after_max`.
    pub(super) fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let retry_after = retry_after.map(|asked| {
            let capped = RetryAfter::capped(asked, self.retry_after_max);
            if capped.was_cut() {
                RetryAfterCapped {
                    asked,
                    cap: self.retry_after_max,
                }
                .emit(&self.logs);
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
        InFlightDropped {
            reason,
            count: n as u64,
            detail,
        }
        .emit(&self.ledger, &self.logs);
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
                self.ledger.in_flight_back_to_spool(points.len() as u64);
                Settled::LeftInSpool
            }
            Origin::Live => {
                self.keep_at_deadline(points).await;
                Settled::Done
            }
        }
    }

    /// In-flight points the shutdown deadline caught (here, in the flusher's hands, or still
    /// buffered): written to the spool when there is one, otherwise counted lost.
    pub async fn keep_at_deadline(&self, points: Vec<Datapoint>) {
        if points.is_empty() {
            return;
        }
        let n = points.len();
        let lost = match &self.spool {
            Some(spool) => match spool.spill(points).await {
                Ok(()) => {
                    tracing::info!(datapoints = n, "spooled at the shutdown deadline");
                    return;
                }
                Err(Refused(rest)) => rest.len(),
            },
            None => n,
        };
        self.drop_points(DropReason::ShutdownTimeout, lost, "shutdown deadline");
    }

    /// A live part failed: hand it to the spool (whose drainer will retry it) instead of
    /// retrying it here. Gives the points back when the spool cannot take them.
    async fn spill_failed(
        &self,
        points: Vec<Datapoint>,
        origin: Origin,
    ) -> Result<(), Vec<Datapoint>> {
        let Some(spool) = &self.spool else {
            return Err(points);
        };
        // Either way Blueflood is failing: new batches should go to disk, not to the wire.
        spool.set_degraded();
        match origin {
            Origin::Live => spool.spill(points).await.map_err(|Refused(p)| p),
            Origin::Spooled => Err(points),
        }
    }

    /// Blueflood answered as itself (stored, or refused points it named or could not parse):
    /// it is up, so new batches go to it rather than to disk.
    fn blueflood_answers(&self) {
        if let Some(spool) = &self.spool {
            spool.clear_degraded();
        }
    }

    /// Delivers one part, pushing any sub-parts it splits into onto the batch's queue. `Err`
    /// with the part's points when the shutdown deadline cut it short.
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
            let token = match self.auth.token().await {
                Ok(t) => t,
                Err(e) => {
                    let cause = format!("authentication failed: {e}");
                    self.ledger.delivery_blocked(&cause);
                    // Auth down never costs data: keep the batch (or spool it) and back off.
                    points = match self.spill_failed(points, origin).await {
                        Ok(()) => return Ok(()),
                        Err(p) => p,
                    };
                    let delay = self.backoff(attempt, None);
                    self.retry(attempt, delay, n, &cause, None);
                    attempt += 1;
                    if !self.sleep(delay).await {
                        return Err(points);
                    }
                    continue;
                }
            };
            let Some(sent) = self.send_once(&body, token.as_ref(), n, attempt).await else {
                return Err(points);
            };
            let (retry_after, cause, refusal) = match sent {
                Err(e) => {
                    let cause = e.to_string();
                    self.ledger.request_failed(&cause);
                    (None, cause, None)
                }
                Ok(answer) => {
                    let verdict = blueflood::classify_answer(&answer);
                    match verdict {
                        Verdict::Stored
                        | Verdict::ProbablyStored
                        | Verdict::PartiallyRejected(_) => {
                            self.ledger.request_ok();
                            self.blueflood_answers();
                        }
                        Verdict::BadRequest(_) => {
                            self.ledger
                                .request_failed(&format!("HTTP {} from Blueflood", answer.status));
                            self.blueflood_answers();
                        }
                        _ => self
                            .ledger
                            .request_failed(&format!("HTTP {} from Blueflood", answer.status)),
                    }
                    match verdict {
                        Verdict::Stored | Verdict::ProbablyStored => {
                            self.ledger.delivered(n as u64);
                            tracing::debug!(datapoints = n, status = answer.status, "delivered");
                            return Ok(());
                        }
                        Verdict::PartiallyRejected(rejected) => {
                            self.settle_partial(&points, &rejected);
                            return Ok(());
                        }
                        Verdict::BadRequest(rejected) => {
                            self.isolate_bad(points, &rejected, answer.retry_after, batch);
                            return Ok(());
                        }
                        Verdict::TooLarge { retry_after } => {
                            let len = body.json.len();
                            match self.too_large(n, len) {
                                Too413::Drop => {
                                    self.drop_points(
                                        DropReason::TooLarge,
                                        n,
                                        "413 for a datapoint whose encoding alone is larger than the request size limit",
                                    );
                                    return Ok(());
                                }
                                Too413::Split => {
                                    // Behind Repose a 413 can mean "rate limited": split, then pause.
                                    let pause = self.backoff(0, retry_after);
                                    batch.split(points, pause, pause);
                                    return Ok(());
                                }
                                Too413::RateLimited => (
                                    retry_after,
                                    format!(
                                        "HTTP 413 for a body of {len} bytes, well under the {} byte limit: rate limited",
                                        self.max_body_bytes
                                    ),
                                    None,
                                ),
                            }
                        }
                        Verdict::Unauthorized => {
                            if let Some(t) = &token {
                                self.auth.invalidate(t);
                            }
                            if !reauthenticated {
                                reauthenticated = true;
                                continue;
                            }
                            (
                                None,
                                format!("HTTP {} after re-authentication", answer.status),
                                None,
                            )
                        }
                        Verdict::Transient { retry_after } => {
                            (retry_after, format!("HTTP {}", answer.status), None)
                        }
                        Verdict::Redirected => (
                            None,
                            format!(
                                "HTTP {} redirect to {} (not followed: check the blueflood URL)",
                                answer.status,
                                answer.location.as_deref().unwrap_or("(no Location)")
                            ),
                            Some(Refusal::Redirect),
                        ),
                        Verdict::NotBlueflood => (
                            answer.retry_after,
                            not_blueflood_cause(&answer),
                            Some(Refusal::NotBlueflood),
                        ),
                        Verdict::ClientError => (
                            None,
                            format!(
                                "HTTP {} {}",
                                answer.status,
                                excerpt(&answer.body, EXCERPT_CHARS)
                            ),
                            Some(Refusal::ClientError),
                        ),
                    }
                }
            };
            points = match self.spill_failed(points, origin).await {
                Ok(()) => {
                    tracing::debug!(datapoints = n, cause, "delivery failed; batch spooled");
                    return Ok(());
                }
                Err(p) => p,
            };
            let delay = self.backoff(attempt, retry_after);
            self.retry(attempt, delay, n, &cause, refusal);
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
        self.ledger.request_started();
        let started = Instant::now();
        let sent = tokio::select! {
            r = self.transport.send(body, token).instrument(span.clone()) => Some(r),
            () = self.abort.cancelled() => None,
        };
        self.ledger.request_finished();
        if let Some(r) = &sent {
            let status = r.as_ref().ok().map(|a| a.status);
            span.record("status", i64::from(status.unwrap_or(0)));
            self.instruments
                .observe_request(status, started.elapsed().as_secs_f64(), points);
        }
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
        DeliveryRetry {
            attempt: attempt + 1,
            delay,
            points,
            cause,
            refusal,
        }
        .emit(&self.ledger, &self.logs);
    }
}

/// Why an answer that is not Blueflood's keeps the data.
fn not_blueflood_cause(answer: &Answer) -> String {
    let why = if answer.complete {
        "whose body is not Blueflood's (a proxy in front of it?)"
    } else {
        "longer than anything Blueflood could answer to this batch"
    };
    format!(
        "HTTP {} {why}: {}",
        answer.status,
        excerpt(&answer.body, EXCERPT_CHARS)
    )
}
