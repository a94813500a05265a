//! In-process Keystone test double (v2 Rackspace identity and v3 password).
//!
//! Owns: `POST /v2.0/tokens` with API-key or password credentials and `POST /v3/auth/tokens`
//! with v3 password credentials (user name + domain), as described in
//! `docs/reference/keystone-and-secrets.md`: unique tokens, v2 with an ISO 8601 `expires` in
//! the body, v3 with `201`, the token in `X-Subject-Token` and `token.expires_at`. Plus the
//! knobs tests need: token lifetime, credential rotation, queued error statuses and broken
//! answers, revocation, and a log of every login (when, which method, which user, accepted).
//! Hostile answers too: redirects, huge and endless bodies (those in `keystone/hostile.rs`),
//! tokens that cannot be sent; and [`OtherOrigin`], a server that counts every request a
//! redirect could send it.
//! `BluefloodDouble::require_keystone` checks tokens against this double's state.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod hostile;
pub use hostile::OtherOrigin;
use hostile::{redirect, streamed};

const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

struct KsState {
    user: String,
    secret: String,
    tenant_id: String,
    ttl: Duration,
    /// token id -> expiry, epoch milliseconds (wall clock, like the `expires` field).
    tokens: HashMap<String, i64>,
    issued: Vec<String>,
    next_id: u64,
    auth_requests: usize,
    faults: VecDeque<Fault>,
    domain: String,
    log: Vec<Login>,
}

/// What the next login gets instead of normal handling (queued FIFO, one per request).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with an identity-fault body.
    Status(u16),
    /// 200/201 with a body that is not JSON.
    MalformedJson,
    /// A token whose expiry field says "tomorrow-ish".
    BadExpires,
    /// Answer normally after this delay (for timeouts).
    Delay(Duration),
    /// This 3xx status with `Location` set to the given URL (no token is issued).
    Redirect(u16, String),
    /// A normal login, but the token issued (and accepted by Blueflood) is this string, which
    /// may be anything: CR/LF, NUL, 16 KiB.
    Token(String),
    /// A normal v2 answer padded to this many bytes (a string field), streamed in chunks with
    /// its `Content-Length`, so the test never holds it.
    HugeBody(u64),
    /// A 200 whose chunked body never ends: bytes are sent until the client goes away.
    EndlessBody,
}

/// One login as the double saw it.
#[derive(Debug, Clone)]
pub struct Login {
    pub at: Instant,
    /// "rax-kskey", "v2-password", "v3-password", or "unknown".
    pub method: &'static str,
    pub user: String,
    /// The secret offered, so tests can tell which key a login used.
    pub secret: String,
    /// A token was issued.
    pub accepted: bool,
}

/// State shared with `BluefloodDouble::require_keystone`.
pub struct KeystoneShared {
    state: Mutex<KsState>,
    /// Streamed bodies (`HugeBody`, `EndlessBody`) that ended: sent whole or abandoned.
    streams_ended: AtomicUsize,
}

impl KeystoneShared {
    fn lock(&self) -> MutexGuard<'_, KsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issued by this double, not revoked, not expired.
    pub fn token_is_valid(&self, token: &str) -> bool {
        self.lock()
            .tokens
            .get(token)
            .is_some_and(|&exp| exp > wall_ms())
    }
}

pub struct KeystoneDouble {
    addr: SocketAddr,
    shared: Arc<KeystoneShared>,
    task: JoinHandle<()>,
}

impl Drop for KeystoneDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KeystoneDouble {
    /// Starts on a random local port, accepting `user` with `api_key` (as apiKey or password).
    pub async fn start(user: &str, api_key: &str) -> KeystoneDouble {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind Keystone double");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(KeystoneShared {
            state: Mutex::new(KsState {
                user: user.to_string(),
                secret: api_key.to_string(),
                tenant_id: "T".to_string(),
                ttl: DEFAULT_TTL,
                tokens: HashMap::new(),
                issued: Vec::new(),
                next_id: 1,
                auth_requests: 0,
                faults: VecDeque::new(),
                domain: "Default".to_string(),
                log: Vec::new(),
            }),
            streams_ended: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v2.0/tokens", post(tokens))
            .route("/v3/auth/tokens", post(tokens_v3))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        KeystoneDouble { addr, shared, task }
    }

    /// The full token URL, as a client would be configured with.
    pub fn url(&self) -> String {
        format!("http://{}/v2.0/tokens", self.addr)
    }

