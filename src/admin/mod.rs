//! The admin HTTP server (an axum router), on its own port and never on a carbon port:
//! `/livez`, `/readyz`, `/status` (buffer depth and the whole ledger, as JSON), `/buffer`
//! (every point pending and the delivery lag, `pending.rs`) and `/metrics` (Prometheus:
//! OpenMetrics or the classic text format, as `Accept` asks, see `negotiate.rs`).
//! `/status`, `/buffer` and `/metrics` can require a bearer token; the probes never do, so
//! that the kubelet needs no secret. Its connections — how many, and how long each may take —
//! are `serve.rs`'s.

mod negotiate;
mod pending;
mod serve;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accounting::Ledger;
use crate::auth::TokenProvider;
use crate::buffer::Buffer;
use crate::config::settings::{AdminSettings, BufferPolicy};
use crate::events::LogLimits;
use crate::health::Health;

pub use serve::MAX_CONNECTION_AGE;
pub use status::Status;

/// What the endpoints read.
pub struct AdminState {
    pub health: Arc<Health>,
    pub ledger: Arc<Ledger>,
    pub buffer: Arc<Buffer>,
    pub auth: Arc<dyn TokenProvider>,
    pub registry: Registry,
    pub buffer_policy: BufferPolicy,
    /// The disk spool, when configured.
    pub spill: std::sync::Arc<crate::forward::SpillPolicy>,
    pub token: Option<SecretString>,
    pub logs: Arc<LogLimits>,
    /// `admin_max_connections`, `admin_header_timeout`.
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Why the admin server could not bind; self-contained like [`crate::ingest::bind::BindError`].
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on the admin address {addr}, {}: {error}{}",
    crate::config::describe_key(AdminSettings::ADDR_KEY),
    crate::ingest::bind::hint(.error)
)]
pub struct AdminBindError {
    pub addr: SocketAddr,
    pub error: std::io::Error,
}

/// Binds the admin address (before anything else, so probes are answered while starting).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, AdminBindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| AdminBindError { addr, error })
}

pub fn router(state: Arc<AdminState>) -> Router {
    let protected = Router::new()
        .route("/status", get(status_handler))
        .route("/buffer", get(buffer_handler))
        .route("/metrics", get(metrics_handler))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .merge(protected)
        .with_state(state)
}

/// Serves until `stop` fires (after the forwarder has finished, so `/readyz` keeps answering
/// 503 while draining).
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    let app = router(state.clone());
    serve::serve(listener, app, state, stop).await;
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn livez(State(s): State<Arc<AdminState>>) -> Response {
    match s.health.liveness() {
        Ok(()) => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        Err(reason) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "stuck", "reason": reason}),
        ),
    }
}

async fn readyz(State(s): State<Arc<AdminState>>) -> Response {
    let creds = s.auth.status().credentials_loaded;
    match s.health.readiness(s.buffer.fill(), creds) {
        Ok(()) => json(StatusCode::OK, serde_json::json!({"status": "ready"})),
        Err(not) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not ready", "reason": not.reason()}),
        ),
    }
}

async fn status_handler(State(s): State<Arc<AdminState>>) -> Response {
    let status = Status::gather(&s);
    match serde_json::to_value(&status) {
        Ok(v) => json(StatusCode::OK, v),
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"error": e.to_string()}),
        ),
    }
}

async fn buffer_handler(State(s): State<Arc<AdminState>>) -> Response {
    let doc = pending::PendingDoc::gather(&s, &s.ledger.snapshot());
    match serde_json::to_value(&doc) {
        Ok(v) => json(StatusCode::OK, v),
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"error": e.to_string()}),
        ),
    }
}

async fn metrics_handler(State(s): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let format = negotiate::format_for(accept);
    match crate::telemetry::metrics::encode(&s.registry, format) {
        Ok(text) => {
            let mut resp = (StatusCode::OK, text).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            // The answer depends on Accept: a cache between scraper and forwarder must not
            // hand one client's format to another.
            h.insert(header::VARY, HeaderValue::from_static("Accept"));
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode /metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn require_token(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &s.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Constant-time enough for a scrape token: compare full lengths and bytes without
        // early exit.
        let ok = given.is_some_and(|g| {
            let (a, b) = (g.as_bytes(), expected.expose_secret().as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        });
        if !ok {
            let mut resp = StatusCode::UNAUTHORIZED.into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
    }
    next.run(req).await
}
