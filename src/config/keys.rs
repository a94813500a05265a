//! The one table of configuration keys. Everything that names a key (the command line, the
//! `BLUEFLOOD_FORWARD_*` environment, the INI and TOML files, `--help` and every error message)
//! is derived from [`KEYS`], so a key cannot exist in one place and be missing in another,
//! and the defaults shown by `--help` are the very strings that are parsed as defaults. Each
//! key's [`ValueType`] says what its value may be; the Helm chart's JSON Schema is built from it.

use super::schema::ValueType;
use super::validate::{MIN_BUFFER_BYTES, MIN_SPOOL_BYTES};

/// Prefix of every environment variable the forwarder reads.
pub(crate) const ENV_PREFIX: &str = "BLUEFLOOD_FORWARD_";

/// Environment variable naming the configuration file (the same as `--config`).
pub(crate) const ENV_CONFIG: &str = "BLUEFLOOD_FORWARD_CONFIG";

/// Suffix that turns any key into "read this key's value from the named file".
pub(crate) const FILE_SUFFIX: &str = "_file";

/// Where a key is listed in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// The original forwarder's flags, same spelling, meaning and default.
    Original,
    Listeners,
    Buffer,
    Delivery,
    InputLimits,
    Operation,
    Authentication,
    Spool,
}

impl Group {
    pub(crate) const ALL: [Group; 8] = [
        Group::Original,
        Group::Listeners,
        Group::Buffer,
        Group::Spool,
        Group::Delivery,
        Group::InputLimits,
        Group::Operation,
        Group::Authentication,
    ];

    pub(crate) fn heading(self) -> &'static str {
        match self {
            Group::Original => "Options of the original blueflood-carbon-forwarder (same meaning)",
            Group::Listeners => "Additional listeners",
            Group::Buffer => "Buffer",
            Group::Delivery => "Delivery to Blueflood",
            Group::InputLimits => "Input limits",
            Group::Operation => "Operation",
            Group::Authentication => "Authentication (Keystone) and credentials",
            Group::Spool => "Disk spool (off unless --spool-dir is set)",
        }
    }
}

/// Whether a key takes a value or is a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Value,
    /// A boolean: the bare flag means true; `--flag=false` is accepted too.
    Switch,
}

#[derive(Debug)]
pub(crate) struct KeySpec {
    /// snake_case: the TOML and INI key; upper-cased after [`ENV_PREFIX`] for the environment.
    pub key: &'static str,
    pub short: Option<char>,
    /// Parsed exactly like a user-supplied value; `None` when the key is unset by default.
    pub default: Option<&'static str>,
    pub value_name: &'static str,
    pub help: &'static str,
    pub group: Group,
    pub kind: Kind,
    /// Never shown: not in `--help`, not in any error message.
    pub secret: bool,
    /// Also offer `--<key>-file PATH` on the command line (files and the environment accept
    /// `<key>_file` for every key).
    pub cli_file_flag: bool,
    /// What `validate.rs` accepts; the chart's JSON Schema is built from it.
    pub ty: ValueType,
}

impl KeySpec {
    /// The long flag, dashed (`auth-url`); the underscored spelling is an alias.
    pub(crate) fn long(&self) -> String {
        self.key.replace('_', "-")
    }

    pub(crate) fn env_var(&self) -> String {
        format!("{ENV_PREFIX}{}", self.key.to_ascii_uppercase())
    }

    pub(crate) fn file_key(&self) -> String {
        format!("{}{FILE_SUFFIX}", self.key)
    }

    pub(crate) fn env_file_var(&self) -> String {
        format!("{ENV_PREFIX}{}", self.file_key().to_ascii_uppercase())
    }

    /// `flag -k/--key, env BLUEFLOOD_FORWARD_KEY`: how a user can set this key.
    pub(crate) fn how_to_set(&self) -> String {
        let flag = match self.short {
            Some(c) => format!("-{c}/--{}", self.long()),
            None => format!("--{}", self.long()),
        };
        format!("flag {flag}, env {}", self.env_var())
    }
}

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

use Group::*;
use ValueType::*;

