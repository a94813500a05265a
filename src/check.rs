//! `blueflood-forward check`: the first thing to run after an install. With the same
//! configuration as a run it checks, in order, that the configuration is valid, that the
//! credentials can be read, that Keystone issues a token, and that Blueflood stores one
//! datapoint named `<prefix>.blueflood_forward.check` (skipped with `--no-send`). Each step
//! prints one line, `ok`, `FAILED` or `skipped`, with the reason; the result is "all passed".
//!
//! Owns: the steps and their report. It reuses the real pieces (`auth::provider`,
//! `HttpTransport`, `blueflood::classify`), so what passes here is what a run will do.

use std::io::Write;
use std::time::Duration;

use crate::auth::{self, AuthTiming, Token, TokenProvider};
use crate::config::settings::Settings;
use crate::forward::blueflood::{self, Verdict};
use crate::forward::transport::{HttpTransport, Prepared, Transport};
use crate::model::Datapoint;
use crate::redact;

/// The metric name under the configured prefix.
pub const CHECK_METRIC: &str = "blueflood_forward.check";

/// How much of a refusing answer's body is shown: enough for Blueflood's error text.
const ANSWER_SHOWN_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    Skipped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Prints one step line; write errors on stdout are not worth failing a check over.
fn step(out: &mut dyn Write, outcome: Outcome, name: &str, detail: &str) -> Outcome {
    let _ = writeln!(out, "{:<8}{name}: {detail}", outcome.label());
    outcome
}

/// The full metric name `check` sends with `prefix`.
pub fn metric_name(prefix: &str) -> String {
    if prefix.is_empty() {
        CHECK_METRIC.to_owned()
    } else {
        format!("{prefix}.{CHECK_METRIC}")
    }
}

/// Runs every step against `settings`, writing one line per step to `out`. Returns whether
/// all passed. Must run inside a Tokio runtime.
pub async fn run(settings: &Settings, send: bool, out: &mut dyn Write) -> bool {
    let mut results = Vec::new();
    let auth_detail = match &settings.auth {
        None => "no authentication (user is empty)".to_owned(),
        Some(a) => format!(
            "{} at {}, credentials from {}",
            a.method.label(),
            redact::url(&a.auth_url),
            a.key_source
        ),
    };
    results.push(step(
        out,
        Outcome::Ok,
        "config",
        &format!(
            "blueflood {} tenant {}; {auth_detail}",
            redact::url(&settings.forward.blueflood_url),
            settings.forward.tenant
        ),
    ));

    let timing = AuthTiming::from_forward(&settings.forward);
    let provider = match auth::provider(settings.auth.as_ref(), timing).await {
        Ok(p) => p,
        Err(e) => {
            results.push(step(out, Outcome::Failed, "credentials", &e.to_string()));
            step(
                out,
                Outcome::Skipped,
                "authenticate",
                "no credential source",
            );
            step(out, Outcome::Skipped, "send", "no credential source");
            let _ = writeln!(out, "check FAILED");
            return false;
        }
    };

    let credentials = credentials_step(provider.as_ref(), settings.forward.request_timeout).await;
    results.push(step(out, credentials.0, "credentials", &credentials.1));

    let (outcome, detail, token) = match provider.token().await {
        Ok(Some(t)) => (
            Outcome::Ok,
            format!(
                "token received from {}",
                settings
                    .auth
                    .as_ref()
                    .map_or(String::new(), |a| redact::url(&a.auth_url))
            ),
            Some(t),
        ),
        Ok(None) => (
            Outcome::Skipped,
            "no authentication configured".to_owned(),
            None,
        ),
        Err(e) => (Outcome::Failed, e.to_string(), None),
    };
    results.push(step(out, outcome, "authenticate", &detail));

    let name = metric_name(&settings.ingest.prefix);
    if !send {
        step(out, Outcome::Skipped, "send", "--no-send");
    } else if outcome == Outcome::Failed {
        results.push(step(
            out,
            Outcome::Failed,
            "send",
            "not attempted: authentication failed",
        ));
    } else {
        let (o, d) = send_step(settings, &name, token.as_ref()).await;
        results.push(step(out, o, "send", &d));
    }

    let passed = results.iter().all(|o| *o != Outcome::Failed);
    let _ = writeln!(out, "check {}", if passed { "passed" } else { "FAILED" });
    passed
}

/// Waits (at most `timeout`) for a source that loads asynchronously, such as a Kubernetes
/// Secret read through the API.
async fn credentials_step(provider: &dyn TokenProvider, timeout: Duration) -> (Outcome, String) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let s = provider.status();
        if !s.enabled {
            return (Outcome::Skipped, "no authentication configured".to_owned());
        }
        if s.credentials_loaded {
            return (Outcome::Ok, format!("read from {}", s.credential_source));
        }
        if tokio::time::Instant::now() >= deadline {
            let why = s.last_error.unwrap_or_else(|| "no answer".to_owned());
            return (
                Outcome::Failed,
                format!("nothing loaded from {}: {why}", s.credential_source),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send_step(settings: &Settings, name: &str, token: Option<&Token>) -> (Outcome, String) {
    let transport = match HttpTransport::new(&settings.forward) {
        Ok(t) => t,
        Err(e) => return (Outcome::Failed, e.to_string()),
    };
    let point = Datapoint {
        name: name.into(),
        timestamp_ms: crate::model::now_ms(),
        value: 1.0,
    };
    let json = blueflood::encode_body(&[point], settings.forward.ttl_seconds);
    let body = Prepared::new(json, settings.forward.compression);
    match transport.send(&body, token).await {
        Err(e) => (
            Outcome::Failed,
            format!("{} did not answer: {e}", redact::url(transport.url())),
        ),
        Ok(answer) => match blueflood::classify(answer.status, answer.retry_after, &answer.body) {
            Verdict::Stored | Verdict::ProbablyStored => (
                Outcome::Ok,
                format!("1 datapoint {name} stored (HTTP {})", answer.status),
            ),
            _ => {
                let text = redact::foreign_text(&answer.body, ANSWER_SHOWN_CHARS);
                (
                    Outcome::Failed,
                    format!(
                        "{} answered HTTP {} {text}",
                        redact::url(transport.url()),
                        answer.status
                    ),
                )
            }
        },
    }
}
