//! The authentication keys as the configuration loader reads them: methods, domain, key and
//! user files (their paths kept for the watcher), the Kubernetes API source, and errors.

use std::ffi::OsString;

use blueflood_forward::config::{self, settings::AuthMethod, settings::SecretSource};

fn load(args: &[&str]) -> Result<config::Settings, config::ConfigError> {
    let args = std::iter::once("blueflood-forward")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect();
    config::load(args, Vec::new())
}

#[test]
fn methods_domain_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("username");
    let key = dir.path().join("password");
    std::fs::write(&user, "svc\n").unwrap();
    std::fs::write(&key, "pw\n").unwrap();
    let s = load(&[
        "--user-file",
        user.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--auth-method",
        "v3-password",
        "--auth-domain",
        "Ops",
        "--auth-url",
        "https://keystone.example/v3/auth/tokens",
    ])
    .unwrap();
    let a = s.auth.unwrap();
    assert_eq!(
        (a.method, a.domain.as_str(), a.user.as_str()),
        (AuthMethod::V3Password, "Ops", "svc")
    );
    assert_eq!(a.user_source, SecretSource::File(user));
    assert_eq!(a.key_source, SecretSource::File(key.clone()));
    assert_eq!(a.key_source.to_string(), format!("file {}", key.display()));

    let a = load(&["-u", "x", "-k", "y"]).unwrap().auth.unwrap();
    assert_eq!(
        (a.method, a.domain.as_str()),
        (AuthMethod::RaxKsKey, "Default")
    );
}

#[test]
fn bad_method_and_empty_user_file_are_errors() {
    let e = load(&["--auth-method", "v4"]).unwrap_err().to_string();
    assert!(
        e.contains("auth_method") && e.contains("v3-password"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("username");
    std::fs::write(&user, "\n").unwrap();
    let e = load(&["--user-file", user.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("user") && e.contains("empty"), "{e}");
}

#[test]
fn kubernetes_secret_source() {
    let s = load(&[
        "--secret-name",
        "keystone",
        "--secret-namespace",
        "metrics",
        "--secret-key-key",
        "password",
        "--auth-method",
        "v2-password",
    ])
    .unwrap();
    let a = s.auth.unwrap();
    let k = a.kube_secret.clone().unwrap();
    assert_eq!(
        (
            k.name.as_str(),
            k.namespace.as_str(),
            k.user_key.as_str(),
            k.key_key.as_str()
        ),
        ("keystone", "metrics", "username", "password")
    );
    assert_eq!(
        a.key_source.to_string(),
        "kubernetes secret metrics/keystone"
    );
}

#[test]
fn help_lists_the_new_flags_and_check() {
    let help = config::help_text();
    for flag in [
        "--auth-method",
        "--auth-domain",
        "--secret-name",
        "--secret-namespace",
        "--user-file",
        "--key-file",
        "check",
    ] {
        assert!(help.contains(flag), "{flag} missing from\n{help}");
    }
}

#[test]
fn a_v3_project_scope_and_its_refusal_with_v2_methods() {
    let s = load(&[
        "-u",
        "svc",
        "-k",
        "pw",
        "--auth-method",
        "v3-password",
        "--auth-project-id",
        "0123abcd",
    ])
    .unwrap();
    assert_eq!(s.auth.unwrap().project_id.as_deref(), Some("0123abcd"));
    let a = load(&["-u", "svc", "-k", "pw", "--auth-method", "v3-password"])
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(a.project_id, None, "unscoped unless asked");
    for method in ["rax-kskey", "v2-password"] {
        let e = load(&[
            "-u",
            "svc",
            "-k",
            "pw",
            "--auth-method",
            method,
            "--auth-project-id",
            "0123abcd",
        ])
        .unwrap_err();
        let text = e.to_string();
        assert_eq!(e.exit_code(), 64, "{text}");
        assert!(
            text.contains("auth_project_id") && text.contains("v3-password"),
            "{method}: {text}"
        );
    }
}
