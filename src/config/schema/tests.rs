//! Unit tests of `schema`: the chart's copy is the generated one and the chart's templates name
//! only keys that exist; `edges.rs`: each type's edges are where `validate.rs` draws them.

mod edges;

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;
use crate::config::keys;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/blueflood-forward");
const UPDATE_VAR: &str = "BFF_UPDATE_CHART_SCHEMA";

/// Chart values the chart writes into config.toml as a key, by their place in
/// `values.schema.json`. (`forwarder.prefix` is a plain string either way;
/// `forwarder.shutdownTimeout` is a whole number because the chart adds it to the grace period.)
const CHART_VALUES: &[(&str, &str)] = &[
    ("forwarder/blueflood", "blueflood"),
    ("forwarder/tenant", "tenant"),
    ("forwarder/ttl", "ttl"),
    ("forwarder/interval", "interval"),
    ("forwarder/logFormat", "log_format"),
    ("forwarder/logLevel", "log_level"),
    ("auth/method", "auth_method"),
    ("auth/url", "auth_url"),
    ("auth/domain", "auth_domain"),
    ("spool/fullPolicy", "spool_full_policy"),
    ("spool/fsync", "spool_fsync"),
    ("spool/threshold", "spool_threshold"),
    ("spool/drainRate", "spool_drain_rate"),
];

/// Every generated part of `values.schema.json`: its path (object keys) and its content.
fn generated() -> Vec<(Vec<String>, Value)> {
    let path = |place: &str| {
        let mut p = vec!["properties".to_owned()];
        for (i, part) in place.split('/').enumerate() {
            if i > 0 {
                p.push("properties".to_owned());
            }
            p.push(part.to_owned());
        }
        p
    };
    let mut parts = vec![(path("forwarder/config"), forwarder_config_schema())];
    for (place, key) in CHART_VALUES {
        let mut schema = key_schema(key).unwrap_or_else(|| panic!("{place}: no key {key:?}"));
        if let Value::Object(map) = &mut schema {
            map.insert(
                "$comment".into(),
                format!("The forwarder's {key}: generated from src/config/keys.rs").into(),
            );
        }
        parts.push((path(place), schema));
    }
    parts
}

#[test]
fn chart_schema_is_the_generated_one() {
    let file = PathBuf::from(CHART).join("values.schema.json");
    let mut text = std::fs::read_to_string(&file).expect("read values.schema.json");
    if std::env::var_os(UPDATE_VAR).is_some() {
        for (path, schema) in generated() {
            text = splice(&text, &path, &schema)
                .unwrap_or_else(|| panic!("no {} in {}", path.join("."), file.display()));
        }
        std::fs::write(&file, &text).expect("write values.schema.json");
    }
    let chart: Value = serde_json::from_str(&text).expect("values.schema.json is JSON");
    let stale: Vec<String> = generated()
        .into_iter()
        .filter(|(path, schema)| pointer(&chart, path) != Some(schema))
        .map(|(path, _)| path.join("."))
        .collect();
    assert!(
        stale.is_empty(),
        "{} differs from what src/config/keys.rs generates at {}: run \
         `{UPDATE_VAR}=1 cargo test --lib config::schema` and commit the file",
        file.display(),
        stale.join(", ")
    );
}

fn pointer<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// `text` with the value at `path` replaced by `schema`, pretty-printed at its indentation;
/// the rest of the file (its order, its formatting) is left as it is.
fn splice(text: &str, path: &[String], schema: &Value) -> Option<String> {
    let (start, end) = Scanner { text, at: 0 }.find(path)?;
    let line_start = text[..start].rfind('\n').map_or(0, |n| n + 1);
    let indent: String = text[line_start..]
        .chars()
        .take_while(|c| *c == ' ')
        .collect();
    let pretty = serde_json::to_string_pretty(schema).ok()?;
    let pretty = pretty.replace('\n', &format!("\n{indent}"));
    Some(format!("{}{pretty}{}", &text[..start], &text[end..]))
}

/// Just enough of a JSON reader to find where a value starts and ends.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn string(&mut self) -> Option<String> {
        let start = self.at;
        self.at += 1;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b'"' => break,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        serde_json::from_str(&self.text[start..self.at]).ok()
    }

    fn skip_value(&mut self) -> Option<()> {
        self.space();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth -= 1,
                        _ => {}
                    }
                    self.at += 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    /// The byte range of the value at `path` (object keys from here).
    fn find(&mut self, path: &[String]) -> Option<(usize, usize)> {
        self.space();
        let Some((first, rest)) = path.split_first() else {
            let start = self.at;
            self.skip_value()?;
            return Some((start, self.at));
        };
        (self.peek()? == b'{').then_some(())?;
        self.at += 1;
        loop {
            self.space();
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.space();
            (self.peek()? == b':').then_some(())?;
            self.at += 1;
            if key == *first {
                return self.find(rest);
            }
            self.skip_value()?;
            self.space();
            if self.peek()? == b',' {
                self.at += 1;
            }
        }
    }
}

#[test]
fn splice_replaces_one_value_and_keeps_the_rest() {
    let text = "{\n  \"a\": {\n    \"b\": [1, \"}\"],\n    \"c\": 2\n  },\n  \"d\": 3\n}\n";
    let path = ["a".to_owned(), "c".to_owned()];
    let out = splice(text, &path, &serde_json::json!({"x": 1})).unwrap();
    assert_eq!(
        out,
        "{\n  \"a\": {\n    \"b\": [1, \"}\"],\n    \"c\": {\n      \"x\": 1\n    }\n  },\n  \"d\": 3\n}\n"
    );
    assert_eq!(
        splice(text, &["a".to_owned(), "z".to_owned()], &Value::Null),
        None
    );
}

// ---------------------------------------------------------------- the chart's templates

fn helpers() -> String {
    std::fs::read_to_string(Path::new(CHART).join("templates/_helpers.tpl"))
        .expect("read _helpers.tpl")
}

/// The body of `{{- define "NAME" -}}` up to its closing `{{- end -}}`.
fn define<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("{{{{- define \"{name}\" -}}}}"))
        .unwrap_or_else(|| panic!("no define {name}"));
    let body = &text[start..];
    &body[..body.find("\n{{- end -}}").expect("closing end")]
}

fn managed_keys(text: &str) -> Vec<String> {
    let body = define(text, "blueflood-forward.managedKeys");
    body.split('"')
        .skip(3) // `define "name" -}}` then `list `
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_chart_names_only_real_keys() {
    let text = helpers();
    let managed = managed_keys(&text);
    assert!(managed.len() > 20, "{managed:?}");
    for name in &managed {
        assert!(
            name == "config" || keys::find_with_file(name).is_some(),
            "_helpers.tpl managedKeys: {name:?} is not a key of src/config/keys.rs"
        );
    }
    let config = define(&text, "blueflood-forward.configToml");
    let rendered: Vec<&str> = config
        .lines()
        .filter_map(|line| line.split_once(" = ").map(|(name, _)| name))
        .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    assert!(
        rendered.contains(&"tenant") && rendered.contains(&"spool_dir"),
        "{rendered:?}"
    );
    for name in rendered {
        assert!(
            keys::find_with_file(name).is_some(),
            "_helpers.tpl configToml renders {name:?}, which is not a key of src/config/keys.rs"
        );
        // admin_token_file: _validate.tpl refuses a second admin token in forwarder.config.
        assert!(
            name == "admin_token_file" || managed.iter().any(|m| m == name),
            "_helpers.tpl renders {name:?} but managedKeys does not refuse it in \
             forwarder.config (it would be written twice: invalid TOML)"
        );
    }
}
