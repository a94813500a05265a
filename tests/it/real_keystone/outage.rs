//! Keystone stopped for 30 s and started again (same port, database and fernet keys) while
//! load runs, long enough for the forwarder's token to expire in between: its refresh fails,
//! the double cannot validate (503), then the forwarder has no usable token at all. Every
//! point waits in the buffer and is delivered once Keystone is back.

use std::path::Path;
use std::time::Duration;

use super::{Case, logins, report, start_keystone};

/// This Keystone's token lifetime: the forwarder refreshes at 20 s and stops using a token
/// 5 s before its expiry, so a 30 s outage starting before the refresh outlives the token.
const LIFETIME_S: u64 = 40;
const OUTAGE: Duration = Duration::from_secs(30);
/// The token's age when Keystone is stopped.
const STOP_AT_AGE_S: f64 = 14.0;

pub(super) async fn stopped_for_30_s_while_a_token_expires(venv: &Path) {
    let mut ks = start_keystone(venv, LIFETIME_S);
    let case = Case::start(&ks, "outage", "outage-pw", "outage-pw").await;
    let name = case.name;
    // 120 batches 500 ms apart: 60 s, from before the outage to after it.
    let load = case.load(120, Duration::from_millis(500));
    assert!(
        case.bf.wait_for_stored(1, Duration::from_secs(30)).await,
        "{name}: nothing delivered before the outage"
    );
    // Stop when the token is 14 s old (its age from `/status`): before its refresh at 20 s,
    // and late enough that its expiry at 40 s falls inside the 30 s outage with seconds to
    // spare (the status shows no token only from the expiry on).
    case.fwd
        .wait_status(
            Duration::from_secs(LIFETIME_S),
            "a token 14 s old, not yet refreshed",
            |s| {
                s["auth"]["token_age_seconds"]
                    .as_f64()
                    .is_some_and(|age| age >= STOP_AT_AGE_S)
                    && logins(s) == (1, 0)
            },
        )
        .await;
    let outage_started = std::time::Instant::now();
    tokio::task::block_in_place(|| ks.stop());
    let stopped_at = case.bf.requests().len();
    let end = tokio::time::Instant::now() + OUTAGE;
    let mut token_gone = false;
    while tokio::time::Instant::now() < end {
        let s = case.fwd.status().await;
        token_gone |= s["auth"]["token_age_seconds"].is_null();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let during = logins(&case.fwd.status().await);
    tokio::task::block_in_place(|| ks.serve());
    let outage = outage_started.elapsed();
    let sent = load.await.expect("load task");
    let requests = case.bf.requests();
    let (s, bf) = case.close_books(sent).await;
    let (logins_total, failures) = logins(&s);
    report(
        name,
        &format!(
            "{sent} points delivered; logins {logins_total} ({failures} failed, {} of them \
             by the end of the outage); {} requests answered 503 while Keystone was down",
            during.1,
            requests[stopped_at..]
                .iter()
                .filter(|r| r.status == 503)
                .count()
        ),
    );
    assert!(
        token_gone,
        "{name}: the forwarder always had a usable token during the outage: it did not \
         outlive the token (lifetime {LIFETIME_S} s)"
    );
    assert!(during.1 >= 1, "{name}: no failed login during the outage");
    // The failed logins are spaced by the auth backoff (doubling from 10 ms to retry_max
    // 0.5 s): at most two a second of outage after a ramp of about eight, not one a request.
    assert!(
        failures <= 2 * outage.as_secs() + 10,
        "{name}: {failures} failed logins in a {outage:?} outage: a storm"
    );
    assert!(
        logins_total - failures >= 2,
        "{name}: no login after the restart"
    );
    drop(bf);
}
