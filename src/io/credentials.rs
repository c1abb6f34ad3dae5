//! Repository credentials (SPEC §5, §7.5): a token from an environment variable, from AWS Secrets
//! Manager, from SSM Parameter Store (SecureString), or the literal `GITHUB_TOKEN` (that variable).
//!
//! Read on use and cached briefly (so a rotated secret is picked up within the TTL); never logged
//! or returned: errors name the source (the ARN or variable), never the value.

use crate::io::aws::{AwsError, AwsProvider};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a token read from AWS is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(300);

/// Where a repository's token comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum TokenSource {
    /// An environment variable of the gitmoxi process.
    Env(String),
    /// A Secrets Manager secret (ARN or name): a plain string, or JSON with `token`,
    /// `access_token` or `GITHUB_TOKEN`, or a single string value.
    SecretsManager(String),
    /// An SSM parameter (ARN or name), decrypted.
    Ssm(String),
    /// A file of the gitmoxi machine (`file:PATH`; e.g. an SSH deploy key), read on use.
    File(std::path::PathBuf),
}

impl TokenSource {
    /// Parses Gitmoxi's `access_token_arn`: a Secrets Manager ARN, an SSM parameter ARN, the
    /// literal `GITHUB_TOKEN`, or `env:NAME`, `ssm:NAME`, `secretsmanager:NAME`.
    pub fn parse(value: &str) -> Result<TokenSource, String> {
        let v = value.trim();
        if v == "GITHUB_TOKEN" {
            return Ok(TokenSource::Env("GITHUB_TOKEN".into()));
        }
        if let Some(name) = v.strip_prefix("env:") {
            return Ok(TokenSource::Env(name.into()));
        }
        if let Some(path) = v.strip_prefix("file:") {
            return Ok(TokenSource::File(path.into()));
        }
        if let Some(name) = v.strip_prefix("ssm:") {
            return Ok(TokenSource::Ssm(name.into()));
        }
        if let Some(name) = v.strip_prefix("secretsmanager:") {
            return Ok(TokenSource::SecretsManager(name.into()));
        }
        if v.starts_with("arn:") {
            return match v.split(':').nth(2) {
                Some("secretsmanager") => Ok(TokenSource::SecretsManager(v.into())),
                Some("ssm") => Ok(TokenSource::Ssm(v.into())),
                other => {
                    Err(format!("access token ARN of service {other:?} is not supported; use a Secrets Manager secret or an SSM parameter"))
                }
            };
        }
        Err(format!("access token source '{v}' is not understood; use a Secrets Manager or SSM parameter ARN, GITHUB_TOKEN, or env:NAME"))
    }

    /// The region of an ARN source (None: the default region).
    pub fn region(&self) -> Option<&str> {
        match self {
            TokenSource::Env(_) | TokenSource::File(_) => None,
            TokenSource::SecretsManager(id) | TokenSource::Ssm(id) => id.strip_prefix("arn:").and_then(|r| r.split(':').nth(2)),
        }
    }

    /// A description safe for logs and answers (never the value).
    pub fn describe(&self) -> String {
        match self {
            TokenSource::Env(n) => format!("environment variable {n}"),
            TokenSource::SecretsManager(id) => format!("Secrets Manager secret {id}"),
            TokenSource::Ssm(id) => format!("SSM parameter {id}"),
            TokenSource::File(path) => format!("file {}", path.display()),
        }
    }
}

/// The AWS side of secrets.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// GetSecretValue (SecretString).
    async fn secret(&self, id: &str) -> Result<String, AwsError>;
    /// GetParameter with decryption.
    async fn parameter(&self, name: &str) -> Result<String, AwsError>;
}

/// The token inside a Secrets Manager secret string.
fn token_in_secret(raw: &str) -> String {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(o)) => ["token", "access_token", "GITHUB_TOKEN", "github_token"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str))
            .map(str::to_string)
            .or_else(|| match o.values().collect::<Vec<_>>().as_slice() {
                [Value::String(only)] => Some(only.clone()),
                _ => None,
            })
            .unwrap_or_else(|| raw.to_string()),
        _ => raw.trim().to_string(),
    }
}

