//! The Gitmoxi CLI's deployment and commit paths (SPEC §6.4): `POST /api/v1/deployments/{ecs,
//! lambda}/query` and `GET /api/v1/commits`. Answers keep Gitmoxi's field names.

use super::reply::{error, rejection_status};
use super::state::HttpState;
use crate::base::clock::format_ms;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gitmoxi_deploy::commands::{Rebalance, RebalanceDirection};
use gitmoxi_deploy::intent::Intent;
use gitmoxi_deploy::record::{DeploymentRecord, DeploymentStatus, Strategy};
use gitmoxi_deploy::spec::{AppKind, Identity};
use gitmoxi_deploy::status::commit_status;
use serde::Deserialize;
use serde_json::{json, Value};

/// How long `commit deploy` waits for the fetch it asked for.
const FETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

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

/// The account of a record: the one its AWS calls went to (records written before it was kept:
/// the depdef's, if any).
fn account_of(d: &DeploymentRecord) -> Option<&str> {
    d.account_id.as_deref().or(match &d.identity {
        Identity::Ecs { account, .. } | Identity::Lambda { account, .. } => account.as_deref(),
    })
}

/// Gitmoxi's `status_details`: the timeline as `[time] [LEVEL] message`, then, for a failure,
/// its cause, evidence and next step (what `/api/v2/deployments/{id}` and the diagnosis say).
fn status_details(d: &DeploymentRecord) -> Vec<String> {
    let mut lines: Vec<String> =
        d.timeline.iter().map(|e| format!("[{}] [{}] {}", format_ms(e.at_ms), e.level.as_str(), e.message)).collect();
    if let Some(cause) = &d.cause {
        let at = format_ms(d.finished_at_ms.unwrap_or(d.updated_at_ms));
        lines.push(format!("[{at}] [ERROR] cause: {cause}"));
        for e in &d.evidence {
            lines.push(format!("[{at}] [ERROR] evidence: {e}"));
        }
        lines.push(format!("[{at}] [INFO] next step: {}", gitmoxi_deploy::advice::next_step(d)));
    }
    lines
}

fn v1_view(d: &DeploymentRecord, repo_url: &str) -> Value {
    let mut v = json!({
        "id": d.id,
        "repo_url": crate::io::git::source::redact(repo_url),
        "branch": d.app.branch,
        "commit_hash": d.commit,
        "create_timestamp": format_ms(d.started_at_ms),
        "status": status_name(d.status),
        "file_prefix": d.app.prefix,
        "account_id": account_of(d),
        "outcome": d.outcome.map(|o| o.as_str()),
        "cause": d.cause.as_ref().map(ToString::to_string),
        "evidence": d.evidence,
        "status_details": status_details(d),
    });
    if let Some(o) = v.as_object_mut() {
        match &d.identity {
            Identity::Ecs { region, cluster, service, .. } => {
                o.insert("region".into(), json!(region));
                o.insert("cluster".into(), json!(cluster));
                o.insert("service".into(), json!(service));
            }
            Identity::Lambda { region, function, .. } => {
                o.insert("region".into(), json!(region));
                o.insert("function_name".into(), json!(function));
            }
        }
    }
    v
}

