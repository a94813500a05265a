//! The authentication seam between the forwarder and an identity service. The forwarder asks a
//! [`TokenProvider`] for a token before each request and tells it when Blueflood refused one;
//! how tokens are obtained stays behind the trait.
//!
//! Owns: the trait, [`Token`] (redacting), [`AuthError`], [`AuthStatus`] (what `/status`,
//! `/readyz` and metrics show), [`NoAuth`], and [`provider`], the one constructor `app` calls.
//! Submodules: `wire` (Keystone v2/v3 request and answer formats), `keystone` (the cached,
//! single-flight, backing-off client), `credentials` (where user and key come from, file
//! watching and reload accounting), `kube_secret` (the Kubernetes API Secret source).

mod credentials;
mod keystone;
pub mod kube_secret;
mod wire;

pub use credentials::{CredentialStore, Credentials};
pub use keystone::Keystone;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::config::settings::{AuthSettings, ForwardSettings, SecretSource};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A token for the `X-Auth-Token` header. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Token(Arc<SecretString>);

impl Token {
    pub fn new(value: String) -> Self {
        Self(Arc::new(SecretString::from(value)))
    }

    /// The raw value, for the request header only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

/// Why no token could be had. No variant ever carries a key, a password or a token: messages
/// are built from status codes, field names and transport errors only.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("identity service refused the credentials (HTTP {0})")]
    Refused(u16),
    #[error("identity service answered HTTP {0}")]
    Status(u16),
    /// A 3xx: never followed (it would carry the key to `location`, escaped and bounded).
    #[error(
        "identity service answered HTTP {status} redirecting to \"{location}\"; redirects are not followed (set auth_url to the final URL)"
    )]
    Redirected { status: u16, location: String },
    #[error("identity service unreachable: {0}")]
    Transport(String),
    #[error("identity service answer has no usable token: {0}")]
    BadAnswer(String),
    #[error("no credentials loaded yet from {0}")]
    NoCredentials(String),
    /// The last attempt failed and its backoff has not passed: no request was made.
    #[error("not asking the identity service again for {:.1}s; last attempt: {last}", retry_in.as_secs_f64())]
    BackingOff {
        retry_in: Duration,
        last: Box<AuthError>,
    },
    #[error("cannot start the credential source: {0}")]
    Setup(String),
}

/// What the provider is doing, for `/status`, `/readyz` and metrics. Cheap to take; never
/// holds a secret (`credential_source` says where, `last_error` is an [`AuthError`] message).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuthStatus {
    pub enabled: bool,
    /// "none", "rax-kskey", "v2-password", "v3-password".
    pub method: &'static str,
    /// "command line", "environment", "config file", "file /path", "kubernetes secret ns/name".
    pub credential_source: String,
    /// False until credentials were read at least once.
    pub credentials_loaded: bool,
    /// Age of the cached token; `None` when no token is cached.
    pub token_age_seconds: Option<f64>,
    /// When the credentials last changed (a rotation), as Unix seconds.
    pub last_rotation_unix_seconds: Option<f64>,
    /// The credential source's or the identity service's last error, if not yet resolved.
    pub last_error: Option<String>,
    /// The last login failed and none succeeded since (for the current credentials).
    pub identity_failing: bool,
    /// The last read of the credentials' source failed; the last good ones stay in use.
    pub credentials_unreadable: bool,
    pub auth_requests: u64,
    pub auth_failures: u64,
    pub credential_reloads: u64,
    pub credential_reload_failures: u64,
}

/// Supplies tokens to the forwarder. Implementations cache, refresh and single-flight.
pub trait TokenProvider: Send + Sync {
    /// The token to send, or `None` when no authentication is configured.
    fn token(&self) -> BoxFuture<'_, Result<Option<Token>, AuthError>>;
    /// Blueflood refused `token` (401/403): the next `token()` must not return it.
    fn invalidate(&self, token: &Token);
    /// A snapshot for status pages and metrics; cheap and non-blocking.
    fn status(&self) -> AuthStatus;
}

/// No authentication: the original's behaviour when `--user` is empty.
#[derive(Debug, Default)]
pub struct NoAuth;

impl TokenProvider for NoAuth {
    fn token(&self) -> BoxFuture<'_, Result<Option<Token>, AuthError>> {
        Box::pin(async { Ok(None) })
    }

    fn invalidate(&self, _token: &Token) {}

    fn status(&self) -> AuthStatus {
        AuthStatus {
            enabled: false,
            method: "none",
            credential_source: String::new(),
            credentials_loaded: true,
            ..AuthStatus::default()
        }
    }
}

/// Time limits of the identity client.
#[derive(Debug, Clone, Copy)]
pub struct AuthTiming {
    pub connect_timeout: Duration,
    /// Bounds every auth call, answer included.
    pub request_timeout: Duration,
    /// After a failed login the provider makes no request for this long, doubling per
    /// consecutive failure up to `backoff_max`; new credentials end the wait at once.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl AuthTiming {
    /// The same limits as requests to Blueflood: one set of knobs for operators.
    pub fn from_forward(forward: &ForwardSettings) -> Self {
        Self {
            connect_timeout: forward.connect_timeout,
            request_timeout: forward.request_timeout,
            backoff_initial: forward.retry_initial,
            backoff_max: forward.retry_max,
        }
    }
}

/// Builds the provider for `settings` (`None`: no authentication) and starts whatever keeps
/// its credentials current (a file watcher or a Kubernetes watch). Those tasks end when the
/// provider is dropped. Must run inside a Tokio runtime.
pub async fn provider(
    settings: Option<&AuthSettings>,
    timing: AuthTiming,
) -> Result<Arc<dyn TokenProvider>, AuthError> {
    let Some(settings) = settings else {
        return Ok(Arc::new(NoAuth));
    };
    warn_about_command_line(settings);
    if let Some(secret) = &settings.kube_secret {
        let client = kube_secret::client_from_environment().await?;
        return kube_secret::provider(settings, secret, timing, client);
    }
    let (store, tasks) = credentials::from_settings(settings);
    Ok(Arc::new(Keystone::new(settings, timing, store, tasks)?))
}

fn warn_about_command_line(settings: &AuthSettings) {
    if settings.key_source == SecretSource::CommandLine {
        tracing::warn!(
            "the API key was given on the command line, where other processes can read it; prefer --key-file"
        );
    }
}
