//! Configuration loading through the public `config::load`: defaults, the original's flags,
//! files, environment, precedence, `*_file`, validation messages and secret hygiene; keys of
//! their own in `config/` (`shutdown_delay.rs`).

mod shutdown_delay;

use crate::config_load;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use blueflood_forward::config::settings::{
    BufferPolicy, Compression, ListenerSpec, LogFormat, Protocol, SecretSource, SpoolFsync,
    SpoolFullPolicy, SpoolSettings,
};
use blueflood_forward::config::{ConfigError, load};
use config_load::{args, env, invalid, ok, ok_env};
use secrecy::ExposeSecret;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The listener of `key` (`endpoint` for the first, whatever its protocol).
fn listener(protocol: Protocol, port: u16, interface: Option<&str>) -> ListenerSpec {
    let key = match protocol {
        Protocol::LineUdp => "udp_endpoint",
        _ => "endpoint",
    };
    listener_of(key, protocol, port, interface)
}

fn listener_of(
    key: &'static str,
    protocol: Protocol,
    port: u16,
    interface: Option<&str>,
) -> ListenerSpec {
    ListenerSpec {
        key,
        protocol,
        port,
        interface: interface.map(|i| i.parse::<IpAddr>().unwrap()),
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn defaults_are_the_originals() {
    let c = ok(&[]);
    assert_eq!(c.listeners, vec![listener(Protocol::Pickle, 2004, None)]);
    assert_eq!(c.forward.interval, secs(30.0));
    assert_eq!(c.forward.blueflood_url.as_str(), "http://localhost:19000/");
    assert_eq!(c.forward.tenant, "tenant");
    assert_eq!(
        c.ingest.prefix, "",
        "the original's code: no prefix unless -p"
    );
    assert_eq!(c.forward.ttl_seconds, 86400);
    assert!(c.auth.is_none());
    assert_eq!(c.forward.max_body_bytes, 1_048_576);
    assert!(!c.ingest.overwrite_collection_timestamp);
}

#[test]
fn defaults_of_new_settings() {
    let c = ok(&[]);
    assert_eq!(c.buffer.max_bytes, 268_435_456);
    assert_eq!(c.buffer.policy, BufferPolicy::DropNewest);
    assert_eq!(c.forward.concurrency, 4);
    assert_eq!(c.forward.compression, Compression::Gzip { level: 1 });
    assert_eq!(c.shutdown_timeout, secs(25.0));
    assert!(!c.dry_run);
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.log.level, "info");
    assert_eq!(c.ingest.max_frame_bytes, 1_048_576);
    assert_eq!(c.ingest.max_line_bytes, 16_384);
    assert_eq!(c.ingest.max_name_bytes, 4_096);
    assert_eq!(c.ingest.max_connections, 1_024);
    assert_eq!(c.ingest.idle_timeout, secs(300.0));
    assert_eq!(c.ingest.partial_frame_bytes, 64 << 20);
    assert_eq!(c.ingest.max_past, secs(259_200.0));
    assert_eq!(c.ingest.max_future, secs(600.0));
    assert_eq!(c.forward.connect_timeout, secs(5.0));
    assert_eq!(c.forward.request_timeout, secs(30.0));
    assert_eq!(c.forward.retry_initial, secs(0.2));
    assert_eq!(c.forward.retry_max, secs(30.0));
    assert_eq!(c.forward.retry_after_max, secs(120.0));
}

#[test]
fn original_short_flags() {
    let c = ok(&[
        "-e",
        "tcp:2104",
        "-i",
        "2.5",
        "-b",
        "https://bf.example:8443",
        "-t",
        "123456",
        "-p",
        "",
        "-u",
        "bob",
        "-k",
        "sekrit",
    ]);
    assert_eq!(c.listeners, vec![listener(Protocol::Pickle, 2104, None)]);
    assert_eq!(c.forward.interval, secs(2.5));
    assert_eq!(c.forward.blueflood_url.as_str(), "https://bf.example:8443/");
    assert_eq!(c.forward.tenant, "123456");
    assert_eq!(c.ingest.prefix, "");
    let auth = c.auth.unwrap();
    assert_eq!(auth.user, "bob");
    assert_eq!(auth.key.expose_secret(), "sekrit");
    assert_eq!(auth.key_source, SecretSource::CommandLine);
    assert_eq!(
        auth.auth_url.as_str(),
        "https://identity.api.rackspacecloud.com/v2.0/tokens"
    );
}

#[test]
fn original_long_flags_in_both_spellings() {
    for (auth, overwrite, prefix) in [
        (
            "--auth_url",
            "--overwrite_collection_timestamp",
            "--metric_prefix",
        ),
        (
            "--auth-url",
            "--overwrite-collection-timestamp",
            "--metric-prefix",
        ),
    ] {
        let c = ok(&[
            "--endpoint",
            "tcp:2105",
            "--interval",
            "10",
            "--blueflood",
            "http://bf:19000",
            "--tenant",
            "t2",
            prefix,
            "pre",
            "--ttl",
            "3600",
            "--user",
            "alice",
            "--key",
            "k",
            auth,
            "https://keystone.example/v2.0/tokens",
            "--limit",
            "500000",
            "--protocol",
            "MetricLineReceiver",
            overwrite,
        ]);
        assert_eq!(c.listeners, vec![listener(Protocol::LineTcp, 2105, None)]);
        assert_eq!(c.forward.interval, secs(10.0));
        assert_eq!(c.forward.blueflood_url.as_str(), "http://bf:19000/");
        assert_eq!(c.forward.tenant, "t2");
        assert_eq!(c.ingest.prefix, "pre");
        assert_eq!(c.forward.ttl_seconds, 3600);
        assert_eq!(c.forward.max_body_bytes, 500_000);
        assert!(c.ingest.overwrite_collection_timestamp, "{overwrite}");
        let a = c.auth.unwrap();
        assert_eq!(a.user, "alice");
        assert_eq!(a.auth_url.as_str(), "https://keystone.example/v2.0/tokens");
    }
}

#[test]
fn switches_accept_explicit_values() {
    let c = ok(&["--overwrite_collection_timestamp=false", "--dry-run=true"]);
    assert!(!c.ingest.overwrite_collection_timestamp);
    assert!(c.dry_run);
    let c = ok(&["--dry-run"]);
    assert!(c.dry_run);
}

#[test]
fn equals_form_and_last_flag_wins() {
    let c = ok(&["--tenant=a", "--tenant", "b"]);
    assert_eq!(c.forward.tenant, "b");
}

#[test]
fn new_flags() {
    let c = ok(&[
        "--line-endpoint",
        "tcp:2003",
        "--udp-endpoint",
        "udp:2003",
        "--buffer-bytes",
        "256MiB",
        "--buffer-policy",
        "block",
        "--concurrency",
        "16",
        "--compression",
        "none",
        "--compression-level",
        "9",
        "--shutdown-timeout",
        "2.5",
        "--dry-run",
        "--log-format",
        "json",
        "--log-level",
        "debug,hyper=warn",
        "--max-frame-bytes",
        "2048",
        "--max-line-bytes",
        "100",
        "--max-name-bytes",
        "50",
        "--max-connections",
        "7",
        "--idle-timeout",
        "1.5",
        "--partial-frame-bytes",
        "1MiB",
        "--max-past",
        "60",
        "--max-future",
        "1",
        "--connect-timeout",
        "0.5",
        "--request-timeout",
        "3",
        "--retry-initial",
        "0.01",
        "--retry-max",
        "2",
    ]);
    assert_eq!(
        c.listeners,
        vec![
            listener(Protocol::Pickle, 2004, None),
            listener_of("line_endpoint", Protocol::LineTcp, 2003, None),
            listener(Protocol::LineUdp, 2003, None),
        ]
    );
    assert_eq!(c.buffer.max_bytes, 256 << 20);
    assert_eq!(c.buffer.policy, BufferPolicy::Block);
    assert_eq!(c.forward.concurrency, 16);
    assert_eq!(c.forward.compression, Compression::None);
    assert_eq!(c.shutdown_timeout, secs(2.5));
    assert!(c.dry_run);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.level, "debug,hyper=warn");
    assert_eq!(c.ingest.max_frame_bytes, 2048);
    assert_eq!(c.ingest.max_line_bytes, 100);
    assert_eq!(c.ingest.max_name_bytes, 50);
    assert_eq!(c.ingest.max_connections, 7);
    assert_eq!(c.ingest.idle_timeout, secs(1.5));
    assert_eq!(c.ingest.partial_frame_bytes, 1 << 20);
    assert_eq!(c.ingest.max_past, secs(60.0));
    assert_eq!(c.ingest.max_future, secs(1.0));
    assert_eq!(c.forward.connect_timeout, secs(0.5));
    assert_eq!(c.forward.request_timeout, secs(3.0));
    assert_eq!(c.forward.retry_initial, secs(0.01));
    assert_eq!(c.forward.retry_max, secs(2.0));
    // Underscored spellings of the new flags work too.
    let c = ok(&["--buffer_bytes", "1048576", "--compression_level", "6"]);
    assert_eq!(c.buffer.max_bytes, 1_048_576);
    assert_eq!(c.forward.compression, Compression::Gzip { level: 6 });
}

