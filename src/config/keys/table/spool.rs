//! The disk spool: where, how much, what happens when it is full, fsync, when batches go to it
//! and how fast they come back.

use super::super::Group::Spool;
use super::{KeySpec, value};
use crate::config::schema::ValueType::*;
use crate::config::validate::MIN_SPOOL_BYTES;

pub(super) const SPOOL_DIR: KeySpec = value(
    "spool_dir",
    None,
    None,
    "DIR",
    Text,
    Spool,
    "Directory for the disk spool: points that cannot be delivered soon are kept there across restarts [default: off]",
);

pub(super) const SPOOL_BYTES: KeySpec = value(
    "spool_bytes",
    None,
    Some("1073741824"),
    "BYTES",
    Bytes {
        min: MIN_SPOOL_BYTES,
        max: None,
    },
    Spool,
    "Disk the spool may use (suffixes KiB, MiB, GiB, KB, MB, GB accepted)",
);

pub(super) const SPOOL_FULL_POLICY: KeySpec = value(
    "spool_full_policy",
    None,
    Some("drop_oldest"),
    "POLICY",
    Choice(&["drop_oldest", "block"]),
    Spool,
    "When the spool is full: drop_oldest (delete the oldest segment, counted) or block (keep points in memory; the buffer policy applies)",
);

pub(super) const SPOOL_FSYNC: KeySpec = value(
    "spool_fsync",
    None,
    Some("1000"),
    "MS|batch",
    IntegerOr {
        min: 1,
        max: 3_600_000,
        word: "batch",
    },
    Spool,
    "fsync the spool every MS milliseconds, or after every batch written (batch)",
);

pub(super) const SPOOL_THRESHOLD: KeySpec = value(
    "spool_threshold",
    None,
    Some("0.5"),
    "FRACTION",
    Fraction { above: "0" },
    Spool,
    "Buffer fill (0..1) above which new batches go to the spool instead of waiting in memory",
);

pub(super) const SPOOL_DRAIN_RATE: KeySpec = value(
    "spool_drain_rate",
    None,
    Some("50000"),
    "POINTS/S",
    Integer { min: 1, max: None },
    Spool,
    "Most datapoints per second sent from the spool after an outage (live data goes first)",
);
