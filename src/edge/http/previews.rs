//! Plan previews (issue 17): what merging would do against the live state.
//!
//! - A signed `pull_request` (GitHub) or `Merge Request Hook` (GitLab) webhook for a tracked
//!   repository and branch with `[repos.forge]` queues a preview; it is posted as one comment on
//!   the pull request, updated in place on each push (the comment's id is kept in the store).
//! - `GET /api/v2/preview?repo=NAME&branch=B&to=REV` answers the same preview (JSON and its
//!   Markdown): what `gitmoxi plan --server URL --to REV` prints.
//!
//! A preview fetches a pull request into a scratch repository, removed when it ends, and renders
//! in the memory-capped workers; it never loads a head, deploys or changes what the controller
//! plans. Bounds (issue 27): one preview per pull request at a time — a newer push cancels the
//! older preview, whose worker is killed, and closing or merging the pull request cancels it
//! too; previews share the render slots of riskiq and dryrun ([`crate::io::renders`]), waiting for
//! one at most [`PREVIEW_QUEUE_WAIT`], then have [`PREVIEW_TIMEOUT`] to fetch and render.

use super::reply::error;
use super::state::HttpState;
use super::webhooks::ignored;
use crate::io::renders::{Newest, RenderError};
use crate::runtime::config::RepoConfig;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gitmoxi_deploy::webhook::{normalize_url, PullRequest};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A preview's time bound once it has a render slot (fetch and render).
pub const PREVIEW_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a pull request's preview waits for a render slot.
pub const PREVIEW_QUEUE_WAIT: Duration = Duration::from_secs(600);
/// The time bound of writing a preview's comment (the forge's token, the forge's API).
const COMMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A pull request: the state directory of the gitmoxi that previews it (one per process, but
/// tests run several), the repository's name, its number.
type PullKey = (std::path::PathBuf, String, u64);

/// The preview running for each pull request.
fn pull_requests() -> &'static Arc<Newest<PullKey>> {
    static RUNNING: std::sync::OnceLock<Arc<Newest<PullKey>>> = std::sync::OnceLock::new();
    RUNNING.get_or_init(Arc::default)
}

/// One comment written at a time: two previews of one pull request never race to create two
/// comments.
fn one_comment_at_a_time() -> &'static tokio::sync::Mutex<()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

#[derive(Debug, Deserialize)]
pub struct PreviewQuery {
    /// The repository's name (default: the only tracked one).
    repo: Option<String>,
    /// The branch merged into (default: the repository's first).
    branch: Option<String>,
    /// What to preview: a branch, `pull/N`, `merge-requests/N`, `refs/…` or a commit id.
    to: String,
}

/// `GET /api/v2/preview`.
pub async fn preview(State(state): State<HttpState>, Query(q): Query<PreviewQuery>) -> Response {
    let repos = state.repos.configs();
    let repo = match (&q.repo, repos.len()) {
        (Some(name), _) => repos.into_iter().find(|r| &r.name == name),
        (None, 1) => repos.into_iter().next(),
        (None, _) => {
            let names: Vec<String> = repos.iter().map(|r| r.name.clone()).collect();
            return error(StatusCode::BAD_REQUEST, format!("several repositories are tracked ({}); name one with repo=", names.join(", ")));
        }
    };
    let Some(repo) = repo else {
        return error(StatusCode::NOT_FOUND, format!("no tracked repository '{}'", q.repo.unwrap_or_default()));
    };
    let branch = q.branch.clone().unwrap_or_else(|| repo.branches.first().cloned().unwrap_or_else(|| "main".into()));
    if !repo.branches.contains(&branch) {
        return error(StatusCode::NOT_FOUND, format!("branch '{branch}' of {} is not tracked", repo.name));
    }
    let run = crate::runtime::preview::preview_rev(&state.controller, &state.state_dir, &repo, &branch, &q.to);
    match tokio::time::timeout(PREVIEW_TIMEOUT, run).await {
        Ok(Ok(p)) => {
            let markdown = crate::runtime::preview::markdown(&p);
            Json(json!({"preview": p, "markdown": markdown})).into_response()
        }
        Ok(Err(e @ RenderError::Failed(_))) => error(StatusCode::UNPROCESSABLE_ENTITY, format!("no preview of '{}': {e}", q.to)),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, format!("no preview of '{}': {e}", q.to)),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the preview of '{}' took over {} s (its render was stopped); try again, or run gitmoxi plan on a checkout",
                q.to,
                PREVIEW_TIMEOUT.as_secs()
            ),
        ),
    }
}

