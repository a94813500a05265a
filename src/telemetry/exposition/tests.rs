//! The 0.0.4 rendering: each metric type prometheus-client writes, what is left out, escaping,
//! and the forwarder's own registry rendered whole.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::CounterWithExemplar;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::{ExpositionError, classic_from_openmetrics};

fn openmetrics(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).expect("encode");
    text
}

fn classic(registry: &Registry) -> String {
    classic_from_openmetrics(&openmetrics(registry)).expect("renders")
}

#[test]
fn a_counter_family_is_named_after_its_total_sample() {
    let mut r = Registry::with_prefix("p");
    let c: Counter = Counter::default();
    c.inc_by(7);
    r.register("requests", "Requests", c);
    assert_eq!(
        classic(&r),
        "# HELP p_requests_total Requests.\n# TYPE p_requests_total counter\np_requests_total 7\n"
    );
}

#[test]
fn a_gauge_keeps_its_unit_in_the_name_and_loses_the_unit_line() {
    let mut r = Registry::default();
    let g: Gauge = Gauge::default();
    g.set(3);
    r.register_with_unit("buffered", "Buffer use", Unit::Bytes, g);
    let om = openmetrics(&r);
    assert!(om.contains("# UNIT buffered_bytes bytes\n"), "{om}");
    assert_eq!(
        classic(&r),
        "# HELP buffered_bytes Buffer use.\n# TYPE buffered_bytes gauge\nbuffered_bytes 3\n"
    );
}

#[test]
fn a_histogram_keeps_buckets_sum_and_count() {
    let mut r = Registry::default();
    let h = Histogram::new([0.5, 1.0]);
    h.observe(0.7);
    r.register_with_unit("took", "Took", Unit::Seconds, h);
    assert_eq!(
        classic(&r),
        "# HELP took_seconds Took.\n# TYPE took_seconds histogram\n\
         took_seconds_sum 0.7\ntook_seconds_count 1\n\
         took_seconds_bucket{le=\"0.5\"} 0\ntook_seconds_bucket{le=\"1.0\"} 1\n\
         took_seconds_bucket{le=\"+Inf\"} 1\n"
    );
}

#[test]
fn an_info_metric_becomes_a_gauge_named_info() {
    let mut r = Registry::default();
    r.register("build", "Build", Info::new(vec![("version", "1.2")]));
    assert_eq!(
        classic(&r),
        "# HELP build_info Build.\n# TYPE build_info gauge\nbuild_info{version=\"1.2\"} 1\n"
    );
}

#[test]
fn labelled_families_keep_every_series() {
    let mut r = Registry::default();
    let f = Family::<Vec<(String, String)>, Counter>::default();
    f.get_or_create(&vec![("reason".into(), "nan".into())])
        .inc();
    f.get_or_create(&vec![("reason".into(), "parse".into())])
        .inc_by(2);
    r.register("dropped", "Dropped", f);
    let text = classic(&r);
    assert!(
        text.contains("\ndropped_total{reason=\"nan\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\ndropped_total{reason=\"parse\"} 2\n"),
        "{text}"
    );
    assert!(text.starts_with("# HELP dropped_total Dropped.\n# TYPE dropped_total counter\n"));
}

#[test]
fn exemplars_eof_and_created_have_no_classic_form() {
    let mut r = Registry::default();
    let c = CounterWithExemplar::<Vec<(String, String)>>::default();
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    c.inc_by(1, Some(vec![("trace_id".into(), "abc".into())]), Some(at));
    r.register("traced", "Traced", c);
    let om = openmetrics(&r);
    assert!(om.contains(" # {trace_id=\"abc\"}"), "{om}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert_eq!(
        classic(&r),
        "# HELP traced_total Traced.\n# TYPE traced_total counter\ntraced_total 1\n"
    );
    let created = "# HELP c C.\n# TYPE c counter\nc_total 1\nc_created 1700000000.5\n# EOF\n";
    assert_eq!(
        classic_from_openmetrics(created),
        Ok("# HELP c_total C.\n# TYPE c_total counter\nc_total 1\n".to_string())
    );
}

