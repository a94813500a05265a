//! Unit tests of `keystone`'s pure helpers (the client itself is tested end to end).

use super::*;

#[test]
fn a_location_is_escaped_stripped_of_userinfo_and_bounded() {
    assert_eq!(
        shown_location(b"https://id.example/v2.0/tokens"),
        "https://id.example/v2.0/tokens"
    );
    let shown = shown_location(b"https://user:pw@id.example/x");
    assert!(!shown.contains("pw") && !shown.contains("user"), "{shown}");
    let shown = shown_location(b"/x\r\n{\"message\":\"check passed\"}\x1b[2J");
    assert!(
        !shown.contains('\r') && !shown.contains('\n') && !shown.contains('\x1b'),
        "{shown}"
    );
    assert!(
        shown.contains("\\r\\n") && shown.contains("\\u{1b}"),
        "{shown}"
    );
    let shown = shown_location("é".repeat(1000).as_bytes());
    assert_eq!(shown.chars().count(), LOCATION_SHOWN_CHARS + 3);
    assert_eq!(shown_location(b"\xff/x"), "\u{fffd}/x");
}