#[test]
fn protocol_line_receiver_makes_the_endpoint_line_tcp() {
    let c = ok(&["--protocol", "MetricLineReceiver", "-e", "tcp:0"]);
    assert_eq!(c.listeners, vec![listener(Protocol::LineTcp, 0, None)]);
    let c = ok(&["--protocol", "MetricPickleReceiver"]);
    assert_eq!(c.listeners[0].protocol, Protocol::Pickle);
}

#[test]
fn endpoints_with_interfaces() {
    let c = ok(&[
        "-e",
        "tcp:port=0:interface=127.0.0.1",
        "--line-endpoint",
        "tcp:0:interface=::1",
        "--udp-endpoint",
        "udp:0:interface=0.0.0.0",
    ]);
    assert_eq!(
        c.listeners,
        vec![
            listener(Protocol::Pickle, 0, Some("127.0.0.1")),
            listener_of("line_endpoint", Protocol::LineTcp, 0, Some("::1")),
            listener(Protocol::LineUdp, 0, Some("0.0.0.0")),
        ]
    );
}

#[test]
fn limit_zero_means_blueflood_limit_and_is_capped() {
    assert_eq!(ok(&["--limit", "0"]).forward.max_body_bytes, 1_048_576);
    assert_eq!(ok(&["--limit", "1"]).forward.max_body_bytes, 1);
    assert_eq!(
        ok(&["--limit", "10000000"]).forward.max_body_bytes,
        1_048_576
    );
}

