//! In-process Blueflood ingest test double.
//!
//! Owns: an HTTP server on `127.0.0.1:<random>` that answers `POST /v2.0/{tenant}/ingest` and
//! `/ingest/multi` exactly as `docs/reference/blueflood-ingest.md` describes (decision order,
//! status codes, error body shape, 1 MiB post-decompression limit, collectionTime window, upsert
//! storage), plus the knobs the forwarder's integration tests need to provoke every answer a real
//! Blueflood (or the identity/rate-limit layer in front of it) can give: queued faults, a "down"
//! switch that keeps the port, poison metric names, an overridable clock, token checks and delays.
//!
//! The server is hand-rolled on hyper-util's auto builder (HTTP/1.1 keep-alive and h2c prior
//! knowledge) rather than an axum `Router`, because the contract's decision order (413 before
//! 415 before 404/405) does not fit a router, and because `Fault::Reset` needs to abort the
//! TCP connection itself.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::keystone::{KeystoneDouble, KeystoneShared};

/// Blueflood's body limit, measured after decompression.
pub const MAX_BODY: usize = 1_048_576;
/// Cap on the raw (possibly compressed) body we are willing to buffer. Anything bigger cannot
/// decompress to <= 1 MiB in practice, and the cap keeps a hostile client from eating memory.
const MAX_RAW_BODY: usize = 4 * MAX_BODY;
/// collectionTime window: [now - 3 days, now + 10 minutes], inclusive.
pub const MAX_PAST_MS: i64 = 3 * 24 * 3600 * 1000;
pub const MAX_FUTURE_MS: i64 = 10 * 60 * 1000;
/// The one ttl value that Blueflood rejects for the whole request rather than per point.
const TTL_WHOLE_REQUEST_FAILURE: i64 = 2_147_483_647;

/// One persisted datapoint. Storage is an upsert keyed by (tenant, metric, collectionTime), as in
/// Blueflood, so a retried batch does not inflate `stored_count()`; see `write_count()` for the
/// raw number of writes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub tenant: String,
    pub metric_name: String,
    pub collection_time: i64,
    pub metric_value: f64,
    pub ttl_in_seconds: i64,
    pub unit: Option<String>,
}

/// What the next request gets instead of normal handling (queued FIFO, one per request).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer this status with an empty body, store nothing.
    Status(u16),
    /// 429 with the given `Retry-After` value (delta seconds or an HTTP date), store nothing.
    TooManyRequests { retry_after: Option<String> },
    /// Read the request, then abort the TCP connection (RST via SO_LINGER 0) without answering.
    Reset,
    /// Store as normal, then abort the connection without answering: the client cannot know the
    /// write happened, so it must retry, and the upsert keeps the retry idempotent.
    ResetAfterStore,
    /// Handle normally (the points are stored at once), but answer only after this delay.
    Delay(Duration),
    /// Handle normally but answer 202 "Timed out persisting metrics" where 200/207 was due.
    Accepted202,
}

/// One request as the double saw it. `status` is 0 when the connection was reset instead.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub status: u16,
    pub content_encoding: Option<String>,
    pub content_type: Option<String>,
    pub auth_token: Option<String>,
    pub had_tenant_id_header: bool,
    /// Bytes on the wire (the raw body, compressed or not).
    pub compressed_len: usize,
    /// Bytes after decompression (capped at MAX_BODY + 1 when the limit was exceeded).
    pub decompressed_len: usize,
    /// Number of elements in the JSON array (0 when the body is not an array).
    pub points: usize,
    pub path: String,
    pub method: String,
    /// The body the double answered with (empty for most non-error answers).
    pub response_body: String,
}

enum Auth {
    Open,
    Token(String),
    Keystone(Arc<KeystoneShared>),
}

struct State {
    stored: Vec<StoredPoint>,
    index: HashMap<(String, String, i64), usize>,
    writes: usize,
    requests: Vec<RequestRecord>,
    faults: VecDeque<Fault>,
    now_ms: Option<i64>,
    auth: Auth,
    reject_names: HashSet<String>,
    delay: Option<Duration>,
    refused_connections: usize,
}

