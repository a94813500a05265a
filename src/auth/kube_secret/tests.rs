//! Unit tests of `kube_secret`.

use super::*;
use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
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

fn async_stream(m: Arc<Mock>) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::unfold(m, |m| async move {
        let ev = m.watches.lock().await.recv().await?;
        let line = format!("{ev}\n");
        Some((Ok(line), m))
    })
}

#[tokio::test]
async fn get_then_watch_keeps_the_store_current() {
    let (tx, client, mock) = start_mock(secret_json(1, "alice", "key-one")).await;
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
    wait_until("the rotation", || store.generation() != g1).await;
    let (_, c) = store.current().unwrap();
    assert_eq!(c.secret.expose_secret(), "key-two", "newline trimmed");
    assert_eq!(store.status().reloads, 1);

    // An incomplete Secret keeps the last good credentials.
    let mut broken = secret_json(3, "alice", "x");
    broken["data"].as_object_mut().unwrap().remove("apiKey");
    tx.send(serde_json::json!({"type": "MODIFIED", "object": broken}))
        .await
        .unwrap();
    wait_until("the failed reload", || store.status().reload_failures > 0).await;
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
        reqs[1], "watch=true fieldSelector=metadata.name=keystone resourceVersion=",
        "the watch asks for the current state, not the GET's (possibly expired) version"
    );
    task.abort();
}

/// A mock API server holding `initial`: the sender of its watch events, a client for it, and
/// the mock (whose `requests` tell what the client asked).
async fn start_mock(
    initial: serde_json::Value,
) -> (mpsc::Sender<serde_json::Value>, ::kube::Client, Arc<Mock>) {
    let (tx, rx) = mpsc::channel(8);
    let mock = Arc::new(Mock {
        current: std::sync::Mutex::new(initial),
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
    (tx, ::kube::Client::try_from(config).unwrap(), mock)
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn oversized_values_keep_the_last_good_credentials() {
    // Too big from the start: nothing is loaded.
    let huge = "k".repeat(MAX_VALUE_FILE_BYTES as usize + 1);
    let (_tx, client, _) = start_mock(secret_json(1, "alice", &huge)).await;
    let store = Arc::new(CredentialStore::new("k", None));
    let task = tokio::spawn(watch_secret(client, settings(), store.clone()));
    wait_until("the refusal", || store.status().reload_failures >= 1).await;
    let st = store.status();
    assert!(!st.loaded, "{st:?}");
    let error = st.last_error.unwrap_or_default();
    assert!(
        error.contains("apiKey") && error.contains("65536") && !error.contains("kkkk"),
        "{error}"
    );
    task.abort();

    // Too big in a rotation: the last good credentials stay.
    let (tx, client, _) = start_mock(secret_json(1, "alice", "key-one")).await;
    let store = Arc::new(CredentialStore::new("k", None));
    let task = tokio::spawn(watch_secret(client, settings(), store.clone()));
    assert!(store.wait_loaded(Duration::from_secs(10)).await);
    tx.send(serde_json::json!({"type": "MODIFIED", "object": secret_json(2, "alice", &huge)}))
        .await
        .unwrap();
    wait_until("the refused rotation", || {
        store.status().reload_failures >= 1
    })
    .await;
    assert_eq!(store.current().unwrap().1.secret.expose_secret(), "key-one");
    task.abort();
}

/// kube's client has no redirect layer: an API server (or something posing as one) answering
/// 3xx cannot make it send the ServiceAccount token to another origin.
#[tokio::test]
async fn the_kubernetes_client_follows_no_redirect() {
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_addr = other.local_addr().unwrap();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = other.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let location = format!("http://{other_addr}/api/v1/namespaces/metrics/secrets/keystone");
    let redirect = move |status: u16| {
        let location = location.clone();
        move || async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [(header::LOCATION, location)],
                "",
            )
                .into_response()
        }
    };
    for status in [301u16, 302, 303, 307, 308] {
        let app = Router::new()
            .route(
                "/api/v1/namespaces/metrics/secrets/keystone",
                get(redirect(status)),
            )
            .route("/api/v1/namespaces/metrics/secrets", get(redirect(status)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut config = ::kube::Config::new(format!("http://{addr}").parse().unwrap());
        config.auth_info.token = Some(SecretString::from("service-account-token".to_owned()));
        let client = ::kube::Client::try_from(config).unwrap();
        let store = Arc::new(CredentialStore::new("k", None));
        let task = tokio::spawn(watch_secret(client, settings(), store.clone()));
        wait_until("the failed get", || store.status().reload_failures >= 1).await;
        task.abort();
        assert!(!store.status().loaded);
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the redirect target was contacted"
    );
}
