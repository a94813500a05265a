//! The admin server's connections: accepted up to `admin_max_connections` (more are answered
//! 503 and closed at once, counted), each served by hyper's HTTP/1 connection with a header
//! read timeout, and none kept past [`MAX_CONNECTION_AGE`].
//!
//! hyper's header read timeout (`admin_header_timeout`) runs from when a connection opens and
//! again from each answer until the next request's whole header has arrived, so one bound
//! closes silent connections, half-sent and trickled headers, and idle keep-alives alike. The
//! connection limit keeps the admin port's share of the process's file descriptors small and
//! fixed, so that no load on it can take from the carbon listeners what they need to accept.
//! `axum::serve` has neither bound, hence hyper driven directly here, with the same router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::AdminState;
use crate::accounting::Listener;
use crate::events::{
    AcceptFailed, AdminConnectionAccepted, AdminConnectionClosed, AdminConnectionRefused,
    AdminConnectionTimedOut, InternalEvent,
};

/// However it behaves, a connection is asked to close after this long, and closed
/// `admin_header_timeout` later if it has still not finished: a client that never reads its
/// answer, or sends request after request, cannot hold a slot for ever. Far above any probe or
/// scrape; a keep-alive client simply opens a new connection.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);

/// After a failed `accept` (out of file descriptors): long enough not to spin, short enough
/// that a probe waiting in the kernel's queue is still answered in time.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What one connection buffers of requests (hyper's default is about 400 KiB): probes and
/// scrapes send a few hundred bytes, a bearer token included, so 64 connections hold 4 MiB at
/// most instead of 25.
const MAX_REQUEST_BUFFER: usize = 64 * 1024;

/// What a connection over the limit is told before it is closed (written only if the socket
/// takes it at once).
const REFUSED: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// Serves `app` on `listener` until `stop`; then asks every connection to finish its answer
/// and close, and waits for them (each within its own bound).
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    state: Arc<AdminState>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(state.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                AcceptFailed {
                    listener: Listener::Admin,
                    error: &error,
                    retry_in: ACCEPT_BACKOFF,
                }
                .emit(&state.ledger, &state.logs);
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = stop.cancelled() => break,
                }
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            AdminConnectionRefused {
                peer,
                limit: state.max_connections,
            }
            .emit(&state.ledger, &state.logs);
            let _ = stream.try_write(REFUSED);
            continue;
        };
        AdminConnectionAccepted.emit(&state.ledger, &state.logs);
        tracker.spawn(connection(
            stream,
            peer,
            app.clone(),
            state.clone(),
            stop.clone(),
            permit,
        ));
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// One connection, from accept to close.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    state: Arc<AdminState>,
    stop: CancellationToken,
    permit: OwnedSemaphorePermit,
) {
    let header_timeout = state.header_timeout;
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_REQUEST_BUFFER)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let mut deadline = Instant::now() + MAX_CONNECTION_AGE;
    let mut closing = false;
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break Some(r),
            () = tokio::time::sleep_until(deadline) => {
                if closing {
                    break None;
                }
                closing = true;
                conn.as_mut().graceful_shutdown();
                deadline = Instant::now() + header_timeout;
            }
            () = stop.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
                deadline = Instant::now() + header_timeout;
            }
        }
    };
    let why = match &result {
        Some(Ok(())) => None,
        Some(Err(e)) if e.is_timeout() => {
            Some("no whole request header within admin_header_timeout")
        }
        Some(Err(e)) => {
            tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            None
        }
        None => Some("still busy after its maximum age: its answer was not taken"),
    };
    if let Some(why) = why {
        AdminConnectionTimedOut { peer, why }.emit(&state.ledger, &state.logs);
    }
    AdminConnectionClosed.emit(&state.ledger, &state.logs);
    drop(permit);
}
