//! The datapoint as it travels from ingest to delivery, after normalisation (prefix applied,
//! timestamp in integer milliseconds, value known to be finite).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock now in epoch milliseconds (Blueflood's unit); 0 if the clock is before 1970.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Wall-clock now in epoch seconds, for timestamps shown in `/status`.
pub fn now_secs_f64() -> f64 {
    now_ms() as f64 / 1000.0
}

/// The timestamps Blueflood accepts, around now: `max_past` back, `max_future` ahead. Points
/// outside it are refused at ingest, and points that aged out of it on disk are not replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    past_ms: i64,
    future_ms: i64,
}

impl Window {
    pub fn new(max_past: Duration, max_future: Duration) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            past_ms: ms(max_past),
            future_ms: ms(max_future),
        }
    }

    /// The oldest timestamp still inside the window at `now_ms`.
    pub fn oldest_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.past_ms)
    }

    /// Whether `ms` (still a float, as decoded) is inside the window at `now_ms`. Compared as
    /// f64: a huge timestamp must not saturate into the window.
    #[inline]
    pub fn contains(&self, ms: f64, now_ms: i64) -> bool {
        ms >= self.oldest_ms(now_ms) as f64 && ms <= now_ms.saturating_add(self.future_ms) as f64
    }
}

/// One datapoint ready for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    /// Full metric name, prefix included.
    pub name: Box<str>,
    /// Epoch milliseconds (Blueflood's `collectionTime`).
    pub timestamp_ms: i64,
    /// A finite value: NaN and infinities never get this far.
    pub value: f64,
}

impl Datapoint {
    pub fn new(name: &str, timestamp_ms: i64, value: f64) -> Self {
        Self {
            name: name.into(),
            timestamp_ms,
            value,
        }
    }

    /// Bytes this point is charged against the buffer bound: what it really occupies while
    /// buffered — its slot (the struct and its arrival time) and the heap block holding its name
    /// as a general-purpose allocator rounds it (8 bytes of header, 16-byte granules, 32 at
    /// least). So the bound is a bound on memory, not on the encoded size.
    pub fn buffer_cost(&self) -> usize {
        POINT_OVERHEAD_BYTES + (self.name.len() + 8).div_ceil(16).max(2) * 16
    }
}

/// A buffered point's slot: the struct (fat pointer, i64, f64) and its arrival time.
pub const POINT_OVERHEAD_BYTES: usize = 48;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_counts_the_slot_and_the_rounded_name_block() {
        let p = |n: usize| Datapoint {
            name: "x".repeat(n).into(),
            timestamp_ms: 0,
            value: 0.0,
        };
        assert_eq!(p(0).buffer_cost(), 48 + 32);
        assert_eq!(p(24).buffer_cost(), 48 + 32);
        assert_eq!(p(25).buffer_cost(), 48 + 48);
        assert_eq!(p(31).buffer_cost(), 48 + 48);
        assert_eq!(p(1000).buffer_cost(), 48 + 1008);
    }
}
