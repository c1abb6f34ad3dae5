//! The pages: Apps, an app, Deployments, a deployment, Repositories. Each handler reads the
//! store and the heads (never AWS), builds a plain context and renders its template; the
//! templates escape every value (minijinja's HTML auto-escaping).

use super::super::state::HttpState;
use super::super::views::{self, AppView};
use super::{render, session_of, to_login};
use crate::base::clock::format_ms;
use crate::io::git::source::redact;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use gitmoxi_deploy::progress::phase_line;
use gitmoxi_deploy::record::{AppKey, DeploymentRecord, Outcome};
use gitmoxi_deploy::status::AppStatus;
use serde::Deserialize;
use serde_json::{json, Value};

/// Every status, in the order the counts show them.
const STATUSES: [AppStatus; 16] = [
    AppStatus::Deploying,
    AppStatus::WaitingForApproval,
    AppStatus::Paused,
    AppStatus::Blocked,
    AppStatus::Frozen,
    AppStatus::Waiting,
    AppStatus::Pinned,
    AppStatus::Deleting,
    AppStatus::Failed,
    AppStatus::RolledBack,
    AppStatus::Invalid,
    AppStatus::Conflict,
    AppStatus::DeleteHeld,
    AppStatus::Pending,
    AppStatus::Unsupported,
    AppStatus::Synced,
];

/// A status in words, and the class its badge is drawn with.
fn status_words(status: AppStatus) -> (&'static str, &'static str) {
    match status {
        AppStatus::Synced => ("Synced", "ok"),
        AppStatus::Deploying => ("Deploying", "busy"),
        AppStatus::Deleting => ("Deleting", "busy"),
        AppStatus::Paused => ("Paused", "held"),
        AppStatus::WaitingForApproval => ("Waiting for approval", "held"),
        AppStatus::Invalid => ("Invalid", "bad"),
        AppStatus::Conflict => ("Conflict", "bad"),
        AppStatus::DeleteHeld => ("Delete held", "held"),
        AppStatus::Unsupported => ("Unsupported", "quiet"),
        AppStatus::RolledBack => ("Rolled back", "bad"),
        AppStatus::Failed => ("Failed", "bad"),
        AppStatus::Pending => ("Pending", "quiet"),
        AppStatus::Waiting => ("Waiting for dependencies", "held"),
        AppStatus::Blocked => ("Blocked by a dependency", "bad"),
        AppStatus::Frozen => ("Frozen", "held"),
        AppStatus::Pinned => ("Pinned", "held"),
    }
}

fn outcome_class(outcome: Option<&str>) -> &'static str {
    match outcome {
        Some("succeeded") | Some("deleted") => "ok",
        Some("rolled_back") | Some("failed") => "bad",
        Some(_) => "quiet",
        None => "busy",
    }
}

fn short(commit: Option<&str>) -> String {
    commit.map(|c| c.chars().take(8).collect()).unwrap_or_default()
}

/// `/ui/app?…` of an app.
fn app_link(repo: &str, branch: &str, prefix: &str) -> String {
    format!("/ui/app?repo={}&branch={}&app={}", super::url_encode(repo), super::url_encode(branch), super::url_encode(prefix))
}

/// The two sides of a traffic split, named for the app's kind.
fn traffic(kind: &str, weights: Option<gitmoxi_deploy::schedule::Weights>) -> Value {
    let Some(w) = weights else { return Value::Null };
    let (old, new) = if kind == "lambda" { ("previous version", "new version") } else { ("blue", "green") };
    json!({"blue": w.blue, "green": w.green, "old_name": old, "new_name": new})
}

fn app_row(a: &AppView) -> Value {
    let (label, class) = status_words(a.status);
    json!({
        "app": a.app, "repo": a.repo, "branch": a.branch, "kind": a.kind, "identity": a.identity,
        "status": a.status.as_str(), "status_label": label, "status_class": class,
        "phase": a.phase, "traffic": traffic(&a.kind, a.traffic), "commit": short(a.commit.as_deref()),
        "last_outcome": a.last_outcome, "outcome_class": outcome_class(a.last_outcome.as_deref()),
        "last_cause": a.last_cause, "reason": a.reason, "link": app_link(&a.repo, &a.branch, &a.app),
    })
}

