//! Drop-in for the original forwarder, judged by its code (`optParameters` of its twistd
//! plugin) rather than its README: its `example.conf` as shipped (`tests/data/`), its flag
//! spellings (`-c`, `-p/--metric_prefix`), its empty default prefix, its empty-means-unset
//! INI values and Python booleans; through `config::load` and through the real binary.

use crate::config_load;
use crate::support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use blueflood_forward::config::settings::Protocol;
use blueflood_forward::config::{ConfigError, load};
use config_load::{args, invalid, ok, ok_env};
use secrecy::ExposeSecret;
use support::blueflood::BluefloodDouble;

const BIN: &str = env!("CARGO_BIN_EXE_blueflood-forward");

/// The original's `example.conf`, byte for byte.
fn example_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/original-example.conf")
}

fn example() -> String {
    example_conf().display().to_string()
}

/// A config file in the original's format: its section, then `body`.
fn ini(dir: &tempfile::TempDir, body: &str) -> String {
    let path = dir.path().join("forwarder.conf");
    std::fs::write(&path, format!("[blueflood_carbon_forwarder]\n{body}")).expect("write");
    path.display().to_string()
}

#[test]
fn example_conf_as_shipped_is_refused_naming_the_empty_tenant() {
    let msg = invalid(&["-c", &example()], &[]);
    assert!(msg.contains("key \"tenant\""), "{msg}");
    assert!(msg.contains("-t/--tenant"), "{msg}");
    assert!(msg.contains("original-example.conf"), "{msg}");
}

#[test]
fn example_conf_with_a_tenant_behaves_like_the_original() {
    for c in [
        ok(&["-c", &example(), "-t", "836986"]),
        ok(&["--config", &example(), "--tenant", "836986"]),
        ok_env(
            &["-c", &example()],
            &[("BLUEFLOOD_FORWARD_TENANT", "836986")],
        ),
    ] {
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(
            (c.listeners[0].protocol, c.listeners[0].port),
            (Protocol::Pickle, 2004)
        );
        assert_eq!(c.listeners[0].interface, None);
        assert_eq!(c.forward.interval, Duration::from_secs(30));
        assert_eq!(c.forward.blueflood_url.as_str(), "http://localhost:19000/");
        assert_eq!(c.forward.tenant, "836986");
        assert_eq!(c.ingest.prefix, "", "metric_prefix= is no prefix");
        assert_eq!(c.forward.ttl_seconds, 86400);
        assert!(c.auth.is_none(), "user= is no authentication");
        assert_eq!(c.forward.max_body_bytes, 1_048_576, "limit=0");
        assert!(!c.ingest.overwrite_collection_timestamp, "False");
    }
}

#[test]
fn python_booleans_and_integers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = ok(&[
        "-c",
        &ini(
            &dir,
            "tenant=t\noverwrite_collection_timestamp=True\ninterval=5\nttl=600\nlimit=1000\n",
        ),
    ]);
    assert!(c.ingest.overwrite_collection_timestamp);
    assert_eq!(c.forward.interval, Duration::from_secs(5));
    assert_eq!(c.forward.ttl_seconds, 600);
    assert_eq!(c.forward.max_body_bytes, 1000);
    let c = ok(&[
        "-c",
        &ini(&dir, "tenant=t\noverwrite_collection_timestamp=False\n"),
    ]);
    assert!(!c.ingest.overwrite_collection_timestamp);
}

#[test]
fn empty_ini_values_mean_not_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ini(
        &dir,
        "tenant=t\nendpoint=\ninterval=\nblueflood=\nmetric_prefix=\nttl=\nuser=\nkey=\n\
         auth_url=\nlimit=\nprotocol=\noverwrite_collection_timestamp=\n",
    );
    let c = ok(&["-c", &path]);
    let d = ok(&["-t", "t"]);
    assert_eq!(c.listeners, d.listeners);
    assert_eq!(c.forward.interval, d.forward.interval);
    assert_eq!(c.forward.blueflood_url, d.forward.blueflood_url);
    assert_eq!(c.ingest.prefix, "");
    assert_eq!(c.forward.ttl_seconds, d.forward.ttl_seconds);
    assert!(c.auth.is_none());
    assert_eq!(c.forward.max_body_bytes, d.forward.max_body_bytes);
    assert!(!c.ingest.overwrite_collection_timestamp);
    // An empty value in the file leaves the flag's value standing, as in the original.
    let c = ok(&["-c", &path, "-p", "cli", "-u", "bob", "-k", "k"]);
    assert_eq!(c.ingest.prefix, "cli");
    assert_eq!(c.auth.expect("auth").user, "bob");
}

