//! Delivery: takes points from the buffer, cuts them into Blueflood-sized bodies, and hands
//! each body to a delivery task, at most `concurrency` at a time. A body is sent when it is
//! full, or when its oldest point has waited `interval`; a retry never waits for new data.
//! Only `blueflood` knows the wire format.

pub mod blueflood;
pub mod deliver;
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
use blueflood::{BodyBuilder, Offer};
pub use deliver::DeliveryContext;

/// How many points to take from the buffer per lock: enough to make the lock's cost
/// negligible per point, few enough that what waits outside the buffer (taken, not yet in a
/// body that has a delivery slot) stays small next to the buffer's own bound.
const TAKE_CHUNK: usize = 128;

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

    /// Runs until `inputs_done` has fired and everything is delivered or dropped, or until the
    /// delivery context's `abort` (the shutdown deadline).
    pub async fn run(self) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let tasks = TaskTracker::new();
        let mut pending = self.new_pending();
        let mut taken: Vec<Entry> = Vec::with_capacity(TAKE_CHUNK);
        let abort = self.ctx.abort.clone();
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
                    if !self.add(&mut pending, entry, &permits, &tasks).await {
                        // The deadline passed: the rest of this chunk is lost with the others.
                        self.lost(entries.count());
                        break 'run;
                    }
                }
            }
            let draining = self.inputs_done.is_cancelled();
            let due = pending
                .oldest
                .is_some_and(|t| draining || t.elapsed() >= self.interval);
            if due {
                let full = std::mem::replace(&mut pending, self.new_pending());
                if !self.dispatch(full, &permits, &tasks).await {
                    break 'run;
                }
            }
            if draining && pending.points.is_empty() && self.buffer.is_empty() {
                break;
            }
            let wake = pending.oldest.map(|t| t + self.interval);
            tokio::select! {
                () = &mut data => {}
                () = sleep_until(wake) => {}
                () = self.inputs_done.cancelled(), if !draining => {}
                () = tokio::time::sleep(BEAT_EVERY) => {}
                () = abort.cancelled() => break 'run,
            }
        }
        if abort.is_cancelled() && !pending.points.is_empty() {
            InFlightDropped {
                reason: DropReason::ShutdownTimeout,
                count: pending.points.len() as u64,
                detail: "shutdown deadline",
            }
            .emit(&self.ctx.ledger, &self.ctx.logs);
        }
        tasks.close();
        tasks.wait().await;
    }

    /// Adds one point to the pending body, dispatching the body first when it is full.
    /// `false` when the deadline aborted a dispatch.
    async fn add(
        &self,
        pending: &mut Pending,
        entry: Entry,
        permits: &Arc<Semaphore>,
        tasks: &TaskTracker,
    ) -> bool {
        loop {
            match pending.builder.offer(&entry.point) {
                Offer::Added => {
                    pending.points.push(entry.point);
                    pending.oldest.get_or_insert(entry.arrived);
                    return true;
                }
                Offer::Full => {
                    let full = std::mem::replace(pending, self.new_pending());
                    if !self.dispatch(full, permits, tasks).await {
                        // The point in hand was never added: count it with the rest.
                        self.lost(1);
                        return false;
                    }
                }
                Offer::TooLarge => {
                    InFlightDropped {
                        reason: DropReason::TooLarge,
                        count: 1,
                        detail: "one datapoint encodes larger than the request size limit",
                    }
                    .emit(&self.ctx.ledger, &self.ctx.logs);
                    return true;
                }
            }
        }
    }

    fn lost(&self, n: usize) {
        InFlightDropped {
            reason: DropReason::ShutdownTimeout,
            count: n as u64,
            detail: "shutdown deadline",
        }
        .emit(&self.ctx.ledger, &self.ctx.logs);
    }

    /// Waits for a free delivery slot and starts delivering `body`. `false` (and the body's
    /// points counted as lost) when the deadline comes first.
    async fn dispatch(&self, body: Pending, permits: &Arc<Semaphore>, tasks: &TaskTracker) -> bool {
        if body.points.is_empty() {
            return true;
        }
        // Waiting for a slot is progress by design (Blueflood is slow): keep beating.
        let permit = loop {
            tokio::select! {
                p = permits.clone().acquire_owned() => break p,
                () = self.ctx.abort.cancelled() => {
                    self.lost(body.points.len());
                    return false;
                }
                () = tokio::time::sleep(BEAT_EVERY) => self.health.flusher.beat(),
            }
        };
        let Ok(permit) = permit else {
            // The semaphore is never closed; if it were, nothing could be sent.
            self.lost(body.points.len());
            return false;
        };
        let ctx = self.ctx.clone();
        let json = body.builder.finish();
        let span = tracing::info_span!(
            "flush",
            datapoints = body.points.len() as i64,
            bytes = json.len() as i64
        );
        tasks.spawn(
            async move {
                ctx.deliver(body.points, json).await;
                drop(permit);
            }
            .instrument(span),
        );
        true
    }
}

async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
