//! Turns the merged, untyped configuration into a [`Settings`], checking every value before
//! anything binds. Each failure is one message naming the key, how to set it, the bad value,
//! where that value came from and what is allowed. Secret values are never shown.

use std::time::Duration;

use secrecy::SecretString;

use super::ConfigError;
use super::endpoint::{self, Transport};
use super::keys::KeySpec;
use super::log_level;
use super::raw::{Entry, LayerKind, Resolved, Scalar};

mod values;
use super::settings::{
    AdminSettings, AuthMethod, AuthSettings, BLUEFLOOD_MAX_BODY_BYTES, BufferPolicy,
    BufferSettings, Compression, ForwardSettings, IngestSettings, KubeSecretSettings, ListenerSpec,
    LogFormat, LogSettings, Protocol, SecretSource, Settings, SpoolFsync, SpoolFullPolicy,
    SpoolSettings,
};
use values::{Values, as_string, invalid};

/// Below this a buffer cannot hold even a handful of full batches.
pub(crate) const MIN_BUFFER_BYTES: u64 = 64 * 1024;
/// Two ordinary carbon-relay frames (500 points, about 30 KiB each) arriving at once.
pub(crate) const MIN_PARTIAL_FRAME_BYTES: u64 = 64 * 1024;
/// The bytes of a pickle frame's length header.
const PICKLE_HEADER_BYTES: usize = 4;
/// Room for a few segments of the smallest size and one request-sized record.
pub(crate) const MIN_SPOOL_BYTES: u64 = 4 * 1024 * 1024;
/// The admin port serves probes and scrapes, a handful of clients: its bound must stay far
/// below the process's open-files limit, which the carbon listeners need.
pub(crate) const ADMIN_MAX_CONNECTIONS: u64 = 4096;

/// Blueflood stores TTLs as a signed 32-bit count of seconds.
const MAX_TTL: u64 = 2_147_483_646;

const PICKLE_RECEIVER: &str = "MetricPickleReceiver";
const LINE_RECEIVER: &str = "MetricLineReceiver";

/// Checks everything and builds the settings.
pub(crate) fn settings(resolved: &Resolved) -> Result<Settings, ConfigError> {
    let v = Values { resolved };

    let protocol = v.choice(
        "protocol",
        &[
            (PICKLE_RECEIVER, Protocol::Pickle),
            (LINE_RECEIVER, Protocol::LineTcp),
        ],
    )?;
    let mut listeners = Vec::new();
    let main = match v.endpoint("endpoint", Transport::Tcp)? {
        Some(main) => main,
        None => {
            let (spec, entry) = v.required("endpoint")?;
            return Err(invalid(spec, entry, endpoint::expected(Transport::Tcp)));
        }
    };
    listeners.push(("endpoint", protocol, main));
    if let Some(e) = v.endpoint("line_endpoint", Transport::Tcp)? {
        listeners.push(("line_endpoint", Protocol::LineTcp, e));
    }
    if let Some(e) = v.endpoint("udp_endpoint", Transport::Udp)? {
        listeners.push(("udp_endpoint", Protocol::LineUdp, e));
    }
    check_distinct_ports(&listeners)?;
    let listeners = listeners
        .into_iter()
        .map(|(key, protocol, (e, _))| ListenerSpec {
            key,
            protocol,
            port: e.port,
            interface: e.interface,
        })
        .collect();

    let ingest = IngestSettings {
        prefix: v.string("metric_prefix")?,
        overwrite_collection_timestamp: v.boolean("overwrite_collection_timestamp")?,
        max_past: v.seconds("max_past")?,
        max_future: v.seconds("max_future")?,
        // The pickle length header is a 32-bit count.
        max_frame_bytes: v.size("max_frame_bytes", 1, u64::from(u32::MAX))?,
        max_line_bytes: v.size("max_line_bytes", 1, u64::MAX)?,
        max_name_bytes: v.size("max_name_bytes", 1, u64::MAX)?,
        max_connections: v.count("max_connections", 1, u64::MAX)?,
        idle_timeout: v.seconds("idle_timeout")?,
        partial_frame_bytes: v.size("partial_frame_bytes", MIN_PARTIAL_FRAME_BYTES, u64::MAX)?,
    };
    // One connection alone may hold the largest frame (with its header) or line it is allowed
    // to send: a smaller budget would close every sender of one.
    let one_input =
        (ingest.max_frame_bytes.saturating_add(PICKLE_HEADER_BYTES)).max(ingest.max_line_bytes);
    if ingest.partial_frame_bytes < one_input {
        let (spec, entry) = v.required("partial_frame_bytes")?;
        return Err(invalid(
            spec,
            entry,
            format!(
                "at least max_frame_bytes + 4 and max_line_bytes ({one_input} bytes): one connection may hold a whole frame or line"
            ),
        ));
    }

    let buffer = BufferSettings {
        max_bytes: v.size("buffer_bytes", MIN_BUFFER_BYTES, u64::MAX)?,
        policy: v.choice(
            "buffer_policy",
            &[
                ("drop_newest", BufferPolicy::DropNewest),
                ("block", BufferPolicy::Block),
            ],
        )?,
    };

    let spool = spool_settings(&v)?;
    let forward = forward_settings(&v)?;
    let auth = auth_settings(&v)?;

    let log = LogSettings {
        format: v.choice(
            "log_format",
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
        shutdown_timeout: v.seconds("shutdown_timeout")?,
        dry_run: v.boolean("dry_run")?,
        log,
        admin: admin_settings(&v)?,
    })
}

