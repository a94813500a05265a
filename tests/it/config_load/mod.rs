//! `config::load` as the configuration tests call it: a command line and an environment from
//! string slices, the settings or the exit-64 error message.

use std::ffi::OsString;

use blueflood_forward::config::{ConfigError, EXIT_CONFIG, Settings, load};

pub fn args(list: &[&str]) -> Vec<OsString> {
    std::iter::once("blueflood-forward")
        .chain(list.iter().copied())
        .map(OsString::from)
        .collect()
}

pub fn env(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn ok(a: &[&str]) -> Settings {
    ok_env(a, &[])
}

pub fn ok_env(a: &[&str], e: &[(&str, &str)]) -> Settings {
    load(args(a), env(e)).unwrap_or_else(|err| panic!("{a:?} {e:?}: {err}"))
}

/// The error message, after checking it is a configuration error exiting 64.
pub fn invalid(a: &[&str], e: &[(&str, &str)]) -> String {
    match load(args(a), env(e)) {
        Ok(s) => panic!("{a:?} {e:?} was accepted: {s:?}"),
        Err(err) => {
            assert!(matches!(err, ConfigError::Invalid(_)), "{err:?}");
            assert_eq!(err.exit_code(), EXIT_CONFIG);
            assert_eq!(EXIT_CONFIG, 64);
            err.to_string()
        }
    }
}
