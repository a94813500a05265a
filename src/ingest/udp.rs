//! The UDP line listener: each datagram holds one or more lines; a line never spans datagrams.
//! UDP cannot push back on a sender, so under either buffer policy a full buffer drops the
//! newest points (counted as `buffer_full`). At shutdown it reads what is already queued in
//! the socket, then stops.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::IngestContext;
use crate::accounting::BadInput;
use crate::config::settings::Protocol;
use crate::events::{BadInputReceived, InternalEvent};
use crate::protocol::line;

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;

pub async fn serve(socket: UdpSocket, ctx: Arc<IngestContext>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut points = Vec::new();
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            () = shutdown.cancelled() => break,
        };
        match received {
            Ok((n, peer)) => datagram(&ctx, peer, &buf[..n], &mut points),
            Err(e) => tracing::debug!(error = %e, "udp receive failed"),
        }
    }
    // Drain what the kernel already holds.
    while let Ok((n, peer)) = socket.try_recv_from(&mut buf) {
        datagram(&ctx, peer, &buf[..n], &mut points);
    }
}

fn datagram(
    ctx: &IngestContext,
    peer: SocketAddr,
    data: &[u8],
    points: &mut Vec<crate::model::Datapoint>,
) {
    let max_name = ctx.settings.max_name_bytes;
    let max_line = ctx.settings.max_line_bytes;
    let mut decoded = Vec::new();
    for l in line::split_lines(data).filter(|l| !line::is_blank(l)) {
        if l.len() > max_line {
            BadInputReceived {
                peer,
                protocol: Protocol::LineUdp,
                what: BadInput::LineTooLong,
                detail: "line longer than max_line_bytes",
            }
            .emit(&ctx.ledger, &ctx.logs);
        } else {
            decoded.push(line::parse_line(l, max_name));
        }
    }
    ctx.accept(peer, Protocol::LineUdp, decoded, points);
    if !points.is_empty() {
        let outcome = ctx.buffer.try_push(std::mem::take(points));
        ctx.report_push(peer, Protocol::LineUdp, outcome);
    }
}
