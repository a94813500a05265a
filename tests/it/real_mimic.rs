//! Rackspace identity (v2 API key, `--auth-method rax-kskey`) against Rackspace's own mock,
//! PyPI `mimic` 2.2.0 (a child process: `support::mimic`), through the real binary: `check`
//! passes and prints neither key nor token; a delivery to the Blueflood double carries the
//! token mimic issued as `X-Auth-Token`, with one login, undisturbed when mimic starts
//! refusing the user mid-run (the cached token is still valid); a 401 mimic injects for the
//! user fails `check` clearly, and a forwarder started under it backs off under load (logins
//! counted in mimic's own access log), loses nothing, and delivers everything once the
//! injection is removed.
//!
//! mimic accepts any API key for any user, so this proves the wire format (request body,
//! answer, token, `expires` with mimic's `-05:00` offset) and the 401 path, not key checking.
//!
//! Needs the virtualenv `scripts/real-mimic.sh --venv-only` makes (`BFF_MIMIC_VENV`, default
//! `.cache/mimic-venv`). Without it each test passes without running and prints `SKIPPED ...`,
//! unless `CI=true` or `BFF_INTEROP_REQUIRED=1`, when it fails.

use crate::reliability_child as rc;
use crate::support;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use support::blueflood::BluefloodDouble;
use support::mimic::{Logins, Mimic};
use support::secrets::write_secret;

/// The User-Agent the forwarder logs in with, to tell its logins from the test's own.
const AGENT: &str = "blueflood-forward/";
/// Any key works with mimic; this one is only looked for where it must never appear.
const KEY: &str = "mimic-takes-any-KEY-3f9c2a";

fn venv_or_skip(test: &str) -> Option<PathBuf> {
    let venv = support::mimic::venv();
    if venv.is_none() {
        support::prerequisite_missing(
            test,
            "no mimic virtualenv (run scripts/real-mimic.sh --venv-only, or set BFF_MIMIC_VENV)",
        );
    }
    venv
}

/// mimic, a Blueflood double that accepts only the token mimic issues to `user`, and a key
/// file. The test's own login makes mimic's session for `user` (one a user name, for mimic's
/// whole life), so the forwarder's logins get the same token.
async fn setup(venv: &std::path::Path, user: &str) -> (Mimic, BluefloodDouble, String, Fixture) {
    let mimic = Mimic::start(venv).await;
    let (status, token) = mimic.login(user, "the-test-own-key").await;
    assert_eq!(status, 200, "mimic login; log:\n{}", mimic.log_tail(20));
    let token = token.expect("mimic issued a token");
    let bf = BluefloodDouble::start().await;
    bf.require_token(Some(token.clone()));
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("apiKey");
    write_secret(&key, KEY);
    (mimic, bf, token, Fixture { _dir: dir, key })
}

struct Fixture {
    _dir: tempfile::TempDir,
    key: PathBuf,
}

impl Fixture {
    fn key(&self) -> String {
        self.key.display().to_string()
    }
}

/// `blueflood-forward check ARGS`, to its exit, and its output as one text.
async fn check(args: Vec<String>) -> (Output, String) {
    let out = support::run_binary([vec!["check".to_owned()], args].concat()).await;
    let text = support::output_text(&out);
    (out, text)
}

