//! An optional model-written summary of a diagnosis (SPEC §6.5) from any OpenAI-compatible
//! endpoint (`llm.base_url` + `/chat/completions`; OpenAI, Groq and local servers speak it).
//! The diagnosis never depends on it: a failure is reported beside the facts, not instead of them.
//!
//! The endpoint and the model come from the configuration only: the operator pays for what is
//! asked, so a model named in a request (gmctl's `llm_model`) is never used (issue 27).

use crate::io::credentials::{Credentials, TokenSource};
use serde_json::{json, Value};
use std::time::Duration;

/// `[llm]` of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmConfig {
    pub base_url: String,
    /// The only model asked, whatever a request names.
    pub model: String,
    /// Where the API key comes from (none for local servers).
    pub api_key: Option<TokenSource>,
}

impl LlmConfig {
    /// What to tell a caller that named a model of its own (`requested`): it is not used.
    pub fn unused_model(&self, requested: Option<&str>) -> Option<String> {
        let requested = requested.map(str::trim).filter(|m| !m.is_empty() && *m != self.model)?;
        let shown: String = requested.chars().take(80).collect();
        Some(format!(
            "llm_model '{shown}' is not used: gitmoxi asks the model of its [llm] configuration ({}); the operator sets it",
            self.model
        ))
    }
}

const SYSTEM: &str = "You are an SRE assistant for gitmoxi, a GitOps deployment controller for Amazon ECS and AWS Lambda. \
Given the facts of one deployment (cause, evidence, the diff of the app's files, the timeline and gitmoxi's suggested next step), \
explain in at most five sentences what most likely went wrong and what to do now. Do not invent facts.";

/// Asks the model for a summary of `facts` (the diagnosis JSON).
pub async fn summarize(config: &LlmConfig, credentials: &Credentials, facts: &Value) -> Result<String, String> {
    complete(config, credentials, SYSTEM, facts).await
}

/// The instructions of a risk summary (gmctl `commit riskiq`).
pub const RISK_SYSTEM: &str = "You are an SRE assistant for gitmoxi, a GitOps deployment controller for Amazon ECS and AWS Lambda. \
Given gitmoxi's own risk assessment of a commit (per app: what changes in AWS, the score and its reasons), \
say in at most five sentences what could go wrong when it deploys and what to watch. Do not invent facts.";

/// Asks the model, with `system` as its instructions, about `facts`.
pub async fn complete(config: &LlmConfig, credentials: &Credentials, system: &str, facts: &Value) -> Result<String, String> {
    let key = match &config.api_key {
        Some(source) => Some(credentials.token(source).await?),
        None => None,
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(|e| e.to_string())?;
    let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
    let body = json!({
        "model": config.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": serde_json::to_string_pretty(facts).unwrap_or_default()},
        ],
    });
    let mut request = client.post(&url).json(&body);
    if let Some(k) = key {
        request = request.bearer_auth(k);
    }
    let response = request.send().await.map_err(|e| format!("the model endpoint is unreachable: {}", e.without_url()))?;
    let status = response.status();
    let answer: Value =
        response.json().await.map_err(|e| format!("the model endpoint answered {status} with no JSON: {}", e.without_url()))?;
    if !status.is_success() {
        let why = answer.pointer("/error/message").and_then(Value::as_str).unwrap_or("no details");
        return Err(format!("the model endpoint answered {status}: {why}"));
    }
    answer
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
        .ok_or_else(|| "the model's answer has no choices[0].message.content".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_named_in_a_request_is_never_asked() {
        let config = LlmConfig { base_url: "http://127.0.0.1:1/v1".into(), model: "local-model".into(), api_key: None };
        let said = config.unused_model(Some("gpt-expensive")).expect("the caller is told");
        assert!(said.contains("'gpt-expensive' is not used") && said.contains("(local-model)"), "{said}");
        assert_eq!(config.unused_model(Some("local-model")), None, "the configured one: nothing to say");
        assert_eq!(config.unused_model(Some("  ")), None);
        assert_eq!(config.unused_model(None), None);
        assert!(config.unused_model(Some("m".repeat(10_000).as_str())).is_some_and(|s| s.len() < 300), "a long name is not echoed whole");
    }
}
