//! The spill policy: the one place that decides when a batch goes to the disk spool instead
//! of the wire, and what becomes of the points the shutdown deadline catches. The spool
//! itself only stores; every "should this go to disk?" is answered here:
//!
//! - before a live body is sent: while Blueflood is failing, or while the buffer is above the
//!   spool threshold (memory is filling faster than Blueflood drains it);
//! - when a live body's delivery fails: it is written to disk and replay retries it, instead
//!   of being retried in memory (a body read back from the spool is retried where it is);
//! - at the shutdown deadline: what is in flight or still buffered is written to disk, or
//!   counted `shutdown_timeout` without a spool.
//!
//! "Blueflood is failing" is set by any failed request and cleared by any answer that is
//! Blueflood's own (stored, or points it named or could not parse); `/status` and
//! `/metrics` show it. Without a spool nothing here spills and the flag is still kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Origin;
use crate::accounting::{DropReason, Ledger};
use crate::buffer::Buffer;
use crate::events::{InFlightDropped, InternalEvent, LogLimits};
use crate::model::Datapoint;
use crate::spool::{Refused, Spool};

/// While bodies go to the spool, the longest a point waits in memory before its body is
/// written: a point in memory is lost by a crash, one on disk is not.
pub(super) const SPILL_LINGER: Duration = Duration::from_millis(100);

/// A spill that did not take every point.
pub(super) struct Kept {
    pub(super) points: Vec<Datapoint>,
    /// Some points did go to disk: a body encoded for the whole is no longer right.
    pub(super) partly_spilled: bool,
}

pub struct SpillPolicy {
    spool: Option<Arc<Spool>>,
    buffer: Arc<Buffer>,
    /// Buffer fill (0..1) above which live bodies are spooled and replay waits.
    threshold: f64,
    failing: AtomicBool,
    ledger: Arc<Ledger>,
    logs: Arc<LogLimits>,
}

impl SpillPolicy {
    pub fn new(
        spool: Option<Arc<Spool>>,
        buffer: Arc<Buffer>,
        threshold: f64,
        ledger: Arc<Ledger>,
        logs: Arc<LogLimits>,
    ) -> Self {
        Self {
            spool,
            buffer,
            threshold,
            failing: AtomicBool::new(false),
            ledger,
            logs,
        }
    }

    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.as_ref()
    }

    /// The memory buffer (whose register of batches in flight replay holds its records in).
    pub fn buffer(&self) -> &Arc<Buffer> {
        &self.buffer
    }

    /// Blueflood's last answer was a failure: new live bodies go to disk, when there is one.
    pub fn blueflood_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Live data is backing up in memory: spool new bodies, and let replay wait.
    pub(super) fn live_backing_up(&self) -> bool {
        self.buffer.fill() > self.threshold
    }

    /// Whether the next live body should go to disk rather than to Blueflood.
    pub(super) fn wanted(&self) -> bool {
        self.spool.as_ref().is_some_and(|spool| {
            spool.usable() && (self.blueflood_failing() || self.live_backing_up())
        })
    }

    /// How long a live point may wait for its body to fill before the body is dispatched.
    pub(super) fn linger(&self, interval: Duration) -> Duration {
        if self.wanted() {
            interval.min(SPILL_LINGER)
        } else {
            interval
        }
    }

    /// How often a body waiting for a delivery slot looks again whether it should be spooled
    /// (the buffer may cross the threshold meanwhile); `None` without a spool.
    pub(super) fn recheck_every(&self) -> Option<Duration> {
        self.spool.as_ref().map(|_| SPILL_LINGER)
    }

    /// Before a live body is sent: spools it when that is wanted (stamped with `arrived`, its
    /// oldest point's arrival). `Ok` when every point went to disk; otherwise what is left to
    /// send.
    pub(super) async fn before_send(
        &self,
        points: Vec<Datapoint>,
        arrived: Option<Instant>,
    ) -> Result<(), Kept> {
        let Some(spool) = self.spool.as_ref().filter(|_| self.wanted()) else {
            return Err(Kept {
                points,
                partly_spilled: false,
            });
        };
        let n = points.len();
        spool
            .spill(points, arrived)
            .await
            .map_err(|Refused(rest)| Kept {
                partly_spilled: rest.len() < n,
                points: rest,
            })
    }

    /// A request failed: Blueflood is failing, so new live bodies go to disk; a live body is
    /// handed to the spool (replay retries it) instead of being retried here. The points come
    /// back when they stay here to be retried (spooled origin, no spool, or it refused).
    pub(super) async fn after_failure(
        &self,
        points: Vec<Datapoint>,
        origin: Origin,
    ) -> Result<(), Vec<Datapoint>> {
        self.failing.store(true, Ordering::Relaxed);
        match (&self.spool, origin) {
            (Some(spool), Origin::Live { arrived }) => {
                spool.spill(points, arrived).await.map_err(|Refused(p)| p)
            }
            _ => Err(points),
        }
    }

    /// Blueflood answered as itself: it is up, so new bodies go to it rather than to disk.
    pub(super) fn blueflood_answered(&self) {
        self.failing.store(false, Ordering::Relaxed);
    }

    /// In-flight points the shutdown deadline caught (in a delivery, in the flusher's hands):
    /// written to the spool when there is one, otherwise counted lost.
    pub async fn keep_at_deadline(&self, points: Vec<Datapoint>) {
        if points.is_empty() {
            return;
        }
        let n = points.len();
        let lost = match &self.spool {
            // What the deadline catches is spooled as of now: its arrival is not kept this far.
            Some(spool) => match spool.spill(points, None).await {
                Ok(()) => {
                    tracing::info!(datapoints = n, "spooled at the shutdown deadline");
                    return;
                }
                Err(Refused(rest)) => rest.len(),
            },
            None => n,
        };
        InFlightDropped {
            reason: DropReason::ShutdownTimeout,
            count: lost as u64,
            detail: "shutdown deadline",
        }
        .emit(&self.ledger, &self.logs);
    }

    /// Closes the buffer at the deadline; what it still holds goes to the spool, or is
    /// counted lost without one.
    pub async fn keep_buffer_at_deadline(&self) {
        if self.spool.is_none() {
            self.buffer.close_and_drop();
            return;
        }
        self.keep_at_deadline(self.buffer.close_and_take()).await;
    }
}