fn check_args(bf: &BluefloodDouble, mimic: &Mimic, user: &str, f: &Fixture) -> Vec<String> {
    [
        "-b",
        &bf.url(),
        "-t",
        "t-mimic",
        "-p",
        "ops",
        "--auth-method",
        "rax-kskey",
        "-u",
        user,
        "--key-file",
        &f.key(),
        "--auth-url",
        &mimic.auth_url(),
        "--request-timeout",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_logs_in_to_mimic_and_stores_its_datapoint() {
    let Some(venv) = venv_or_skip("check_logs_in_to_mimic_and_stores_its_datapoint") else {
        return;
    };
    let user = "bff-check";
    let (mimic, bf, token, f) = setup(&venv, user).await;
    let (out, t) = check(check_args(&bf, &mimic, user, &f)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{t}\nmimic:\n{}",
        mimic.log_tail(20)
    );
    for line in [
        "ok      credentials: read from file",
        &format!(
            "ok      authenticate: token received from {}",
            mimic.auth_url()
        ),
        "ok      send: 1 datapoint ops.blueflood_forward.check stored",
        "check passed",
    ] {
        assert!(t.contains(line), "missing {line:?} in\n{t}");
    }
    assert!(!t.contains(KEY), "check shows the API key:\n{t}");
    assert!(!t.contains(&token), "check shows the token:\n{t}");
    // The double only stores with mimic's token: the one request carried it.
    let reqs = bf.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].auth_token.as_deref(), Some(token.as_str()));
    assert_eq!(bf.stored()[0].tenant, "t-mimic");
    let logins = mimic.logins(AGENT).await;
    assert_eq!(
        logins,
        Logins {
            ok: 1,
            refused: 0,
            other: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_401_mimic_injects() {
    let Some(venv) = venv_or_skip("check_reports_a_401_mimic_injects") else {
        return;
    };
    let user = "bff-refused";
    let (mimic, bf, _token, f) = setup(&venv, user).await;
    mimic.fail_logins("^bff-refused$", 401).await;
    let (out, t) = check(check_args(&bf, &mimic, user, &f)).await;
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("FAILED  authenticate: identity service refused the credentials (HTTP 401)"),
        "{t}"
    );
    assert!(t.contains("FAILED  send: not attempted"), "{t}");
    assert!(t.contains("check FAILED"), "{t}");
    assert!(!t.contains(KEY), "{t}");
    assert!(bf.requests().is_empty(), "{:?}", bf.requests());
    let logins = mimic.logins(AGENT).await;
    assert_eq!((logins.ok, logins.refused), (0, 1), "{logins:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_carries_the_token_mimic_issued() {
    let Some(venv) = venv_or_skip("delivery_carries_the_token_mimic_issued") else {
        return;
    };
    let user = "bff-deliver";
    let (mimic, bf, token, f) = setup(&venv, user).await;
    let key = f.key();
    let url = mimic.auth_url();
    let c = rc::spawn(
        "mimic delivery",
        &bf.url(),
        &[
            "--auth-method",
            "rax-kskey",
            "-u",
            user,
            "--key-file",
            &key,
            "--auth-url",
            &url,
        ],
    );
    let first = rc::line_load(c.line, "mimic", 5, 100, Duration::from_millis(20)).await;
    c.settle(first, Duration::from_secs(60)).await;
    // mimic now refuses this user: a forwarder holding a valid token does not notice (it
    // does not log in again before the token is due for refresh).
    mimic.fail_logins("^bff-deliver$", 401).await;
    let sent = first + rc::line_load(c.line, "later", 5, 100, Duration::from_millis(20)).await;
    let s = c.settle(sent, Duration::from_secs(60)).await;
    let log = c.log_lines().join("\n");
    c.stop(Duration::from_secs(30)).await;
    let l = &s["ledger"];
    assert_eq!(l["received_total"], sent, "{s:#}");
    assert_eq!(l["delivered"], sent, "{s:#}");
    assert_eq!(l["dropped_total"], 0, "{s:#}");
    assert_eq!(l["balanced"], true, "{s:#}");
    assert_eq!(bf.stored_count() as u64, sent);
    let reqs = bf.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(r.auth_token.as_deref(), Some(token.as_str()), "{r:?}");
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert!(
        !log.contains(KEY) && !log.contains(&token),
        "secret in log:\n{log}"
    );
    // mimic writes `expires` as its local time plus a day labelled `-05:00` whatever the zone
    // (it runs with TZ=UTC here): 29 h from now. 24 h would mean the offset was ignored, 19 h
    // that it was read backwards, 1 h (the fallback) that `expires` was not read at all.
    let valid_for = valid_for_from_log(&log);
    assert!(
        (28 * 3600..30 * 3600).contains(&valid_for),
        "token lifetime read from mimic's expires: {valid_for} s"
    );
    // One login for the whole run: the token is cached.
    assert_eq!(s["auth"]["auth_requests"], 1, "{s:#}");
    let logins = mimic.logins(AGENT).await;
    assert_eq!((logins.ok, logins.refused, logins.other), (1, 0, 0));
}

/// `valid_for_s` of the forwarder's "authenticated with Keystone" log line.
fn valid_for_from_log(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "authenticated with Keystone")
        .and_then(|v| v["valid_for_s"].as_u64())
        .unwrap_or_else(|| panic!("no \"authenticated with Keystone\" line in\n{log}"))
}

/// How many logins a backoff of `initial` doubling to `max` allows in `elapsed`, plus the one
/// that ended it: the most a forwarder that keeps its own backoff can have made.
fn logins_allowed(initial: f64, max: f64, elapsed: f64) -> usize {
    let (mut at, mut delay, mut n) = (0.0, initial, 1);
    while at + delay <= elapsed {
        at += delay;
        delay = (delay * 2.0).min(max);
        n += 1;
    }
    n + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_back_off_lose_nothing_and_recover() {
    let Some(venv) = venv_or_skip("refused_logins_back_off_lose_nothing_and_recover") else {
        return;
    };
    let user = "bff-backoff";
    let (mimic, bf, token, f) = setup(&venv, user).await;
    let behavior = mimic.fail_logins("^bff-backoff$", 401).await;
    let key = f.key();
    let url = mimic.auth_url();
    let started = Instant::now();
    let c = rc::spawn(
        "mimic 401",
        &bf.url(),
        &[
            "--auth-method",
            "rax-kskey",
            "-u",
            user,
            "--key-file",
            &key,
            "--auth-url",
            &url,
            "--retry-initial",
            "0.2",
            "--retry-max",
            "2",
        ],
    );
    // Load from several connections while every login is refused: each batch wants a token.
    let sent = rc::line_load(c.line, "refused", 20, 50, Duration::from_millis(20)).await;
    let s = c
        .wait_status(Duration::from_secs(60), "three refused logins", |s| {
            rc::n(&s["auth"]["auth_failures"]) >= 3 && rc::n(&s["ledger"]["received_total"]) >= sent
        })
        .await;
    let l = &s["ledger"];
    assert_eq!(l["delivered"], 0, "{s:#}");
    assert_eq!(l["dropped_total"], 0, "{s:#}");
    assert_eq!(l["balanced"], true, "{s:#}");
    let last_error = s["auth"]["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("HTTP 401"), "{s:#}");
    assert!(
        bf.requests().is_empty(),
        "sent without a token: {:?}",
        bf.requests()
    );

    mimic.remove_behavior(&behavior).await;
    let s = c.settle(sent, Duration::from_secs(60)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let log = c.log_lines().join("\n");
    c.stop(Duration::from_secs(30)).await;
    let l = &s["ledger"];
    assert_eq!(l["delivered"], sent, "{s:#}");
    assert_eq!(l["dropped_total"], 0, "{s:#}");
    assert_eq!(l["balanced"], true, "{s:#}");
    assert_eq!(bf.stored_count() as u64, sent);
    for r in bf.requests() {
        assert_eq!(r.auth_token.as_deref(), Some(token.as_str()), "{r:?}");
    }
    assert!(
        !log.contains(KEY) && !log.contains(&token),
        "secret in log:\n{log}"
    );

    // mimic's own count: one login that worked, and no more refused ones than the backoff
    // allows over the whole run (a retry per batch or per request would be many more).
    let logins = mimic.logins(AGENT).await;
    let allowed = logins_allowed(0.2, 2.0, elapsed);
    assert_eq!(logins.ok, 1, "{logins:?}");
    assert!(
        logins.refused >= 3 && logins.refused < allowed,
        "{logins:?}: at most {} refused logins fit a 0.2 s..2 s backoff in {elapsed:.1} s",
        allowed - 1
    );
    assert_eq!(
        s["auth"]["auth_requests"].as_u64(),
        Some((logins.ok + logins.refused) as u64),
        "the forwarder's count and mimic's differ: {s:#}"
    );
    eprintln!(
        "real_mimic: {} refused logins and 1 accepted in {elapsed:.1} s, {sent} points delivered",
        logins.refused
    );
}
