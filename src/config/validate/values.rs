//! Typed, uniform access to the resolved configuration: each accessor reads one key and
//! either returns its value or the one error shape every bad value gets (key, how to set it,
//! the value — never a secret's, never a URL's userinfo — where it came from, what is allowed).

use std::fmt::Display;
use std::time::Duration;

use super::super::ConfigError;
use super::super::endpoint::{self, Transport};
use super::super::keys::{Key, KeySpec};
use super::super::raw::{Entry, LayerKind, OriginDisplay, Resolved, Scalar};

/// Read access to the resolved values, producing uniform errors.
pub(super) struct Values<'a> {
    pub(super) resolved: &'a Resolved,
}

impl<'a> Values<'a> {
    /// The key's value as resolved, if any source (defaults included) gave one.
    pub(super) fn entry(&self, key: Key) -> (&'static KeySpec, Option<&'a Entry>) {
        let spec = key.spec();
        (spec, self.resolved.get(spec.key))
    }

    /// Every key with a default is always present; this covers the rest.
    pub(super) fn required(&self, key: Key) -> Result<(&'static KeySpec, &'a Entry), ConfigError> {
        match self.entry(key) {
            (spec, Some(entry)) => Ok((spec, entry)),
            (spec, None) => Err(ConfigError::Invalid(format!(
                "no value for key {:?} ({})",
                spec.key,
                spec.how_to_set()
            ))),
        }
    }

    pub(super) fn string(&self, key: Key) -> Result<String, ConfigError> {
        let (spec, entry) = self.required(key)?;
        as_string(spec, entry)
    }

    /// `None` when unset or empty.
    pub(super) fn optional_string(
        &self,
        key: Key,
    ) -> Result<Option<(String, &'a Entry)>, ConfigError> {
        match self.entry(key) {
            (_, None) => Ok(None),
            (spec, Some(entry)) => {
                let s = as_string(spec, entry)?;
                Ok((!s.is_empty()).then_some((s, entry)))
            }
        }
    }

    pub(super) fn boolean(&self, key: Key) -> Result<bool, ConfigError> {
        let (spec, entry) = self.required(key)?;
        let parsed = match &entry.value {
            Scalar::Bool(b) => Some(*b),
            Scalar::Int(0) => Some(false),
            Scalar::Int(1) => Some(true),
            // `ConfigParser.getboolean`'s words, so old INI files keep working.
            Scalar::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        };
        parsed.ok_or_else(|| invalid(spec, entry, "true or false"))
    }