fn base(state: &HttpState, headers: &HeaderMap, title: &str, nav: &str) -> serde_json::Map<String, Value> {
    let session = session_of(state, headers);
    let mut m = serde_json::Map::new();
    m.insert("title".into(), json!(title));
    m.insert("nav".into(), json!(nav));
    m.insert("user".into(), json!(session.as_ref().map(|s| s.name().to_string())));
    m.insert("token_required".into(), json!(state.access.required()));
    m
}

fn failed(status: StatusCode, message: String) -> Response {
    super::secure(axum::response::IntoResponse::into_response((status, message)))
}

#[derive(Deserialize, Default)]
pub struct AppsQuery {
    status: Option<String>,
    kind: Option<String>,
    repo: Option<String>,
    q: Option<String>,
}

pub async fn apps(State(state): State<HttpState>, headers: HeaderMap, uri: Uri, Query(q): Query<AppsQuery>) -> Response {
    if session_of(&state, &headers).is_none() {
        return to_login(&uri.to_string());
    }
    let all = match views::all_apps(&state.controller) {
        Ok(a) => a,
        Err(e) => return failed(StatusCode::INTERNAL_SERVER_ERROR, format!("the store did not answer: {e}")),
    };
    let wanted = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let (status, kind, repo, search) = (wanted(&q.status), wanted(&q.kind), wanted(&q.repo), wanted(&q.q));
    let mut counts = Vec::new();
    for s in &STATUSES {
        let n = all.iter().filter(|a| a.status == *s).count();
        if n > 0 {
            let (label, class) = status_words(*s);
            counts.push(
                json!({"status": s.as_str(), "label": label, "class": class, "count": n, "active": status.as_deref() == Some(s.as_str())}),
            );
        }
    }
    let mut kinds: Vec<String> = all.iter().map(|a| a.kind.clone()).collect();
    kinds.sort();
    kinds.dedup();
    let mut repos: Vec<String> = all.iter().map(|a| a.repo.clone()).collect();
    repos.sort();
    repos.dedup();
    let rows: Vec<Value> = all
        .iter()
        .filter(|a| {
            status.as_deref().is_none_or(|s| a.status.as_str() == s)
                && kind.as_deref().is_none_or(|k| a.kind == k)
                && repo.as_deref().is_none_or(|r| a.repo == r)
                && search.as_deref().is_none_or(|n| {
                    let n = n.to_lowercase();
                    a.app.to_lowercase().contains(&n) || a.identity.as_deref().is_some_and(|i| i.to_lowercase().contains(&n))
                })
        })
        .map(app_row)
        .collect();
    let mut ctx = base(&state, &headers, "Apps", "apps");
    ctx.insert("total".into(), json!(all.len()));
    ctx.insert("counts".into(), json!(counts));
    ctx.insert("apps".into(), json!(rows));
    ctx.insert("kinds".into(), json!(kinds));
    ctx.insert("repos".into(), json!(repos));
    ctx.insert("filter".into(), json!({"status": status, "kind": kind, "repo": repo, "q": search}));
    render(&state, &headers, "apps.html", Value::Object(ctx))
}

#[derive(Deserialize)]
pub struct AppQuery {
    app: String,
    repo: Option<String>,
    branch: Option<String>,
}

/// The diagnosis of a deployment that did not succeed (git reads: on a blocking thread).
async fn diagnosis_of(state: &HttpState, record: &DeploymentRecord) -> Value {
    if !matches!(record.outcome, Some(Outcome::RolledBack | Outcome::Failed)) {
        return Value::Null;
    }
    let controller = state.controller.clone();
    let repos = state.repos.configs();
    let dir = state.state_dir.clone();
    let record = record.clone();
    tokio::task::spawn_blocking(move || crate::runtime::diagnose::diagnose(&controller, &record, &repos, &dir)).await.unwrap_or(Value::Null)
}