#[test]
fn legacy_ini_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "forwarder.conf",
        "[blueflood_carbon_forwarder]\n\
         endpoint = tcp:2204:interface=127.0.0.1\n\
         interval = 5\n\
         blueflood = http://bf.local:19000\n\
         tenant = 98765\n\
         prefix = ini\n\
         ttl = 600\n\
         user = carol\n\
         key = inikey\n\
         auth_url = https://auth.local/v2.0/tokens\n\
         limit = 1000\n\
         protocol = MetricPickleReceiver\n\
         overwrite_collection_timestamp = True\n\
         concurrency = 2\n",
    );
    let c = ok(&["--config", s(&path)]);
    assert_eq!(
        c.listeners,
        vec![listener(Protocol::Pickle, 2204, Some("127.0.0.1"))]
    );
    assert_eq!(c.forward.interval, secs(5.0));
    assert_eq!(c.forward.blueflood_url.as_str(), "http://bf.local:19000/");
    assert_eq!(c.forward.tenant, "98765");
    assert_eq!(c.ingest.prefix, "ini");
    assert_eq!(c.forward.ttl_seconds, 600);
    assert_eq!(c.forward.max_body_bytes, 1000);
    assert!(c.ingest.overwrite_collection_timestamp);
    assert_eq!(c.forward.concurrency, 2);
    let a = c.auth.unwrap();
    assert_eq!(a.user, "carol");
    assert_eq!(a.key.expose_secret(), "inikey");
    assert_eq!(a.key_source, SecretSource::ConfigFile);
    assert_eq!(a.auth_url.as_str(), "https://auth.local/v2.0/tokens");
}

