//! Which exposition format `/metrics` answers in, from the request's `Accept` header:
//! OpenMetrics when the client names `application/openmetrics-text` at least as highly as the
//! classic text format (Prometheus does, ranking it first), the classic 0.0.4 text format
//! otherwise — for `curl`'s `*/*`, for `promtool`, for no header at all, and for a header that
//! names neither (answering something readable beats a 406 to a scraper that sent an odd
//! header). Pure: no I/O.

use crate::telemetry::metrics::Format;

/// The format for `accept`, every `Accept` header of the request (empty when none).
pub fn format_for<'a>(accept: impl IntoIterator<Item = &'a str>) -> Format {
    let mut openmetrics = 0.0_f64;
    let mut classic = 0.0_f64;
    for range in accept.into_iter().flat_map(|h| h.split(',')) {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let Some(q) = quality(parts) else {
            continue;
        };
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            // Wildcards count for the default only: `*/*` is curl's "anything", not a request
            // for OpenMetrics.
            "text/plain" | "text/*" | "*/*" => classic = classic.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= classic {
        Format::OpenMetrics
    } else {
        Format::Classic
    }
}

/// A media range's `q` (1 when absent); `None` for a `q` that is not a number in 0..=1, so a
/// malformed range is ignored rather than guessed at.
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> Option<f64> {
    for p in params {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("q")
        {
            let q: f64 = v.trim().parse().ok()?;
            return (0.0..=1.0).contains(&q).then_some(q);
        }
    }
    Some(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(accept: &[&str]) -> Format {
        format_for(accept.iter().copied())
    }

    #[test]
    fn prometheus_gets_openmetrics() {
        // What Prometheus 2.42 sends.
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                    version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(f(&[prom]), Format::OpenMetrics);
        assert_eq!(f(&["application/openmetrics-text"]), Format::OpenMetrics);
        assert_eq!(
            f(&["Application/OpenMetrics-Text; Version=1.0.0"]),
            Format::OpenMetrics
        );
    }

    #[test]
    fn everyone_else_gets_the_classic_format() {
        assert_eq!(f(&[]), Format::Classic);
        assert_eq!(f(&["*/*"]), Format::Classic);
        assert_eq!(f(&["text/plain"]), Format::Classic);
        assert_eq!(f(&["application/json"]), Format::Classic);
        assert_eq!(f(&[""]), Format::Classic);
    }

    #[test]
    fn q_values_rank_the_two() {
        assert_eq!(
            f(&["text/plain;q=0.9, application/openmetrics-text;q=0.5"]),
            Format::Classic
        );
        assert_eq!(
            f(&["text/plain;q=0.5, application/openmetrics-text;q=0.9"]),
            Format::OpenMetrics
        );
        // A tie goes to the format named explicitly.
        assert_eq!(
            f(&["application/openmetrics-text, text/plain"]),
            Format::OpenMetrics
        );
        assert_eq!(f(&["application/openmetrics-text;q=0"]), Format::Classic);
        assert_eq!(
            f(&["application/openmetrics-text;q=0.2", "*/*;q=0.1"]),
            Format::OpenMetrics
        );
        assert_eq!(
            f(&["application/openmetrics-text;q=0.1", "*/*"]),
            Format::Classic
        );
    }

    #[test]
    fn a_malformed_q_ignores_its_range() {
        assert_eq!(f(&["application/openmetrics-text;q=abc"]), Format::Classic);
        assert_eq!(f(&["application/openmetrics-text;q=2"]), Format::Classic);
        assert_eq!(
            f(&["application/openmetrics-text;q=abc, application/openmetrics-text;q=0.3"]),
            Format::OpenMetrics
        );
    }
}
