//! The one backoff of the crate: exponential, capped, optionally jittered, validated when it is
//! built (after linkerd's `linkerd-exp-backoff`), and the cap on a server's `Retry-After`.
//! Delivery to Blueflood (`forward::deliver`) and the Keystone client (`auth::keystone`) both
//! wait by it. A leaf: imports nothing of the crate.
//!
//! Step `n` (from 0) is `min · 2ⁿ`, never more than `max`. `jitter` is the fraction of each
//! step that is random: `step · (1 − jitter)` is always waited, plus a uniformly drawn whole
//! number of milliseconds from 0 to `step · jitter` (at least 0..=1 ms, so that even tiny
//! steps spread). With a jitter of 0 the steps are exact; 0.5 is "equal jitter".

use std::time::Duration;

use rand::Rng;

/// Why a backoff cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid backoff: {0}")]
pub struct InvalidBackoff(&'static str);

/// How long to wait after each of a run of failures. Cheap to copy; holds no state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExponentialBackoff {
    min: Duration,
    max: Duration,
    jitter: f64,
}

impl ExponentialBackoff {
    /// `min` is the first step, `max` the longest, `jitter` the random fraction of a step.
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Result<Self, InvalidBackoff> {
        if min > max {
            return Err(InvalidBackoff("maximum must not be less than minimum"));
        }
        if max.is_zero() {
            return Err(InvalidBackoff("maximum must be non-zero"));
        }
        if !jitter.is_finite() {
            return Err(InvalidBackoff("jitter must be finite"));
        }
        if jitter < 0.0 {
            return Err(InvalidBackoff("jitter must not be negative"));
        }
        if jitter > 1.0 {
            return Err(InvalidBackoff("jitter must not be greater than 1"));
        }
        Ok(Self { min, max, jitter })
    }

    pub fn min(&self) -> Duration {
        self.min
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// A fresh run of failures, starting at `min`.
    pub fn start(&self) -> Backoff {
        Backoff {
            policy: *self,
            attempt: 0,
        }
    }

    /// Step `attempt` before jitter: `min · 2^attempt`, at most `max`, computed without
    /// overflow however many failures came before.
    pub fn step(&self, attempt: u32) -> Duration {
        let max = self.max.as_nanos();
        let nanos = if attempt >= u128::BITS {
            max
        } else {
            self.min
                .as_nanos()
                .saturating_mul(1u128 << attempt)
                .min(max)
        };
        from_nanos(nanos)
    }

    /// The wait after failure `attempt` (from 0), jittered.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.jittered(self.step(attempt), &mut rand::rng())
    }

    /// `step` with its random part drawn from `rng`.
    fn jittered(&self, step: Duration, rng: &mut impl Rng) -> Duration {
        if self.jitter == 0.0 {
            return step;
        }
        // Nanoseconds, floored, so that a jitter of 0.5 halves exactly like `Duration / 2`.
        let n = step.as_nanos() as f64;
        let fixed = from_nanos((n * (1.0 - self.jitter)) as u128);
        let spread = from_nanos((n * self.jitter) as u128);
        let spread_ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX).max(1);
        fixed.saturating_add(Duration::from_millis(rng.random_range(0..=spread_ms)))
    }

    /// The wait after failure `attempt` when the server asked for `retry_after` (cut to
    /// `cap`): never shorter than the backoff, never longer than what the server asked.
    pub fn delay_honouring(&self, attempt: u32, retry_after: Option<RetryAfter>) -> Duration {
        let delay = self.delay(attempt);
        retry_after.map_or(delay, |r| r.wait.max(delay))
    }
}

/// A failure-by-failure walk through an [`ExponentialBackoff`]: each [`next_delay`] doubles
/// the step until the cap; [`reset`] starts again after a success.
///
/// [`next_delay`]: Backoff::next_delay
/// [`reset`]: Backoff::reset
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    policy: ExponentialBackoff,
    attempt: u32,
}

impl Backoff {
    /// The wait after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.policy.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Failures counted so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The next failure waits `min` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A server's `Retry-After` as it will be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// What the server asked for.
    pub asked: Duration,
    /// What will be waited: `asked`, at most the cap.
    pub wait: Duration,
}

impl RetryAfter {
    /// `asked`, cut to `cap`: a server can ask for `u32::MAX` seconds or the year 9999, and
    /// what it holds back would never be sent again.
    pub fn capped(asked: Duration, cap: Duration) -> Self {
        Self {
            asked,
            wait: asked.min(cap),
        }
    }

    /// The server asked for longer than the cap.
    pub fn was_cut(&self) -> bool {
        self.wait < self.asked
    }
}

/// `nanos` as a `Duration`, saturating at `Duration::MAX`.
fn from_nanos(nanos: u128) -> Duration {
    const PER_SEC: u128 = 1_000_000_000;
    match u64::try_from(nanos / PER_SEC) {
        // The remainder is below 10⁹, so it fits a u32.
        Ok(secs) => Duration::new(secs, (nanos % PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

#[cfg(test)]
mod tests;
