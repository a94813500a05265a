//! Replay: the drainer reads records back from the spool, oldest first, and delivers them, one
//! record at a time and at most `rate` datapoints per second, pausing while live data is
//! backing up in memory — so a long outage's backlog neither starves live data nor trips
//! Blueflood's rate limits. A record is acknowledged only once every point in it is settled;
//! until then a restart replays it (Blueflood's ingest is an idempotent upsert).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::blueflood::{BodyBuilder, Offer};
use super::{DeliveryContext, Origin, Settled};
use crate::accounting::DropReason;
use crate::buffer::Buffer;
use crate::events::InFlightDropped;
use crate::model::Datapoint;
use crate::spool::{Replay, Spool};

/// How often to look again when there is nothing to do or live data comes first.
const IDLE_CHECK: Duration = Duration::from_millis(100);

pub struct Drainer {
    pub spool: Arc<Spool>,
    pub ctx: Arc<DeliveryContext>,
    pub buffer: Arc<Buffer>,
    pub max_body_bytes: usize,
    /// Datapoints per second, at most.
    pub rate: u64,
    /// Buffer fill above which the drainer waits (live data first).
    pub threshold: f64,
    /// Points older than this when read back are dropped as `out_of_window` instead of sent:
    /// Blueflood would refuse them, and bisecting a whole record of them costs many requests.
    pub max_past: Duration,
    /// Shutdown began: read no more records (what is on disk stays there).
    pub stop: CancellationToken,
}

impl Drainer {
    fn live_backing_up(&self) -> bool {
        self.buffer.fill() > self.threshold
    }

    /// Runs until `stop`; the record in hand is finished first (or left on disk at the
    /// deadline, through the delivery context's abort).
    pub async fn run(self) {
        let mut next_at = Instant::now();
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            if self.live_backing_up() {
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
                        self.ctx.ledger.in_flight_back_to_spool(n);
                        return;
                    }
                }
            }
            next_at = next_at.max(now) + Duration::from_secs_f64(n as f64 / self.rate as f64);
            let id = replay.id;
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
        let oldest = crate::model::now_ms().saturating_sub(self.max_past.as_millis() as i64);
        let before = points.len();
        let kept: Vec<Datapoint> = points
            .into_iter()
            .filter(|p| p.timestamp_ms >= oldest)
            .collect();
        let expired = before - kept.len();
        if expired > 0 {
            InFlightDropped {
                reason: DropReason::OutOfWindow,
                count: expired as u64,
                detail: "older than max_past when read back from the spool",
            }
            .emit(&self.ctx.ledger, &self.ctx.logs);
        }
        kept
    }

    /// Delivers a record in request-sized bodies, one after the other.
    async fn deliver(&self, replay: Replay) -> Settled {
        let mut points = self.drop_expired(replay.points).into_iter();
        let mut builder = BodyBuilder::new(self.max_body_bytes, self.ctx.ttl_seconds);
        let mut body: Vec<Datapoint> = Vec::new();
        while let Some(p) = points.next() {
            match builder.offer(&p) {
                Offer::Added => body.push(p),
                Offer::Full => {
                    let json = std::mem::replace(
                        &mut builder,
                        BodyBuilder::new(self.max_body_bytes, self.ctx.ttl_seconds),
                    )
                    .finish();
                    let sent = std::mem::take(&mut body);
                    if self.ctx.deliver(sent, json, Origin::Spooled).await != Settled::Done {
                        // The point in hand and the rest of the record stay on disk too.
                        let rest = 1 + points.len() as u64;
                        self.ctx.ledger.in_flight_back_to_spool(rest);
                        return Settled::LeftInSpool;
                    }
                    match builder.offer(&p) {
                        Offer::Added => body.push(p),
                        _ => self.too_large(),
                    }
                }
                Offer::TooLarge => self.too_large(),
            }
        }
        if body.is_empty() {
            return Settled::Done;
        }
        self.ctx
            .deliver(body, builder.finish(), Origin::Spooled)
            .await
    }

    fn too_large(&self) {
        InFlightDropped {
            reason: DropReason::TooLarge,
            count: 1,
            detail: "one datapoint encodes larger than the request size limit",
        }
        .emit(&self.ctx.ledger, &self.ctx.logs);
    }
}
