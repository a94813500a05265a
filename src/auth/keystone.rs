//! The Keystone client behind [`TokenProvider`]: one cached token shared by every sender,
//! refreshed ahead of expiry, fetched by one caller at a time while the others wait for its
//! result (single flight), dropped when Blueflood refuses it or the credentials change, and
//! never requested again sooner than a doubling backoff after a failed login.
//!
//! Owns: the token cache, the backoff state, the auth request itself (timeouts on connect and
//! on the whole exchange, no redirect ever followed, at most `max_answer_bytes` of an answer
//! read) and the provider's half of `AuthStatus`. The request and answer formats (and what
//! makes a token sendable) are `wire`'s; the credentials and their rotation are
//! `credentials`'.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use secrecy::ExposeSecret;
use tokio_util::task::AbortOnDropHandle;

use super::credentials::{CredentialStore, Credentials};
use super::{AuthError, AuthStatus, AuthTiming, BoxFuture, Token, TokenProvider, wire};
use crate::accounting::Ledger;
use crate::backoff::{Backoff, ExponentialBackoff};
use crate::config::settings::{AuthMethod, AuthSettings};
use crate::events::{InternalEvent, KeystoneRedirected, LogLimits};

/// Refresh when less than this much of a token's life is left.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// Used when the answer gives no expiry: short, so a missing field costs little.
const FALLBACK_LIFETIME: Duration = Duration::from_secs(3600);
/// A token this close to its expiry is not handed out even while a refresh is failing: the
/// request it goes into must still reach Blueflood in time.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);
/// At most this much of a redirect's `Location` is shown: it is the server's text, not ours.
const LOCATION_SHOWN_CHARS: usize = 256;

struct Cached {
    token: Token,
    /// The credentials generation it was obtained with; a rotation makes it stale.
    generation: u64,
    obtained: Instant,
    refresh_at: Instant,
    expires_at: Instant,
}

struct Failure {
    error: AuthError,
    generation: u64,
    /// Where this run of failures (for this generation) is in the backoff.
    backoff: Backoff,
    retry_at: Instant,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    failure: Option<Failure>,
}

pub struct Keystone {
    http: reqwest::Client,
    url: url::Url,
    method: AuthMethod,
    domain: String,
    /// v3 only: the project the token is scoped to.
    project_id: Option<String>,
    timing: AuthTiming,
    /// After failed logins: `backoff_initial` doubling up to `backoff_max`, without jitter.
    backoff: ExponentialBackoff,
    store: Arc<CredentialStore>,
    /// Held across the HTTP call: concurrent callers queue here and find the fresh token (or
    /// the fresh failure) when they get it.
    fetch: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    auth_requests: AtomicU64,
    auth_failures: AtomicU64,
    /// The most bytes of an answer read (`auth_max_answer_bytes`).
    max_answer_bytes: usize,
    /// Its own, as its redirect limiter always was: the redirect counts nothing in a ledger
    /// (auth failures are the provider's own figures), and `auth::provider`'s callers (the
    /// forwarder, `check`, the tests) hand it none.
    events: (Ledger, LogLimits),
    /// The tasks keeping `store` current; they stop when the provider is dropped.
    _sources: Vec<AbortOnDropHandle<()>>,
}

