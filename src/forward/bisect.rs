//! What a 207, a 400 or a 413 does to a batch: which points are dropped, which are sent again,
//! in what parts and after what pause. Only points that Blueflood itself rejects are dropped.
//!
//! - 207 drops exactly the listed points; the others were stored and are never re-sent.
//! - A 400 with Blueflood's own body that names points drops those and re-sends the rest.
//! - A 400 with Blueflood's body naming none of our points (its `Cannot parse content`: one
//!   point poisons the request) is bisected, breadth first, so that each half is tried before
//!   either is split again. A lone point is dropped only when Blueflood has stored some
//!   request, of this batch or any other, since this batch's previous such 400: that shows
//!   Blueflood takes other data while refusing this point. Without that evidence the answer
//!   cannot be told from a Blueflood (or something shaped like it) refusing everything, so the
//!   point is kept and tried again after a backoff; and once three such 400s come in a row
//!   with nothing stored in between (both halves of a split refused), further splits wait a
//!   backoff too, so that a refusal of everything is neither a loss nor a storm of requests.
//! - A 413 splits the batch in halves (after a pause: behind Repose it can mean rate limiting)
//!   while the body is larger than `1/SPLIT_413_DOWN_TO` of the size limit; for a smaller
//!   body it is rate limiting, and the part is retried with backoff. A point is dropped as
//!   `too_large` only when its own encoding is larger than the limit.

use std::collections::VecDeque;
use std::time::Duration;

use super::blueflood::RejectedPoints;
use super::deliver::DeliveryContext;
use crate::accounting::DropReason;
use crate::events::{PointsDelivered, Refusal};
use crate::model::Datapoint;

/// A 413 for a body of at most this fraction of the size limit is not about size: proxies in
/// front of Blueflood measure the compressed body, several times smaller than the JSON, and a
/// limit that much below Blueflood's own (1 MiB) is a configuration to fix with `--limit`.
/// What remains is Repose's rate limiting, which splitting would only make worse.
pub(super) const SPLIT_413_DOWN_TO: usize = 16;

/// Unnamed 400s in a row, with nothing stored in between, from which splits wait a backoff:
/// the part, then both of its halves.
const REFUSED_IN_A_ROW: u32 = 3;

/// A part of a batch still to be delivered.
pub(super) struct Part {
    pub(super) points: Vec<Datapoint>,
    /// The encoded body when it is already at hand (the first part of a batch).
    pub(super) json: Option<Vec<u8>>,
    /// Wait this long before the first attempt (a pause after a 413 or a refusal).
    pub(super) delay: Duration,
}

/// One batch's parts still to be delivered, and what its 400s so far say.
pub(super) struct Batch {
    /// Sent front first; new parts go to the back (breadth first).
    pub(super) queue: VecDeque<Part>,
    /// The ledger's count of stored requests at this batch's last 400 naming none of its
    /// points (at its start before that).
    ok_seen: u64,
    /// Such 400s in a row with no request stored anywhere in between.
    refused_in_a_row: u32,
}

impl Batch {
    pub(super) fn new(first: Part, requests_ok: u64) -> Self {
        Self {
            queue: VecDeque::from([first]),
            ok_seen: requests_ok,
            refused_in_a_row: 0,
        }
    }

    fn push(&mut self, points: Vec<Datapoint>, delay: Duration) {
        self.queue.push_back(Part {
            points,
            json: None,
            delay,
        });
    }

    /// Queues the two halves of `points`, the first to be sent after `first_delay`.
    pub(super) fn split(
        &mut self,
        mut points: Vec<Datapoint>,
        first_delay: Duration,
        second_delay: Duration,
    ) {
        let second = points.split_off(points.len() / 2);
        self.push(points, first_delay);
        self.push(second, second_delay);
    }
}

/// What a 413 does to a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Too413 {
    /// A single point whose encoding alone is over the limit: it can never be sent.
    Drop,
    Split,
    /// Keep the part and retry it with backoff.
    RateLimited,
}

impl DeliveryContext {
    /// A 413 for a part of `points` points whose JSON is `json_len` bytes.
    pub(super) fn too_large(&self, points: usize, json_len: usize) -> Too413 {
        let over_limit = json_len > self.max_body_bytes;
        if points > 1 && (over_limit || json_len > self.max_body_bytes / SPLIT_413_DOWN_TO) {
            Too413::Split
        } else if points <= 1 && over_limit {
            Too413::Drop
        } else {
            Too413::RateLimited
        }
    }

    /// 207: the listed points were rejected, every other one was stored.
    pub(super) fn settle_partial(&self, points: &[Datapoint], rejected: &RejectedPoints) {
        let bad = points.iter().filter(|p| rejected.contains(p)).count();
        if bad == 0 && !points.is_empty() {
            tracing::warn!(
                sample = rejected.sample.as_deref().unwrap_or(""),
                "207 answer names none of the points sent; counting all as stored"
            );
        }
        self.emit(PointsDelivered {
            points: (points.len() - bad) as u64,
        });
        self.drop_points(
            DropReason::RejectedByBlueflood,
            bad,
            rejected.sample.as_deref().unwrap_or("207"),
        );
    }

    /// A 400 with Blueflood's own body: nothing was stored. Drop the points the answer names
    /// and re-send the others; when it names none, bisect (module documentation).
    pub(super) fn isolate_bad(
        &self,
        points: Vec<Datapoint>,
        rejected: &RejectedPoints,
        retry_after: Option<Duration>,
        batch: &mut Batch,
    ) {
        let detail = rejected.sample.as_deref().unwrap_or("400");
        let (bad, points): (Vec<_>, Vec<_>) =
            points.into_iter().partition(|p| rejected.contains(p));
        if !bad.is_empty() {
            self.drop_points(DropReason::RejectedByBlueflood, bad.len(), detail);
            if !points.is_empty() {
                batch.push(points, Duration::ZERO);
            }
            return;
        }
        if points.is_empty() {
            return;
        }
        let stored_now = self.ledger.requests_ok();
        let evidence = stored_now != batch.ok_seen;
        batch.ok_seen = stored_now;
        batch.refused_in_a_row = if evidence {
            1
        } else {
            batch.refused_in_a_row.saturating_add(1)
        };
        let in_a_row = batch.refused_in_a_row;
        if points.len() == 1 {
            if evidence {
                self.drop_points(DropReason::RejectedByBlueflood, 1, detail);
                return;
            }
            let delay = self.backoff(in_a_row - 1, retry_after);
            let cause = format!(
                "HTTP 400 naming no point for a single datapoint, and nothing stored since the \
                 last such 400: Blueflood seems to refuse every request ({detail})"
            );
            self.retry(
                in_a_row - 1,
                delay,
                1,
                &cause,
                Some(Refusal::RefusesEverything),
            );
            batch.push(points, delay);
            return;
        }
        let delay = if in_a_row >= REFUSED_IN_A_ROW {
            let attempt = in_a_row - REFUSED_IN_A_ROW;
            let delay = self.backoff(attempt, retry_after);
            let cause = format!(
                "HTTP 400 naming no point for both halves of a batch, and nothing stored in \
                 between: Blueflood seems to refuse every request ({detail}); bisection paused"
            );
            self.retry(
                attempt,
                delay,
                points.len(),
                &cause,
                Some(Refusal::RefusesEverything),
            );
            delay
        } else {
            Duration::ZERO
        };
        batch.split(points, delay, Duration::ZERO);
    }
}
