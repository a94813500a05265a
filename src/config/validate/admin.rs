//! The admin server's keys: its address, bearer token, readiness high water and connection
//! bounds.

use secrecy::SecretString;

use super::super::ConfigError;
use super::super::keys::Key;
use super::super::settings::AdminSettings;
use super::values::{Values, as_string, invalid};

/// The admin port serves probes and scrapes, a handful of clients: its bound must stay far
/// below the process's open-files limit, which the carbon listeners need.
pub(crate) const ADMIN_MAX_CONNECTIONS: u64 = 4096;

pub(super) fn admin_settings(v: &Values<'_>) -> Result<AdminSettings, ConfigError> {
    let (spec, entry) = v.required(Key::AdminAddr)?;
    let addr = as_string(spec, entry)?
        .trim()
        .parse::<std::net::SocketAddr>()
        .map_err(|_| {
            invalid(
                spec,
                entry,
                "an address and port such as 0.0.0.0:8080, 127.0.0.1:8080 or [::]:8080",
            )
        })?;
    let token = match v.optional_string(Key::AdminToken)? {
        Some((t, _)) if !t.is_empty() => Some(SecretString::from(t)),
        _ => None,
    };
    let ready_high_water = v.fraction(
        Key::ReadyHighWater,
        0.1,
        "a fraction above 0.1 and at most 1, such as 0.9",
    )?;
    Ok(AdminSettings {
        addr,
        token,
        ready_high_water,
        max_connections: v.count(Key::AdminMaxConnections, 1, ADMIN_MAX_CONNECTIONS)?,
        header_timeout: v.seconds(Key::AdminHeaderTimeout)?,
    })
}