#[test]
fn toml_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "forwarder.toml",
        "endpoint = \"tcp:0\"\n\
         udp_endpoint = \"udp:0\"\n\
         interval = 1.5\n\
         tenant = 4242\n\
         ttl = 60\n\
         buffer_bytes = \"1GiB\"\n\
         compression = \"none\"\n\
         dry_run = true\n",
    );
    let c = ok(&["--config", s(&path)]);
    assert_eq!(
        c.listeners,
        vec![
            listener(Protocol::Pickle, 0, None),
            listener(Protocol::LineUdp, 0, None)
        ]
    );
    assert_eq!(c.forward.interval, secs(1.5));
    assert_eq!(c.forward.tenant, "4242");
    assert_eq!(c.forward.ttl_seconds, 60);
    assert_eq!(c.buffer.max_bytes, 1 << 30);
    assert_eq!(c.forward.compression, Compression::None);
    assert!(c.dry_run);
}

#[test]
fn config_file_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "c.toml", "tenant = \"from-file\"\n");
    let c = ok_env(&[], &[("BLUEFLOOD_FORWARD_CONFIG", s(&path))]);
    assert_eq!(c.forward.tenant, "from-file");
    // --config wins over the variable.
    let other = write(&dir, "d.toml", "tenant = \"other\"\n");
    let c = ok_env(
        &["--config", s(&other)],
        &[("BLUEFLOOD_FORWARD_CONFIG", s(&path))],
    );
    assert_eq!(c.forward.tenant, "other");
}

#[test]
fn precedence_file_env_cli() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "c.ini",
        "[blueflood_carbon_forwarder]\ntenant = file\nprefix = file\nttl = 1\n",
    );
    let cfg = s(&path);
    let e = [
        ("BLUEFLOOD_FORWARD_TENANT", "env"),
        ("BLUEFLOOD_FORWARD_PREFIX", "env"),
    ];
    let c = ok_env(&["--config", cfg], &e);
    assert_eq!(c.forward.tenant, "env", "env overrides file");
    assert_eq!(c.ingest.prefix, "env");
    assert_eq!(c.forward.ttl_seconds, 1, "file overrides defaults");
    let c = ok_env(&["--config", cfg, "-t", "cli"], &e);
    assert_eq!(c.forward.tenant, "cli", "CLI overrides env");
    assert_eq!(c.ingest.prefix, "env", "flags not given do not override");
}

#[test]
fn environment_keys() {
    let c = ok_env(
        &[],
        &[
            ("BLUEFLOOD_FORWARD_BUFFER_BYTES", "1048576"),
            (
                "BLUEFLOOD_FORWARD_AUTH_URL",
                "http://keystone:5000/v2.0/tokens",
            ),
            ("BLUEFLOOD_FORWARD_OVERWRITE_COLLECTION_TIMESTAMP", "true"),
            ("BLUEFLOOD_FORWARD_PREFIX", ""),
            ("BLUEFLOOD_FORWARD_USER", "dave"),
            ("BLUEFLOOD_FORWARD_KEY", "envkey"),
            // Not ours, and unknown ones of ours, are ignored.
            ("BLUEFLOOD_FORWARD_SERVICE_HOST", "10.0.0.1"),
            ("TENANT", "nope"),
        ],
    );
    assert_eq!(c.buffer.max_bytes, 1_048_576);
    assert!(c.ingest.overwrite_collection_timestamp);
    assert_eq!(c.ingest.prefix, "");
    assert_eq!(c.forward.tenant, "tenant");
    let a = c.auth.unwrap();
    assert_eq!(a.key_source, SecretSource::Environment);
    assert_eq!(a.auth_url.as_str(), "http://keystone:5000/v2.0/tokens");
}

#[test]
fn key_file_on_the_command_line_strips_one_newline() {
    let dir = tempfile::tempdir().unwrap();
    let key = write(&dir, "key", "s3cret-key\n");
    let user = write(&dir, "user", "erin\r\n");
    let c = ok(&["--user-file", s(&user), "--key-file", s(&key)]);
    let a = c.auth.unwrap();
    assert_eq!(a.user, "erin");
    assert_eq!(a.key.expose_secret(), "s3cret-key");
    assert_eq!(a.key_source, SecretSource::File(key.clone()));
    // Underscored spelling, like the other flags.
    let c = ok(&["-u", "erin", "--key_file", s(&key)]);
    assert_eq!(c.auth.unwrap().key.expose_secret(), "s3cret-key");
}

