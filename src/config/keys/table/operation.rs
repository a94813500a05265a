//! Running the process: shutdown, dry run, logging and the admin server.

use super::super::Group::Operation;
use super::{KeySpec, switch, value};
use crate::config::schema::ValueType::*;
use crate::config::validate;

pub(super) const SHUTDOWN_TIMEOUT: KeySpec = value(
    "shutdown_timeout",
    None,
    Some("25"),
    "SECONDS",
    Seconds,
    Operation,
    "On SIGTERM, how long to keep delivering buffered points once the listeners have stopped (after shutdown_delay)",
);

pub(super) const SHUTDOWN_DELAY: KeySpec = value(
    "shutdown_delay",
    None,
    Some("0"),
    "SECONDS",
    SecondsOrZero,
    Operation,
    "On SIGTERM, how long to keep listening and delivering (not ready) before the drain starts, so a sender stopped at the same time (carbon-relay in the pod) can flush into it; a second signal ends it",
);

pub(super) const DRY_RUN: KeySpec = switch(
    "dry_run",
    Operation,
    "Receive and batch, but write each request body to stdout (one JSON array per line) instead of sending it",
);

pub(super) const LOG_FORMAT: KeySpec = value(
    "log_format",
    None,
    Some("text"),
    "text|json",
    Choice(&["text", "json"]),
    Operation,
    "Log output format",
);

pub(super) const LOG_LEVEL: KeySpec = value(
    "log_level",
    None,
    Some("info"),
    "LEVEL",
    NonEmptyText,
    Operation,
    "trace, debug, info, warn (or warning), error (or critical), off; or directives such as info,blueflood_forward=debug (RUST_LOG overrides it)",
);

pub(super) const ADMIN_ADDR: KeySpec = value(
    "admin_addr",
    None,
    Some("0.0.0.0:8080"),
    "ADDR:PORT",
    SocketAddr,
    Operation,
    "Admin HTTP server (/livez, /readyz, /status, /metrics); 127.0.0.1:PORT keeps it local",
);

pub(super) const ADMIN_TOKEN: KeySpec = KeySpec {
    secret: true,
    cli_file_flag: true,
    ..value(
        "admin_token",
        None,
        None,
        "TOKEN",
        Text,
        Operation,
        "Bearer token required by /status and /metrics (probes stay open); prefer --admin-token-file",
    )
};

pub(super) const READY_HIGH_WATER: KeySpec = value(
    "ready_high_water",
    None,
    Some("0.9"),
    "FRACTION",
    Fraction { above: "0.1" },
    Operation,
    "Buffer fill (0..1) above which /readyz answers 503, until it falls 0.1 below",
);

pub(super) const ADMIN_MAX_CONNECTIONS: KeySpec = value(
    "admin_max_connections",
    None,
    Some("64"),
    "N",
    Integer {
        min: 1,
        max: Some(validate::ADMIN_MAX_CONNECTIONS),
    },
    Operation,
    "Concurrent admin connections; more are answered 503 and closed",
);

pub(super) const ADMIN_HEADER_TIMEOUT: KeySpec = value(
    "admin_header_timeout",
    None,
    Some("10"),
    "SECONDS",
    Seconds,
    Operation,
    "Close an admin connection that has not sent a whole request header this long after it opened or its last answer",
);