/// The spool is off unless `spool_dir` is set; its other keys are checked either way, so a
/// typo fails at start even before the spool is turned on.
fn spool_settings(v: &Values<'_>) -> Result<Option<SpoolSettings>, ConfigError> {
    let max_bytes = v.integer("spool_bytes", MIN_SPOOL_BYTES, u64::MAX, true)?;
    let full_policy = v.choice(
        "spool_full_policy",
        &[
            ("drop_oldest", SpoolFullPolicy::DropOldest),
            ("block", SpoolFullPolicy::Block),
        ],
    )?;
    let (spec, entry) = v.required("spool_fsync")?;
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
        "spool_threshold",
        0.0,
        "a fraction above 0 and at most 1, such as 0.5",
    )?;
    let drain_rate = v.integer("spool_drain_rate", 1, u64::MAX, false)?;
    let Some((dir, _)) = v.optional_string("spool_dir")? else {
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

fn admin_settings(v: &Values<'_>) -> Result<AdminSettings, ConfigError> {
    let (spec, entry) = v.required(AdminSettings::ADDR_KEY)?;
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
    let token = match v.optional_string("admin_token")? {
        Some((t, _)) if !t.is_empty() => Some(SecretString::from(t)),
        _ => None,
    };
    let ready_high_water = v.fraction(
        "ready_high_water",
        0.1,
        "a fraction above 0.1 and at most 1, such as 0.9",
    )?;
    Ok(AdminSettings {
        addr,
        token,
        ready_high_water,
        max_connections: v.count("admin_max_connections", 1, ADMIN_MAX_CONNECTIONS)?,
        header_timeout: v.seconds("admin_header_timeout")?,
    })
}

fn forward_settings(v: &Values<'_>) -> Result<ForwardSettings, ConfigError> {
    let (tenant_spec, tenant_entry) = v.required("tenant")?;
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
    let limit = v.size("limit", 0, u64::MAX)?;
    let max_body_bytes = match limit {
        0 => BLUEFLOOD_MAX_BODY_BYTES,
        n => n.min(BLUEFLOOD_MAX_BODY_BYTES),
    };

    let level = v.integer("compression_level", 0, 9, false)?;
    let compression = v.choice(
        "compression",
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

    let retry_initial = v.seconds("retry_initial")?;
    let retry_max = v.seconds("retry_max")?;
    if retry_max < retry_initial {
        let (spec, entry) = v.required("retry_max")?;
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
        blueflood_url: v.http_url("blueflood")?,
        tenant,
        ttl_seconds: u32::try_from(v.integer("ttl", 1, MAX_TTL, false)?).unwrap_or(u32::MAX),
        interval: v.seconds("interval")?,
        max_body_bytes,
        concurrency: v.count("concurrency", 1, 256)?,
        compression,
        connect_timeout: v.seconds("connect_timeout")?,
        request_timeout: v.seconds("request_timeout")?,
        retry_initial,
        retry_max,
        retry_after_max: v.seconds("retry_after_max")?,
    })
}

fn auth_settings(v: &Values<'_>) -> Result<Option<AuthSettings>, ConfigError> {
    // Checked even without a user, so a typo is caught before authentication is turned on.
    let auth_url = v.http_url("auth_url")?;
    let method = v.choice(
        "auth_method",
        &[
            ("rax-kskey", AuthMethod::RaxKsKey),
            ("v2-password", AuthMethod::V2Password),
            ("v3-password", AuthMethod::V3Password),
        ],
    )?;
    let domain = v.string("auth_domain")?;
    if method == AuthMethod::V3Password && domain.trim().is_empty() {
        let (spec, entry) = v.required("auth_domain")?;
        return Err(invalid(spec, entry, "a non-empty Keystone v3 domain name"));
    }
    let max_answer_bytes = v.size("auth_max_answer_bytes", 1024, 1 << 30)?;
    let base = |user: String, key: String, user_source, key_source, kube_secret| AuthSettings {
        user,
        key: SecretString::from(key),
        auth_url: auth_url.clone(),
        key_source,
        user_source,
        method,
        domain: domain.clone(),
        kube_secret,
        poll_interval: CREDENTIAL_POLL_INTERVAL,
        max_answer_bytes,
    };

    // The Kubernetes API supplies both user and key: `user`/`key` are not needed then.
    if let Some((name, _)) = v.optional_string("secret_name")? {
        let namespace = match v.optional_string("secret_namespace")? {
            Some((ns, _)) => ns,
            None => pod_namespace(v.spec("secret_namespace")?)?,
        };
        let secret = KubeSecretSettings {
            name,
            namespace,
            user_key: v.string("secret_user_key")?,
            key_key: v.string("secret_key_key")?,
        };
        let label = format!("{}/{}", secret.namespace, secret.name);
        return Ok(Some(base(
            String::new(),
            String::new(),
            SecretSource::KubernetesSecret(label.clone()),
            SecretSource::KubernetesSecret(label),
            Some(secret),
        )));
    }

    let Some((user, user_entry)) = v.optional_string("user")? else {
        // An empty user *file* is a broken Secret, not a request to turn authentication off.
        if let (spec, Some(entry)) = v.entry("user")?
            && entry.origin.file.is_some()
        {
            return Err(invalid(spec, entry, "a user name (the file is empty)"));
        }
        return Ok(None);
    };
    let key_spec = v.spec("key")?;
    let Some((key, key_entry)) = v.optional_string("key")? else {
        return Err(ConfigError::Invalid(format!(
            "key \"key\" ({}) is required when user is set (user {user:?}): \
             give the API key with --key-file PATH or {} rather than on the command line",
            key_spec.how_to_set(),
            key_spec.env_file_var()
        )));
    };
    Ok(Some(base(
        user,
        key,
        secret_source(user_entry, "user")?,
        secret_source(key_entry, "API key")?,
        None,
    )))
}

/// Watched credential files are compared this often even without a change notification.
const CREDENTIAL_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Where a pod's ServiceAccount namespace is mounted.
const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

fn pod_namespace(spec: &KeySpec) -> Result<String, ConfigError> {
    // Bounded and never blocking, like every file read at start (see `files`).
    let namespace = crate::files::read_small_within(
        std::path::Path::new(POD_NAMESPACE_FILE),
        crate::files::MAX_VALUE_FILE_BYTES,
        crate::files::READ_TIMEOUT,
    )
    .map(|b| String::from_utf8_lossy(&b).into_owned());
    match namespace {
        Ok(ns) if !ns.trim().is_empty() => Ok(ns.trim().to_owned()),
        _ => Err(ConfigError::Invalid(format!(
            "no value for key {:?} ({}): needed with secret_name outside a pod \
             (cannot read {POD_NAMESPACE_FILE})",
            spec.key,
            spec.how_to_set()
        ))),
    }
}

fn secret_source(entry: &Entry, what: &str) -> Result<SecretSource, ConfigError> {
    Ok(match (&entry.origin.file, &entry.origin.layer) {
        (Some((path, _)), _) => SecretSource::File(path.clone()),
        (None, LayerKind::CommandLine) => SecretSource::CommandLine,
        (None, LayerKind::Environment) => SecretSource::Environment,
        (None, LayerKind::ConfigFile(_)) => SecretSource::ConfigFile,
        (None, LayerKind::Defaults) => {
            return Err(ConfigError::Invalid(format!(
                "internal error: the {what} has a default"
            )));
        }
    })
}

fn log_level(v: &Values<'_>) -> Result<String, ConfigError> {
    let (spec, entry) = v.required("log_level")?;
    let level = as_string(spec, entry)?;
    log_level::filter(&level).ok_or_else(|| invalid(spec, entry, log_level::EXPECTED))
}

type Listener<'a> = (&'static str, Protocol, (endpoint::Endpoint, &'a Entry));

/// Two listeners on one port and transport cannot both bind (except port 0: each gets its
/// own ephemeral port).
fn check_distinct_ports(listeners: &[Listener<'_>]) -> Result<(), ConfigError> {
    let mut taken: Vec<(&str, Transport, u16)> = Vec::new();
    for (key, _, (e, _)) in listeners {
        if e.port == 0 {
            continue;
        }
        if let Some((first, ..)) = taken
            .iter()
            .find(|(_, t, p)| *t == e.transport && *p == e.port)
        {
            return Err(ConfigError::Invalid(format!(
                "keys {first:?} and {key:?} both listen on {} port {}: \
                 expected a different port for each listener",
                e.transport.name(),
                e.port
            )));
        }
        taken.push((key, e.transport, e.port));
    }
    Ok(())
}
