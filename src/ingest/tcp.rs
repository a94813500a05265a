//! TCP listeners and their connections, for pickle frames and for lines.
//!
//! Bounds: `max_connections` open connections over all listeners (at the limit a new one makes
//! room by closing the connection idle longest, counted; it is refused, counted, only when
//! every connection is busy pushing points); `partial_frame_bytes` of incomplete frames and
//! lines over all connections (above it the connections holding the most are closed, counted;
//! both in [`super::conn_registry`]); a pickle length header above `max_frame_bytes` closes the
//! connection before the frame is read (its stream can no longer be trusted to be in sync); a
//! line above `max_line_bytes` is skipped up to its newline; a connection that completes no
//! frame or line for `idle_timeout` (silent, or trickling bytes) is closed and counted. At
//! shutdown the
//! listener stops accepting and each connection reads what is already waiting in its socket,
//! for at most `DRAIN_MAX` and no longer than the shutdown deadline, before closing.
//! Framing and the read buffer's size are in [`super::framing`].

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::IngestContext;
use super::conn_registry::{ConnRegistry, ConnSlot};
use super::framing::{Frame, FrameFault, Framing, ReadBuf};
use crate::accounting::{BadInput, Listener};
use crate::config::settings::Protocol;
use crate::events::{
    AcceptFailed, BadInputReceived, ConnectionAccepted, ConnectionClosed, ConnectionIdle,
    ConnectionRefused, InternalEvent,
};
use crate::model::Datapoint;
use crate::protocol::{PointError, RawPoint, line, pickle};

/// While draining, a read that waits longer than this means the socket is empty.
const DRAIN_QUIET: Duration = Duration::from_millis(100);
/// A sender that keeps writing during shutdown is cut off after this long.
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// A connection keeps its decoded-point scratch vector between frames up to this many entries
/// (a carbon-relay frame has 500); a larger one, from an unusual frame, is freed.
const SPARE_MAX_POINTS: usize = 4096;

/// Accepts connections until `shutdown`, then waits for every connection to drain.
pub async fn serve(
    listener: TcpListener,
    protocol: Protocol,
    ctx: Arc<IngestContext>,
    connections: Arc<ConnRegistry>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                // Out of file descriptors and the like: pause instead of spinning, then accept
                // again (the connection waits in the kernel's queue).
                let retry_in = Duration::from_millis(50);
                AcceptFailed {
                    listener: Listener::carbon(protocol),
                    error: &error,
                    retry_in,
                }
                .emit(&ctx.ledger, &ctx.logs);
                tokio::time::sleep(retry_in).await;
                continue;
            }
        };
        let Ok(slot) = connections.admit(peer) else {
            ConnectionRefused {
                peer,
                limit: ctx.settings.max_connections,
            }
            .emit(&ctx.ledger, &ctx.logs);
            drop(stream);
            continue;
        };
        ConnectionAccepted.emit(&ctx.ledger, &ctx.logs);
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            tracing::debug!(%peer, protocol = protocol.label(), "connection opened");
            Connection::new(stream, peer, protocol, &ctx, slot)
                .run(&shutdown)
                .await;
            ConnectionClosed.emit(&ctx.ledger, &ctx.logs);
            tracing::debug!(%peer, "connection closed");
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

struct Connection<'a> {
    stream: TcpStream,
    peer: SocketAddr,
    protocol: Protocol,
    ctx: &'a IngestContext,
    framing: Framing,
    read: ReadBuf,
    decoded: Vec<Datapoint>,
    /// The allocation `pickle_frame` decodes into, kept empty between frames.
    spare: Vec<Result<RawPoint<'static>, PointError>>,
    limits: pickle::PickleLimits,
    /// When the last complete frame or line arrived (or the connection opened).
    last_frame: Instant,
    /// Its place among all connections: the limit, the budget, and the signal to close.
    slot: ConnSlot,
}

enum Step {
    Continue,
    Close,
}