#[test]
fn user_and_key_in_the_file_turn_authentication_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = ok(&[
        "-c",
        &ini(
            &dir,
            "tenant=t\nuser=carol\nkey=inikey\nauth_url=https://auth.local/v2.0/tokens\n",
        ),
    ]);
    let a = c.auth.expect("auth");
    assert_eq!(a.user, "carol");
    assert_eq!(a.key.expose_secret(), "inikey");
    assert_eq!(a.auth_url.as_str(), "https://auth.local/v2.0/tokens");
}

#[test]
fn an_empty_user_file_is_still_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = dir.path().join("username");
    std::fs::write(&user, "").expect("write");
    let msg = invalid(&["--user-file", user.to_str().expect("utf8")], &[]);
    assert!(msg.contains("key \"user\""), "{msg}");
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn the_default_prefix_is_empty() {
    assert_eq!(ok(&[]).ingest.prefix, "");
}

#[test]
fn metric_prefix_in_every_spelling_and_source() {
    for flags in [
        ["-p", "x"],
        ["--metric_prefix", "x"],
        ["--metric-prefix", "x"],
        ["--prefix", "x"],
    ] {
        assert_eq!(ok(&flags).ingest.prefix, "x", "{flags:?}");
    }
    assert_eq!(ok(&["--metric_prefix=x"]).ingest.prefix, "x");
    for var in [
        "BLUEFLOOD_FORWARD_METRIC_PREFIX",
        "BLUEFLOOD_FORWARD_PREFIX",
    ] {
        assert_eq!(ok_env(&[], &[(var, "e")]).ingest.prefix, "e", "{var}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for body in ["metric_prefix=f\n", "prefix=f\n", "metric-prefix=f\n"] {
        assert_eq!(ok(&["-c", &ini(&dir, body)]).ingest.prefix, "f", "{body}");
    }
    let toml = dir.path().join("c.toml");
    for body in ["metric_prefix = \"f\"\n", "prefix = \"f\"\n"] {
        std::fs::write(&toml, body).expect("write");
        assert_eq!(ok(&["-c", toml.to_str().expect("utf8")]).ingest.prefix, "f");
    }
    // A `prefix_file` is the alias of `metric_prefix_file`.
    let value = dir.path().join("prefix.txt");
    std::fs::write(&value, "from-file\n").expect("write");
    let c = ok_env(
        &[],
        &[(
            "BLUEFLOOD_FORWARD_PREFIX_FILE",
            value.to_str().expect("utf8"),
        )],
    );
    assert_eq!(c.ingest.prefix, "from-file");
}

#[test]
fn the_canonical_name_wins_over_its_alias_in_one_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    for body in [
        "metric_prefix=new\nprefix=old\n",
        "prefix=old\nmetric_prefix=new\n",
    ] {
        assert_eq!(ok(&["-c", &ini(&dir, body)]).ingest.prefix, "new");
    }
    let toml = dir.path().join("c.toml");
    std::fs::write(&toml, "prefix = \"old\"\nmetric_prefix = \"new\"\n").expect("write");
    assert_eq!(
        ok(&["-c", toml.to_str().expect("utf8")]).ingest.prefix,
        "new"
    );
    let e = [
        ("BLUEFLOOD_FORWARD_PREFIX", "old"),
        ("BLUEFLOOD_FORWARD_METRIC_PREFIX", "new"),
    ];
    assert_eq!(ok_env(&[], &e).ingest.prefix, "new");
    // Across sources the usual precedence applies, whatever the spelling.
    let c = ok_env(
        &["-c", &ini(&dir, "metric_prefix=file\n")],
        &[("BLUEFLOOD_FORWARD_PREFIX", "env")],
    );
    assert_eq!(c.ingest.prefix, "env");
}

