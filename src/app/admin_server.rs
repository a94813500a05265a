//! Starts the admin server: binds its address (first of all sockets, so probes answer
//! "starting" while the rest binds and the spool is recovered), builds the state its handlers
//! read and the metrics registry over the same parts, and spawns it until its stop token.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::StartError;
use crate::accounting::Ledger;
use crate::admin::{self, AdminBindError, AdminState};
use crate::auth::TokenProvider;
use crate::buffer::Buffer;
use crate::config::settings::AdminSettings;
use crate::config::settings::BufferPolicy;
use crate::events::LogLimits;
use crate::forward::SpillPolicy;
use crate::health::Health;
use crate::telemetry::metrics;

/// What the admin endpoints and `/metrics` read.
pub(super) struct Shared {
    pub health: Arc<Health>,
    pub ledger: Arc<Ledger>,
    pub buffer: Arc<Buffer>,
    pub auth: Arc<dyn TokenProvider>,
    pub spill: Arc<SpillPolicy>,
    pub logs: Arc<LogLimits>,
}

/// Binds and spawns the admin server; returns its address and the token that stops it.
pub(super) async fn start(
    settings: &AdminSettings,
    buffer_policy: BufferPolicy,
    s: Shared,
) -> Result<(SocketAddr, CancellationToken), StartError> {
    let listener = admin::bind(settings.addr).await?;
    let addr = listener.local_addr().map_err(|error| AdminBindError {
        addr: settings.addr,
        error,
    })?;
    let registry = metrics::registry(
        s.ledger.clone(),
        s.buffer.clone(),
        s.auth.clone(),
        s.spill.clone(),
        s.health.clone(),
    );
    let state = Arc::new(AdminState {
        health: s.health,
        ledger: s.ledger,
        buffer: s.buffer,
        auth: s.auth,
        registry,
        buffer_policy,
        spill: s.spill,
        token: settings.token.clone(),
        logs: s.logs,
        max_connections: settings.max_connections,
        header_timeout: settings.header_timeout,
    });
    let stop = CancellationToken::new();
    tokio::spawn(admin::serve(listener, state, stop.clone()));
    tracing::info!(%addr, "admin server listening");
    Ok((addr, stop))
}
