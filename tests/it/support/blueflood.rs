//! In-process Blueflood ingest test double.
//!
//! Owns: an HTTP server on `127.0.0.1:<random>` that answers `POST /v2.0/{tenant}/ingest` and
//! `/ingest/multi` exactly as `docs/reference/blueflood-ingest.md` describes (decision order,
//! status codes, error body shape, 1 MiB post-decompression limit, collectionTime window, upsert
//! storage), plus the knobs the forwarder's integration tests need to provoke every answer a real
//! Blueflood (or the identity/rate-limit layer in front of it) can give: queued faults, a "down"
//! switch that keeps the port, poison metric names, an overridable clock, token checks and delays;
//! and what a server in its place can answer: any status with any headers and body (a proxy's
//! 400 page, a redirect, a huge `Retry-After`), bodies of any size or endless, and one answer for
//! every request (`set_blanket`).
//!
//! This file holds the double's API, its state and the fault handling; `blueflood/contract.rs`
//! Blueflood's own decision order, `blueflood/conn.rs` the TCP side, `blueflood/hostile.rs` the
//! generated bodies.
//!
//! The server is hand-rolled on hyper-util's auto builder (HTTP/1.1 keep-alive and h2c prior
//! knowledge) rather than an axum `Router`, because the contract's decision order (413 before
//! 415 before 404/405) does not fit a router, and because `Fault::Reset` needs to abort the
//! TCP connection itself.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::keystone::{KeystoneDouble, KeystoneShared};
use super::real_keystone::KeystoneAdmin;

mod conn;
mod contract;
mod hostile;

use conn::{ConnControl, accept_loop};
use contract::{Answer, Decoded, decode_body, normal};

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
    /// Answer `status` with these headers and this body, store nothing: what a proxy, a
    /// redirecting load balancer or a maintenance page in front of Blueflood answers.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Answer `status` with a generated body of `len` bytes, never held in memory (`None`: a
    /// chunked body that never ends). With `store`, the points are first stored as normal.
    Stream {
        status: u16,
        len: Option<u64>,
        store: bool,
    },
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
    /// Each token checked with a real Keystone (`GET /v3/auth/tokens`) before anything else,
    /// and required to be scoped to `project`.
    RealKeystone {
        admin: Arc<KeystoneAdmin>,
        project: String,
    },
}

struct State {
    stored: Vec<StoredPoint>,
    index: HashMap<(String, String, i64), usize>,
    writes: usize,
    requests: Vec<RequestRecord>,
    faults: VecDeque<Fault>,
    /// What every request gets once the queued faults are used up (until cleared).
    blanket: Option<Fault>,
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
                blanket: None,
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

    /// Some(f): every request not taken by a queued fault gets `f` (it is not used up), as from
    /// a proxy that answers everything the same way. None: normal handling again.
    pub fn set_blanket(&self, fault: Option<Fault>) {
        self.shared.lock().blanket = fault;
    }

    /// How many requests got `status` so far.
    pub fn answered(&self, status: u16) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.status == status)
            .count()
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

    /// Every request's `X-Auth-Token` validated with a real Keystone, as Repose does in front
    /// of Blueflood: a token Keystone takes, scoped to `project`, passes; any other gets 401
    /// (expired, revoked, unscoped); 503 while Keystone cannot say (down).
    pub fn require_real_keystone(&self, admin: Arc<KeystoneAdmin>, project: &str) {
        self.shared.lock().auth = Auth::RealKeystone {
            admin,
            project: project.to_owned(),
        };
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

/// With [`BluefloodDouble::require_real_keystone`]: `None` when Keystone takes the token,
/// else the answer the identity layer gives instead of Blueflood's.
async fn real_keystone_verdict(shared: &Shared, token: Option<&str>) -> Option<Fault> {
    let (admin, project) = match &shared.lock().auth {
        Auth::RealKeystone { admin, project } => (admin.clone(), project.clone()),
        _ => return None,
    };
    let Some(token) = token else {
        return Some(Fault::Status(401));
    };
    match admin.validate(token).await {
        Ok(Some(scope)) if scope == project => None,
        Ok(_) => Some(Fault::Status(401)),
        Err(_) => Some(Fault::Status(503)),
    }
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
    let fault = {
        let mut st = shared.lock();
        st.faults.pop_front().or_else(|| st.blanket.clone())
    };
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
    let fault = match fault {
        None => real_keystone_verdict(&shared, record.auth_token.as_deref()).await,
        some => some,
    };

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
            record.points = serde_json::from_slice::<serde_json::Value>(bytes)
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
        Some(Fault::Respond {
            status,
            headers,
            body,
        }) => {
            let mut a = Answer::empty(status);
            a.headers = headers;
            a.body = body;
            (Some(a), false, None)
        }
        Some(Fault::Stream { status, len, store }) => {
            if store {
                let _ = normal(&shared, &parts, accept.as_deref(), &decoded, &record, false);
            }
            let mut a = Answer::empty(status);
            a.filler = Some(len);
            (Some(a), false, None)
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
