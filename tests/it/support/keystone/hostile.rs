//! The Keystone double's hostile answers: redirects, bodies streamed to any size or forever
//! (counting when each ends), and [`OtherOrigin`], the server a redirect points to, which
//! records every request that reaches it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::KeystoneShared;

pub(super) fn redirect(status: u16, to: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("valid redirect status");
    (
        status,
        [
            (header::LOCATION, to.to_string()),
            (header::CONTENT_TYPE, "application/json".to_string()),
        ],
        "{}",
    )
        .into_response()
}

/// Counts the end of a streamed body, however it ends (sent whole or dropped by hyper when
/// the client closed the connection).
struct EndGuard(Arc<KeystoneShared>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.streams_ended.fetch_add(1, Ordering::SeqCst);
    }
}

/// `answer` with a `"padding"` string member making the whole body `len` bytes long (sent with
/// its `Content-Length`), or, for `None`, a chunked body whose padding never ends.
pub(super) fn streamed(shared: &Arc<KeystoneShared>, answer: Value, len: Option<u64>) -> Response {
    const CHUNK: usize = 64 * 1024;
    let mut text = answer.to_string();
    text.pop(); // the closing brace of the outer object
    let head = format!("{text}, \"padding\": \"").into_bytes();
    let tail = b"\"}".to_vec();
    let pad = len.map(|l| l.saturating_sub((head.len() + tail.len()) as u64));
    // (bytes of padding left or None for endless, head sent, tail sent, guard)
    let state = (pad, Some(head), Some(tail), EndGuard(shared.clone()));
    let stream = futures_util::stream::unfold(state, |(left, head, tail, guard)| async move {
        if let Some(h) = head {
            return Some((
                Ok::<_, std::io::Error>(Bytes::from(h)),
                (left, None, tail, guard),
            ));
        }
        match left {
            Some(0) => {
                let t = tail?;
                Some((Ok(Bytes::from(t)), (Some(0), None, None, guard)))
            }
            Some(n) => {
                let take = n.min(CHUNK as u64);
                let chunk = Bytes::from(vec![b'x'; take as usize]);
                Some((Ok(chunk), (Some(n - take), None, tail, guard)))
            }
            None => Some((
                Ok(Bytes::from(vec![b'x'; CHUNK])),
                (None, None, tail, guard),
            )),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(l) = len {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(l));
    }
    resp
}

/// Another origin a redirect could point to: it answers every request with a valid-looking v2
/// token answer, so a client that follows redirects would "succeed", and it records each
/// request's raw bytes (head and body) so a test can check no request (and no key) reached it.
pub struct OtherOrigin {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for OtherOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtherOrigin {
    pub async fn start() -> OtherOrigin {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind other origin");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut got = Vec::new();
                    // Whatever arrives within a moment is the request (head and small body).
                    while let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await
                    {
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    seen.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(String::from_utf8_lossy(&got).into_owned());
                    let body = json!({"access": {"token": {"id": "stolen",
                        "expires": "2999-01-01T00:00:00Z"}}})
                    .to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        OtherOrigin {
            addr,
            requests,
            task,
        }
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The raw bytes of every connection's request, as text.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
