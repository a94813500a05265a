//! The table itself: every configuration key, named once. `keys!` turns the one list below
//! into both [`Key`] (how code names a key, so a misspelt key fails to compile) and [`KEYS`]
//! (the specs, in `--help` order within each group; the chart's schema lists them in this
//! order too). Each spec (flag, default, value type, group, help) is in the file of its group;
//! what a key spec means is in `keys.rs`.

use super::{Group, KeySpec, Kind};
use crate::config::schema::ValueType;

mod authentication;
mod buffer;
mod delivery;
mod input_limits;
mod listeners;
mod operation;
mod original;
mod spool;

const fn value(
    key: &'static str,
    short: Option<char>,
    default: Option<&'static str>,
    value_name: &'static str,
    ty: ValueType,
    group: Group,
    help: &'static str,
) -> KeySpec {
    KeySpec {
        key,
        short,
        default,
        value_name,
        help,
        group,
        kind: Kind::Value,
        secret: false,
        cli_file_flag: false,
        ty,
    }
}

const fn switch(key: &'static str, group: Group, help: &'static str) -> KeySpec {
    KeySpec {
        key,
        short: None,
        default: Some("false"),
        value_name: "BOOL",
        help,
        group,
        kind: Kind::Switch,
        secret: false,
        cli_file_flag: false,
        ty: ValueType::Boolean,
    }
}

/// One list, two outputs: the variants of [`Key`] and the entries of [`KEYS`] come from the
/// same lines in the same order, so `Key::X as usize` is X's index in `KEYS` and neither can
/// have an entry the other lacks (a spec left out of the list is dead code, which the lints
/// refuse). The variant is the key's name in CamelCase (a test holds them to that).
macro_rules! keys {
    ($($(#[$meta:meta])* $variant:ident = $spec:path,)+) => {
        /// A configuration key as code names it: `Key::MaxPast` is `max_past`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[expect(
            clippy::enum_variant_names,
            reason = "the variants spell the keys' names, and `key`, `secret_user_key` and \
                      `secret_key_key` end in key"
        )]
        pub(crate) enum Key {
            $($(#[$meta])* $variant,)+
        }

        /// Every configuration key, in `--help` order within each group.
        pub(crate) static KEYS: &[KeySpec] = &[$($spec,)+];

        impl Key {
            /// The key's name: its TOML and INI key, the stem of its flag and environment
            /// variable. `const` so that a `&'static str` constant can name a key.
            pub(crate) const fn name(self) -> &'static str {
                match self {
                    $(Key::$variant => $spec.key,)+
                }
            }

            /// Every key with its variant's name, for the test that holds them together.
            #[cfg(test)]
            pub(crate) const ALL: &[(Key, &str)] = &[$((Key::$variant, stringify!($variant)),)+];
        }
    };
}

impl Key {
    /// Everything the table says about this key.
    pub(crate) fn spec(self) -> &'static KeySpec {
        &KEYS[self as usize]
    }
}

keys! {
    // The original's flags (twistd plugin `blueflood-forward`), defaults unchanged.
    Endpoint = original::ENDPOINT,
    Interval = original::INTERVAL,
    Blueflood = original::BLUEFLOOD,
    Tenant = original::TENANT,
    MetricPrefix = original::METRIC_PREFIX,
    Ttl = original::TTL,
    User = original::USER,
    Key = original::KEY,
    AuthUrl = original::AUTH_URL,
    // Authentication beyond the original's -u/-k (issue 4).
    AuthMethod = authentication::AUTH_METHOD,
    AuthDomain = authentication::AUTH_DOMAIN,
    AuthProjectId = authentication::AUTH_PROJECT_ID,
    SecretName = authentication::SECRET_NAME,
    SecretNamespace = authentication::SECRET_NAMESPACE,
    SecretUserKey = authentication::SECRET_USER_KEY,
    SecretKeyKey = authentication::SECRET_KEY_KEY,
    AuthMaxAnswerBytes = authentication::AUTH_MAX_ANSWER_BYTES,
    Limit = original::LIMIT,
    Protocol = original::PROTOCOL,
    OverwriteCollectionTimestamp = original::OVERWRITE_COLLECTION_TIMESTAMP,
    // New in this implementation.
    LineEndpoint = listeners::LINE_ENDPOINT,
    UdpEndpoint = listeners::UDP_ENDPOINT,
    BufferBytes = buffer::BUFFER_BYTES,
    BufferPolicy = buffer::BUFFER_POLICY,
    SpoolDir = spool::SPOOL_DIR,
    SpoolBytes = spool::SPOOL_BYTES,
    SpoolFullPolicy = spool::SPOOL_FULL_POLICY,
    SpoolFsync = spool::SPOOL_FSYNC,
    SpoolThreshold = spool::SPOOL_THRESHOLD,
    SpoolDrainRate = spool::SPOOL_DRAIN_RATE,
    Concurrency = delivery::CONCURRENCY,
    Compression = delivery::COMPRESSION,
    CompressionLevel = delivery::COMPRESSION_LEVEL,
    ConnectTimeout = delivery::CONNECT_TIMEOUT,
    RequestTimeout = delivery::REQUEST_TIMEOUT,
    RetryInitial = delivery::RETRY_INITIAL,
    RetryMax = delivery::RETRY_MAX,
    RetryAfterMax = delivery::RETRY_AFTER_MAX,
    MaxFrameBytes = input_limits::MAX_FRAME_BYTES,
    MaxLineBytes = input_limits::MAX_LINE_BYTES,
    MaxNameBytes = input_limits::MAX_NAME_BYTES,
    MaxConnections = input_limits::MAX_CONNECTIONS,
    IdleTimeout = input_limits::IDLE_TIMEOUT,
    PartialFrameBytes = input_limits::PARTIAL_FRAME_BYTES,
    MaxPast = input_limits::MAX_PAST,
    MaxFuture = input_limits::MAX_FUTURE,
    ShutdownTimeout = operation::SHUTDOWN_TIMEOUT,
    ShutdownDelay = operation::SHUTDOWN_DELAY,
    DryRun = operation::DRY_RUN,
    LogFormat = operation::LOG_FORMAT,
    LogLevel = operation::LOG_LEVEL,
    AdminAddr = operation::ADMIN_ADDR,
    AdminToken = operation::ADMIN_TOKEN,
    ReadyHighWater = operation::READY_HIGH_WATER,
    AdminMaxConnections = operation::ADMIN_MAX_CONNECTIONS,
    AdminHeaderTimeout = operation::ADMIN_HEADER_TIMEOUT,
}
