//! Keystone's wire formats, as pure functions: the login body for each method (v2 API key,
//! v2 password, v3 password) and the reading of an answer into a token and its expiry.
//!
//! Answers are navigated as generic JSON rather than deserialised into structs on purpose:
//! serde's type errors quote the offending value ("invalid type: integer `123`"), which for a
//! malformed answer could be the token itself. Every message here names fields, never values
//! (except `expires`, which is not secret and is what the operator needs to see).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Value, json};

use super::AuthError;
use crate::config::settings::AuthMethod;

/// The v3 answer carries the token in this response header.
pub(crate) const SUBJECT_TOKEN_HEADER: &str = "x-subject-token";

/// The longest token accepted. A token travels in a request header, and what usually sits in
/// front of an HTTP service refuses a header line over 8 KiB (nginx's default
/// `large_client_header_buffers` of 8k, Apache's `LimitRequestFieldSize` of 8190), so a longer
/// token could never be sent. Real ones are far shorter: UUID tokens are 32 bytes, Fernet and
/// Rackspace tokens a few hundred at most; only PKI tokens (removed from Keystone in Ocata)
/// carried the catalog and reached several KiB. A protocol bound, not a setting.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The JSON body that logs `user` in with `secret` (API key or password). `project_id` scopes
/// a v3 token to that project (validation refuses it with v2 methods; here it is ignored).
pub(crate) fn login_body(
    method: AuthMethod,
    user: &str,
    secret: &str,
    domain: &str,
    project_id: Option<&str>,
) -> Value {
    match method {
        AuthMethod::RaxKsKey => json!({"auth": {"RAX-KSKEY:apiKeyCredentials": {
            "username": user, "apiKey": secret}}}),
        AuthMethod::V2Password => json!({"auth": {"passwordCredentials": {
            "username": user, "password": secret}}}),
        AuthMethod::V3Password => {
            let mut body = json!({"auth": {"identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": {"name": domain}, "password": secret}}}}});
            if let (Some(id), Some(auth)) = (project_id, body.get_mut("auth")) {
                auth["scope"] = json!({"project": {"id": id}});
            }
            body
        }
    }
}

/// A token as the identity service issued it.
pub(crate) struct Issued {
    pub token: String,
    /// `None` when the answer gives no expiry at all.
    pub expires: Option<DateTime<Utc>>,
}

/// Statuses that mean "here is a token" (v2 answers 200, v3 201; 203 is v2's
/// non-authoritative variant that some proxies produce).
pub(crate) fn is_success(status: u16) -> bool {
    matches!(status, 200 | 201 | 203)
}

/// Reads a successful answer. `subject_token` is the `X-Subject-Token` header, if any.
pub(crate) fn parse_answer(
    method: AuthMethod,
    subject_token: Option<&str>,
    body: &[u8],
) -> Result<Issued, AuthError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        AuthError::BadAnswer(format!(
            "malformed JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let (expires_field, token, expires) = match method {
        AuthMethod::RaxKsKey | AuthMethod::V2Password => {
            let token = value
                .pointer("/access/token/id")
                .and_then(Value::as_str)
                .ok_or_else(|| AuthError::BadAnswer("no string access.token.id".to_owned()))?;
            (
                "access.token.expires",
                token,
                value.pointer("/access/token/expires"),
            )
        }
        AuthMethod::V3Password => {
            let token = subject_token.ok_or_else(|| {
                AuthError::BadAnswer("no X-Subject-Token header in the v3 answer".to_owned())
            })?;
            if value.pointer("/token").is_none_or(|t| !t.is_object()) {
                return Err(AuthError::BadAnswer(
                    "no token object in the v3 answer".to_owned(),
                ));
            }
            (
                "token.expires_at",
                token,
                value.pointer("/token/expires_at"),
            )
        }
    };
    check_token(token)?;
    let expires = match expires {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse_expiry(s).ok_or_else(|| {
            AuthError::BadAnswer(format!(
                "{expires_field} {s:?} is not an ISO 8601 date and time"
            ))
        })?),
        Some(_) => {
            return Err(AuthError::BadAnswer(format!(
                "{expires_field} is not a string"
            )));
        }
    };
    Ok(Issued {
        token: token.to_owned(),
        expires,
    })
}

/// A token is only accepted if it can be sent: non-empty, at most [`MAX_TOKEN_BYTES`], and
/// visible ASCII only (no CR/LF or NUL that would make the header invalid, or forge another,
/// no spaces a proxy could trim). One that cannot be sent would otherwise be cached for its
/// whole life while every request fails locally. Messages never include the token.
pub(crate) fn check_token(token: &str) -> Result<(), AuthError> {
    if token.is_empty() {
        return Err(AuthError::BadAnswer("the token is empty".to_owned()));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::BadAnswer(format!(
            "the token is {} bytes, more than the {MAX_TOKEN_BYTES} a request header can carry",
            token.len()
        )));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::BadAnswer(
            "the token has characters a request header cannot carry (control characters, \
             spaces or non-ASCII)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// ISO 8601 as Keystone writes it: with or without fractional seconds, `Z` or an offset; a
/// time without any zone is taken as UTC (old Keystone releases wrote that).
pub(crate) fn parse_expiry(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.to_utc());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests;
