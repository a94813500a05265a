//! The binary as an operator runs it: exit code 64 on bad configuration, `--dry-run` output,
//! and a graceful drain on SIGTERM (a real child process and a real signal).

use crate::support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::blueflood::BluefloodDouble;

const BIN: &str = env!("CARGO_BIN_EXE_blueflood-forward");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run binary")
}

#[test]
fn bad_configuration_exits_64_naming_the_key() {
    let out = run(&["--compression", "fast"]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("compression") && err.contains("fast") && err.contains("gzip"),
        "{err}"
    );

    let out = run(&["--endpoint", "tcp:notaport"]);
    assert_eq!(out.status.code(), Some(64));
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn help_exits_0_and_shows_no_secret() {
    let out = Command::new(BIN)
        .arg("--help")
        .env("BLUEFLOOD_FORWARD_KEY", "hunter2-secret")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--auth_url") || text.contains("--auth-url"));
    assert!(!text.contains("hunter2-secret"));
    // Keys are listed with their defaults, in `check --help` too.
    for help in [vec!["--help"], vec!["check", "--help"]] {
        let out = Command::new(BIN).args(&help).output().expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        let delay = text
            .lines()
            .find(|l| l.contains("--shutdown-delay <SECONDS>"))
            .unwrap_or_else(|| panic!("no --shutdown-delay in {help:?}:\n{text}"));
        assert!(delay.contains("[default: 0]"), "{help:?}: {delay}");
    }
}

/// Starts the binary with JSON logs and returns it with the address of its first listener of
/// `protocol` (read from the "listening" log line).
fn spawn(args: &[&str], protocol: &str) -> (Child, SocketAddr, std::thread::JoinHandle<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--log-format", "json", "--admin-addr", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() {
        line.clear();
        if stderr.read_line(&mut line).expect("read stderr") == 0 {
            panic!("forwarder exited before listening");
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["message"] == "listening" && v["protocol"] == protocol {
            addr = v["addr"].as_str().map(|a| a.parse().expect("addr"));
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    let rest = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut all);
        all
    });
    (child, addr.expect("addr"), rest)
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

#[test]
fn dry_run_writes_the_request_bodies_to_stdout() {
    let (child, addr, _log) = spawn(
        &[
            "--dry-run",
            "--line-endpoint",
            "tcp:0:interface=127.0.0.1",
            "-e",
            "tcp:0:interface=127.0.0.1",
            "-p",
            "dry",
        ],
        "line_tcp",
    );
    let ts = support::now_ms() / 1000;
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(support::send_tcp(
        addr,
        format!("a.b 1.5 {ts}\nc.d 2 {ts}\n").as_bytes(),
    ));
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let mut names = Vec::new();
    for line in stdout.lines() {
        let body: Vec<serde_json::Value> =
            serde_json::from_str(line).expect("each line is a JSON body");
        for p in body {
            assert_eq!(p["collectionTime"], ts * 1000);
            assert_eq!(p["ttlInSeconds"], 86400);
            names.push(p["metricName"].as_str().expect("name").to_string());
        }
    }
    names.sort();
    assert_eq!(names, ["dry.a.b", "dry.c.d"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_delivers_before_exiting_0() {
    let bf = BluefloodDouble::start().await;
    let url = bf.url();
    let (child, addr, log) = spawn(
        &[
            "-b",
            &url,
            "-i",
            "3600",
            "--line-endpoint",
            "tcp:0:interface=127.0.0.1",
            "-e",
            "tcp:0:interface=127.0.0.1",
        ],
        "line_tcp",
    );
    let ts = support::now_ms() / 1000;
    let lines: String = (0..1000).map(|i| format!("term.{i} {i} {ts}\n")).collect();
    support::send_tcp(addr, lines.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bf.stored_count(), 0, "a one-hour interval holds the points");
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.wait()
    })
    .await
    .expect("join")
    .expect("wait");
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        bf.stored_count(),
        1000,
        "log: {}",
        log.join().unwrap_or_default()
    );
}

#[test]
fn unknown_log_levels_exit_64_listing_the_allowed_ones() {
    for level in [
        "debugg",
        "verbose",
        "info,blueflood_forward=loud",
        "blueflood_forward",
        "",
    ] {
        let out = run(&["--log-level", level, "check", "--no-send"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{level:?}: {err}");
        for needle in [
            "\"log_level\"",
            "--log-level",
            "trace",
            "debug",
            "info",
            "warn",
            "error",
            "off",
        ] {
            assert!(err.contains(needle), "{level:?}: {needle} missing: {err}");
        }
    }
    let out = Command::new(BIN)
        .args(["check", "--no-send"])
        .env("BLUEFLOOD_FORWARD_LOG_LEVEL", "warnings")
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BLUEFLOOD_FORWARD_LOG_LEVEL"));
}

#[test]
fn warning_and_critical_are_the_levels_they_say() {
    // `check` with the key on the command line logs one warning about it (its login then
    // fails fast: nothing listens on port 1).
    const WARNING: &str = "the API key was given on the command line";
    let logs = |level: &str| {
        let out = run(&[
            "-u",
            "u",
            "-k",
            "k",
            "--auth-url",
            "http://127.0.0.1:1/v2.0/tokens",
            "--log-level",
            level,
            "check",
            "--no-send",
        ]);
        assert_ne!(out.status.code(), Some(64), "{level}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for level in [
        "warning",
        "WARNING",
        "warn",
        "info,blueflood_forward=warning",
    ] {
        assert!(logs(level).contains(WARNING), "{level}: {}", logs(level));
    }
    for level in ["critical", "error", "off"] {
        assert!(!logs(level).contains(WARNING), "{level}: {}", logs(level));
    }
}

#[test]
fn a_port_in_use_is_one_line_naming_the_flag_and_the_address() {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let taken = tcp.local_addr().expect("addr").to_string();
    let taken_udp = udp.local_addr().expect("addr").to_string();
    let on = |addr: &str| {
        format!(
            "tcp:{}:interface=127.0.0.1",
            addr.rsplit_once(':').unwrap().1
        )
    };
    let free = "tcp:0:interface=127.0.0.1".to_string();
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (vec!["-e".into(), on(&taken)], "--endpoint", &taken),
        (
            vec![
                "-e".into(),
                free.clone(),
                "--line-endpoint".into(),
                on(&taken),
            ],
            "--line-endpoint",
            &taken,
        ),
        (
            vec![
                "-e".into(),
                free.clone(),
                "--udp-endpoint".into(),
                format!(
                    "udp:{}:interface=127.0.0.1",
                    taken_udp.rsplit_once(':').unwrap().1
                ),
            ],
            "--udp-endpoint",
            &taken_udp,
        ),
        (
            vec![
                "-e".into(),
                free.clone(),
                "--admin-addr".into(),
                taken.clone(),
            ],
            "--admin-addr",
            &taken,
        ),
    ];
    for format in ["text", "json"] {
        for (args, flag, addr) in &cases {
            let mut cmd = Command::new(BIN);
            if *flag != "--admin-addr" {
                cmd.args(["--admin-addr", "127.0.0.1:0"]);
            }
            let out = cmd
                .args(args)
                .args(["--dry-run", "--log-format", format])
                .env_remove("RUST_LOG")
                .output()
                .expect("run");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{flag} ({format}): {err}");
            let about: Vec<&str> = err
                .lines()
                .filter(|l| l.contains(addr) || l.to_ascii_lowercase().contains("in use"))
                .collect();
            assert_eq!(about.len(), 1, "{flag} ({format}): {err}");
            assert!(
                about[0].contains(flag) && about[0].contains(addr),
                "{flag} ({format}): {err}"
            );
            assert_eq!(
                about[0].to_ascii_lowercase().matches("in use").count(),
                1,
                "{flag} ({format}): {err}"
            );
        }
    }
    drop((tcp, udp));
}

/// `.` and `..` are path segments a URL resolves away: `/v2.0/../ingest` is not a tenant.
#[test]
fn a_dot_segment_tenant_exits_64() {
    for tenant in [".", "..", " .. "] {
        // Accepted, it would run: listen on ephemeral ports and be stopped by the failsafe.
        let mut child = Command::new(BIN)
            .args([
                "--tenant",
                tenant,
                "--dry-run",
                "--endpoint",
                "tcp:0:interface=127.0.0.1",
            ])
            .args(["--admin-addr", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let failsafe = std::time::Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("wait").is_none() && std::time::Instant::now() < failsafe {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "tenant {tenant:?}: {err}");
        assert!(err.contains("\"tenant\"") && err.contains("'..'"), "{err}");
    }
}
