//! Logs and traces. Logs: `tracing` to stderr, as text for people or JSON for log pipelines,
//! at the configured level unless `RUST_LOG` says otherwise (stdout stays free for
//! `--dry-run`). Traces: the spans of flushes and Blueflood requests, exported through
//! OpenTelemetry only when the standard `OTEL_*` environment asks for it (see `otel`).
//! `metrics` holds the Prometheus side (`exposition` its classic 0.0.4 text format).

pub mod exposition;
pub mod metrics;
pub mod otel;

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::settings::{LogFormat, LogSettings};

/// What must be flushed before the process exits.
pub struct Telemetry {
    otel: Option<otel::Otel>,
}

impl Telemetry {
    /// Exports the spans still batched.
    pub fn shutdown(&self) {
        if let Some(o) = &self.otel {
            o.shutdown();
        }
    }
}

/// Installs the global subscriber. Call once, from the binary.
pub fn init(settings: &LogSettings) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<_> + Send + Sync> = match settings.format {
        LogFormat::Text => Box::new(fmt.with_filter(filter)),
        LogFormat::Json => Box::new(fmt.json().flatten_event(true).with_filter(filter)),
    };
    let (otel, otel_error) = if otel::configured() {
        match otel::Otel::from_env() {
            Ok(o) => (Some(o), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    // Only the delivery spans are exported, whatever the log level.
    let otel_layer = otel.as_ref().map(|o| {
        tracing_opentelemetry::layer()
            .with_tracer(o.tracer())
            .with_filter(Targets::new().with_target("blueflood_forward::forward", Level::INFO))
    });
    // Already installed (tests): keep the first.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel_layer)
        .try_init();
    if let Some(e) = otel_error {
        tracing::warn!(error = %e, "traces will not be exported");
    } else if otel.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Telemetry { otel }
}
