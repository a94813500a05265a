//! How text that may carry a secret, or that is not ours, is shown to a person.
//!
//! Owns two rules that every printed URL and every printed piece of foreign text follow:
//! - a URL's userinfo (`user:password@`) is replaced by `***@`, because both halves are
//!   credentials in practice (some services put a token where the user name goes);
//! - text from the network (an answer body, a header) is bounded and its control and
//!   bidirectional-formatting characters are escaped, so it cannot move the terminal's cursor,
//!   clear the screen or forge a line of our own output.
//!
//! A leaf: imports nothing of the crate, so any layer may use it.

/// What replaces a URL's userinfo.
pub const MASK: &str = "***";

/// `u` as text with its userinfo, if any, replaced by [`MASK`].
pub fn url(u: &url::Url) -> String {
    if u.username().is_empty() && u.password().is_none() {
        return u.to_string();
    }
    let mut shown = u.clone();
    // Both only fail for URLs that cannot have userinfo, and those have none to hide.
    let _ = shown.set_password(None);
    let _ = shown.set_username(MASK);
    shown.to_string()
}

/// Text that is meant to be a URL but may not parse (it is shown because it was refused):
/// anything between `://` and the last `@` of the authority is replaced by [`MASK`].
/// Text without `://` is returned as it is.
pub fn url_text(text: &str) -> String {
    let Some(scheme_end) = text.find("://").map(|i| i + 3) else {
        return text.to_owned();
    };
    let rest = &text[scheme_end..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        None => text.to_owned(),
        Some(at) => format!("{}{MASK}{}", &text[..scheme_end], &rest[at..]),
    }
}

/// A server's `Location` (or any URL it sent) for a log line: [`url_text`], then
/// [`foreign_text`].
pub fn location(raw: &[u8], max_chars: usize) -> String {
    foreign_text(
        url_text(&String::from_utf8_lossy(raw)).as_bytes(),
        max_chars,
    )
}

/// Foreign bytes as one line of at most `max_chars` characters: invalid UTF-8 replaced,
/// control and bidi-formatting characters escaped (`\n`, `\u{1b}`), `…` when cut.
pub fn foreign_text(bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut shown = String::with_capacity(text.len().min(max_chars * 2));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            shown.push('…');
            break;
        }
        if c.is_control() || is_bidi_format(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Characters that reorder how a terminal draws the text around them (Trojan Source).
fn is_bidi_format(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
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
}
