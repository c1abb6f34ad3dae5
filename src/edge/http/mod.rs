//! The HTTP surface: health, readiness, metrics, the v2 JSON API (SPEC §6.2) and the web page
//! (`/ui`, [`ui`]).
//!
//! Handlers only read state or enqueue work (rule 9). Every `/api` call needs the bearer token
//! when one is configured; webhooks need their own secret; bodies are limited to 1 MiB
//! ([`BODY_LIMIT`]) and must arrive within 10 s of their headers ([`serve`]); the page's event
//! streams are capped per client address and in all ([`slots`]).

pub mod access;
pub mod commands;
pub mod hosts;
pub mod previews;
pub mod releases;
pub mod reply;
pub mod repos;
pub mod riskiq;
pub mod serve;
pub mod slack;
pub mod slots;
pub mod state;
pub mod ui;
pub mod v1;
pub mod views;
pub mod webhooks;

use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
pub use reply::{constant_time_eq, error, rejection_status, BODY_LIMIT};
use serde::Deserialize;
use serde_json::json;
pub use state::HttpState;

pub fn router(state: HttpState) -> Router {
    let api = Router::new()
        .route("/api/v2/apps", get(list_apps))
        .route("/api/v2/apps/{*app}", get(get_app))
        .route("/api/v2/deployments", get(list_deployments))
        .route("/api/v2/deployments/{id}", get(get_deployment))
        .route("/api/v2/deployments/{id}/diagnosis", get(get_diagnosis))
        .route("/api/v2/commands", post(commands::command))
        .route("/api/v2/ha", get(ha_status))
        .route("/api/v2/releases", get(releases::list))
        .route("/api/v2/releases/{id}/approve", post(releases::approve))
        .route("/api/v2/commits", get(v1::commits))
        .route("/api/v2/preview", get(previews::preview))
        .route("/api/v2/repos", get(repos::list_v2).post(repos::add_v2))
        .route("/api/v2/repos/{name}", axum::routing::delete(repos::delete_v2))
        .route("/api/v1/repositories", get(repos::list_v1))
        .route("/api/v1/deployments/{kind}/query", post(v1::query))
        .route("/api/v1/commits", get(v1::commits))
        .route("/api/v1/commits/deploy", post(v1::deploy))
        .route("/api/v1/commits/dryrun", post(v1::dryrun))
        .route("/api/v1/commits/riskiq", post(riskiq::assess))
        .route("/api/v1/riskiq", get(riskiq::get))
        .route("/api/v1/commits/{hash}", get(v1::commit_files))
        .route("/api/v1/taskset", get(v1::taskset_get))
        .route("/api/v1/taskset/rebalance", post(v1::taskset_rebalance))
        .route("/api/v1/repositories/add", post(repos::add_v1))
        .route("/api/v1/repositories/delete", axum::routing::delete(repos::delete_v1))
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/github", post(webhooks::github))
        .route("/webhooks/gitlab", post(webhooks::gitlab))
        .route("/webhooks/slack/interactive", post(slack::interactive))
        // the page first: the API's layered fallback (unknown /api paths still want the token)
        // must be the one the merged router keeps
        .merge(ui::routes::routes())
        .merge(api)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.allowed_hosts.clone(), hosts::check_host))
        .with_state(state)
}

async fn require_token(State(state): State<HttpState>, mut request: Request, next: Next) -> Response {
    if gmctl_without_token(&state, &request) {
        request.extensions_mut().insert(access::Caller(None));
        return next.run(request).await;
    }
    let caller = if state.access.required() {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let who = match given.as_deref() {
            // a wrong token waits (access::WRONG_TOKEN_DELAY): guessing is slow; a missing one is no guess
            Some(g) => state.access.who_or_wait(g).await.map(str::to_string),
            None => None,
        };
        match who {
            Some(name) => Some(name),
            None => return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token: send 'Authorization: Bearer <api token>'"),
        }
    } else {
        None
    };
    request.extensions_mut().insert(access::Caller(caller));
    next.run(request).await
}

/// Whether a request is gmctl's `/api/v1` from a network configured as tokenless (the peer's
/// address, as the server loop saw the connection; never a forwarded header).
fn gmctl_without_token(state: &HttpState, request: &Request) -> bool {
    if state.gmctl_tokenless_networks.is_empty() || !request.uri().path().starts_with("/api/v1/") {
        return false;
    }
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    peer.is_some_and(|ip| state.gmctl_tokenless_networks.iter().any(|net| net.contains(&ip)))
}