#[test]
fn generic_file_indirection_from_env_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = write(&dir, "tenant", "from-tenant-file\n");
    let c = ok_env(&[], &[("BLUEFLOOD_FORWARD_TENANT_FILE", s(&tenant))]);
    assert_eq!(c.forward.tenant, "from-tenant-file");

    // In a config file, relative to the file's directory; X_file wins over X there.
    write(&dir, "api.key", "filekey\n");
    let cfg = write(
        &dir,
        "c.ini",
        "[blueflood_carbon_forwarder]\nuser = u\nkey_file = api.key\nkey = ignored\n",
    );
    let a = ok(&["--config", s(&cfg)]).auth.unwrap();
    assert_eq!(a.key.expose_secret(), "filekey");
    assert_eq!(a.key_source, SecretSource::File(dir.path().join("api.key")));

    // A higher layer's plain value still wins over a lower layer's file.
    let a = ok(&["--config", s(&cfg), "-k", "clikey"]).auth.unwrap();
    assert_eq!(a.key.expose_secret(), "clikey");
    assert_eq!(a.key_source, SecretSource::CommandLine);
}

#[test]
fn unreadable_file_names_key_and_path() {
    let msg = invalid(
        &["-u", "u"],
        &[("BLUEFLOOD_FORWARD_KEY_FILE", "/no/such/key/file")],
    );
    assert!(msg.contains("\"key\""), "{msg}");
    assert!(msg.contains("/no/such/key/file"), "{msg}");
    assert!(msg.contains("BLUEFLOOD_FORWARD_KEY_FILE"), "{msg}");
}

#[test]
fn bad_value_message_shape() {
    let msg = invalid(&["--compression", "fast"], &[]);
    assert_eq!(
        msg,
        "invalid value \"fast\" for key \"compression\" (flag --compression, env \
         BLUEFLOOD_FORWARD_COMPRESSION), set on the command line: expected one of gzip, none"
    );
    let msg = invalid(&[], &[("BLUEFLOOD_FORWARD_COMPRESSION", "fast")]);
    assert!(
        msg.contains("set by environment variable BLUEFLOOD_FORWARD_COMPRESSION"),
        "{msg}"
    );
}

