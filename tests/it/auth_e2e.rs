//! Keystone login end to end with a steady flow: the token reaches Blueflood as
//! `X-Auth-Token`, one login serves many requests, short-lived tokens are refreshed ahead of
//! expiry, a revoked token is replaced on the 401 with one login even under concurrency, and
//! broken or unreachable identity keeps every datapoint while the provider backs off.
//! (Rotation is in `auth_rotation.rs`, the provider alone in `auth_provider.rs`.)

use crate::harness;
use crate::support;

use std::time::Duration;

use blueflood_forward::config::settings::{AuthSettings, Protocol};
use harness::{Forwarder, settings};
use support::blueflood::BluefloodDouble;
use support::keystone::KeystoneDouble;

const WAIT: Duration = Duration::from_secs(20);

fn auth(ks: &KeystoneDouble) -> Option<AuthSettings> {
    Some(AuthSettings::new(
        "alice",
        "s3cret-api-key",
        ks.url().parse().expect("url"),
    ))
}

/// A Blueflood double that wants `ks`'s tokens, and a forwarder that logs in to `ks`.
async fn behind(ks: &KeystoneDouble) -> (BluefloodDouble, Forwarder) {
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(ks);
    let mut cfg = settings(&bf.url());
    cfg.auth = auth(ks);
    let f = Forwarder::start(cfg).await;
    (bf, f)
}

fn lines(stem: &str, n: usize) -> Vec<u8> {
    let ts = (support::now_ms() / 1000) as f64;
    let pts: Vec<(String, f64, f64)> = (0..n)
        .map(|i| (format!("{stem}.{i}"), ts, i as f64))
        .collect();
    let refs: Vec<(&str, f64, f64)> = pts.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
    support::line_payload(&refs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_sent_reused_and_replaced_after_revocation() {
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    let (bf, f) = behind(&ks).await;
    let addr = f.addr(Protocol::LineTcp);

    for round in 0..5 {
        support::send_tcp(addr, &lines(&format!("a{round}"), 100)).await;
        assert!(bf.wait_for_stored(100 * (round + 1), WAIT).await);
    }
    assert_eq!(ks.auth_requests(), 1, "one login serves every request");
    let first = ks.issued_tokens()[0].clone();
    assert!(
        bf.requests()
            .iter()
            .all(|r| r.auth_token.as_deref() == Some(first.as_str()))
    );

    ks.revoke_all();
    support::send_tcp(addr, &lines("b", 100)).await;
    assert!(
        bf.wait_for_stored(600, WAIT).await,
        "stored {}",
        bf.stored_count()
    );
    let s = f.settle(600, WAIT).await;
    assert_eq!((s.delivered, s.dropped_total()), (600, 0));
    assert_eq!(
        ks.auth_requests(),
        2,
        "exactly one re-authentication after the 401"
    );
    assert!(bf.requests().iter().any(|r| r.status == 401));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_outage_keeps_the_data_until_login_works() {
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    for _ in 0..3 {
        ks.push_fault(503);
    }
    let (bf, f) = behind(&ks).await;
    support::send_tcp(f.addr(Protocol::LineTcp), &lines("k", 50)).await;
    assert!(bf.wait_for_stored(50, WAIT).await);
    let s = f.settle(50, WAIT).await;
    assert_eq!((s.delivered, s.dropped_total()), (50, 0));
    assert!(s.retries >= 3);
    assert_eq!(ks.auth_requests(), 4);
    assert_eq!(
        f.metric("blueflood_forward_auth_failing").await,
        0.0,
        "a login worked after the failures"
    );
    f.stop().await;
}

/// Four concurrent senders for `for_how_long`; returns the number of points sent.
async fn flow(addr: std::net::SocketAddr, for_how_long: Duration) -> usize {
    let end = tokio::time::Instant::now() + for_how_long;
    let senders = (0..4).map(|s| {
        tokio::spawn(async move {
            let mut sent = 0;
            let mut round = 0;
            while tokio::time::Instant::now() < end {
                support::send_tcp(addr, &lines(&format!("f{s}.r{round}"), 25)).await;
                sent += 25;
                round += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            sent
        })
    });
    let mut total = 0;
    for s in futures_util::future::join_all(senders).await {
        total += s.expect("sender");
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_refreshed_ahead_without_loss() {
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    ks.set_token_ttl(Duration::from_secs(2));
    let (bf, f) = behind(&ks).await;
    let sent = flow(f.addr(Protocol::LineTcp), Duration::from_millis(4500)).await;
    let s = f.settle(sent as u64, WAIT).await;
    assert_eq!((s.delivered, s.dropped_total()), (sent as u64, 0));
    // Refreshed at half its life, one login each time, never an expired token sent.
    let logins = ks.logins();
    assert!((3..=7).contains(&logins.len()), "{} logins", logins.len());
    for pair in logins.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(500));
    }
    assert!(bf.requests().iter().all(|r| r.status == 200));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_under_concurrency_costs_one_login() {
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    let (bf, f) = behind(&ks).await;
    let addr = f.addr(Protocol::LineTcp);
    let flowing = tokio::spawn(flow(addr, Duration::from_millis(2000)));
    assert!(bf.wait_for_stored(100, WAIT).await);
    ks.revoke_all();
    let sent = flowing.await.expect("flow");
    let s = f.settle(sent as u64, WAIT).await;
    assert_eq!((s.delivered, s.dropped_total()), (sent as u64, 0));
    assert_eq!(ks.auth_requests(), 2, "one login after the revocation");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_identity_answers_keep_the_data_and_back_off() {
    use support::keystone::Fault;
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    ks.push(Fault::MalformedJson);
    ks.push(Fault::BadExpires);
    ks.push_fault(401);
    let (_bf, f) = behind(&ks).await;
    let sent = flow(f.addr(Protocol::LineTcp), Duration::from_millis(500)).await;
    let s = f.settle(sent as u64, WAIT).await;
    assert_eq!((s.delivered, s.dropped_total()), (sent as u64, 0));
    // Every delivery slot retried, but identity saw one request per failure and one success.
    assert!(s.retries >= 3, "{s:#?}");
    assert_eq!(ks.auth_requests(), 4);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_identity_keeps_the_data_buffered() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v2.0/tokens", closed.local_addr().expect("addr"));
    drop(closed);
    let bf = BluefloodDouble::start().await;
    let mut cfg = settings(&bf.url());
    cfg.auth = Some(AuthSettings::new("alice", "k", url.parse().expect("url")));
    cfg.shutdown_timeout = Duration::from_secs(1);
    let f = Forwarder::start(cfg).await;
    support::send_tcp(f.addr(Protocol::LineTcp), &lines("u", 50)).await;
    f.wait_until(WAIT, "retries", |s| s.received() == 50 && s.retries >= 3)
        .await;
    let s = f.snapshot();
    assert_eq!(
        (s.delivered, s.dropped_total()),
        (0, 0),
        "kept, not dropped"
    );
    assert!(bf.requests().is_empty());
    assert_eq!(f.metric("blueflood_forward_auth_failing").await, 1.0);
    assert_eq!(
        f.metric("blueflood_forward_credential_reload_failing")
            .await,
        0.0,
        "the credentials are fine; the identity service is not"
    );
    f.stop().await;
}
