//! Credentials read from one Kubernetes Secret through the API server, for clusters where
//! mounting the Secret is not wanted.
//!
//! Owns: building the client (in-cluster ServiceAccount, or a kubeconfig when run outside a
//! pod, via `kube::Config::infer`), and the loop that keeps the [`CredentialStore`] current:
//! `GET` the Secret, then `WATCH` it from that resource version with a
//! `metadata.name=<name>` field selector. Only `get` and `watch` are used (no `list`), so a
//! Role granting those two verbs with `resourceNames: [<name>]` is enough. A watch that ends or
//! fails starts over with a `GET` after a doubling delay; a deleted, unreadable or incomplete
//! Secret keeps the last good credentials (reported as a reload failure).

use std::sync::Arc;
use std::time::Duration;

use ::kube::api::{Api, WatchEvent, WatchParams};
use futures_util::{StreamExt, pin_mut};
use k8s_openapi::api::core::v1::Secret;
use tokio_util::task::AbortOnDropHandle;

use super::credentials::{CredentialStore, Credentials};
use super::keystone::Keystone;
use super::{AuthError, AuthTiming, TokenProvider};
use crate::config::settings::{AuthSettings, KubeSecretSettings};

/// The API server closes a watch after this many seconds; we then start a new one.
const WATCH_SECONDS: u32 = 290;
const RETRY_INITIAL: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// A client for the cluster this process runs in (or the current kubeconfig context).
pub async fn client_from_environment() -> Result<::kube::Client, AuthError> {
    let config = ::kube::Config::infer()
        .await
        .map_err(|e| AuthError::Setup(format!("no Kubernetes configuration: {e}")))?;
    ::kube::Client::try_from(config)
        .map_err(|e| AuthError::Setup(format!("cannot build the Kubernetes client: {e}")))
}

/// The Keystone provider fed by `secret`, read and watched with `client`. Public so that tests
/// (and embedders) can pass a client for a mock API server.
pub fn provider(
    settings: &AuthSettings,
    secret: &KubeSecretSettings,
    timing: AuthTiming,
    client: ::kube::Client,
) -> Arc<dyn TokenProvider> {
    let store = Arc::new(CredentialStore::new(
        format!("kubernetes secret {}/{}", secret.namespace, secret.name),
        None,
    ));
    let task = AbortOnDropHandle::new(tokio::spawn(watch_secret(
        client,
        secret.clone(),
        store.clone(),
    )));
    Arc::new(Keystone::new(settings, timing, store, vec![task]))
}

