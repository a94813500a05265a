//! Puts one prepared body on the wire and brings back the answer: HTTP to Blueflood, or stdout
//! for `--dry-run`. Knows HTTP, not what the answer means (that is `blueflood::classify`).
//! Never follows a redirect (its target would get the data and the token, and its answer would
//! be taken for Blueflood's), and reads no more of an answer than `blueflood::answer_limit`
//! allows for the request (`answer::read_limited`).

use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use flate2::write::GzEncoder;

pub use super::answer::Answer;
use super::answer::{EXCERPT_CHARS, read_limited};
use super::blueflood;
use crate::auth::{BoxFuture, Token};
use crate::config::settings::{Compression, ForwardSettings};
use crate::redact;

/// A request body ready to send (and to re-send on retry without re-encoding).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The JSON array, for dry-run output.
    pub json: Bytes,
    /// What goes on the wire: the JSON, gzipped when compression is on.
    pub wire: Bytes,
    pub gzipped: bool,
    /// How many points the body holds (or more): it bounds how long Blueflood's answer can be.
    pub points: usize,
}

impl Prepared {
    /// A body of at most `json.len() / MIN_POINT_JSON + 1` points; [`Prepared::with_points`]
    /// says exactly how many.
    pub fn new(json: Vec<u8>, compression: Compression) -> Self {
        let points = json.len() / blueflood::MIN_POINT_JSON + 1;
        let json = Bytes::from(json);
        match compression {
            Compression::None => Self {
                wire: json.clone(),
                json,
                gzipped: false,
                points,
            },
            Compression::Gzip { level } => {
                let mut enc = GzEncoder::new(
                    Vec::with_capacity(json.len() / 4),
                    flate2::Compression::new(level),
                );
                // Writing to a Vec cannot fail; if it somehow did, send uncompressed.
                match enc.write_all(&json).and_then(|()| enc.finish()) {
                    Ok(gz) => Self {
                        wire: Bytes::from(gz),
                        json,
                        gzipped: true,
                        points,
                    },
                    Err(_) => Self {
                        wire: json.clone(),
                        json,
                        gzipped: false,
                        points,
                    },
                }
            }
        }
    }

    /// The body holds exactly `points` points.
    pub fn with_points(mut self, points: usize) -> Self {
        self.points = points;
        self
    }
}

/// The request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("request timed out")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Other(String),
}

pub trait Transport: Send + Sync {
    fn send<'a>(
        &'a self,
        body: &'a Prepared,
        token: Option<&'a Token>,
    ) -> BoxFuture<'a, Result<Answer, SendError>>;
}

/// POSTs to `{blueflood}/v2.0/{tenant}/ingest` with connection reuse, HTTP/1.1 or h2 (ALPN).
pub struct HttpTransport {
    client: reqwest::Client,
    url: url::Url,
    /// Blueflood repeats the tenant in every error it lists.
    tenant_len: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("blueflood URL {url} cannot carry the path /v2.0/{{tenant}}/ingest")]
    BadUrl { url: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl HttpTransport {
    pub fn new(settings: &ForwardSettings) -> Result<Self, TransportError> {
        let mut url = settings.blueflood_url.clone();
        url.path_segments_mut()
            .map_err(|()| TransportError::BadUrl {
                url: settings.blueflood_url.to_string(),
            })?
            .pop_if_empty()
            .extend(["v2.0", settings.tenant.as_str(), "ingest"]);
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_max_idle_per_host(settings.concurrency)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("blueflood-forward/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Client(e.to_string()))?;
        Ok(Self {
            client,
            url,
            tenant_len: settings.tenant.len(),
        })
    }

    pub fn url(&self) -> &url::Url {
        &self.url
    }
}

impl Transport for HttpTransport {
    fn send<'a>(
        &'a self,
        body: &'a Prepared,
        token: Option<&'a Token>,
    ) -> BoxFuture<'a, Result<Answer, SendError>> {
        Box::pin(async move {
            // Never a `tenantId` header: Blueflood would let it override the URL's tenant.
            let mut req = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, "application/json")
                .body(body.wire.clone());
            if body.gzipped {
                req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
            }
            if let Some(t) = token {
                let mut value = reqwest::header::HeaderValue::from_str(t.expose())
                    .map_err(|_| SendError::Other("token is not a valid header value".into()))?;
                value.set_sensitive(true);
                req = req.header("X-Auth-Token", value);
            }
            let resp = req.send().await.map_err(map_err)?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| blueflood::parse_retry_after(v, SystemTime::now()));
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|v| redact::location(v.as_bytes(), EXCERPT_CHARS));
            let limit =
                blueflood::answer_limit(status, body.json.len(), body.points, self.tenant_len);
            let (body, complete) = read_limited(resp, limit, blueflood::OTHER_ANSWER_LIMIT)
                .await
                .map_err(map_err)?;
            Ok(Answer {
                status,
                retry_after,
                body,
                complete,
                location,
            })
        })
    }
}

fn map_err(e: reqwest::Error) -> SendError {
    let e = e.without_url();
    if e.is_timeout() {
        SendError::Timeout
    } else if e.is_connect() {
        SendError::Connect(error_chain(&e))
    } else {
        SendError::Other(error_chain(&e))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// `--dry-run`: writes each request's JSON body as one line on stdout and answers 200.
#[derive(Default)]
pub struct DryRunTransport {
    out: Mutex<()>,
}

impl Transport for DryRunTransport {
    fn send<'a>(
        &'a self,
        body: &'a Prepared,
        _token: Option<&'a Token>,
    ) -> BoxFuture<'a, Result<Answer, SendError>> {
        Box::pin(async move {
            let _serialise = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&body.json)
                .and_then(|()| stdout.write_all(b"\n"))
                .and_then(|()| stdout.flush())
                .map_err(|e| SendError::Other(format!("stdout: {e}")))?;
            Ok(Answer::empty(200))
        })
    }
}