async fn readyz(State(state): State<HttpState>) -> Response {
    let loaded = state.controller.heads().len();
    let tracked = state.repos.tracked();
    if let Some(ha) = state.controller.ha() {
        let status = ha.status(state.controller.clock.now_ms());
        let body = json!({
            "status": if status.ready && loaded >= tracked { "ready" } else { "joining" },
            "heads_loaded": loaded,
            "heads_tracked": tracked,
            "replica": status.replica,
            "shards_owned": status.owned,
            "shards": status.shards,
            "last_error": status.last_error,
        });
        let code = if status.ready && loaded >= tracked { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        return (code, Json(body)).into_response();
    }
    if loaded >= tracked {
        Json(json!({"status": "ready", "heads_loaded": loaded})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "loading", "heads_loaded": loaded, "heads_tracked": tracked})))
            .into_response()
    }
}

/// High availability: this replica, the leases and the replicas as last read from the table.
async fn ha_status(State(state): State<HttpState>) -> Response {
    match state.controller.ha() {
        Some(ha) => Json(ha.status(state.controller.clock.now_ms())).into_response(),
        None => Json(json!({"enabled": false, "message": "high availability is off: this gitmoxi acts alone ([ha] in the configuration turns it on)"}))
            .into_response(),
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    if let Err(e) = views::refresh_gauges(&state.controller) {
        tracing::warn!(error = %e, "could not refresh the app gauges for /metrics");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.controller.metrics.render()).into_response()
}

async fn list_apps(State(state): State<HttpState>) -> Response {
    match views::all_apps(&state.controller) {
        Ok(apps) => Json(apps).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct AppQuery {
    repo: Option<String>,
    branch: Option<String>,
}

async fn get_app(State(state): State<HttpState>, Path(app): Path<String>, Query(q): Query<AppQuery>) -> Response {
    let prefix = app.trim_start_matches('/');
    match views::app_detail(&state.controller, prefix, q.repo.as_deref(), q.branch.as_deref()) {
        Ok(views::Found::One(detail)) => Json(detail).into_response(),
        Ok(views::Found::None) => error(StatusCode::NOT_FOUND, format!("no app with prefix '{prefix}'; list apps with GET /api/v2/apps")),
        Ok(views::Found::Many(candidates)) => (
            StatusCode::CONFLICT,
            Json(json!({"error": format!("prefix '{prefix}' exists in several repositories or branches; add ?repo=NAME&branch=NAME"), "candidates": candidates})),
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn get_deployment(State(state): State<HttpState>, Path(id): Path<String>) -> Response {
    match state.controller.store.deployment(&id) {
        Ok(Some(record)) => Json(views::deployment_view(&record)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no deployment '{id}'")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct DeploymentQuery {
    app: Option<String>,
    commit: Option<String>,
    /// PROCESSING, PROCESSED_SUCCESS, PROCESSED_ERROR, or an outcome (succeeded, rolled_back, …).
    status: Option<String>,
    limit: Option<usize>,
    /// The id of the last deployment of the previous page.
    after: Option<String>,
}

/// Deployments, newest first, filtered and paginated (`next` is the `after` of the next page).
async fn list_deployments(State(state): State<HttpState>, Query(q): Query<DeploymentQuery>) -> Response {
    let all = match state.controller.store.deployments() {
        Ok(all) => all,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let matching = all.into_iter().filter(|d| {
        q.app.as_deref().is_none_or(|a| d.app.prefix == a)
            && q.commit.as_deref().is_none_or(|c| d.commit.starts_with(c))
            && q.status.as_deref().is_none_or(|s| {
                let status = serde_json::to_value(d.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                status.eq_ignore_ascii_case(s) || d.outcome.is_some_and(|o| o.as_str().eq_ignore_ascii_case(s))
            })
    });
    let (page, next) = views::page_of(matching, q.after.as_deref(), limit);
    let items: Vec<serde_json::Value> = page.iter().map(views::deployment_summary).collect();
    Json(json!({"deployments": items, "next": next})).into_response()
}

async fn get_diagnosis(State(state): State<HttpState>, Path(id): Path<String>) -> Response {
    match state.controller.store.deployment(&id) {
        Ok(Some(record)) => {
            let controller = state.controller.clone();
            let repos = state.repos.configs();
            let dir = state.state_dir.clone();
            // git reads are blocking work
            match tokio::task::spawn_blocking(move || crate::runtime::diagnose::diagnose(&controller, &record, &repos, &dir)).await {
                Ok(mut d) => {
                    if let Some(llm) = &state.llm {
                        let summary = crate::integrations::llm::summarize(llm, &state.controller.credentials, &d).await;
                        if let Some(o) = d.as_object_mut() {
                            match summary {
                                Ok(text) => o.insert("ai_summary".into(), json!(text)),
                                Err(e) => o.insert("ai_summary_error".into(), json!(e)),
                            };
                        }
                    }
                    Json(d).into_response()
                }
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("diagnosis failed: {e}")),
            }
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no deployment '{id}'; list them with `gitmoxi deployments`")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
