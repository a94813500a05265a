//! Prometheus metrics. Counts and gauges are read from the [`Ledger`], the buffer, the pending
//! depth (`forward::Depth`, as `/buffer` shows it) and the auth provider at scrape time by a
//! collector, so nothing is counted twice and the numbers on
//! `/metrics` are the very numbers the invariants are tested on. The distributions (request
//! durations, batch sizes) are the ledger's `Instruments`, recorded by events like every other
//! count: this module only registers and encodes.
//! Encoding is `prometheus-client`'s (OpenMetrics text); the classic 0.0.4 text format is
//! rendered from that same text by [`super::exposition`], so both come from one registry.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::accounting::Ledger;
use crate::auth::TokenProvider;
use crate::buffer::Buffer;
use crate::forward::SpillPolicy;
use crate::health::Health;

mod spool;

/// Builds the registry behind `/metrics`.
pub fn registry(
    ledger: Arc<Ledger>,
    buffer: Arc<Buffer>,
    auth: Arc<dyn TokenProvider>,
    spill: Arc<SpillPolicy>,
    health: Arc<Health>,
) -> Registry {
    let mut registry = Registry::with_prefix("blueflood_forward");
    let instruments = ledger.instruments();
    registry.register_with_unit(
        "request_duration",
        "Duration of requests to Blueflood, by status class",
        Unit::Seconds,
        instruments.request_duration.clone(),
    );
    registry.register(
        "batch_size_datapoints",
        "Datapoints per request to Blueflood",
        instruments.batch_size.clone(),
    );
    // Registered clones share the ledger's histograms (prometheus-client's are `Arc` inside).
    registry.register_collector(Box::new(LedgerCollector {
        ledger,
        buffer,
        auth,
        spill,
        health,
    }));
    registry
}

/// The exposition formats `/metrics` can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text: what Prometheus asks for.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4: for everyone else (`curl`, `promtool`).
    Classic,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Why the registry could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("encoding the registry failed")]
    Write(#[from] std::fmt::Error),
    #[error("rendering the 0.0.4 text format: {0}")]
    Classic(#[from] super::exposition::ExpositionError),
}

/// Encodes the registry in `format`.
pub fn encode(registry: &Registry, format: Format) -> Result<String, EncodeError> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    match format {
        Format::OpenMetrics => Ok(out),
        Format::Classic => Ok(super::exposition::classic_from_openmetrics(&out)?),
    }
}

struct LedgerCollector {
    ledger: Arc<Ledger>,
    buffer: Arc<Buffer>,
    auth: Arc<dyn TokenProvider>,
    /// The spool (when configured) and whether new batches go to it.
    spill: Arc<SpillPolicy>,
    /// For `ready`: the very answer `/readyz` would give now.
    health: Arc<Health>,
}

impl std::fmt::Debug for LedgerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerCollector")
    }
}

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: f64,
) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, unit, g.metric_type())?)
}

