//! Keystone v2 with Rackspace API-key credentials (`RAX-KSKEY:apiKeyCredentials`), as the
//! original forwarder: one cached token shared by every sender, refreshed ahead of expiry,
//! fetched by one caller at a time while the others wait for its result.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{AuthError, AuthStatus, BoxFuture, Token, TokenProvider};

/// Refresh when less than this much of a token's life is left.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// Used when the answer's `expires` cannot be read: short, so a bad clock costs little.
const FALLBACK_LIFETIME: Duration = Duration::from_secs(3600);

pub struct KeystoneV2 {
    http: reqwest::Client,
    url: url::Url,
    user: String,
    key: SecretString,
    /// Held across the HTTP call: concurrent callers queue here and find the fresh token.
    fetch: tokio::sync::Mutex<()>,
    /// The token, when to refresh it, and when it was obtained.
    cached: Mutex<Option<(Token, Instant, Instant)>>,
    requests: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

#[derive(Deserialize)]
struct Answer {
    access: Access,
}
#[derive(Deserialize)]
struct Access {
    token: TokenBody,
}
#[derive(Deserialize)]
struct TokenBody {
    id: String,
    #[serde(default)]
    expires: Option<String>,
}

impl KeystoneV2 {
    pub fn new(url: url::Url, user: String, key: SecretString, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            http,
            url,
            user,
            key,
            fetch: tokio::sync::Mutex::new(()),
            cached: Mutex::new(None),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    fn fresh(&self) -> Option<Token> {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((t, refresh_at, _)) if Instant::now() < *refresh_at => Some(t.clone()),
            _ => None,
        }
    }

    async fn authenticate(&self) -> Result<Token, AuthError> {
        let body = serde_json::json!({"auth": {"RAX-KSKEY:apiKeyCredentials": {
            "username": self.user, "apiKey": self.key.expose_secret()}}});
        let resp = self
            .http
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| AuthError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        match status {
            200 | 203 => {}
            401 | 403 => return Err(AuthError::Refused(status)),
            _ => return Err(AuthError::Status(status)),
        }
        let answer: Answer = resp
            .json()
            .await
            .map_err(|e| AuthError::BadAnswer(e.without_url().to_string()))?;
        let lifetime = answer
            .access
            .token
            .expires
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .and_then(|exp| (exp.to_utc() - chrono::Utc::now()).to_std().ok())
            .unwrap_or(FALLBACK_LIFETIME);
        // At 90% of its life or REFRESH_AHEAD before expiry, whichever is first, but never
        // before half its life (a short-lived token must still be used).
        let refresh_in = lifetime
            .mul_f64(0.9)
            .min(lifetime.saturating_sub(REFRESH_AHEAD))
            .max(lifetime / 2);
        let token = Token::new(answer.access.token.id);
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((token.clone(), Instant::now() + refresh_in, Instant::now()));
        tracing::info!(user = %self.user, valid_for_s = lifetime.as_secs(), "authenticated with Keystone v2");
        Ok(token)
    }
}

impl TokenProvider for KeystoneV2 {
    fn token(&self) -> BoxFuture<'_, Result<Option<Token>, AuthError>> {
        Box::pin(async move {
            if let Some(t) = self.fresh() {
                return Ok(Some(t));
            }
            let _single_flight = self.fetch.lock().await;
            if let Some(t) = self.fresh() {
                return Ok(Some(t));
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let result = self.authenticate().await;
            let mut last_error = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
            match &result {
                Ok(_) => *last_error = None,
                Err(e) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    *last_error = Some(e.to_string());
                }
            }
            result.map(Some)
        })
    }

    fn status(&self) -> AuthStatus {
        let token_age = self
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, _, at)| at.elapsed().as_secs_f64());
        AuthStatus {
            enabled: true,
            method: "rax-kskey",
            credential_source: "configuration".into(),
            credentials_loaded: true,
            token_age_seconds: token_age,
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            auth_requests: self.requests.load(Ordering::Relaxed),
            auth_failures: self.failures.load(Ordering::Relaxed),
            ..AuthStatus::default()
        }
    }

    fn invalidate(&self, token: &Token) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_some_and(|(t, _, _)| t == token) {
            *cached = None;
        }
    }
}
