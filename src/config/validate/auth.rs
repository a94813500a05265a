//! Authentication: the Keystone URL, method, domain and v3 project scope, and where the credentials come from
//! (the Kubernetes API, files, the environment, the command line or the config file).

use std::time::Duration;

use secrecy::SecretString;

use super::super::ConfigError;
use super::super::keys::{Key, KeySpec};
use super::super::raw::{Entry, LayerKind};
use super::super::settings::{AuthMethod, AuthSettings, KubeSecretSettings, SecretSource};
use super::values::{Values, invalid};

/// Watched credential files are compared this often even without a change notification.
const CREDENTIAL_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Where a pod's ServiceAccount namespace is mounted.
const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

pub(super) fn auth_settings(v: &Values<'_>) -> Result<Option<AuthSettings>, ConfigError> {
    // Checked even without a user, so a typo is caught before authentication is turned on.
    let auth_url = v.http_url(Key::AuthUrl)?;
    let method = v.choice(
        Key::AuthMethod,
        &[
            ("rax-kskey", AuthMethod::RaxKsKey),
            ("v2-password", AuthMethod::V2Password),
            ("v3-password", AuthMethod::V3Password),
        ],
    )?;
    let domain = v.string(Key::AuthDomain)?;
    if method == AuthMethod::V3Password && domain.trim().is_empty() {
        let (spec, entry) = v.required(Key::AuthDomain)?;
        return Err(invalid(spec, entry, "a non-empty Keystone v3 domain name"));
    }
    // Only v3 has a scope in its login body; a v2 tenant is not the same thing, so a project
    // id given with a v2 method is a mistake to report, not a value to ignore.
    let project_id = match v.optional_string(Key::AuthProjectId)? {
        Some((_, entry)) if method != AuthMethod::V3Password => {
            return Err(invalid(
                Key::AuthProjectId.spec(),
                entry,
                "no value unless auth_method is v3-password (only a v3 login has a project \
                 scope: remove auth_project_id or set auth_method = v3-password)",
            ));
        }
        Some((id, _)) => Some(id.trim().to_owned()),
        None => None,
    };
    let max_answer_bytes = v.size(Key::AuthMaxAnswerBytes, 1024, 1 << 30)?;
    let base = |user: String, key: String, user_source, key_source, kube_secret| AuthSettings {
        user,
        key: SecretString::from(key),
        auth_url: auth_url.clone(),
        key_source,
        user_source,
        method,
        domain: domain.clone(),
        project_id: project_id.clone(),
        kube_secret,
        poll_interval: CREDENTIAL_POLL_INTERVAL,
        max_answer_bytes,
    };

    // The Kubernetes API supplies both user and key: `user`/`key` are not needed then.
    if let Some((name, _)) = v.optional_string(Key::SecretName)? {
        let namespace = match v.optional_string(Key::SecretNamespace)? {
            Some((ns, _)) => ns,
            None => pod_namespace(Key::SecretNamespace.spec())?,
        };
        let secret = KubeSecretSettings {
            name,
            namespace,
            user_key: v.string(Key::SecretUserKey)?,
            key_key: v.string(Key::SecretKeyKey)?,
        };
        let label = format!("{}/{}", secret.namespace, secret.name);
        return Ok(Some(base(
            String::new(),
            String::new(),
            SecretSource::KubernetesSecret(label.clone()),
            SecretSource::KubernetesSecret(label),
            Some(secret),
        )));
    }

    let Some((user, user_entry)) = v.optional_string(Key::User)? else {
        // An empty user *file* is a broken Secret, not a request to turn authentication off.
        if let (spec, Some(entry)) = v.entry(Key::User)
            && entry.origin.file.is_some()
        {
            return Err(invalid(spec, entry, "a user name (the file is empty)"));
        }
        return Ok(None);
    };
    let key_spec = Key::Key.spec();
    let Some((key, key_entry)) = v.optional_string(Key::Key)? else {
        return Err(ConfigError::Invalid(format!(
            "key \"key\" ({}) is required when user is set (user {user:?}): \
             give the API key with --key-file PATH or {} rather than on the command line",
            key_spec.how_to_set(),
            key_spec.env_file_var()
        )));
    };
    Ok(Some(base(
        user,
        key,
        secret_source(user_entry, "user")?,
        secret_source(key_entry, "API key")?,
        None,
    )))
}

fn pod_namespace(spec: &KeySpec) -> Result<String, ConfigError> {
    // Bounded and never blocking, like every file read at start (see `files`).
    let namespace = crate::files::read_small_within(
        std::path::Path::new(POD_NAMESPACE_FILE),
        crate::files::MAX_VALUE_FILE_BYTES,
        crate::files::READ_TIMEOUT,
    )
    .map(|b| String::from_utf8_lossy(&b).into_owned());
    match namespace {
        Ok(ns) if !ns.trim().is_empty() => Ok(ns.trim().to_owned()),
        _ => Err(ConfigError::Invalid(format!(
            "no value for key {:?} ({}): needed with secret_name outside a pod \
             (cannot read {POD_NAMESPACE_FILE})",
            spec.key,
            spec.how_to_set()
        ))),
    }
}

fn secret_source(entry: &Entry, what: &str) -> Result<SecretSource, ConfigError> {
    Ok(match (&entry.origin.file, &entry.origin.layer) {
        (Some((path, _)), _) => SecretSource::File(path.clone()),
        (None, LayerKind::CommandLine) => SecretSource::CommandLine,
        (None, LayerKind::Environment) => SecretSource::Environment,
        (None, LayerKind::ConfigFile(_)) => SecretSource::ConfigFile,
        (None, LayerKind::Defaults) => {
            return Err(ConfigError::Invalid(format!(
                "internal error: the {what} has a default"
            )));
        }
    })
}
