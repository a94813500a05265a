//! The identity side's edges through the real binary (a child process on real sockets):
//! Keystone answers that redirect, that are huge or never end, tokens that cannot be sent, and
//! credential files that are huge, not regular files, or replaced by a FIFO while running.
//! Each case keeps every datapoint (the ledger balances) and the key never leaves for another
//! origin; memory is read from the child's `/proc/PID/status` with bounds far below the attack.

use crate::edges_child;
use crate::reliability_child;
use crate::support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use edges_child::{MIB, RssWatch, mkfifo, peak_rss, run_to_exit, until};
use reliability_child::{Child, behind_keystone, line_load, n, spawn};
use support::blueflood::BluefloodDouble;
use support::keystone::{Fault, KeystoneDouble, OtherOrigin};
use support::secrets::write_secret;

const WAIT: Duration = Duration::from_secs(60);
/// Peak RSS a child may reach while it is attacked with answers or files of 256 MiB to 1 GiB
/// (or endless): far below the attack, far above the forwarder's own working set.
const PEAK_RSS_BOUND: u64 = 200 * MIB;

/// Sends a load, waits until all of it is stored and the ledger balances with nothing
/// dropped; returns the final status. `stem` names the points.
async fn deliver_all(
    c: &Child,
    bf: &BluefloodDouble,
    stem: &str,
    before: u64,
) -> serde_json::Value {
    let case = &c.case;
    let sent = line_load(c.line, stem, 5, 20, Duration::from_millis(20)).await;
    let s = c.settle(before + sent, WAIT).await;
    let l = &s["ledger"];
    assert_eq!(
        n(&l["delivered"]),
        before + sent,
        "{case}: delivered; /status {s:#}"
    );
    assert_eq!(
        n(&l["dropped_total"]),
        0,
        "{case}: nothing dropped; /status {s:#}"
    );
    assert_eq!(
        bf.stored_count() as u64,
        before + sent,
        "{case}: stored in the Blueflood double"
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_redirects_are_not_followed_and_the_key_stays_home() {
    let case = "Keystone redirects (301, 302, 303, 307, 308)";
    let other = OtherOrigin::start().await;
    let ks = KeystoneDouble::start("alice", "k1").await;
    let target = other.url("/v2.0/tokens?from=redirect");
    for status in [301, 302, 303, 307, 308] {
        ks.push(Fault::Redirect(status, target.clone()));
    }
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key");
    write_secret(&key, "k1");
    let (key_s, url) = (key.display().to_string(), ks.url());
    let c = spawn(
        case,
        &bf.url(),
        &["-u", "alice", "--key-file", &key_s, "--auth-url", &url],
    );
    let s = deliver_all(&c, &bf, "redir", 0).await;
    assert!(
        other.requests().is_empty(),
        "{case}: the redirect target got requests: {:?}",
        other.requests()
    );
    assert!(
        ks.auth_requests() >= 6,
        "{case}: five redirects, then a login"
    );
    assert!(
        n(&s["auth"]["auth_failures"]) >= 5,
        "{case}: each redirect is an auth failure; /status {s:#}"
    );
    let logs = c.log_lines();
    assert!(
        logs.iter()
            .any(|l| l.contains("redirect") && l.contains(&target)),
        "{case}: no log line names the redirect's Location; log tail:\n{}",
        c.log_tail(30)
    );
    assert!(
        bf.requests()
            .iter()
            .all(|r| r.auth_token.as_deref() != Some("stolen")),
        "{case}: a token from the redirect target was used"
    );
    c.stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_endless_keystone_answers_are_cut_off() {
    let case = "Keystone answers of 1 GiB and endless";
    // A request timeout long enough that only the byte bound can end these answers.
    let (ks, bf, _dir, c) = behind_keystone(case, &["--request-timeout", "60"]).await;
    ks.push(Fault::HugeBody(1024 * MIB));
    ks.push(Fault::EndlessBody);
    let watch = RssWatch::start(c.pid(), PEAK_RSS_BOUND);
    let load = tokio::spawn(line_load(c.line, "huge", 5, 20, Duration::from_millis(20)));
    let stop_waiting = watch.exceeded.clone();
    until(
        &format!("{case}: both streamed answers to end"),
        WAIT,
        || ks.streams_ended() >= 2 || stop_waiting.load(Ordering::SeqCst),
    )
    .await;
    watch.assert_within(case, PEAK_RSS_BOUND);
    let sent = load.await.expect("load");
    let s = c.settle(sent, WAIT).await;
    assert_eq!(n(&s["ledger"]["delivered"]), sent, "{case}: /status {s:#}");
    assert_eq!(bf.stored_count() as u64, sent, "{case}: stored");
    assert!(
        n(&s["auth"]["auth_failures"]) >= 2,
        "{case}: both answers are auth failures; /status {s:#}"
    );
    let peak = peak_rss(c.pid());
    watch.assert_within(case, PEAK_RSS_BOUND);
    eprintln!("{case}: peak RSS {:.1} MiB", peak as f64 / MIB as f64);
    assert!(peak < PEAK_RSS_BOUND, "{case}: peak RSS {peak}");
    drop(watch);
    c.stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_cannot_be_sent_are_replaced_by_a_new_login() {
    let bad_tokens = [
        ("CR/LF", "tok-bad\r\nX-Injected: 1".to_owned()),
        ("NUL", "tok-bad\0nul".to_owned()),
        ("16 KiB", "t".repeat(16 * 1024)),
    ];
    for (what, bad) in bad_tokens {
        let case = format!("a Keystone token with {what}");
        let (ks, bf, _dir, c) = behind_keystone(&case, &[]).await;
        ks.push(Fault::Token(bad.clone()));
        deliver_all(&c, &bf, "tok", 0).await;
        let accepted = ks.logins().iter().filter(|l| l.accepted).count();
        assert!(
            accepted >= 2,
            "{case}: no second login ({accepted} accepted)"
        );
        let requests = bf.requests();
        assert!(
            requests
                .iter()
                .all(|r| r.auth_token.as_deref() != Some(bad.as_str())),
            "{case}: the bad token reached Blueflood"
        );
        assert!(
            requests.iter().filter(|r| r.status == 200).all(|r| r
                .auth_token
                .as_deref()
                .is_some_and(|t| t.starts_with("tok-"))),
            "{case}: points were stored with a token other than the good one"
        );
        c.stop(Duration::from_secs(30)).await;
    }
}

#[test]
fn oversized_or_special_secret_files_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big");
    // Sparse: 256 MiB that cost no disk.
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(256 * MIB))
        .expect("sparse file");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let (big_s, fifo_s) = (big.display().to_string(), fifo.display().to_string());
    let dir_s = dir.path().display().to_string();
    // (case, arguments, environment, the key the message names, the file it names)
    type Case<'a> = (
        &'a str,
        Vec<&'a str>,
        Vec<(&'a str, &'a str)>,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "a 256 MiB --key-file",
            vec!["-u", "alice", "--key-file", &big_s],
            vec![],
            "\"key\"",
            &big_s,
        ),
        (
            "a FIFO as --key-file",
            vec!["-u", "alice", "--key-file", &fifo_s],
            vec![],
            "\"key\"",
            &fifo_s,
        ),
        (
            "a 256 MiB --admin-token-file",
            vec!["--admin-token-file", &big_s],
            vec![],
            "\"admin_token\"",
            &big_s,
        ),
        (
            "a FIFO as --admin-token-file",
            vec!["--admin-token-file", &fifo_s],
            vec![],
            "\"admin_token\"",
            &fifo_s,
        ),
        (
            "a directory as --user-file",
            vec!["--user-file", &dir_s],
            vec![],
            "\"user\"",
            &dir_s,
        ),
        (
            "a FIFO as BLUEFLOOD_FORWARD_TENANT_FILE",
            vec![],
            vec![("BLUEFLOOD_FORWARD_TENANT_FILE", &fifo_s)],
            "\"tenant\"",
            &fifo_s,
        ),
    ];
    for (case, args, env, key, file) in cases {
        let (code, err) = run_to_exit(&args, &env);
        assert_eq!(code, Some(64), "{case}: exit code; stderr:\n{err}");
        assert!(
            err.contains(key),
            "{case}: the message names the key {key}: {err}"
        );
        assert!(
            err.contains(file),
            "{case}: the message names the file: {err}"
        );
        if file == big_s {
            assert!(
                err.contains("65536"),
                "{case}: the message gives the bound: {err}"
            );
        } else {
            assert!(err.contains("not a regular file"), "{case}: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_replaced_by_a_huge_file_keeps_the_last_good_key() {
    let case = "key file replaced by a 256 MiB file while running";
    let (ks, bf, dir, c) = behind_keystone(case, &[]).await;
    deliver_all(&c, &bf, "before", 0).await;
    let watch = RssWatch::start(c.pid(), PEAK_RSS_BOUND);
    let key = dir.path().join("key");
    let big = dir.path().join("big");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(256 * MIB))
        .expect("sparse file");
    std::fs::rename(&big, &key).expect("rename over the key");
    let s = c
        .wait_status(WAIT, "the refused reload", |s| {
            n(&s["auth"]["credential_reload_failures"]) >= 1
        })
        .await;
    watch.assert_within(case, PEAK_RSS_BOUND);
    let m = c.metrics().await;
    assert_eq!(
        reliability_child::metric(&m, "credential_reload_failing"),
        1,
        "{case}: the failing source shows on /metrics"
    );
    let error = s["auth"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("65536"),
        "{case}: last_error gives the bound: {s:#}"
    );
    // A new login must use the last good key.
    ks.revoke_all();
    deliver_all(&c, &bf, "after", 100).await;
    let last = ks.last_accepted_login();
    assert_eq!(last.secret, "k1", "{case}: the last good key was not kept");
    watch.assert_within(case, PEAK_RSS_BOUND);
    let peak = peak_rss(c.pid());
    eprintln!("{case}: peak RSS {:.1} MiB", peak as f64 / MIB as f64);
    drop(watch);
    c.stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_replaced_by_a_fifo_does_not_wedge_the_forwarder() {
    let case = "key file replaced by a FIFO while running";
    let (ks, bf, dir, c) = behind_keystone(case, &[]).await;
    deliver_all(&c, &bf, "before", 0).await;
    let key = dir.path().join("key");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    std::fs::rename(&fifo, &key).expect("rename the FIFO over the key");
    // `/status` answering at all is the point: a wedged runtime never answers.
    let s = c
        .wait_status(WAIT, "the refused reload", |s| {
            n(&s["auth"]["credential_reload_failures"]) >= 1
        })
        .await;
    let error = s["auth"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("not a regular file"),
        "{case}: last_error: {s:#}"
    );
    let livez = reliability_child::http_get(c.admin, "/livez").await;
    assert!(livez.is_ok(), "{case}: /livez: {livez:?}");
    // Polled again and again (every poll interval), the FIFO never wedges a thread either.
    ks.revoke_all();
    deliver_all(&c, &bf, "after", 100).await;
    let last = ks.last_accepted_login();
    assert_eq!(last.secret, "k1", "{case}: the last good key was not kept");
    c.stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_bound_is_the_configured_one() {
    let case = "auth_max_answer_bytes 2 KiB";
    let (code, err) = run_to_exit(&["--auth-max-answer-bytes", "100"], &[]);
    assert_eq!(
        code,
        Some(64),
        "{case}: a bound below 1 KiB; stderr:\n{err}"
    );
    assert!(err.contains("\"auth_max_answer_bytes\""), "{case}: {err}");
    let (ks, bf, _dir, c) = behind_keystone(case, &["--auth-max-answer-bytes", "2KiB"]).await;
    // Just over the bound, so the default (4 MiB) would have read it.
    ks.push(Fault::HugeBody(2049));
    let s = deliver_all(&c, &bf, "bound", 0).await;
    assert_eq!(n(&s["auth"]["auth_failures"]), 1, "{case}: /status {s:#}");
    assert!(
        c.log_lines()
            .iter()
            .any(|l| l.contains("larger than 2048 bytes")),
        "{case}: log tail:\n{}",
        c.log_tail(20)
    );
    c.stop(Duration::from_secs(30)).await;
}
