//! A wrong password: `check` says so plainly (the refused login, not the password) and exits
//! 1; a running forwarder with it holds every point it receives until the right password
//! arrives in the Secret volume, then delivers them all. `check` with the right password and
//! the project scope passes and stores its datapoint through the validating double.

use std::process::Output;
use std::time::Duration;

use super::{Case, auth_args, logins, report};
use crate::reliability_child::n;
use crate::support::{self, real_keystone::RealKeystone};

const RIGHT: &str = "wrong-case-right-pw";
const WRONG: &str = "wrong-case-WRONG-pw";

/// `blueflood-forward check ARGS`, to its exit.
async fn check(args: Vec<String>) -> Output {
    support::run_binary([vec!["check".to_owned()], args].concat()).await
}

pub(super) async fn a_wrong_password_fails_check_and_loses_nothing(ks: &RealKeystone) {
    let mut case = Case::start(ks, "wrong-password", RIGHT, WRONG).await;
    let name = case.name;
    let mut args = vec!["-b".into(), case.bf.url(), "-t".into(), "t1".into()];
    args.extend(auth_args(ks, case.secrets.path(), &case.user.project_id));

    let out = check(args.clone()).await;
    let t = support::output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{name}: check with a wrong password: {t}"
    );
    assert!(
        t.contains("FAILED  authenticate: identity service refused the credentials (HTTP 401)"),
        "{name}: {t}"
    );
    assert!(
        !t.contains(WRONG) && !t.contains(RIGHT),
        "{name}: a password in\n{t}"
    );

    // The running forwarder: 200 points arrive while every login is refused.
    let sent = case
        .load(10, Duration::from_millis(100))
        .await
        .expect("load");
    let held = case
        .fwd
        .wait_status(
            Duration::from_secs(30),
            "every point received and held, logins refused",
            |s| {
                n(&s["ledger"]["received_total"]) == sent
                    && logins(s).1 >= 3
                    && n(&s["ledger"]["delivered"]) == 0
            },
        )
        .await;
    assert_eq!(
        case.bf.stored_count(),
        0,
        "{name}: stored without a valid login"
    );
    assert_eq!(n(&held["ledger"]["dropped_total"]), 0, "{name}: {held:#}");
    let last_error = held["auth"]["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("HTTP 401") && !last_error.contains(WRONG),
        "{name}: auth.last_error {last_error:?}"
    );
    for line in case.fwd.log_lines() {
        assert!(
            !line.contains(WRONG),
            "{name}: the password in a log line: {line}"
        );
    }

    case.rotate_secret(RIGHT);
    let out = check(args).await;
    let t = support::output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: check with the right password: {t}"
    );
    assert!(t.contains("check passed"), "{name}: {t}");
    assert!(!t.contains(RIGHT), "{name}: the password in\n{t}");

    let (s, _bf) = case.close_books(sent).await;
    let (requests, failures) = logins(&s);
    report(
        name,
        &format!(
            "check refused then passed; {sent} points held then delivered; logins {requests} \
             ({failures} refused while the password was wrong)"
        ),
    );
}
