//! Wires the pieces into a running forwarder and shuts it down in order.
//!
//! Start, in two steps: [`bind()`] builds everything and binds every socket (the admin port
//! first, so probes are answered — "starting" — while the spool is recovered and the rest
//! binds); whatever can fail fails
//! there, before any datapoint is read. [`Starting::run`] then starts ingest and delivery and
//! flips readiness to ready. [`start`] does both.
//!
//! Shutdown (on [`Running::shutdown`], which the binary calls on SIGTERM/SIGINT; the sequence
//! is in `shutdown`): with a `shutdown_delay`, readiness first turns to delaying while
//! everything goes on as before (listeners accept, delivery runs) until the delay is over or
//! [`Running::wait_delay`] ends it (a second signal). Then readiness turns to draining,
//! listeners stop accepting and connections read what is already waiting; then everything
//! buffered is flushed; whatever is still undelivered when `shutdown_timeout` (counted from
//! the end of the delay) runs out — or when [`Running::wait_unless`] cuts the drain short (a
//! further signal) — is counted as
//! `shutdown_timeout`, or, with a spool, written to the spool for the next start. The admin
//! server answers until the end.

mod admin_server;
pub mod fd_limit;
mod shutdown;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounting::{Ledger, LedgerSnapshot};
use crate::admin::AdminBindError;
use crate::auth::{self, AuthError, AuthTiming};
use crate::backoff::InvalidBackoff;
use crate::buffer::Buffer;
use crate::config::settings::{ListenerSpec, Protocol, Settings, SpoolFsync};
use crate::events::LogLimits;
use crate::forward::replay::Drainer;
use crate::forward::transport::{DryRunTransport, HttpTransport, Transport, TransportError};
use crate::forward::{DeliveryContext, Flusher, SpillPolicy};
use crate::health::{BEAT_EVERY, Health};
use crate::ingest::bind::{self, BindError};
use crate::ingest::conn_registry::ConnRegistry;
use crate::ingest::normalize::Normalizer;
use crate::ingest::{IngestContext, tcp, udp};
use crate::model::Window;
use crate::spool::{Spool, SpoolOpenError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Admin(#[from] AdminBindError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Spool(#[from] SpoolOpenError),
    #[error("retry_initial/retry_max: {0}")]
    Retry(#[from] InvalidBackoff),
}

/// Everything built and bound; nothing read yet. `/readyz` answers 503 "starting".
pub struct Starting {
    settings: Settings,
    addrs: Vec<(Protocol, SocketAddr)>,
    admin_addr: SocketAddr,
    tcp_listeners: Vec<(Protocol, TcpListener)>,
    udp_sockets: Vec<UdpSocket>,
    ledger: Arc<Ledger>,
    logs: Arc<LogLimits>,
    buffer: Arc<Buffer>,
    health: Arc<Health>,
    /// Holds the spool, when configured (`delivery.spill.spool()`).
    delivery: Arc<DeliveryContext>,
    abort: CancellationToken,
    admin_stop: CancellationToken,
}

/// A forwarder that is listening and delivering.
pub struct Running {
    addrs: Vec<(Protocol, SocketAddr)>,
    admin_addr: SocketAddr,
    ledger: Arc<Ledger>,
    buffer: Arc<Buffer>,
    health: Arc<Health>,
    /// `shutdown_delay`.
    delay: Duration,
    /// Cancelled by [`Running::shutdown`]: the delay, if any, starts.
    stop: CancellationToken,
    end_delay: CancellationToken,
    /// Cancelled when the drain starts (at once when there is no delay).
    shutdown: CancellationToken,
    cut: shutdown::Cut,
    done: JoinHandle<LedgerSnapshot>,
}

fn find(addrs: &[(Protocol, SocketAddr)], protocol: Protocol) -> Option<SocketAddr> {
    addrs.iter().find(|(p, _)| *p == protocol).map(|(_, a)| *a)
}

impl Starting {
    /// The first listener for `protocol` (the real port when the config said 0).
    pub fn local_addr(&self, protocol: Protocol) -> Option<SocketAddr> {
        find(&self.addrs, protocol)
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }
}

impl Running {
    /// Every bound listener, with its protocol.
    pub fn local_addrs(&self) -> &[(Protocol, SocketAddr)] {
        &self.addrs
    }

    /// The first listener for `protocol` (the real port when the config said 0).
    pub fn local_addr(&self, protocol: Protocol) -> Option<SocketAddr> {
        find(&self.addrs, protocol)
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub fn buffer(&self) -> &Arc<Buffer> {
        &self.buffer
    }

    /// Starts the graceful shutdown: the drain, or first `shutdown_delay` (not ready, still
    /// listening); [`Running::wait`] returns when it is over.
    pub fn shutdown(&self) {
        if self.delay.is_zero() {
            self.health.set_draining();
            self.shutdown.cancel();
        } else {
            self.health.set_delaying();
        }
        self.stop.cancel();
    }

    /// After [`Running::shutdown`]: returns when `shutdown_delay` is over (at once without
    /// one), or when `cut` resolves first (to a reason, such as the name of a second signal):
    /// then the delay ends now and the drain starts, and the reason is returned. The drain
    /// is still whole: [`Running::wait_unless`] is what cuts it.
    pub async fn wait_delay(
        &self,
        cut: impl Future<Output = &'static str>,
    ) -> Option<&'static str> {
        if self.delay.is_zero() {
            return None;
        }
        tokio::select! {
            // A signal not taken here stays pending for the next wait.
            biased;
            () = self.shutdown.cancelled() => None,
            why = cut => {
                tracing::info!(signal = why, "second signal: shutdown_delay ended, draining now");
                self.end_delay.cancel();
                Some(why)
            }
        }
    }

    /// Waits for the forwarder to finish (after [`Running::shutdown`]) and returns the final
    /// counters.
    pub async fn wait(self) -> LedgerSnapshot {
        self.wait_unless(std::future::pending()).await.0
    }

    /// Like [`Running::wait`], but when `cut` resolves first (to a reason, such as the name of
    /// a second signal) the drain ends at once, as if `shutdown_timeout` had just passed:
    /// deliveries and connections stop, what is undelivered is spooled or counted lost. Returns
    /// the final counters and the reason when the drain was cut.
    pub async fn wait_unless(
        self,
        cut: impl Future<Output = &'static str>,
    ) -> (LedgerSnapshot, Option<&'static str>) {
        let Running {
            ledger,
            cut: cutter,
            mut done,
            ..
        } = self;
        let why = tokio::select! {
            r = &mut done => return (finished(r, &ledger), None),
            why = cut => why,
        };
        tracing::warn!(
            signal = why,
            "stopping now, without finishing the drain: what is undelivered is spooled or lost"
        );
        cutter.fire(why);
        (finished(done.await, &ledger), Some(why))
    }
}

/// The supervisor only ends by returning; a panic there is a bug, the ledger still tells what
/// happened.
fn finished(
    joined: Result<LedgerSnapshot, tokio::task::JoinError>,
    ledger: &Ledger,
) -> LedgerSnapshot {
    joined.unwrap_or_else(|_| ledger.snapshot())
}

/// [`bind()`] then [`Starting::run`]. Must run inside a Tokio runtime.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    Ok(bind(settings).await?.run())
}

fn bind_error(spec: &ListenerSpec, transport: &'static str, error: std::io::Error) -> BindError {
    BindError {
        key: spec.key,
        transport,
        addr: SocketAddr::from(([0, 0, 0, 0], spec.port)),
        error,
    }
}

/// Builds everything and binds every socket, the admin port first.
pub async fn bind(settings: Settings) -> Result<Starting, StartError> {
    let ledger = Arc::new(Ledger::default());
    let logs = Arc::new(LogLimits::default());
    let health = Arc::new(Health::new(settings.admin.ready_high_water));
    let buffer = Arc::new(Buffer::new(
        settings.buffer.max_bytes,
        settings.buffer.policy,
        ledger.clone(),
        logs.clone(),
    ));
    let transport: Arc<dyn Transport> = if settings.dry_run {
        Arc::new(DryRunTransport::default())
    } else {
        Arc::new(HttpTransport::new(&settings.forward)?)
    };
    // Dry runs send nothing, so they need no identity service either.
    let auth_settings = settings.auth.as_ref().filter(|_| !settings.dry_run);
    let auth = auth::provider(auth_settings, AuthTiming::from_forward(&settings.forward)).await?;
    let abort = CancellationToken::new();
    // Opened (and recovered) once the admin server answers, before any carbon socket is
    // bound; a disk that cannot be used is not fatal (memory only, retried), a spool held by
    // another forwarder is.
    let spool = settings
        .spool
        .as_ref()
        .map(|s| Spool::new(s.clone(), ledger.clone(), logs.clone()));
    let spill = Arc::new(SpillPolicy::new(
        spool.clone(),
        buffer.clone(),
        settings.spool.as_ref().map_or(1.0, |s| s.threshold),
        ledger.clone(),
        logs.clone(),
    ));
    let delivery = Arc::new(DeliveryContext {
        transport,
        auth: auth.clone(),
        ledger: ledger.clone(),
        logs: logs.clone(),
        ttl_seconds: settings.forward.ttl_seconds,
        compression: settings.forward.compression,
        retry: DeliveryContext::retry_policy(
            settings.forward.retry_initial,
            settings.forward.retry_max,
        )?,
        retry_after_max: settings.forward.retry_after_max,
        max_body_bytes: settings.forward.max_body_bytes,
        abort: abort.clone(),
        spill: spill.clone(),
    });

    let (admin_addr, admin_stop) = admin_server::start(
        &settings.admin,
        settings.buffer.policy,
        admin_server::Shared {
            health: health.clone(),
            ledger: ledger.clone(),
            buffer: buffer.clone(),
            auth,
            spill: spill.clone(),
            logs: logs.clone(),
        },
    )
    .await?;
    if let Some(spool) = &spool
        && let Err(e) = spool.open().await
    {
        admin_stop.cancel();
        return Err(e.into());
    }

    // Bind every carbon socket before starting anything, so a taken port fails cleanly.
    let mut tcp_listeners = Vec::new();
    let mut udp_sockets = Vec::new();
    let mut addrs = Vec::new();
    for spec in &settings.listeners {
        match spec.protocol {
            Protocol::Pickle | Protocol::LineTcp => {
                let l = bind::tcp(spec)?;
                let addr = l.local_addr().map_err(|e| bind_error(spec, "tcp", e))?;
                addrs.push((spec.protocol, addr));
                tcp_listeners.push((spec.protocol, l));
            }
            Protocol::LineUdp => {
                let s = bind::udp(spec)?;
                let addr = s.local_addr().map_err(|e| bind_error(spec, "udp", e))?;
                addrs.push((spec.protocol, addr));
                udp_sockets.push(s);
            }
        }
    }
    Ok(Starting {
        settings,
        addrs,
        admin_addr,
        tcp_listeners,
        udp_sockets,
        ledger,
        logs,
        buffer,
        health,
        delivery,
        abort,
        admin_stop,
    })
}

impl Starting {
    /// Starts ingest and delivery; readiness turns to ready.
    pub fn run(self) -> Running {
        let Starting {
            settings,
            addrs,
            admin_addr,
            tcp_listeners,
            udp_sockets,
            ledger,
            logs,
            buffer,
            health,
            delivery,
            abort,
            admin_stop,
        } = self;
        let spool = delivery.spill.spool().cloned();
        let shutdown = CancellationToken::new();
        let inputs_done = CancellationToken::new();

        let watchdog = {
            let health = health.clone();
            let stop = admin_stop.clone();
            tokio::spawn(async move {
                loop {
                    health.watchdog.beat();
                    tokio::select! {
                        () = tokio::time::sleep(BEAT_EVERY) => {}
                        () = stop.cancelled() => break,
                    }
                }
            })
        };
        drop(watchdog);

        let drainer = spool.as_ref().map(|spool| {
            let s = spool.settings();
            tokio::spawn(
                Drainer {
                    spool: spool.clone(),
                    ctx: delivery.clone(),
                    max_body_bytes: settings.forward.max_body_bytes,
                    rate: s.drain_rate,
                    window: Window::new(settings.ingest.max_past, settings.ingest.max_future),
                    stop: shutdown.clone(),
                }
                .run(),
            )
        });
        if let Some(spool) = &spool
            && let SpoolFsync::Every(every) = spool.settings().fsync
        {
            let spool = spool.clone();
            let stop = admin_stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(every) => spool.sync().await,
                        () = stop.cancelled() => break,
                    }
                }
            });
        }
        let supervisor_delivery = delivery.clone();
        let flusher = tokio::spawn(
            Flusher {
                buffer: buffer.clone(),
                ctx: delivery,
                interval: settings.forward.interval,
                max_body_bytes: settings.forward.max_body_bytes,
                concurrency: settings.forward.concurrency,
                inputs_done: inputs_done.clone(),
                health: health.clone(),
            }
            .run(),
        );

        let ingest = Arc::new(IngestContext {
            normalizer: Normalizer::new(&settings.ingest),
            settings: settings.ingest.clone(),
            ledger: ledger.clone(),
            buffer: buffer.clone(),
            logs: logs.clone(),
            stop_draining: abort.clone(),
        });
        let connections = Arc::new(ConnRegistry::new(
            settings.ingest.max_connections,
            settings.ingest.partial_frame_bytes,
            ledger.clone(),
            logs,
        ));
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
        health.set_ready();

        let cut = shutdown::Cut::default();
        let stop = CancellationToken::new();
        let end_delay = CancellationToken::new();
        let done = tokio::spawn(shutdown::supervise(shutdown::Supervised {
            stop: stop.clone(),
            delay: settings.shutdown_delay,
            end_delay: end_delay.clone(),
            health: health.clone(),
            shutdown: shutdown.clone(),
            timeout: settings.shutdown_timeout,
            cut: cut.clone(),
            listeners,
            inputs_done,
            abort,
            flusher,
            drainer,
            ledger: ledger.clone(),
            delivery: supervisor_delivery,
            admin_stop,
        }));
        Running {
            addrs,
            admin_addr,
            ledger,
            buffer,
            health,
            delay: settings.shutdown_delay,
            stop,
            end_delay,
            shutdown,
            cut,
            done,
        }
    }
}
