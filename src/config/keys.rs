//! The one table of configuration keys. Everything that names a key (the command line, the
//! `BLUEFLOOD_FORWARD_*` environment, the INI and TOML files, `--help` and every error message)
//! is derived from [`KEYS`], so a key cannot exist in one place and be missing in another,
//! and the defaults shown by `--help` are the very strings that are parsed as defaults. Each
//! key's [`ValueType`] says what its value may be; the Helm chart's JSON Schema is built from it.
//! Code names a key by [`Key`], made from the same list as [`KEYS`]; looking a key up by its
//! name ([`find`]) is only for names that come from outside (flags, files, the environment).

use super::schema::ValueType;

mod table;
pub(crate) use table::{KEYS, Key};

/// Prefix of every environment variable the forwarder reads.
pub(crate) const ENV_PREFIX: &str = "BLUEFLOOD_FORWARD_";

/// Environment variable naming the configuration file (the same as `--config`).
pub(crate) const ENV_CONFIG: &str = "BLUEFLOOD_FORWARD_CONFIG";

/// Suffix that turns any key into "read this key's value from the named file".
pub(crate) const FILE_SUFFIX: &str = "_file";

/// Where a key is listed in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// The original forwarder's flags, same spelling, meaning and default.
    Original,
    Listeners,
    Buffer,
    Delivery,
    InputLimits,
    Operation,
    Authentication,
    Spool,
}

impl Group {
    pub(crate) const ALL: [Group; 8] = [
        Group::Original,
        Group::Listeners,
        Group::Buffer,
        Group::Spool,
        Group::Delivery,
        Group::InputLimits,
        Group::Operation,
        Group::Authentication,
    ];

    pub(crate) fn heading(self) -> &'static str {
        match self {
            Group::Original => "Options of the original blueflood-carbon-forwarder (same meaning)",
            Group::Listeners => "Additional listeners",
            Group::Buffer => "Buffer",
            Group::Delivery => "Delivery to Blueflood",
            Group::InputLimits => "Input limits",
            Group::Operation => "Operation",
            Group::Authentication => "Authentication (Keystone) and credentials",
            Group::Spool => "Disk spool (off unless --spool-dir is set)",
        }
    }
}

/// Whether a key takes a value or is a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Value,
    /// A boolean: the bare flag means true; `--flag=false` is accepted too.
    Switch,
}

#[derive(Debug)]
pub(crate) struct KeySpec {
    /// snake_case: the TOML and INI key; upper-cased after [`ENV_PREFIX`] for the environment.
    pub key: &'static str,
    pub short: Option<char>,
    /// Parsed exactly like a user-supplied value; `None` when the key is unset by default.
    pub default: Option<&'static str>,
    pub value_name: &'static str,
    pub help: &'static str,
    pub group: Group,
    pub kind: Kind,
    /// Never shown: not in `--help`, not in any error message.
    pub secret: bool,
    /// Also offer `--<key>-file PATH` on the command line (files and the environment accept
    /// `<key>_file` for every key).
    pub cli_file_flag: bool,
    /// What `validate.rs` accepts; the chart's JSON Schema is built from it.
    pub ty: ValueType,
}

impl KeySpec {
    /// The long flag, dashed (`auth-url`); the underscored spelling is an alias.
    pub(crate) fn long(&self) -> String {
        self.key.replace('_', "-")
    }

    pub(crate) fn env_var(&self) -> String {
        format!("{ENV_PREFIX}{}", self.key.to_ascii_uppercase())
    }

    pub(crate) fn file_key(&self) -> String {
        format!("{}{FILE_SUFFIX}", self.key)
    }

    pub(crate) fn env_file_var(&self) -> String {
        format!("{ENV_PREFIX}{}", self.file_key().to_ascii_uppercase())
    }

    /// `flag -k/--key, env BLUEFLOOD_FORWARD_KEY`: how a user can set this key.
    pub(crate) fn how_to_set(&self) -> String {
        let flag = match self.short {
            Some(c) => format!("-{c}/--{}", self.long()),
            None => format!("--{}", self.long()),
        };
        format!("flag {flag}, env {}", self.env_var())
    }
}

pub(crate) fn find(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.key == key)
}

/// Looks up `name` as either a key or `<key>_file`; the bool says which.
pub(crate) fn find_with_file(name: &str) -> Option<(&'static KeySpec, bool)> {
    if let Some(spec) = find(name) {
        return Some((spec, false));
    }
    let base = name.strip_suffix(FILE_SUFFIX)?;
    find(base).map(|spec| (spec, true))
}

/// The known key closest to a misspelled `name`, if any is close enough to be a likely typo.
pub(crate) fn suggest(name: &str) -> Option<String> {
    let (base, suffix) = match name.strip_suffix(FILE_SUFFIX) {
        Some(base) => (base, FILE_SUFFIX),
        None => (name, ""),
    };
    KEYS.iter()
        .map(|k| (edit_distance(base, k.key), k.key))
        .filter(|(d, key)| *d <= 2.max(key.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, key)| format!("{key}{suffix}"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