/// One counter family with one label.
fn labelled_counters<'a>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (value, n) in values {
        let labels = [(label, value)];
        ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for LedgerCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let s = self.ledger.snapshot();
        labelled_counters(
            &mut enc,
            "datapoints_received",
            "Datapoints decoded from senders, by protocol",
            "protocol",
            [
                ("pickle", s.received_pickle),
                ("line_tcp", s.received_line_tcp),
                ("line_udp", s.received_line_udp),
            ],
        )?;
        counter(
            &mut enc,
            "datapoints_delivered",
            "Datapoints stored by Blueflood",
            s.delivered,
        )?;
        labelled_counters(
            &mut enc,
            "datapoints_dropped",
            "Datapoints dropped, by reason",
            "reason",
            s.dropped.iter().map(|(r, n)| (r.label(), *n)),
        )?;
        labelled_counters(
            &mut enc,
            "bad_input",
            "Frames, lines or streams refused before any datapoint could be read, by reason",
            "reason",
            s.bad_input.iter().map(|(b, n)| (b.label(), *n)),
        )?;
        gauge(
            &mut enc,
            "waiting_for_room_datapoints",
            "Datapoints decoded by a connection that waits for room in the buffer (policy block)",
            None,
            s.waiting_points as f64,
        )?;
        gauge(
            &mut enc,
            "buffered_datapoints",
            "Datapoints waiting in the buffer",
            None,
            s.buffered_points as f64,
        )?;
        gauge(
            &mut enc,
            "buffered",
            "Buffer use",
            Some(&Unit::Bytes),
            s.buffered_bytes as f64,
        )?;
        gauge(
            &mut enc,
            "buffer_limit",
            "Buffer bound",
            Some(&Unit::Bytes),
            self.buffer.max_bytes() as f64,
        )?;
        let oldest = self
            .buffer
            .oldest()
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        gauge(
            &mut enc,
            "oldest_buffered_age",
            "Age of the oldest buffered datapoint (0 when empty)",
            Some(&Unit::Seconds),
            oldest,
        )?;
        // Wherever points wait (`forward::Depth`, as `/buffer` shows it): the delivery lag.
        let depth = crate::forward::Depth::gather(&s, &self.buffer, &self.spill);
        let pending = depth.pending() as f64;
        gauge(
            &mut enc,
            "pending_datapoints",
            "Datapoints received and not yet settled: buffered, in flight, spooled, waiting for room",
            None,
            pending,
        )?;
        gauge(
            &mut enc,
            "oldest_pending_age",
            "Arrival age of the oldest unsettled datapoint, wherever it waits (0 when none)",
            Some(&Unit::Seconds),
            depth.oldest_age_seconds.unwrap_or(0.0),
        )?;
        gauge(
            &mut enc,
            "in_flight_datapoints",
            "Datapoints taken from the buffer and not yet settled",
            None,
            s.in_flight_points as f64,
        )?;
        gauge(
            &mut enc,
            "in_flight_requests",
            "Requests to Blueflood awaiting an answer",
            None,
            s.requests_in_flight as f64,
        )?;
        labelled_counters(
            &mut enc,
            "requests",
            "Requests to Blueflood, by outcome (ok: stored in whole or part)",
            "outcome",
            [("ok", s.requests_ok), ("failed", s.requests_failed)],
        )?;
        counter(
            &mut enc,
            "retries",
            "Requests to Blueflood retried after a failure",
            s.retries,
        )?;
        counter(
            &mut enc,
            "connections_accepted",
            "TCP connections accepted",
            s.connections_accepted,
        )?;
        counter(
            &mut enc,
            "connections_idle_closed",
            "TCP connections closed after no complete frame or line for the idle timeout",
            s.connections_idle_closed,
        )?;
        counter(
            &mut enc,
            "connections_refused",
            "TCP connections refused at the connection limit",
            s.connections_refused,
        )?;
        gauge(
            &mut enc,
            "connections_open",
            "TCP connections open",
            None,
            s.connections_open as f64,
        )?;
        counter(
            &mut enc,
            "connections_idle_evicted",
            "TCP connections closed to make room for a new one at the connection limit (the one idle longest)",
            s.connections_idle_evicted,
        )?;
        counter(
            &mut enc,
            "connections_partial_frame_closed",
            "TCP connections closed because incomplete frames over all connections exceeded their bound and they held the most",
            s.connections_partial_frame_closed,
        )?;
        gauge(
            &mut enc,
            "partial_frames",
            "Incomplete frames and lines held by all TCP connections",
            Some(&Unit::Bytes),
            s.partial_frame_bytes as f64,
        )?;
        gauge(
            &mut enc,
            "partial_frames_limit",
            "Bound on incomplete frames and lines over all TCP connections",
            Some(&Unit::Bytes),
            s.partial_frame_limit as f64,
        )?;
        labelled_counters(
            &mut enc,
            "accept_errors",
            "Failed accepts (out of file descriptors, mostly), by listener",
            "listener",
            s.accept_errors.iter().map(|(l, n)| (l.label(), *n)),
        )?;
        counter(
            &mut enc,
            "admin_connections_accepted",
            "Admin connections accepted",
            s.admin_connections_accepted,
        )?;
        counter(
            &mut enc,
            "admin_connections_refused",
            "Admin connections refused at admin_max_connections",
            s.admin_connections_refused,
        )?;
        counter(
            &mut enc,
            "admin_connections_timed_out",
            "Admin connections closed for sending no whole request header within admin_header_timeout",
            s.admin_connections_timed_out,
        )?;
        gauge(
            &mut enc,
            "admin_connections_open",
            "Admin connections open",
            None,
            s.admin_connections_open as f64,
        )?;
        if let Some(spool) = self.spill.spool() {
            self.encode_spool(&mut enc, spool, &s)?;
        }
        let a = self.auth.status();
        let ready = self
            .health
            .readiness(self.buffer.fill(), a.credentials_loaded)
            .is_ok();
        gauge(
            &mut enc,
            "ready",
            "1 while /readyz answers 200 (ready for traffic), 0 while it answers 503",
            None,
            f64::from(u8::from(ready)),
        )?;
        gauge(
            &mut enc,
            "auth_failing",
            "1 while the identity service's last answer to a login was a failure (no later login succeeded)",
            None,
            f64::from(u8::from(a.identity_failing)),
        )?;
        gauge(
            &mut enc,
            "credential_reload_failing",
            "1 while the credentials' source cannot be read (the last good credentials stay in use)",
            None,
            f64::from(u8::from(a.credentials_unreadable)),
        )?;
        counter(
            &mut enc,
            "auth_requests",
            "Requests to the identity service",
            a.auth_requests,
        )?;
        counter(
            &mut enc,
            "auth_failures",
            "Failed requests to the identity service",
            a.auth_failures,
        )?;
        counter(
            &mut enc,
            "credential_reloads",
            "Credentials re-read after a change",
            a.credential_reloads,
        )?;
        counter(
            &mut enc,
            "credential_reload_failures",
            "Credential changes that could not be read (the last good ones are kept)",
            a.credential_reload_failures,
        )?;
        Ok(())
    }
}