    /// The v3 token URL.
    pub fn url_v3(&self) -> String {
        format!("http://{}/v3/auth/tokens", self.addr)
    }

    /// Every login attempt that reached credential checking (faulted ones do not), in order.
    pub fn logins(&self) -> Vec<Login> {
        self.shared.lock().log.clone()
    }

    /// The newest login that was accepted; panics when there is none.
    pub fn last_accepted_login(&self) -> Login {
        self.logins()
            .into_iter()
            .rev()
            .find(|l| l.accepted)
            .expect("a login")
    }

    /// v3 logins must name this user domain (default "Default").
    pub fn set_domain(&self, domain: &str) {
        self.shared.lock().domain = domain.to_string();
    }

    /// Queue a broken answer or a delay for the next auth request.
    pub fn push(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.lock().issued.clone()
    }

    /// Every POST to the token endpoint, including failed and faulted ones.
    pub fn auth_requests(&self) -> usize {
        self.shared.lock().auth_requests
    }

    /// Lifetime of tokens issued from now on (default 24 h).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.shared.lock().ttl = ttl;
    }

    /// Rotation: from now on only these credentials authenticate. Tokens already issued stay
    /// valid until they expire or are revoked, as with real Keystone.
    pub fn set_credentials(&self, user: &str, api_key: &str) {
        let mut st = self.shared.lock();
        st.user = user.to_string();
        st.secret = api_key.to_string();
    }

    /// Queue: the next auth request is answered with this status (FIFO, one per request).
    pub fn push_fault(&self, status: u16) {
        self.shared.lock().faults.push_back(Fault::Status(status));
    }

    pub fn token_is_valid(&self, t: &str) -> bool {
        self.shared.token_is_valid(t)
    }

    /// Invalidates one token (Blueflood then answers 401 to it).
    pub fn revoke(&self, token: &str) {
        self.shared.lock().tokens.remove(token);
    }

    /// Invalidates every token issued so far (Blueflood then answers 401 to them).
    pub fn revoke_all(&self) {
        self.shared.lock().tokens.clear();
    }

    /// How many streamed bodies (`HugeBody`, `EndlessBody`) have ended, whole or abandoned by
    /// the client.
    pub fn streams_ended(&self) -> usize {
        self.shared.streams_ended.load(Ordering::SeqCst)
    }

    pub(crate) fn shared(&self) -> Arc<KeystoneShared> {
        self.shared.clone()
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// (method, username, secret) from either v2 credential form; None when the body has neither.
fn credentials(body: &Value) -> Option<(&'static str, String, String)> {
    let auth = body.get("auth")?;
    let (method, creds, secret_key) = if let Some(c) = auth.get("RAX-KSKEY:apiKeyCredentials") {
        ("rax-kskey", c, "apiKey")
    } else {
        ("v2-password", auth.get("passwordCredentials")?, "password")
    };
    Some((
        method,
        creds.get("username")?.as_str()?.to_string(),
        creds.get(secret_key)?.as_str()?.to_string(),
    ))
}

/// (username, domain, password) from a v3 password identity.
fn credentials_v3(body: &Value) -> Option<(String, String, String)> {
    let identity = body.pointer("/auth/identity")?;
    if !identity
        .get("methods")?
        .as_array()?
        .iter()
        .any(|m| m == "password")
    {
        return None;
    }
    let user = identity.pointer("/password/user")?;
    Some((
        user.get("name")?.as_str()?.to_string(),
        user.pointer("/domain/name")?.as_str()?.to_string(),
        user.get("password")?.as_str()?.to_string(),
    ))
}

/// Takes the next fault: a delay is served here (the lock is not held while sleeping) and
/// handling goes on; anything else is returned for the handler to answer with.
async fn next_fault(shared: &KeystoneShared) -> Option<Fault> {
    let fault = {
        let mut st = shared.lock();
        st.auth_requests += 1;
        st.faults.pop_front()
    };
    match fault {
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        other => other,
    }
}

fn status_fault(status: u16) -> Response {
    let status = StatusCode::from_u16(status).expect("valid fault status");
    json_response(
        status,
        json!({"identityFault": {"code": status.as_u16(), "message": "injected fault"}}),
    )
}

/// Checks credentials, records the login and issues a token with its expiry (epoch ms).
fn login(
    st: &mut KsState,
    method: &'static str,
    user: String,
    secret: String,
    domain_ok: bool,
    forced_id: Option<String>,
) -> Option<(String, i64)> {
    let accepted = domain_ok && user == st.user && secret == st.secret;
    st.log.push(Login {
        at: Instant::now(),
        method,
        user,
        secret,
        accepted,
    });
    if !accepted {
        return None;
    }
    let id = forced_id.unwrap_or_else(|| format!("tok-{}", st.next_id));
    st.next_id += 1;
    let expires_ms = wall_ms() + st.ttl.as_millis() as i64;
    st.tokens.insert(id.clone(), expires_ms);
    st.issued.push(id.clone());
    Some((id, expires_ms))
}

fn unauthorized() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({"unauthorized": {"code": 401, "message": "Username or api key is invalid."}}),
    )
}

