//! Untyped layers of configuration and how they combine: each source (defaults, config file,
//! environment, command line) becomes a [`Layer`] of `key → value`, figment merges them in
//! order, and [`resolve`] turns the winners into [`Entry`]s that remember where they came from,
//! reading `*_file` indirections on the way. Nothing here knows what a key means.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Num, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::ConfigError;
use super::alias;
use super::keys::{self, KEYS, KeySpec};
use crate::files;

/// Which source a layer is; later variants override earlier ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LayerKind {
    Defaults,
    ConfigFile(PathBuf),
    Environment,
    CommandLine,
}

impl LayerKind {
    /// Unique per layer: figment tags every value with its provider's metadata, and this name
    /// is how a merged value is traced back to its layer.
    fn metadata_name(&self) -> &'static str {
        match self {
            LayerKind::Defaults => "defaults",
            LayerKind::ConfigFile(_) => "config file",
            LayerKind::Environment => "environment",
            LayerKind::CommandLine => "command line",
        }
    }
}

/// A scalar as a source gave it; the validator decides what it must be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Str(String),
    Int(i128),
    Float(f64),
    Bool(bool),
}

#[derive(Debug, Clone)]
pub(crate) enum RawValue {
    Scalar(Scalar),
    /// `<key>_file`: the value is the content of `path`. `via` is how the user spelled it
    /// (`--key-file`, `BLUEFLOOD_FORWARD_KEY_FILE`, `key_file`), for messages.
    File {
        path: PathBuf,
        via: String,
    },
}

/// One source's values, keyed by [`KeySpec::key`] (a `<key>_file` is stored under `<key>`).
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub kind: LayerKind,
    pub values: BTreeMap<&'static str, RawValue>,
}

impl Layer {
    pub(crate) fn new(kind: LayerKind) -> Self {
        Layer {
            kind,
            values: BTreeMap::new(),
        }
    }

    /// Sets `key` from a plain value unless the same layer already has `<key>_file`: within
    /// one layer the file wins, whatever order the two were written in.
    pub(crate) fn set(&mut self, spec: &'static KeySpec, value: Scalar) {
        if !matches!(self.values.get(spec.key), Some(RawValue::File { .. })) {
            self.values.insert(spec.key, RawValue::Scalar(value));
        }
    }

    pub(crate) fn set_file(&mut self, spec: &'static KeySpec, path: PathBuf, via: String) {
        self.values.insert(spec.key, RawValue::File { path, via });
    }

    pub(crate) fn defaults() -> Self {
        let mut layer = Layer::new(LayerKind::Defaults);
        for spec in KEYS {
            if let Some(default) = spec.default {
                layer.set(spec, Scalar::Str(default.to_owned()));
            }
        }
        layer
    }
}

// Encoding of a `RawValue::File` inside figment: a dict can never come from a source (files
// reject tables before they become layers), so it is unambiguous.
const FILE_PATH: &str = "path";
const FILE_VIA: &str = "via";

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.kind.metadata_name())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, raw) in &self.values {
            let value = match raw {
                RawValue::Scalar(Scalar::Str(s)) => Value::from(s.clone()),
                RawValue::Scalar(Scalar::Int(i)) => Value::from(*i),
                RawValue::Scalar(Scalar::Float(f)) => Value::from(*f),
                RawValue::Scalar(Scalar::Bool(b)) => Value::from(*b),
                RawValue::File { path, via } => {
                    let mut file = Dict::new();
                    file.insert(
                        FILE_PATH.into(),
                        Value::from(path.to_string_lossy().into_owned()),
                    );
                    file.insert(FILE_VIA.into(), Value::from(via.clone()));
                    Value::from(file)
                }
            };
            dict.insert((*key).to_owned(), value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Where a resolved value came from, for `SecretSource` and for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub layer: LayerKind,
    /// Set when the value was read from a `<key>_file`: the file and how it was named.
    pub file: Option<(PathBuf, String)>,
}

/// Renders the origin for a message about `spec`, e.g. `set by environment variable X`.
pub(crate) struct OriginDisplay<'a>(pub &'a Origin, pub &'a KeySpec);

impl fmt::Display for OriginDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let OriginDisplay(origin, spec) = self;
        if let Some((path, via)) = &origin.file {
            return write!(f, "read from file {:?} (named by {via})", path.display());
        }
        match &origin.layer {
            LayerKind::Defaults => write!(f, "the default"),
            LayerKind::ConfigFile(path) => write!(f, "set in config file {:?}", path.display()),
            LayerKind::Environment => write!(f, "set by environment variable {}", spec.env_var()),
            LayerKind::CommandLine => write!(f, "set on the command line"),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub value: Scalar,
    pub origin: Origin,
}

/// Merged configuration: every key that has a value, after `*_file` indirection.
pub(crate) type Resolved = BTreeMap<&'static str, Entry>;

/// Merges `layers` (lowest first) and reads the `*_file` values that won. Only winners are
/// read, so a key file named in a config file but overridden on the command line need not exist.
pub(crate) fn resolve(layers: Vec<Layer>) -> Result<Resolved, ConfigError> {
    let mut figment = Figment::new();
    for layer in &layers {
        figment = figment.merge(layer.clone());
    }
    let mut resolved = Resolved::new();
    for spec in KEYS {
        let Ok(value) = figment.find_value(spec.key) else {
            continue;
        };
        let layer = figment
            .get_metadata(value.tag())
            .and_then(|md| layers.iter().find(|l| l.kind.metadata_name() == md.name))
            .map(|l| l.kind.clone())
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "internal error: cannot tell where key {:?} came from",
                    spec.key
                ))
            })?;
        let entry = match value {
            Value::Dict(_, dict) => {
                let path = dict.get(FILE_PATH).and_then(Value::as_str).unwrap_or("");
                let via = dict.get(FILE_VIA).and_then(Value::as_str).unwrap_or("");
                let path = PathBuf::from(path);
                let content = read_value_file(spec, &path, via)?;
                Entry {
                    value: Scalar::Str(content),
                    origin: Origin {
                        layer,
                        file: Some((path, via.to_owned())),
                    },
                }
            }
            other => Entry {
                value: scalar(&other).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "internal error: key {:?} has a non-scalar value",
                        spec.key
                    ))
                })?,
                origin: Origin { layer, file: None },
            },
        };
        resolved.insert(spec.key, entry);
    }
    Ok(resolved)
}

