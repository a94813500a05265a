//! Delivery to Blueflood: the URL and tenant, the TTL, batching, body size, compression,
//! concurrency, timeouts and retry delays.

use super::super::ConfigError;
use super::super::keys::Key;
use super::super::settings::{BLUEFLOOD_MAX_BODY_BYTES, Compression, ForwardSettings};
use super::values::{Values, as_string, invalid};

/// Blueflood stores TTLs as a signed 32-bit count of seconds.
pub(crate) const MAX_TTL: u64 = 2_147_483_646;

pub(super) fn forward_settings(v: &Values<'_>) -> Result<ForwardSettings, ConfigError> {
    let (tenant_spec, tenant_entry) = v.required(Key::Tenant)?;
    let tenant = as_string(tenant_spec, tenant_entry)?;
    // The tenant is a path segment of the ingest URL; `.` and `..` would be resolved away
    // (`/v2.0/../ingest`), by the URL library here or by any proxy on the way.
    if tenant.is_empty()
        || tenant == "."
        || tenant == ".."
        || tenant
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '\\') || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            tenant_spec,
            tenant_entry,
            "a non-empty tenant ID, not '.' or '..', without '/', '?', '#', '\\' or whitespace",
        ));
    }

    // 0 meant "unlimited" in the original, but Blueflood itself refuses bodies above 1 MiB.
    let limit = v.size(Key::Limit, 0, u64::MAX)?;
    let max_body_bytes = match limit {
        0 => BLUEFLOOD_MAX_BODY_BYTES,
        n => n.min(BLUEFLOOD_MAX_BODY_BYTES),
    };

    let level = v.integer(Key::CompressionLevel, 0, 9, false)?;
    let compression = v.choice(
        Key::Compression,
        &[
            ("gzip", Compression::Gzip { level: 0 }),
            ("none", Compression::None),
        ],
    )?;
    let compression = match compression {
        Compression::Gzip { .. } => Compression::Gzip {
            level: u32::try_from(level).unwrap_or(9),
        },
        Compression::None => Compression::None,
    };

    let retry_initial = v.seconds(Key::RetryInitial)?;
    let retry_max = v.seconds(Key::RetryMax)?;
    if retry_max < retry_initial {
        let (spec, entry) = v.required(Key::RetryMax)?;
        return Err(invalid(
            spec,
            entry,
            format!(
                "at least retry_initial ({} seconds)",
                retry_initial.as_secs_f64()
            ),
        ));
    }

    Ok(ForwardSettings {
        blueflood_url: v.http_url(Key::Blueflood)?,
        tenant,
        ttl_seconds: u32::try_from(v.integer(Key::Ttl, 1, MAX_TTL, false)?).unwrap_or(u32::MAX),
        interval: v.seconds(Key::Interval)?,
        max_body_bytes,
        concurrency: v.count(Key::Concurrency, 1, 256)?,
        compression,
        connect_timeout: v.seconds(Key::ConnectTimeout)?,
        request_timeout: v.seconds(Key::RequestTimeout)?,
        retry_initial,
        retry_max,
        retry_after_max: v.seconds(Key::RetryAfterMax)?,
    })
}
