//! Wires the pieces into a running forwarder and shuts it down in order.
//!
//! Start: everything that can fail (settings are already valid; binding sockets, building the
//! HTTP client) fails here, before any task runs. Shutdown (on [`Running::shutdown`], which the
//! binary calls on SIGTERM/SIGINT): listeners stop accepting and connections read what is
//! already waiting; then everything buffered is flushed; whatever is still undelivered when
//! `shutdown_timeout` (counted from the signal) runs out is counted as `shutdown_timeout`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounting::{Ledger, LedgerSnapshot};
use crate::auth::{self, AuthError, AuthTiming};
use crate::buffer::Buffer;
use crate::config::settings::{Protocol, Settings};
use crate::events::LogLimits;
use crate::forward::transport::{DryRunTransport, HttpTransport, Transport, TransportError};
use crate::forward::{DeliveryContext, Flusher};
use crate::ingest::bind::{self, BindError};
use crate::ingest::normalize::Normalizer;
use crate::ingest::{IngestContext, tcp, udp};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// A forwarder that is listening and delivering.
pub struct Running {
    addrs: Vec<(Protocol, SocketAddr)>,
    ledger: Arc<Ledger>,
    buffer: Arc<Buffer>,
    shutdown: CancellationToken,
    done: JoinHandle<LedgerSnapshot>,
}

impl Running {
    /// Every bound listener, with its protocol (the real port when the config said 0).
    pub fn local_addrs(&self) -> &[(Protocol, SocketAddr)] {
        &self.addrs
    }

    /// The first listener for `protocol`.
    pub fn local_addr(&self, protocol: Protocol) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| *a)
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub fn buffer(&self) -> &Arc<Buffer> {
        &self.buffer
    }

    /// Starts the graceful shutdown; [`Running::wait`] returns when it is over.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits for the forwarder to finish (after [`Running::shutdown`]) and returns the final
    /// counters.
    pub async fn wait(self) -> LedgerSnapshot {
        match self.done.await {
            Ok(s) => s,
            // The supervisor only ends by returning; a panic there is a bug, the ledger still
            // tells what happened.
            Err(_) => self.ledger.snapshot(),
        }
    }
}

/// Binds every listener and starts ingest and delivery. Must run inside a Tokio runtime.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let ledger = Arc::new(Ledger::default());
    let logs = Arc::new(LogLimits::default());
    let buffer = Arc::new(Buffer::new(
        settings.buffer.max_bytes,
        settings.buffer.policy,
        ledger.clone(),
    ));

    // Bind everything before starting anything, so a taken port fails the start cleanly.
    let mut tcp_listeners = Vec::new();
    let mut udp_sockets = Vec::new();
    let mut addrs = Vec::new();
    for spec in &settings.listeners {
        match spec.protocol {
            Protocol::Pickle | Protocol::LineTcp => {
                let l = bind::tcp(spec)?;
                let addr = l.local_addr().map_err(|source| BindError {
                    transport: "tcp",
                    addr: SocketAddr::from(([0, 0, 0, 0], spec.port)),
                    source,
                })?;
                addrs.push((spec.protocol, addr));
                tcp_listeners.push((spec.protocol, l));
            }
            Protocol::LineUdp => {
                let s = bind::udp(spec)?;
                let addr = s.local_addr().map_err(|source| BindError {
                    transport: "udp",
                    addr: SocketAddr::from(([0, 0, 0, 0], spec.port)),
                    source,
                })?;
                addrs.push((spec.protocol, addr));
                udp_sockets.push(s);
            }
        }
    }

    let transport: Arc<dyn Transport> = if settings.dry_run {
        Arc::new(DryRunTransport::default())
    } else {
        Arc::new(HttpTransport::new(&settings.forward)?)
    };
    // Dry runs send nothing, so they need no identity service either.
    let auth_settings = settings.auth.as_ref().filter(|_| !settings.dry_run);
    let auth = auth::provider(auth_settings, AuthTiming::from_forward(&settings.forward)).await?;

    let shutdown = CancellationToken::new();
    let abort = CancellationToken::new();
    let inputs_done = CancellationToken::new();
    let ctx = Arc::new(DeliveryContext {
        transport,
        auth,
        ledger: ledger.clone(),
        logs: logs.clone(),
        ttl_seconds: settings.forward.ttl_seconds,
        compression: settings.forward.compression,
        retry_initial: settings.forward.retry_initial,
        retry_max: settings.forward.retry_max,
        abort: abort.clone(),
    });
    let flusher = tokio::spawn(
        Flusher {
            buffer: buffer.clone(),
            ctx,
            interval: settings.forward.interval,
            max_body_bytes: settings.forward.max_body_bytes,
            concurrency: settings.forward.concurrency,
            inputs_done: inputs_done.clone(),
        }
        .run(),
    );

    let ingest = Arc::new(IngestContext {
        normalizer: Normalizer::new(&settings.ingest),
        settings: settings.ingest.clone(),
        ledger: ledger.clone(),
        buffer: buffer.clone(),
        logs,
    });
    let connections = Arc::new(Semaphore::new(settings.ingest.max_connections));
    let listeners = TaskTracker::new();
    for (protocol, l) in tcp_listeners {
        listeners.spawn(tcp::serve(
            l,
            protocol,
            ingest.clone(),
            connections.clone(),
            shutdown.clone(),
        ));
    }
    for s in udp_sockets {
        listeners.spawn(udp::serve(s, ingest.clone(), shutdown.clone()));
    }
    listeners.close();
    for (p, a) in &addrs {
        tracing::info!(protocol = p.label(), addr = %a, "listening");
    }

    let done = tokio::spawn(supervise(
        shutdown.clone(),
        settings.shutdown_timeout,
        listeners,
        inputs_done,
        abort,
        flusher,
        buffer.clone(),
        ledger.clone(),
    ));
    Ok(Running {
        addrs,
        ledger,
        buffer,
        shutdown,
        done,
    })
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    shutdown: CancellationToken,
    timeout: std::time::Duration,
    listeners: TaskTracker,
    inputs_done: CancellationToken,
    abort: CancellationToken,
    mut flusher: JoinHandle<()>,
    buffer: Arc<Buffer>,
    ledger: Arc<Ledger>,
) -> LedgerSnapshot {
    shutdown.cancelled().await;
    let deadline = tokio::time::Instant::now() + timeout;
    tracing::info!(
        timeout_s = timeout.as_secs_f64(),
        "shutting down: draining connections, then flushing"
    );
    // Listeners and connections drain on their own bounded timers; the deadline still rules.
    let drained = tokio::time::timeout_at(deadline, listeners.wait())
        .await
        .is_ok();
    inputs_done.cancel();
    let flushed = drained
        && tokio::time::timeout_at(deadline, &mut flusher)
            .await
            .is_ok();
    if !flushed {
        abort.cancel();
        // Closing releases connections blocked on a full buffer; what they hold is counted.
        buffer.close_and_drop();
        listeners.wait().await;
        let _ = flusher.await;
    }
    buffer.close_and_drop();
    let s = ledger.snapshot();
    let lost = s.dropped(crate::accounting::DropReason::ShutdownTimeout);
    if lost > 0 {
        tracing::error!(lost, "shutdown deadline passed with undelivered datapoints");
    }
    tracing::info!(
        received = s.received(),
        delivered = s.delivered,
        dropped = s.dropped_total(),
        "stopped"
    );
    s
}
