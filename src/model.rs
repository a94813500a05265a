//! The datapoint as it travels from ingest to delivery, after normalisation (prefix applied,
//! timestamp in integer milliseconds, value known to be finite).

use std::time::{SystemTime, UNIX_EPOCH};

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