fn matches(d: &DeploymentRecord, f: &DeploymentFilter, repo_url: &str) -> bool {
    let (region, cluster, service, function) = match &d.identity {
        Identity::Ecs { region, cluster, service, .. } => (region.as_str(), Some(cluster.as_str()), Some(service.as_str()), None),
        Identity::Lambda { region, function, .. } => (region.as_str(), None, None, Some(function.as_str())),
    };
    f.repo_url.as_deref().is_none_or(|u| u == repo_url)
        && f.commit_hash.as_deref().is_none_or(|c| d.commit.starts_with(c))
        && f.account_id.as_deref().is_none_or(|a| account_of(d) == Some(a))
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
        "ecs" => Some(AppKind::Ecs),
        "lambda" => Some(AppKind::Lambda),
        "k8s" => None,
        other => return error(StatusCode::NOT_FOUND, format!("no deployment kind '{other}'; use ecs, lambda or k8s")),
    };
    let filter = match body {
        Ok(Json(f)) => f,
        Err(r) => return error(rejection_status(&r), format!("the filter is not valid JSON: {}", r.body_text())),
    };
    // gitmoxi deploys no Kubernetes apps: gmctl's `deployment k8s get` finds none
    let Some(kind) = kind else { return Json(json!({"deployments": [], "last_evaluated_key": null})).into_response() };
    let all = match state.controller.store.deployments() {
        Ok(all) => all,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let url_of = |d: &DeploymentRecord| state.repos.url_of(&d.app.repo);
    let limit = filter.limit.unwrap_or(50).clamp(1, 500);
    let matching = all.into_iter().filter(|d| d.kind == kind && matches(d, &filter, &url_of(d)));
    let (page, last_evaluated_key) = super::views::page_of(matching, filter.start_key.as_deref(), limit);
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
    let apps = match state.controller.store.apps() {
        Ok(a) => a,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut out = Vec::new();
    for repo in state.repos.configs().into_iter().filter(|r| q.repo_url.as_deref().is_none_or(|u| same_repo(&r.url, u))) {
        let name = repo.name.clone();
        for branch in repo.branches.iter().filter(|b| q.branch.as_deref().is_none_or(|w| w == b.as_str())) {
            let seen = crate::runtime::source::commits_seen(&state.controller.store, &name, branch);
            for (hash, at_ms) in seen.into_iter().take(n) {
                let of_commit = deployments.iter().filter(|d| d.commit == hash && d.app.repo == name).map(|d| d.status);
                // the apps of this head that could not deploy at all (render, validation, conflict)
                let blocked = apps
                    .iter()
                    .filter(|a| a.key.repo == name && a.key.branch == *branch && a.head_commit.as_deref() == Some(hash.as_str()))
                    .filter(|a| matches!(a.intent, Some(Intent::Error | Intent::Conflict)))
                    .count();
                let status = commit_status(of_commit, blocked).as_str();
                out.push(json!({"commit_hash": hash, "repo_url": crate::io::git::source::redact(&repo.url), "branch": branch, "receive_timestamp": format_ms(at_ms), "status": status}));
            }
        }
    }
    Json(json!({"commits": out})).into_response()
}

#[derive(Debug, Deserialize)]
pub struct CommitRequest {
    /// gmctl sends one; never used: the model billed is `[llm] model` (issue 27).
    #[serde(default)]
    pub llm_model: Option<String>,
    /// gmctl sends one; never used: the endpoint is `[llm] base_url`.
    #[serde(default)]
    pub llm_provider: Option<String>,
    pub repo_url: String,
    #[serde(default = "main_branch")]
    pub branch: String,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub process_template: bool,
}

fn main_branch() -> String {
    "main".into()
}

/// Whether two spellings name the same repository (`.git`, case and trailing slashes aside).
fn same_repo(a: &str, b: &str) -> bool {
    a == b || crate::edge::http::webhooks::normalize_url(a) == crate::edge::http::webhooks::normalize_url(b)
}

/// The tracked repository of a URL (its config), or a 404 naming what exists.
pub(crate) fn tracked(state: &HttpState, url: &str, branch: &str) -> Result<crate::runtime::config::RepoConfig, Box<Response>> {
    let repos = state.repos.configs();
    let repo = repos.into_iter().find(|r| same_repo(&r.url, url));
    match repo {
        Some(r) if r.branches.iter().any(|b| b == branch) => Ok(r),
        Some(r) => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("branch '{branch}' of {url} is not tracked (tracked: {})", r.branches.join(", ")),
        ))),
        None => Err(Box::new(error(StatusCode::NOT_FOUND, format!("{url} is not a tracked repository; add it with `gmctl repo add`")))),
    }
}

