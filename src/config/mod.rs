//! Configuration: command line (compatible with the original forwarder's flags), legacy INI
//! and TOML files, `BLUEFLOOD_FORWARD_*` environment, `*_file` indirection, layered
//! defaults < file < environment < command line, and validation into [`Settings`].

pub mod settings;

pub use settings::Settings;

use std::ffi::OsString;

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
pub fn load(_args: Vec<OsString>, _env: Vec<(String, String)>) -> Result<Settings, ConfigError> {
    Err(ConfigError::Invalid("not implemented yet".into()))
}
