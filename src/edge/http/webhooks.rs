//! Push webhooks (SPEC §5): `POST /webhooks/github` (HMAC-SHA256 `X-Hub-Signature-256`, checked
//! in constant time) and `POST /webhooks/gitlab` (`X-Gitlab-Token`). A push to a tracked repository
//! and branch wakes that branch's source at once; bursts coalesce into one fetch (the wake is a
//! single permit). A pull request (GitHub `pull_request`, GitLab `Merge Request Hook`) opened or
//! pushed to queues its plan preview ([`super::previews`]). Anything else is acknowledged with 202
//! and ignored; GitHub's `ping` gets 200.
//!
//! Must never: act on an unsigned or mis-signed request, echo a secret, or block on the fetch.

use super::reply::{constant_time_eq, error};
use super::state::HttpState;
pub use super::state::Webhooks;
use crate::runtime::repos::{Repos, WakeTarget};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde_json::json;

pub use gitmoxi_deploy::webhook::{
    normalize_url, parse_github_pull_request, parse_github_push, parse_gitlab_merge_request, parse_gitlab_push, Push,
};
use sha2::Sha256;

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn github_signature_ok(secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex_sig) = signature.and_then(|s| s.strip_prefix("sha256=")) else { return false };
    let Ok(given) = hex::decode(hex_sig.trim()) else { return false };
    hmac_sha256_matches(secret, &[body], &given)
}

/// Whether `given` is the HMAC-SHA256 of `parts` (concatenated) under `secret`, compared in
/// constant time (GitHub's and Slack's signatures).
pub fn hmac_sha256_matches(secret: &str, parts: &[&[u8]], given: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(given).is_ok()
}

/// The targets a push wakes.
fn targets_of(repos: &Repos, push: &Push) -> Vec<WakeTarget> {
    let pushed: Vec<String> = push.urls.iter().map(|u| normalize_url(u)).collect();
    repos.targets().into_iter().filter(|t| t.branch == push.branch && pushed.contains(&normalize_url(&t.url))).collect()
}

fn outcome(state: &HttpState, provider: &str, result: &str) {
    state.controller.metrics.webhooks_total.with_label_values(&[provider, result]).inc();
}

/// A webhook acknowledged and not acted on (202), counted.
pub(crate) fn ignored(state: &HttpState, provider: &str, reason: impl Into<String>) -> Response {
    outcome(state, provider, "ignored");
    (StatusCode::ACCEPTED, Json(json!({"status": "ignored", "reason": reason.into()}))).into_response()
}

/// A signed webhook whose payload is not what its event promises (400), counted.
fn bad_request(state: &HttpState, provider: &str, why: String) -> Response {
    outcome(state, provider, "bad_request");
    error(StatusCode::BAD_REQUEST, why)
}

fn wake(state: &HttpState, provider: &str, push: Push) -> Response {
    let hits = targets_of(&state.repos, &push);
    if hits.is_empty() {
        return ignored(state, provider, format!("no tracked repository has branch '{}' at that URL", push.branch));
    }
    let repos: Vec<String> = hits.iter().map(|t| format!("{}@{}", t.repo, t.branch)).collect();
    for t in hits {
        t.signal.wake();
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
            Ok(None) => ignored(&state, "github", "not a branch push"),
            Err(why) => bad_request(&state, "github", why),
        },
        Some("pull_request") => match parse_github_pull_request(&body) {
            Ok(Some(pr)) => super::previews::on_pull_request(&state, "github", pr),
            // a closed or merged pull request cancels its running preview
            Ok(None) => super::previews::on_pull_request_closed(&state, "github", &body)
                .unwrap_or_else(|| ignored(&state, "github", "this pull request action needs no preview")),
            Err(why) => bad_request(&state, "github", why),
        },
        other => ignored(&state, "github", format!("event {:?} is not handled", other.unwrap_or("none"))),
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
            Ok(None) => ignored(&state, "gitlab", "not a branch push"),
            Err(why) => bad_request(&state, "gitlab", why),
        },
        Some("Merge Request Hook") => match parse_gitlab_merge_request(&body) {
            Ok(Some(pr)) => super::previews::on_pull_request(&state, "gitlab", pr),
            Ok(None) => super::previews::on_pull_request_closed(&state, "gitlab", &body)
                .unwrap_or_else(|| ignored(&state, "gitlab", "this merge request action needs no preview")),
            Err(why) => bad_request(&state, "gitlab", why),
        },
        other => ignored(&state, "gitlab", format!("event {:?} is not handled", other.unwrap_or("none"))),
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
}
