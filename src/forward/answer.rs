//! An answer as the forwarder keeps it: the status, the two headers that matter
//! (`Retry-After`, `Location`) and at most a bounded number of body bytes. A server that sends
//! more (a 1 GiB page, an endless chunked stream) costs that bound, not its size: reading stops
//! there and the response is dropped, which closes its connection rather than returning it to
//! the pool half read. A server's text reaches a log line only through
//! [`crate::redact::foreign_text`].

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
    /// A redirect's target as [`crate::redact::location`] shows it: redirects are never followed.
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
