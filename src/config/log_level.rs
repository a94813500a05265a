//! The `log_level` key: a level, or `EnvFilter` directives (`info,blueflood_forward=debug`),
//! checked level by level. `EnvFilter` itself takes any word without `=` for a target name, so
//! `warning` or `debugg` would enable one nonexistent target and silence every log; here a
//! directive must end in a known level. Python's names (`warning`, `critical`, which the
//! original's users know from Twisted and `logging`) are accepted for `warn` and `error`.

use tracing_subscriber::EnvFilter;

/// Level names accepted (any case), and the `tracing` level each stands for.
const LEVELS: &[(&str, &str)] = &[
    ("trace", "trace"),
    ("debug", "debug"),
    ("info", "info"),
    ("warn", "warn"),
    ("warning", "warn"),
    ("error", "error"),
    ("critical", "error"),
    ("off", "off"),
];

/// What is allowed, for the error message.
pub(crate) const EXPECTED: &str = "a level: trace, debug, info, warn (or warning), error (or \
     critical) or off; or directives such as info,blueflood_forward=debug, each ending in a level";

/// The filter to install for `text` (synonyms replaced), or `None` when a directive does not
/// end in a known level or the result is not a valid filter.
pub(crate) fn filter(text: &str) -> Option<String> {
    let mut directives = Vec::new();
    // Empty directives (`info,`) are ignored, as EnvFilter does; at least one must remain.
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        // The level follows the last `=`; span field filters before it may hold `=` too.
        let (target, level) = match directive.rsplit_once('=') {
            Some((target, level)) => (Some(target.trim()), level),
            None => (None, directive),
        };
        let level = LEVELS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(level.trim()))
            .map(|(_, level)| *level)?;
        directives.push(match target {
            Some("") => return None,
            Some(target) => format!("{target}={level}"),
            None => level.to_owned(),
        });
    }
    if directives.is_empty() {
        return None;
    }
    let filter = directives.join(",");
    EnvFilter::builder().parse(&filter).ok().map(|_| filter)
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn levels_synonyms_and_directives() {
        for (given, wanted) in [
            ("info", "info"),
            ("WARNING", "warn"),
            ("warning", "warn"),
            ("critical", "error"),
            (" Debug ", "debug"),
            ("off", "off"),
            (
                "info,blueflood_forward=debug",
                "info,blueflood_forward=debug",
            ),
            ("debug,hyper=warning", "debug,hyper=warn"),
            ("info,", "info"),
            (
                "blueflood_forward[flush{datapoints=5}]=trace",
                "blueflood_forward[flush{datapoints=5}]=trace",
            ),
        ] {
            assert_eq!(filter(given).as_deref(), Some(wanted), "{given:?}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for given in [
            "",
            " , ",
            "debugg",
            "verbose",
            "blueflood_forward",
            "info,blueflood_forward=loud",
            "=debug",
            "[[[",
            "5",
        ] {
            assert_eq!(filter(given), None, "{given:?}");
        }
    }
}