impl<'a> Connection<'a> {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        protocol: Protocol,
        ctx: &'a IngestContext,
        slot: ConnSlot,
    ) -> Self {
        let s = &ctx.settings;
        let framing = match protocol {
            Protocol::Pickle => Framing::pickle(s.max_frame_bytes),
            _ => Framing::line(s.max_line_bytes),
        };
        let limits = pickle::PickleLimits {
            max_name_bytes: s.max_name_bytes,
            ..pickle::PickleLimits::default()
        };
        Self {
            stream,
            peer,
            protocol,
            ctx,
            framing,
            read: ReadBuf::default(),
            decoded: Vec::new(),
            spare: Vec::new(),
            limits,
            last_frame: Instant::now(),
            slot,
        }
    }

    fn bad(&self, what: BadInput, detail: &str) {
        BadInputReceived {
            peer: self.peer,
            protocol: self.protocol,
            what,
            detail,
        }
        .emit(&self.ctx.ledger, &self.ctx.logs);
    }

    async fn run(mut self, shutdown: &CancellationToken) {
        let mut drain_since: Option<Instant> = None;
        loop {
            if let Step::Close = self.decode_available(false) {
                break;
            }
            self.flush().await;
            self.read.make_room();
            // What was decoded is flushed: closing here loses no point. Checked before every
            // read, so a connection told to close while it had data waiting stops now rather
            // than when `select!` happens to pick the signal.
            if self.slot.hold(self.read.held()) || self.slot.closing().is_cancelled() {
                break;
            }
            let closing = self.slot.closing().clone();
            let read = match drain_since {
                Some(since) => {
                    if since.elapsed() >= DRAIN_MAX {
                        break;
                    }
                    tokio::select! {
                        r = tokio::time::timeout(DRAIN_QUIET, self.stream.read_buf(&mut self.read.buf)) => match r {
                            Ok(r) => r,
                            Err(_) => break,
                        },
                        () = self.ctx.stop_draining.cancelled() => break,
                        () = closing.cancelled() => break,
                    }
                }
                None => {
                    // Measured from the last complete frame or line, not the last byte: a
                    // sender trickling one byte at a time must not hold a connection forever.
                    let idle = self.ctx.settings.idle_timeout;
                    let deadline = tokio::time::Instant::from_std(self.last_frame + idle);
                    tokio::select! {
                        r = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.read.buf)) => match r {
                            Ok(r) => r,
                            Err(_) => {
                                ConnectionIdle { peer: self.peer, idle }.emit(&self.ctx.ledger, &self.ctx.logs);
                                break;
                            }
                        },
                        () = shutdown.cancelled() => {
                            drain_since = Some(Instant::now());
                            continue;
                        }
                        // Closed to make room for a new connection, or over the budget: both
                        // counted where decided.
                        () = closing.cancelled() => break,
                    }
                }
            };
            match read {
                Ok(0) => {
                    self.decode_available(true);
                    break;
                }
                Ok(_) => self.read.filled(),
                Err(e) => {
                    tracing::debug!(peer = %self.peer, error = %e, "read failed");
                    break;
                }
            }
        }
        self.flush().await;
    }

    /// Decodes every complete frame in the buffer (and, at end of stream, what is left).
    fn decode_available(&mut self, eof: bool) -> Step {
        let mut completed = false;
        let step = self.decode_frames(eof, &mut completed);
        if completed {
            self.frame_completed();
        }
        step
    }

    /// A frame or line completed (or a wait for room ended): the connection is not idle.
    fn frame_completed(&mut self) {
        let now = Instant::now();
        self.last_frame = now;
        self.slot.frame_completed_at(now);
    }

    fn decode_frames(&mut self, eof: bool, completed: &mut bool) -> Step {
        loop {
            let next = self.framing.next(&mut self.read.buf, eof);
            *completed |= matches!(next, Ok(Some(_)));
            match next {
                Ok(Some(Frame::Pickle(frame))) => self.pickle_frame(&frame),
                Ok(Some(Frame::Line(l))) => self.line(&l),
                Ok(None) => return Step::Continue,
                Err(FrameFault::LineTooLong) => {
                    self.bad(BadInput::LineTooLong, "line longer than max_line_bytes")
                }
                Err(FrameFault::Truncated) => {
                    self.bad(BadInput::TruncatedFrame, "connection closed inside a frame");
                    return Step::Close;
                }
                Err(FrameFault::FrameTooLarge) => {
                    self.bad(
                        BadInput::FrameTooLarge,
                        "frame length above max_frame_bytes; closing the connection",
                    );
                    return Step::Close;
                }
            }
        }
    }

    fn pickle_frame(&mut self, frame: &[u8]) {
        if frame.is_empty() {
            self.bad(BadInput::EmptyFrame, "zero-length frame");
            return;
        }
        let mut raw = recycle(std::mem::take(&mut self.spare));
        match pickle::decode_frame(frame, &self.limits, &mut raw) {
            Ok(()) => {
                self.decoded.reserve(raw.len());
                self.ctx
                    .accept(self.peer, self.protocol, raw.drain(..), &mut self.decoded)
            }
            Err(e) => self.bad(BadInput::PickleFrame, e.reason()),
        }
        if raw.capacity() <= SPARE_MAX_POINTS {
            self.spare = recycle(raw);
        }
    }

    fn line(&mut self, l: &[u8]) {
        if line::is_blank(l) {
            return;
        }
        let parsed = line::parse_line(l, self.ctx.settings.max_name_bytes);
        self.ctx.accept(
            self.peer,
            self.protocol,
            std::iter::once(parsed),
            &mut self.decoded,
        );
    }

    /// Hands what was decoded to the buffer (waiting for room under the `block` policy: busy,
    /// not idle, meanwhile).
    async fn flush(&mut self) {
        if !self.decoded.is_empty() {
            let points = std::mem::take(&mut self.decoded);
            self.slot.set_busy(true);
            let outcome = self.ctx.buffer.push(points).await;
            self.slot.set_busy(false);
            // A wait for room is not idleness, for the idle timeout and for eviction alike.
            self.frame_completed();
            self.ctx.report_push(self.peer, self.protocol, outcome);
        }
    }
}

/// Empties `v` and hands its allocation back typed for another frame's lifetime: an in-place
/// `collect` of an emptied vector into an element type of the same layout reuses the buffer
/// (the conversion is total, and never runs: there is nothing left to convert).
fn recycle<'b>(
    mut v: Vec<Result<RawPoint<'_>, PointError>>,
) -> Vec<Result<RawPoint<'b>, PointError>> {
    v.clear();
    v.into_iter()
        .map(|item| {
            item.map(|p| RawPoint {
                name: Cow::Owned(p.name.into_owned()),
                timestamp: p.timestamp,
                value: p.value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycle_keeps_the_allocation_and_empties_it() {
        let frame = String::from("a.b");
        let mut v: Vec<Result<RawPoint<'_>, PointError>> = Vec::with_capacity(500);
        v.push(Ok(RawPoint {
            name: Cow::Borrowed(&frame),
            timestamp: 1.0,
            value: 2.0,
        }));
        let ptr = v.as_ptr() as usize;
        let spare: Vec<Result<RawPoint<'static>, PointError>> = recycle(v);
        assert!(spare.is_empty());
        assert_eq!(spare.capacity(), 500);
        assert_eq!(spare.as_ptr() as usize, ptr);
    }
}