/// A deployment for the pages (with its timeline): the API's view plus its line of phases and link.
fn deployment_context(record: &DeploymentRecord) -> Value {
    let mut v = with_page_fields(views::deployment_view(record), record);
    if let Some(o) = v.as_object_mut() {
        o.insert("charts".into(), json!(super::chart::charts(record)));
    }
    v
}

/// A deployment in a list (without its timeline).
fn deployment_row(record: &DeploymentRecord) -> Value {
    with_page_fields(views::deployment_summary(record), record)
}

fn with_page_fields(mut v: Value, record: &DeploymentRecord) -> Value {
    let line = phase_line(&record.phase);
    if let Some(o) = v.as_object_mut() {
        o.insert("line".into(), json!(line));
        o.insert("short_commit".into(), json!(short(Some(&record.commit))));
        o.insert("traffic".into(), traffic(record.identity.kind().as_str(), record.traffic));
        o.insert("outcome_class".into(), json!(outcome_class(record.outcome.map(|o| o.as_str()))));
        o.insert("link".into(), json!(format!("/ui/deployments/{}", super::url_encode(&record.id))));
        o.insert("in_flight".into(), json!(record.in_flight()));
    }
    v
}

/// The diff of the app's files from the last good commit (what AWS runs) to the head, when they
/// differ (git reads: on a blocking thread).
async fn changes_since_last_good(state: &HttpState, key: &AppKey, view: &AppView) -> Value {
    let (Some(head), Some(good)) = (view.commit.clone(), view.applied_commit.clone()) else { return Value::Null };
    if head == good {
        return Value::Null;
    }
    let Some(repo) = state.repos.configs().into_iter().find(|r| r.name == key.repo) else { return Value::Null };
    let mirror = crate::runtime::source::mirror_dir(&state.state_dir, &repo);
    let prefix = key.prefix.clone();
    let (from, to) = (good.clone(), head.clone());
    let diff = tokio::task::spawn_blocking(move || crate::runtime::diagnose::app_diff(&mirror, Some(&from), &to, &prefix))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    json!({"from": short(Some(&good)), "to": short(Some(&head)), "diff": diff.as_ref().ok(), "error": diff.as_ref().err()})
}

/// The longest rendered document shown (the rest is cut, with a note).
const MAX_DOCUMENT_CHARS: usize = 64 * 1024;

