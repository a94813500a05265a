//! Each [`ValueType`] against `validate.rs`: values just inside its schema are accepted by the
//! binary and values just outside refused, so the schema is neither looser than the binary nor
//! stricter at its bounds; and the table's types agree with its kinds, defaults and secrets.

use std::path::PathBuf;

use serde_json::Value;

use super::super::*;
use crate::config::keys::{Key, Kind};
use crate::config::raw::{self, Layer, LayerKind, Scalar};
use crate::config::{ConfigError, validate};

/// What the chart writes into config.toml for a JSON value (its `tomlValue` template): whole
/// numbers as integers, other numbers as floats.
fn scalar_of(value: &Value) -> Scalar {
    match value {
        Value::String(s) => Scalar::Str(s.clone()),
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Scalar::Int(i.into()),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => Scalar::Int(f as i128),
            (None, Some(f)) => Scalar::Float(f),
            (None, None) => Scalar::Int(n.as_u64().map_or(0, i128::from)),
        },
        other => panic!("not a scalar: {other}"),
    }
}

/// Rules between two keys, which a JSON Schema cannot state: testing the first key, the second
/// is set to this value, out of its way.
const ACROSS_KEYS: &[(Key, Key, &str)] = &[
    (Key::RetryMax, Key::RetryInitial, "0.000000001"),
    (Key::PartialFrameBytes, Key::MaxFrameBytes, "1"),
    (Key::PartialFrameBytes, Key::MaxLineBytes, "1"),
    (Key::AuthProjectId, Key::AuthMethod, "v3-password"),
];

/// Validates the defaults with `key` set to `value` in a config file.
fn validate_with(spec: &'static KeySpec, value: &Value) -> Result<(), ConfigError> {
    let mut file = Layer::new(LayerKind::ConfigFile(PathBuf::from("test.toml")));
    for (key, other, out_of_the_way) in ACROSS_KEYS {
        if key.name() == spec.key {
            file.set(other.spec(), Scalar::Str((*out_of_the_way).to_owned()));
        }
    }
    file.set(spec, scalar_of(value));
    let resolved = raw::resolve(vec![Layer::defaults(), file])?;
    validate::settings(&resolved).map(|_| ())
}

/// An error about `key` itself; one about another key (`retry_max` below a large
/// `retry_initial`, `key` missing for a `user`) says nothing about this value.
fn refuses(spec: &'static KeySpec, value: &Value) -> Option<String> {
    match validate_with(spec, value) {
        Err(ConfigError::Invalid(m)) if m.contains(&format!("for key \"{}\"", spec.key)) => Some(m),
        _ => None,
    }
}

fn max_of(max: Option<u64>) -> u64 {
    max.unwrap_or(MAX_EXACT_INTEGER)
}

