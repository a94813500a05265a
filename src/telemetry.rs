//! Logging setup: `tracing` to stderr, as text for people or JSON for log pipelines, with the
//! level from the configuration unless `RUST_LOG` says otherwise. Stdout stays free for
//! `--dry-run` output.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::settings::{LogFormat, LogSettings};

/// Installs the global subscriber. Call once, from the binary.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already installed (tests): keep the first.
    let _ = result;
}
