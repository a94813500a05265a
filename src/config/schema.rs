//! What each configuration key's value may be ([`ValueType`], one per entry of
//! [`KEYS`](super::keys::KEYS)) and the JSON Schema built from it: the Helm chart's
//! `values.schema.json` carries [`forwarder_config_schema`] at
//! `properties.forwarder.properties.config` (and [`key_schema`] for the chart values that
//! become keys), so a value Helm accepts is one `validate.rs` accepts, as far as a JSON Schema
//! can say it. A test fails when the chart's copy drifts from this.

use serde_json::{Map, Value, json};

use super::keys::{FILE_SUFFIX, KEYS, KeySpec};

/// The largest whole number a Helm values file carries exactly: values files are read into
/// float64, so above this the digits the chart renders are not the ones the user wrote.
pub const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// The shape of one key's value, as `validate.rs` checks it. The schema may be stricter than
/// the validator (it refuses `GZIP`, which the validator reads case-insensitively) but not
/// looser, except where noted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueType {
    /// Any string; keys without a default treat the empty string as unset.
    Text,
    /// A string with something other than whitespace in it.
    NonEmptyText,
    /// A whole number in `min..=max`; `None`: no bound but [`MAX_EXACT_INTEGER`].
    Integer {
        min: u64,
        max: Option<u64>,
    },
    /// A byte count like [`ValueType::Integer`], or a size string such as `256MiB`.
    Bytes {
        min: u64,
        max: Option<u64>,
    },
    /// Seconds above zero, fractions allowed (down to a nanosecond).
    Seconds,
    /// Seconds, zero (off) or more, fractions allowed.
    SecondsOrZero,
    /// A number above `above` (a decimal: `"0"`, `"0.1"`) and at most 1.
    Fraction {
        above: &'static str,
    },
    Boolean,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// An integer in `min..=max`, or `word`.
    IntegerOr {
        min: u64,
        max: u64,
        word: &'static str,
    },
    /// A Twisted endpoint of this transport (`tcp`, `udp`).
    Endpoint(&'static str),
    /// An `http://` or `https://` URL with a host.
    HttpUrl,
    /// `IPv4:PORT` or `[IPv6]:PORT`.
    SocketAddr,
    /// A tenant ID: one path segment of the ingest URL, or a whole number.
    Tenant,
}

/// Unit suffixes `parse_size` in `validate.rs` takes (any case), after an optional space.
const SIZE_PATTERN: &str = "^[0-9]+ ?([bB]|[kKmMgG]([iI]?[bB])?)?$";

/// 0..=65535 without a sign or a leading zero beyond four digits.
const PORT: &str =
    "([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

/// Seconds as a string (`--set` turns `0.5` into one): at least a nanosecond, at most 15
/// integer digits (far below `Duration`'s limit).
const SECONDS_PATTERN: &str = "^(0*[1-9][0-9]{0,14}(\\.[0-9]*)?|0*\\.0{0,8}[1-9][0-9]*)$";

/// Seconds as a string, zero allowed: at most 15 integer digits.
const SECONDS_OR_ZERO_PATTERN: &str = "^([0-9]{1,15}(\\.[0-9]*)?|\\.[0-9]+)$";

/// What the tenant check refuses: `/ ? # \`, whitespace and control characters (the ASCII and
/// Latin-1 ones: Helm's regex engine and ECMA spell wider Unicode escapes differently, and
/// nobody's tenant holds U+2000).
const TENANT_PATTERN: &str = "^[^/?#\\\\\\s\\x00-\\x1f\\x7f-\\x9f\\xa0]+$";