/// Keeps `store` current with the Secret until the task is aborted.
pub async fn watch_secret(
    client: ::kube::Client,
    secret: KubeSecretSettings,
    store: Arc<CredentialStore>,
) {
    let api: Api<Secret> = Api::namespaced(client, &secret.namespace);
    let mut delay = RETRY_INITIAL;
    loop {
        match follow(&api, &secret, &store).await {
            // The watch timed out normally: start over at once.
            Ok(()) => delay = RETRY_INITIAL,
            Err(reason) => {
                store.failed(reason);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

/// One GET and the WATCH that follows it. `Err` carries a message without secret data.
async fn follow(
    api: &Api<Secret>,
    secret: &KubeSecretSettings,
    store: &CredentialStore,
) -> Result<(), String> {
    let current = api.get(&secret.name).await.map_err(|e| {
        format!(
            "cannot get secret {}/{}: {}",
            secret.namespace,
            secret.name,
            describe(&e)
        )
    })?;
    apply(&current, secret, store);
    let mut version = current
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let params = WatchParams::default()
        .fields(&format!("metadata.name={}", secret.name))
        .timeout(WATCH_SECONDS);
    let events = api.watch(&params, &version).await.map_err(|e| {
        format!(
            "cannot watch secret {}/{}: {}",
            secret.namespace,
            secret.name,
            describe(&e)
        )
    })?;
    pin_mut!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(WatchEvent::Added(s) | WatchEvent::Modified(s)) => {
                apply(&s, secret, store);
                if let Some(v) = s.metadata.resource_version {
                    version = v;
                }
            }
            Ok(WatchEvent::Deleted(_)) => store.failed(format!(
                "secret {}/{} was deleted; keeping the last credentials",
                secret.namespace, secret.name
            )),
            Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
            // 410 Gone: our version is too old; the caller starts over with a GET.
            Ok(WatchEvent::Error(e)) => {
                return Err(format!(
                    "watch of secret {}/{} ended: {} {} (HTTP {})",
                    secret.namespace, secret.name, e.reason, e.message, e.code
                ));
            }
            Err(e) => {
                return Err(format!(
                    "watch of secret {}/{} failed: {}",
                    secret.namespace,
                    secret.name,
                    describe(&e)
                ));
            }
        }
    }
    tracing::debug!(version = %version, "secret watch closed by the API server; restarting");
    Ok(())
}

/// Offers the Secret's credentials to `store`, or records why they are unusable.
fn apply(s: &Secret, secret: &KubeSecretSettings, store: &CredentialStore) {
    match credentials(s, secret) {
        Ok(c) => {
            store.offer(c);
        }
        Err(reason) => store.failed(reason),
    }
}

fn credentials(s: &Secret, secret: &KubeSecretSettings) -> Result<Credentials, String> {
    let value = |key: &str| -> Result<String, String> {
        // `stringData` is write-only on the server, but a mock or an old server may echo it.
        let raw = s
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .or_else(|| {
                s.string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|v| v.clone().into_bytes())
            })
            .ok_or_else(|| {
                format!(
                    "secret {}/{} has no data key {key:?}",
                    secret.namespace, secret.name
                )
            })?;
        let mut text = String::from_utf8(raw).map_err(|_| {
            format!(
                "data key {key:?} of secret {}/{} is not UTF-8",
                secret.namespace, secret.name
            )
        })?;
        // Values created from files usually end with a newline, as mounted files do.
        if text.ends_with("\r\n") {
            text.truncate(text.len() - 2);
        } else if text.ends_with('\n') {
            text.truncate(text.len() - 1);
        }
        if text.is_empty() {
            return Err(format!(
                "data key {key:?} of secret {}/{} is empty",
                secret.namespace, secret.name
            ));
        }
        Ok(text)
    };
    Ok(Credentials::new(
        value(&secret.user_key)?,
        value(&secret.key_key)?,
    ))
}

/// A kube error for a log line. Decoding errors are summarised: serde quotes the values it
/// could not decode, and here those values are Secret data.
fn describe(e: &::kube::Error) -> String {
    match e {
        ::kube::Error::SerdeError(_) => "undecodable answer from the API server".to_owned(),
        ::kube::Error::Api(r) => format!("{} {} (HTTP {})", r.reason, r.message, r.code),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::{Query, State};
    use axum::http::header;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use secrecy::ExposeSecret;
    use tokio::sync::mpsc;

    fn settings() -> KubeSecretSettings {
        KubeSecretSettings {
            name: "keystone".into(),
            namespace: "metrics".into(),
            user_key: "username".into(),
            key_key: "apiKey".into(),
        }
    }

    fn secret_json(version: u32, user: &str, key: &str) -> serde_json::Value {
        use base64_encode as b64;
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "keystone", "namespace": "metrics",
                         "resourceVersion": version.to_string()},
            "data": {"username": b64(user.as_bytes()), "apiKey": b64(key.as_bytes())}
        })
    }

    /// Standard base64, enough for the test fixtures (no extra dependency).
    fn base64_encode(bytes: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    struct Mock {
        current: std::sync::Mutex<serde_json::Value>,
        /// Each watch request takes the receiver of the events the test sends.
        watches: tokio::sync::Mutex<mpsc::Receiver<serde_json::Value>>,
        requests: std::sync::Mutex<Vec<String>>,
    }

    async fn get_secret(State(m): State<Arc<Mock>>) -> Response {
        m.requests.lock().unwrap().push("get".into());
        let body = m.current.lock().unwrap().to_string();
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    }

    async fn list_or_watch(
        State(m): State<Arc<Mock>>,
        Query(q): Query<BTreeMap<String, String>>,
    ) -> Response {
        m.requests.lock().unwrap().push(format!(
            "watch={} fieldSelector={} resourceVersion={}",
            q.get("watch").cloned().unwrap_or_default(),
            q.get("fieldSelector").cloned().unwrap_or_default(),
            q.get("resourceVersion").cloned().unwrap_or_default()
        ));
        // The watch protocol: one JSON event object per line, on a chunked response that
        // stays open.
        let m2 = m.clone();
        let stream = async_stream(m2);
        (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(stream),
        )
            .into_response()
    }

    fn async_stream(
        m: Arc<Mock>,
    ) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
        futures_util::stream::unfold(m, |m| async move {
            let ev = m.watches.lock().await.recv().await?;
            let line = format!("{ev}\n");
            Some((Ok(line), m))
        })
    }

    #[tokio::test]
    async fn get_then_watch_keeps_the_store_current() {
        let (tx, rx) = mpsc::channel(8);
        let mock = Arc::new(Mock {
            current: std::sync::Mutex::new(secret_json(1, "alice", "key-one")),
            watches: tokio::sync::Mutex::new(rx),
            requests: std::sync::Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route(
                "/api/v1/namespaces/metrics/secrets/keystone",
                get(get_secret),
            )
            .route("/api/v1/namespaces/metrics/secrets", get(list_or_watch))
            .with_state(mock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let config = ::kube::Config::new(format!("http://{addr}").parse().unwrap());
        let client = ::kube::Client::try_from(config).unwrap();
        let store = Arc::new(CredentialStore::new("k", None));
        let task = tokio::spawn(watch_secret(client, settings(), store.clone()));

        assert!(store.wait_loaded(Duration::from_secs(10)).await);
        let (g1, c) = store.current().unwrap();
        assert_eq!(
            (c.user.as_str(), c.secret.expose_secret()),
            ("alice", "key-one")
        );

        // Rotation arrives as a MODIFIED event.
        tx.send(
            serde_json::json!({"type": "MODIFIED", "object": secret_json(2, "alice", "key-two\n")}),
        )
        .await
        .unwrap();
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.generation() == g1 && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_, c) = store.current().unwrap();
        assert_eq!(c.secret.expose_secret(), "key-two", "newline trimmed");
        assert_eq!(store.status().reloads, 1);

        // An incomplete Secret keeps the last good credentials.
        let mut broken = secret_json(3, "alice", "x");
        broken["data"].as_object_mut().unwrap().remove("apiKey");
        tx.send(serde_json::json!({"type": "MODIFIED", "object": broken}))
            .await
            .unwrap();
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.status().reload_failures == 0 && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let st = store.status();
        assert_eq!(st.reload_failures, 1);
        assert!(
            st.last_error.as_deref().unwrap_or("").contains("apiKey"),
            "{st:?}"
        );
        assert_eq!(store.current().unwrap().1.secret.expose_secret(), "key-two");

        let reqs = mock.requests.lock().unwrap().clone();
        assert_eq!(reqs[0], "get");
        assert_eq!(
            reqs[1],
            "watch=true fieldSelector=metadata.name=keystone resourceVersion=1"
        );
        task.abort();
    }
}
