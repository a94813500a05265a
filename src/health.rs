//! Liveness and readiness state, shared by the components that make progress and the admin
//! endpoints that report it.
//!
//! Liveness asks "is this process still working?", never "is Blueflood up?": a restart would
//! not fix Blueflood and would lose the buffer. So it checks that the runtime schedules tasks
//! (a watchdog tick) and that the flush loop turns (it beats even while it waits for a delivery
//! slot, which is progress by design when Blueflood is slow).
//!
//! Readiness is a latch: `starting` until everything is bound, then `ready`, then — from SIGTERM
//! on, never back — `delaying` while `shutdown_delay` runs (still listening: only readiness
//! says no, so that the Service stops sending new traffic while a sender that is stopping at
//! the same time can still flush into it), then `draining`. While ready, the buffer's fill above the high-water mark makes
//! it unready until the fill falls below the low-water mark (high − 0.1): hysteresis, so a
//! buffer hovering at the mark does not flap the endpoint.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A heartbeat older than this means the beating loop is stuck.
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// How often the watchdog and the idle flush loop beat.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// The last time a loop showed progress.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Heartbeat {
    pub fn new(origin: Instant) -> Self {
        Self {
            origin,
            last_ms: AtomicU64::new(0),
        }
    }

    pub fn beat(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    pub fn age(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

// The phases as stored, in the only order they go.
const STARTING: u8 = 0;
const READY: u8 = 1;
const DELAYING: u8 = 2;
const DRAINING: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting,
    Ready,
    /// SIGTERM seen, `shutdown_delay` running: listening and delivering, but not ready.
    Delaying,
    Draining,
}

/// Why `/readyz` says no, or `None` when it says yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    Starting,
    Delaying,
    Draining,
    HighWater { fill_percent: u32 },
    CredentialsMissing,
}

impl NotReady {
    pub fn reason(&self) -> String {
        match self {
            NotReady::Starting => "starting".into(),
            NotReady::Delaying => {
                "delaying: shutting down, still accepting data until shutdown_delay ends".into()
            }
            NotReady::Draining => "draining: shutting down".into(),
            NotReady::HighWater { fill_percent } => {
                format!("buffer {fill_percent}% full, above the high-water mark")
            }
            NotReady::CredentialsMissing => "credentials not loaded".into(),
        }
    }
}

#[derive(Debug)]
pub struct Health {
    pub started: Instant,
    phase: AtomicU8,
    over_high_water: AtomicBool,
    high_water: f64,
    pub watchdog: Heartbeat,
    pub flusher: Heartbeat,
}

impl Health {
    pub fn new(high_water: f64) -> Self {
        let started = Instant::now();
        let h = Self {
            started,
            phase: AtomicU8::new(0),
            over_high_water: AtomicBool::new(false),
            high_water,
            watchdog: Heartbeat::new(started),
            flusher: Heartbeat::new(started),
        };
        h.watchdog.beat();
        h.flusher.beat();
        h
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            STARTING => Phase::Starting,
            READY => Phase::Ready,
            DELAYING => Phase::Delaying,
            _ => Phase::Draining,
        }
    }

    /// Starting → ready. Never undoes delaying or draining.
    pub fn set_ready(&self) {
        let _ = self
            .phase
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// → delaying, unless already draining (a phase never goes back).
    pub fn set_delaying(&self) {
        let _ = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                (p < DELAYING).then_some(DELAYING)
            });
    }

    pub fn set_draining(&self) {
        self.phase.store(DRAINING, Ordering::Release);
    }

    /// Readiness given the buffer's fill (0..=1) and whether credentials are loaded.
    pub fn readiness(&self, fill: f64, credentials_loaded: bool) -> Result<(), NotReady> {
        match self.phase() {
            Phase::Starting => return Err(NotReady::Starting),
            Phase::Delaying => return Err(NotReady::Delaying),
            Phase::Draining => return Err(NotReady::Draining),
            Phase::Ready => {}
        }
        if !credentials_loaded {
            return Err(NotReady::CredentialsMissing);
        }
        let over = if self.over_high_water.load(Ordering::Relaxed) {
            fill >= self.high_water - 0.1
        } else {
            fill >= self.high_water
        };
        self.over_high_water.store(over, Ordering::Relaxed);
        if over {
            return Err(NotReady::HighWater {
                fill_percent: (fill * 100.0).round() as u32,
            });
        }
        Ok(())
    }

    /// `Err(reason)` when a loop has not beaten for [`STALE_AFTER`].
    pub fn liveness(&self) -> Result<(), String> {
        for (name, hb) in [
            ("runtime watchdog", &self.watchdog),
            ("flush loop", &self.flusher),
        ] {
            let age = hb.age();
            if age > STALE_AFTER {
                return Err(format!(
                    "{name} has not made progress for {:.1} s",
                    age.as_secs_f64()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_is_a_latch_with_hysteresis() {
        let h = Health::new(0.9);
        assert_eq!(h.readiness(0.0, true), Err(NotReady::Starting));
        h.set_ready();
        assert_eq!(h.readiness(0.5, true), Ok(()));
        assert_eq!(h.readiness(0.5, false), Err(NotReady::CredentialsMissing));
        assert!(matches!(
            h.readiness(0.95, true),
            Err(NotReady::HighWater { fill_percent: 95 })
        ));
        // Still unready just below the high mark, until below the low mark.
        assert!(h.readiness(0.85, true).is_err());
        assert_eq!(h.readiness(0.79, true), Ok(()));
        assert_eq!(h.readiness(0.85, true), Ok(()));
        h.set_delaying();
        h.set_ready();
        assert_eq!(h.phase(), Phase::Delaying);
        assert_eq!(h.readiness(0.0, true), Err(NotReady::Delaying));
        h.set_draining();
        h.set_delaying();
        h.set_ready();
        assert_eq!(h.phase(), Phase::Draining);
        assert_eq!(h.readiness(0.0, true), Err(NotReady::Draining));
    }

    #[test]
    fn liveness_fails_only_when_a_loop_is_stale() {
        let h = Health::new(0.9);
        assert_eq!(h.liveness(), Ok(()));
        let old = Health {
            started: h.started,
            phase: AtomicU8::new(READY),
            over_high_water: AtomicBool::new(false),
            high_water: 0.9,
            watchdog: Heartbeat::new(Instant::now() - Duration::from_secs(60)),
            flusher: Heartbeat::new(Instant::now()),
        };
        assert!(old.liveness().expect_err("stale").contains("watchdog"));
    }
}
