//! `allot admin --server`: the admin commands as calls of a running server's REST API, with
//! an admin's API key. The server does what the data-directory path does (and audits it as the
//! key's), so the two cannot drift apart in their rules.

use std::time::Duration;

use allot_domain::auth::{Email, Password, Role};
use serde_json::{Value, json};

use crate::admin::Shown;

/// How long one call may take: hashing a password is the slowest of them.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Users asked for per page (the API's largest).
const PAGE: u32 = 500;

pub(crate) struct AdminClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl AdminClient {
    pub(crate) fn new(base: &str, key: &str) -> Result<Self, String> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "--server {base:?}: must start with http:// or https://"
            ));
        }
        let http = crate::grpc_client::http_builder()?
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| format!("making the HTTP client: {e}"))?;
        Ok(AdminClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        })
    }

    /// One call; a refusal is the error, in the server's words (`404 not_found: user not
    /// found`).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req
            .send()
            .await
            .map_err(|e| format!("calling {}: {e}", self.base))?;
        let status = r.status();
        let text = r
            .text()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        let json: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(json);
        }
        let error = &json["error"];
        Err(match (error["code"].as_str(), error["message"].as_str()) {
            (Some(code), Some(message)) => format!("{} {code}: {message}", status.as_u16()),
            _ => format!("{status}: {json}"),
        })
    }

    pub(crate) async fn create_user(
        &self,
        email: &Email,
        password: &Password,
        role: Role,
    ) -> Result<Shown, String> {
        let body = json!({
            "email": email.as_str(),
            "password": password.expose(),
            "role": role.as_str(),
        });
        let user = self
            .call(reqwest::Method::POST, "/api/v1/users", Some(body))
            .await?;
        shown(&user)
    }

    pub(crate) async fn create_api_key(
        &self,
        name: &str,
        role: Role,
    ) -> Result<(i64, String), String> {
        let made = self
            .call(
                reqwest::Method::POST,
                "/api/v1/api-keys",
                Some(json!({"name": name, "role": role.as_str()})),
            )
            .await?;
        match (made["api_key"]["id"].as_i64(), made["key"].as_str()) {
            (Some(id), Some(key)) => Ok((id, key.to_owned())),
            _ => Err(format!("unexpected answer: {made}")),
        }
    }

    pub(crate) async fn revoke_api_key(&self, id: i64) -> Result<(), String> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            None,
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn set_active(&self, id: i64, active: bool) -> Result<Shown, String> {
        let user = self
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/users/{id}/active"),
                Some(json!({"active": active})),
            )
            .await?;
        shown(&user)
    }

    pub(crate) async fn set_role(&self, id: i64, role: Role) -> Result<Shown, String> {
        let user = self
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/users/{id}/role"),
                Some(json!({"role": role.as_str()})),
            )
            .await?;
        shown(&user)
    }

    /// Every matching user, page by page.
    pub(crate) async fn users(
        &self,
        role: Option<Role>,
        email: Option<&Email>,
    ) -> Result<Vec<Shown>, String> {
        let mut filter = String::new();
        if let Some(role) = role {
            filter.push_str(&format!("&role={}", role.as_str()));
        }
        if let Some(email) = email {
            // An email's characters are few and plain, but `+` means a space in a query.
            filter.push_str(&format!("&email={}", email.as_str().replace('+', "%2B")));
        }
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/users?limit={PAGE}&after={after}{filter}"),
                    None,
                )
                .await?;
            for user in page["users"].as_array().into_iter().flatten() {
                all.push(shown(user)?);
            }
            match page["next_after"].as_i64() {
                Some(next) => after = next,
                None => return Ok(all),
            }
        }
    }
}

fn shown(user: &Value) -> Result<Shown, String> {
    match (
        user["id"].as_i64(),
        user["email"].as_str(),
        user["role"].as_str(),
        user["active"].as_bool(),
    ) {
        (Some(id), Some(email), Some(role), Some(active)) => Ok(Shown {
            id,
            email: email.to_owned(),
            role: role.to_owned(),
            active,
        }),
        _ => Err(format!("unexpected answer: {user}")),
    }
}