fn bad_request() -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"badRequest": {"code": 400, "message": "Invalid json request body"}}),
    )
}

async fn tokens(State(shared): State<Arc<KeystoneShared>>, body: Bytes) -> Response {
    let fault = next_fault(&shared).await;
    match &fault {
        Some(Fault::Status(status)) => return status_fault(*status),
        Some(Fault::Redirect(status, to)) => return redirect(*status, to),
        _ => {}
    }
    let Some((method, user, secret)) = serde_json::from_slice::<Value>(&body)
        .ok()
        .as_ref()
        .and_then(credentials)
    else {
        return bad_request();
    };
    let mut st = shared.lock();
    let forced = match &fault {
        Some(Fault::Token(t)) => Some(t.clone()),
        _ => None,
    };
    let Some((id, expires_ms)) = login(&mut st, method, user, secret, true, forced) else {
        return unauthorized();
    };
    let expires = match fault {
        Some(Fault::BadExpires) => "tomorrow-ish".to_string(),
        _ => iso8601_utc_ms(expires_ms),
    };
    if fault == Some(Fault::MalformedJson) {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"access\": {\"token\": ",
        )
            .into_response();
    }
    let answer = json!({"access": {
        "token": {"id": id, "expires": expires, "tenant": {"id": st.tenant_id}},
        "serviceCatalog": [],
        "user": {"id": "u", "name": st.user},
    }});
    drop(st);
    match fault {
        Some(Fault::HugeBody(len)) => streamed(&shared, answer, Some(len)),
        Some(Fault::EndlessBody) => streamed(&shared, answer, None),
        _ => json_response(StatusCode::OK, answer),
    }
}

/// Keystone v3: 201, the token in `X-Subject-Token`, `token.expires_at` in the body.
async fn tokens_v3(State(shared): State<Arc<KeystoneShared>>, body: Bytes) -> Response {
    let fault = next_fault(&shared).await;
    match &fault {
        Some(Fault::Status(status)) => return status_fault(*status),
        Some(Fault::Redirect(status, to)) => return redirect(*status, to),
        _ => {}
    }
    let Some((user, domain, password)) = serde_json::from_slice::<Value>(&body)
        .ok()
        .as_ref()
        .and_then(credentials_v3)
    else {
        return bad_request();
    };
    let mut st = shared.lock();
    let domain_ok = domain == st.domain;
    let forced = match &fault {
        Some(Fault::Token(t)) => Some(t.clone()),
        _ => None,
    };
    let Some((id, expires_ms)) = login(&mut st, "v3-password", user, password, domain_ok, forced)
    else {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": {"code": 401, "title": "Unauthorized",
                             "message": "The request you have made requires authentication."}}),
        );
    };
    let expires = match fault {
        Some(Fault::BadExpires) => "tomorrow-ish".to_string(),
        _ => iso8601_utc_ms(expires_ms),
    };
    let body = if fault == Some(Fault::MalformedJson) {
        "{\"token\": [".to_string()
    } else {
        json!({"token": {"methods": ["password"], "expires_at": expires,
                         "user": {"name": st.user, "domain": {"name": st.domain}}}})
        .to_string()
    };
    let mut resp = (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    // A forced token hyper cannot send (CR/LF) is sent as what remains valid of it.
    let value =
        HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("unsendable-token"));
    resp.headers_mut().insert("x-subject-token", value);
    resp
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (the form Keystone uses).
pub fn iso8601_utc_ms(epoch_ms: i64) -> String {
    let secs = epoch_ms.div_euclid(1000);
    let ms = epoch_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`, which works in 400-year eras so leap years need no special cases.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
