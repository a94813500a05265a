//! The in-memory buffer: its size and what happens when it is full.

use super::super::Group::Buffer;
use super::{KeySpec, value};
use crate::config::schema::ValueType::*;
use crate::config::validate::MIN_BUFFER_BYTES;

pub(super) const BUFFER_BYTES: KeySpec = value(
    "buffer_bytes",
    None,
    Some("268435456"),
    "BYTES",
    Bytes {
        min: MIN_BUFFER_BYTES,
        max: None,
    },
    Buffer,
    "Memory for points not yet delivered (suffixes KiB, MiB, GiB, KB, MB, GB accepted)",
);

pub(super) const BUFFER_POLICY: KeySpec = value(
    "buffer_policy",
    None,
    Some("drop_newest"),
    "POLICY",
    Choice(&["drop_newest", "block"]),
    Buffer,
    "When the buffer is full: drop_newest (count and refuse) or block (stop reading sockets)",
);
