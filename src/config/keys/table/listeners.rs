//! The listeners beyond the original's `--endpoint`: plaintext lines over TCP and UDP.

use super::super::Group::Listeners;
use super::{KeySpec, value};
use crate::config::schema::ValueType::*;

pub(super) const LINE_ENDPOINT: KeySpec = value(
    "line_endpoint",
    None,
    None,
    "ENDPOINT",
    Endpoint("tcp"),
    Listeners,
    "Also listen for plaintext lines over TCP (tcp:PORT[:interface=ADDR]) [default: off]",
);

pub(super) const UDP_ENDPOINT: KeySpec = value(
    "udp_endpoint",
    None,
    None,
    "ENDPOINT",
    Endpoint("udp"),
    Listeners,
    "Also listen for plaintext lines over UDP (udp:PORT[:interface=ADDR]) [default: off]",
);
