//! Unit tests of `redact`.

use super::*;

#[test]
fn userinfo_is_masked_in_parsed_urls() {
    let u = url::Url::parse("https://alice:hunter2@bf.example:19000/x?y=1").unwrap();
    assert_eq!(url(&u), "https://***@bf.example:19000/x?y=1");
    let u = url::Url::parse("https://TOKEN@bf.example/").unwrap();
    assert_eq!(url(&u), "https://***@bf.example/");
    let u = url::Url::parse("http://bf.example/").unwrap();
    assert_eq!(url(&u), "http://bf.example/");
}

#[test]
fn userinfo_is_masked_in_text_that_does_not_parse() {
    assert_eq!(url_text("ftp://u:p@h:1/a@b"), "ftp://***@h:1/a@b");
    assert_eq!(url_text("http://u:p@"), "http://***@");
    assert_eq!(url_text("http://a:b@c@host"), "http://***@host");
    assert_eq!(url_text("http://host/path@x"), "http://host/path@x");
    assert_eq!(url_text("user@host"), "user@host");
    assert_eq!(url_text("gzip"), "gzip");
}

#[test]
fn foreign_text_is_one_bounded_line() {
    assert_eq!(
        foreign_text(b"\x1b[2Jok\r\ncheck passed\x07", 100),
        "\\u{1b}[2Jok\\r\\ncheck passed\\u{7}"
    );
    assert_eq!(foreign_text("a\u{202e}b".as_bytes(), 100), "a\\u{202e}b");
    assert_eq!(foreign_text(b"abcdef", 3), "abc…");
    assert_eq!(foreign_text(b"\xff{}", 10), "\u{fffd}{}");
    assert_eq!(foreign_text("é \"q\"".as_bytes(), 10), "é \"q\"");
    assert_eq!(foreign_text(b"\xc2\x9b", 10), "\\u{9b}", "C1 controls too");
    assert_eq!(foreign_text(b"", 10), "");
}

#[test]
fn a_location_loses_its_userinfo_and_its_control_characters() {
    assert_eq!(
        location(b"https://u:pw@evil.example/\r\nx", 100),
        "https://***@evil.example/\\r\\nx"
    );
    assert_eq!(location("é".repeat(10).as_bytes(), 3), "ééé…");
}
