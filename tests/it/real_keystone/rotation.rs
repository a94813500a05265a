//! The password rotated the way an operator does it, under steady load that outlives a token:
//! the forwarder refreshes its 60 s token ahead of expiry, then the password is changed in
//! Keystone (which revokes the user's tokens at once) and, two seconds later, in the Secret
//! volume. In between the forwarder holds its points (its token is refused, the old password
//! too); then it logs in with the new one. Nothing is lost and the logins stay few.

use std::time::Duration;

use super::{Case, logins, report, tokens_seen};
use crate::support::real_keystone::{RealKeystone, TOKEN_LIFETIME_S};

pub(super) async fn password_rotated_under_load_across_a_refresh(ks: &RealKeystone) {
    let mut case = Case::start(ks, "rotation", "rotation-pw-one", "rotation-pw-one").await;
    // 150 batches 500 ms apart: 75 s, past the refresh at half the token's life and past
    // its expiry.
    let load = case.load(150, Duration::from_millis(500));
    // The rotation comes after the first refresh (the forwarder refreshes at half a token's
    // life; a refresh is a second distinct token sent to Blueflood).
    let refreshed = case
        .fwd
        .wait_status(
            Duration::from_secs(TOKEN_LIFETIME_S + 20),
            "a second successful login (the refresh)",
            |s| {
                let (requests, failures) = logins(s);
                requests - failures >= 2
            },
        )
        .await;
    let before = logins(&refreshed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    ks.admin().set_password(&case.user, "rotation-pw-two").await;
    // kubelet propagation takes a while: the old token is revoked meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    case.rotate_secret("rotation-pw-two");
    let admin = ks.admin();
    let (user, project) = (&case.user.name, Some(case.user.project_id.as_str()));
    assert_eq!(
        admin.login(user, "rotation-pw-one", project).await.err(),
        Some(401),
        "the old password still logs in"
    );
    let rotated_at = case.bf.requests().len();
    let sent = load.await.expect("load task");
    let bf_requests = case.bf.requests();
    let name = case.name;
    let (s, bf) = case.close_books(sent).await;
    let (requests, failures) = logins(&s);
    let tokens = tokens_seen(&bf);
    report(
        name,
        &format!(
            "{sent} points delivered; logins {requests} ({failures} refused), {} before the rotation; \
             {} distinct tokens sent; {} requests answered 401",
            before.0,
            tokens.len(),
            bf.answered(401)
        ),
    );
    // The old token was refused after the password change: the revocation was real.
    assert!(
        bf_requests[..rotated_at].iter().any(|r| r.status == 401),
        "{name}: no request was refused between the password change and the Secret update: \
         the revocation was not seen"
    );
    // Delivered with a token obtained with the new password after the Secret update.
    assert!(
        bf_requests[rotated_at..].iter().any(|r| r.status == 200),
        "{name}: nothing stored after the Secret update"
    );
    assert!(tokens.len() >= 3, "{name}: tokens {}", tokens.len());
    // Initial login, one refresh per half-life, one with the new password; failures are bounded
    // by the auth backoff (doubling from 10 ms to retry_max 0.5 s: a ramp of about eight, then
    // two a second) over the two seconds between the password change and the Secret update,
    // with room for a slow machine. A storm (a login per request) would be hundreds.
    assert!(
        requests - failures <= 6 && failures <= 16,
        "{name}: {requests} logins, {failures} refused: a login storm; {s:#}"
    );
}