pub async fn app(State(state): State<HttpState>, headers: HeaderMap, uri: Uri, Query(q): Query<AppQuery>) -> Response {
    if session_of(&state, &headers).is_none() {
        return to_login(&uri.to_string());
    }
    let store = &state.controller.store;
    let entries = match store.apps() {
        Ok(e) => e,
        Err(e) => return failed(StatusCode::INTERNAL_SERVER_ERROR, format!("the store did not answer: {e}")),
    };
    let found: Vec<_> = entries
        .into_iter()
        .filter(|e| {
            e.key.prefix == q.app
                && q.repo.as_deref().is_none_or(|r| e.key.repo == r)
                && q.branch.as_deref().is_none_or(|b| e.key.branch == b)
        })
        .collect();
    let entry = match found.as_slice() {
        [one] => one.clone(),
        [] => return failed(StatusCode::NOT_FOUND, format!("no app '{}': see /ui/apps", q.app)),
        _ => return failed(StatusCode::CONFLICT, format!("'{}' exists in several repositories or branches: open it from /ui/apps", q.app)),
    };
    let key: AppKey = entry.key.clone();
    let record = store.record(&key).ok().flatten();
    let view = views::app_view(&state.controller, &entry, record.as_ref());
    let in_flight = record.as_ref().filter(|r| r.in_flight()).map(deployment_context);
    let last = match entry.last_deployment.as_deref().map(|id| store.deployment(id)) {
        Some(Ok(Some(r))) if !r.in_flight() => Some(r),
        _ => None,
    };
    let diagnosis = match &last {
        Some(r) => diagnosis_of(&state, r).await,
        None => Value::Null,
    };
    let last = last.as_ref().map(deployment_context);
    let deployments: Vec<Value> = store.deployments_of(&key, 20).unwrap_or_default().iter().map(deployment_row).collect();
    let history: Vec<Value> = store
        .history(&key)
        .unwrap_or_default()
        .iter()
        .rev()
        .take(30)
        .map(|h| json!({"at": format_ms(h.at_ms), "level": h.level.as_str(), "message": h.message, "deployment": h.deployment}))
        .collect();
    let documents: Vec<Value> = state
        .controller
        .head(&key.repo, &key.branch)
        .and_then(|h| h.snapshot.apps.get(&key.prefix).and_then(|a| a.as_ref().ok()).map(|a| a.rendered.clone()))
        .unwrap_or_default()
        .into_iter()
        .map(|(kind, doc)| {
            let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
            if text.len() > MAX_DOCUMENT_CHARS {
                let cut = (0..=MAX_DOCUMENT_CHARS).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                text.truncate(cut);
                text.push_str("\n… (cut: see `gitmoxi render`)");
            }
            json!({"file": format!("{}{}", key.prefix, kind.suffix()), "text": text})
        })
        .collect();
    let changes = if diagnosis.is_null() { changes_since_last_good(&state, &key, &view).await } else { Value::Null };
    let paused = store.commands(&key).is_ok_and(|c| c.paused);
    let waiting = record.as_ref().filter(|r| r.in_flight()).and_then(|r| r.awaiting_approval.clone());
    let mut ctx = base(&state, &headers, &key.prefix, "apps");
    ctx.insert("app".into(), app_row(&view));
    ctx.insert("view".into(), json!(view));
    ctx.insert("deployment".into(), json!(in_flight));
    ctx.insert("last".into(), json!(last));
    ctx.insert("diagnosis".into(), diagnosis);
    ctx.insert("changes".into(), changes);
    ctx.insert("deployments".into(), json!(deployments));
    ctx.insert("history".into(), json!(history));
    ctx.insert("documents".into(), json!(documents));
    ctx.insert("paused".into(), json!(paused));
    ctx.insert("waiting".into(), json!(waiting.map(|w| json!({"gate": w.gate, "stage": w.stage, "since": format_ms(w.since_ms)}))));
    ctx.insert("key".into(), json!({"repo": key.repo, "branch": key.branch, "app": key.prefix}));
    render(&state, &headers, "app.html", Value::Object(ctx))
}

#[derive(Deserialize, Default)]
pub struct DeploymentsQuery {
    app: Option<String>,
    commit: Option<String>,
    status: Option<String>,
    after: Option<String>,
}

pub async fn deployments(State(state): State<HttpState>, headers: HeaderMap, uri: Uri, Query(q): Query<DeploymentsQuery>) -> Response {
    if session_of(&state, &headers).is_none() {
        return to_login(&uri.to_string());
    }
    let all = match state.controller.store.deployments() {
        Ok(a) => a,
        Err(e) => return failed(StatusCode::INTERNAL_SERVER_ERROR, format!("the store did not answer: {e}")),
    };
    let wanted = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let (app, commit, status) = (wanted(&q.app), wanted(&q.commit), wanted(&q.status));
    let matching = all.into_iter().filter(|d| {
        app.as_deref().is_none_or(|a| d.app.prefix.contains(a))
            && commit.as_deref().is_none_or(|c| d.commit.starts_with(c))
            && status.as_deref().is_none_or(|s| match s {
                "in_flight" => d.in_flight(),
                outcome => d.outcome.is_some_and(|o| o.as_str() == outcome),
            })
    });
    let (page, next) = views::page_of(matching, q.after.as_deref(), 50);
    let rows: Vec<Value> = page.iter().map(deployment_row).collect();
    let next_link = next.map(|n| {
        let mut link = format!("/ui/deployments?after={}", super::url_encode(&n));
        for (name, value) in [("app", &app), ("commit", &commit), ("status", &status)] {
            if let Some(v) = value {
                link.push_str(&format!("&{name}={}", super::url_encode(v)));
            }
        }
        link
    });
    let mut ctx = base(&state, &headers, "Deployments", "deployments");
    ctx.insert("deployments".into(), json!(rows));
    ctx.insert("next".into(), json!(next_link));
    ctx.insert("filter".into(), json!({"app": app, "commit": commit, "status": status}));
    ctx.insert("outcomes".into(), json!(["in_flight", "succeeded", "rolled_back", "failed", "superseded", "deleted"]));
    render(&state, &headers, "deployments.html", Value::Object(ctx))
}