#[test]
fn each_validation_names_the_key_and_the_value() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["-e", "tcp:99999"], "endpoint", "tcp:99999"),
        (&["-e", "udp:2004"], "endpoint", "udp:2004"),
        (&["-e", "tcp:2004:interface=nohost"], "endpoint", "nohost"),
        (&["-e", ""], "endpoint", ""),
        (&["--line-endpoint", "udp:1"], "line_endpoint", "udp:1"),
        (&["--udp-endpoint", "tcp:1"], "udp_endpoint", "tcp:1"),
        (&["-b", "ftp://x"], "blueflood", "ftp://x"),
        (&["-b", "not a url"], "blueflood", "not a url"),
        (&["-t", ""], "tenant", ""),
        (&["-t", "a/b"], "tenant", "a/b"),
        (&["--ttl", "0"], "ttl", "0"),
        (&["--ttl", "2147483647"], "ttl", "2147483647"),
        (&["-i", "0"], "interval", "0"),
        (&["-i", "-1"], "interval", "-1"),
        (&["-i", "NaN"], "interval", "NaN"),
        (&["-i", "soon"], "interval", "soon"),
        (&["--limit", "-5"], "limit", "-5"),
        (&["--buffer-bytes", "1000"], "buffer_bytes", "1000"),
        (&["--buffer-bytes", "lots"], "buffer_bytes", "lots"),
        (
            &["--buffer-policy", "drop_oldest"],
            "buffer_policy",
            "drop_oldest",
        ),
        (&["--concurrency", "0"], "concurrency", "0"),
        (&["--concurrency", "257"], "concurrency", "257"),
        (&["--concurrency", "1k"], "concurrency", "1k"),
        (&["--compression", "zstd"], "compression", "zstd"),
        (&["--compression-level", "10"], "compression_level", "10"),
        (&["--shutdown-timeout", "0"], "shutdown_timeout", "0"),
        (&["--connect-timeout", "0"], "connect_timeout", "0"),
        (&["--request-timeout", "-3"], "request_timeout", "-3"),
        (&["--retry-initial", "0"], "retry_initial", "0"),
        (
            &["--retry-max", "0.1", "--retry-initial", "1"],
            "retry_max",
            "0.1",
        ),
        (&["--retry-after-max", "0"], "retry_after_max", "0"),
        (&["--retry-after-max", "soon"], "retry_after_max", "soon"),
        (&["--idle-timeout", "0"], "idle_timeout", "0"),
        (&["--max-past", "0"], "max_past", "0"),
        (&["--max-future", "0"], "max_future", "0"),
        (&["--max-frame-bytes", "0"], "max_frame_bytes", "0"),
        (&["--max-line-bytes", "0"], "max_line_bytes", "0"),
        (&["--max-name-bytes", "0"], "max_name_bytes", "0"),
        (&["--max-connections", "0"], "max_connections", "0"),
        (
            &["--partial-frame-bytes", "1000"],
            "partial_frame_bytes",
            "1000",
        ),
        // A budget that cannot hold one whole frame of the largest size allowed.
        (
            &["--max-frame-bytes", "1MiB", "--partial-frame-bytes", "1MiB"],
            "partial_frame_bytes",
            "1MiB",
        ),
        (
            &["--max-frame-bytes", "128MiB"],
            "partial_frame_bytes",
            "67108864",
        ),
        (&["--log-format", "xml"], "log_format", "xml"),
        (&["--log-level", "[[["], "log_level", "[[["),
        (&["--auth-url", "keystone"], "auth_url", "keystone"),
        (
            &["--protocol", "MetricJsonReceiver"],
            "protocol",
            "MetricJsonReceiver",
        ),
        (&["--dry-run=maybe"], "dry_run", "maybe"),
        (
            &["--overwrite_collection_timestamp=2"],
            "overwrite_collection_timestamp",
            "2",
        ),
    ];
    for (a, key, value) in cases {
        let msg = invalid(a, &[]);
        assert!(msg.contains(&format!("key \"{key}\"")), "{a:?}: {msg}");
        assert!(msg.contains(&format!("{value:?}")), "{a:?}: {msg}");
        assert!(msg.contains("expected"), "{a:?}: {msg}");
    }
}

#[test]
fn user_without_key_names_key_and_key_file() {
    let msg = invalid(&["-u", "frank"], &[]);
    assert!(msg.contains("\"key\""), "{msg}");
    assert!(msg.contains("--key-file"), "{msg}");
    let msg = invalid(&["-u", "frank", "-k", ""], &[]);
    assert!(msg.contains("\"key\""), "{msg}");
}

#[test]
fn key_without_user_means_no_auth() {
    assert!(ok(&["-k", "x"]).auth.is_none());
}

#[test]
fn duplicate_listener_ports_are_rejected() {
    let msg = invalid(&["-e", "tcp:2003", "--line-endpoint", "tcp:2003"], &[]);
    assert!(
        msg.contains("endpoint") && msg.contains("line_endpoint") && msg.contains("2003"),
        "{msg}"
    );
    // Same port on another transport is fine, and so are several ephemeral ports.
    ok(&["-e", "tcp:2003", "--udp-endpoint", "udp:2003"]);
    ok(&["-e", "tcp:0", "--line-endpoint", "tcp:0"]);
}

#[test]
fn unknown_keys_in_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(&dir, "c.ini", "[blueflood_carbon_forwarder]\ntennant = x\n");
    let msg = invalid(&["--config", s(&ini)], &[]);
    assert!(
        msg.contains("\"tennant\"") && msg.contains("\"tenant\""),
        "{msg}"
    );
    let toml = write(&dir, "c.toml", "compresion = \"gzip\"\n");
    let msg = invalid(&["--config", s(&toml)], &[]);
    assert!(msg.contains("\"compresion\""), "{msg}");
}

