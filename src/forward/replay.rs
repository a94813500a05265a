//! Replay: the drainer reads records back from the spool, oldest first, and delivers them, one
//! record at a time and at most `rate` datapoints per second, pausing while live data is
//! backing up in memory — so a long outage's backlog neither starves live data nor trips
//! Blueflood's rate limits. A record is acknowledged only once every point in it is settled;
//! until then a restart replays it (Blueflood's ingest is an idempotent upsert).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::body::BodyCutter;
use super::{DeliveryContext, Origin, Settled};
use crate::accounting::DropReason;
use crate::buffer::Held;
use crate::events::BackToSpool;
use crate::model::{Datapoint, Window};
use crate::spool::{Replay, Spool};

/// How often to look again when there is nothing to do or live data comes first.
const IDLE_CHECK: Duration = Duration::from_millis(100);

pub struct Drainer {
    pub spool: Arc<Spool>,
    pub ctx: Arc<DeliveryContext>,
    pub max_body_bytes: usize,
    /// Datapoints per second, at most.
    pub rate: u64,
    /// Points older than the window's start when read back are dropped as `out_of_window`:
    /// Blueflood would refuse them, and bisecting a whole record of them costs many requests.
    pub window: Window,
    /// Shutdown began: read no more records (what is on disk stays there).
    pub stop: CancellationToken,
}

impl Drainer {
    /// Runs until `stop`; the record in hand is finished first (or left on disk at the
    /// deadline, through the delivery context's abort).
    pub async fn run(self) {
        let mut next_at = Instant::now();
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            // Live data first: the spill policy's threshold says when it is backing up.
            if self.ctx.spill.live_backing_up() {
                self.pause(IDLE_CHECK).await;
                continue;
            }
            let Some(replay) = self.spool.next().await else {
                tokio::select! {
                    () = self.spool.written() => {}
                    () = tokio::time::sleep(IDLE_CHECK * 10) => {}
                    () = self.stop.cancelled() => return,
                }
                continue;
            };
            let n = replay.points.len() as u64;
            let now = Instant::now();
            if next_at > now {
                tokio::select! {
                    () = tokio::time::sleep_until(next_at) => {}
                    () = self.stop.cancelled() => {
                        // Read but not sent: it is still on disk, unacknowledged.
                        self.ctx.emit(BackToSpool { points: n });
                        return;
                    }
                }
            }
            next_at = next_at.max(now) + Duration::from_secs_f64(n as f64 / self.rate as f64);
            let id = replay.id;
            // Its memory shows in flight; its age stays the spool's (an unacknowledged record
            // is still the spool's oldest), so it is not given twice.
            let bytes: usize = replay.points.iter().map(Datapoint::buffer_cost).sum();
            let _holding = self.ctx.spill.buffer().in_flight().hold(Held {
                arrived: None,
                bytes: bytes as u64,
            });
            if self.deliver(replay).await == Settled::Done {
                self.spool.ack(id).await;
            } else {
                return;
            }
        }
    }

    async fn pause(&self, d: Duration) {
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Drops what has aged out of Blueflood's window while it waited on disk.
    fn drop_expired(&self, points: Vec<Datapoint>) -> Vec<Datapoint> {
        let oldest = self.window.oldest_ms(crate::model::now_ms());
        let before = points.len();
        let kept: Vec<Datapoint> = points
            .into_iter()
            .filter(|p| p.timestamp_ms >= oldest)
            .collect();
        let expired = before - kept.len();
        if expired > 0 {
            self.ctx.drop_points(
                DropReason::OutOfWindow,
                expired,
                "older than max_past when read back from the spool",
            );
        }
        kept
    }

    /// Delivers a record in request-sized bodies, one after the other.
    async fn deliver(&self, replay: Replay) -> Settled {
        let mut points = self.drop_expired(replay.points).into_iter();
        let mut cutter = BodyCutter::new(self.max_body_bytes, self.ctx.ttl_seconds);
        while let Some(p) = points.next() {
            let cut = cutter.push(p);
            if !cut.added {
                self.ctx.drop_too_large(1);
            }
            if let Some(body) = cut.completed
                && self
                    .ctx
                    .deliver(body.points, body.json, Origin::Spooled)
                    .await
                    != Settled::Done
            {
                // The next body begun and the rest of the record stay on disk too.
                let rest = (cutter.len() + points.len()) as u64;
                self.ctx.emit(BackToSpool { points: rest });
                return Settled::LeftInSpool;
            }
        }
        match cutter.take() {
            Some(body) => {
                self.ctx
                    .deliver(body.points, body.json, Origin::Spooled)
                    .await
            }
            None => Settled::Done,
        }
    }
}