impl ValueType {
    /// The JSON Schema of a value of this type.
    pub(crate) fn schema(self) -> Value {
        match self {
            ValueType::Text => json!({"type": "string"}),
            ValueType::NonEmptyText => json!({"type": "string", "pattern": "\\S"}),
            ValueType::Integer { min, max } => integer(min, max),
            ValueType::Bytes { min, max } => json!({"anyOf": [
                integer(min, max),
                {"type": "string", "pattern": SIZE_PATTERN},
            ]}),
            ValueType::Seconds => json!({"anyOf": [
                {"type": "number", "minimum": 1e-9, "maximum": MAX_EXACT_INTEGER},
                {"type": "string", "pattern": SECONDS_PATTERN},
            ]}),
            ValueType::SecondsOrZero => json!({"anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_EXACT_INTEGER},
                {"type": "string", "pattern": SECONDS_OR_ZERO_PATTERN},
            ]}),
            ValueType::Fraction { above } => json!({"anyOf": [
                {"type": "number", "exclusiveMinimum": above.parse::<f64>().unwrap_or(0.0), "maximum": 1},
                {"type": "string", "pattern": fraction_pattern(above)},
            ]}),
            ValueType::Boolean => json!({"type": "boolean"}),
            ValueType::Choice(words) => json!({"type": "string", "enum": words}),
            ValueType::IntegerOr { min, max, word } => json!({"anyOf": [
                integer(min, Some(max)),
                {"type": "string", "enum": [word]},
            ]}),
            ValueType::Endpoint(transport) => json!({
                "type": "string",
                "pattern": format!("^{transport}:(port=)?{PORT}(:interface=\\S+)?$"),
            }),
            ValueType::HttpUrl => json!({"type": "string", "pattern": "^https?://[^/?#\\s:@]"}),
            ValueType::SocketAddr => json!({
                "type": "string",
                "pattern": format!("^([0-9]{{1,3}}(\\.[0-9]{{1,3}}){{3}}|\\[[0-9a-fA-F:.]+\\]):{PORT}$"),
            }),
            ValueType::Tenant => json!({"anyOf": [
                {"type": "string", "pattern": TENANT_PATTERN},
                integer(0, None),
            ]}),
        }
    }

    /// `default` as the JSON value a values file would hold, or `None` when it has no such
    /// form (a test checks that every default has one).
    pub(crate) fn json_of(self, default: &str) -> Option<Value> {
        let number = || -> Option<Value> {
            match default.parse::<u64>() {
                Ok(n) => Some(n.into()),
                Err(_) => default.parse::<f64>().ok().map(Into::into),
            }
        };
        match self {
            ValueType::Integer { .. } | ValueType::Bytes { .. } => {
                default.parse::<u64>().ok().map(Into::into)
            }
            ValueType::Seconds | ValueType::SecondsOrZero | ValueType::Fraction { .. } => number(),
            ValueType::IntegerOr { word, .. } if default == word => Some(word.into()),
            ValueType::IntegerOr { .. } => default.parse::<u64>().ok().map(Into::into),
            ValueType::Boolean => default.parse::<bool>().ok().map(Into::into),
            ValueType::Text
            | ValueType::NonEmptyText
            | ValueType::Choice(_)
            | ValueType::Endpoint(_)
            | ValueType::HttpUrl
            | ValueType::SocketAddr
            | ValueType::Tenant => Some(default.into()),
        }
    }

    /// Other forms worth showing besides the default (`256MiB` for a byte count).
    fn examples(self, default: Option<&str>) -> Vec<Value> {
        match self {
            ValueType::Bytes { .. } => default
                .and_then(|d| d.parse::<u64>().ok())
                .and_then(size_string)
                .map(Value::from)
                .into_iter()
                .collect(),
            ValueType::Tenant => vec![123_456.into()],
            _ => Vec::new(),
        }
    }
}

fn integer(min: u64, max: Option<u64>) -> Value {
    let max = max.unwrap_or(MAX_EXACT_INTEGER).min(MAX_EXACT_INTEGER);
    json!({"type": "integer", "minimum": min, "maximum": max})
}

/// `268435456` → `256MiB`: the largest binary unit that divides `n`.
fn size_string(n: u64) -> Option<String> {
    [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        .into_iter()
        .find(|(_, unit)| n >= *unit && n.is_multiple_of(*unit))
        .map(|(name, unit)| format!("{}{name}", n / unit))
}

/// A decimal string above `above` (`"0"` or `"0.d…"`) and at most 1, without lookahead (RE2,
/// Helm's regex engine, has none): after the point, either a digit greater than `above`'s at
/// some position with the same digits before it, or `above`'s digits and then a non-zero digit.
fn fraction_pattern(above: &str) -> String {
    let digits = above
        .split_once('.')
        .map_or("", |(_, fraction)| fraction.trim_end_matches('0'));
    let mut alternatives = Vec::new();
    for (i, d) in digits.char_indices() {
        if let Some(next) = d.to_digit(10).filter(|d| *d < 9) {
            alternatives.push(format!("{}[{}-9][0-9]*", &digits[..i], next + 1));
        }
    }
    alternatives.push(format!("{digits}[0-9]*[1-9][0-9]*"));
    format!("^(0*\\.({})|0*1(\\.0*)?)$", alternatives.join("|"))
}

/// The schema of one key's value, or `None` for an unknown key: for the chart's own values
/// that it writes as that key (`forwarder.interval` → `interval`; their defaults and
/// descriptions are the chart's).
pub fn key_schema(key: &str) -> Option<Value> {
    super::keys::find(key).map(|spec| spec.ty.schema())
}

fn property(spec: &KeySpec) -> Value {
    let mut schema = match spec.ty.schema() {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    schema.insert("description".into(), spec.help.into());
    if let Some(default) = spec.default.and_then(|d| spec.ty.json_of(d)) {
        schema.insert("default".into(), default);
    }
    let examples = spec.ty.examples(spec.default);
    if !examples.is_empty() {
        schema.insert("examples".into(), examples.into());
    }
    Value::Object(schema)
}

/// The JSON Schema of the chart's `forwarder.config`: every key with its type, every
/// `<key>_file` as a file name, nothing else. Secret keys are there only as `<key>_file`: a
/// value written into `forwarder.config` ends up in a ConfigMap.
pub fn forwarder_config_schema() -> Value {
    let properties: Map<String, Value> = KEYS
        .iter()
        .filter(|spec| !spec.secret)
        .map(|spec| (spec.key.to_owned(), property(spec)))
        .collect();
    let names: Vec<&str> = KEYS.iter().map(|spec| spec.key).collect();
    json!({
        "$comment": "Generated from src/config/keys.rs: BFF_UPDATE_CHART_SCHEMA=1 cargo test --lib config::schema. Do not edit by hand.",
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "patternProperties": {
            format!("^({}){FILE_SUFFIX}$", names.join("|")): {
                "type": "string",
                "minLength": 1,
                "description": "A file (in the forwarder container) whose content, minus one trailing newline, is the key's value",
            },
        },
    })
}

#[cfg(test)]
mod tests;
