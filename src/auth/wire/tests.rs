//! Unit tests of `wire`.

use super::*;

#[test]
fn bodies() {
    let b = login_body(AuthMethod::RaxKsKey, "u", "k", "D", None);
    assert_eq!(b["auth"]["RAX-KSKEY:apiKeyCredentials"]["apiKey"], "k");
    let b = login_body(AuthMethod::V2Password, "u", "p", "D", None);
    assert_eq!(b["auth"]["passwordCredentials"]["password"], "p");
    let b = login_body(AuthMethod::V3Password, "u", "p", "D", None);
    let user = &b["auth"]["identity"]["password"]["user"];
    assert_eq!(
        (user["name"].as_str(), user["domain"]["name"].as_str()),
        (Some("u"), Some("D"))
    );
    assert_eq!(b["auth"]["identity"]["methods"][0], "password");
    assert!(
        b["auth"].get("scope").is_none(),
        "unscoped without a project: {b}"
    );
}

#[test]
fn v3_body_with_a_project_scope() {
    let b = login_body(AuthMethod::V3Password, "u", "p", "D", Some("P1"));
    assert_eq!(
        b["auth"]["scope"],
        serde_json::json!({"project": {"id": "P1"}}),
        "{b}"
    );
    assert_eq!(b["auth"]["identity"]["password"]["user"]["name"], "u");
    // v2 bodies have no such scope: a project id never leaks into them.
    let b = login_body(AuthMethod::V2Password, "u", "p", "D", Some("P1"));
    assert!(!b.to_string().contains("P1"), "{b}");
}

#[test]
fn expiry_forms() {
    for s in [
        "2026-11-26T11:00:00.000Z",
        "2026-11-26T11:00:00Z",
        "2026-11-26T12:00:00+01:00",
        "2026-11-26T11:00:00.000000Z",
        "2026-11-26T11:00:00",
    ] {
        let t = parse_expiry(s).unwrap_or_else(|| panic!("{s}"));
        assert_eq!(t.to_rfc3339(), "2026-11-26T11:00:00+00:00", "{s}");
    }
    assert!(parse_expiry("tomorrow").is_none());
    assert!(parse_expiry("").is_none());
}

#[test]
fn v2_answer() {
    let body = br#"{"access":{"token":{"id":"TOK","expires":"2026-11-26T11:00:00.000Z"}}}"#;
    let i = parse_answer(AuthMethod::RaxKsKey, None, body).unwrap();
    assert_eq!(i.token, "TOK");
    assert!(i.expires.is_some());
}

#[test]
fn v3_answer_uses_the_header() {
    let body = br#"{"token":{"expires_at":"2026-11-26T11:00:00.000000Z"}}"#;
    let i = parse_answer(AuthMethod::V3Password, Some("HDR"), body).unwrap();
    assert_eq!(i.token, "HDR");
    let e = parse_answer(AuthMethod::V3Password, None, body)
        .err()
        .unwrap();
    assert!(e.to_string().contains("X-Subject-Token"), "{e}");
}

#[test]
fn bad_answers_name_fields_not_values() {
    let e = parse_answer(AuthMethod::RaxKsKey, None, b"{not json")
        .err()
        .unwrap();
    assert!(e.to_string().contains("malformed JSON"), "{e}");
    let e = parse_answer(
        AuthMethod::RaxKsKey,
        None,
        br#"{"access":{"token":{"id":987654}}}"#,
    )
    .err()
    .unwrap();
    assert!(!e.to_string().contains("987654"), "{e}");
    let e = parse_answer(
        AuthMethod::RaxKsKey,
        None,
        br#"{"access":{"token":{"id":"SECRETTOK","expires":"soon"}}}"#,
    )
    .err()
    .unwrap();
    let text = e.to_string();
    assert!(
        text.contains("\"soon\"") && !text.contains("SECRETTOK"),
        "{text}"
    );
}

#[test]
fn only_sendable_tokens_are_accepted() {
    let answer = |token: &str| {
        let body = serde_json::json!({"access": {"token": {"id": token}}}).to_string();
        parse_answer(AuthMethod::RaxKsKey, None, body.as_bytes())
    };
    assert!(answer("gAAAAABk-_Fernet=").is_ok());
    assert!(answer(&"t".repeat(MAX_TOKEN_BYTES)).is_ok());
    for bad in [
        "SECRET\r\nX-Injected: 1",
        "SECRET\0nul",
        "SECRET en",
        "SECRETö",
        "SECRET\t",
    ] {
        let e = answer(bad).err().expect(bad);
        let text = e.to_string();
        assert!(
            text.contains("cannot carry") && !text.contains("SECRET"),
            "{text}"
        );
    }
    let e = answer(&"t".repeat(MAX_TOKEN_BYTES + 1)).err().unwrap();
    assert!(e.to_string().contains("8193 bytes"), "{e}");
    // v3: the header too.
    let big = "t".repeat(MAX_TOKEN_BYTES + 1);
    let e = parse_answer(
        AuthMethod::V3Password,
        Some(&big),
        br#"{"token":{"expires_at":null}}"#,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("more than"), "{e}");
}