#[test]
fn help_is_escaped_for_0_0_4_and_label_values_are_copied_as_escaped() {
    // prometheus-client 0.24 writes HELP unescaped: pinned here, since the rendering relies on it.
    let mut r = Registry::default();
    r.register("g", r"a\b", Gauge::<i64>::default());
    assert!(openmetrics(&r).contains("# HELP g a\\b.\n"));
    assert!(
        classic(&r).starts_with("# HELP g a\\\\b.\n"),
        "{}",
        classic(&r)
    );
    // Label values are escaped alike in both formats; a `}` or a space inside one does not end it.
    let om = "# HELP g G\n# TYPE g gauge\ng{path=\"a} b\\\"c\\\\\"} 1\n";
    assert_eq!(
        classic_from_openmetrics(om),
        Ok("# HELP g G\n# TYPE g gauge\ng{path=\"a} b\\\"c\\\\\"} 1\n".to_string())
    );
}

#[test]
fn what_cannot_be_rendered_is_an_error_naming_the_line() {
    let stateset = "# HELP s S\n# TYPE s stateset\ns{s=\"a\"} 1\n";
    assert_eq!(
        classic_from_openmetrics(stateset),
        Err(ExpositionError::UnsupportedType {
            line: 2,
            kind: "stateset".into()
        })
    );
    let orphan = "# HELP g G\n# TYPE g gauge\nh 1\n";
    assert_eq!(
        classic_from_openmetrics(orphan),
        Err(ExpositionError::Orphan {
            line: 3,
            name: "h".into()
        })
    );
    let untyped = "# HELP g G\ng 1\n";
    assert_eq!(
        classic_from_openmetrics(untyped),
        Err(ExpositionError::Orphan {
            line: 2,
            name: "g".into()
        })
    );
    let stamped = "# TYPE g gauge\ng 1 1700000000.5\n";
    assert!(matches!(
        classic_from_openmetrics(stamped),
        Err(ExpositionError::Malformed { line: 2, .. })
    ));
    let unterminated = "# TYPE g gauge\ng{a=\"1} 1\n";
    assert!(matches!(
        classic_from_openmetrics(unterminated),
        Err(ExpositionError::Malformed { line: 2, .. })
    ));
}

/// The forwarder's own registry (with the auth status and without a spool), rendered whole: each
/// family declared once with HELP and TYPE, counters as `_total` families, every sample under
/// the family just declared, nothing OpenMetrics-only.
#[test]
fn the_forwarders_registry_renders_whole() {
    use crate::accounting::Ledger;
    use crate::accounting::events::LogLimits;
    use crate::buffer::Buffer;
    use crate::config::settings::BufferPolicy;
    use crate::forward::SpillPolicy;

    let ledger = Arc::new(Ledger::default());
    // A family with no series is not encoded at all: give the request durations one.
    ledger
        .instruments()
        .request_duration
        .get_or_create(&crate::accounting::StatusClass {
            status_class: "2xx",
        })
        .observe(0.01);
    let logs = Arc::new(LogLimits::default());
    let buffer = Arc::new(Buffer::new(
        1 << 20,
        BufferPolicy::DropNewest,
        ledger.clone(),
        logs.clone(),
    ));
    let spill = Arc::new(SpillPolicy::new(
        None,
        buffer.clone(),
        0.5,
        ledger.clone(),
        logs,
    ));
    let registry = crate::telemetry::metrics::registry(
        ledger,
        buffer,
        Arc::new(crate::auth::NoAuth),
        spill,
        Arc::new(crate::health::Health::new(0.9)),
    );
    let om = openmetrics(&registry);
    let text = classic_from_openmetrics(&om).expect("the registry renders as 0.0.4");
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "{text}"
    );
    let mut declared = std::collections::HashSet::new();
    let mut current: Option<(String, String)> = None;
    let mut helps = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helps += 1;
            assert!(rest.split_once(' ').is_some(), "{line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("name and type");
            assert!(declared.insert(name.to_string()), "{name} declared twice");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            current = Some((name.to_string(), kind.to_string()));
        } else {
            let (name, kind) = current.as_ref().expect("a sample after a TYPE line");
            let sample = line.split(['{', ' ']).next().expect("name");
            let ok = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| sample == format!("{name}{s}")),
                _ => sample == name,
            };
            assert!(ok, "{line} under {name} ({kind})");
        }
    }
    assert_eq!(helps, declared.len());
    assert!(declared.contains("blueflood_forward_datapoints_dropped_total"));
    assert!(
        declared.contains("blueflood_forward_request_duration_seconds"),
        "{declared:?}"
    );
    // One family per OpenMetrics TYPE line: nothing lost or added.
    assert_eq!(om.matches("# TYPE ").count(), declared.len());
}
