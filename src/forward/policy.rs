//! Delivery policy: what to do about one answer. `blueflood::classify_answer` says what an
//! answer *means* (the wire format's knowledge); this file turns that meaning into an
//! [`Action`] for the one delivery driver in `deliver.rs` (vector's `RetryLogic` split: the
//! sink classifies, a generic loop acts). It also counts the request as stored or failed and
//! tells the spill policy whether Blueflood answered as itself.
//!
//! Nothing here sleeps, sends or spools; what a settled answer does to the points (207, 400,
//! 413 splits) is `bisect.rs`'s.

use std::time::Duration;

use super::answer::EXCERPT_CHARS;
use super::bisect::Too413;
use super::blueflood::{self, RejectedPoints, Verdict};
use super::deliver::DeliveryContext;
use super::transport::{Answer, SendError};
use crate::accounting::DropReason;
use crate::events::{PointsDelivered, Refusal, RequestFailed, RequestStored};
use crate::redact::foreign_text as excerpt;

/// What the driver does next with the part it sent.
pub(super) enum Action {
    /// The answer settles the part's points (each stored, dropped or queued again).
    Settle(Settlement),
    /// Blueflood refused the token: get a new one and send again at once (once).
    Reauthenticate { status: u16 },
    /// Keep every point and try again after a backoff (or spool a live part).
    Retry(Failure),
}

/// How an answer settles a part.
pub(super) enum Settlement {
    Stored {
        status: u16,
    },
    /// 207: the listed points were rejected, every other one stored.
    Partial(RejectedPoints),
    /// 400 with Blueflood's body: drop what it names, re-send or bisect the rest.
    Isolate {
        rejected: RejectedPoints,
        retry_after: Option<Duration>,
    },
    /// 413 for a lone point whose encoding alone is over the limit.
    TooLarge,
    /// 413 for a body that may be too large: send its halves after `pause`.
    Split {
        pause: Duration,
    },
}

/// Why a part is kept and retried, for the retry log line and `/status`.
pub(super) struct Failure {
    pub(super) retry_after: Option<Duration>,
    pub(super) cause: String,
    pub(super) refusal: Option<Refusal>,
}

impl Failure {
    pub(super) fn new(cause: String) -> Self {
        Self {
            retry_after: None,
            cause,
            refusal: None,
        }
    }
}

impl DeliveryContext {
    /// The action for one request's outcome, for a part of `points` points whose JSON is
    /// `json_len` bytes. Counts the request as stored or failed.
    pub(super) fn judge(
        &self,
        sent: Result<Answer, SendError>,
        points: usize,
        json_len: usize,
    ) -> Action {
        let answer = match sent {
            Ok(answer) => answer,
            Err(e) => {
                let failure = Failure::new(e.to_string());
                self.emit(RequestFailed {
                    cause: &failure.cause,
                });
                return Action::Retry(failure);
            }
        };
        let verdict = blueflood::classify_answer(&answer);
        self.count_answer(&verdict, answer.status);
        let status = answer.status;
        match verdict {
            Verdict::Stored | Verdict::ProbablyStored => {
                Action::Settle(Settlement::Stored { status })
            }
            Verdict::PartiallyRejected(rejected) => Action::Settle(Settlement::Partial(rejected)),
            Verdict::BadRequest(rejected) => Action::Settle(Settlement::Isolate {
                rejected,
                retry_after: answer.retry_after,
            }),
            Verdict::TooLarge { retry_after } => match self.too_large(points, json_len) {
                Too413::Drop => Action::Settle(Settlement::TooLarge),
                // Behind Repose a 413 can mean "rate limited": split, then pause.
                Too413::Split => Action::Settle(Settlement::Split {
                    pause: self.backoff(0, retry_after),
                }),
                Too413::RateLimited => Action::Retry(Failure {
                    retry_after,
                    cause: format!(
                        "HTTP 413 for a body of {json_len} bytes, well under the {} byte limit: rate limited",
                        self.max_body_bytes
                    ),
                    refusal: None,
                }),
            },
            Verdict::Unauthorized => Action::Reauthenticate { status },
            Verdict::Transient { retry_after } => Action::Retry(Failure {
                retry_after,
                cause: format!("HTTP {status}"),
                refusal: None,
            }),
            Verdict::Redirected => Action::Retry(Failure {
                retry_after: None,
                cause: format!(
                    "HTTP {status} redirect to {} (not followed: check the blueflood URL)",
                    answer.location.as_deref().unwrap_or("(no Location)")
                ),
                refusal: Some(Refusal::Redirect),
            }),
            Verdict::NotBlueflood => Action::Retry(Failure {
                retry_after: answer.retry_after,
                cause: not_blueflood_cause(&answer),
                refusal: Some(Refusal::NotBlueflood),
            }),
            Verdict::ClientError => Action::Retry(Failure {
                retry_after: None,
                cause: format!("HTTP {status} {}", excerpt(&answer.body, EXCERPT_CHARS)),
                refusal: Some(Refusal::ClientError),
            }),
        }
    }

    /// Counts the request, and tells the spill policy when Blueflood answered as itself
    /// (stored, or refused points it named or could not parse): it is up.
    fn count_answer(&self, verdict: &Verdict, status: u16) {
        match verdict {
            Verdict::Stored | Verdict::ProbablyStored | Verdict::PartiallyRejected(_) => {
                self.emit(RequestStored);
                self.spill.blueflood_answered();
            }
            Verdict::BadRequest(_) => {
                self.emit(RequestFailed {
                    cause: &format!("HTTP {status} from Blueflood"),
                });
                self.spill.blueflood_answered();
            }
            _ => self.emit(RequestFailed {
                cause: &format!("HTTP {status} from Blueflood"),
            }),
        }
    }

    /// What an answer that settles a part does to its points.
    pub(super) fn settle(
        &self,
        settlement: Settlement,
        points: Vec<crate::model::Datapoint>,
        batch: &mut super::bisect::Batch,
    ) {
        let n = points.len();
        match settlement {
            Settlement::Stored { status } => {
                self.emit(PointsDelivered { points: n as u64 });
                tracing::debug!(datapoints = n, status, "delivered");
            }
            Settlement::Partial(rejected) => self.settle_partial(&points, &rejected),
            Settlement::Isolate {
                rejected,
                retry_after,
            } => self.isolate_bad(points, &rejected, retry_after, batch),
            Settlement::TooLarge => self.drop_points(
                DropReason::TooLarge,
                n,
                "413 for a datapoint whose encoding alone is larger than the request size limit",
            ),
            Settlement::Split { pause } => batch.split(points, pause, pause),
        }
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
