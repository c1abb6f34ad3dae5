//! Plan previews (issue 17): what merging would do against the live state.
//!
//! - A signed `pull_request` (GitHub) or `Merge Request Hook` (GitLab) webhook for a tracked
//!   repository and branch with `[repos.forge]` queues a preview; it is posted as one comment on
//!   the pull request, updated in place on each push (the comment's id is kept in the store).
//! - `GET /api/v2/preview?repo=NAME&branch=B&to=REV` answers the same preview (JSON and its
//!   Markdown): what `gitmoxi plan --server URL --to REV` prints.
//!
//! A preview fetches under preview refs and renders in the memory-capped workers; it never
//! loads a head, deploys or changes what the controller plans.

use super::webhooks::ignored;
use super::{error, HttpState};
use crate::config::RepoConfig;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gitmoxi_deploy::webhook::{normalize_url, PullRequest};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// A preview's time bound (fetch, render, comment).
const PREVIEW_TIMEOUT: Duration = Duration::from_secs(120);

/// One preview at a time: two pushes to one pull request never race to create two comments.
fn one_at_a_time() -> &'static tokio::sync::Mutex<()> {
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
    let run = crate::preview::preview_rev(&state.controller, &state.state_dir, &repo, &branch, &q.to);
    match tokio::time::timeout(PREVIEW_TIMEOUT, run).await {
        Ok(Ok(p)) => {
            let markdown = crate::preview::markdown(&p);
            Json(json!({"preview": p, "markdown": markdown})).into_response()
        }
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, format!("no preview of '{}': {e}", q.to)),
        Err(_) => error(StatusCode::GATEWAY_TIMEOUT, format!("the preview of '{}' took over {PREVIEW_TIMEOUT:?}", q.to)),
    }
}

/// A pull or merge request's webhook: queue its preview (202), or say why there is none.
pub fn on_pull_request(state: &HttpState, provider: &str, pr: PullRequest) -> Response {
    let named: Vec<String> = pr.urls.iter().map(|u| normalize_url(u)).collect();
    let repo = state.repos.configs().into_iter().find(|r| named.contains(&normalize_url(&r.url)) && r.branches.contains(&pr.base_branch));
    let Some(repo) = repo else {
        return ignored(state, provider, format!("no tracked repository has branch '{}' at that URL", pr.base_branch));
    };
    if repo.forge.is_none() {
        return ignored(state, provider, format!("repository {} has no [repos.forge]: no preview is posted", repo.name));
    }
    state.controller.metrics.webhooks_total.with_label_values(&[provider, "accepted"]).inc();
    let number = pr.number;
    tracing::info!(provider, repo = %repo.name, pull_request = number, "plan preview queued");
    let state = state.clone();
    tokio::spawn(async move {
        let _one = one_at_a_time().lock().await;
        match tokio::time::timeout(PREVIEW_TIMEOUT, post_preview(&state, &repo, &pr)).await {
            Ok(Ok(())) => tracing::info!(repo = %repo.name, pull_request = pr.number, "plan preview posted"),
            Ok(Err(e)) => tracing::warn!(repo = %repo.name, pull_request = pr.number, error = %e, "plan preview not posted"),
            Err(_) => tracing::warn!(repo = %repo.name, pull_request = pr.number, "plan preview timed out"),
        }
    });
    (StatusCode::ACCEPTED, Json(json!({"status": "previewing", "pull_request": number}))).into_response()
}

/// Computes the preview (or the reason there is none) and writes the pull request's comment.
async fn post_preview(state: &HttpState, repo: &RepoConfig, pr: &PullRequest) -> Result<(), String> {
    let Some(target) = &repo.forge else { return Ok(()) };
    let body = match crate::preview::preview_rev(&state.controller, &state.state_dir, repo, &pr.base_branch, &pr.head_ref).await {
        Ok(p) => crate::preview::markdown(&p),
        Err(e) => format!("{}\n### gitmoxi plan\n\ngitmoxi could not preview this change: {e}\n", crate::preview::MARKER),
    };
    let token = state.controller.credentials.token(&target.token).await.map_err(|e| format!("no token for the forge: {e}"))?;
    let key = format!("pr-comment/{}/{}", repo.name, pr.number);
    let existing = state.controller.store.meta(&key).ok().flatten().and_then(|id| id.parse().ok());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    let id = crate::forge::upsert_comment(&client, target, &token, pr.number, &body, existing).await?;
    state.controller.store.put_meta(&key, &id.to_string()).map_err(|e| e.to_string())
}
