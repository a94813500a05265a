//! Delivery: takes points from the buffer, cuts them into Blueflood-sized bodies, and hands
//! each body to a delivery task, at most `concurrency` at a time. A body is sent when it is
//! full, or when its oldest point has waited `interval`; a retry never waits for new data.
//! Only `blueflood` knows the wire format.
//!
//! With a spool, a body goes to disk instead of the wire while Blueflood is failing or while
//! the buffer is above the spool threshold; what the shutdown deadline catches here is spooled
//! rather than dropped.

pub mod answer;
mod bisect;
pub mod blueflood;
pub mod deliver;
pub mod replay;
pub mod transport;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::accounting::DropReason;
use crate::buffer::{Buffer, Entry};
use crate::events::InFlightDropped;
use crate::health::{BEAT_EVERY, Health};
use crate::model::Datapoint;
use crate::spool::{Refused, Spool};
use blueflood::{BodyBuilder, Offer};
pub use deliver::{DeliveryContext, Origin, Settled};

/// How many points to take from the buffer per lock: enough to make the lock's cost
/// negligible per point, few enough that what waits outside the buffer (taken, not yet in a
/// body that has a delivery slot) stays small next to the buffer's own bound.
const TAKE_CHUNK: usize = 128;

/// While bodies go to the spool, the longest a point waits in memory before its body is
/// written: a point in memory is lost by a crash, one on disk is not.
const SPILL_LINGER: Duration = Duration::from_millis(100);

pub struct Flusher {
    pub buffer: Arc<Buffer>,
    pub ctx: Arc<DeliveryContext>,
    pub interval: Duration,
    pub max_body_bytes: usize,
    pub concurrency: usize,
    /// Fires when no more input will arrive (listeners drained): send everything now, then
    /// return once the buffer is empty and every delivery has settled.
    pub inputs_done: CancellationToken,
    /// Beaten every turn of the loop, and every second while it waits.
    pub health: Arc<Health>,
    /// The disk spool, when configured (the same one the delivery context holds).
    pub spool: Option<Arc<Spool>>,
    /// Buffer fill (0..1) above which bodies are spooled rather than kept waiting in memory.
    pub spool_threshold: f64,
}

/// The body being filled.
struct Pending {
    builder: BodyBuilder,
    points: Vec<Datapoint>,
    oldest: Option<Instant>,
}

impl Flusher {
    fn new_pending(&self) -> Pending {
        Pending {
            builder: BodyBuilder::new(self.max_body_bytes, self.ctx.ttl_seconds),
            points: Vec::new(),
            oldest: None,
        }
    }

    /// Whether the next body should go to disk rather than to Blueflood.
    fn spill_wanted(&self) -> bool {
        let Some(spool) = &self.spool else {
            return false;
        };
        spool.usable() && (spool.is_degraded() || self.buffer.fill() > self.spool_threshold)
    }

