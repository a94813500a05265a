//! TCP listeners and their connections, for pickle frames and for lines.
//!
//! Bounds: `max_connections` open connections over all listeners (more are accepted and closed
//! at once, counted); a pickle length header above `max_frame_bytes` closes the connection
//! before the frame is read (its stream can no longer be trusted to be in sync); a line above
//! `max_line_bytes` is skipped up to its newline; a connection that completes no frame or line
//! for `idle_timeout` (silent, or trickling bytes) is closed and counted. At shutdown the
//! listener stops accepting and each connection reads what is already waiting in its socket,
//! for at most `DRAIN_MAX` and no longer than the shutdown deadline, before closing.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{AnyDelimiterCodec, Decoder, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::IngestContext;
use crate::accounting::{BadInput, Listener};
use crate::config::settings::Protocol;
use crate::events::{AcceptFailed, BadInputReceived, ConnectionIdle, ConnectionRefused};
use crate::model::Datapoint;
use crate::protocol::{PointError, RawPoint, line, pickle};

/// While draining, a read that waits longer than this means the socket is empty.
const DRAIN_QUIET: Duration = Duration::from_millis(100);
/// A sender that keeps writing during shutdown is cut off after this long.
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// Bytes read per syscall at the least.
const READ_CHUNK: usize = 64 * 1024;
/// A connection keeps its decoded-point scratch vector between frames up to this many entries
/// (a carbon-relay frame has 500); a larger one, from an unusual frame, is freed.
const SPARE_MAX_POINTS: usize = 4096;

/// Accepts connections until `shutdown`, then waits for every connection to drain.
pub async fn serve(
    listener: TcpListener,
    protocol: Protocol,
    ctx: Arc<IngestContext>,
    connections: Arc<Semaphore>,
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
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            ConnectionRefused {
                peer,
                limit: ctx.settings.max_connections,
            }
            .emit(&ctx.ledger, &ctx.logs);
            drop(stream);
            continue;
        };
        ctx.ledger.connection_accepted();
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            tracing::debug!(%peer, protocol = protocol.label(), "connection opened");
            Connection::new(stream, peer, protocol, &ctx)
                .run(&shutdown)
                .await;
            ctx.ledger.connection_closed();
            drop(permit);
            tracing::debug!(%peer, "connection closed");
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// How a connection's byte stream is cut into frames.
enum Framing {
    Pickle(LengthDelimitedCodec),
    Line(AnyDelimiterCodec),
}

struct Connection<'a> {
    stream: TcpStream,
    peer: SocketAddr,
    protocol: Protocol,
    ctx: &'a IngestContext,
    framing: Framing,
    buf: BytesMut,
    decoded: Vec<Datapoint>,
    /// The allocation `pickle_frame` decodes into, kept empty between frames.
    spare: Vec<Result<RawPoint<'static>, PointError>>,
    limits: pickle::PickleLimits,
    /// When the last complete frame or line arrived (or the connection opened).
    last_frame: Instant,
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
    ) -> Self {
        let s = &ctx.settings;
        let framing = match protocol {
            Protocol::Pickle => Framing::Pickle(
                LengthDelimitedCodec::builder()
                    .length_field_length(4)
                    .big_endian()
                    .max_frame_length(s.max_frame_bytes)
                    .new_codec(),
            ),
            _ => Framing::Line(AnyDelimiterCodec::new_with_max_length(
                vec![b'\n'],
                vec![b'\n'],
                s.max_line_bytes,
            )),
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
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoded: Vec::new(),
            spare: Vec::new(),
            limits,
            last_frame: Instant::now(),
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
            self.buf.reserve(READ_CHUNK);
            let read = match drain_since {
                Some(since) => {
                    if since.elapsed() >= DRAIN_MAX {
                        break;
                    }
                    tokio::select! {
                        r = tokio::time::timeout(DRAIN_QUIET, self.stream.read_buf(&mut self.buf)) => match r {
                            Ok(r) => r,
                            Err(_) => break,
                        },
                        () = self.ctx.stop_draining.cancelled() => break,
                    }
                }
                None => {
                    // Measured from the last complete frame or line, not the last byte: a
                    // sender trickling one byte at a time must not hold a connection forever.
                    let idle = self.ctx.settings.idle_timeout;
                    let deadline = tokio::time::Instant::from_std(self.last_frame + idle);
                    tokio::select! {
                        r = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)) => match r {
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
                    }
                }
            };
            match read {
                Ok(0) => {
                    self.decode_available(true);
                    break;
                }
                Ok(_) => {}
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
        loop {
            let next = match &mut self.framing {
                Framing::Pickle(c) if eof => c
                    .decode_eof(&mut self.buf)
                    .map(|f| f.map(Frame::Pickle))
                    .map_err(FrameFault::Io),
                Framing::Pickle(c) => c
                    .decode(&mut self.buf)
                    .map(|f| f.map(Frame::Pickle))
                    .map_err(FrameFault::Io),
                Framing::Line(c) if eof => c
                    .decode_eof(&mut self.buf)
                    .map(|f| f.map(Frame::Line))
                    .map_err(line_err),
                Framing::Line(c) => c
                    .decode(&mut self.buf)
                    .map(|f| f.map(Frame::Line))
                    .map_err(line_err),
            };
            if let Ok(Some(_)) = &next {
                self.last_frame = Instant::now();
            }
            match next {
                Ok(Some(Frame::Pickle(frame))) => self.pickle_frame(&frame),
                Ok(Some(Frame::Line(l))) => self.line(&l),
                Ok(None) => return Step::Continue,
                Err(FrameFault::LineTooLong) => {
                    self.bad(BadInput::LineTooLong, "line longer than max_line_bytes")
                }
                Err(FrameFault::Io(e)) => {
                    let (what, detail) = if eof {
                        (BadInput::TruncatedFrame, "connection closed inside a frame")
                    } else {
                        (
                            BadInput::FrameTooLarge,
                            "frame length above max_frame_bytes; closing the connection",
                        )
                    };
                    tracing::debug!(peer = %self.peer, error = %e, "framing error");
                    self.bad(what, detail);
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

    /// Hands what was decoded to the buffer (waiting for room under the `block` policy).
    async fn flush(&mut self) {
        if !self.decoded.is_empty() {
            let points = std::mem::take(&mut self.decoded);
            let outcome = self.ctx.buffer.push(points).await;
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

enum Frame {
    Pickle(BytesMut),
    Line(bytes::Bytes),
}

enum FrameFault {
    LineTooLong,
    Io(std::io::Error),
}

impl From<std::io::Error> for FrameFault {
    fn from(e: std::io::Error) -> Self {
        FrameFault::Io(e)
    }
}

fn line_err(e: tokio_util::codec::AnyDelimiterCodecError) -> FrameFault {
    match e {
        tokio_util::codec::AnyDelimiterCodecError::MaxChunkLengthExceeded => {
            FrameFault::LineTooLong
        }
        tokio_util::codec::AnyDelimiterCodecError::Io(e) => FrameFault::Io(e),
    }
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
