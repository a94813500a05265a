//! Pure decoders for the carbon input protocols: no I/O, no allocation beyond the values they
//! return, every size bounded. Everything here can be fed arbitrary bytes (and is, by the tests
//! and the fuzz targets) without panicking.

pub mod line;
mod number;
pub mod pickle;

use std::borrow::Cow;

/// A datapoint as the sender wrote it: name, timestamp in (possibly fractional) epoch seconds,
/// value. Not yet validated for NaN, window or prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPoint<'a> {
    pub name: Cow<'a, str>,
    pub timestamp: f64,
    pub value: f64,
}

/// Why one datapoint (a line, or one element of a pickle list) could not be decoded. The rest
/// of its frame is unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PointError {
    #[error("datapoint is not a (name, (timestamp, value)) pair")]
    Shape,
    #[error("metric name is empty")]
    EmptyName,
    #[error("metric name is not valid UTF-8")]
    NameNotUtf8,
    #[error("metric name is longer than the limit")]
    NameTooLong,
    #[error("value is not a number")]
    BadValue,
    #[error("timestamp is not a number")]
    BadTimestamp,
    #[error("line has the wrong number of fields")]
    FieldCount,
}

impl PointError {
    /// Stable label for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            PointError::Shape => "shape",
            PointError::EmptyName => "empty_name",
            PointError::NameNotUtf8 => "name_not_utf8",
            PointError::NameTooLong => "name_too_long",
            PointError::BadValue => "bad_value",
            PointError::BadTimestamp => "bad_timestamp",
            PointError::FieldCount => "field_count",
        }
    }
}
