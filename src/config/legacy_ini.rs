//! The original forwarder's config file: INI read by Python's `ConfigParser`, keys in section
//! `[blueflood_carbon_forwarder]` named like the long flags. Parsed the way `ConfigParser` did
//! (no quote or backslash processing, option names case-insensitive, the last duplicate wins,
//! an empty value is no value) so existing files keep their meaning; the new keys are accepted
//! there too.

use std::path::Path;

use ini::{Ini, ParseOption};

use super::ConfigError;
use super::raw::Scalar;

/// The one section the original read.
pub(crate) const SECTION: &str = "blueflood_carbon_forwarder";

/// The `(key, value)` pairs of [`SECTION`], in file order. Other sections are ignored, as the
/// original ignored them; keys outside any section are an error, as in `ConfigParser`.
pub(crate) fn pairs(path: &Path, text: &str) -> Result<Vec<(String, Option<Scalar>)>, ConfigError> {
    let options = ParseOption {
        // `ConfigParser` keeps quotes and backslashes: `key = "a\b"` is the 6 characters.
        enabled_quote: false,
        enabled_escape: false,
        ..ParseOption::default()
    };
    let ini = Ini::load_from_str_opt(text, options).map_err(|e| {
        ConfigError::Invalid(format!(
            "config file {:?} is not a valid INI file (name it *.toml for TOML): {e}",
            path.display()
        ))
    })?;
    if let Some((key, _)) = ini.section(None::<String>).and_then(|g| g.iter().next()) {
        return Err(ConfigError::Invalid(format!(
            "key {:?} in config file {:?} is outside any section; put it under [{SECTION}]",
            normalize(key),
            path.display()
        )));
    }
    let mut sections = ini.section_all(Some(SECTION)).peekable();
    if sections.peek().is_none() {
        return Err(ConfigError::Invalid(format!(
            "config file {:?} has no [{SECTION}] section; the INI format keeps its keys there \
             (name the file *.toml to use TOML with top-level keys)",
            path.display()
        )));
    }
    Ok(sections
        .flat_map(|props| props.iter())
        .map(|(key, value)| (normalize(key), strip_comment(value)))
        .filter(|(key, value)| !value.is_empty() || KEPT_WHEN_EMPTY.contains(&key.as_str()))
        .map(|(key, value)| (key, Some(Scalar::Str(value))))
        .collect())
}

/// In the original an empty value (`user=`, `metric_prefix=`, as its `example.conf` ships
/// them) meant "not set": the key keeps the value of the lower layers (the flag, here the
/// default). Except `tenant`, whose "not set" was the original's empty default, a broken
/// ingest URL (`/v2.0//ingest`): kept, so that validation names the key instead of silently
/// sending to the tenant `tenant`.
const KEPT_WHEN_EMPTY: &[&str] = &["tenant"];

/// Python 2's `ConfigParser` ends a value at a `;` that follows whitespace (an inline comment);
/// `#` and a `;` glued to text are part of the value.
fn strip_comment(value: &str) -> String {
    let cut = value
        .char_indices()
        .find(|&(i, c)| c == ';' && value[..i].ends_with(char::is_whitespace))
        .map_or(value.len(), |(i, _)| i);
    value[..cut].trim().to_owned()
}

/// `ConfigParser` lower-cases option names; dashes are accepted because the original's README
/// spells its flags with them (`auth-url`).
fn normalize(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('-', "_")
}

#[cfg(test)]
mod tests;
