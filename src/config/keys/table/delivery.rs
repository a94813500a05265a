//! Delivery to Blueflood: concurrency, compression, timeouts and retry delays.

use super::super::Group::Delivery;
use super::{KeySpec, value};
use crate::config::schema::ValueType::*;

pub(super) const CONCURRENCY: KeySpec = value(
    "concurrency",
    None,
    Some("4"),
    "N",
    Integer {
        min: 1,
        max: Some(256),
    },
    Delivery,
    "Requests in flight to Blueflood at once (1..=256)",
);

pub(super) const COMPRESSION: KeySpec = value(
    "compression",
    None,
    Some("gzip"),
    "gzip|none",
    Choice(&["gzip", "none"]),
    Delivery,
    "Request body compression",
);

pub(super) const COMPRESSION_LEVEL: KeySpec = value(
    "compression_level",
    None,
    Some("1"),
    "0..9",
    Integer {
        min: 0,
        max: Some(9),
    },
    Delivery,
    "gzip level",
);

pub(super) const CONNECT_TIMEOUT: KeySpec = value(
    "connect_timeout",
    None,
    Some("5"),
    "SECONDS",
    Seconds,
    Delivery,
    "TCP/TLS connect timeout for Blueflood and Keystone",
);

pub(super) const REQUEST_TIMEOUT: KeySpec = value(
    "request_timeout",
    None,
    Some("30"),
    "SECONDS",
    Seconds,
    Delivery,
    "Timeout of a whole request to Blueflood or Keystone",
);

pub(super) const RETRY_INITIAL: KeySpec = value(
    "retry_initial",
    None,
    Some("0.2"),
    "SECONDS",
    Seconds,
    Delivery,
    "First retry delay; doubles per attempt, with jitter",
);

pub(super) const RETRY_MAX: KeySpec = value(
    "retry_max",
    None,
    Some("30"),
    "SECONDS",
    Seconds,
    Delivery,
    "Longest retry delay",
);

pub(super) const RETRY_AFTER_MAX: KeySpec = value(
    "retry_after_max",
    None,
    Some("120"),
    "SECONDS",
    Seconds,
    Delivery,
    "Longest wait a server's Retry-After can impose; a longer one is cut to this (and logged)",
);
