//! Binds listening sockets for an endpoint: on a named interface, or on every address, IPv6
//! and IPv4 at once (one dual-stack socket), falling back to IPv4 alone where the host has no
//! IPv6 (some Kubernetes clusters disable it).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

use crate::config::settings::ListenerSpec;

/// Why a listener could not bind. One self-contained message (the OS error included, not also
/// exposed as a `source`, so that a chain printer does not repeat it).
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {transport} {addr}, {}: {error}{}",
    crate::config::describe_key(.key),
    hint(.error)
)]
pub struct BindError {
    /// The configuration key of the listener.
    pub key: &'static str,
    pub transport: &'static str,
    pub addr: SocketAddr,
    pub error: io::Error,
}

/// What to do about the commonest failure.
pub fn hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::AddrInUse => {
            "; another process listens there: stop it or choose another port"
        }
        io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need privileges: choose a higher port"
        }
        _ => "",
    }
}

fn candidates(spec: &ListenerSpec) -> Vec<SocketAddr> {
    match spec.interface {
        Some(ip) => vec![SocketAddr::new(ip, spec.port)],
        None => vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), spec.port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), spec.port),
        ],
    }
}

fn socket(addr: SocketAddr, ty: Type, proto: SockProtocol, dual: bool) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() && dual {
        s.set_only_v6(false)?;
    }
    if ty == Type::STREAM {
        // Restarting next to a carbon-relay must not wait out TIME_WAIT.
        s.set_reuse_address(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

fn first_ok<T>(
    spec: &ListenerSpec,
    transport: &'static str,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> Result<T, BindError> {
    let mut last = None;
    for addr in candidates(spec) {
        match f(addr) {
            Ok(t) => return Ok(t),
            Err(error) => {
                last = Some(BindError {
                    key: spec.key,
                    transport,
                    addr,
                    error,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| BindError {
        key: spec.key,
        transport,
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), spec.port),
        error: io::Error::other("no address to bind"),
    }))
}

pub fn tcp(spec: &ListenerSpec) -> Result<TcpListener, BindError> {
    let dual = spec.interface.is_none();
    first_ok(spec, "tcp", |addr| {
        let s = socket(addr, Type::STREAM, SockProtocol::TCP, dual)?;
        s.listen(1024)?;
        TcpListener::from_std(s.into())
    })
}

pub fn udp(spec: &ListenerSpec) -> Result<UdpSocket, BindError> {
    let dual = spec.interface.is_none();
    first_ok(spec, "udp", |addr| {
        let s = socket(addr, Type::DGRAM, SockProtocol::UDP, dual)?;
        // Bursts of datagrams queue in the kernel while a push is in progress.
        let _ = s.set_recv_buffer_size(4 << 20);
        UdpSocket::from_std(s.into())
    })
}
