//! Old names still accepted for renamed keys, so that a configuration written for an earlier
//! version keeps its meaning. An alias is another spelling of the key in every source (the
//! command line, config files, the environment, and with `_file`); where one source gives both
//! spellings, the key's own name wins. `keys.rs` stays the one table of keys: this only maps
//! names onto it.

use super::keys::{FILE_SUFFIX, Key};

/// `(alias, key)`. `prefix` was this forwarder's name for the original's `metric_prefix`.
const ALIASES: &[(&str, Key)] = &[("prefix", Key::MetricPrefix)];

/// The key `name` stands for when it is an alias (`prefix` → `metric_prefix`, `prefix_file` →
/// `metric_prefix_file`); `None` for every other name.
pub(crate) fn canonical(name: &str) -> Option<String> {
    let (base, suffix) = match name.strip_suffix(FILE_SUFFIX) {
        Some(base) => (base, FILE_SUFFIX),
        None => (name, ""),
    };
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == base)
        .map(|(_, key)| format!("{}{suffix}", key.name()))
}

/// The aliases of `key`, for the command line (`--prefix`).
pub(crate) fn of(key: &str) -> impl Iterator<Item = &'static str> + '_ {
    ALIASES
        .iter()
        .filter(move |(_, k)| k.name() == key)
        .map(|(alias, _)| *alias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys;

    #[test]
    fn aliases_name_real_keys_and_are_not_keys_themselves() {
        for (alias, key) in ALIASES {
            assert!(
                keys::find(key.name()).is_some(),
                "{alias} -> {key:?}: no such key"
            );
            assert!(keys::find(alias).is_none(), "{alias} is a key itself");
        }
    }

    #[test]
    fn file_forms_follow() {
        assert_eq!(canonical("prefix").as_deref(), Some("metric_prefix"));
        assert_eq!(
            canonical("prefix_file").as_deref(),
            Some("metric_prefix_file")
        );
        assert_eq!(canonical("metric_prefix"), None);
        assert_eq!(canonical("tenant"), None);
        assert_eq!(of("metric_prefix").collect::<Vec<_>>(), ["prefix"]);
        assert_eq!(of("tenant").count(), 0);
    }
}