#[test]
fn ini_without_the_section_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(&dir, "c.conf", "[forwarder]\ntenant = x\n");
    let msg = invalid(&["--config", s(&ini)], &[]);
    assert!(msg.contains("[blueflood_carbon_forwarder]"), "{msg}");
}

#[test]
fn missing_config_file_is_rejected() {
    let msg = invalid(&["--config", "/no/such/forwarder.conf"], &[]);
    assert!(msg.contains("/no/such/forwarder.conf"), "{msg}");
}

#[test]
fn bad_flags_are_config_errors() {
    let msg = invalid(&["--no-such-flag"], &[]);
    assert!(msg.contains("--no-such-flag"), "{msg}");
    invalid(&["positional"], &[]);
    invalid(&["--tenant"], &[]);
}

/// Environment pairs as a test case gives them.
type Env<'a> = Vec<(&'a str, &'a str)>;

const SECRET: &str = "zq9-TOP-SECRET-api-key";

#[test]
fn errors_never_show_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let toml_float = write(&dir, "a.toml", "user = \"u\"\nkey = 1.5\n");
    let toml_syntax = write(&dir, "b.toml", &format!("user = \"u\"\nkey = {SECRET}\n"));
    let toml_ok = write(
        &dir,
        "c.toml",
        &format!("user = \"u\"\nkey = \"{SECRET}\"\n"),
    );
    let key_file = write(&dir, "k", SECRET);
    let kf = format!("--key={SECRET}");
    let typo = format!("--kye={SECRET}");
    let cases: Vec<(Vec<&str>, Env<'_>)> = vec![
        // A key from every source next to something else that is wrong.
        (vec!["-u", "u", "-k", SECRET, "--compression", "x"], vec![]),
        (vec!["-u", "u", &kf, "-b", "x"], vec![]),
        (
            vec!["-u", "u", "-t", ""],
            vec![("BLUEFLOOD_FORWARD_KEY", SECRET)],
        ),
        (vec!["--config", s(&toml_ok), "--ttl", "0"], vec![]),
        (
            vec!["-u", "u", "--key-file", s(&key_file), "--ttl", "0"],
            vec![],
        ),
        // The key itself is malformed.
        (vec!["--config", s(&toml_float)], vec![]),
        (vec!["--config", s(&toml_syntax)], vec![]),
        (vec![&typo], vec![]),
    ];
    for (a, e) in cases {
        let msg = invalid(&a, &e);
        assert!(!msg.contains(SECRET), "{a:?}: {msg}");
        assert!(!msg.contains("1.5"), "{a:?}: {msg}");
    }
}

#[test]
fn help_lists_flags_and_defaults_but_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        &dir,
        "c.ini",
        &format!("[blueflood_carbon_forwarder]\nuser = u\nkey = {SECRET}\n"),
    );
    let err = load(
        args(&["--config", s(&cfg), "-k", SECRET, "--help"]),
        env(&[
            ("BLUEFLOOD_FORWARD_KEY", SECRET),
            ("BLUEFLOOD_FORWARD_USER", "u"),
        ]),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 0);
    let ConfigError::Display(help) = err else {
        panic!("--help is not Display");
    };
    assert!(!help.contains(SECRET), "{help}");
    for needle in [
        "-e, --endpoint",
        "[default: tcp:2004]",
        "--auth-url",
        "--auth_url",
        "--overwrite_collection_timestamp",
        "-k, --key",
        "--key-file",
        "--config",
        "--line-endpoint",
        "--buffer-bytes",
        "[default: 268435456]",
        "Options of the original",
        "BLUEFLOOD_FORWARD_",
        "https://identity.api.rackspacecloud.com/v2.0/tokens",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from\n{help}");
    }
    assert_eq!(help, blueflood_forward::config::help_text());
}

