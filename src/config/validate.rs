//! Turns the merged, untyped configuration into a [`Settings`], checking every value before
//! anything binds. Each failure is one message naming the key, how to set it, the bad value,
//! where that value came from and what is allowed. Secret values are never shown. Keys are
//! named by [`Key`], so a check cannot read a key the table does not have; each section's
//! checks are in `validate/`, the accessors and the one error shape in `validate/values.rs`.

use super::ConfigError;
use super::keys::Key;
use super::log_level;
use super::raw::Resolved;
use super::settings::{BufferPolicy, BufferSettings, LogFormat, LogSettings, Settings};

mod admin;
mod auth;
mod delivery;
mod ingest;
mod listeners;
mod spool;
mod values;

pub(crate) use admin::ADMIN_MAX_CONNECTIONS;
pub(crate) use delivery::MAX_TTL;
pub(crate) use ingest::MIN_PARTIAL_FRAME_BYTES;
pub(crate) use spool::MIN_SPOOL_BYTES;
use values::{Values, as_string, invalid};

/// Below this a buffer cannot hold even a handful of full batches.
pub(crate) const MIN_BUFFER_BYTES: u64 = 64 * 1024;

/// Checks everything and builds the settings.
pub(crate) fn settings(resolved: &Resolved) -> Result<Settings, ConfigError> {
    let v = Values { resolved };

    let listeners = listeners::listeners(&v)?;
    let ingest = ingest::ingest_settings(&v)?;

    let buffer = BufferSettings {
        max_bytes: v.size(Key::BufferBytes, MIN_BUFFER_BYTES, u64::MAX)?,
        policy: v.choice(
            Key::BufferPolicy,
            &[
                ("drop_newest", BufferPolicy::DropNewest),
                ("block", BufferPolicy::Block),
            ],
        )?,
    };

    let spool = spool::spool_settings(&v)?;
    let forward = delivery::forward_settings(&v)?;
    let auth = auth::auth_settings(&v)?;

    let log = LogSettings {
        format: v.choice(
            Key::LogFormat,
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        )?,
        level: log_level(&v)?,
    };

    Ok(Settings {
        listeners,
        ingest,
        buffer,
        spool,
        forward,
        auth,
        shutdown_timeout: v.seconds(Key::ShutdownTimeout)?,
        shutdown_delay: v.seconds_or_zero(Key::ShutdownDelay)?,
        dry_run: v.boolean(Key::DryRun)?,
        log,
        admin: admin::admin_settings(&v)?,
    })
}

fn log_level(v: &Values<'_>) -> Result<String, ConfigError> {
    let (spec, entry) = v.required(Key::LogLevel)?;
    let level = as_string(spec, entry)?;
    log_level::filter(&level).ok_or_else(|| invalid(spec, entry, log_level::EXPECTED))
}
