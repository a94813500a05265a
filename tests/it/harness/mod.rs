//! Starts a forwarder in-process for the integration tests, configured for speed (short
//! interval and backoff) and listening on ephemeral loopback ports, and checks its ledger.

use std::net::SocketAddr;
use std::time::Duration;

use blueflood_forward::accounting::LedgerSnapshot;
use blueflood_forward::app::{self, Running};
use blueflood_forward::config::settings::*;

pub fn settings(blueflood_url: &str) -> Settings {
    let listen = |key, protocol| ListenerSpec {
        key,
        protocol,
        port: 0,
        interface: Some("127.0.0.1".parse().expect("ip")),
    };
    Settings {
        listeners: vec![
            listen("endpoint", Protocol::Pickle),
            listen("line_endpoint", Protocol::LineTcp),
            listen("udp_endpoint", Protocol::LineUdp),
        ],
        ingest: IngestSettings {
            prefix: "pre".into(),
            overwrite_collection_timestamp: false,
            max_past: Duration::from_secs(3 * 86400),
            max_future: Duration::from_secs(600),
            max_frame_bytes: 1 << 20,
            max_line_bytes: 16384,
            max_name_bytes: 4096,
            max_connections: 64,
            idle_timeout: Duration::from_secs(30),
            partial_frame_bytes: 64 << 20,
        },
        spool: None,
        buffer: BufferSettings {
            max_bytes: 64 << 20,
            policy: BufferPolicy::DropNewest,
        },
        forward: ForwardSettings {
            blueflood_url: blueflood_url.parse().expect("url"),
            tenant: "t1".into(),
            ttl_seconds: 3600,
            interval: Duration::from_millis(50),
            max_body_bytes: BLUEFLOOD_MAX_BODY_BYTES,
            concurrency: 4,
            compression: Compression::Gzip { level: 1 },
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(200),
            retry_after_max: Duration::from_secs(2),
        },
        auth: None,
        shutdown_timeout: Duration::from_secs(10),
        shutdown_delay: Duration::ZERO,
        dry_run: false,
        log: LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        },
        admin: AdminSettings {
            addr: "127.0.0.1:0".parse().expect("addr"),
            token: None,
            ready_high_water: 0.9,
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
        },
    }
}

pub struct Forwarder {
    pub running: Running,
}

impl Forwarder {
    pub async fn start(settings: Settings) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        Self {
            running: app::start(settings).await.expect("forwarder starts"),
        }
    }

    pub fn addr(&self, p: Protocol) -> SocketAddr {
        self.running.local_addr(p).expect("listener")
    }

    pub fn snapshot(&self) -> LedgerSnapshot {
        self.running.ledger().snapshot()
    }

    /// Polls until `f` holds for the ledger, or panics with the ledger after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        f: impl Fn(&LedgerSnapshot) -> bool,
    ) {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.snapshot();
            if f(&s) {
                return;
            }
            if tokio::time::Instant::now() > end {
                panic!("timed out waiting for {what}: {s:#?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `received` points have arrived and none waits for room, is buffered or in
    /// flight (everything delivered or dropped).
    pub async fn settle(&self, received: u64, timeout: Duration) -> LedgerSnapshot {
        self.wait_until(timeout, "quiescence", |s| {
            s.received() >= received
                && s.waiting_points == 0
                && s.buffered_points == 0
                && s.in_flight_points == 0
                && s.balanced()
        })
        .await;
        self.snapshot()
    }

    /// One unlabelled series of the admin port's `/metrics` (0.0.4 text), or a panic showing
    /// the answer when it is missing.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = crate::support::scrape::metrics_text(self.running.admin_addr(), None).await;
        crate::support::scrape::series(&text, name)
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
    }

    pub async fn stop(self) -> LedgerSnapshot {
        self.running.shutdown();
        let s = self.running.wait().await;
        assert!(s.balanced(), "ledger does not balance: {s:#?}");
        s
    }
}
