//! The command line: a clap `Command` built from the key table, compatible with the original
//! forwarder's flags (short and long, underscored and dashed), and its conversion into the
//! command-line [`Layer`]. No flag has a clap default, so only flags actually given override
//! the lower layers; defaults live in the key table and are merely displayed here. Clap's `env`
//! feature is not used: the environment is a separate layer, and `--help` can then never show
//! a value taken from it.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ColorChoice, Command, value_parser};

use super::ConfigError;
use super::alias;
use super::keys::{self, Group, KEYS, Kind};
use super::raw::{Layer, LayerKind, Scalar};

const CONFIG_ARG: &str = "config";
/// The `check` subcommand and its one flag of its own.
pub(crate) const CHECK_COMMAND: &str = "check";
const NO_SEND_ARG: &str = "no_send";

const ABOUT: &str = "Receives Graphite carbon metrics (pickle and plaintext line protocols) and \
forwards them to Blueflood's HTTP ingest API, accounting for every datapoint.";

const AFTER_HELP: &str = "\
Every option is also a configuration key: snake_case in files (auth_url, buffer_bytes) and
BLUEFLOOD_FORWARD_<KEY> in the environment (BLUEFLOOD_FORWARD_TENANT, BLUEFLOOD_FORWARD_BUFFER_BYTES).
Precedence, lowest first: defaults < config file < environment < command line.
(The original forwarder let its config file override flags; here the command line wins.)

Any key X can be read from a file instead: X_file in a config file, BLUEFLOOD_FORWARD_X_FILE in
the environment, --key-file/--user-file on the command line. One trailing newline is removed.
Within one source X_file wins over X; across sources the higher source wins.

-c/--config FILE (or BLUEFLOOD_FORWARD_CONFIG): a name ending in .toml is TOML with the keys at
top level; any other name is the original's INI format with the keys in section
[blueflood_carbon_forwarder], where an empty value (user=) means not set, as in the original.
Unknown keys are errors; prefix is accepted for metric_prefix.

Durations are seconds (fractions allowed). Byte sizes are integers, optionally with a suffix
(KiB, MiB, GiB, or KB, MB, GB).";

/// What the command line gave: its layer, the config file it named, and `check` (with
/// whether to send its datapoint) when that subcommand was given.
#[derive(Debug)]
pub(crate) struct CliOutcome {
    pub layer: Layer,
    pub config: Option<PathBuf>,
    pub check: Option<bool>,
}

fn help_text(spec: &keys::KeySpec) -> String {
    match spec.default {
        Some(default) if !spec.secret && spec.kind == Kind::Value && !default.is_empty() => {
            format!("{} [default: {default}]", spec.help)
        }
        _ => spec.help.to_owned(),
    }
}

/// The full command, also used to render `--help`.
pub(crate) fn command() -> Command {
    let mut cmd = Command::new("blueflood-forward")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .after_help(AFTER_HELP)
        .color(ColorChoice::Never)
        // Twisted's option parser let a repeated flag replace the earlier one.
        .args_override_self(true);
    for group in Group::ALL {
        for spec in KEYS.iter().filter(|k| k.group == group) {
            let long = spec.long();
            let mut arg = Arg::new(spec.key)
                // Global: `check` takes the very same flags as a run, before or after it.
                .global(true)
                .long(long.clone())
                .value_name(spec.value_name)
                .help(help_text(spec))
                .help_heading(group.heading())
                .value_parser(value_parser!(String))
                // `-i -1` should reach validation and get its message, not "unexpected argument".
                .allow_negative_numbers(true)
                .action(ArgAction::Set);
            if let Some(short) = spec.short {
                arg = arg.short(short);
            }
            if spec.key.contains('_') {
                // The original spelled its flags with underscores; its README with dashes.
                arg = if group == Group::Original {
                    arg.visible_alias(spec.key)
                } else {
                    arg.alias(spec.key)
                };
            }
            for old_name in alias::of(spec.key) {
                arg = arg.visible_alias(old_name.replace('_', "-"));
            }
            if spec.kind == Kind::Switch {
                arg = arg
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value("true");
            }
            cmd = cmd.arg(arg);
            if spec.cli_file_flag {
                cmd = cmd.arg(
                    Arg::new(spec.file_key())
                        .global(true)
                        .long(format!("{long}-file"))
                        .alias(spec.file_key())
                        .value_name("PATH")
                        .help(format!(
                            "Read {} from PATH (one trailing newline removed)",
                            spec.key
                        ))
                        .help_heading(group.heading())
                        .value_parser(value_parser!(PathBuf))
                        .action(ArgAction::Set),
                );
            }
        }
        if group == Group::Original {
            cmd = cmd.arg(
                Arg::new(CONFIG_ARG)
                    .global(true)
                    .short('c')
                    .long(CONFIG_ARG)
                    .value_name("FILE")
                    .help(format!(
                        "Config file: *.toml is TOML, anything else the original's INI [env: {}]",
                        keys::ENV_CONFIG
                    ))
                    .help_heading(group.heading())
                    .value_parser(value_parser!(PathBuf))
                    .action(ArgAction::Set),
            );
        }
    }
    cmd.subcommand(
        Command::new(CHECK_COMMAND)
            .about(
                "Check the configuration, the credentials, Keystone and Blueflood (one datapoint \
                 <prefix>.blueflood_forward.check), print each step, exit 0 only if all passed",
            )
            .arg(
                Arg::new(NO_SEND_ARG)
                    .long("no-send")
                    .help("Do not send the check datapoint")
                    .action(ArgAction::SetTrue),
            ),
    )
}

/// Parses `args` (program name first). `--help`/`--version` become `ConfigError::Display`.
pub(crate) fn parse(args: Vec<OsString>) -> Result<CliOutcome, ConfigError> {
    let matches = command().try_get_matches_from(args).map_err(clap_error)?;
    let mut layer = Layer::new(LayerKind::CommandLine);
    for spec in KEYS {
        if let Some(value) = matches.get_one::<String>(spec.key) {
            layer.set(spec, Scalar::Str(value.clone()));
        }
    }
    for spec in KEYS.iter().filter(|k| k.cli_file_flag) {
        if let Some(path) = matches.get_one::<PathBuf>(&spec.file_key()) {
            layer.set_file(spec, path.clone(), format!("--{}-file", spec.long()));
        }
    }
    Ok(CliOutcome {
        layer,
        config: matches.get_one::<PathBuf>(CONFIG_ARG).cloned(),
        check: matches
            .subcommand_matches(CHECK_COMMAND)
            .map(|m| !m.get_flag(NO_SEND_ARG)),
    })
}

fn clap_error(err: clap::Error) -> ConfigError {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            ConfigError::Display(err.render().to_string())
        }
        _ => {
            let mut text = err.render().to_string();
            // A mistyped `--kye=SECRET` would otherwise be echoed back whole.
            if let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg)
                && let Some((name, _)) = arg.split_once('=')
                && arg.starts_with('-')
            {
                text = text.replace(arg.as_str(), &format!("{name}=..."));
            }
            ConfigError::Invalid(text.trim_end().to_owned())
        }
    }
}

#[cfg(test)]
mod tests;
