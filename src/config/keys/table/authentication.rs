//! Keystone beyond the original's `-u`/`-k`: the method, the v3 domain, the Kubernetes Secret
//! and the bound on Keystone's answer.

use super::super::Group::Authentication;
use super::{KeySpec, value};
use crate::config::schema::ValueType::*;

pub(super) const AUTH_METHOD: KeySpec = value(
    "auth_method",
    None,
    Some("rax-kskey"),
    "METHOD",
    Choice(&["rax-kskey", "v2-password", "v3-password"]),
    Authentication,
    "rax-kskey (v2 API key), v2-password or v3-password; the key is the API key or the password",
);

pub(super) const AUTH_DOMAIN: KeySpec = value(
    "auth_domain",
    None,
    Some("Default"),
    "DOMAIN",
    Text,
    Authentication,
    "Keystone v3 user domain name",
);

pub(super) const AUTH_PROJECT_ID: KeySpec = value(
    "auth_project_id",
    None,
    None,
    "ID",
    Text,
    Authentication,
    "Keystone v3 only: ask for a token scoped to this project (its id) [default: unscoped; Keystone then scopes to the user's default project, if any]",
);

pub(super) const SECRET_NAME: KeySpec = value(
    "secret_name",
    None,
    None,
    "NAME",
    Text,
    Authentication,
    "Read user and key from this Kubernetes Secret through the API (get/watch) instead of files [default: off]",
);

pub(super) const SECRET_NAMESPACE: KeySpec = value(
    "secret_namespace",
    None,
    None,
    "NAMESPACE",
    Text,
    Authentication,
    "Namespace of --secret-name [default: the pod's own namespace]",
);

pub(super) const SECRET_USER_KEY: KeySpec = value(
    "secret_user_key",
    None,
    Some("username"),
    "KEY",
    Text,
    Authentication,
    "Data key of the user name in --secret-name",
);

pub(super) const SECRET_KEY_KEY: KeySpec = value(
    "secret_key_key",
    None,
    Some("apiKey"),
    "KEY",
    Text,
    Authentication,
    "Data key of the API key or password in --secret-name",
);

pub(super) const AUTH_MAX_ANSWER_BYTES: KeySpec = value(
    "auth_max_answer_bytes",
    None,
    Some("4194304"),
    "BYTES",
    Bytes {
        min: 1024,
        max: Some(1 << 30),
    },
    Authentication,
    "Largest Keystone answer read (service catalogs included); a larger one is an auth failure",
);
