//! The token provider on its own, against the Keystone double: every login method, single
//! flight under 100 concurrent callers, bad answers and unreachable identity (clear errors,
//! backoff without requests), credentials rotated in a watched file, status counters, and a
//! log capture of a whole auth cycle that must contain no secret.

use crate::support;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blueflood_forward::auth::{self, AuthError, AuthTiming, TokenProvider};
use blueflood_forward::config::settings::{AuthMethod, AuthSettings, SecretSource};
use support::keystone::{Fault, KeystoneDouble};
use support::secrets::{kubelet_write, kubelet_write_opt};

const WAIT: Duration = Duration::from_secs(20);

fn timing() -> AuthTiming {
    AuthTiming {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(300),
        backoff_max: Duration::from_secs(2),
    }
}

fn settings(url: &str, method: AuthMethod) -> AuthSettings {
    AuthSettings {
        method,
        ..AuthSettings::new("alice", "s3cret-api-key", url.parse().expect("url"))
    }
}

async fn provider(s: &AuthSettings) -> Arc<dyn TokenProvider> {
    auth::provider(Some(s), timing()).await.expect("provider")
}

async fn wait_for(what: &str, f: impl Fn() -> bool) {
    let end = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_logs_in() {
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    ks.set_domain("Ops");
    for (method, url) in [
        (AuthMethod::RaxKsKey, ks.url()),
        (AuthMethod::V2Password, ks.url()),
        (AuthMethod::V3Password, ks.url_v3()),
    ] {
        let mut s = settings(&url, method);
        s.domain = "Ops".into();
        let p = provider(&s).await;
        let t = p.token().await.expect("token").expect("some token");
        assert!(ks.token_is_valid(t.expose()), "{method:?}");
        let login = ks.logins().last().cloned().expect("a login");
        assert_eq!((login.method, login.accepted), (method.label(), true));
        assert_eq!(login.user, "alice", "{method:?} sends the configured user");
        let st = p.status();
        assert_eq!(st.method, method.label());
        assert!(st.token_age_seconds.is_some());
    }
    // v3 with the wrong domain is refused like bad credentials.
    let p = provider(&settings(&ks.url_v3(), AuthMethod::V3Password)).await;
    let e = p.token().await.expect_err("wrong domain");
    assert!(matches!(e, AuthError::Refused(401)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_callers_cause_one_login() {
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    // Slow identity: every caller arrives while the first login is in flight.
    ks.push(Fault::Delay(Duration::from_millis(300)));
    let p = provider(&settings(&ks.url(), AuthMethod::RaxKsKey)).await;
    let calls = (0..100).map(|_| {
        let p = p.clone();
        tokio::spawn(async move { p.token().await })
    });
    let tokens: Vec<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| {
            r.expect("task")
                .expect("token")
                .expect("some")
                .expose()
                .to_owned()
        })
        .collect();
    assert_eq!(ks.auth_requests(), 1);
    assert!(tokens.iter().all(|t| t == &tokens[0]));

    // Revocation: Blueflood's 401 invalidates, and 100 callers again share one login.
    let old = p.token().await.unwrap().unwrap();
    p.invalidate(&old);
    ks.push(Fault::Delay(Duration::from_millis(300)));
    let calls = (0..100).map(|_| {
        let p = p.clone();
        tokio::spawn(async move { p.token().await })
    });
    for r in futures_util::future::join_all(calls).await {
        assert_ne!(r.unwrap().unwrap().unwrap(), old);
    }
    assert_eq!(ks.auth_requests(), 2);
    assert_eq!(p.status().auth_requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_refreshed_once_each() {
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    ks.set_token_ttl(Duration::from_secs(2));
    let p = provider(&settings(&ks.url(), AuthMethod::RaxKsKey)).await;
    let end = tokio::time::Instant::now() + Duration::from_millis(4500);
    while tokio::time::Instant::now() < end {
        let calls = (0..20).map(|_| {
            let p = p.clone();
            tokio::spawn(async move { p.token().await })
        });
        for r in futures_util::future::join_all(calls).await {
            let t = r.unwrap().unwrap().unwrap();
            assert!(ks.token_is_valid(t.expose()), "never an expired token");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Refreshed at half its life: about one login per second, never a burst.
    let logins = ks.logins();
    assert!((3..=7).contains(&logins.len()), "{} logins", logins.len());
    for pair in logins.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(500),
            "two logins {gap:?} apart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_are_clear_errors_and_back_off() {
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    // Long delays so that a loaded machine's late timers cannot blur 1 s from 2 s.
    let slow = AuthTiming {
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(8),
        ..timing()
    };
    let p = auth::provider(Some(&settings(&ks.url(), AuthMethod::RaxKsKey)), slow)
        .await
        .unwrap();

    ks.push(Fault::MalformedJson);
    let e = p.token().await.expect_err("malformed");
    assert!(e.to_string().contains("malformed JSON"), "{e}");
    // Within the backoff: an error without a request.
    let e = p.token().await.expect_err("backing off");
    assert!(matches!(e, AuthError::BackingOff { .. }), "{e}");
    assert!(e.to_string().contains("malformed JSON"), "{e}");
    assert_eq!(ks.auth_requests(), 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    ks.push(Fault::BadExpires);
    let e = p.token().await.expect_err("bad expires");
    assert!(e.to_string().contains("tomorrow-ish"), "{e}");
    assert_eq!(ks.auth_requests(), 2);

    // The backoff doubled (2 s): 1 s later there is still no request.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(matches!(p.token().await, Err(AuthError::BackingOff { .. })));
    assert_eq!(ks.auth_requests(), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(p.token().await.is_ok());
    assert_eq!(ks.auth_requests(), 3);
    let st = p.status();
    assert_eq!((st.auth_requests, st.auth_failures), (3, 2));
    assert_eq!(st.last_error, None, "a success clears the error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_login_is_not_hammered() {
    let ks = KeystoneDouble::start("alice", "other-key").await;
    let p = provider(&settings(&ks.url(), AuthMethod::RaxKsKey)).await;
    let mut errors = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < end {
        let e = p.token().await.expect_err("refused");
        assert!(e.to_string().contains("HTTP 401"), "{e}");
        errors += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 0.3 + 0.6 + 1.2 s: at most 3-4 logins in 2 s, while callers asked ~100 times.
    assert!(errors > 50, "{errors}");
    assert!(ks.auth_requests() <= 4, "{} logins", ks.auth_requests());
    assert!(p.status().last_error.unwrap().contains("HTTP 401"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_identity_is_a_clear_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v2.0/tokens", closed.local_addr().unwrap());
    drop(closed);
    let p = provider(&settings(&url, AuthMethod::RaxKsKey)).await;
    let e = p.token().await.expect_err("unreachable");
    let text = e.to_string();
    assert!(
        text.contains("unreachable") && text.contains("connect"),
        "{text}"
    );

    // A login that never answers is cut at the request timeout.
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    ks.push(Fault::Delay(Duration::from_secs(10)));
    let p = provider(&settings(&ks.url(), AuthMethod::RaxKsKey)).await;
    let started = std::time::Instant::now();
    let e = p.token().await.expect_err("timeout");
    assert!(started.elapsed() < Duration::from_secs(8), "{e}");
    assert!(
        e.to_string().contains("timed out") || e.to_string().contains("no answer"),
        "{e}"
    );
}

fn file_settings(url: &str, dir: &Path) -> AuthSettings {
    let user = std::fs::read_to_string(dir.join("username")).unwrap();
    let key = std::fs::read_to_string(dir.join("apiKey")).unwrap();
    AuthSettings {
        user_source: SecretSource::File(dir.join("username")),
        key_source: SecretSource::File(dir.join("apiKey")),
        poll_interval: Duration::from_secs(30),
        ..AuthSettings::new(user.trim_end(), key.trim_end(), url.parse().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_resets_the_backoff_and_unreadable_files_keep_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    kubelet_write(dir.path(), "2026_01_01", "alice", "old-key");
    let ks = KeystoneDouble::start("alice", "new-key").await;
    let p = provider(&file_settings(&ks.url(), dir.path())).await;
    assert!(matches!(p.token().await, Err(AuthError::Refused(401))));
    assert!(matches!(p.token().await, Err(AuthError::BackingOff { .. })));

    kubelet_write(dir.path(), "2026_01_02", "alice", "new-key");
    wait_for("the reload", || p.status().credential_reloads == 1).await;
    // New credentials end the backoff at once.
    let t = p.token().await.expect("token with the new key").unwrap();
    assert!(ks.token_is_valid(t.expose()));
    assert_eq!(ks.logins().last().unwrap().secret, "new-key");
    let st = p.status();
    assert!(st.last_rotation_unix_seconds.is_some());
    assert_eq!(
        st.credential_source,
        format!(
            "files {}, {}",
            dir.path().join("username").display(),
            dir.path().join("apiKey").display()
        )
    );

    // The Secret updated with an empty key: counted, reported, old key kept, token kept.
    kubelet_write(dir.path(), "2026_01_03", "alice", "");
    wait_for("the failure", || p.status().credential_reload_failures >= 1).await;
    let st = p.status();
    assert!(
        st.last_error.as_deref().unwrap().contains("empty"),
        "{st:?}"
    );
    assert_eq!(st.credential_reloads, 1);
    assert_eq!(
        p.token().await.unwrap().unwrap(),
        t,
        "same token: nothing changed"
    );
    // The key removed from the Secret (the file is gone): the same.
    kubelet_write_opt(dir.path(), "2026_01_04", "alice", None);
    wait_for("the second failure", || {
        p.status()
            .last_error
            .is_some_and(|e| e.contains("cannot read"))
    })
    .await;
    p.invalidate(&t);
    let t2 = p.token().await.unwrap().unwrap();
    assert_eq!(
        ks.logins().last().unwrap().secret,
        "new-key",
        "last good key used"
    );
    assert!(ks.token_is_valid(t2.expose()));
}

/// A `MakeWriter` that appends every log line to a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

// Current-thread runtime: every task runs on this thread, under the capturing subscriber.
#[tokio::test]
async fn a_full_auth_cycle_logs_no_secret() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    kubelet_write(dir.path(), "2026_01_01", "alice", "OLDKEY-secret-1");
    let ks = KeystoneDouble::start("alice", "OLDKEY-secret-1").await;
    let mut s = file_settings(&ks.url(), dir.path());
    s.key_source = SecretSource::File(dir.path().join("apiKey"));
    let p = provider(&s).await;
    let t1 = p.token().await.unwrap().unwrap();
    tracing::debug!(?t1, status = ?p.status(), "debug output of a token and the status");
    // A failure: identity now wants another key (and gets a malformed answer first).
    ks.set_credentials("alice", "NEWKEY-secret-2");
    ks.push(Fault::MalformedJson);
    p.invalidate(&t1);
    let e = p.token().await.unwrap_err();
    tracing::error!(error = %e, debug = ?e, "failure");
    // Rotation to the new key.
    kubelet_write(dir.path(), "2026_01_02", "alice", "NEWKEY-secret-2");
    wait_for("the reload", || p.status().credential_reloads == 1).await;
    let t2 = p.token().await.unwrap().unwrap();
    // A refused password login too, and an empty file.
    let bad = auth::provider(
        Some(&AuthSettings {
            method: AuthMethod::V2Password,
            ..AuthSettings::new("alice", "PASSWORD-secret-3", ks.url().parse().unwrap())
        }),
        timing(),
    )
    .await
    .unwrap();
    let _ = bad.token().await;
    kubelet_write(dir.path(), "2026_01_03", "alice", "");
    wait_for("the failure", || p.status().credential_reload_failures >= 1).await;
    tracing::info!(settings = ?s, "debug output of the settings");

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("authenticated with Keystone"), "{logs}");
    assert!(logs.contains("credentials changed"), "{logs}");
    assert!(logs.contains("cannot read credentials"), "{logs}");
    for secret in [
        "OLDKEY-secret-1",
        "NEWKEY-secret-2",
        "PASSWORD-secret-3",
        t1.expose(),
        t2.expose(),
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into the logs:\n{logs}"
        );
    }
}
