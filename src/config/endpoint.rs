//! Twisted-style server endpoint strings (`tcp:2004`, `tcp:port=2004`,
//! `tcp:2004:interface=127.0.0.1`, `udp:2003:interface=::1`) as the original accepted them.
//! Twisted wants the colons of an IPv6 interface escaped (`interface=\:\:1`); people rarely
//! do, so an unescaped address is accepted too when `interface=` comes last or is followed only
//! by other `name=value` parameters.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub transport: Transport,
    pub port: u16,
    pub interface: Option<IpAddr>,
}

/// What an endpoint of `transport` may look like, for error messages.
pub(crate) fn expected(transport: Transport) -> String {
    let t = transport.name();
    format!(
        "an endpoint like {t}:PORT, {t}:port=PORT or {t}:PORT:interface=IP with PORT in 0..=65535"
    )
}

/// Parses `text`, requiring `transport`. The error is the reason, without the value.
pub(crate) fn parse(text: &str, transport: Transport) -> Result<Endpoint, String> {
    let parts = split_unescaped(text.trim());
    let (scheme, params) = parts.split_first().ok_or("empty endpoint")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != transport.name() {
        return Err(if scheme == "tcp" || scheme == "udp" {
            format!("this listener must be {}, not {scheme}", transport.name())
        } else {
            format!(
                "unsupported endpoint type {scheme:?} (only {} here)",
                transport.name()
            )
        });
    }
    let mut port: Option<u16> = None;
    let mut interface: Option<IpAddr> = None;
    let mut i = 0;
    while i < params.len() {
        let param = &params[i];
        i += 1;
        match param.split_once('=') {
            None => {
                if port.is_some() {
                    return Err(format!("unexpected {param:?} after the port"));
                }
                port = Some(parse_port(param)?);
            }
            Some((name, value)) => match name.trim().to_ascii_lowercase().as_str() {
                "port" => {
                    if port.is_some() {
                        return Err("the port is given twice".to_owned());
                    }
                    port = Some(parse_port(value)?);
                }
                "interface" => {
                    let mut address = value.to_owned();
                    while let Some(next) = params.get(i).filter(|p| !p.contains('=')) {
                        address.push(':');
                        address.push_str(next);
                        i += 1;
                    }
                    let bare = address
                        .strip_prefix('[')
                        .and_then(|a| a.strip_suffix(']'))
                        .unwrap_or(&address);
                    interface = Some(
                        bare.parse()
                            .map_err(|_| format!("interface {address:?} is not an IP address"))?,
                    );
                }
                other => {
                    return Err(format!(
                        "unsupported endpoint parameter {other:?} (supported: port, interface)"
                    ));
                }
            },
        }
    }
    let port = port.ok_or("no port")?;
    Ok(Endpoint {
        transport,
        port,
        interface,
    })
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("port {text:?} is not a number in 0..=65535"))
}

/// Splits on `:` that is not escaped with a backslash, removing the escapes, as Twisted does.
fn split_unescaped(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let current = parts.last_mut();
        match (c, current) {
            ('\\', Some(cur)) => {
                if let Some(escaped) = chars.next() {
                    cur.push(escaped);
                }
            }
            (':', _) => parts.push(String::new()),
            (c, Some(cur)) => cur.push(c),
            (_, None) => {}
        }
    }
    parts
}

#[cfg(test)]
mod tests;
