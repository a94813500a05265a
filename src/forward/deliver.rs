//! Delivers one batch: sends it, reads the verdict, and keeps going until every point of the
//! batch is either stored or dropped with a reason. Transient failures are retried with
//! exponential backoff and jitter (honouring `Retry-After`) for as long as it takes, or until
//! the shutdown deadline; a 400 is bisected so that only the points Blueflood cannot take are
//! dropped; a 413 is split; a 207 drops exactly the listed points and never re-sends the rest.
//!
//! With a spool, a live batch that fails is written to disk instead of being retried in memory
//! (the spool's drainer retries it), and what the shutdown deadline cuts short is spooled
//! instead of dropped. A batch read back from the spool is retried here; if the deadline cuts
//! it short it simply stays on disk, unacknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::blueflood::{self, RejectedPoints, Verdict};
use super::transport::{Answer, Prepared, SendError, Transport};
use crate::accounting::{DropReason, Ledger};
use crate::auth::{Token, TokenProvider};
use crate::config::settings::Compression;
use crate::events::{DeliveryRetry, InFlightDropped, LogLimits};
use crate::model::Datapoint;
use crate::spool::{Refused, Spool};
use crate::telemetry::metrics::Instruments;

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
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Fires at the shutdown deadline: stop retrying, count what is left as lost.
    pub abort: CancellationToken,
    /// The disk spool, when configured.
    pub spool: Option<Arc<Spool>>,
}

/// A part of a batch still to be delivered.
struct Part {
    points: Vec<Datapoint>,
    /// The encoded body when it is already at hand (the first part of a batch).
    json: Option<Vec<u8>>,
    /// Wait this long before the first attempt (after a 413 split).
    delay: Duration,
}

impl DeliveryContext {
    /// Exponential backoff with equal jitter: half the step fixed, half random.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let step = self
            .retry_initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.retry_max);
        let half = step / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        let delay = half + Duration::from_millis(jitter);
        // Retry-After is the server's explicit wish: never go faster than it.
        retry_after.map_or(delay, |ra| ra.max(delay))
    }

    /// Sleeps unless the deadline comes first; `false` when aborted.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.abort.cancelled() => false,
        }
    }

    fn drop_points(&self, reason: DropReason, n: usize, detail: &str) {
        InFlightDropped {
            reason,
            count: n as u64,
            detail,
        }
        .emit(&self.ledger, &self.logs);
    }

    /// Delivers `points` (whose encoded body is `json`) and accounts for every one of them.
    pub async fn deliver(&self, points: Vec<Datapoint>, json: Vec<u8>, origin: Origin) -> Settled {
        let mut queue = vec![Part {
            points,
            json: Some(json),
            delay: Duration::ZERO,
        }];
        while let Some(part) = queue.pop() {
            if let Err(mut left) = self.deliver_part(part, &mut queue, origin).await {
                for p in queue {
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

    fn stored(&self) {
        if let Some(spool) = &self.spool {
            spool.clear_degraded();
        }
    }

    /// Delivers one part, pushing any sub-parts it splits into onto `queue`. `Err` with the
    /// part's points when the shutdown deadline cut it short.
    async fn deliver_part(
        &self,
        part: Part,
        queue: &mut Vec<Part>,
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
        let body = Prepared::new(json, self.compression);
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
                    self.retry(attempt, delay, n, &cause, false);
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
            let (retry_after, cause, loud) = match sent {
                Err(e) => {
                    let cause = e.to_string();
                    self.ledger.request_failed(&cause);
                    (None, cause, false)
                }
                Ok(answer) => {
                    let verdict =
                        blueflood::classify(answer.status, answer.retry_after, &answer.body);
                    if matches!(
                        verdict,
                        Verdict::Stored | Verdict::ProbablyStored | Verdict::PartiallyRejected(_)
                    ) {
                        self.ledger.request_ok();
                        self.stored();
                    } else {
                        self.ledger
                            .request_failed(&format!("HTTP {} from Blueflood", answer.status));
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
                            self.isolate_bad(points, &rejected, queue);
                            return Ok(());
                        }
                        Verdict::TooLarge => {
                            if n <= 1 {
                                self.drop_points(
                                    DropReason::TooLarge,
                                    n,
                                    "Blueflood answered 413 for a single point",
                                );
                            } else {
                                // Behind Repose a 413 can mean "rate limited": split, then pause.
                                let pause = self.backoff(0, None);
                                split_into(points, pause, queue);
                            }
                            return Ok(());
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
                                false,
                            )
                        }
                        Verdict::Transient { retry_after } => {
                            (retry_after, format!("HTTP {}", answer.status), false)
                        }
                        Verdict::ClientError => {
                            let text =
                                String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
                                    .into_owned();
                            (None, format!("HTTP {} {text}", answer.status), true)
                        }
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
            self.retry(attempt, delay, n, &cause, loud);
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

    fn retry(&self, attempt: u32, delay: Duration, points: usize, cause: &str, loud: bool) {
        DeliveryRetry {
            attempt: attempt + 1,
            delay,
            points,
            cause,
            loud,
        }
        .emit(&self.ledger, &self.logs);
    }

    /// 207: the listed points were rejected, every other one was stored.
    fn settle_partial(&self, points: &[Datapoint], rejected: &RejectedPoints) {
        let bad = points.iter().filter(|p| rejected.contains(p)).count();
        if bad == 0 && !points.is_empty() {
            tracing::warn!(
                sample = rejected.sample.as_deref().unwrap_or(""),
                "207 answer names none of the points sent; counting all as stored"
            );
        }
        self.ledger.delivered((points.len() - bad) as u64);
        self.drop_points(
            DropReason::RejectedByBlueflood,
            bad,
            rejected.sample.as_deref().unwrap_or("207"),
        );
    }

    /// 400: nothing was stored. Drop the points the answer names and re-send the others;
    /// when it names none, bisect until each bad point is alone.
    fn isolate_bad(
        &self,
        points: Vec<Datapoint>,
        rejected: &RejectedPoints,
        queue: &mut Vec<Part>,
    ) {
        let detail = rejected.sample.as_deref().unwrap_or("400");
        if points.len() <= 1 {
            self.drop_points(DropReason::RejectedByBlueflood, points.len(), detail);
            return;
        }
        let (bad, good): (Vec<_>, Vec<_>) = points.into_iter().partition(|p| rejected.contains(p));
        if bad.is_empty() {
            split_into(good, Duration::ZERO, queue);
            return;
        }
        self.drop_points(DropReason::RejectedByBlueflood, bad.len(), detail);
        if !good.is_empty() {
            queue.push(Part {
                points: good,
                json: None,
                delay: Duration::ZERO,
            });
        }
    }
}

fn split_into(mut points: Vec<Datapoint>, delay: Duration, queue: &mut Vec<Part>) {
    let second = points.split_off(points.len() / 2);
    for half in [second, points] {
        queue.push(Part {
            points: half,
            json: None,
            delay,
        });
    }
}
