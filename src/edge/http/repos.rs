//! Repositories through the API: ours (`/api/v2/repos`) and the Gitmoxi CLI's
//! (`/api/v1/repositories…`, SPEC §6.4). Tokens are referenced by source, never returned.

use super::reply::{error, rejection_status};
use super::state::HttpState;
use crate::io::git::source::redact;
use crate::runtime::repos::{RepoError, RepoRecord};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

fn refused(e: RepoError) -> Response {
    let status = match e {
        RepoError::Invalid(_) => StatusCode::BAD_REQUEST,
        RepoError::Exists(_) | RepoError::FromConfig(_) => StatusCode::CONFLICT,
        RepoError::Unknown(_) => StatusCode::NOT_FOUND,
        RepoError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, Box<Response>> {
    b.map(|Json(v)| v).map_err(|r| Box::new(error(rejection_status(&r), format!("the body is not a valid repository: {}", r.body_text()))))
}

/// A repository as answered: user-info in its URL (from a store written before such URLs were
/// refused) never leaves the server.
fn shown(mut record: RepoRecord) -> RepoRecord {
    record.repo_url = redact(&record.repo_url);
    record
}

pub async fn list_v2(State(state): State<HttpState>) -> Response {
    Json(state.repos.list().into_iter().map(shown).collect::<Vec<_>>()).into_response()
}

pub async fn add_v2(State(state): State<HttpState>, b: Result<Json<RepoRecord>, JsonRejection>) -> Response {
    let record = match body(b) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match state.repos.add(record).await {
        Ok(name) => (StatusCode::CREATED, Json(json!({"name": name, "status": "tracking"}))).into_response(),
        Err(e) => refused(e),
    }
}

pub async fn delete_v2(State(state): State<HttpState>, Path(name): Path<String>) -> Response {
    match state.repos.remove(&name).await {
        Ok(record) => Json(shown(record)).into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
pub struct RepoUrl {
    repo_url: Option<String>,
}

/// `gmctl repo get`: a list of `{repo_url, branches, access_token_arn, provider}`.
pub async fn list_v1(State(state): State<HttpState>, Query(q): Query<RepoUrl>) -> Response {
    let list: Vec<serde_json::Value> = state
        .repos
        .list()
        .into_iter()
        .filter(|r| q.repo_url.as_deref().is_none_or(|u| r.repo_url == u))
        .map(|r| json!({"repo_url": redact(&r.repo_url), "branches": r.branches, "access_token_arn": r.access_token_arn, "provider": r.provider}))
        .collect();
    Json(list).into_response()
}

/// `gmctl repo add`: `{repo_url, branches[], access_token_arn, provider}` → `{message_list: [..]}`.
pub async fn add_v1(State(state): State<HttpState>, b: Result<Json<RepoRecord>, JsonRejection>) -> Response {
    let record = match body(b) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let url = redact(&record.repo_url);
    match state.repos.add(record).await {
        Ok(name) => {
            Json(json!({"message_list": [format!("Repository {url} added as '{name}'; its branches are fetched now")]})).into_response()
        }
        Err(e) => refused(e),
    }
}

/// `gmctl repo delete`: `?repo_url=` → echo.
pub async fn delete_v1(State(state): State<HttpState>, Query(q): Query<RepoUrl>) -> Response {
    let Some(url) = q.repo_url else { return error(StatusCode::BAD_REQUEST, "repo_url is required") };
    match state.repos.remove(&url).await {
        Ok(record) => {
            Json(json!({"repo_url": redact(&record.repo_url), "message": format!("Repository {} deleted; its apps are left as they are", redact(&url))}))
                .into_response()
        }
        Err(e) => refused(e),
    }
}
