//! The distributions the ledger cannot hold as plain counters: request durations by status
//! class and datapoints per request. They are recorded by delivery's events (`RequestFinished`)
//! like every other count, and `telemetry::metrics` only registers and encodes them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusClass {
    /// `2xx`, `4xx`, `5xx`, or `error` when no answer came.
    pub status_class: &'static str,
}

/// Distributions recorded by the delivery path.
#[derive(Debug)]
pub struct Instruments {
    pub request_duration: Family<StatusClass, Histogram>,
    pub batch_size: Histogram,
}

impl Default for Instruments {
    fn default() -> Self {
        Self {
            request_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            batch_size: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
        }
    }
}

impl Instruments {
    pub(in crate::accounting) fn observe_request(
        &self,
        status: Option<u16>,
        seconds: f64,
        datapoints: usize,
    ) {
        let status_class = match status {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(_) => "5xx",
            None => "error",
        };
        self.request_duration
            .get_or_create(&StatusClass { status_class })
            .observe(seconds);
        self.batch_size.observe(datapoints as f64);
    }
}
