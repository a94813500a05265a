//! The listeners: the original's `endpoint` with its `protocol`, and the optional plaintext
//! `line_endpoint` and `udp_endpoint`, each on a port of its own.

use super::super::ConfigError;
use super::super::endpoint::{self, Transport};
use super::super::keys::Key;
use super::super::raw::Entry;
use super::super::settings::{ListenerSpec, Protocol};
use super::values::{Values, invalid};

const PICKLE_RECEIVER: &str = "MetricPickleReceiver";
const LINE_RECEIVER: &str = "MetricLineReceiver";

pub(super) fn listeners(v: &Values<'_>) -> Result<Vec<ListenerSpec>, ConfigError> {
    let protocol = v.choice(
        Key::Protocol,
        &[
            (PICKLE_RECEIVER, Protocol::Pickle),
            (LINE_RECEIVER, Protocol::LineTcp),
        ],
    )?;
    let mut listeners = Vec::new();
    let main = match v.endpoint(Key::Endpoint, Transport::Tcp)? {
        Some(main) => main,
        None => {
            let (spec, entry) = v.required(Key::Endpoint)?;
            return Err(invalid(spec, entry, endpoint::expected(Transport::Tcp)));
        }
    };
    listeners.push((Key::Endpoint, protocol, main));
    if let Some(e) = v.endpoint(Key::LineEndpoint, Transport::Tcp)? {
        listeners.push((Key::LineEndpoint, Protocol::LineTcp, e));
    }
    if let Some(e) = v.endpoint(Key::UdpEndpoint, Transport::Udp)? {
        listeners.push((Key::UdpEndpoint, Protocol::LineUdp, e));
    }
    check_distinct_ports(&listeners)?;
    Ok(listeners
        .into_iter()
        .map(|(key, protocol, (e, _))| ListenerSpec {
            key: key.name(),
            protocol,
            port: e.port,
            interface: e.interface,
        })
        .collect())
}

type Listener<'a> = (Key, Protocol, (endpoint::Endpoint, &'a Entry));

/// Two listeners on one port and transport cannot both bind (except port 0: each gets its
/// own ephemeral port).
fn check_distinct_ports(listeners: &[Listener<'_>]) -> Result<(), ConfigError> {
    let mut taken: Vec<(&str, Transport, u16)> = Vec::new();
    for (key, _, (e, _)) in listeners {
        let key = key.name();
        if e.port == 0 {
            continue;
        }
        if let Some((first, ..)) = taken
            .iter()
            .find(|(_, t, p)| *t == e.transport && *p == e.port)
        {
            return Err(ConfigError::Invalid(format!(
                "keys {first:?} and {key:?} both listen on {} port {}: \
                 expected a different port for each listener",
                e.transport.name(),
                e.port
            )));
        }
        taken.push((key, e.transport, e.port));
    }
    Ok(())
}