/// The commit request and the tracked repository it names, or the answer saying what is wrong.
fn tracked_request(
    state: &HttpState,
    body: Result<Json<CommitRequest>, JsonRejection>,
) -> Result<(CommitRequest, crate::runtime::config::RepoConfig), Box<Response>> {
    let req =
        body.map(|Json(r)| r).map_err(|r| Box::new(error(rejection_status(&r), format!("the request is not valid: {}", r.body_text()))))?;
    let repo = tracked(state, &req.repo_url, &req.branch)?;
    Ok((req, repo))
}

/// `gmctl commit deploy`: fetch now, wait (bounded) for the new head to load, answer with the files
/// that changed since the last known commit. `force` redeploys every app of the branch.
pub async fn deploy(State(state): State<HttpState>, body: Result<Json<CommitRequest>, JsonRejection>) -> Response {
    let (req, repo) = match tracked_request(&state, body) {
        Ok(found) => found,
        Err(resp) => return *resp,
    };
    let before = state.controller.head(&repo.name, &req.branch).map(|h| h.commit.clone());
    // the fetch is the source loop's: wake it and wait (bounded) for a fetch begun after now
    for t in state.repos.targets().into_iter().filter(|t| t.repo == repo.name && t.branch == req.branch) {
        if !t.signal.fetch_now(FETCH_WAIT).await {
            tracing::warn!(repo = %repo.name, branch = %req.branch, "no fetch finished within {FETCH_WAIT:?}; answering with the head loaded so far");
        }
    }
    let latest = state.controller.head(&repo.name, &req.branch).map(|h| h.commit.clone());
    if req.force {
        if let Some(head) = state.controller.head(&repo.name, &req.branch) {
            let keys: Vec<gitmoxi_deploy::record::AppKey> = head
                .intents
                .keys()
                .map(|prefix| gitmoxi_deploy::record::AppKey {
                    repo: repo.name.clone(),
                    branch: req.branch.clone(),
                    prefix: prefix.clone(),
                })
                .collect();
            let note = "redeploy forced by gmctl commit deploy -f".to_string();
            if let Err(e) = state.controller.submit_all(&keys, &gitmoxi_deploy::commands::Command::Force, &note).await {
                // never "accepted" for a force that was not written (issue 24)
                return error(StatusCode::SERVICE_UNAVAILABLE, format!("{e}; the apps before it are forced, run the command again"));
            }
        }
    }
    let Some(latest) = latest else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the branch has not been fetched yet; check `gitmoxi status` and the server log");
    };
    let mirror = crate::runtime::source::mirror_dir(&state.state_dir, &repo);
    let unchanged = before.as_deref() == Some(latest.as_str());
    // no new commit: nothing changed (a forced redeploy lists every file, as every app redeploys)
    let from = match (unchanged, req.force) {
        (true, false) => Some(latest.clone()),
        (true, true) => None,
        (false, _) => before.clone(),
    };
    let files = {
        let latest = latest.clone();
        tokio::task::spawn_blocking(move || crate::io::git::changes::relevant_files(&mirror, from.as_deref(), &latest)).await
    };
    let mut answer = match files {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let message = match (unchanged, req.force) {
        (true, false) => format!("nothing changed: {} is the last known commit; pass --force (-f) to redeploy it", short(&latest)),
        (true, true) => format!("no new commit: every app of {} redeploys (forced)", short(&latest)),
        (false, _) => format!("{} loaded; its changed apps deploy now", short(&latest)),
    };
    if let Some(o) = answer.as_object_mut() {
        o.insert("latest_commit_hash".into(), json!(latest));
        o.insert("last_known_commit_hash".into(), json!(before));
        o.insert("message_list".into(), json!([message]));
    }
    Json(answer).into_response()
}

fn short(commit: &str) -> &str {
    gitmoxi_deploy::strategy::short_commit(commit)
}

