//! Unit tests of `cli`.

use super::*;

fn args(list: &[&str]) -> Vec<OsString> {
    std::iter::once("blueflood-forward")
        .chain(list.iter().copied())
        .map(OsString::from)
        .collect()
}

#[test]
fn command_is_consistent() {
    command().debug_assert();
}

#[test]
fn only_given_flags_are_in_the_layer() {
    let out = parse(args(&["-t", "abc", "--dry-run"])).unwrap();
    let keys: Vec<_> = out.layer.values.keys().copied().collect();
    assert_eq!(keys, vec!["dry_run", "tenant"]);
    assert!(out.config.is_none());
}

#[test]
fn switch_accepts_explicit_value() {
    let out = parse(args(&["--overwrite_collection_timestamp=false"])).unwrap();
    assert!(matches!(
        out.layer.values.get("overwrite_collection_timestamp"),
        Some(super::super::raw::RawValue::Scalar(Scalar::Str(s))) if s == "false"
    ));
}

#[test]
fn unknown_flag_with_value_is_not_echoed() {
    let err = parse(args(&["--kye=hunter2"])).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::Invalid(_)));
    assert!(text.contains("--kye"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn check_takes_the_same_flags_before_or_after_it() {
    let out = parse(args(&["-t", "a", "check", "--no-send", "--prefix", "p"])).unwrap();
    assert_eq!(out.check, Some(false));
    let keys: Vec<_> = out.layer.values.keys().copied().collect();
    assert_eq!(keys, vec!["metric_prefix", "tenant"]);
    assert_eq!(parse(args(&["check"])).unwrap().check, Some(true));
    assert_eq!(parse(args(&["-t", "a"])).unwrap().check, None);
}

#[test]
fn help_and_version_are_display() {
    assert!(matches!(
        parse(args(&["--help"])),
        Err(ConfigError::Display(_))
    ));
    assert!(matches!(
        parse(args(&["--version"])),
        Err(ConfigError::Display(_))
    ));
}
