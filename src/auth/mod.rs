//! The authentication seam between the forwarder and an identity service. The forwarder asks a
//! [`TokenProvider`] for a token before each request and tells it when Blueflood refused one;
//! how tokens are obtained (Keystone v2 here, more methods later) stays behind the trait.

mod keystone;

pub use keystone::KeystoneV2;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

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

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("identity service refused the credentials (HTTP {0})")]
    Refused(u16),
    #[error("identity service answered HTTP {0}")]
    Status(u16),
    #[error("identity service unreachable: {0}")]
    Transport(String),
    #[error("identity service answer has no token: {0}")]
    BadAnswer(String),
}

/// What `/status`, `/readyz` and `/metrics` show of authentication. Never a secret.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuthStatus {
    pub enabled: bool,
    /// `none`, `rax-kskey`, `v2-password`, `v3-password`.
    pub method: &'static str,
    /// Where the credentials come from (`command line`, `file /path`, ...).
    pub credential_source: String,
    /// False until credentials were read at least once.
    pub credentials_loaded: bool,
    pub token_age_seconds: Option<f64>,
    pub last_rotation_unix_seconds: Option<f64>,
    /// Redacted: never a secret.
    pub last_error: Option<String>,
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
    /// Cheap and non-blocking.
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
