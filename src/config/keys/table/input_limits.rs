//! Bounds on what carbon clients may send: frame, line and name sizes, connections, idle
//! time, incomplete input and the timestamp window.

use super::super::Group::InputLimits;
use super::{KeySpec, value};
use crate::config::schema::ValueType::*;
use crate::config::validate::MIN_PARTIAL_FRAME_BYTES;

pub(super) const MAX_FRAME_BYTES: KeySpec = value(
    "max_frame_bytes",
    None,
    Some("1048576"),
    "BYTES",
    Bytes {
        min: 1,
        max: Some(u32::MAX as u64),
    },
    InputLimits,
    "Largest pickle frame; a larger length header closes the connection",
);

pub(super) const MAX_LINE_BYTES: KeySpec = value(
    "max_line_bytes",
    None,
    Some("16384"),
    "BYTES",
    Bytes { min: 1, max: None },
    InputLimits,
    "Longest plaintext line",
);

pub(super) const MAX_NAME_BYTES: KeySpec = value(
    "max_name_bytes",
    None,
    Some("4096"),
    "BYTES",
    Bytes { min: 1, max: None },
    InputLimits,
    "Longest metric name (before the prefix)",
);

pub(super) const MAX_CONNECTIONS: KeySpec = value(
    "max_connections",
    None,
    Some("1024"),
    "N",
    Integer { min: 1, max: None },
    InputLimits,
    "Concurrent TCP connections over all listeners",
);

pub(super) const IDLE_TIMEOUT: KeySpec = value(
    "idle_timeout",
    None,
    Some("300"),
    "SECONDS",
    Seconds,
    InputLimits,
    "Close a connection that sends nothing for this long",
);

pub(super) const PARTIAL_FRAME_BYTES: KeySpec = value(
    "partial_frame_bytes",
    None,
    Some("67108864"),
    "BYTES",
    Bytes {
        min: MIN_PARTIAL_FRAME_BYTES,
        max: None,
    },
    InputLimits,
    "Memory for incomplete frames and lines over all connections; above it the connections holding the most are closed (at least max_frame_bytes + 4 and max_line_bytes)",
);

pub(super) const MAX_PAST: KeySpec = value(
    "max_past",
    None,
    Some("259200"),
    "SECONDS",
    Seconds,
    InputLimits,
    "Drop points older than this",
);

pub(super) const MAX_FUTURE: KeySpec = value(
    "max_future",
    None,
    Some("600"),
    "SECONDS",
    Seconds,
    InputLimits,
    "Drop points further ahead than this",
);
