//! The validated, typed configuration the rest of the program runs on. Everything here has
//! already been checked by `config::load`: a `Settings` value is always usable as it is.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// Blueflood's hard limit on a decompressed request body.
pub const BLUEFLOOD_MAX_BODY_BYTES: usize = 1_048_576;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Every socket to listen on (pickle TCP, line TCP, line UDP).
    pub listeners: Vec<ListenerSpec>,
    pub ingest: IngestSettings,
    pub buffer: BufferSettings,
    /// `None` unless `spool_dir` is set.
    pub spool: Option<SpoolSettings>,
    pub forward: ForwardSettings,
    /// `None` when `user` is empty: no authentication (as the original).
    pub auth: Option<AuthSettings>,
    /// The drain's budget, counted from the end of `shutdown_delay`.
    pub shutdown_timeout: Duration,
    /// After the first signal: not ready, but still listening and delivering this long.
    pub shutdown_delay: Duration,
    pub dry_run: bool,
    pub log: LogSettings,
    pub admin: AdminSettings,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Where `/livez`, `/readyz`, `/status` and `/metrics` are served.
    pub addr: std::net::SocketAddr,
    /// When set, `/status` and `/metrics` require `Authorization: Bearer <token>`.
    pub token: Option<SecretString>,
    /// Buffer fill (0..1) above which `/readyz` answers 503.
    pub ready_high_water: f64,
    /// Admin connections open at once; more are refused.
    pub max_connections: usize,
    /// How long an admin connection may take to send a whole request header, from when it
    /// opened or was last answered (so also the idle keep-alive timeout).
    pub header_timeout: Duration,
}

impl AdminSettings {
    /// The configuration key of `addr`, for messages.
    pub const ADDR_KEY: &'static str = super::keys::Key::AdminAddr.name();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Length-prefixed pickle frames over TCP (`MetricPickleReceiver`).
    Pickle,
    /// Plaintext lines over TCP (`MetricLineReceiver`).
    LineTcp,
    /// Plaintext lines over UDP, one or more lines per datagram.
    LineUdp,
}

impl Protocol {
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Pickle => "pickle",
            Protocol::LineTcp => "line_tcp",
            Protocol::LineUdp => "line_udp",
        }
    }
}

/// A Twisted-style endpoint (`tcp:2004`, `tcp:2004:interface=127.0.0.1`, `udp:2003`) resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The configuration key that asked for it (`endpoint`, `line_endpoint`, `udp_endpoint`),
    /// so that a failure to bind can name it ([`crate::config::describe_key`]).
    pub key: &'static str,
    pub protocol: Protocol,
    pub port: u16,
    /// `None`: every address, IPv6 and IPv4 (dual stack, falling back to IPv4 alone).
    pub interface: Option<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Prepended to every name with a `.`; empty = none.
    pub prefix: String,
    /// Use arrival time instead of the sender's timestamp.
    pub overwrite_collection_timestamp: bool,
    /// Points older than this (relative to now) are dropped as `out_of_window`.
    pub max_past: Duration,
    /// Points further ahead than this are dropped as `out_of_window`.
    pub max_future: Duration,
    /// Largest pickle frame accepted; a larger length header closes the connection.
    pub max_frame_bytes: usize,
    /// Longest line accepted; longer lines are skipped up to their newline and counted.
    pub max_line_bytes: usize,
    /// Longest metric name accepted (bytes, before the prefix).
    pub max_name_bytes: usize,
    /// Concurrent TCP connections over all listeners; more are refused and counted.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed (slowloris guard).
    pub idle_timeout: Duration,
    /// Bytes of incomplete frames and lines all connections may hold together; above it the
    /// connections holding the most are closed.
    pub partial_frame_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferPolicy {
    /// Refuse the newest points when full, counting them as `buffer_full`.
    DropNewest,
    /// Stop reading sockets until there is room (TCP back-pressure; UDP still drops).
    Block,
}