pub async fn deployment(State(state): State<HttpState>, headers: HeaderMap, uri: Uri, Path(id): Path<String>) -> Response {
    if session_of(&state, &headers).is_none() {
        return to_login(&uri.to_string());
    }
    let record = match state.controller.store.deployment(&id) {
        Ok(Some(r)) => r,
        Ok(None) => return failed(StatusCode::NOT_FOUND, format!("no deployment '{id}': see /ui/deployments")),
        Err(e) => return failed(StatusCode::INTERNAL_SERVER_ERROR, format!("the store did not answer: {e}")),
    };
    let diagnosis = diagnosis_of(&state, &record).await;
    let mut ctx = base(&state, &headers, &format!("Deployment {id}"), "deployments");
    ctx.insert("d".into(), deployment_context(&record));
    ctx.insert("diagnosis".into(), diagnosis);
    ctx.insert("app_link".into(), json!(app_link(&record.app.repo, &record.app.branch, &record.app.prefix)));
    render(&state, &headers, "deployment.html", Value::Object(ctx))
}

pub async fn repos(State(state): State<HttpState>, headers: HeaderMap, uri: Uri) -> Response {
    if session_of(&state, &headers).is_none() {
        return to_login(&uri.to_string());
    }
    let fetches = state.controller.fetch_statuses();
    let rows: Vec<Value> = state
        .repos
        .configs()
        .iter()
        .map(|repo| {
            let branches: Vec<Value> = repo
                .branches
                .iter()
                .map(|branch| {
                    let head = state.controller.head(&repo.name, branch);
                    let fetch = fetches.iter().find(|((r, b), _)| r == &repo.name && b == branch).map(|(_, f)| f);
                    json!({
                        "branch": branch,
                        "head": head.as_ref().map(|h| short(Some(&h.commit))),
                        "apps": head.as_ref().map(|h| h.snapshot.apps.len()),
                        "loaded_at": head.as_ref().map(|h| format_ms(h.loaded_at_ms)),
                        "last_fetch": fetch.map(|f| format_ms(f.last_attempt_ms)),
                        "last_success": fetch.and_then(|f| f.last_success_ms).map(format_ms),
                        "error": fetch.and_then(|f| f.error.clone()),
                    })
                })
                .collect();
            json!({"name": repo.name, "url": redact(&repo.url), "poll": humantime::format_duration(repo.poll_interval).to_string(), "branches": branches})
        })
        .collect();
    let mut ctx = base(&state, &headers, "Repositories", "repos");
    ctx.insert("repos".into(), json!(rows));
    if let Some(pipelines) = &state.pipelines {
        ctx.insert("releases".into(), json!(pipelines.releases().unwrap_or_default()));
    }
    if let Some(ha) = state.controller.ha() {
        ctx.insert("ha".into(), json!(ha.status(state.controller.clock.now_ms())));
    }
    render(&state, &headers, "repos.html", Value::Object(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_name_every_status() {
        let listed: Vec<&str> = STATUSES.iter().map(|s| s.as_str()).collect();
        for s in [
            AppStatus::Synced,
            AppStatus::Deploying,
            AppStatus::Deleting,
            AppStatus::Paused,
            AppStatus::WaitingForApproval,
            AppStatus::Invalid,
            AppStatus::Conflict,
            AppStatus::DeleteHeld,
            AppStatus::Unsupported,
            AppStatus::RolledBack,
            AppStatus::Failed,
            AppStatus::Pending,
            AppStatus::Waiting,
            AppStatus::Blocked,
            AppStatus::Frozen,
            AppStatus::Pinned,
        ] {
            // status_words is exhaustive; this keeps the list of counts complete too
            assert!(listed.contains(&s.as_str()), "{s:?} is missing from the counts");
            assert!(!status_words(s).0.is_empty());
        }
    }
}
