//! Push webhooks (SPEC §5): `POST /webhooks/github` (HMAC-SHA256 `X-Hub-Signature-256`, checked
//! in constant time) and `POST /webhooks/gitlab` (`X-Gitlab-Token`). A push to a tracked repository
//! and branch wakes that branch's source at once; bursts coalesce into one fetch (the wake is a
//! single permit). Anything else is acknowledged with 202 and ignored; GitHub's `ping` gets 200.
//!
//! Must never: act on an unsigned or mis-signed request, echo a secret, or block on the fetch.

use super::{constant_time_eq, error, HttpState};
use crate::repos::{Repos, WakeTarget};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Webhook secrets (what a push can wake comes from the server's repositories).
#[derive(Clone, Default)]
pub struct Webhooks {
    pub github_secret: Option<String>,
    pub gitlab_token: Option<String>,
}

/// A push, as the providers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Every URL the provider gives for the repository (clone, SSH, web).
    pub urls: Vec<String>,
    pub branch: String,
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn github_signature_ok(secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex_sig) = signature.and_then(|s| s.strip_prefix("sha256=")) else { return false };
    let Ok(given) = hex::decode(hex_sig.trim()) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    // verify_slice compares in constant time
    mac.verify_slice(&given).is_ok()
}

/// The push of a GitHub `push` payload.
pub fn parse_github_push(body: &[u8]) -> Result<Option<Push>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let Some(branch) = v.get("ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("refs/heads/")) else {
        return Ok(None); // a tag push or another ref: not a branch head
    };
    let repo = v.get("repository").ok_or("the payload has no \"repository\"")?;
    let urls = ["clone_url", "ssh_url", "git_url", "html_url", "url"]
        .iter()
        .filter_map(|k| repo.get(*k).and_then(Value::as_str).map(str::to_string))
        .collect();
    Ok(Some(Push { urls, branch: branch.to_string() }))
}

/// The push of a GitLab `Push Hook` payload.
pub fn parse_gitlab_push(body: &[u8]) -> Result<Option<Push>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let Some(branch) = v.get("ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("refs/heads/")) else { return Ok(None) };
    let mut urls = Vec::new();
    for holder in ["project", "repository"] {
        if let Some(p) = v.get(holder) {
            for k in ["git_http_url", "git_ssh_url", "web_url", "http_url", "url", "homepage"] {
                if let Some(u) = p.get(k).and_then(Value::as_str) {
                    urls.push(u.to_string());
                }
            }
        }
    }
    Ok(Some(Push { urls, branch: branch.to_string() }))
}

/// `host/owner/name` of a Git URL (https, ssh, scp-style, file), lowercased, without `.git`.
pub fn normalize_url(url: &str) -> String {
    let u = url.trim().trim_end_matches('/').trim_end_matches(".git").to_ascii_lowercase();
    let (had_scheme, rest) = match u.split_once("://") {
        Some((_, rest)) => (true, rest),
        None => (false, u.as_str()),
    };
    let without_user = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    match without_user.split_once(':') {
        // scp-style git@host:owner/repo → host/owner/repo
        Some((host, path)) if !had_scheme && !host.contains('/') => format!("{host}/{path}"),
        // host:port/path → host/path
        Some((host, port_and_path)) if had_scheme && !host.contains('/') => {
            let path = port_and_path.split_once('/').map_or("", |(_, p)| p);
            format!("{host}/{path}")
        }
        _ => without_user.to_string(),
    }
}

/// The targets a push wakes.
fn targets_of(repos: &Repos, push: &Push) -> Vec<WakeTarget> {
    let pushed: Vec<String> = push.urls.iter().map(|u| normalize_url(u)).collect();
    repos.targets().into_iter().filter(|t| t.branch == push.branch && pushed.contains(&normalize_url(&t.url))).collect()
}

fn outcome(state: &HttpState, provider: &str, result: &str) {
    state.controller.metrics.webhooks_total.with_label_values(&[provider, result]).inc();
}

fn wake(state: &HttpState, provider: &str, push: Push) -> Response {
    let hits = targets_of(&state.repos, &push);
    if hits.is_empty() {
        outcome(state, provider, "ignored");
        return (
            StatusCode::ACCEPTED,
            Json(json!({"status": "ignored", "reason": format!("no tracked repository has branch '{}' at that URL", push.branch)})),
        )
            .into_response();
    }
    let repos: Vec<String> = hits.iter().map(|t| format!("{}@{}", t.repo, t.branch)).collect();
    for t in hits {
        t.wake.notify_one();
    }
    tracing::info!(provider, branch = %push.branch, repos = ?repos, "push webhook: fetching now");
    outcome(state, provider, "accepted");
    Json(json!({"status": "fetching", "repos": repos})).into_response()
}