#[test]
fn version_is_display() {
    let err = load(args(&["--version"]), vec![]).unwrap_err();
    assert_eq!(err.exit_code(), 0);
    assert!(err.to_string().contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn the_spool_is_off_by_default_and_its_keys_have_their_defaults() {
    assert_eq!(ok(&[]).spool, None);
    let s = ok(&["--spool-dir", "/var/spool/bf"])
        .spool
        .expect("spool on");
    assert_eq!(
        s,
        SpoolSettings {
            dir: "/var/spool/bf".into(),
            max_bytes: 1 << 30,
            full_policy: SpoolFullPolicy::DropOldest,
            fsync: SpoolFsync::Every(Duration::from_millis(1000)),
            threshold: 0.5,
            drain_rate: 50_000,
        }
    );
}

#[test]
fn spool_keys_from_flags_env_and_toml() {
    let a = ok(&[
        "--spool-dir=/d",
        "--spool-bytes",
        "2GiB",
        "--spool-full-policy",
        "block",
        "--spool-fsync",
        "batch",
        "--spool-threshold",
        "0.8",
        "--spool-drain-rate",
        "1000",
    ])
    .spool
    .expect("spool");
    assert_eq!(a.max_bytes, 2 << 30);
    assert_eq!(a.full_policy, SpoolFullPolicy::Block);
    assert_eq!(a.fsync, SpoolFsync::EveryBatch);
    assert_eq!(a.threshold, 0.8);
    assert_eq!(a.drain_rate, 1000);
    let e = ok_env(
        &[],
        &[
            ("BLUEFLOOD_FORWARD_SPOOL_DIR", "/e"),
            ("BLUEFLOOD_FORWARD_SPOOL_FSYNC", "250"),
        ],
    )
    .spool
    .expect("spool");
    assert_eq!(e.dir, PathBuf::from("/e"));
    assert_eq!(e.fsync, SpoolFsync::Every(Duration::from_millis(250)));
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        &dir,
        "c.toml",
        "spool_dir = \"/t\"\nspool_fsync = 50\nspool_bytes = \"64MiB\"\n",
    );
    let t = ok(&["--config", s(&f)]).spool.expect("spool");
    assert_eq!(
        (t.dir, t.fsync, t.max_bytes),
        (
            PathBuf::from("/t"),
            SpoolFsync::Every(Duration::from_millis(50)),
            64 << 20
        )
    );
    // An empty directory turns the spool off (how a chart or env disables it).
    assert_eq!(ok(&["--spool-dir", ""]).spool, None);
}

#[test]
fn bad_spool_values_name_the_key() {
    for (flag, value, key) in [
        ("--spool-fsync", "often", "spool_fsync"),
        ("--spool-fsync", "0", "spool_fsync"),
        ("--spool-bytes", "1MiB", "spool_bytes"),
        ("--spool-full-policy", "drop_newest", "spool_full_policy"),
        ("--spool-threshold", "0", "spool_threshold"),
        ("--spool-threshold", "1.5", "spool_threshold"),
        ("--spool-drain-rate", "0", "spool_drain_rate"),
    ] {
        let msg = invalid(&["--spool-dir", "/d", flag, value], &[]);
        assert!(
            msg.contains(&format!("{key:?}")) && msg.contains(flag),
            "{flag} {value}: {msg}"
        );
    }
}

#[test]
fn admin_connection_bounds_have_defaults_and_are_validated() {
    let c = ok(&[]);
    assert_eq!(c.admin.max_connections, 64);
    assert_eq!(c.admin.header_timeout, secs(10.0));
    let c = ok(&[
        "--admin-max-connections",
        "8",
        "--admin-header-timeout",
        "2.5",
    ]);
    assert_eq!(c.admin.max_connections, 8);
    assert_eq!(c.admin.header_timeout, secs(2.5));
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--admin-max-connections", "0"],
            "admin_max_connections",
            "0",
        ),
        (
            &["--admin-max-connections", "4097"],
            "admin_max_connections",
            "4097",
        ),
        (
            &["--admin-header-timeout", "0"],
            "admin_header_timeout",
            "0",
        ),
        (
            &["--admin-header-timeout", "soon"],
            "admin_header_timeout",
            "soon",
        ),
    ];
    for (a, key, value) in cases {
        let msg = invalid(a, &[]);
        assert!(msg.contains(&format!("key \"{key}\"")), "{a:?}: {msg}");
        assert!(msg.contains(&format!("{value:?}")), "{a:?}: {msg}");
    }
}