/// A secret file: at most 64 KiB, a regular file (a symbolic link to one is followed: it is the
/// operator's own machine).
fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(64 * 1024 + 1).read_to_string(&mut text).map_err(|e| e.to_string())?;
    if text.len() > 64 * 1024 {
        return Err("it is over 64 KiB: not a key or a token".into());
    }
    Ok(text)
}

/// Resolves tokens, with a short cache.
pub struct Credentials {
    aws: Arc<dyn AwsProvider>,
    default_region: String,
    cache: Mutex<HashMap<TokenSourceKey, (Instant, String)>>,
}

type TokenSourceKey = String;

impl Credentials {
    pub fn new(aws: Arc<dyn AwsProvider>, default_region: String) -> Credentials {
        Credentials { aws, default_region, cache: Mutex::new(HashMap::new()) }
    }

    /// The token now (cached for `CACHE_TTL` when it came from AWS).
    pub async fn token(&self, source: &TokenSource) -> Result<String, String> {
        let key = serde_json::to_string(source).unwrap_or_default();
        // only tokens read from AWS are cached
        let cached = crate::base::sync::lock(&self.cache).get(&key).filter(|(at, _)| at.elapsed() < CACHE_TTL).map(|(_, t)| t.clone());
        if let Some(token) = cached {
            return Ok(token);
        }
        let read = match source {
            TokenSource::Env(name) => return std::env::var(name).map_err(|_| format!("the {} is not set", source.describe())),
            TokenSource::File(path) => return read_secret_file(path).map_err(|e| format!("cannot read the {}: {e}", source.describe())),
            TokenSource::SecretsManager(id) => {
                self.aws.secrets(None, source.region().unwrap_or(&self.default_region)).secret(id).await.map(|raw| token_in_secret(&raw))
            }
            TokenSource::Ssm(id) => {
                // GetParameter takes a name; an ARN's name is what follows `parameter`
                let name = id.split_once(":parameter").map_or(id.as_str(), |(_, n)| n);
                self.aws.secrets(None, source.region().unwrap_or(&self.default_region)).parameter(name).await
            }
        };
        let token = read.map_err(|e| format!("cannot read the {}: {e}", source.describe()))?;
        crate::base::sync::lock(&self.cache).insert(key, (Instant::now(), token.clone()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_parsed_from_gitmoxi_access_token_arns() {
        assert_eq!(TokenSource::parse("GITHUB_TOKEN").unwrap(), TokenSource::Env("GITHUB_TOKEN".into()));
        let sm = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:github-AbCdEf";
        assert_eq!(TokenSource::parse(sm).unwrap(), TokenSource::SecretsManager(sm.into()));
        assert_eq!(TokenSource::parse(sm).unwrap().region(), Some("eu-west-1"));
        let ssm = "arn:aws:ssm:us-east-1:123456789012:parameter/ci/github-token";
        assert_eq!(TokenSource::parse(ssm).unwrap(), TokenSource::Ssm(ssm.into()));
        assert_eq!(TokenSource::parse("env:MY_TOKEN").unwrap(), TokenSource::Env("MY_TOKEN".into()));
        assert!(TokenSource::parse("arn:aws:s3:::bucket").unwrap_err().contains("not supported"));
        assert!(TokenSource::parse("hunter2").unwrap_err().contains("not understood"));
    }

    #[test]
    fn tokens_are_found_inside_json_secrets() {
        assert_eq!(token_in_secret("ghp_plain"), "ghp_plain");
        assert_eq!(token_in_secret(r#"{"token": "ghp_a", "user": "x"}"#), "ghp_a");
        assert_eq!(token_in_secret(r#"{"anything": "ghp_b"}"#), "ghp_b");
    }
}
