//! End to end with a steady flow of datapoints and the Blueflood double requiring Keystone
//! tokens: the key is rotated in a mounted Secret exactly as the kubelet does it (and by a
//! plain rewrite), then the old key and its tokens stop working. Zero datapoints lost, exactly
//! one login per rotation even with concurrent senders; prints the time from the Secret change
//! to the first Blueflood request carrying the new token.

use crate::harness;
use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use blueflood_forward::config::settings::{AuthSettings, Protocol, SecretSource};
use harness::{Forwarder, settings};
use support::blueflood::BluefloodDouble;
use support::keystone::KeystoneDouble;
use support::secrets::kubelet_write;

const WAIT: Duration = Duration::from_secs(30);

fn auth(ks: &KeystoneDouble, user: &Path, key: &Path, first_key: &str) -> AuthSettings {
    AuthSettings {
        user_source: SecretSource::File(user.to_path_buf()),
        key_source: SecretSource::File(key.to_path_buf()),
        ..AuthSettings::new("alice", first_key, ks.url().parse().expect("url"))
    }
}

/// Several concurrent senders, each sending 20-point batches until told to stop. Returns
/// the number of points sent.
fn steady_flow(addr: SocketAddr, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..4)
        .map(|sender| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut sent = 0;
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    let ts = (support::now_ms() / 1000) as f64;
                    let pts: Vec<(String, f64, f64)> = (0..20)
                        .map(|i| (format!("s{sender}.r{round}.m{i}"), ts, i as f64))
                        .collect();
                    let refs: Vec<(&str, f64, f64)> =
                        pts.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
                    support::send_tcp(addr, &support::line_payload(&refs)).await;
                    sent += 20;
                    round += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                sent
            })
        })
        .collect()
}

/// Waits for a Blueflood request carrying a token other than `old` and returns when it was
/// seen.
async fn first_request_with_new_token(bf: &BluefloodDouble, old: &str) -> Instant {
    let end = Instant::now() + WAIT;
    loop {
        if bf
            .requests()
            .iter()
            .any(|r| r.status == 200 && r.auth_token.as_deref().is_some_and(|t| t != old))
        {
            return Instant::now();
        }
        assert!(Instant::now() < end, "no request with a new token");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Rotates with `rotate`, then checks the whole story. Returns the measured delay.
async fn rotation_scenario(kubelet: bool) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let (user, key) = if kubelet {
        kubelet_write(
            dir.path(),
            "2026_03_01_10_00_00.000000001",
            "alice",
            "key-one",
        );
        (dir.path().join("username"), dir.path().join("apiKey"))
    } else {
        std::fs::write(dir.path().join("user"), "alice\n").unwrap();
        std::fs::write(dir.path().join("api.key"), "key-one\n").unwrap();
        (dir.path().join("user"), dir.path().join("api.key"))
    };
    let ks = KeystoneDouble::start("alice", "key-one").await;
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);
    let mut cfg = settings(&bf.url());
    cfg.auth = Some(auth(&ks, &user, &key, "key-one"));
    let f = Forwarder::start(cfg).await;
    let stop = Arc::new(AtomicBool::new(false));
    let senders = steady_flow(f.addr(Protocol::LineTcp), stop.clone());

    let stored_before = AtomicUsize::new(0);
    assert!(bf.wait_for_stored(200, WAIT).await);
    stored_before.store(bf.stored_count(), Ordering::Relaxed);
    assert_eq!(ks.auth_requests(), 1);
    let old = ks.issued_tokens()[0].clone();

    // The operator resets the key in identity, then updates the Secret.
    ks.set_credentials("alice", "key-two");
    let changed = Instant::now();
    if kubelet {
        kubelet_write(
            dir.path(),
            "2026_03_01_11_00_00.000000002",
            "alice",
            "key-two",
        );
    } else {
        // A non-atomic rewrite in place, as `echo key-two > api.key` does.
        std::fs::write(&key, "key-two\n").unwrap();
    }
    let seen = first_request_with_new_token(&bf, &old).await;
    let delay = seen - changed;
    // The old token stops working too.
    ks.revoke(&old);
    assert!(
        bf.wait_for_stored(stored_before.load(Ordering::Relaxed) + 400, WAIT)
            .await
    );

    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for s in senders {
        sent += s.await.unwrap();
    }
    let s = f.settle(sent as u64, WAIT).await;
    assert_eq!((s.delivered, s.dropped_total()), (sent as u64, 0), "{s:#?}");
    assert_eq!(bf.stored_count(), sent);
    assert_eq!(ks.auth_requests(), 2, "exactly one login per rotation");
    let logins = ks.logins();
    assert_eq!(logins[1].secret, "key-two");
    assert!(
        logins.iter().all(|l| l.accepted),
        "never a login with a stale key"
    );
    f.stop().await;
    delay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_symlink_swap_rotates_without_loss() {
    let delay = rotation_scenario(true).await;
    eprintln!(
        "measurement: kubelet ..data swap -> first Blueflood request with the new token: {} ms",
        delay.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rewrite_rotates_without_loss() {
    let delay = rotation_scenario(false).await;
    eprintln!(
        "measurement: in-place rewrite -> first Blueflood request with the new token: {} ms",
        delay.as_millis()
    );
}