/// Values the schema of `ty` accepts, at its edges and in each of its forms.
fn inside(ty: ValueType) -> Vec<Value> {
    use serde_json::json;
    match ty {
        ValueType::Text => vec![json!(""), json!("some text")],
        ValueType::NonEmptyText => vec![json!("debug")],
        ValueType::Integer { min, max } => vec![json!(min), json!(max_of(max))],
        ValueType::Bytes { min, max } => {
            let mut v = vec![json!(min), json!(max_of(max)), json!(min.to_string())];
            // Each unit spelling, all about 1 GB: above every minimum, below every maximum.
            for s in [
                "1GiB",
                "1 gib",
                "1G",
                "1g",
                "1GB",
                "1gb",
                "1024MiB",
                "1024 M",
                "1000MB",
                "1048576KiB",
                "1048576k",
                "1000000KB",
                "1073741824B",
                "1073741824 b",
            ] {
                v.push(json!(s));
            }
            v
        }
        ValueType::Seconds => vec![
            json!(1e-9),
            json!(0.5),
            json!(30),
            json!(MAX_EXACT_INTEGER),
            json!("0.000000001"),
            json!("0.5"),
            json!(".5"),
            json!("5."),
            json!("30"),
            json!("00030.25"),
        ],
        ValueType::SecondsOrZero => vec![
            json!(0),
            json!(1e-9),
            json!(0.5),
            json!(MAX_EXACT_INTEGER),
            json!("0"),
            json!("0.0"),
            json!(".5"),
            json!("5."),
            json!("000000000000030"),
        ],
        ValueType::Fraction { above } => {
            let above_f: f64 = above.parse().expect("a Fraction bound is a number");
            let just_above = if above.contains('.') {
                format!("{above}000001")
            } else {
                format!("{above}.000001")
            };
            vec![
                json!(above_f + 1e-6),
                json!(1),
                json!(1.0),
                json!(0.95),
                json!(just_above),
                json!("1"),
                json!("1.0"),
                json!("0.95"),
                json!(".95"),
            ]
        }
        ValueType::Boolean => vec![json!(true), json!(false)],
        ValueType::Choice(words) => words.iter().map(|w| json!(w)).collect(),
        ValueType::IntegerOr { min, max, word } => vec![json!(min), json!(max), json!(word)],
        ValueType::Endpoint(t) => vec![
            json!(format!("{t}:0")),
            json!(format!("{t}:65535")),
            json!(format!("{t}:port=2003")),
            json!(format!("{t}:2003:interface=127.0.0.1")),
            json!(format!("{t}:2003:interface=::1")),
        ],
        ValueType::HttpUrl => vec![
            json!("http://h"),
            json!("https://blueflood.example.com:19000/"),
            json!("http://[::1]:8080"),
        ],
        ValueType::SocketAddr => vec![
            json!("0.0.0.0:8080"),
            json!("127.0.0.1:0"),
            json!("[::]:65535"),
        ],
        ValueType::Tenant => vec![
            json!("123456"),
            json!("a-b_c.d~e"),
            json!(123_456),
            json!(0),
            json!(MAX_EXACT_INTEGER),
        ],
    }
}

/// Values just outside what the schema of `ty` accepts (where the binary draws the line too).
fn outside(ty: ValueType) -> Vec<Value> {
    use serde_json::json;
    let integer_edges = |min: u64, max: Option<u64>| {
        let mut v = vec![json!(-1), json!(1.5)];
        if min > 0 {
            v.push(json!(min - 1));
        }
        if let Some(max) = max {
            v.push(json!(max + 1));
        }
        v
    };
    match ty {
        ValueType::Text => vec![],
        ValueType::NonEmptyText => vec![json!(""), json!("  ")],
        ValueType::Integer { min, max } => integer_edges(min, max),
        ValueType::Bytes { min, max } => {
            let mut v = integer_edges(min, max);
            v.extend([json!("1.5MiB"), json!("64Mi"), json!("MiB"), json!("-1")]);
            if min > 0 {
                v.push(json!((min - 1).to_string()));
            }
            v
        }
        ValueType::Seconds => vec![
            json!(0),
            json!(-1),
            json!(1e-10),
            json!("0"),
            json!("0.0"),
            json!("-1"),
            json!("0.0000000001"),
            json!(true),
        ],
        ValueType::SecondsOrZero => vec![
            json!(-1),
            json!(-0.5),
            json!("-1"),
            json!("soon"),
            json!(true),
        ],
        ValueType::Fraction { above } => {
            let above_f: f64 = above.parse().expect("a Fraction bound is a number");
            vec![
                json!(above_f),
                json!(1.000001),
                json!(above),
                json!("1.5"),
                json!(true),
            ]
        }
        ValueType::Boolean => vec![json!("maybe"), json!(2)],
        ValueType::Choice(_) => vec![json!("fast"), json!("")],
        ValueType::IntegerOr { min, max, .. } => {
            vec![json!(min - 1), json!(max + 1), json!("never")]
        }
        ValueType::Endpoint(t) => {
            let other = if t == "tcp" { "udp" } else { "tcp" };
            vec![
                json!(format!("{t}:65536")),
                json!(format!("{other}:2003")),
                json!("2003"),
                json!(format!("{t}:")),
            ]
        }
        ValueType::HttpUrl => vec![json!("ftp://h"), json!("http://"), json!("blueflood:19000")],
        ValueType::SocketAddr => vec![
            json!("0.0.0.0"),
            json!("localhost:8080"),
            json!("0.0.0.0:65536"),
        ],
        ValueType::Tenant => vec![
            json!("a/b"),
            json!("a b"),
            json!(""),
            json!("a?b"),
            json!("a#b"),
        ],
    }
}