#[test]
fn the_originals_docker_command_line() {
    // twistd ... -e $ENDPOINT -b $BLUEFLOOD_URL -u $KEYSTONE_USER -k $KEYSTONE_KEY
    //   --auth_url $AUTH_URL --tenant $TENANT_ID [-p $METRIC_PREFIX] --ttl $DEFAULT_TTL --limit=$LIMIT
    let c = ok(&[
        "-e",
        "tcp:2004",
        "-b",
        "http://blueflood:19000",
        "-u",
        "",
        "-k",
        "",
        "--auth_url",
        "https://identity.api.rackspacecloud.com/v2.0/tokens",
        "--tenant",
        "123456",
        "-p",
        "prod",
        "--ttl",
        "172800",
        "--limit=0",
    ]);
    assert!(c.auth.is_none());
    assert_eq!(
        (c.forward.tenant.as_str(), c.ingest.prefix.as_str()),
        ("123456", "prod")
    );
    assert_eq!(c.forward.ttl_seconds, 172_800);
}

#[test]
fn help_shows_the_originals_spellings() {
    let Err(ConfigError::Display(help)) = load(args(&["--help"]), vec![]) else {
        panic!("--help is not Display");
    };
    for needle in [
        "-c, --config",
        "-p, --metric-prefix",
        "--metric_prefix",
        "--prefix",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from\n{help}");
    }
    assert!(!help.contains("[default: metric_prefix]"), "{help}");
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run binary")
}

#[test]
fn the_binary_refuses_the_example_conf_as_shipped_with_exit_64() {
    let out = run(&["-c", &example(), "check", "--no-send"]);
    let t = support::output_text(&out);
    assert_eq!(out.status.code(), Some(64), "{t}");
    assert!(t.contains("\"tenant\""), "{t}");
    let out = run(&["-c", &example()]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        support::output_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_checks_the_example_conf_with_a_tenant() {
    let out = tokio::task::spawn_blocking(|| {
        run(&["-c", &example(), "-t", "836986", "check", "--no-send"])
    })
    .await
    .expect("join");
    let t = support::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains(
            "ok      config: blueflood http://localhost:19000/ tenant 836986; no authentication"
        ),
        "{t}"
    );

    let bf = BluefloodDouble::start().await;
    let url = bf.url();
    let out = tokio::task::spawn_blocking(move || {
        run(&["-c", &example(), "-t", "836986", "-b", &url, "check"])
    })
    .await
    .expect("join");
    let t = support::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("send: 1 datapoint blueflood_forward.check stored"),
        "{t}"
    );
    let p = &bf.stored()[0];
    assert_eq!(
        (p.tenant.as_str(), p.metric_name.as_str(), p.ttl_in_seconds),
        ("836986", "blueflood_forward.check", 86400)
    );
    assert_eq!(bf.requests()[0].auth_token, None);
}

/// Runs the binary with `args` (JSON logs, admin on an ephemeral port) and returns it with the
/// address of its pickle listener, read from the "listening" log line (bounded wait).
fn spawn(args: &[&str]) -> (std::process::Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--log-format", "json", "--admin-addr", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["message"] == "listening" && v["protocol"] == "pickle" {
                let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("forwarder listening within 20 s");
    (child, addr.parse().expect("addr"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_from_the_example_conf_forwards_unprefixed_without_auth() {
    let bf = BluefloodDouble::start().await;
    let (mut child, addr) = spawn(&[
        "-c",
        &example(),
        "-t",
        "836986",
        "-b",
        &bf.url(),
        "-e",
        "tcp:0:interface=127.0.0.1",
        "-i",
        "0.05",
    ]);
    let ts = support::now_secs_f64().floor();
    support::send_tcp(addr, &support::pickle_frame(&[("servers.a.load", ts, 1.5)])).await;
    let stored = bf.wait_for_stored(1, Duration::from_secs(20)).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(stored, "nothing stored; requests {:?}", bf.requests());
    let p = &bf.stored()[0];
    assert_eq!(
        (p.tenant.as_str(), p.metric_name.as_str(), p.ttl_in_seconds),
        ("836986", "servers.a.load", 86400)
    );
    assert_eq!(p.collection_time, (ts as i64) * 1000);
    assert!(bf.requests().iter().all(|r| r.auth_token.is_none()));
}
