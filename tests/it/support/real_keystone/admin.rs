//! The admin side of a real Keystone's v3 API for the tests: service users with a project
//! role, password changes, logins as the forwarder makes them, and token validation (what the
//! Blueflood double's real-Keystone mode asks for every request).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::ADMIN_PASSWORD;

/// The admin token is renewed when older than this (it expires like every token there).
const ADMIN_TOKEN_REUSE: Duration = Duration::from_secs(20);

/// A user made for one test case: its ids and the project it has the `member` role on.
#[derive(Debug, Clone)]
pub struct ServiceUser {
    pub name: String,
    pub id: String,
    pub project_id: String,
}

/// The admin side of Keystone's v3 API, as the bootstrap admin (scoped to project `admin`).
pub struct KeystoneAdmin {
    base: String,
    http: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

impl KeystoneAdmin {
    pub(super) fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("reqwest client"),
            token: Mutex::new(None),
        }
    }

    /// A password login, as the forwarder makes it; `Ok(token)` on 201, else the status.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        project_id: Option<&str>,
    ) -> Result<String, u16> {
        let mut body = json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}}}});
        if let Some(p) = project_id {
            body["auth"]["scope"] = json!({"project": {"id": p}});
        }
        self.post_login(body).await
    }

    async fn post_login(&self, body: Value) -> Result<String, u16> {
        let resp = self
            .http
            .post(format!("{}/auth/tokens", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|_| 0u16)?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Err(status);
        }
        resp.headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(status)
    }

    /// The admin's token, renewed when old (it expires like every token here).
    async fn admin_token(&self, renew: bool) -> String {
        self.admin_token_checked(renew)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.base))
    }

    /// One admin request; `expect` is the status it must answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let token = self.admin_token(false).await;
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("x-auth-token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, expect, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A user `name` with `password` in domain Default, a project of its own and the `member`
    /// role on it (no default project: an unscoped login gets an unscoped token).
    pub async fn service_user(&self, name: &str, password: &str) -> ServiceUser {
        use reqwest::Method;
        let project = self
            .call(
                Method::POST,
                "/projects",
                Some(
                    json!({"project": {"name": format!("{name}-project"), "domain_id": "default"}}),
                ),
                201,
            )
            .await;
        let project_id = str_at(&project, "/project/id");
        let user = self
            .call(
                Method::POST,
                "/users",
                Some(json!({"user": {"name": name, "password": password, "domain_id": "default"}})),
                201,
            )
            .await;
        let id = str_at(&user, "/user/id");
        let roles = self
            .call(Method::GET, "/roles?name=member", None, 200)
            .await;
        let role = str_at(&roles, "/roles/0/id");
        self.call(
            Method::PUT,
            &format!("/projects/{project_id}/users/{id}/roles/{role}"),
            None,
            204,
        )
        .await;
        ServiceUser {
            name: name.to_owned(),
            id,
            project_id,
        }
    }

    /// Changes the user's password (Keystone revokes every token the user has, including
    /// those issued in the same wall-clock second).
    pub async fn set_password(&self, user: &ServiceUser, password: &str) {
        self.call(
            reqwest::Method::PATCH,
            &format!("/users/{}", user.id),
            Some(json!({"user": {"password": password}})),
            200,
        )
        .await;
    }

    /// Whether Keystone takes `token` as valid now: `Ok(Some(project id or ""))` when it does,
    /// `Ok(None)` when it does not (404: expired, revoked or unknown), `Err` when Keystone
    /// cannot say (unreachable, 5xx).
    pub async fn validate(&self, token: &str) -> Result<Option<String>, String> {
        for renew in [false, true] {
            let admin = self.admin_token_checked(renew).await?;
            let resp = self
                .http
                .get(format!("{}/auth/tokens", self.base))
                .header("x-auth-token", admin)
                .header("x-subject-token", token)
                .send()
                .await
                .map_err(|e| format!("keystone unreachable: {e}"))?;
            match resp.status().as_u16() {
                200 => {
                    let v: Value = resp.json().await.map_err(|e| e.to_string())?;
                    let project = v
                        .pointer("/token/project/id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    return Ok(Some(project.to_owned()));
                }
                404 => return Ok(None),
                // The admin token itself expired or was refused: renew it once.
                401 if !renew => continue,
                s => return Err(format!("keystone answered {s} to a token validation")),
            }
        }
        Err("the admin token was refused twice".to_owned())
    }

    /// [`Self::admin_token`] that reports an unreachable Keystone instead of panicking.
    async fn admin_token_checked(&self, renew: bool) -> Result<String, String> {
        if !renew
            && let Some((t, at)) = self.token.lock().expect("admin token").clone()
            && at.elapsed() < ADMIN_TOKEN_REUSE
        {
            return Ok(t);
        }
        let body = json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
        let t = self
            .post_login(body)
            .await
            .map_err(|s| format!("admin login: HTTP {s}"))?;
        *self.token.lock().expect("admin token") = Some((t.clone(), Instant::now()));
        Ok(t)
    }
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {v}"))
        .to_owned()
}
