//! A typed client of gitmoxi's HTTP API for the CLI: one request path (token, errors as one
//! sentence), the app list read as the server's own [`AppView`]s.

use super::args::Remote;
use crate::edge::http::views::AppView;
use anyhow::{bail, Context};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The server the CLI talks to.
pub struct ApiClient {
    server: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(remote: &Remote) -> ApiClient {
        ApiClient { server: remote.server.trim_end_matches('/').to_string(), token: remote.token.clone(), http: reqwest::Client::new() }
    }

    /// One request; the server's error answer becomes one sentence (`refused` names the case).
    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<&Value>, refused: &str) -> anyhow::Result<T> {
        let mut request = self.http.request(method, format!("{}{path}", self.server));
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the gitmoxi server at {}; is `gitmoxi serve` running?", self.server))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let why = answer.get("error").and_then(Value::as_str).unwrap_or("no details");
            bail!("{refused} ({status}): {why}");
        }
        serde_json::from_str(&text).with_context(|| format!("the server's answer to {path} is not what this gitmoxi expects"))
    }

    /// Every app the server knows.
    pub async fn apps(&self) -> anyhow::Result<Vec<AppView>> {
        self.call(Method::GET, "/api/v2/apps", None, "the server answered").await
    }

    /// One app with its history.
    pub async fn app(&self, app: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, &format!("/api/v2/apps/{app}"), None, &format!("the server does not know app {app}")).await
    }

    /// A GET of any API path (deployments, diagnoses).
    pub async fn get(&self, path_and_query: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path_and_query, None, "the server answered").await
    }

    /// A POST of any API path (a release's approval).
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(&body), "the server refused").await
    }

    /// Sends one operator command.
    pub async fn command(&self, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, "/api/v2/commands", Some(&body), "the server refused the command").await
    }
}

/// Percent-encodes a query value.
pub fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
