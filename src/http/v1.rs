//! The Gitmoxi CLI's deployment and commit paths (SPEC §6.4): `POST /api/v1/deployments/{ecs,
//! lambda}/query` and `GET /api/v1/commits`. Answers keep Gitmoxi's field names.

use super::{error, HttpState};
use crate::clock::format_ms;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gitmoxi_deploy::record::{DeploymentRecord, DeploymentStatus};
use gitmoxi_deploy::spec::{AppKind, Identity};
use serde::Deserialize;
use serde_json::{json, Value};

/// Filters of a deployment query (all optional).
#[derive(Debug, Default, Deserialize)]
pub struct DeploymentFilter {
    pub repo_url: Option<String>,
    pub commit_hash: Option<String>,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub service: Option<String>,
    pub cluster: Option<String>,
    pub function_name: Option<String>,
    pub status: Option<String>,
    /// The `last_evaluated_key` of the previous page.
    pub start_key: Option<String>,
    pub limit: Option<usize>,
}

fn status_name(s: DeploymentStatus) -> &'static str {
    match s {
        DeploymentStatus::Processing => "PROCESSING",
        DeploymentStatus::ProcessedSuccess => "PROCESSED_SUCCESS",
        DeploymentStatus::ProcessedError => "PROCESSED_ERROR",
    }
}

fn v1_view(d: &DeploymentRecord, repo_url: &str) -> Value {
    let mut v = json!({
        "id": d.id,
        "repo_url": repo_url,
        "branch": d.app.branch,
        "commit_hash": d.commit,
        "create_timestamp": format_ms(d.started_at_ms),
        "status": status_name(d.status),
        "file_prefix": d.app.prefix,
        "status_details": d.timeline.iter().map(|e| format!("[{}] [{}] {}", format_ms(e.at_ms), e.level.as_str(), e.message)).collect::<Vec<_>>(),
    });
    if let Some(o) = v.as_object_mut() {
        match &d.identity {
            Identity::Ecs { account, region, cluster, service } => {
                o.insert("account_id".into(), json!(account));
                o.insert("region".into(), json!(region));
                o.insert("cluster".into(), json!(cluster));
                o.insert("service".into(), json!(service));
            }
            Identity::Lambda { account, region, function } => {
                o.insert("account_id".into(), json!(account));
                o.insert("region".into(), json!(region));
                o.insert("function_name".into(), json!(function));
            }
        }
    }
    v
}

fn matches(d: &DeploymentRecord, f: &DeploymentFilter, repo_url: &str) -> bool {
    let (account, region, cluster, service, function) = match &d.identity {
        Identity::Ecs { account, region, cluster, service } => {
            (account.as_deref(), region.as_str(), Some(cluster.as_str()), Some(service.as_str()), None)
        }
        Identity::Lambda { account, region, function } => (account.as_deref(), region.as_str(), None, None, Some(function.as_str())),
    };
    f.repo_url.as_deref().is_none_or(|u| u == repo_url)
        && f.commit_hash.as_deref().is_none_or(|c| d.commit.starts_with(c))
        && f.account_id.as_deref().is_none_or(|a| account == Some(a))
        && f.region.as_deref().is_none_or(|r| r == region)
        && f.cluster.as_deref().is_none_or(|c| cluster == Some(c))
        && f.service.as_deref().is_none_or(|s| service == Some(s))
        && f.function_name.as_deref().is_none_or(|n| function == Some(n))
        && f.status.as_deref().is_none_or(|s| status_name(d.status).eq_ignore_ascii_case(s))
}

/// `gmctl deployment ecs get` / `lambda get`: newest first, `last_evaluated_key` pages on.
pub async fn query(
    State(state): State<HttpState>,
    Path(kind): Path<String>,
    body: Result<Json<DeploymentFilter>, JsonRejection>,
) -> Response {
    let kind = match kind.as_str() {
        "ecs" => AppKind::Ecs,
        "lambda" => AppKind::Lambda,
        other => return error(StatusCode::NOT_FOUND, format!("no deployment kind '{other}'; use ecs or lambda")),
    };
    let filter = match body {
        Ok(Json(f)) => f,
        Err(r) => return error(StatusCode::BAD_REQUEST, format!("the filter is not valid JSON: {}", r.body_text())),
    };
    let all = match state.controller.store.deployments() {
        Ok(all) => all,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let urls: std::collections::BTreeMap<String, String> =
        state.repos.list().into_iter().map(|r| (crate::config::repo_name(&r.repo_url), r.repo_url)).collect();
    let url_of = |d: &DeploymentRecord| urls.get(&d.app.repo).cloned().unwrap_or_else(|| d.app.repo.clone());
    let limit = filter.limit.unwrap_or(50).clamp(1, 500);
    let matching = all.into_iter().filter(|d| d.kind == kind && matches(d, &filter, &url_of(d)));
    let mut page: Vec<DeploymentRecord> = match &filter.start_key {
        Some(key) => matching.skip_while(|d| &d.id != key).skip(1).take(limit + 1).collect(),
        None => matching.take(limit + 1).collect(),
    };
    let last_evaluated_key = (page.len() > limit).then(|| page[limit - 1].id.clone());
    page.truncate(limit);
    Json(json!({"deployments": page.iter().map(|d| v1_view(d, &url_of(d))).collect::<Vec<_>>(), "last_evaluated_key": last_evaluated_key}))
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct CommitQuery {
    repo_url: Option<String>,
    branch: Option<String>,
    n: Option<usize>,
}

/// `gmctl commit get`: the commits gitmoxi loaded, newest first, with their processing status.
pub async fn commits(State(state): State<HttpState>, Query(q): Query<CommitQuery>) -> Response {
    let n = q.n.unwrap_or(10).clamp(1, 100);
    let deployments = match state.controller.store.deployments() {
        Ok(d) => d,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut out = Vec::new();
    for repo in state.repos.list().into_iter().filter(|r| q.repo_url.as_deref().is_none_or(|u| u == r.repo_url)) {
        let name = crate::config::repo_name(&repo.repo_url);
        for branch in repo.branches.iter().filter(|b| q.branch.as_deref().is_none_or(|w| w == b.as_str())) {
            let seen = crate::source::commits_seen(&state.controller.store, &name, branch);
            for (hash, at_ms) in seen.into_iter().take(n) {
                let of_commit: Vec<&DeploymentRecord> = deployments.iter().filter(|d| d.commit == hash && d.app.repo == name).collect();
                let status = if of_commit.iter().any(|d| d.status == DeploymentStatus::Processing) {
                    "PROCESSING"
                } else if of_commit.iter().any(|d| d.status == DeploymentStatus::ProcessedError) {
                    "PROCESSED_ERROR"
                } else {
                    "PROCESSED_SUCCESS"
                };
                out.push(json!({"commit_hash": hash, "repo_url": repo.repo_url, "branch": branch, "receive_timestamp": format_ms(at_ms), "status": status}));
            }
        }
    }
    Json(json!({"commits": out})).into_response()
}
