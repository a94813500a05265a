//! The Blueflood double's TCP side: the accept loop (which resets every connection while the
//! double is "down"), one hyper connection per socket (HTTP/1.1 keep-alive or h2c), and the
//! stream that closes with an RST when a fault asks for it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::{Shared, handle};

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        if *shared.down.borrow() {
            shared.lock().refused_connections += 1;
            // RST instead of FIN: the client sees "connection reset", as with a dead backend.
            let _ = stream.set_zero_linger();
            drop(stream);
            continue;
        }
        tokio::spawn(serve_connection(stream, shared.clone()));
    }
}

/// Per-connection control shared with the request handler, so a `Reset` fault can abort the
/// TCP connection that carried the request.
pub(super) struct ConnControl {
    pub(super) kill: Arc<AtomicBool>,
    pub(super) abort: Notify,
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let kill = Arc::new(AtomicBool::new(false));
    let control = Arc::new(ConnControl {
        kill: kill.clone(),
        abort: Notify::new(),
    });
    let io = TokioIo::new(KillableStream {
        inner: stream,
        kill: kill.clone(),
    });
    let svc_shared = shared.clone();
    let svc_control = control.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = svc_shared.clone();
        let control = svc_control.clone();
        async move { Ok::<_, Infallible>(handle(shared, control, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(io, service);
    let mut down_rx = shared.down.subscribe();
    tokio::select! {
        _ = conn => {}
        _ = control.abort.notified() => {}
        _ = down_rx.wait_for(|down| *down) => kill.store(true, Ordering::SeqCst),
    }
    // Dropping `conn` here drops the stream; KillableStream turns that into an RST when asked.
}

/// TcpStream that is closed with SO_LINGER 0 (RST) when `kill` is set at drop time.
struct KillableStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl Drop for KillableStream {
    fn drop(&mut self) {
        if self.kill.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
