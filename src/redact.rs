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
mod tests;