/// `gmctl commit dryrun`: fetches the branch's newest commit (without loading it) and answers
/// the files it changed since the last known commit, with the rendered documents of each changed
/// app when `process_template` is set (in one of the render slots previews and riskiq share:
/// busy, a 503 says to try again). Deploys nothing.
pub async fn dryrun(State(state): State<HttpState>, body: Result<Json<CommitRequest>, JsonRejection>) -> Response {
    let (req, _, fetched) = match fetch_tracked(&state, body, "the dry run").await {
        Ok(found) => found,
        Err(resp) => return *resp,
    };
    if fetched.last_known.as_deref() == Some(fetched.latest.as_str()) {
        return Json(json!({
            "latest_commit_hash": fetched.latest,
            "deployment_artifacts_from_changed_files": {},
            "message_list": [format!("no new commit: {} is the last known commit", short(&fetched.latest))],
        }))
        .into_response();
    }
    let artifacts = match changed_files(&fetched).await {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let mut artifacts = artifacts;
    if req.process_template {
        let snapshot = match crate::runtime::preview::render(&state.controller, fetched.mirror.clone(), fetched.latest.clone()).await {
            Ok(s) => s,
            Err(e) => return super::riskiq::not_rendered(short(&fetched.latest), e),
        };
        let changed = changed_prefixes(&artifacts);
        let mut rendered = serde_json::Map::new();
        for (prefix, app) in snapshot.apps.iter().filter(|(p, _)| changed.contains(*p)) {
            let value = match app {
                Ok(a) => match &a.spec {
                    gitmoxi_deploy::spec::AppSpec::Ecs(e) => json!({"svcdef": e.svcdef, "taskdef": e.taskdef}),
                    gitmoxi_deploy::spec::AppSpec::Lambda(l) => json!({"lambdadef": l.lambdadef}),
                },
                Err(invalid) => json!({"errors": invalid.errors.iter().map(ToString::to_string).collect::<Vec<_>>()}),
            };
            rendered.insert(prefix.clone(), value);
        }
        if let Some(o) = artifacts.as_object_mut() {
            o.insert("rendered".into(), Value::Object(rendered));
        }
    }
    Json(json!({"latest_commit_hash": fetched.latest, "deployment_artifacts_from_changed_files": artifacts})).into_response()
}

/// The request, its tracked repository and that branch's newest commit fetched under preview
/// refs; or the answer saying what is wrong (`what` names the command in it).
pub(crate) async fn fetch_tracked(
    state: &HttpState,
    body: Result<Json<CommitRequest>, JsonRejection>,
    what: &str,
) -> Result<(CommitRequest, crate::runtime::config::RepoConfig, crate::runtime::preview::Fetched), Box<Response>> {
    let (req, repo) = tracked_request(state, body)?;
    match crate::runtime::preview::fetch_newest(&state.controller, &state.state_dir, &repo, &req.branch).await {
        Ok(fetched) => Ok((req, repo, fetched)),
        Err(e) => Err(Box::new(error(
            StatusCode::BAD_GATEWAY,
            format!("{what} could not fetch {}: {e}", crate::io::git::source::redact(&repo.url)),
        ))),
    }
}

/// Gitmoxi's `deployment_artifacts_from_changed_files`: the relevant files between the last
/// known and the newest commit, with both hashes inside.
pub(crate) async fn changed_files(fetched: &crate::runtime::preview::Fetched) -> Result<Value, Box<Response>> {
    let (mirror, from, to) = (fetched.mirror.clone(), fetched.last_known.clone(), fetched.latest.clone());
    let files = tokio::task::spawn_blocking(move || crate::io::git::changes::relevant_files(&mirror, from.as_deref(), &to)).await;
    let mut artifacts = match files {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(Box::new(error(StatusCode::INTERNAL_SERVER_ERROR, e))),
        Err(e) => return Err(Box::new(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))),
    };
    if let Some(o) = artifacts.as_object_mut() {
        o.insert("latest_commit_hash".into(), json!(fetched.latest));
        o.insert("last_known_commit_hash".into(), json!(fetched.last_known));
    }
    Ok(artifacts)
}

/// The app prefixes the relevant files name.
pub(crate) fn changed_prefixes(artifacts: &Value) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for section in ["/ecs/ecs_relevant_files", "/lambda/lambda_relevant_files"] {
        for change in ["added_or_modified", "deleted"] {
            if let Some(by_prefix) = artifacts.pointer(&format!("{section}/{change}")).and_then(Value::as_object) {
                out.extend(by_prefix.keys().cloned());
            }
        }
    }
    out
}