pub async fn github(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = state.webhooks.github_secret.as_deref() else {
        outcome(&state, "github", "disabled");
        return error(StatusCode::NOT_FOUND, "GitHub webhooks are off: start gitmoxi with --github-webhook-secret");
    };
    let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    if !github_signature_ok(secret, &body, signature) {
        outcome(&state, "github", "unauthorized");
        let why =
            if signature.is_none() { "missing X-Hub-Signature-256" } else { "X-Hub-Signature-256 does not match the configured secret" };
        return error(StatusCode::UNAUTHORIZED, why);
    }
    match headers.get("x-github-event").and_then(|v| v.to_str().ok()) {
        Some("ping") => {
            outcome(&state, "github", "ping");
            Json(json!({"status": "pong"})).into_response()
        }
        Some("push") => match parse_github_push(&body) {
            Ok(Some(push)) => wake(&state, "github", push),
            Ok(None) => {
                outcome(&state, "github", "ignored");
                (StatusCode::ACCEPTED, Json(json!({"status": "ignored", "reason": "not a branch push"}))).into_response()
            }
            Err(why) => {
                outcome(&state, "github", "bad_request");
                error(StatusCode::BAD_REQUEST, why)
            }
        },
        other => {
            outcome(&state, "github", "ignored");
            (
                StatusCode::ACCEPTED,
                Json(json!({"status": "ignored", "reason": format!("event {:?} is not handled", other.unwrap_or("none"))})),
            )
                .into_response()
        }
    }
}

pub async fn gitlab(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(expected) = state.webhooks.gitlab_token.as_deref() else {
        outcome(&state, "gitlab", "disabled");
        return error(StatusCode::NOT_FOUND, "GitLab webhooks are off: start gitmoxi with --gitlab-webhook-token");
    };
    let given = headers.get("x-gitlab-token").and_then(|v| v.to_str().ok());
    if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        outcome(&state, "gitlab", "unauthorized");
        return error(StatusCode::UNAUTHORIZED, "missing or wrong X-Gitlab-Token");
    }
    match headers.get("x-gitlab-event").and_then(|v| v.to_str().ok()) {
        Some("Push Hook") => match parse_gitlab_push(&body) {
            Ok(Some(push)) => wake(&state, "gitlab", push),
            Ok(None) => {
                outcome(&state, "gitlab", "ignored");
                (StatusCode::ACCEPTED, Json(json!({"status": "ignored", "reason": "not a branch push"}))).into_response()
            }
            Err(why) => {
                outcome(&state, "gitlab", "bad_request");
                error(StatusCode::BAD_REQUEST, why)
            }
        },
        other => {
            outcome(&state, "gitlab", "ignored");
            (
                StatusCode::ACCEPTED,
                Json(json!({"status": "ignored", "reason": format!("event {:?} is not handled", other.unwrap_or("none"))})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked() {
        let body = br#"{"ref": "refs/heads/main"}"#;
        assert!(github_signature_ok("s3cret", body, Some(&sign("s3cret", body))));
        assert!(!github_signature_ok("s3cret", body, Some(&sign("other", body))));
        assert!(!github_signature_ok("s3cret", b"tampered", Some(&sign("s3cret", body))));
        assert!(!github_signature_ok("s3cret", body, None));
        assert!(!github_signature_ok("s3cret", body, Some("sha1=abc")));
        assert!(!github_signature_ok("s3cret", body, Some("sha256=not-hex")));
    }

    #[test]
    fn urls_of_one_repository_normalize_alike() {
        let want = "github.com/acme/deploys";
        for u in [
            "https://github.com/acme/deploys.git",
            "https://github.com/Acme/Deploys",
            "git@github.com:acme/deploys.git",
            "ssh://git@github.com:22/acme/deploys.git",
            "git://github.com/acme/deploys.git",
            "https://token@github.com/acme/deploys/",
        ] {
            assert_eq!(normalize_url(u), want, "{u}");
        }
        assert_eq!(normalize_url("file:///tmp/repo"), "/tmp/repo");
        assert_eq!(normalize_url("/tmp/repo"), "/tmp/repo");
    }

    #[test]
    fn pushes_are_parsed_and_tags_are_not_branch_pushes() {
        let gh = br#"{"ref": "refs/heads/main", "repository": {"clone_url": "https://github.com/acme/deploys.git", "ssh_url": "git@github.com:acme/deploys.git"}}"#;
        let push = parse_github_push(gh).unwrap().unwrap();
        assert_eq!(push.branch, "main");
        assert_eq!(push.urls.len(), 2);
        assert_eq!(parse_github_push(br#"{"ref": "refs/tags/v1", "repository": {}}"#).unwrap(), None);
        assert!(parse_github_push(b"{not json").unwrap_err().contains("not JSON"));
        assert!(parse_github_push(br#"{"ref": "refs/heads/main"}"#).unwrap_err().contains("repository"));
        let gl = br#"{"ref": "refs/heads/prod", "project": {"git_http_url": "https://gitlab.com/acme/deploys.git"}}"#;
        assert_eq!(parse_gitlab_push(gl).unwrap().unwrap().branch, "prod");
    }
}
