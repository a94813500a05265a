//! The original forwarder's keys (`blueflood-carbon-forwarder`'s twistd plugin): same spelling,
//! meaning and default.

use super::super::Group::Original;
use super::{KeySpec, switch, value};
use crate::config::schema::ValueType::*;
use crate::config::validate::MAX_TTL;

pub(super) const ENDPOINT: KeySpec = value(
    "endpoint",
    Some('e'),
    Some("tcp:2004"),
    "ENDPOINT",
    Endpoint("tcp"),
    Original,
    "Twisted endpoint to listen on: tcp:PORT, tcp:port=PORT, tcp:PORT:interface=ADDR",
);

pub(super) const INTERVAL: KeySpec = value(
    "interval",
    Some('i'),
    Some("30"),
    "SECONDS",
    Seconds,
    Original,
    "Seconds a point may wait before its batch is sent",
);

pub(super) const BLUEFLOOD: KeySpec = value(
    "blueflood",
    Some('b'),
    Some("http://localhost:19000"),
    "URL",
    HttpUrl,
    Original,
    "Blueflood base URL (http or https)",
);

pub(super) const TENANT: KeySpec = value(
    "tenant",
    Some('t'),
    Some("tenant"),
    "TENANT",
    Tenant,
    Original,
    "Tenant ID, used in the ingest URL path",
);

pub(super) const METRIC_PREFIX: KeySpec = value(
    "metric_prefix",
    Some('p'),
    Some(""),
    "PREFIX",
    Text,
    Original,
    "Prepended to every metric name with a '.'; empty = none [default: empty]",
);

pub(super) const TTL: KeySpec = value(
    "ttl",
    None,
    Some("86400"),
    "SECONDS",
    Integer {
        min: 1,
        max: Some(MAX_TTL),
    },
    Original,
    "ttlInSeconds of every datapoint",
);

pub(super) const USER: KeySpec = KeySpec {
    cli_file_flag: true,
    ..value(
        "user",
        Some('u'),
        Some(""),
        "USER",
        Text,
        Original,
        "Keystone user; empty = no authentication [default: empty]",
    )
};

pub(super) const KEY: KeySpec = KeySpec {
    secret: true,
    cli_file_flag: true,
    ..value(
        "key",
        Some('k'),
        None,
        "KEY",
        Text,
        Original,
        "Keystone API key; on the command line every local user can read it (ps), prefer --key-file",
    )
};

pub(super) const AUTH_URL: KeySpec = value(
    "auth_url",
    None,
    Some("https://identity.api.rackspacecloud.com/v2.0/tokens"),
    "URL",
    HttpUrl,
    Original,
    "Keystone token URL (v2: .../v2.0/tokens, v3: .../v3/auth/tokens)",
);

pub(super) const LIMIT: KeySpec = value(
    "limit",
    None,
    Some("0"),
    "BYTES",
    Bytes { min: 0, max: None },
    Original,
    "Largest JSON body per request; 0 = Blueflood's limit (1 MiB), larger values are capped",
);

pub(super) const PROTOCOL: KeySpec = value(
    "protocol",
    None,
    Some("MetricPickleReceiver"),
    "CLASS",
    Choice(&["MetricPickleReceiver", "MetricLineReceiver"]),
    Original,
    "Protocol of --endpoint: MetricPickleReceiver (pickle) or MetricLineReceiver (plaintext lines)",
);

pub(super) const OVERWRITE_COLLECTION_TIMESTAMP: KeySpec = switch(
    "overwrite_collection_timestamp",
    Original,
    "Use the arrival time instead of the metric's timestamp",
);
