//! Credentials read from one Kubernetes Secret through the API server, for clusters where
//! mounting the Secret is not wanted.
//!
//! Owns: building the client (in-cluster ServiceAccount, or a kubeconfig when run outside a
//! pod, via `kube::Config::infer`), and the loop that keeps the [`CredentialStore`] current:
//! `GET` the Secret, then `WATCH` it with a `metadata.name=<name>` field selector and no
//! resource version ("the current state, then every change": the server sends the Secret as it
//! is first). Not from the `GET`'s resource version: that is the Secret's own, from its last
//! change, which the API server has forgotten once enough else changed (etcd compaction, or its
//! watch cache started anew after a restart); a watch from it is answered 410 Gone, and the GET
//! before the next one returns the same version, so the watch would never be established again.
//! Only `get` and `watch` are used (no `list`), so a Role granting those two verbs with
//! `resourceNames: [<name>]` is enough. A watch that ends or fails starts over with a `GET`
//! after a doubling delay; a deleted, unreadable or incomplete Secret, or one whose values
//! exceed [`MAX_VALUE_FILE_BYTES`], keeps the last good credentials
//! (reported as a reload failure).
//!
//! The client never follows redirects (kube's client is hyper's, with no redirect layer: a 3xx
//! is an error, so the ServiceAccount token cannot be sent to another origin; a test pins
//! this). It reads each answer whole: the API server is authenticated by the cluster CA and
//! refuses Secrets over 1 MiB, so the bound on values is what applies to us.

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
use crate::files::MAX_VALUE_FILE_BYTES;

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
) -> Result<Arc<dyn TokenProvider>, AuthError> {
    let store = Arc::new(CredentialStore::new(
        format!("kubernetes secret {}/{}", secret.namespace, secret.name),
        None,
    ));
    let task = AbortOnDropHandle::new(tokio::spawn(watch_secret(
        client,
        secret.clone(),
        store.clone(),
    )));
    Ok(Arc::new(Keystone::new(
        settings,
        timing,
        store,
        vec![task],
    )?))
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
    // No resource version: see the module comment (a change between the GET and here arrives
    // in the first event, which is the Secret's current state).
    let events = api.watch(&params, "").await.map_err(|e| {
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
            // 410 Gone (history compacted under a running watch): the caller starts over.
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
        let raw: &[u8] = s
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.as_slice())
            .or_else(|| {
                s.string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|v| v.as_bytes())
            })
            .ok_or_else(|| {
                format!(
                    "secret {}/{} has no data key {key:?}",
                    secret.namespace, secret.name
                )
            })?;
        // The same bound as a mounted file of the same Secret would get.
        if raw.len() as u64 > MAX_VALUE_FILE_BYTES {
            return Err(format!(
                "data key {key:?} of secret {}/{} holds {} bytes, more than {MAX_VALUE_FILE_BYTES}, \
                 the bound for a secret value",
                secret.namespace,
                secret.name,
                raw.len()
            ));
        }
        let mut text = String::from_utf8(raw.to_vec()).map_err(|_| {
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
/// could not decode, and here those values are Secret data. Transport errors carry their
/// causes: kube's own text is only "client error (Connect)", the cause says why (a server
/// certificate our CA did not sign, a refused connection).
fn describe(e: &::kube::Error) -> String {
    match e {
        ::kube::Error::SerdeError(_) => "undecodable answer from the API server".to_owned(),
        ::kube::Error::Api(r) => format!("{} {} (HTTP {})", r.reason, r.message, r.code),
        other => {
            let mut text = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(c) = cause {
                let part = c.to_string();
                // Wrappers often repeat their cause's text.
                if !text.contains(&part) {
                    text.push_str(": ");
                    text.push_str(&part);
                }
                cause = c.source();
            }
            text
        }
    }
}

#[cfg(test)]
mod tests;
