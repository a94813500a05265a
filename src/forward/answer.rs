//! An answer as the forwarder keeps it: the status, the two headers that matter
//! (`Retry-After`, `Location`) and at most a bounded number of body bytes. A server that sends
//! more (a 1 GiB page, an endless chunked stream) costs that bound, not its size: reading stops
//! there and the response is dropped, which closes its connection rather than returning it to
//! the pool half read. Also the one way a server's text reaches a log line: [`excerpt`].

use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// Characters of a server's text (a body, a `Location`) that a log line or error shows.
pub const EXCERPT_CHARS: usize = 200;

/// What the server answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// The body, or its first bytes when it was longer than the request allowed for its answer.
    pub body: Bytes,
    /// False when the body was longer than that limit: `body` is only its start.
    pub complete: bool,
    /// A redirect's target as an [`excerpt`], for the log: redirects are never followed.
    pub location: Option<String>,
}

impl Answer {
    /// A whole answer with an empty body and no headers (dry runs, tests).
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            body: Bytes::new(),
            complete: true,
            location: None,
        }
    }
}

/// Reads at most `limit` bytes of `resp`'s body: `(bytes, true)` when that was all of it,
/// `(start, false)` when there was more. A declared length over the limit is believed without
/// reading the rest: only the first `excerpt_limit` bytes are read, for the log.
pub async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
    excerpt_limit: usize,
) -> Result<(Bytes, bool), reqwest::Error> {
    let declared_over = resp.content_length().is_some_and(|n| n > limit as u64);
    let keep = if declared_over {
        excerpt_limit.min(limit)
    } else {
        limit
    };
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = keep - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            // Dropping `resp` unread closes the connection.
            return Ok((buf.freeze(), false));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf.freeze(), !declared_over))
}

/// A server's text made safe to show: decoded as UTF-8 (invalid bytes replaced), cut to
/// `max_chars` characters (marked with `...`), control characters (terminal escapes, CR, LF)
/// written as `\u{..}` escapes, so that no answer can forge or garble a log line.
pub fn excerpt(bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(max_chars * 2));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_escape_control_characters_and_stop_at_the_limit() {
        assert_eq!(excerpt(b"plain text", 200), "plain text");
        assert_eq!(
            excerpt(b"\x1b[2Jcheck passed\r\nok", 200),
            "\\u{1b}[2Jcheck passed\\u{d}\\u{a}ok"
        );
        assert_eq!(excerpt("é".repeat(300).as_bytes(), 3), "ééé...");
        assert_eq!(excerpt(b"\xff\xfeab", 200), "\u{fffd}\u{fffd}ab");
        assert_eq!(excerpt(b"\xc2\x9b", 200), "\\u{9b}", "C1 controls too");
        assert_eq!(excerpt(b"", 200), "");
    }
}
