//! The disk spool's keys. The spool is off unless `spool_dir` is set; its other keys are
//! checked either way, so a typo fails at start even before the spool is turned on.

use std::time::Duration;

use super::super::ConfigError;
use super::super::keys::Key;
use super::super::raw::Scalar;
use super::super::settings::{SpoolFsync, SpoolFullPolicy, SpoolSettings};
use super::values::{Values, invalid};

/// Room for a few segments of the smallest size and one request-sized record.
pub(crate) const MIN_SPOOL_BYTES: u64 = 4 * 1024 * 1024;

pub(super) fn spool_settings(v: &Values<'_>) -> Result<Option<SpoolSettings>, ConfigError> {
    let max_bytes = v.integer(Key::SpoolBytes, MIN_SPOOL_BYTES, u64::MAX, true)?;
    let full_policy = v.choice(
        Key::SpoolFullPolicy,
        &[
            ("drop_oldest", SpoolFullPolicy::DropOldest),
            ("block", SpoolFullPolicy::Block),
        ],
    )?;
    let (spec, entry) = v.required(Key::SpoolFsync)?;
    let fsync = match &entry.value {
        Scalar::Int(ms) if (1..=3_600_000).contains(ms) => {
            Some(SpoolFsync::Every(Duration::from_millis(*ms as u64)))
        }
        Scalar::Str(s) if s.trim().eq_ignore_ascii_case("batch") => Some(SpoolFsync::EveryBatch),
        Scalar::Str(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| (1..=3_600_000).contains(ms))
            .map(|ms| SpoolFsync::Every(Duration::from_millis(ms))),
        _ => None,
    }
    .ok_or_else(|| {
        invalid(
            spec,
            entry,
            "milliseconds between fsyncs (1..=3600000), or `batch` to fsync after every batch",
        )
    })?;
    let threshold = v.fraction(
        Key::SpoolThreshold,
        0.0,
        "a fraction above 0 and at most 1, such as 0.5",
    )?;
    let drain_rate = v.integer(Key::SpoolDrainRate, 1, u64::MAX, false)?;
    let Some((dir, _)) = v.optional_string(Key::SpoolDir)? else {
        return Ok(None);
    };
    Ok(Some(SpoolSettings {
        dir: dir.into(),
        max_bytes,
        full_policy,
        fsync,
        threshold,
        drain_rate,
    }))
}
