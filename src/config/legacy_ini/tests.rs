//! Unit tests of `legacy_ini`.

use super::*;

fn strs(pairs: Vec<(String, Option<Scalar>)>) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| match v {
            Some(Scalar::Str(s)) => (k, s),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn reads_the_section_like_configparser() {
    let text = "# comment\n[other]\ntenant = no\n\n[blueflood_carbon_forwarder]\n\
                    Tenant = t1 ; the tenant\nauth-url: https://x/\nkey = \"a\\b\";#x\nprefix =\n\
                    user =\ntenant =\n";
    let got = strs(pairs(Path::new("c.ini"), text).unwrap());
    assert_eq!(
        got,
        vec![
            ("tenant".into(), "t1".into()),
            ("auth_url".into(), "https://x/".into()),
            ("key".into(), "\"a\\b\";#x".into()),
            // Empty values are left out (not set), except the tenant's.
            ("tenant".into(), String::new()),
        ]
    );
}

#[test]
fn missing_section_names_it() {
    let err = pairs(Path::new("c.ini"), "[forwarder]\ntenant = x\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("[blueflood_carbon_forwarder]"), "{err}");
}

#[test]
fn keys_outside_a_section_are_rejected() {
    let err = pairs(Path::new("c.ini"), "tenant = x\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"tenant\""), "{err}");
}
