//! `shutdown_delay` as every key is given: off (0) by default, seconds from the command line,
//! the environment and a TOML file (fractions and 0 allowed), and a bad value exits 64 naming
//! the key, its flag and variable, and what is expected.

use std::time::Duration;

use crate::config_load::{invalid, ok, ok_env};

#[test]
fn off_by_default_and_set_like_the_other_keys() {
    assert_eq!(ok(&[]).shutdown_delay, Duration::ZERO);
    assert_eq!(
        ok(&["--shutdown-delay", "5"]).shutdown_delay,
        Duration::from_secs(5)
    );
    assert_eq!(
        ok(&["--shutdown-delay=0.25"]).shutdown_delay,
        Duration::from_millis(250)
    );
    assert_eq!(
        ok(&["--shutdown-delay", "0"]).shutdown_delay,
        Duration::ZERO
    );
    let c = ok_env(&[], &[("BLUEFLOOD_FORWARD_SHUTDOWN_DELAY", "7")]);
    assert_eq!(c.shutdown_delay, Duration::from_secs(7));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "shutdown_delay = 1.5\nshutdown_timeout = 4\n").expect("write");
    let c = ok(&["--config", &path.display().to_string()]);
    assert_eq!(c.shutdown_delay, Duration::from_millis(1500));
    // Its own budget: the drain's timeout is not shortened by the delay.
    assert_eq!(c.shutdown_timeout, Duration::from_secs(4));
}

#[test]
fn a_bad_delay_names_the_key_and_what_it_takes() {
    for (args, env, value) in [
        (&["--shutdown-delay", "-1"][..], &[][..], "-1"),
        (&["--shutdown-delay", "soon"][..], &[][..], "soon"),
        (
            &[][..],
            &[("BLUEFLOOD_FORWARD_SHUTDOWN_DELAY", "NaN")][..],
            "NaN",
        ),
    ] {
        let msg = invalid(args, env);
        for part in [
            "key \"shutdown_delay\"",
            "--shutdown-delay",
            "BLUEFLOOD_FORWARD_SHUTDOWN_DELAY",
            &format!("{value:?}"),
            "expected a number of seconds, 0 (off) or more",
        ] {
            assert!(
                msg.contains(part),
                "{args:?} {env:?}: no {part:?} in: {msg}"
            );
        }
    }
}