    /// Runs until `inputs_done` has fired and everything is delivered or dropped, or until the
    /// delivery context's `abort` (the shutdown deadline).
    pub async fn run(self) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let tasks = TaskTracker::new();
        let mut pending = self.new_pending();
        let mut taken: Vec<Entry> = Vec::with_capacity(TAKE_CHUNK);
        let abort = self.ctx.abort.clone();
        // Points the deadline caught in this loop's hands: spooled or counted lost at the end.
        let mut cut: Vec<Datapoint> = Vec::new();
        'run: loop {
            self.health.flusher.beat();
            // Register for wake-ups before looking, so a push in between is not missed.
            let data = self.buffer.data_ready();
            tokio::pin!(data);
            loop {
                taken.clear();
                if self.buffer.take(TAKE_CHUNK, &mut taken) == 0 {
                    break;
                }
                let mut entries = taken.drain(..);
                while let Some(entry) = entries.next() {
                    if let Err(left) = self.add(&mut pending, entry, &permits, &tasks).await {
                        cut.extend(left);
                        cut.extend(entries.map(|e| e.point));
                        break 'run;
                    }
                }
            }
            let draining = self.inputs_done.is_cancelled();
            let linger = if self.spill_wanted() {
                self.interval.min(SPILL_LINGER)
            } else {
                self.interval
            };
            let due = pending
                .oldest
                .is_some_and(|t| draining || t.elapsed() >= linger);
            if due {
                let full = std::mem::replace(&mut pending, self.new_pending());
                if let Err(left) = self.dispatch(full, &permits, &tasks).await {
                    cut.extend(left);
                    break 'run;
                }
            }
            if draining && pending.points.is_empty() && self.buffer.is_empty() {
                break;
            }
            let wake = pending.oldest.map(|t| t + linger);
            tokio::select! {
                () = &mut data => {}
                () = sleep_until(wake) => {}
                () = self.inputs_done.cancelled(), if !draining => {}
                () = tokio::time::sleep(BEAT_EVERY) => {}
                () = abort.cancelled() => break 'run,
            }
        }
        if abort.is_cancelled() {
            cut.append(&mut pending.points);
        }
        self.ctx.keep_at_deadline(cut).await;
        tasks.close();
        tasks.wait().await;
    }

    /// Adds one point to the pending body, dispatching the body first when it is full.
    /// `Err` with the points in hand when the deadline aborted a dispatch.
    async fn add(
        &self,
        pending: &mut Pending,
        entry: Entry,
        permits: &Arc<Semaphore>,
        tasks: &TaskTracker,
    ) -> Result<(), Vec<Datapoint>> {
        loop {
            match pending.builder.offer(&entry.point) {
                Offer::Added => {
                    pending.points.push(entry.point);
                    pending.oldest.get_or_insert(entry.arrived);
                    return Ok(());
                }
                Offer::Full => {
                    let full = std::mem::replace(pending, self.new_pending());
                    if let Err(mut left) = self.dispatch(full, permits, tasks).await {
                        // The point in hand was never added: it goes with the rest.
                        left.push(entry.point);
                        return Err(left);
                    }
                }
                Offer::TooLarge => {
                    InFlightDropped {
                        reason: DropReason::TooLarge,
                        count: 1,
                        detail: "one datapoint encodes larger than the request size limit",
                    }
                    .emit(&self.ctx.ledger, &self.ctx.logs);
                    return Ok(());
                }
            }
        }
    }

    /// Spools `points` when that is wanted: `Ok` when all went to disk, otherwise `Err` with
    /// what is left to send (and `json` set to its body when a part went to disk).
    async fn try_spill(
        &self,
        points: Vec<Datapoint>,
        json: &mut Option<Vec<u8>>,
    ) -> Result<(), Vec<Datapoint>> {
        let Some(spool) = self.spool.as_ref().filter(|_| self.spill_wanted()) else {
            return Err(points);
        };
        let n = points.len();
        match spool.spill(points).await {
            Ok(()) => Ok(()),
            Err(Refused(rest)) => {
                if rest.len() < n {
                    // Part went to disk: the body must be re-encoded for the rest.
                    *json = Some(blueflood::encode_body(&rest, self.ctx.ttl_seconds));
                }
                Err(rest)
            }
        }
    }

    /// Spools `body` when that is wanted, otherwise waits for a free delivery slot and starts
    /// delivering it. `Err` with the body's points when the deadline comes first.
    async fn dispatch(
        &self,
        body: Pending,
        permits: &Arc<Semaphore>,
        tasks: &TaskTracker,
    ) -> Result<(), Vec<Datapoint>> {
        if body.points.is_empty() {
            return Ok(());
        }
        let Pending {
            builder,
            mut points,
            ..
        } = body;
        let mut json = None;
        points = match self.try_spill(points, &mut json).await {
            Err(rest) => rest,
            Ok(()) => return Ok(()),
        };
        // Waiting for a slot is progress by design (Blueflood is slow): keep beating. With a
        // spool, look again now and then: the buffer may have crossed the threshold meanwhile.
        let recheck = if self.spool.is_some() {
            SPILL_LINGER
        } else {
            BEAT_EVERY
        };
        let permit = loop {
            tokio::select! {
                p = permits.clone().acquire_owned() => break p,
                () = self.ctx.abort.cancelled() => return Err(points),
                () = tokio::time::sleep(recheck) => {
                    self.health.flusher.beat();
                    points = match self.try_spill(points, &mut json).await {
                        Err(rest) => rest,
                        Ok(()) => return Ok(()),
                    };
                }
            }
        };
        let Ok(permit) = permit else {
            // The semaphore is never closed; if it were, nothing could be sent.
            return Err(points);
        };
        let ctx = self.ctx.clone();
        let json = json.unwrap_or_else(|| builder.finish());
        let span = tracing::info_span!(
            "flush",
            datapoints = points.len() as i64,
            bytes = json.len() as i64
        );
        tasks.spawn(
            async move {
                ctx.deliver(points, json, Origin::Live).await;
                drop(permit);
            }
            .instrument(span),
        );
        Ok(())
    }
}

async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
