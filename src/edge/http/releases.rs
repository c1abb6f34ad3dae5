//! Releases (issue 26): `GET /api/v2/releases` — each release of the `[[pipelines]]`, its stages
//! (the commit that carries it in each, when it was healthy, who approved) and what blocks it
//! now; `POST /api/v2/releases/{id}/approve` with `{"stage": NAME, "by"?}` — an approval of its
//! promotion to a stage, by a named approver (a named token answers as its name; the main token
//! as the `by` the client sends, as for gates).

use super::reply::{error, rejection_status};
use super::state::HttpState;
use crate::runtime::pipelines::ApproveError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

/// The longest `by` kept.
const MAX_BY: usize = 100;

pub async fn list(State(state): State<HttpState>) -> Response {
    let Some(pipelines) = &state.pipelines else { return Json(json!({"releases": [], "pipelines": 0})).into_response() };
    match pipelines.releases() {
        Ok(releases) => Json(json!({"releases": releases})).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    stage: String,
    by: Option<String>,
}

pub async fn approve(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    caller: Option<axum::Extension<super::access::Caller>>,
    body: Result<Json<ApproveRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(r) => {
            return error(rejection_status(&r), format!("the approval is not valid: {}; send {{\"stage\": \"prod@main\"}}", r.body_text()))
        }
    };
    let Some(pipelines) = &state.pipelines else {
        return error(StatusCode::NOT_FOUND, "no [[pipelines]] are configured: there are no releases to approve");
    };
    let caller = caller.and_then(|axum::Extension(c)| c.0);
    let named = caller.as_deref().filter(|c| *c != super::access::MAIN_TOKEN);
    let by: String = named.or(req.by.as_deref()).unwrap_or_default().chars().filter(|c| !c.is_control()).take(MAX_BY).collect();
    if by.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "say who approves: \"by\" (the CLI sends the local user) or a named token");
    }
    match pipelines.approve(&id, &req.stage, by.trim()) {
        Ok(stage) => Json(json!({"status": "accepted", "release": id, "stage": stage, "by": by.trim()})).into_response(),
        Err(e) => {
            let status = match &e {
                ApproveError::NoRelease(_) | ApproveError::NoStage { .. } => StatusCode::NOT_FOUND,
                ApproveError::NotApprover { .. } => StatusCode::FORBIDDEN,
                ApproveError::Ended(_) => StatusCode::CONFLICT,
                ApproveError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string())
        }
    }
}
