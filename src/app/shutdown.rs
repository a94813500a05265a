//! The shutdown sequence, run by one supervisor task from the start: it waits for the shutdown
//! signal, waits out `shutdown_delay` (listening and delivering as before, only readiness says
//! no; a second signal ends it), then stops the listeners, lets connections drain, flushes,
//! and at the deadline (`shutdown_timeout`, counted from the end of the delay) — or at once,
//! when the shutdown is cut short (a second signal) — aborts delivery and keeps or counts
//! whatever is not yet stored (`SpillPolicy::keep_at_deadline`: spooled, else counted
//! `shutdown_timeout`). It returns the final counters.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounting::{DropReason, Ledger, LedgerSnapshot};
use crate::forward::DeliveryContext;
use crate::health::Health;

/// Cuts a shutdown short: the deadline is now. `why` (the signal's name) is set first, for the
/// last log line.
#[derive(Clone, Default)]
pub(super) struct Cut {
    now: CancellationToken,
    why: Arc<OnceLock<&'static str>>,
}

impl Cut {
    pub(super) fn fire(&self, why: &'static str) {
        let _ = self.why.set(why);
        self.now.cancel();
    }

    fn why(&self) -> &'static str {
        self.why.get().copied().unwrap_or("cut short")
    }
}

pub(super) struct Supervised {
    /// The first signal: the delay (if any) starts.
    pub stop: CancellationToken,
    pub delay: Duration,
    /// Ends the delay early (a second signal during it).
    pub end_delay: CancellationToken,
    pub health: Arc<Health>,
    /// The drain starts: listeners stop accepting, the spool drainer stops reading.
    pub shutdown: CancellationToken,
    pub timeout: Duration,
    pub cut: Cut,
    pub listeners: TaskTracker,
    pub inputs_done: CancellationToken,
    /// The deadline, as delivery and connections see it.
    pub abort: CancellationToken,
    pub flusher: JoinHandle<()>,
    pub drainer: Option<JoinHandle<()>>,
    pub ledger: Arc<Ledger>,
    pub delivery: Arc<DeliveryContext>,
    pub admin_stop: CancellationToken,
}

/// `Some` with `f`'s output, or `None` when the deadline passes or the shutdown is cut first.
async fn before<F: Future>(deadline: Instant, cut: &Cut, f: F) -> Option<F::Output> {
    tokio::select! {
        r = f => Some(r),
        () = tokio::time::sleep_until(deadline) => None,
        () = cut.now.cancelled() => None,
    }
}

pub(super) async fn supervise(s: Supervised) -> LedgerSnapshot {
    let Supervised {
        stop,
        delay,
        end_delay,
        health,
        shutdown,
        timeout,
        cut,
        listeners,
        inputs_done,
        abort,
        mut flusher,
        drainer,
        ledger,
        delivery,
        admin_stop,
    } = s;
    stop.cancelled().await;
    if !delay.is_zero() && !shutdown.is_cancelled() {
        tracing::info!(
            delay_s = delay.as_secs_f64(),
            "shutting down after shutdown_delay: not ready, still listening and delivering"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {
                tracing::info!("shutdown_delay over");
            }
            () = end_delay.cancelled() => {}
        }
    }
    health.set_draining();
    shutdown.cancel();
    // From the end of the delay: the drain's budget is the same with or without one (the
    // chart's grace period adds both).
    let deadline = Instant::now() + timeout;
    tracing::info!(
        timeout_s = timeout.as_secs_f64(),
        "shutting down: draining connections, then flushing"
    );
    // Listeners and connections drain on their own bounded timers; the deadline still rules.
    let drained = before(deadline, &cut, listeners.wait()).await.is_some();
    inputs_done.cancel();
    let flushed = drained && before(deadline, &cut, &mut flusher).await.is_some();
    if !flushed {
        // Connections stop reading, deliveries stop retrying; closing the buffer releases
        // connections blocked on it, and what they still push is counted.
        abort.cancel();
        delivery.spill.keep_buffer_at_deadline().await;
        listeners.wait().await;
        let _ = flusher.await;
    }
    delivery.spill.keep_buffer_at_deadline().await;
    // Live data is settled; a spooled record still being retried stays on disk.
    abort.cancel();
    if let Some(drainer) = drainer {
        let _ = drainer.await;
    }
    if let Some(spool) = delivery.spill.spool() {
        spool.close().await;
    }
    let s = ledger.snapshot();
    let lost = s.dropped(DropReason::ShutdownTimeout);
    if !flushed && cut.now.is_cancelled() {
        tracing::error!(
            signal = cut.why(),
            lost,
            "second signal: stopped without finishing the drain"
        );
    } else if lost > 0 {
        tracing::error!(lost, "shutdown deadline passed with undelivered datapoints");
    }
    tracing::info!(
        received = s.received(),
        delivered = s.delivered,
        dropped = s.dropped_total(),
        "stopped"
    );
    admin_stop.cancel();
    s
}