    /// An unsigned integer in `min..=max`; `bytes` also accepts a size suffix.
    pub(super) fn integer(
        &self,
        key: Key,
        min: u64,
        max: u64,
        bytes: bool,
    ) -> Result<u64, ConfigError> {
        let (spec, entry) = self.required(key)?;
        let range = if max == u64::MAX {
            format!("an integer of at least {min}")
        } else {
            format!("an integer in {min}..={max}")
        };
        let what = if bytes {
            format!("{range} (bytes; suffixes KiB, MiB, GiB, KB, MB, GB allowed)")
        } else {
            range
        };
        let n = match &entry.value {
            Scalar::Int(i) => u64::try_from(*i).ok(),
            Scalar::Str(s) if bytes => parse_size(s),
            Scalar::Str(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(invalid(spec, entry, what)),
        }
    }

    /// A byte size that fits in memory.
    pub(super) fn size(&self, key: Key, min: u64, max: u64) -> Result<usize, ConfigError> {
        self.usize(key, min, max, true)
    }

    /// A plain count.
    pub(super) fn count(&self, key: Key, min: u64, max: u64) -> Result<usize, ConfigError> {
        self.usize(key, min, max, false)
    }

    pub(super) fn usize(
        &self,
        key: Key,
        min: u64,
        max: u64,
        bytes: bool,
    ) -> Result<usize, ConfigError> {
        let max = max.min(u64::try_from(usize::MAX).unwrap_or(u64::MAX));
        let n = self.integer(key, min, max, bytes)?;
        usize::try_from(n)
            .map_err(|_| ConfigError::Invalid(format!("{}: {n} is too large", key.name())))
    }

    /// Positive seconds, fractions allowed.
    pub(super) fn seconds(&self, key: Key) -> Result<Duration, ConfigError> {
        let (spec, entry) = self.required(key)?;
        seconds_number(&entry.value)
            .filter(|s| *s > 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| invalid(spec, entry, "a number of seconds greater than 0"))
    }

    /// Seconds, zero or more, fractions allowed (zero: off).
    pub(super) fn seconds_or_zero(&self, key: Key) -> Result<Duration, ConfigError> {
        let (spec, entry) = self.required(key)?;
        seconds_number(&entry.value)
            .filter(|s| *s >= 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| invalid(spec, entry, "a number of seconds, 0 (off) or more"))
    }

    /// A number above `above` and at most 1; `expected` says so in the error.
    pub(super) fn fraction(
        &self,
        key: Key,
        above: f64,
        expected: &str,
    ) -> Result<f64, ConfigError> {
        let (spec, entry) = self.required(key)?;
        let n = match &entry.value {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            Scalar::Str(s) => s.trim().parse::<f64>().ok(),
            Scalar::Bool(_) => None,
        };
        n.filter(|f| *f > above && *f <= 1.0)
            .ok_or_else(|| invalid(spec, entry, expected))
    }

    pub(super) fn choice<T: Copy>(
        &self,
        key: Key,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let (spec, entry) = self.required(key)?;
        let s = as_string(spec, entry)?;
        choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s.trim()))
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                invalid(spec, entry, format!("one of {}", names.join(", ")))
            })
    }

    pub(super) fn http_url(&self, key: Key) -> Result<url::Url, ConfigError> {
        let (spec, entry) = self.required(key)?;
        let s = as_string(spec, entry)?;
        url::Url::parse(s.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| invalid(spec, entry, "an http:// or https:// URL with a host"))
    }

    pub(super) fn endpoint(
        &self,
        key: Key,
        transport: Transport,
    ) -> Result<Option<(endpoint::Endpoint, &'a Entry)>, ConfigError> {
        let Some((text, entry)) = self.optional_string(key)? else {
            return Ok(None);
        };
        let spec = key.spec();
        endpoint::parse(&text, transport)
            .map(|e| Some((e, entry)))
            .map_err(|reason| {
                invalid(
                    spec,
                    entry,
                    format!("{}; {reason}", endpoint::expected(transport)),
                )
            })
    }
}

pub(super) fn as_string(spec: &KeySpec, entry: &Entry) -> Result<String, ConfigError> {
    match &entry.value {
        Scalar::Str(s) => Ok(s.clone()),
        // TOML users write numeric tenant IDs unquoted.
        Scalar::Int(i) => Ok(i.to_string()),
        _ => Err(invalid(spec, entry, "a string")),
    }
}

/// The single shape of every bad-value message.
pub(super) fn invalid(spec: &KeySpec, entry: &Entry, expected: impl Display) -> ConfigError {
    let shown = if spec.secret {
        "<redacted>".to_owned()
    } else {
        match &entry.value {
            // A refused URL may still carry a password in its userinfo.
            Scalar::Str(s) => format!("{:?}", crate::redact::url_text(s)),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    };
    let from = match entry.origin.layer {
        LayerKind::Defaults if entry.origin.file.is_none() => String::new(),
        _ => format!(", {}", OriginDisplay(&entry.origin, spec)),
    };
    ConfigError::Invalid(format!(
        "invalid value {shown} for key {:?} ({}){from}: expected {expected}",
        spec.key,
        spec.how_to_set()
    ))
}

/// `268435456`, `256MiB`, `256 MiB`, `1GB`, `64k`. Binary unless the unit says decimal (KB).
pub(super) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// A seconds value as a finite number: an integer, a float or number text (a bool is none).
fn seconds_number(value: &Scalar) -> Option<f64> {
    match value {
        Scalar::Int(i) => Some(*i as f64),
        Scalar::Float(f) => Some(*f),
        Scalar::Str(s) => s.trim().parse::<f64>().ok(),
        Scalar::Bool(_) => None,
    }
    .filter(|s| s.is_finite())
}

#[cfg(test)]
mod tests;
