//! The `--config` file: choosing its format by name (`*.toml` → TOML, anything else → the
//! original's INI), parsing TOML, and turning either format's key/value pairs into the
//! config-file [`Layer`], rejecting unknown keys so that a typo is never silently ignored.

use std::path::{Path, PathBuf};

use figment::Provider;
use figment::providers::{Format, Toml};

use super::ConfigError;
use super::alias;
use super::keys;
use super::legacy_ini;
use super::raw::{Layer, LayerKind, Scalar, scalar};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileFormat {
    Toml,
    LegacyIni,
}

impl FileFormat {
    /// By extension only: the original's INI files had no fixed extension (`.conf`, `.ini`,
    /// `.cfg`, none), so everything that is not explicitly TOML stays compatible with them.
    pub(crate) fn of(path: &Path) -> FileFormat {
        match path.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => FileFormat::Toml,
            _ => FileFormat::LegacyIni,
        }
    }
}

/// Reads and parses the config file at `path` into a layer.
pub(crate) fn load(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::Invalid(format!("cannot read config file {:?}: {e}", path.display()))
    })?;
    let format = FileFormat::of(path);
    let pairs = match format {
        FileFormat::Toml => toml_pairs(path, &text)?,
        FileFormat::LegacyIni => legacy_ini::pairs(path, &text)?,
    };
    layer_from_pairs(path, format, pairs)
}

fn toml_pairs(path: &Path, text: &str) -> Result<Vec<(String, Option<Scalar>)>, ConfigError> {
    let data = Toml::string(text).data().map_err(|e| {
        ConfigError::Invalid(format!(
            "config file {:?} is not valid TOML: {}",
            path.display(),
            without_source_lines(&e.to_string())
        ))
    })?;
    Ok(data
        .into_values()
        .flatten()
        .map(|(key, value)| {
            let value = scalar(&value);
            (key, value)
        })
        .collect())
}

/// The TOML parser quotes the offending source line, which may hold the API key: keep only
/// the position and the reason.
fn without_source_lines(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with('|')
                && !line.starts_with('^')
                && !line
                    .split_once('|')
                    .is_some_and(|(n, _)| n.trim().chars().all(|c| c.is_ascii_digit()))
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// `value` is `None` when the file gave a table or an array.
fn layer_from_pairs(
    path: &Path,
    format: FileFormat,
    pairs: Vec<(String, Option<Scalar>)>,
) -> Result<Layer, ConfigError> {
    let mut layer = Layer::new(LayerKind::ConfigFile(path.to_path_buf()));
    // Aliases first, so that a key's own name set later in the same file wins over them.
    let (aliased, own): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .map(|(name, value)| (alias::canonical(&name), name, value))
        .partition(|(canonical, ..)| canonical.is_some());
    for (canonical, name, value) in aliased.into_iter().chain(own) {
        let Some((spec, is_file)) = keys::find_with_file(canonical.as_deref().unwrap_or(&name))
        else {
            return Err(unknown_key(path, format, &name));
        };
        let shown = if is_file && canonical.is_none() {
            spec.file_key()
        } else {
            name.clone()
        };
        let value = value.ok_or_else(|| {
            ConfigError::Invalid(format!(
                "key {shown:?} in config file {:?} must be a string, number or boolean, \
                 not a table or an array",
                path.display()
            ))
        })?;
        if is_file {
            let Scalar::Str(file) = value else {
                return Err(ConfigError::Invalid(format!(
                    "key {shown:?} in config file {:?} must be a file name (a string)",
                    path.display()
                )));
            };
            layer.set_file(spec, relative_to(path, &file), shown);
        } else {
            layer.set(spec, value);
        }
    }
    Ok(layer)
}

/// `*_file` paths in a config file are relative to the config file's directory: services
/// usually run from `/`, and the secret sits next to the config more often than not.
fn relative_to(config: &Path, file: &str) -> PathBuf {
    let file = Path::new(file);
    match config.parent() {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file.to_path_buf(),
    }
}

fn unknown_key(path: &Path, format: FileFormat, name: &str) -> ConfigError {
    let place = match format {
        FileFormat::Toml => String::new(),
        FileFormat::LegacyIni => format!(" (section [{}])", legacy_ini::SECTION),
    };
    let hint = if format == FileFormat::Toml && name == legacy_ini::SECTION {
        "; a .toml file has its keys at top level, without the INI section".to_owned()
    } else {
        keys::suggest(name)
            .map(|s| format!("; did you mean {s:?}?"))
            .unwrap_or_default()
    };
    ConfigError::Invalid(format!(
        "unknown key {name:?} in config file {:?}{place}{hint}",
        path.display()
    ))
}

#[cfg(test)]
mod tests;