/// `gmctl commit files HASH`: the deployment files that commit changed, in every tracked repo that has it.
pub async fn commit_files(State(state): State<HttpState>, Path(hash): Path<String>) -> Response {
    if !crate::io::git::changes::is_commit_id(&hash) {
        return error(StatusCode::BAD_REQUEST, format!("'{hash}' is not a commit id: use 7 to 40 hex digits (e.g. from gmctl commits)"));
    }
    let mut out = Vec::new();
    for repo in state.repos.configs() {
        let mirror = crate::runtime::source::mirror_dir(&state.state_dir, &repo);
        let h = hash.clone();
        let found = tokio::task::spawn_blocking(move || {
            let (full, parent) = crate::io::git::changes::parent_of(&mirror, &h)?;
            crate::io::git::changes::relevant_files(&mirror, parent.as_deref(), &full).map(|files| (full, files))
        })
        .await;
        if let Ok(Ok((full, files))) = found {
            let received = repo
                .branches
                .iter()
                .flat_map(|b| crate::runtime::source::commits_seen(&state.controller.store, &repo.name, b))
                .find(|(c, _)| *c == full)
                .map(|(_, at)| format_ms(at));
            // gmctl reads the files at the commit's top level; `ecs` / `lambda` keep our nesting
            let mut v = json!({
                "commit_hash": full,
                "repo_url": crate::io::git::source::redact(&repo.url),
                "receive_timestamp": received,
                "ecs_relevant_files": files.pointer("/ecs/ecs_relevant_files"),
                "lambda_relevant_files": files.pointer("/lambda/lambda_relevant_files"),
            });
            if let (Some(o), Value::Object(f)) = (v.as_object_mut(), files) {
                o.extend(f);
            }
            out.push(v);
        }
    }
    if out.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("no tracked repository has commit {hash}; gmctl commits lists the ones gitmoxi knows"),
        );
    }
    Json(json!({"commits": out})).into_response()
}

#[derive(Debug, Deserialize)]
pub struct TaskSetQuery {
    taskset_arn: Option<String>,
}

/// A task set pair gitmoxi put live, and whether it still is.
struct TaskSetPair {
    record: DeploymentRecord,
    primary: String,
    fallback: Option<String>,
    /// Why it no longer runs (replaced by a later deployment, or its app deleted); `None`: live.
    gone: Option<String>,
}

/// Every pair (primary, fallback) gitmoxi put live. Per app, only the one of its latest
/// deployment that changed what runs (succeeded or deleted) is live, and only while the app is
/// still tracked: each later deployment cleaned the older ones up.
fn task_set_pairs(state: &HttpState) -> Result<Vec<TaskSetPair>, gitmoxi_state::StoreError> {
    let store = &state.controller.store;
    let mut deployments = store.deployments()?;
    deployments.sort_by_key(|d| d.started_at_ms);
    let mut latest: std::collections::BTreeMap<gitmoxi_deploy::record::AppKey, String> = std::collections::BTreeMap::new();
    for d in &deployments {
        if matches!(d.outcome, Some(gitmoxi_deploy::record::Outcome::Succeeded | gitmoxi_deploy::record::Outcome::Deleted)) {
            latest.insert(d.app.clone(), d.id.clone());
        }
    }
    let mut pairs = Vec::new();
    for d in deployments {
        let Some((primary, fallback)) = d.task_set_arns.clone() else { continue };
        let tracked = store.app(&d.app)?.is_some();
        let gone = match latest.get(&d.app) {
            Some(id) if *id != d.id => Some(format!("replaced by deployment {id}, which cleaned it up")),
            Some(_) | None if !tracked => Some(format!("its app {} is no longer tracked", d.app.prefix)),
            Some(_) => None,
            None => Some(format!("deployment {} did not succeed", d.id)),
        };
        pairs.push(TaskSetPair { record: d, primary, fallback, gone });
    }
    Ok(pairs)
}