#[derive(Debug, Clone)]
pub struct BufferSettings {
    pub max_bytes: usize,
    pub policy: BufferPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpoolSettings {
    pub dir: std::path::PathBuf,
    /// Bound on the spool's files, in bytes.
    pub max_bytes: u64,
    pub full_policy: SpoolFullPolicy,
    pub fsync: SpoolFsync,
    /// Buffer fill (0..1) above which new batches are spooled instead of kept in memory.
    pub threshold: f64,
    /// Most datapoints per second replayed from the spool.
    pub drain_rate: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolFullPolicy {
    /// Delete the oldest segment (its points counted as `spool_full`).
    DropOldest,
    /// Write nothing more: points stay in memory and the buffer policy applies.
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolFsync {
    Every(Duration),
    EveryBatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip { level: u32 },
}

#[derive(Debug, Clone)]
pub struct ForwardSettings {
    /// Blueflood base URL, e.g. `http://localhost:19000`.
    pub blueflood_url: url::Url,
    pub tenant: String,
    pub ttl_seconds: u32,
    /// A batch is sent when its oldest point has waited this long.
    pub interval: Duration,
    /// Largest JSON body per request (decompressed); never above `BLUEFLOOD_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    pub concurrency: usize,
    pub compression: Compression,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// First retry delay; doubles per attempt, with jitter, up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// The longest a `Retry-After` is honoured: a server asking for more (up to `u32::MAX`
    /// seconds, or a date in 9999) would park its batch for ever.
    pub retry_after_max: Duration,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The user as read at load time (empty when `kube_secret` supplies it).
    pub user: String,
    /// The API key or password as read at load time (empty when `kube_secret` supplies it).
    pub key: SecretString,
    pub auth_url: url::Url,
    /// Where the key came from, for the warning about command-line secrets; a `File` is
    /// watched and re-read when it changes.
    pub key_source: SecretSource,
    /// Where the user came from; a `File` is watched like the key's.
    pub user_source: SecretSource,
    pub method: AuthMethod,
    /// Keystone v3 user domain name (`--auth-domain`).
    pub domain: String,
    /// Keystone v3 project id to scope the token to (`--auth-project-id`); `None`: unscoped.
    pub project_id: Option<String>,
    /// Read the credentials from this Secret through the Kubernetes API instead.
    pub kube_secret: Option<KubeSecretSettings>,
    /// How often watched credential files are compared even without a change notification.
    pub poll_interval: Duration,
    /// The most bytes of a Keystone answer read (`auth_max_answer_bytes`).
    pub max_answer_bytes: usize,
}

impl AuthSettings {
    /// Keystone v2 API-key login with fixed credentials from the config file: the original's
    /// behaviour, and a convenient base for tests (`..AuthSettings::new(..)`).
    pub fn new(user: impl Into<String>, key: impl Into<String>, auth_url: url::Url) -> Self {
        Self {
            user: user.into(),
            key: SecretString::from(key.into()),
            auth_url,
            key_source: SecretSource::ConfigFile,
            user_source: SecretSource::ConfigFile,
            method: AuthMethod::RaxKsKey,
            domain: "Default".to_owned(),
            project_id: None,
            kube_secret: None,
            poll_interval: Duration::from_secs(10),
            max_answer_bytes: 4 << 20,
        }
    }
}

/// How to log in to Keystone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// v2 `RAX-KSKEY:apiKeyCredentials` (Rackspace API key), the original's.
    RaxKsKey,
    /// v2 `passwordCredentials`.
    V2Password,
    /// v3 password; the token comes in the `X-Subject-Token` header.
    V3Password,
}

impl AuthMethod {
    pub fn label(self) -> &'static str {
        match self {
            AuthMethod::RaxKsKey => "rax-kskey",
            AuthMethod::V2Password => "v2-password",
            AuthMethod::V3Password => "v3-password",
        }
    }
}

/// A Secret read through the Kubernetes API (get + watch on that one object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeSecretSettings {
    pub name: String,
    pub namespace: String,
    /// Data key holding the user name.
    pub user_key: String,
    /// Data key holding the API key or password.
    pub key_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    CommandLine,
    Environment,
    ConfigFile,
    File(PathBuf),
    /// `namespace/name`, read through the Kubernetes API.
    KubernetesSecret(String),
}

impl std::fmt::Display for SecretSource {
    /// For status pages and logs: where, never what.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::CommandLine => f.write_str("command line"),
            SecretSource::Environment => f.write_str("environment"),
            SecretSource::ConfigFile => f.write_str("config file"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
            SecretSource::KubernetesSecret(id) => write!(f, "kubernetes secret {id}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` overrides it when set.
    pub level: String,
}
