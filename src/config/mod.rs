//! Configuration: command line (compatible with the original forwarder's flags), legacy INI
//! and TOML files, `BLUEFLOOD_FORWARD_*` environment, `*_file` indirection, layered
//! defaults < file < environment < command line, and validation into [`Settings`].
//!
//! # Rules
//!
//! * **Layering** (lowest first): built-in defaults, the config file, the environment, the
//!   command line; figment merges them and a higher layer replaces a lower one key by key.
//!   Only flags actually present on the command line take part. This deliberately differs
//!   from the original forwarder, where config file values overrode flags: the modern order
//!   lets an operator override a packaged file for one run.
//! * **Config file**: `--config FILE`, else `BLUEFLOOD_FORWARD_CONFIG`. A name ending in
//!   `.toml` (any case) is TOML with the snake_case keys at top level; any other name is the
//!   original's INI format, keys in section `[blueflood_carbon_forwarder]` (the original's long
//!   flag names and the new keys). A missing section or an unknown key is an error. In the INI
//!   format an empty value means "not set", as in the original (`user=` leaves the default: no
//!   authentication), except `tenant=`, which is refused (the original's empty tenant made a
//!   broken URL).
//! * **Aliases** (`alias`): an old name of a renamed key (`prefix` for `metric_prefix`) is
//!   accepted in every source; where one source gives both, the key's own name wins.
//! * **Environment**: `BLUEFLOOD_FORWARD_<KEY>` for every key, read from the `env` argument
//!   only, never from the process environment. Unknown `BLUEFLOOD_FORWARD_*` names are not
//!   errors (orchestrators inject variables such as Kubernetes' `<SERVICE>_PORT` with this
//!   very prefix) but are logged as a warning.
//! * **`*_file`**: any key `X` may instead be given as `X_file` (config file key, env
//!   `BLUEFLOOD_FORWARD_X_FILE`, `--key-file`/`--user-file` on the command line) naming a
//!   file whose content, minus one trailing `\n` or `\r\n`, is the value. `X_file` stands
//!   for `X` in its own layer and wins over `X` there; across layers the usual order applies,
//!   so `--key` beats a `key_file` in the config file. Only the winning file is read. A
//!   relative `X_file` in a config file is relative to that file's directory.
//! * **Secrets**: the API key never appears in `--help` or in an error message.

mod alias;
mod cli;
mod endpoint;
mod file;
mod keys;
mod legacy_ini;
mod log_level;
mod raw;
mod schema;
pub mod settings;
mod validate;

pub use schema::{MAX_EXACT_INTEGER, forwarder_config_schema, key_schema};
pub use settings::Settings;

use std::ffi::OsString;
use std::path::PathBuf;

/// Exit code for a configuration error (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// Why the configuration could not be loaded. Its `Display` is the one message the user sees.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--help` or `--version` was asked for: print the text and exit 0.
    #[error("{0}")]
    Display(String),
    /// A bad flag or a bad value: one message naming the key, the value and what is allowed.
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Display(_) => 0,
            ConfigError::Invalid(_) => EXIT_CONFIG,
        }
    }
}

/// Loads and validates the configuration from the command line `args` (the first is the
/// program name) and the environment `env`. Reads the files they name; binds nothing.
/// See the module documentation for the precedence and `*_file` rules.
pub fn load(args: Vec<OsString>, env: Vec<(String, String)>) -> Result<Settings, ConfigError> {
    load_with_mode(args, env)
        .map(|(_, settings)| settings)
        .map_err(|e| e.error)
}

/// What the command line asks for: a run, or `check` (with whether to send its datapoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Check { send: bool },
}

/// A configuration that could not be loaded, with the mode when the command line itself could
/// be parsed: a `check` reports the failure as its first step.
#[derive(Debug)]
pub struct LoadError {
    pub mode: Option<Mode>,
    pub error: ConfigError,
}

/// Like [`load`], also telling whether the `check` subcommand was given (`check` may stand
/// anywhere among the flags, so only the parsed command line can tell).
pub fn load_with_mode(
    args: Vec<OsString>,
    env: Vec<(String, String)>,
) -> Result<(Mode, Settings), LoadError> {
    let cli = cli::parse(args).map_err(|error| LoadError { mode: None, error })?;
    let mode = match cli.check {
        Some(send) => Mode::Check { send },
        None => Mode::Run,
    };
    load_layers(cli, env)
        .map(|settings| (mode, settings))
        .map_err(|error| LoadError {
            mode: Some(mode),
            error,
        })
}

fn load_layers(cli: cli::CliOutcome, env: Vec<(String, String)>) -> Result<Settings, ConfigError> {
    let (env_layer, unknown_env) = raw::env_layer(&env);
    for name in &unknown_env {
        tracing::warn!(variable = %name, "ignoring unknown environment variable");
    }

    let config_path = cli.config.clone().or_else(|| {
        env.iter()
            .rev()
            .find(|(name, value)| name == keys::ENV_CONFIG && !value.is_empty())
            .map(|(_, value)| PathBuf::from(value))
    });

    let mut layers = vec![raw::Layer::defaults()];
    if let Some(path) = &config_path {
        layers.push(file::load(path)?);
    }
    layers.push(env_layer);
    layers.push(cli.layer);

    let resolved = raw::resolve(layers)?;
    validate::settings(&resolved)
}

/// `key "endpoint" (flag -e/--endpoint, env BLUEFLOOD_FORWARD_ENDPOINT)`: how a message about
/// a setting names it, so that the user knows what to change (and no other module needs to
/// know flag names).
pub fn describe_key(key: &str) -> String {
    match keys::find(key) {
        Some(spec) => format!("key {key:?} ({})", spec.how_to_set()),
        None => format!("key {key:?}"),
    }
}

/// The `--help` text, as `load` would print it.
pub fn help_text() -> String {
    cli::command().render_help().to_string()
}
