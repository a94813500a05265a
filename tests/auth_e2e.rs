//! The original's Keystone v2 login (`-u`/`-k`) end to end: the token reaches Blueflood as
//! `X-Auth-Token`, one login serves many requests, and a revoked token is replaced on the 401
//! without losing a datapoint. (Rotation, v3 and the rest belong to the Keystone issue.)

mod harness;
mod support;

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
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);
    let mut cfg = settings(&bf.url());
    cfg.auth = auth(&ks);
    let f = Forwarder::start(cfg).await;
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
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);
    let mut cfg = settings(&bf.url());
    cfg.auth = auth(&ks);
    let f = Forwarder::start(cfg).await;
    support::send_tcp(f.addr(Protocol::LineTcp), &lines("k", 50)).await;
    assert!(bf.wait_for_stored(50, WAIT).await);
    let s = f.settle(50, WAIT).await;
    assert_eq!((s.delivered, s.dropped_total()), (50, 0));
    assert!(s.retries >= 3);
    assert_eq!(ks.auth_requests(), 4);
    f.stop().await;
}
