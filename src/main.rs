//! The `blueflood-forward` binary: load the configuration (exit 64 when it is wrong), start the
//! forwarder (exit 1 when that fails), and shut it down gracefully on SIGTERM or SIGINT, at
//! once on a second one (exit 143 or 130) — or, during `shutdown_delay`, a second one ends the
//! delay and a third cuts the drain. Everything else is the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use blueflood_forward::{app, check, config, telemetry};

fn main() -> ExitCode {
    // Non-UTF-8 variables cannot be ours (every key is ASCII): skip them instead of panicking.
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    // Until the configured subscriber exists, warnings from loading go to stderr as text.
    let early = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .finish();
    let loaded = tracing::subscriber::with_default(early, || {
        config::load_with_mode(std::env::args_os().collect(), env)
    });
    let (mode, settings) = match loaded {
        Ok(s) => s,
        Err(config::LoadError { mode, error: e }) => {
            let code = e.exit_code();
            if code == 0 {
                println!("{e}");
            } else {
                if let Some(config::Mode::Check { .. }) = mode {
                    println!("FAILED  config: {e}\ncheck FAILED");
                }
                eprintln!("blueflood-forward: {e}");
            }
            return ExitCode::from(code as u8);
        }
    };
    let telemetry = telemetry::init(&settings.log);
    if let config::Mode::Check { send } = mode {
        let code = check(&settings, send);
        telemetry.shutdown();
        return code;
    }
    let code = match run(settings) {
        Ok(code) => code,
        Err(e) => {
            // Once, in plain text, whatever the log format and level: the process's last word
            // must be seen even with --log-level off.
            eprintln!("blueflood-forward: {e:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

/// `blueflood-forward check`: exit 0 only if every step passed.
fn check(settings: &config::Settings, send: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("blueflood-forward: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let passed = runtime.block_on(check::run(settings, send, &mut std::io::stdout()));
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs until SIGTERM or SIGINT, then waits out `shutdown_delay` (a second signal ends it) and
/// drains; a signal during the drain cuts it short.
/// The exit code is 0, or that of a process killed by the second signal (128 + its number).
fn run(settings: config::Settings) -> anyhow::Result<ExitCode> {
    // Before anything opens a descriptor it would count against.
    app::fd_limit::raise_open_files_limit(&settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("blueflood-forward")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // A start error names what failed (and the key to change) by itself.
        let running = app::start(settings).await?;
        let mut signals = Signals::install()?;
        let first = signals.next().await;
        tracing::info!("{first} received");
        running.shutdown();
        running.wait_delay(signals.next()).await;
        let (_, cut) = running.wait_unless(signals.next()).await;
        Ok(match cut {
            None => ExitCode::SUCCESS,
            Some(signal) => ExitCode::from(Signals::exit_code(signal)),
        })
    })
}

/// SIGTERM and SIGINT, installed once so that a second one is seen too.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    /// The shell's code for a process killed by `signal`.
    fn exit_code(signal: &str) -> u8 {
        match signal {
            "SIGINT" => 128 + 2,
            _ => 128 + 15,
        }
    }
}