/// A pull or merge request's webhook: queue its preview (202), or say why there is none. A
/// preview of an older push of the same pull request still running is cancelled.
pub fn on_pull_request(state: &HttpState, provider: &str, pr: PullRequest) -> Response {
    let named: Vec<String> = pr.urls.iter().map(|u| normalize_url(u)).collect();
    let repo = state.repos.configs().into_iter().find(|r| named.contains(&normalize_url(&r.url)) && r.branches.contains(&pr.base_branch));
    let Some(repo) = repo else {
        return ignored(state, provider, format!("no tracked repository has branch '{}' at that URL", pr.base_branch));
    };
    let Some(target) = &repo.forge else {
        return ignored(state, provider, format!("repository {} has no [repos.forge]: no preview is posted", repo.name));
    };
    let expected = match target.forge {
        crate::integrations::forge::Forge::GitHub => "github",
        crate::integrations::forge::Forge::GitLab => "gitlab",
    };
    if provider != expected {
        // a hook of another forge (a GitLab hook on a GitHub-configured repository) previews nothing
        return ignored(
            state,
            provider,
            format!("repository {} reports to {expected}: a {provider} webhook does not preview it", repo.name),
        );
    }
    state.controller.metrics.webhooks_total.with_label_values(&[provider, "accepted"]).inc();
    let number = pr.number;
    tracing::info!(provider, repo = %repo.name, pull_request = number, "plan preview queued");
    let ticket = pull_requests().begin((state.state_dir.clone(), repo.name.clone(), number));
    let state = state.clone();
    tokio::spawn(async move {
        let cancel = ticket.token().clone();
        let (name, number) = (repo.name.clone(), pr.number);
        let body = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            body = preview_body(&state, &repo, &pr, &cancel) => body,
        };
        let Some(body) = body else {
            tracing::info!(repo = %name, pull_request = number, "plan preview stopped: a newer push replaced it, or the pull request closed");
            return;
        };
        match tokio::time::timeout(COMMENT_TIMEOUT, write_comment(&state, &repo, number, &body, &cancel)).await {
            Ok(Ok(true)) => tracing::info!(repo = %name, pull_request = number, "plan preview posted"),
            Ok(Ok(false)) => tracing::info!(repo = %name, pull_request = number, "plan preview not posted: a newer push replaced it"),
            Ok(Err(e)) => tracing::warn!(repo = %name, pull_request = number, error = %e, "plan preview not posted"),
            Err(_) => {
                tracing::warn!(repo = %name, pull_request = number, "plan preview not posted: the forge took over {COMMENT_TIMEOUT:?}")
            }
        }
        drop(ticket);
    });
    (StatusCode::ACCEPTED, Json(json!({"status": "previewing", "pull_request": number}))).into_response()
}

/// The comment of a pull request's preview: the preview, or why there is none. `None`: the
/// preview was cancelled (a newer push, the pull request closed) and nothing is to be written.
async fn preview_body(state: &HttpState, repo: &RepoConfig, pr: &PullRequest, cancel: &CancellationToken) -> Option<String> {
    match preview_pull_request(state, repo, pr, cancel).await {
        Ok(p) => Some(crate::runtime::preview::markdown(&p)),
        Err(RenderError::Cancelled) => None,
        Err(e) => {
            // the comment is public: no repository URL, no path of the state directory
            let detail = e.to_string();
            tracing::warn!(repo = %repo.name, pull_request = pr.number, error = %crate::io::git::source::redact_in_text(&detail), "plan preview failed");
            let shown = detail
                .replace(&repo.url, &repo.name)
                .replace(&crate::io::git::source::redact(&repo.url), &repo.name)
                .replace(&state.state_dir.display().to_string(), "<state dir>");
            Some(format!(
                "{}\n### gitmoxi plan\n\ngitmoxi could not preview this change: {}\n",
                crate::runtime::preview::MARKER,
                crate::runtime::preview::md_text(&shown)
            ))
        }
    }
}

/// A pull request's preview: a render slot (waited for at most [`PREVIEW_QUEUE_WAIT`]), then
/// at most [`PREVIEW_TIMEOUT`] to fetch and render.
async fn preview_pull_request(
    state: &HttpState,
    repo: &RepoConfig,
    pr: &PullRequest,
    cancel: &CancellationToken,
) -> Result<crate::runtime::preview::PlanPreview, RenderError> {
    let permit = crate::io::renders::permit(PREVIEW_QUEUE_WAIT, cancel).await?;
    let run =
        crate::runtime::preview::preview_with(&state.controller, &state.state_dir, repo, &pr.base_branch, &pr.head_ref, permit, cancel);
    match tokio::time::timeout(PREVIEW_TIMEOUT, run).await {
        Ok(done) => done,
        Err(_) => Err(RenderError::Failed(format!(
            "fetching and rendering it took over {} s (its render was stopped); push again to retry, or run gitmoxi plan on a checkout",
            PREVIEW_TIMEOUT.as_secs()
        ))),
    }
}

