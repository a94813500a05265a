//! Answers no Blueflood gives but a hostile or broken server in its place can: bodies far
//! larger than any answer needs, generated as they are sent so that the double itself holds
//! none of it in memory.

use std::convert::Infallible;

use axum::body::Body;
use bytes::Bytes;

/// Bytes per generated chunk.
const CHUNK: usize = 64 * 1024;

/// A body of `len` bytes (`None`: endless), an HTML-looking page of filler, made chunk by
/// chunk while the peer reads it; when the peer stops reading and closes, the stream ends.
pub(super) fn filler_body(len: Option<u64>) -> Body {
    let mut page = b"<html><body>".to_vec();
    page.resize(CHUNK, b'x');
    let chunk = Bytes::from(page);
    let stream = futures_util::stream::unfold(len, move |left| {
        let chunk = chunk.clone();
        async move {
            match left {
                Some(0) => None,
                Some(n) => {
                    let take = n.min(CHUNK as u64) as usize;
                    Some((
                        Ok::<_, Infallible>(chunk.slice(..take)),
                        Some(n - take as u64),
                    ))
                }
                None => Some((Ok(chunk), None)),
            }
        }
    });
    Body::from_stream(stream)
}
