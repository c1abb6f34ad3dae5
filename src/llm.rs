//! An optional model-written summary of a diagnosis (SPEC §6.5) from any OpenAI-compatible
//! endpoint (`llm.base_url` + `/chat/completions`; OpenAI, Groq and local servers speak it).
//! The diagnosis never depends on it: a failure is reported beside the facts, not instead of them.

use crate::credentials::{Credentials, TokenSource};
use serde_json::{json, Value};
use std::time::Duration;

/// `[llm]` of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmConfig {
    pub base_url: String,
    pub model: String,
    /// Where the API key comes from (none for local servers).
    pub api_key: Option<TokenSource>,
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