fn task_set_view(d: &DeploymentRecord, primary: &str, fallback: &Option<String>) -> Value {
    let scales = d.task_set_scales.map_or((100.0, 0.0), |s| (s.primary_percent, s.fallback_percent));
    json!({"taskset_arn": primary, "fallback_taskset_arn": fallback, "primary_scale": scales.0, "fallback_scale": scales.1, "deployment": d.id})
}

/// `gmctl taskset get`: the task set (and its fallback) gitmoxi put live, with the scales it set.
pub async fn taskset_get(State(state): State<HttpState>, Query(q): Query<TaskSetQuery>) -> Response {
    let pairs = match task_set_pairs(&state) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let named = |p: &&TaskSetPair| q.taskset_arn.as_deref().is_none_or(|a| a == p.primary || p.fallback.as_deref() == Some(a));
    let found: Vec<Value> =
        pairs.iter().filter(|p| p.gone.is_none()).filter(named).map(|p| task_set_view(&p.record, &p.primary, &p.fallback)).collect();
    if found.is_empty() {
        if let Some(arn) = &q.taskset_arn {
            let why = match pairs.iter().rev().find(named) {
                Some(TaskSetPair { record, gone: Some(gone), .. }) => {
                    format!("task set {arn} no longer runs: deployment {} put it live, then {gone}", record.id)
                }
                Some(TaskSetPair { gone: None, .. }) | None => format!("no task set {arn} was put live by gitmoxi"),
            };
            return error(StatusCode::NOT_FOUND, why);
        }
    }
    Json(json!({"tasksets": found})).into_response()
}

#[derive(Debug, Deserialize)]
pub struct RebalanceRequest {
    service_arn: String,
    /// Move everything, not only what is needed.
    #[serde(default)]
    shift_all: bool,
    /// Back from the fallback to the primary (Spot) task set.
    #[serde(default)]
    revert: bool,
    /// gmctl's "redo even if processing": replaces a rebalance still waiting.
    #[serde(default)]
    r#override: Value,
    /// Absolute scales `{primary_scale, fallback_scale}` instead of a direction.
    #[serde(default)]
    scales: Option<Value>,
}

