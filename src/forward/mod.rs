//! Delivery: takes points from the buffer, cuts them into Blueflood-sized bodies, and hands
//! each body to a delivery task, at most `concurrency` at a time. A body is sent when it is
//! full, or when its oldest point has waited `interval`; a retry never waits for new data.
//! Only `blueflood` knows the wire format.
//!
//! Whether a body goes to disk instead of the wire is `spill.rs`'s decision; cutting points
//! into bodies is `body.rs`'s; what an answer means is `blueflood`'s, what to do about it
//! `policy.rs`'s, and `deliver.rs` drives one body until every point is settled. Each body
//! holds a slot in the buffer's register of batches in flight until it is settled, so its age
//! shows in `depth.rs`'s pending figures.

pub mod answer;
mod bisect;
pub mod blueflood;
mod body;
pub mod deliver;
pub mod depth;
mod policy;
pub mod replay;
pub mod spill;
pub mod transport;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::buffer::{Buffer, Entry, Held, Holding};
use crate::health::{BEAT_EVERY, Health};
use crate::model::Datapoint;
use body::{Body, BodyCutter};
pub use deliver::{DeliveryContext, Origin, Settled};
pub use depth::Depth;
pub use spill::SpillPolicy;

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

/// The body being filled, when its oldest point arrived, and the memory its points are
/// charged (for `/buffer`: they left the buffer's bytes when taken).
struct Pending {
    cutter: BodyCutter,
    oldest: Option<Instant>,
    bytes: u64,
}

impl Pending {
    /// The body's age and memory, and the cutter emptied of them for the next body.
    fn held(&mut self) -> Held {
        Held {
            arrived: self.oldest.take(),
            bytes: std::mem::take(&mut self.bytes),
        }
    }
}

/// The flusher's hands: the body being filled and the points taken for it not yet added.
fn hands(pending: &Pending, rest: &[Entry]) -> Held {
    let rest_bytes: usize = rest.iter().map(|e| e.point.buffer_cost()).sum();
    Held {
        arrived: pending.oldest.or(rest.first().map(|e| e.arrived)),
        bytes: pending.bytes + rest_bytes as u64,
    }
}

impl Flusher {
    /// Runs until `inputs_done` has fired and everything is delivered or dropped, or until the
    /// delivery context's `abort` (the shutdown deadline).
    pub async fn run(self) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let tasks = TaskTracker::new();
        let mut pending = Pending {
            cutter: BodyCutter::new(self.max_body_bytes, self.ctx.ttl_seconds),
            oldest: None,
            bytes: 0,
        };
        let register = self.buffer.in_flight().clone();
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
                register.set_hands(hands(&pending, &taken));
                let mut entries = taken.drain(..);
                while let Some(entry) = entries.next() {
                    let added = self.add(&mut pending, entry, entries.as_slice(), &permits, &tasks);
                    if let Err(left) = added.await {
                        cut.extend(left);
                        cut.extend(entries.map(|e| e.point));
                        break 'run;
                    }
                }
                register.set_hands(hands(&pending, &[]));
            }
            let draining = self.inputs_done.is_cancelled();
            let linger = self.ctx.spill.linger(self.interval);
            let due = pending
                .oldest
                .is_some_and(|t| draining || t.elapsed() >= linger);
            if due {
                let held = pending.held();
                if let Some(body) = pending.cutter.take()
                    && let Err(left) = self.dispatch(body, held, &permits, &tasks).await
                {
                    cut.extend(left);
                    break 'run;
                }
            }
            if draining && pending.cutter.is_empty() && self.buffer.is_empty() {
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
        register.set_hands(Held::default());
        // Empty unless the deadline came first.
        cut.append(&mut pending.cutter.take_points());
        self.ctx.spill.keep_at_deadline(cut).await;
        tasks.close();
        tasks.wait().await;
    }

    /// Adds one point to the pending body, dispatching the body first when it is full.
    /// `rest`: the points taken with it, still to be added (in the flusher's hands while a
    /// full body waits for a slot). `Err` with the points in hand when the deadline aborted a
    /// dispatch.
    async fn add(
        &self,
        pending: &mut Pending,
        entry: Entry,
        rest: &[Entry],
        permits: &Arc<Semaphore>,
        tasks: &TaskTracker,
    ) -> Result<(), Vec<Datapoint>> {
        let cost = entry.point.buffer_cost() as u64;
        let cut = pending.cutter.push(entry.point);
        let full = cut.completed.map(|body| (body, pending.held()));
        if cut.added {
            pending.oldest.get_or_insert(entry.arrived);
            pending.bytes += cost;
        } else {
            self.ctx.drop_too_large(1);
        }
        match full {
            Some((body, held)) => {
                // The full body gets its own slot in dispatch; the hands keep the rest.
                let holding = self.buffer.in_flight().hold(held);
                self.buffer.in_flight().set_hands(hands(pending, rest));
                self.dispatch_held(body, holding, permits, tasks).await
            }
            None => Ok(()),
        }
    }

    /// [`Flusher::dispatch_held`] for a body whose age and memory are `held`.
    async fn dispatch(
        &self,
        body: Body,
        held: Held,
        permits: &Arc<Semaphore>,
        tasks: &TaskTracker,
    ) -> Result<(), Vec<Datapoint>> {
        let holding = self.buffer.in_flight().hold(held);
        self.buffer.in_flight().set_hands(Held::default());
        self.dispatch_held(body, holding, permits, tasks).await
    }

    /// Spools `body` when that is wanted, otherwise waits for a free delivery slot and starts
    /// delivering it; `holding` shows its age until it is settled. `Err` with the body's points
    /// when the deadline comes first.
    async fn dispatch_held(
        &self,
        body: Body,
        holding: Holding,
        permits: &Arc<Semaphore>,
        tasks: &TaskTracker,
    ) -> Result<(), Vec<Datapoint>> {
        let Body { points, mut json } = body;
        let spill = &self.ctx.spill;
        let arrived = holding.arrived();
        let mut points = match spill.before_send(points, arrived).await {
            Ok(()) => return Ok(()),
            Err(kept) => self.kept(kept, &mut json),
        };
        // Waiting for a slot is progress by design (Blueflood is slow): keep beating. With a
        // spool, look again now and then: the buffer may have crossed the threshold meanwhile.
        let recheck = spill.recheck_every().unwrap_or(BEAT_EVERY);
        let permit = loop {
            tokio::select! {
                p = permits.clone().acquire_owned() => break p,
                () = self.ctx.abort.cancelled() => return Err(points),
                () = tokio::time::sleep(recheck) => {
                    self.health.flusher.beat();
                    points = match spill.before_send(points, arrived).await {
                        Ok(()) => return Ok(()),
                        Err(kept) => self.kept(kept, &mut json),
                    };
                }
            }
        };
        let Ok(permit) = permit else {
            // The semaphore is never closed; if it were, nothing could be sent.
            return Err(points);
        };
        let ctx = self.ctx.clone();
        let span = tracing::info_span!(
            "flush",
            datapoints = points.len() as i64,
            bytes = json.len() as i64
        );
        tasks.spawn(
            async move {
                ctx.deliver(points, json, Origin::Live { arrived }).await;
                drop((permit, holding));
            }
            .instrument(span),
        );
        Ok(())
    }

    /// What a spill left to send; its body is encoded again when part went to disk.
    fn kept(&self, kept: spill::Kept, json: &mut Vec<u8>) -> Vec<Datapoint> {
        if kept.partly_spilled {
            *json = blueflood::encode_body(&kept.points, self.ctx.ttl_seconds);
        }
        kept.points
    }
}

async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
