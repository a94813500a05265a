//! The classic Prometheus text format (0.0.4), rendered from the OpenMetrics text that
//! `prometheus-client` writes for the registry, so both formats come from one encoding of one
//! registry and no metric is listed twice. `prometheus-client` 0.24 writes only OpenMetrics
//! (text, or protobuf through `prost-build` and `protoc`); the older format is still what
//! `curl` users, `promtool check metrics` (2.42) and many scrapers read.
//!
//! Only what the registry holds is translated: counters (the 0.0.4 family is named after its
//! `_total` sample), gauges, histograms and info metrics (a gauge named `..._info`). `# UNIT`,
//! `# EOF`, `_created` samples and exemplars have no 0.0.4 form and are left out. Anything else
//! (another metric type, a sample that belongs to no family, a timestamp) is an error rather
//! than a guess, and the unit tests render the real registry, so a new kind of metric fails
//! there first.
//!
//! Escaping: label values are escaped the same way in both formats (`\\`, `\"`, `\n`), so the
//! label set is copied as it is. `prometheus-client` writes HELP text unescaped, and 0.0.4
//! escapes `\` and line feeds in it, which is done here.

/// Why the OpenMetrics text could not be rendered as 0.0.4; names the offending line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExpositionError {
    #[error("line {line}: metric type {kind:?} has no 0.0.4 rendering here")]
    UnsupportedType { line: usize, kind: String },
    #[error("line {line}: sample {name:?} belongs to no declared family")]
    Orphan { line: usize, name: String },
    #[error("line {line}: cannot read the sample: {why}")]
    Malformed { line: usize, why: &'static str },
}

/// The family being translated: its OpenMetrics name and type.
struct Family<'a> {
    name: &'a str,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    Info,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "counter" => Some(Kind::Counter),
            "gauge" => Some(Kind::Gauge),
            "histogram" => Some(Kind::Histogram),
            "info" => Some(Kind::Info),
            _ => None,
        }
    }

    /// The 0.0.4 family name and type.
    fn classic(self, name: &str) -> (String, &'static str) {
        match self {
            Kind::Counter => (format!("{name}_total"), "counter"),
            Kind::Gauge => (name.to_string(), "gauge"),
            Kind::Histogram => (name.to_string(), "histogram"),
            Kind::Info => (format!("{name}_info"), "gauge"),
        }
    }

    /// Whether sample `sample` is part of family `name` in 0.0.4: `Some(true)` keep,
    /// `Some(false)` leave out (no 0.0.4 form), `None` not this family's.
    fn keeps(self, name: &str, sample: &str) -> Option<bool> {
        let suffix = sample.strip_prefix(name)?;
        match (self, suffix) {
            (Kind::Counter, "_total") => Some(true),
            (Kind::Counter | Kind::Histogram, "_created") => Some(false),
            (Kind::Gauge, "") => Some(true),
            (Kind::Histogram, "_bucket" | "_sum" | "_count") => Some(true),
            (Kind::Info, "_info") => Some(true),
            _ => None,
        }
    }
}

/// Renders OpenMetrics text (as `prometheus-client` writes it) in the 0.0.4 text format.
pub fn classic_from_openmetrics(text: &str) -> Result<String, ExpositionError> {
    let mut out = String::with_capacity(text.len());
    let mut family: Option<Family<'_>> = None;
    // `# HELP name text`, waiting for its `# TYPE` (which prometheus-client writes next).
    let mut help: Option<(&str, &str)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.is_empty() || raw == "# EOF" {
            continue;
        }
        if let Some(rest) = raw.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            // Until its TYPE, a sample belongs to no family.
            family = None;
            continue;
        }
        if let Some(rest) = raw.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let parsed = Kind::parse(kind).ok_or_else(|| ExpositionError::UnsupportedType {
                line,
                kind: kind.to_string(),
            })?;
            let (classic, kind) = parsed.classic(name);
            // A TYPE without a HELP of the same name starts a family too, without HELP.
            if let Some((_, help)) = help.take().filter(|(n, _)| *n == name) {
                out.push_str("# HELP ");
                out.push_str(&classic);
                out.push(' ');
                escape_help(help, &mut out);
                out.push('\n');
            }
            out.push_str(&format!("# TYPE {classic} {kind}\n"));
            family = Some(Family { name, kind: parsed });
            continue;
        }
        if raw.starts_with('#') {
            // `# UNIT` and any other comment: no 0.0.4 form.
            continue;
        }
        let sample = split_sample(raw).map_err(|why| ExpositionError::Malformed { line, why })?;
        let keep = family
            .as_ref()
            .and_then(|f| f.kind.keeps(f.name, sample.name))
            .ok_or_else(|| ExpositionError::Orphan {
                line,
                name: sample.name.to_string(),
            })?;
        if keep {
            out.push_str(sample.series);
            out.push(' ');
            out.push_str(sample.value);
            out.push('\n');
        }
    }
    Ok(out)
}

/// One sample line, cut into its parts (borrowed from the line).
struct Sample<'a> {
    /// The metric name alone.
    name: &'a str,
    /// The name with its label set, as written.
    series: &'a str,
    value: &'a str,
}

/// `name{labels} value [# exemplar]`; a timestamp is refused (prometheus-client writes none, and
/// OpenMetrics' seconds would have to become 0.0.4's milliseconds).
fn split_sample(line: &str) -> Result<Sample<'_>, &'static str> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name");
    }
    let series_end = if line[name_end..].starts_with('{') {
        name_end + label_set_len(&line[name_end..])?
    } else {
        name_end
    };
    let series = &line[..series_end];
    let rest = line[series_end..]
        .strip_prefix(' ')
        .ok_or("no space before the value")?;
    // An exemplar follows ` # `; 0.0.4 has none.
    let rest = rest.split_once(" # ").map_or(rest, |(before, _)| before);
    let mut parts = rest.split(' ');
    let value = parts.next().filter(|v| !v.is_empty()).ok_or("no value")?;
    if parts.next().is_some() {
        return Err("a timestamp or trailing text after the value");
    }
    Ok(Sample {
        name,
        series,
        value,
    })
}

/// The length of the `{...}` label set at the start of `s`, braces included; quotes and
/// backslash escapes in label values are honoured, so a `}` inside a value does not end it.
fn label_set_len(s: &str) -> Result<usize, &'static str> {
    let mut in_value = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match (in_value, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_value = false,
            (false, _, '"') => in_value = true,
            (false, _, '}') => return Ok(i + 1),
            _ => {}
        }
    }
    Err("unterminated label set")
}

/// 0.0.4 HELP escaping: backslash and line feed.
fn escape_help(help: &str, out: &mut String) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