/// A figment value as a scalar, or `None` for tables and arrays.
pub(crate) fn scalar(value: &Value) -> Option<Scalar> {
    match value {
        Value::String(_, s) => Some(Scalar::Str(s.clone())),
        Value::Char(_, c) => Some(Scalar::Str(c.to_string())),
        Value::Bool(_, b) => Some(Scalar::Bool(*b)),
        Value::Num(_, n) => Some(match n {
            Num::F32(f) => Scalar::Float(f64::from(*f)),
            Num::F64(f) => Scalar::Float(*f),
            other => Scalar::Int(
                other
                    .to_i128()
                    .or_else(|| other.to_u128().and_then(|u| i128::try_from(u).ok()))?,
            ),
        }),
        Value::Empty(..) | Value::Dict(..) | Value::Array(..) => None,
    }
}

/// Reads a `*_file` value. Secrets are mounted as files with a trailing newline (`echo`,
/// Kubernetes, Docker), so exactly one `\n` or `\r\n` is dropped; anything else is kept as is.
/// Only a regular file of at most [`files::MAX_VALUE_FILE_BYTES`], read within
/// [`files::READ_TIMEOUT`] (a FIFO or a hung mount must not hang the start).
/// Messages name the key and the path, never the content.
fn read_value_file(spec: &KeySpec, path: &Path, via: &str) -> Result<String, ConfigError> {
    let bytes = files::read_small_within(path, files::MAX_VALUE_FILE_BYTES, files::READ_TIMEOUT)
        .map_err(|e| {
            ConfigError::Invalid(format!(
                "cannot read file {:?} for key {:?} (named by {via}): {e}",
                path.display(),
                spec.key
            ))
        })?;
    let mut text = String::from_utf8(bytes).map_err(|_| {
        ConfigError::Invalid(format!(
            "file {:?} for key {:?} (named by {via}) is not valid UTF-8",
            path.display(),
            spec.key
        ))
    })?;
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
    Ok(text)
}

/// The environment layer, from the given variables only (never the process environment, so
/// `load` is a function of its arguments). Returns the layer and the `BLUEFLOOD_FORWARD_*`
/// names that are not keys.
pub(crate) fn env_layer(env: &[(String, String)]) -> (Layer, Vec<String>) {
    let mut layer = Layer::new(LayerKind::Environment);
    let mut unknown = Vec::new();
    // Plain values before `<KEY>_FILE` so that the file wins regardless of the vector's
    // order; within each, aliases before a key's own name, which then wins.
    let mut found = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(keys::ENV_PREFIX) else {
            continue;
        };
        if name == keys::ENV_CONFIG {
            continue;
        }
        let rest = rest.to_ascii_lowercase();
        let canonical = alias::canonical(&rest);
        match keys::find_with_file(canonical.as_deref().unwrap_or(&rest)) {
            Some((spec, is_file)) => found.push((is_file, canonical.is_none(), spec, name, value)),
            None => unknown.push(name.clone()),
        }
    }
    found.sort_by_key(|(is_file, own, ..)| (*is_file, *own));
    for (is_file, _, spec, name, value) in found {
        if is_file {
            layer.set_file(spec, PathBuf::from(value), name.clone());
        } else {
            layer.set(spec, Scalar::Str(value.clone()));
        }
    }
    (layer, unknown)
}

#[cfg(test)]
mod tests;