/// `validate.rs`'s bound: Blueflood stores TTLs as a signed 32-bit count of seconds.
const MAX_TTL: u64 = 2_147_483_646;

/// Every configuration key, in `--help` order within each group.
pub(crate) static KEYS: &[KeySpec] = &[
    // The original's flags (twistd plugin `blueflood-forward`), defaults unchanged.
    value(
        "endpoint",
        Some('e'),
        Some("tcp:2004"),
        "ENDPOINT",
        Endpoint("tcp"),
        Original,
        "Twisted endpoint to listen on: tcp:PORT, tcp:port=PORT, tcp:PORT:interface=ADDR",
    ),
    value(
        "interval",
        Some('i'),
        Some("30"),
        "SECONDS",
        Seconds,
        Original,
        "Seconds a point may wait before its batch is sent",
    ),
    value(
        "blueflood",
        Some('b'),
        Some("http://localhost:19000"),
        "URL",
        HttpUrl,
        Original,
        "Blueflood base URL (http or https)",
    ),
    value(
        "tenant",
        Some('t'),
        Some("tenant"),
        "TENANT",
        Tenant,
        Original,
        "Tenant ID, used in the ingest URL path",
    ),
    value(
        "metric_prefix",
        Some('p'),
        Some(""),
        "PREFIX",
        Text,
        Original,
        "Prepended to every metric name with a '.'; empty = none [default: empty]",
    ),
    value(
        "ttl",
        None,
        Some("86400"),
        "SECONDS",
        Integer {
            min: 1,
            max: Some(MAX_TTL),
        },
        Original,
        "ttlInSeconds of every datapoint",
    ),
    KeySpec {
        cli_file_flag: true,
        ..value(
            "user",
            Some('u'),
            Some(""),
            "USER",
            Text,
            Original,
            "Keystone user; empty = no authentication [default: empty]",
        )
    },
    KeySpec {
        secret: true,
        cli_file_flag: true,
        ..value(
            "key",
            Some('k'),
            None,
            "KEY",
            Text,
            Original,
            "Keystone API key; on the command line every local user can read it (ps), prefer --key-file",
        )
    },
    value(
        "auth_url",
        None,
        Some("https://identity.api.rackspacecloud.com/v2.0/tokens"),
        "URL",
        HttpUrl,
        Original,
        "Keystone token URL (v2: .../v2.0/tokens, v3: .../v3/auth/tokens)",
    ),
    // Authentication beyond the original's -u/-k (issue 4).
    value(
        "auth_method",
        None,
        Some("rax-kskey"),
        "METHOD",
        Choice(&["rax-kskey", "v2-password", "v3-password"]),
        Authentication,
        "rax-kskey (v2 API key), v2-password or v3-password; the key is the API key or the password",
    ),
    value(
        "auth_domain",
        None,
        Some("Default"),
        "DOMAIN",
        Text,
        Authentication,
        "Keystone v3 user domain name",
    ),
    value(
        "secret_name",
        None,
        None,
        "NAME",
        Text,
        Authentication,
        "Read user and key from this Kubernetes Secret through the API (get/watch) instead of files [default: off]",
    ),
    value(
        "secret_namespace",
        None,
        None,
        "NAMESPACE",
        Text,
        Authentication,
        "Namespace of --secret-name [default: the pod's own namespace]",
    ),
    value(
        "secret_user_key",
        None,
        Some("username"),
        "KEY",
        Text,
        Authentication,
        "Data key of the user name in --secret-name",
    ),
    value(
        "secret_key_key",
        None,
        Some("apiKey"),
        "KEY",
        Text,
        Authentication,
        "Data key of the API key or password in --secret-name",
    ),
    value(
        "limit",
        None,
        Some("0"),
        "BYTES",
        Bytes { min: 0, max: None },
        Original,
        "Largest JSON body per request; 0 = Blueflood's limit (1 MiB), larger values are capped",
    ),
    value(
        "protocol",
        None,
        Some("MetricPickleReceiver"),
        "CLASS",
        Choice(&["MetricPickleReceiver", "MetricLineReceiver"]),
        Original,
        "Protocol of --endpoint: MetricPickleReceiver (pickle) or MetricLineReceiver (plaintext lines)",
    ),
    switch(
        "overwrite_collection_timestamp",
        Original,
        "Use the arrival time instead of the metric's timestamp",
    ),
    // New in this implementation.
    value(
        "line_endpoint",
        None,
        None,
        "ENDPOINT",
        Endpoint("tcp"),
        Listeners,
        "Also listen for plaintext lines over TCP (tcp:PORT[:interface=ADDR]) [default: off]",
    ),
    value(
        "udp_endpoint",
        None,
        None,
        "ENDPOINT",
        Endpoint("udp"),
        Listeners,
        "Also listen for plaintext lines over UDP (udp:PORT[:interface=ADDR]) [default: off]",
    ),
    value(
        "buffer_bytes",
        None,
        Some("268435456"),
        "BYTES",
        Bytes {
            min: MIN_BUFFER_BYTES,
            max: None,
        },
        Buffer,
        "Memory for points not yet delivered (suffixes KiB, MiB, GiB, KB, MB, GB accepted)",
    ),
    value(
        "buffer_policy",
        None,
        Some("drop_newest"),
        "POLICY",
        Choice(&["drop_newest", "block"]),
        Buffer,
        "When the buffer is full: drop_newest (count and refuse) or block (stop reading sockets)",
    ),
    value(
        "spool_dir",
        None,
        None,
        "DIR",
        Text,
        Spool,
        "Directory for the disk spool: points that cannot be delivered soon are kept there across restarts [default: off]",
    ),
    value(
        "spool_bytes",
        None,
        Some("1073741824"),
        "BYTES",
        Bytes {
            min: MIN_SPOOL_BYTES,
            max: None,
        },
        Spool,
        "Disk the spool may use (suffixes KiB, MiB, GiB, KB, MB, GB accepted)",
    ),
    value(
        "spool_full_policy",
        None,
        Some("drop_oldest"),
        "POLICY",
        Choice(&["drop_oldest", "block"]),
        Spool,
        "When the spool is full: drop_oldest (delete the oldest segment, counted) or block (keep points in memory; the buffer policy applies)",
    ),
    value(
        "spool_fsync",
        None,
        Some("1000"),
        "MS|batch",
        IntegerOr {
            min: 1,
            max: 3_600_000,
            word: "batch",
        },
        Spool,
        "fsync the spool every MS milliseconds, or after every batch written (batch)",
    ),
    value(
        "spool_threshold",
        None,
        Some("0.5"),
        "FRACTION",
        Fraction { above: "0" },
        Spool,
        "Buffer fill (0..1) above which new batches go to the spool instead of waiting in memory",
    ),
    value(
        "spool_drain_rate",
        None,
        Some("50000"),
        "POINTS/S",
        Integer { min: 1, max: None },
        Spool,
        "Most datapoints per second sent from the spool after an outage (live data goes first)",
    ),
    value(
        "concurrency",
        None,
        Some("4"),
        "N",
        Integer {
            min: 1,
            max: Some(256),
        },
        Delivery,
        "Requests in flight to Blueflood at once (1..=256)",
    ),
    value(
        "compression",
        None,
        Some("gzip"),
        "gzip|none",
        Choice(&["gzip", "none"]),
        Delivery,
        "Request body compression",
    ),
    value(
        "compression_level",
        None,
        Some("1"),
        "0..9",
        Integer {
            min: 0,
            max: Some(9),
        },
        Delivery,
        "gzip level",
    ),
    value(
        "connect_timeout",
        None,
        Some("5"),
        "SECONDS",
        Seconds,
        Delivery,
        "TCP/TLS connect timeout for Blueflood and Keystone",
    ),
    value(
        "request_timeout",
        None,
        Some("30"),
        "SECONDS",
        Seconds,
        Delivery,
        "Timeout of a whole request to Blueflood or Keystone",
    ),
    value(
        "retry_initial",
        None,
        Some("0.2"),
        "SECONDS",
        Seconds,
        Delivery,
        "First retry delay; doubles per attempt, with jitter",
    ),
    value(
        "retry_max",
        None,
        Some("30"),
        "SECONDS",
        Seconds,
        Delivery,
        "Longest retry delay",
    ),
    value(
        "max_frame_bytes",
        None,
        Some("1048576"),
        "BYTES",
        Bytes {
            min: 1,
            max: Some(u32::MAX as u64),
        },
        InputLimits,
        "Largest pickle frame; a larger length header closes the connection",
    ),
    value(
        "max_line_bytes",
        None,
        Some("16384"),
        "BYTES",
        Bytes { min: 1, max: None },
        InputLimits,
        "Longest plaintext line",
    ),
    value(
        "max_name_bytes",
        None,
        Some("4096"),
        "BYTES",
        Bytes { min: 1, max: None },
        InputLimits,
        "Longest metric name (before the prefix)",
    ),
    value(
        "max_connections",
        None,
        Some("1024"),
        "N",
        Integer { min: 1, max: None },
        InputLimits,
        "Concurrent TCP connections over all listeners",
    ),
    value(
        "idle_timeout",
        None,
        Some("300"),
        "SECONDS",
        Seconds,
        InputLimits,
        "Close a connection that sends nothing for this long",
    ),
    value(
        "max_past",
        None,
        Some("259200"),
        "SECONDS",
        Seconds,
        InputLimits,
        "Drop points older than this",
    ),
    value(
        "max_future",
        None,
        Some("600"),
        "SECONDS",
        Seconds,
        InputLimits,
        "Drop points further ahead than this",
    ),
    value(
        "shutdown_timeout",
        None,
        Some("25"),
        "SECONDS",
        Seconds,
        Operation,
        "On SIGTERM, how long to keep delivering buffered points",
    ),
    switch(
        "dry_run",
        Operation,
        "Receive and batch, but write each request body to stdout (one JSON array per line) instead of sending it",
    ),
    value(
        "log_format",
        None,
        Some("text"),
        "text|json",
        Choice(&["text", "json"]),
        Operation,
        "Log output format",
    ),
    value(
        "log_level",
        None,
        Some("info"),
        "LEVEL",
        NonEmptyText,
        Operation,
        "trace, debug, info, warn (or warning), error (or critical), off; or directives such as info,blueflood_forward=debug (RUST_LOG overrides it)",
    ),
    value(
        "admin_addr",
        None,
        Some("0.0.0.0:8080"),
        "ADDR:PORT",
        SocketAddr,
        Operation,
        "Admin HTTP server (/livez, /readyz, /status, /metrics); 127.0.0.1:PORT keeps it local",
    ),
    KeySpec {
        secret: true,
        cli_file_flag: true,
        ..value(
            "admin_token",
            None,
            None,
            "TOKEN",
            Text,
            Operation,
            "Bearer token required by /status and /metrics (probes stay open); prefer --admin-token-file",
        )
    },
    value(
        "ready_high_water",
        None,
        Some("0.9"),
        "FRACTION",
        Fraction { above: "0.1" },
        Operation,
        "Buffer fill (0..1) above which /readyz answers 503, until it falls 0.1 below",
    ),
];

pub(crate) fn find(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.key == key)
}

/// Looks up `name` as either a key or `<key>_file`; the bool says which.
pub(crate) fn find_with_file(name: &str) -> Option<(&'static KeySpec, bool)> {
    if let Some(spec) = find(name) {
        return Some((spec, false));
    }
    let base = name.strip_suffix(FILE_SUFFIX)?;
    find(base).map(|spec| (spec, true))
}

/// The known key closest to a misspelled `name`, if any is close enough to be a likely typo.
pub(crate) fn suggest(name: &str) -> Option<String> {
    let (base, suffix) = match name.strip_suffix(FILE_SUFFIX) {
        Some(base) => (base, FILE_SUFFIX),
        None => (name, ""),
    };
    KEYS.iter()
        .map(|k| (edit_distance(base, k.key), k.key))
        .filter(|(d, key)| *d <= 2.max(key.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, key)| format!("{key}{suffix}"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