impl Keystone {
    pub fn new(
        settings: &AuthSettings,
        timing: AuthTiming,
        store: Arc<CredentialStore>,
        sources: Vec<AbortOnDropHandle<()>>,
    ) -> Result<Self, AuthError> {
        let backoff = ExponentialBackoff::new(timing.backoff_initial, timing.backoff_max, 0.0)
            .map_err(|e| AuthError::Setup(format!("authentication backoff: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(timing.request_timeout)
            .connect_timeout(timing.connect_timeout)
            .user_agent(concat!("blueflood-forward/", env!("CARGO_PKG_VERSION")))
            // A followed redirect sends the login elsewhere: 307/308 re-POST the key itself.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AuthError::Setup(format!("cannot build the identity client: {e}")))?;
        Ok(Self {
            http,
            url: settings.auth_url.clone(),
            method: settings.method,
            domain: settings.domain.clone(),
            project_id: settings.project_id.clone(),
            timing,
            backoff,
            store,
            fetch: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
            auth_requests: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            max_answer_bytes: settings.max_answer_bytes,
            events: (Ledger::default(), LogLimits::default()),
            _sources: sources,
        })
    }

    /// The credential store, e.g. to wait for the first load.
    pub fn store(&self) -> &Arc<CredentialStore> {
        &self.store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached token if it is for `generation` and not due for refresh.
    fn fresh(&self, generation: u64) -> Option<Token> {
        let st = self.lock();
        st.cached
            .as_ref()
            .filter(|c| c.generation == generation && Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// The cached token if it is for `generation` and still valid, even if due for refresh.
    fn usable(st: &State, generation: u64) -> Option<Token> {
        st.cached
            .as_ref()
            .filter(|c| c.generation == generation && Instant::now() + EXPIRY_MARGIN < c.expires_at)
            .map(|c| c.token.clone())
    }

    async fn get_token(&self) -> Result<Token, AuthError> {
        if let Some(t) = self.fresh(self.store.generation()) {
            return Ok(t);
        }
        let _single_flight = self.fetch.lock().await;
        let Some((generation, creds)) = self.store.current() else {
            return Err(AuthError::NoCredentials(self.store.label().to_owned()));
        };
        if let Some(t) = self.fresh(generation) {
            return Ok(t);
        }
        {
            let st = self.lock();
            if let Some(f) = st.failure.as_ref().filter(|f| f.generation == generation) {
                let now = Instant::now();
                if now < f.retry_at {
                    if let Some(t) = Self::usable(&st, generation) {
                        return Ok(t);
                    }
                    return Err(AuthError::BackingOff {
                        retry_in: f.retry_at - now,
                        last: Box::new(f.error.clone()),
                    });
                }
            }
        }
        match self.authenticate(&creds).await {
            Ok((token, lifetime)) => {
                let now = Instant::now();
                // At 90% of its life or REFRESH_AHEAD before expiry, whichever is first, but
                // never before half its life (a short-lived token must still be used).
                let refresh_in = lifetime
                    .mul_f64(0.9)
                    .min(lifetime.saturating_sub(REFRESH_AHEAD))
                    .max(lifetime / 2);
                let mut st = self.lock();
                st.failure = None;
                st.cached = Some(Cached {
                    token: token.clone(),
                    generation,
                    obtained: now,
                    refresh_at: now + refresh_in,
                    expires_at: now + lifetime,
                });
                drop(st);
                tracing::info!(
                    method = self.method.label(),
                    user = %creds.user,
                    valid_for_s = lifetime.as_secs(),
                    "authenticated with Keystone"
                );
                Ok(token)
            }
            Err(error) => {
                self.auth_failures.fetch_add(1, Ordering::Relaxed);
                let mut st = self.lock();
                // New credentials start a new run of failures.
                let mut backoff = match st.failure.as_ref().filter(|f| f.generation == generation) {
                    Some(prev) => prev.backoff,
                    None => self.backoff.start(),
                };
                let delay = backoff.next_delay();
                st.failure = Some(Failure {
                    error: error.clone(),
                    generation,
                    backoff,
                    retry_at: Instant::now() + delay,
                });
                let still_valid = Self::usable(&st, generation);
                drop(st);
                tracing::warn!(
                    method = self.method.label(),
                    user = %creds.user,
                    error = %error,
                    retry_in_s = delay.as_secs_f64(),
                    using_previous_token = still_valid.is_some(),
                    "Keystone authentication failed"
                );
                still_valid.ok_or(error)
            }
        }
    }

    /// One login. Returns the token and its remaining lifetime.
    async fn authenticate(&self, creds: &Credentials) -> Result<(Token, Duration), AuthError> {
        self.auth_requests.fetch_add(1, Ordering::Relaxed);
        let body = wire::login_body(
            self.method,
            &creds.user,
            creds.secret.expose_secret(),
            &self.domain,
            self.project_id.as_deref(),
        );
        let exchange = async {
            let resp = self
                .http
                .post(self.url.clone())
                .json(&body)
                .send()
                .await
                .map_err(|e| AuthError::Transport(describe(&e)))?;
            let status = resp.status().as_u16();
            if resp.status().is_redirection() {
                let location = resp.headers().get(reqwest::header::LOCATION).map_or_else(
                    || "(no Location)".to_owned(),
                    |v| crate::redact::location(v.as_bytes(), LOCATION_SHOWN_CHARS),
                );
                KeystoneRedirected {
                    status,
                    location: &location,
                }
                .emit(&self.events.0, &self.events.1);
                return Err(AuthError::Redirected { status, location });
            }
            if !wire::is_success(status) {
                return Err(match status {
                    401 | 403 => AuthError::Refused(status),
                    _ => AuthError::Status(status),
                });
            }
            let subject = resp
                .headers()
                .get(wire::SUBJECT_TOKEN_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = read_bounded(resp, self.max_answer_bytes).await?;
            wire::parse_answer(self.method, subject.as_deref(), &bytes)
        };
        // reqwest's own timeout covers the exchange too; this bounds it whatever the client.
        let issued = tokio::time::timeout(self.timing.request_timeout, exchange)
            .await
            .map_err(|_| {
                AuthError::Transport(format!(
                    "no answer within {:.1}s",
                    self.timing.request_timeout.as_secs_f64()
                ))
            })??;
        let lifetime = match issued.expires {
            None => {
                tracing::warn!(
                    assumed_s = FALLBACK_LIFETIME.as_secs(),
                    "Keystone answer has no token expiry"
                );
                FALLBACK_LIFETIME
            }
            Some(exp) => (exp - chrono::Utc::now()).to_std().map_err(|_| {
                AuthError::BadAnswer(format!(
                    "the token expired at {} (before it arrived; clocks out of step?)",
                    exp.to_rfc3339()
                ))
            })?,
        };
        Ok((Token::new(issued.token), lifetime))
    }
}

/// The body of `resp`, at most `limit` bytes. A longer answer (announced or streamed) is an
/// error as soon as it is seen to be longer: the rest is never read, and dropping the response
/// mid-body closes its connection rather than returning it to the pool.
async fn read_bounded(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, AuthError> {
    let too_large = || {
        AuthError::BadAnswer(format!(
            "the answer is larger than {limit} bytes (auth_max_answer_bytes); not read further"
        ))
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| AuthError::Transport(describe(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error with its causes ("connection refused"), without the URL's query or any
/// header: nothing secret is in either, but the chain is what an operator needs.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl TokenProvider for Keystone {
    fn token(&self) -> BoxFuture<'_, Result<Option<Token>, AuthError>> {
        Box::pin(async move { self.get_token().await.map(Some) })
    }

    fn invalidate(&self, token: &Token) {
        let mut st = self.lock();
        if st.cached.as_ref().is_some_and(|c| &c.token == token) {
            st.cached = None;
        }
    }

    fn status(&self) -> AuthStatus {
        let store = self.store.status();
        let generation = self.store.generation();
        let st = self.lock();
        let token_age_seconds = st
            .cached
            .as_ref()
            .filter(|c| c.generation == generation && Instant::now() < c.expires_at)
            .map(|c| c.obtained.elapsed().as_secs_f64());
        let identity_failing = st
            .failure
            .as_ref()
            .is_some_and(|f| f.generation == generation);
        let credentials_unreadable = store.last_error.is_some();
        let errors: Vec<String> = store
            .last_error
            .into_iter()
            .chain(st.failure.as_ref().map(|f| f.error.to_string()))
            .collect();
        AuthStatus {
            enabled: true,
            method: self.method.label(),
            credential_source: self.store.label().to_owned(),
            credentials_loaded: store.loaded,
            token_age_seconds,
            last_rotation_unix_seconds: store.last_rotation.and_then(|t| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs_f64())
            }),
            last_error: (!errors.is_empty()).then(|| errors.join("; ")),
            identity_failing,
            credentials_unreadable,
            auth_requests: self.auth_requests.load(Ordering::Relaxed),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            credential_reloads: store.reloads,
            credential_reload_failures: store.reload_failures,
        }
    }
}