/// `gmctl taskset rebalance`: moves scale between the primary (Spot) and the fallback
/// (on-demand) task set of a blue/green service, as Gitmoxi documents Spot fallback: to the
/// fallback by default (`shift_all`: everything, else only the tasks the primary cannot place),
/// back to the primary with `revert`. Written as a command; the reconcile loop applies it.
pub async fn taskset_rebalance(State(state): State<HttpState>, body: Result<Json<RebalanceRequest>, JsonRejection>) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(r) => return error(rejection_status(&r), format!("the request is not valid: {}", r.body_text())),
    };
    let replace = match &req.r#override {
        Value::Null => false,
        Value::Bool(b) => *b,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("override is gmctl's \"redo even if a rebalance is waiting\" flag (true or false), got {other}; absolute scales go in \"scales\": {{\"primary_scale\": P, \"fallback_scale\": F}}"),
            )
        }
    };
    let asked = match &req.scales {
        None => Rebalance::Move {
            direction: if req.revert { RebalanceDirection::ToPrimary } else { RebalanceDirection::ToFallback },
            all: req.shift_all,
        },
        Some(v) if !req.revert && !req.shift_all => {
            let (p, f) = (
                v.get("primary_scale").and_then(Value::as_f64).unwrap_or(-1.0),
                v.get("fallback_scale").and_then(Value::as_f64).unwrap_or(-1.0),
            );
            if !(0.0..=100.0).contains(&p) || !(0.0..=100.0).contains(&f) || (p + f - 100.0).abs() > 1e-6 {
                return error(StatusCode::BAD_REQUEST, format!("scales must be 0..100 and sum to 100, got {v}"));
            }
            Rebalance::Scales(p, f)
        }
        Some(_) => return error(StatusCode::BAD_REQUEST, "give either scales or a direction (shift_all / revert), not both"),
    };
    // arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE
    let parts: Vec<&str> = req.service_arn.split(':').collect();
    let (Some(region), Some(resource)) = (parts.get(3), parts.get(5)) else {
        return error(StatusCode::BAD_REQUEST, "service_arn must be arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE");
    };
    let names: Vec<&str> = resource.split('/').collect();
    let (Some(cluster), Some(service)) = (names.get(1), names.get(2)) else {
        return error(StatusCode::BAD_REQUEST, "service_arn must name the cluster and the service: …:service/CLUSTER/SERVICE");
    };
    let apps = match state.controller.store.apps() {
        Ok(a) => a,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(app) = apps.into_iter().find(|a| {
        matches!(&a.applied.identity, Some(Identity::Ecs { region: r, cluster: c, service: s, .. })
            if r == region && gitmoxi_deploy::spec::ecs::cluster_name(c) == *cluster && s == service)
    }) else {
        return error(StatusCode::NOT_FOUND, format!("no app deploys {}", req.service_arn));
    };
    let last = app.last_deployment.as_deref().and_then(|id| state.controller.store.deployment(id).ok().flatten());
    if let Some(d) = last.as_ref().filter(|d| d.strategy == Strategy::Rolling) {
        return error(
            StatusCode::CONFLICT,
            format!(
                "{service} deploys with rolling updates (deployment {}): a rolling service has no task sets to rebalance; \
                 rebalancing moves scale between the primary and fallback task sets of a blue/green service (deploymentController EXTERNAL with fallbackCapacityProviderStrategy)",
                d.id
            ),
        );
    }
    let pairs = match task_set_pairs(&state) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(pair) = pairs.iter().find(|p| p.gone.is_none() && p.record.app == app.key) else {
        return error(StatusCode::CONFLICT, format!("{service} has no task set gitmoxi put live; nothing to rebalance"));
    };
    let Some(fallback) = pair.fallback.clone() else {
        return error(
            StatusCode::CONFLICT,
            format!(
                "{service} has no fallback task set: deployment {} placed every task with the primary capacity providers; a fallback task set is created only when they cannot",
                pair.record.id
            ),
        );
    };
    let waiting = match state.controller.store.commands(&app.key) {
        Ok(c) => c.rebalance,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if let (Some(waiting), false) = (waiting, replace) {
        return error(
            StatusCode::CONFLICT,
            format!("a rebalance of {service} is still waiting ({waiting:?}); pass --override (-o) to replace it"),
        );
    }
    let note = format!("rebalance asked with gmctl taskset rebalance: {asked:?}");
    let submitted = state.controller.submit(&app.key, gitmoxi_deploy::commands::Command::Rebalance { rebalance: asked }, note).await;
    let forwarded = match submitted {
        Ok(crate::runtime::controller::commands::Submitted::Logged { .. }) => None,
        Ok(crate::runtime::controller::commands::Submitted::Forwarded { shard, owner }) => Some(format!(
            "; {} belongs to shard {shard} held by {}, which applies it",
            app.key.prefix,
            owner.as_deref().unwrap_or("no replica right now")
        )),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let (direction, amount) = match asked {
        Rebalance::Move { direction, all } => (
            match direction {
                RebalanceDirection::ToFallback => "to_fallback",
                RebalanceDirection::ToPrimary => "to_primary",
            },
            if all { "ALL" } else { "AS_NEEDED" },
        ),
        Rebalance::Scales(..) => ("scales", "GIVEN"),
    };
    let mut taskset = json!({"taskset_arn": pair.primary, "fallback_taskset_arn": fallback, "direction": direction, "amount": amount});
    if let Rebalance::Scales(p, f) = asked {
        taskset["primary_scale"] = json!(p);
        taskset["fallback_scale"] = json!(f);
    }
    Json(json!({
        "status": "accepted",
        "app": app.key.prefix,
        "message_list": [format!(
            "rebalance of {service} accepted ({direction}, {amount}){}; its timeline shows the scales once ECS does",
            forwarded.unwrap_or_default()
        )],
        "tasksets": [taskset],
    }))
    .into_response()
}
