//! The datapoint as it travels from ingest to delivery, after normalisation (prefix applied,
//! timestamp in integer milliseconds, value known to be finite).

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
    /// Bytes this point is charged against the buffer bound: the name plus the fixed part of the
    /// struct and its allocation. An estimate of memory, not of the encoded size.
    pub fn buffer_cost(&self) -> usize {
        self.name.len() + POINT_OVERHEAD_BYTES
    }
}

/// Fixed per-point memory: the struct (fat pointer, i64, f64) and allocator slack for the name.
pub const POINT_OVERHEAD_BYTES: usize = 48;
