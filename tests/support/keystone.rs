//! In-process Keystone v2 (Rackspace identity) test double.
//!
//! Owns: `POST /v2.0/tokens` with API-key or password credentials as described in
//! `shared/reference/keystone-and-secrets.md`, issuing unique tokens with an ISO 8601 `expires`,
//! plus the knobs tests need: token lifetime, credential rotation, queued error statuses and
//! revocation. `BluefloodDouble::require_keystone` checks tokens against this double's state.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

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
    faults: VecDeque<u16>,
}

/// State shared with `BluefloodDouble::require_keystone`.
pub struct KeystoneShared {
    state: Mutex<KsState>,
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
            }),
        });
        let app = Router::new()
            .route("/v2.0/tokens", post(tokens))
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

    /// The tenant id reported in `access.token.tenant.id` (default "T").
    pub fn set_tenant_id(&self, tenant: &str) {
        self.shared.lock().tenant_id = tenant.to_string();
    }

    /// Queue: the next auth request is answered with this status (FIFO, one per request).
    pub fn push_fault(&self, status: u16) {
        self.shared.lock().faults.push_back(status);
    }

    pub fn token_is_valid(&self, t: &str) -> bool {
        self.shared.token_is_valid(t)
    }

    /// Invalidates every token issued so far (Blueflood then answers 401 to them).
    pub fn revoke_all(&self) {
        self.shared.lock().tokens.clear();
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

/// (username, secret) from either credential form; None when the body has neither.
fn credentials(body: &Value) -> Option<(String, String)> {
    let auth = body.get("auth")?;
    let (creds, secret_key) = if let Some(c) = auth.get("RAX-KSKEY:apiKeyCredentials") {
        (c, "apiKey")
    } else {
        (auth.get("passwordCredentials")?, "password")
    };
    Some((
        creds.get("username")?.as_str()?.to_string(),
        creds.get(secret_key)?.as_str()?.to_string(),
    ))
}

async fn tokens(State(shared): State<Arc<KeystoneShared>>, body: Bytes) -> Response {
    let mut st = shared.lock();
    st.auth_requests += 1;
    if let Some(status) = st.faults.pop_front() {
        let status = StatusCode::from_u16(status).expect("valid fault status");
        return json_response(
            status,
            json!({"identityFault": {"code": status.as_u16(), "message": "injected fault"}}),
        );
    }
    let Some((user, secret)) = serde_json::from_slice::<Value>(&body)
        .ok()
        .as_ref()
        .and_then(credentials)
    else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"badRequest": {"code": 400, "message": "Invalid json request body"}}),
        );
    };
    if user != st.user || secret != st.secret {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"unauthorized": {"code": 401, "message": "Username or api key is invalid."}}),
        );
    }
    let id = format!("tok-{}", st.next_id);
    st.next_id += 1;
    let expires_ms = wall_ms() + st.ttl.as_millis() as i64;
    st.tokens.insert(id.clone(), expires_ms);
    st.issued.push(id.clone());
    json_response(
        StatusCode::OK,
        json!({"access": {
            "token": {"id": id, "expires": iso8601_utc_ms(expires_ms), "tenant": {"id": st.tenant_id}},
            "serviceCatalog": [],
            "user": {"id": "u", "name": st.user},
        }}),
    )
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