#[test]
fn values_inside_each_schema_are_accepted_by_the_binary() {
    for spec in KEYS {
        let mut values = inside(spec.ty);
        if let Some(default) = spec.default {
            values.push(
                spec.ty
                    .json_of(default)
                    .expect("the default has a JSON form"),
            );
        }
        values.extend(spec.ty.examples(spec.default));
        for value in values {
            if let Some(message) = refuses(spec, &value) {
                panic!(
                    "{}: the schema allows {value}, the binary says: {message}",
                    spec.key
                );
            }
        }
    }
}

#[test]
fn values_just_outside_each_schema_are_refused_by_the_binary() {
    for spec in KEYS {
        for value in outside(spec.ty) {
            assert!(
                refuses(spec, &value).is_some(),
                "{}: the schema refuses {value}, the binary takes it: widen the schema",
                spec.key
            );
        }
    }
}

#[test]
fn choices_are_the_validators() {
    for spec in KEYS {
        let ValueType::Choice(words) = spec.ty else {
            continue;
        };
        let message = refuses(spec, &serde_json::json!("fast")).expect("refused");
        let listed = message
            .split_once("expected one of ")
            .map(|(_, list)| list.split(", ").collect::<Vec<_>>())
            .unwrap_or_default();
        assert_eq!(listed, words, "{}: {message}", spec.key);
    }
}

#[test]
fn switches_are_booleans_and_defaults_fit_their_type() {
    for spec in KEYS {
        assert_eq!(
            spec.kind == Kind::Switch,
            spec.ty == ValueType::Boolean,
            "{}",
            spec.key
        );
        if let Some(default) = spec.default {
            assert!(
                spec.ty.json_of(default).is_some(),
                "{}: {default:?}",
                spec.key
            );
        }
        if let ValueType::Fraction { above } = spec.ty {
            assert!(above.parse::<f64>().is_ok(), "{}: {above:?}", spec.key);
        }
    }
}

#[test]
fn secrets_are_only_file_names_in_the_chart() {
    let schema = forwarder_config_schema();
    let properties = schema["properties"]
        .as_object()
        .expect("the schema has properties");
    let files = schema["patternProperties"]
        .as_object()
        .expect("the schema has patternProperties");
    assert_eq!(files.len(), 1);
    let pattern = files.keys().next().expect("one pattern");
    let with_file: Vec<&str> = pattern
        .strip_prefix("^(")
        .and_then(|p| p.strip_suffix(")_file$"))
        .expect("^(a|b|...)_file$")
        .split('|')
        .collect();
    assert_eq!(with_file, KEYS.iter().map(|k| k.key).collect::<Vec<_>>());
    for spec in KEYS {
        assert_eq!(
            properties.contains_key(spec.key),
            !spec.secret,
            "{}",
            spec.key
        );
    }
}

#[test]
fn fraction_patterns() {
    assert_eq!(
        fraction_pattern("0"),
        "^(0*\\.([0-9]*[1-9][0-9]*)|0*1(\\.0*)?)$"
    );
    assert_eq!(
        fraction_pattern("0.1"),
        "^(0*\\.([2-9][0-9]*|1[0-9]*[1-9][0-9]*)|0*1(\\.0*)?)$"
    );
    assert_eq!(size_string(268_435_456).as_deref(), Some("256MiB"));
    assert_eq!(size_string(16_384).as_deref(), Some("16KiB"));
    assert_eq!(size_string(1000), None);
}