/// Writes the pull request's comment (created once, then updated in place); `false` when a
/// newer push cancelled this preview first. Once begun, a write is finished: a comment created
/// on the forge always has its id kept.
async fn write_comment(state: &HttpState, repo: &RepoConfig, number: u64, body: &str, cancel: &CancellationToken) -> Result<bool, String> {
    let Some(target) = &repo.forge else { return Ok(false) };
    let token = state.controller.credentials.token(&target.token).await.map_err(|e| format!("no token for the forge: {e}"))?;
    let _one = one_comment_at_a_time().lock().await;
    if cancel.is_cancelled() {
        return Ok(false);
    }
    let row = gitmoxi_state::branch_row(&repo.name, &number.to_string());
    let comments = state.controller.store.table::<u64>(gitmoxi_state::TableName::PreviewComments).map_err(|e| e.to_string())?;
    let existing = comments.get(&row).map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    let id = crate::integrations::forge::upsert_comment(&client, target, &token, number, body, existing).await?;
    comments.put(&row, &id).map_err(|e| e.to_string())?;
    Ok(true)
}

/// A pull or merge request closed or merged: the preview it has running, if any, stops (its
/// worker killed, its scratch repository removed). `None`: the payload is no close (the caller
/// answers as before). Acknowledged as `ignored`: no preview follows.
pub fn on_pull_request_closed(state: &HttpState, provider: &str, body: &[u8]) -> Option<Response> {
    let closed = closed_pull_request(provider, body)?;
    let named: Vec<String> = closed.urls.iter().map(|u| normalize_url(u)).collect();
    let stopped: Vec<String> = state
        .repos
        .configs()
        .into_iter()
        .filter(|r| named.contains(&normalize_url(&r.url)))
        .filter(|r| pull_requests().cancel(&(state.state_dir.clone(), r.name.clone(), closed.number)))
        .map(|r| r.name)
        .collect();
    if !stopped.is_empty() {
        tracing::info!(provider, repos = ?stopped, pull_request = closed.number, "pull request closed: its running plan preview is stopped");
    }
    let reason = if stopped.is_empty() {
        format!("pull request {} closed: no preview", closed.number)
    } else {
        format!("pull request {} closed: no preview; the one running was stopped", closed.number)
    };
    Some(ignored(state, provider, reason))
}

/// A closed (or merged) pull request, as its webhook names it.
#[derive(Debug, PartialEq, Eq)]
struct Closed {
    urls: Vec<String>,
    number: u64,
}

/// The pull request a GitHub `pull_request` payload with action `closed` (merged or not), or a
/// GitLab `Merge Request Hook` with action `close` or `merge`, names; `None` for anything else.
fn closed_pull_request(provider: &str, body: &[u8]) -> Option<Closed> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let strings = |holder: Option<&Value>, keys: &[&str]| -> Vec<String> {
        keys.iter().filter_map(|k| holder.and_then(|h| h.get(*k)).and_then(Value::as_str).map(str::to_string)).collect()
    };
    match provider {
        "github" => {
            if v.get("action").and_then(Value::as_str) != Some("closed") {
                return None;
            }
            let number = v.get("number").or_else(|| v.pointer("/pull_request/number")).and_then(Value::as_u64)?;
            let urls = strings(v.get("repository"), &["clone_url", "ssh_url", "git_url", "html_url", "url"]);
            Some(Closed { urls, number })
        }
        "gitlab" => {
            let attrs = v.get("object_attributes")?;
            if !matches!(attrs.get("action").and_then(Value::as_str), Some("close" | "merge")) {
                return None;
            }
            let number = attrs.get("iid").and_then(Value::as_u64)?;
            let keys = ["git_http_url", "git_ssh_url", "web_url", "http_url", "url", "homepage"];
            let mut urls = strings(v.get("project"), &keys);
            urls.extend(strings(v.get("repository"), &keys));
            Some(Closed { urls, number })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_or_merged_pull_request_is_recognized_and_nothing_else() {
        let github = br#"{"action": "closed", "number": 7, "pull_request": {"merged": true}, "repository": {"clone_url": "https://github.com/acme/d.git"}}"#;
        assert_eq!(closed_pull_request("github", github), Some(Closed { urls: vec!["https://github.com/acme/d.git".into()], number: 7 }));
        let pushed = br#"{"action": "synchronize", "number": 7, "repository": {"clone_url": "https://github.com/acme/d.git"}}"#;
        assert_eq!(closed_pull_request("github", pushed), None);
        let merged =
            br#"{"object_attributes": {"action": "merge", "iid": 3}, "project": {"git_http_url": "https://gitlab.com/acme/d.git"}}"#;
        assert_eq!(closed_pull_request("gitlab", merged), Some(Closed { urls: vec!["https://gitlab.com/acme/d.git".into()], number: 3 }));
        let closed = br#"{"object_attributes": {"action": "close", "iid": 4}}"#;
        assert_eq!(closed_pull_request("gitlab", closed).map(|c| c.number), Some(4));
        let updated = br#"{"object_attributes": {"action": "update", "iid": 3}}"#;
        assert_eq!(closed_pull_request("gitlab", updated), None);
        assert_eq!(closed_pull_request("github", b"not json"), None);
        assert_eq!(closed_pull_request("github", br#"{"action": "closed"}"#), None, "no number: nothing to stop");
        assert_eq!(closed_pull_request("bitbucket", github), None);
    }
}