struct Shared {
    state: Mutex<State>,
    /// true = down. Connection tasks watch it so pooled keep-alive connections die too.
    down: watch::Sender<bool>,
    /// Wakes `wait_for_stored` without polling on a timer.
    stored_changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not cascade into every later assertion.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct BluefloodDouble {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl Drop for BluefloodDouble {
    fn drop(&mut self) {
        self.accept_task.abort();
        // Ends every live connection task as well.
        self.shared.down.send_replace(true);
    }
}

impl BluefloodDouble {
    /// Starts the double on a random local port. Must be called inside a tokio runtime.
    pub async fn start() -> BluefloodDouble {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind Blueflood double");
        let addr = listener.local_addr().expect("local addr");
        let (down, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                stored: Vec::new(),
                index: HashMap::new(),
                writes: 0,
                requests: Vec::new(),
                faults: VecDeque::new(),
                now_ms: None,
                auth: Auth::Open,
                reject_names: HashSet::new(),
                delay: None,
                refused_connections: 0,
            }),
            down,
            stored_changed: Notify::new(),
        });
        let accept_task = tokio::spawn(accept_loop(listener, shared.clone()));
        BluefloodDouble {
            addr,
            shared,
            accept_task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every distinct persisted point, in order of first arrival (later writes of the same key
    /// replace value/ttl/unit in place).
    pub fn stored(&self) -> Vec<StoredPoint> {
        self.shared.lock().stored.clone()
    }

    pub fn stored_count(&self) -> usize {
        self.shared.lock().stored.len()
    }

    /// Number of point writes including re-writes of an already stored key (duplicates sent by
    /// retries show up here, not in `stored_count`).
    pub fn write_count(&self) -> usize {
        self.shared.lock().writes
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }

    /// Connections accepted and reset while the double was down.
    pub fn refused_connections(&self) -> usize {
        self.shared.lock().refused_connections
    }

    pub fn push_fault(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// While down, every connection (new or pooled) is reset without an HTTP answer; the
    /// listener stays bound so the port is the same when the double comes back up.
    pub fn set_down(&self, down: bool) {
        self.shared.down.send_replace(down);
    }

    pub fn set_now_ms(&self, now: Option<i64>) {
        self.shared.lock().now_ms = now;
    }

    /// Some(t): requests without `X-Auth-Token: t` get 401. None: no authentication.
    pub fn require_token(&self, token: Option<String>) {
        self.shared.lock().auth = match token {
            Some(t) => Auth::Token(t),
            None => Auth::Open,
        };
    }

    /// Accept any unexpired, unrevoked token issued by `ks`; 401 otherwise.
    pub fn require_keystone(&self, ks: &KeystoneDouble) {
        self.shared.lock().auth = Auth::Keystone(ks.shared());
    }

    /// Poison names: a request containing any of them fails whole with 400 "Cannot parse content".
    pub fn set_reject_names(&self, names: Vec<String>) {
        self.shared.lock().reject_names = names.into_iter().collect();
    }

    pub fn set_delay(&self, d: Option<Duration>) {
        self.shared.lock().delay = d;
    }

    pub async fn wait_for_stored(&self, n: usize, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.shared.stored_changed.notified();
                if self.stored_count() >= n {
                    return;
                }
                // The timer is a safety net in case a notification slips between check and wait.
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        if *shared.down.borrow() {
            shared.lock().refused_connections += 1;
            // RST instead of FIN: the client sees "connection reset", as with a dead backend.
            let _ = stream.set_zero_linger();
            drop(stream);
            continue;
        }
        tokio::spawn(serve_connection(stream, shared.clone()));
    }
}

/// Per-connection control shared with the request handler, so a `Reset` fault can abort the
/// TCP connection that carried the request.
struct ConnControl {
    kill: Arc<AtomicBool>,
    abort: Notify,
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let kill = Arc::new(AtomicBool::new(false));
    let control = Arc::new(ConnControl {
        kill: kill.clone(),
        abort: Notify::new(),
    });
    let io = TokioIo::new(KillableStream {
        inner: stream,
        kill: kill.clone(),
    });
    let svc_shared = shared.clone();
    let svc_control = control.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = svc_shared.clone();
        let control = svc_control.clone();
        async move { Ok::<_, Infallible>(handle(shared, control, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(io, service);
    let mut down_rx = shared.down.subscribe();
    tokio::select! {
        _ = conn => {}
        _ = control.abort.notified() => {}
        _ = down_rx.wait_for(|down| *down) => kill.store(true, Ordering::SeqCst),
    }
    // Dropping `conn` here drops the stream; KillableStream turns that into an RST when asked.
}

/// TcpStream that is closed with SO_LINGER 0 (RST) when `kill` is set at drop time.
struct KillableStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl Drop for KillableStream {
    fn drop(&mut self) {
        if self.kill.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The answer to one request, before it becomes an HTTP response.
struct Answer {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn empty(status: u16) -> Answer {
        Answer {
            status,
            body: String::new(),
            headers: Vec::new(),
        }
    }

    fn errors(status: u16, errors: Vec<ErrorData>) -> Answer {
        Answer {
            status,
            body: serde_json::to_string(&ErrorResponse { errors }).expect("serialize errors"),
            headers: Vec::new(),
        }
    }

    /// A request-level error with a single message (no point attached).
    fn message(status: u16, tenant: &str, message: &str) -> Answer {
        Answer::errors(
            status,
            vec![ErrorData {
                tenant_id: tenant.to_string(),
                timestamp: None,
                metric_name: String::new(),
                source: None,
                message: message.to_string(),
            }],
        )
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    fn into_response(self) -> Response<Body> {
        // Deliberately no Content-Type: Blueflood sends none, and the client must not need one.
        let mut builder = Response::builder().status(self.status);
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        builder.body(Body::from(self.body)).expect("valid response")
    }
}

/// Blueflood's error body element; field order follows the contract page.
#[derive(Serialize, Debug, Clone)]
struct ErrorData {
    #[serde(rename = "tenantId")]
    tenant_id: String,
    timestamp: Option<i64>,
    #[serde(rename = "metricName")]
    metric_name: String,
    source: Option<&'static str>,
    message: String,
}

#[derive(Serialize)]
struct ErrorResponse {
    errors: Vec<ErrorData>,
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

async fn handle(
    shared: Arc<Shared>,
    control: Arc<ConnControl>,
    req: Request<Incoming>,
) -> Response<Body> {
    let fault = shared.lock().faults.pop_front();
    let mut record = RequestRecord {
        status: 0,
        content_encoding: header(&req, "content-encoding"),
        content_type: header(&req, "content-type"),
        auth_token: header(&req, "x-auth-token"),
        had_tenant_id_header: req.headers().contains_key("tenantid"),
        compressed_len: 0,
        decompressed_len: 0,
        points: 0,
        path: req.uri().path().to_string(),
        method: req.method().to_string(),
        response_body: String::new(),
    };
    let accept = header(&req, "accept");
    let (parts, body) = req.into_parts();

    // Read the whole request first (also for faults: a Reset happens after the request arrived).
    let raw = axum::body::to_bytes(Body::new(body), MAX_RAW_BODY).await;
    let raw_too_big = raw.is_err();
    let raw = raw.unwrap_or_default();
    record.compressed_len = raw.len();
    let decoded = if raw_too_big {
        Decoded::TooLarge
    } else {
        decode_body(&raw, record.content_encoding.as_deref())
    };
    match &decoded {
        Decoded::Ok(bytes) => {
            record.decompressed_len = bytes.len();
            record.points = serde_json::from_slice::<Value>(bytes)
                .ok()
                .and_then(|v| v.as_array().map(Vec::len))
                .unwrap_or(0);
        }
        Decoded::TooLarge => record.decompressed_len = MAX_BODY + 1,
        Decoded::Corrupt => {}
    }

    let (answer, reset, answer_delay) = match fault {
        Some(Fault::Status(status)) => (Some(Answer::empty(status)), false, None),
        Some(Fault::TooManyRequests { retry_after }) => {
            let mut a = Answer::empty(429);
            if let Some(v) = retry_after {
                a = a.with_header("retry-after", v);
            }
            (Some(a), false, None)
        }
        Some(Fault::Reset) => (None, true, None),
        Some(Fault::ResetAfterStore) => {
            let _ = normal(&shared, &parts, accept.as_deref(), &decoded, &record, false);
            (None, true, None)
        }
        Some(Fault::Delay(d)) => {
            let a = normal(&shared, &parts, accept.as_deref(), &decoded, &record, false);
            (Some(a), false, Some(d))
        }
        Some(Fault::Accepted202) => {
            let a = normal(&shared, &parts, accept.as_deref(), &decoded, &record, true);
            (Some(a), false, None)
        }
        None => {
            let a = normal(&shared, &parts, accept.as_deref(), &decoded, &record, false);
            (Some(a), false, None)
        }
    };

    if let Some(a) = &answer {
        record.status = a.status;
        record.response_body = a.body.clone();
    }
    let global_delay = {
        let mut st = shared.lock();
        st.requests.push(record);
        st.delay
    };
    // Record before delaying, so a client that gives up still leaves a trace.
    for d in [answer_delay, global_delay].into_iter().flatten() {
        tokio::time::sleep(d).await;
    }

    match answer {
        Some(a) => a.into_response(),
        None => {
            debug_assert!(reset);
            control.kill.store(true, Ordering::SeqCst);
            control.abort.notify_one();
            // The connection task drops this future together with the connection.
            std::future::pending().await
        }
    }
}

enum Decoded {
    Ok(Vec<u8>),
    TooLarge,
    Corrupt,
}

/// Inflates gzip/deflate bodies, reading at most MAX_BODY + 1 bytes so a decompression bomb
/// costs us 1 MiB, not whatever it expands to.
fn decode_body(raw: &Bytes, encoding: Option<&str>) -> Decoded {
    let limit = MAX_BODY as u64 + 1;
    let mut out = Vec::new();
    let enc = encoding.map(|e| e.trim().to_ascii_lowercase());
    let result = match enc.as_deref() {
        Some("gzip") | Some("x-gzip") => flate2::read::GzDecoder::new(&raw[..])
            .take(limit)
            .read_to_end(&mut out),
        Some("deflate") => {
            // HTTP "deflate" is zlib-wrapped, but servers (Netty included) accept raw deflate too.
            let zlib = flate2::read::ZlibDecoder::new(&raw[..])
                .take(limit)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(&raw[..])
                    .take(limit)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        // identity or unknown encodings pass through untouched, as Netty's decompressor does.
        _ => {
            out.extend_from_slice(&raw[..raw.len().min(limit as usize)]);
            Ok(out.len())
        }
    };
    match result {
        Err(_) => Decoded::Corrupt,
        Ok(_) if out.len() > MAX_BODY => Decoded::TooLarge,
        Ok(_) => Decoded::Ok(out),
    }
}

enum Route {
    Single(String),
    Multi(String),
}

fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2.0/")?;
    let mut segs = rest.split('/');
    let tenant = segs.next()?;
    if tenant.is_empty() || segs.next()? != "ingest" {
        return None;
    }
    // A trailing slash yields an extra "" segment, which is (correctly) a 404.
    match (segs.next(), segs.next()) {
        (None, _) => Some(Route::Single(tenant.to_string())),
        (Some("multi"), None) => Some(Route::Multi(tenant.to_string())),
        _ => None,
    }
}

const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
];

/// Normal handling: authentication (the identity layer in front), then Blueflood's decision
/// order from the contract page. Stores the valid points.
fn normal(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    accept: Option<&str>,
    decoded: &Decoded,
    record: &RequestRecord,
    timed_out_persisting: bool,
) -> Answer {
    // Identity layer (Repose) sits in front of Blueflood: it answers before Blueflood sees anything.
    {
        let st = shared.lock();
        let ok = match &st.auth {
            Auth::Open => true,
            Auth::Token(t) => record.auth_token.as_deref() == Some(t.as_str()),
            Auth::Keystone(ks) => record
                .auth_token
                .as_deref()
                .is_some_and(|t| ks.token_is_valid(t)),
        };
        if !ok {
            return Answer::empty(401);
        }
    }

    // 1. Size (and undecodable bodies, which Netty's decompressor fails as a bad request).
    let body = match decoded {
        Decoded::TooLarge => return Answer::empty(413).with_header("connection", "close"),
        Decoded::Corrupt => return Answer::message(400, "", "Cannot parse content"),
        Decoded::Ok(b) => b,
    };

    // 2. Media types.
    if let Some(ct) = record.content_type.as_deref()
        && !ct.to_ascii_lowercase().contains("application/json")
    {
        return Answer::message(415, "", &format!("Unsupported content-type: {ct}"));
    }
    if let Some(acc) = accept {
        let acc_l = acc.to_ascii_lowercase();
        if !acc_l.trim().is_empty() && !acc_l.contains("*/*") && !acc_l.contains("application/json")
        {
            return Answer::message(415, "", &format!("Unsupported accept: {acc}"));
        }
    }

    // 3. Routing.
    let Some(route) = route(parts.uri.path()) else {
        return Answer::empty(404);
    };
    let method = parts.method.as_str();
    if method != "POST" {
        if KNOWN_METHODS.contains(&method) {
            return Answer::empty(405).with_header("allow", "POST");
        }
        return Answer::empty(501);
    }
    let (url_tenant, multi) = match &route {
        Route::Single(t) => (t.as_str(), false),
        Route::Multi(t) => (t.as_str(), true),
    };

    // 4. Parse.
    let (now, reject_names) = {
        let st = shared.lock();
        (st.now_ms.unwrap_or_else(wall_ms), st.reject_names.clone())
    };
    let points = match parse(body, url_tenant, multi, &reject_names) {
        Ok(p) => p,
        Err(a) => return a,
    };

    // 5. Per-point validation.
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for p in points {
        let Some(value) = p.value else {
            // null/missing metricValue: dropped silently, neither stored nor reported.
            continue;
        };
        let mut errs = Vec::new();
        let err = |source: &'static str, message: &str| ErrorData {
            tenant_id: p.tenant.clone(),
            timestamp: Some(p.collection_time),
            metric_name: p.metric_name.clone(),
            source: Some(source),
            message: message.to_string(),
        };
        if multi && p.tenant.is_empty() {
            errs.push(err("tenantId", "may not be empty"));
        }
        if p.metric_name.is_empty() {
            errs.push(err("metricName", "may not be empty"));
        }
        let number = match value {
            PointValue::Number(n) => Some(n),
            PointValue::NotANumber => {
                errs.push(err("metricValue", "must be a number"));
                None
            }
        };
        if p.collection_time < now - MAX_PAST_MS || p.collection_time > now + MAX_FUTURE_MS {
            errs.push(err(
                "collectionTime",
                &format!(
                    "Out of bounds. Cannot be more than {MAX_PAST_MS} milliseconds into the past. \
                     Cannot be more than {MAX_FUTURE_MS} milliseconds into the future"
                ),
            ));
        }
        if !(1..=2_147_483_646).contains(&p.ttl) {
            errs.push(err("ttlInSeconds", "must be between 1 and 2147483647"));
        }
        match (number, errs.is_empty()) {
            (Some(n), true) => valid.push(StoredPoint {
                tenant: p.tenant,
                metric_name: p.metric_name,
                collection_time: p.collection_time,
                metric_value: n,
                ttl_in_seconds: p.ttl,
                unit: p.unit,
            }),
            _ => errors.extend(errs),
        }
    }

    // 6. Nothing valid.
    if valid.is_empty() {
        if errors.is_empty() {
            return Answer::message(400, url_tenant, "No valid metrics");
        }
        return Answer::errors(400, errors);
    }

    // 7. Persist (upsert).
    {
        let mut st = shared.lock();
        for p in valid {
            st.writes += 1;
            let key = (p.tenant.clone(), p.metric_name.clone(), p.collection_time);
            match st.index.get(&key).copied() {
                Some(i) => st.stored[i] = p,
                None => {
                    let i = st.stored.len();
                    st.stored.push(p);
                    st.index.insert(key, i);
                }
            }
        }
    }
    shared.stored_changed.notify_waiters();
    if timed_out_persisting {
        return Answer::message(202, url_tenant, "Timed out persisting metrics");
    }

    // 8. Partial or full success.
    if errors.is_empty() {
        Answer::empty(200)
    } else {
        Answer::errors(207, errors)
    }
}

enum PointValue {
    Number(f64),
    /// A string, bool, array or object: a per-point error, not a parse failure.
    NotANumber,
}

struct ParsedPoint {
    tenant: String,
    metric_name: String,
    value: Option<PointValue>,
    collection_time: i64,
    ttl: i64,
    unit: Option<String>,
}

fn cannot_parse(tenant: &str) -> Answer {
    Answer::message(400, tenant, "Cannot parse content")
}

/// Step 4: whole-request parse failures. Jackson-style leniencies (coercing "123" to a long,
/// truncating floats) are deliberately NOT modelled: the double is strict so client bugs surface.
fn parse(
    body: &[u8],
    url_tenant: &str,
    multi: bool,
    reject_names: &HashSet<String>,
) -> Result<Vec<ParsedPoint>, Answer> {
    let failed = || Answer::message(500, url_tenant, "Failed parsing content");
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        // A number serde_json cannot hold in f64 (1e400): Blueflood fails these with 500.
        Err(e) if e.to_string().contains("number out of range") => return Err(failed()),
        Err(_) => return Err(cannot_parse(url_tenant)),
    };
    let items = match value {
        Value::Null => return Err(failed()),
        Value::Array(items) => items,
        _ => return Err(cannot_parse(url_tenant)),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let obj = match item {
            Value::Null => return Err(failed()),
            Value::Object(o) => o,
            _ => return Err(cannot_parse(url_tenant)),
        };
        let p = parse_point(&obj, url_tenant, multi).ok_or_else(|| cannot_parse(url_tenant))?;
        if reject_names.contains(&p.metric_name) {
            return Err(cannot_parse(url_tenant));
        }
        out.push(p);
    }
    Ok(out)
}

/// None = the point makes the whole request fail to parse.
fn parse_point(obj: &Map<String, Value>, url_tenant: &str, multi: bool) -> Option<ParsedPoint> {
    const KEYS: [&str; 5] = [
        "metricName",
        "metricValue",
        "collectionTime",
        "ttlInSeconds",
        "unit",
    ];
    for k in obj.keys() {
        if !(KEYS.contains(&k.as_str()) || (multi && k == "tenantId")) {
            return None;
        }
    }
    let opt_string = |key: &str| -> Option<Option<String>> {
        match obj.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        }
    };
    // Missing/null primitives default to 0 as Jackson does; validation then rejects them per point.
    let int = |key: &str| -> Option<i64> {
        match obj.get(key) {
            None | Some(Value::Null) => Some(0),
            Some(Value::Number(n)) => n.as_i64(),
            Some(_) => None,
        }
    };
    let metric_name = opt_string("metricName")?.unwrap_or_default();
    let unit = opt_string("unit")?;
    let tenant = if multi {
        opt_string("tenantId")?.unwrap_or_default()
    } else {
        url_tenant.to_string()
    };
    let collection_time = int("collectionTime")?;
    let ttl = int("ttlInSeconds")?;
    // ttlInSeconds is a Java int: out of int range fails parsing, and so does exactly i32::MAX.
    if ttl >= TTL_WHOLE_REQUEST_FAILURE || ttl < i64::from(i32::MIN) {
        return None;
    }
    let value = match obj.get("metricValue") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(PointValue::Number(n.as_f64()?)),
        Some(_) => Some(PointValue::NotANumber),
    };
    Some(ParsedPoint {
        tenant,
        metric_name,
        value,
        collection_time,
        ttl,
        unit,
    })
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
