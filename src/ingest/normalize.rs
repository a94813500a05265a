//! Turns a datapoint as the sender wrote it into one Blueflood will take: prefix joined with
//! `.`, timestamp `-1` read as now (Graphite's rule) or replaced by arrival time
//! (`overwrite_collection_timestamp`), integer milliseconds, NaN/±inf refused (Blueflood would
//! reject the whole request), and points outside Blueflood's accepted window refused here,
//! where the loss is counted, rather than there.

use crate::accounting::DropReason;
use crate::config::settings::IngestSettings;
use crate::model::{Datapoint, Window};
use crate::protocol::RawPoint;

#[derive(Debug, Clone)]
pub struct Normalizer {
    /// `prefix.` ready to prepend, or empty.
    prefix: String,
    overwrite_timestamp: bool,
    window: Window,
}

impl Normalizer {
    pub fn new(settings: &IngestSettings) -> Self {
        let prefix = if settings.prefix.is_empty() {
            String::new()
        } else {
            format!("{}.", settings.prefix)
        };
        Self {
            prefix,
            overwrite_timestamp: settings.overwrite_collection_timestamp,
            window: Window::new(settings.max_past, settings.max_future),
        }
    }

    pub fn normalize(&self, raw: RawPoint<'_>, now_ms: i64) -> Result<Datapoint, DropReason> {
        if !raw.value.is_finite() {
            return Err(DropReason::Nan);
        }
        let timestamp_ms = if self.overwrite_timestamp || raw.timestamp == -1.0 {
            now_ms
        } else {
            let ms = (raw.timestamp * 1000.0).round();
            if !ms.is_finite() {
                return Err(DropReason::DecodeError);
            }
            if !self.window.contains(ms, now_ms) {
                return Err(DropReason::OutOfWindow);
            }
            ms as i64
        };
        let mut name = String::with_capacity(self.prefix.len() + raw.name.len());
        name.push_str(&self.prefix);
        name.push_str(&raw.name);
        Ok(Datapoint {
            name: name.into_boxed_str(),
            timestamp_ms,
            value: raw.value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::time::Duration;

    fn settings(prefix: &str, overwrite: bool) -> IngestSettings {
        IngestSettings {
            prefix: prefix.into(),
            overwrite_collection_timestamp: overwrite,
            max_past: Duration::from_secs(3 * 86400),
            max_future: Duration::from_secs(600),
            max_frame_bytes: 1 << 20,
            max_line_bytes: 16384,
            max_name_bytes: 4096,
            max_connections: 10,
            idle_timeout: Duration::from_secs(60),
            partial_frame_bytes: 64 << 20,
        }
    }

    fn raw(name: &str, ts: f64, v: f64) -> RawPoint<'_> {
        RawPoint {
            name: Cow::Borrowed(name),
            timestamp: ts,
            value: v,
        }
    }

    const NOW: i64 = 1_764_000_000_000;

    #[test]
    fn prefixes_and_converts_to_integer_milliseconds() {
        let n = Normalizer::new(&settings("pre", false));
        let p = n
            .normalize(raw("a.b", 1_764_000_000.5, 2.5), NOW)
            .expect("ok");
        assert_eq!(&*p.name, "pre.a.b");
        assert_eq!(p.timestamp_ms, 1_764_000_000_500);
        assert_eq!(p.value, 2.5);
        let n = Normalizer::new(&settings("", false));
        assert_eq!(
            &*n.normalize(raw("a.b", 1_764_000_000.0, 1.0), NOW)
                .expect("ok")
                .name,
            "a.b"
        );
    }

    #[test]
    fn minus_one_and_overwrite_mean_now() {
        let n = Normalizer::new(&settings("", false));
        assert_eq!(
            n.normalize(raw("a", -1.0, 1.0), NOW)
                .expect("ok")
                .timestamp_ms,
            NOW
        );
        let n = Normalizer::new(&settings("", true));
        assert_eq!(
            n.normalize(raw("a", 12.0, 1.0), NOW)
                .expect("ok")
                .timestamp_ms,
            NOW
        );
    }

    #[test]
    fn refuses_non_finite_values_and_points_outside_the_window() {
        let n = Normalizer::new(&settings("", false));
        let ts = NOW as f64 / 1000.0;
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(n.normalize(raw("a", ts, v), NOW), Err(DropReason::Nan));
        }
        assert_eq!(
            n.normalize(raw("a", ts - 3.0 * 86400.0 - 1.0, 1.0), NOW),
            Err(DropReason::OutOfWindow)
        );
        assert!(n.normalize(raw("a", ts - 3.0 * 86400.0, 1.0), NOW).is_ok());
        assert!(n.normalize(raw("a", ts + 600.0, 1.0), NOW).is_ok());
        assert_eq!(
            n.normalize(raw("a", ts + 601.0, 1.0), NOW),
            Err(DropReason::OutOfWindow)
        );
        assert_eq!(
            n.normalize(raw("a", 1e300, 1.0), NOW),
            Err(DropReason::OutOfWindow)
        );
        assert_eq!(
            n.normalize(raw("a", f64::NAN, 1.0), NOW),
            Err(DropReason::DecodeError)
        );
    }
}
