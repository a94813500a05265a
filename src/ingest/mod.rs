//! Listeners: accept carbon senders over TCP (pickle or line) and UDP (line), decode what they
//! send with `protocol`, normalise it, and push it into the buffer. Reading a socket never
//! waits on HTTP, only (under the `block` policy) on room in the buffer.
//!
//! Every datapoint decoded is counted as received, then either pushed or dropped with a reason;
//! input refused as a whole (bad frame, overlong line) is counted as bad input.

pub mod bind;
pub mod conn_registry;
pub mod framing;
pub mod normalize;
pub mod tcp;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::accounting::{DropReason, Ledger};
use crate::buffer::{Buffer, PushOutcome};
use crate::config::settings::{IngestSettings, Protocol};
use crate::events::{InternalEvent, LogLimits, PointsDropped, PointsReceived};
use crate::model::Datapoint;
use crate::model::now_ms;
use crate::protocol::{PointError, RawPoint};
use normalize::Normalizer;

/// What every listener and connection shares.
pub struct IngestContext {
    pub settings: IngestSettings,
    pub normalizer: Normalizer,
    pub ledger: Arc<Ledger>,
    pub buffer: Arc<Buffer>,
    pub logs: Arc<LogLimits>,
    /// Fires at the shutdown deadline (or when the drain is cut short): connections still
    /// reading what their senders had sent stop at once.
    pub stop_draining: CancellationToken,
}

impl IngestContext {
    /// Counts and logs what a push into the buffer refused.
    pub fn report_push(&self, peer: SocketAddr, protocol: Protocol, outcome: PushOutcome) {
        if let Some(reason) = outcome.reason {
            PointsDropped {
                peer,
                protocol,
                reason,
                count: outcome.dropped as u64,
                detail: "buffer full",
            }
            .emit(&self.ledger, &self.logs);
        }
    }

    /// Counts `decoded` as received, normalises each point and returns the good ones; the bad
    /// ones are counted (one event per reason per call, not per point).
    pub fn accept<'a>(
        &self,
        peer: SocketAddr,
        protocol: Protocol,
        decoded: impl IntoIterator<Item = Result<RawPoint<'a>, PointError>>,
        out: &mut Vec<Datapoint>,
    ) {
        let now = now_ms();
        let mut received = 0u64;
        // Per reason: how many, and the first detail seen (for the log line).
        let mut bad = [(0u64, ""); DropReason::ALL.len()];
        for item in decoded {
            received += 1;
            let (reason, detail) = match item {
                Ok(raw) => match self.normalizer.normalize(raw, now) {
                    Ok(p) => {
                        out.push(p);
                        continue;
                    }
                    Err(reason) => (reason, reason.label()),
                },
                Err(e) => (DropReason::DecodeError, e.reason()),
            };
            let slot = &mut bad[reason as usize];
            slot.0 += 1;
            if slot.1.is_empty() {
                slot.1 = detail;
            }
        }
        if received == 0 {
            return;
        }
        PointsReceived {
            protocol,
            count: received,
        }
        .emit(&self.ledger, &self.logs);
        for (reason, (count, detail)) in DropReason::ALL.into_iter().zip(bad) {
            if count > 0 {
                PointsDropped {
                    peer,
                    protocol,
                    reason,
                    count,
                    detail,
                }
                .emit(&self.ledger, &self.logs);
            }
        }
    }
}
