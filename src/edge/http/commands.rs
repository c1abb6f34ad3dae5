//! Operator commands (SPEC §5, §6.2): `POST /api/v2/commands` with
//! `{"command": "sync" | "force" | "allow_prune" | "rollback" | "pause" | "resume" | "approve" |
//! "reject" | "override_freeze" | "unpin", "app"?, "repo"?, "branch"?, "by"?, "via"?, "to"?}`. A
//! command is written to the store, then the app (or the branch) is enqueued or woken (rule 9):
//! the reconcile loop does the rest. `rollback` with `"to": "previous" | COMMIT` on a steady app
//! pins it there (issue 26).

use super::reply::{error, rejection_status};
use super::state::HttpState;
use super::views::{self, Found};
use crate::runtime::controller::commands::Submitted;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gitmoxi_deploy::commands::Command;
use gitmoxi_deploy::record::AppKey;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    pub command: String,
    pub app: Option<String>,
    pub repo: Option<String>,
    pub branch: Option<String>,
    /// Who answers an approval gate (the CLI sends the local user).
    pub by: Option<String>,
    /// How: cli, api or page (default api).
    pub via: Option<String>,
    /// `rollback` only: `previous` or a commit to roll a steady app back to (and pin it).
    #[serde(default)]
    pub to: Option<String>,
}

/// The longest `by` kept (a name, not a document).
const MAX_BY: usize = 100;

/// The answer an approve / reject request gives, checked: a named token (`[api_tokens]`) answers
/// as its name; the main token as the `by` the client sends (the CLI sends the local user).
fn approval(state: &HttpState, req: &CommandRequest, caller: Option<&str>) -> Result<gitmoxi_deploy::commands::Approval, Box<Response>> {
    use gitmoxi_deploy::commands::AnswerChannel;
    let via = match req.via.as_deref().unwrap_or("api") {
        "api" => AnswerChannel::Api,
        "cli" => AnswerChannel::Cli,
        "page" => AnswerChannel::Page,
        other => return Err(refuse(StatusCode::BAD_REQUEST, format!("\"via\" is \"{other}\"; use cli, api or page"))),
    };
    Ok(gitmoxi_deploy::commands::Approval {
        approve: req.command == "approve",
        by: who(req, caller),
        via,
        at_ms: state.controller.clock.now_ms(),
    })
}

/// Who asked: a named token's name (`[api_tokens]`), else the `by` the client sends (the CLI
/// sends the local user), cleaned and bounded.
fn who(req: &CommandRequest, caller: Option<&str>) -> String {
    let named = caller.filter(|c| *c != super::access::MAIN_TOKEN);
    let by: String = named.or(req.by.as_deref()).unwrap_or("an API client").chars().filter(|c| !c.is_control()).take(MAX_BY).collect();
    if by.trim().is_empty() {
        "an API client".to_string()
    } else {
        by.trim().to_string()
    }
}

/// Who asked, as the history records it: a named token's name, else what the client says (the
/// CLI sends the local user), with how it came.
fn caller_name(req: &CommandRequest, caller: Option<&str>) -> String {
    format!("{} via {}", who(req, caller), req.via.as_deref().unwrap_or("api"))
}

fn resolve(state: &HttpState, req: &CommandRequest) -> Result<AppKey, Box<Response>> {
    let Some(prefix) = req.app.as_deref() else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("\"{}\" needs \"app\": the app's file prefix, e.g. prod/web/web", req.command),
        ));
    };
    let entries = state.controller.store.apps().map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let found: Vec<AppKey> = entries
        .into_iter()
        .map(|e| e.key)
        .filter(|k| {
            k.prefix == prefix && req.repo.as_deref().is_none_or(|r| k.repo == r) && req.branch.as_deref().is_none_or(|b| k.branch == b)
        })
        .collect();
    match found.as_slice() {
        [] => Err(refuse(StatusCode::NOT_FOUND, format!("no app with prefix '{prefix}'; list apps with `gitmoxi status`"))),
        [key] => Ok(key.clone()),
        many => Err(Box::new(
            (
                StatusCode::CONFLICT,
                Json(json!({
                    "error": format!("prefix '{prefix}' exists in several repositories or branches; add \"repo\" and \"branch\""),
                    "candidates": many.iter().map(|k| format!("{}@{}", k.repo, k.branch)).collect::<Vec<_>>(),
                })),
            )
                .into_response(),
        )),
    }
}

/// A refusal (boxed: a response is large).
fn refuse(status: StatusCode, message: impl Into<String>) -> Box<Response> {
    Box::new(error(status, message))
}

pub async fn command(
    State(state): State<HttpState>,
    caller: Option<axum::Extension<super::access::Caller>>,
    body: Result<Json<CommandRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(rejection) => return error(rejection_status(&rejection), format!("the command is not valid JSON: {}", rejection.body_text())),
    };
    let caller = caller.and_then(|axum::Extension(c)| c.0);
    // "page" is set by gitmoxi's own page only (it calls `run` directly); API clients say cli or api
    if req.via.as_deref() == Some("page") {
        return error(StatusCode::BAD_REQUEST, "\"via\": \"page\" is set by gitmoxi's web page only; send cli or api");
    }
    run(&state, &req, caller.as_deref()).await.unwrap_or_else(|refusal| *refusal)
}

/// Runs a command for `caller` (the name of the token it came with).
pub(crate) async fn run(state: &HttpState, req: &CommandRequest, caller: Option<&str>) -> Result<Response, Box<Response>> {
    let store = &state.controller.store;
    let internal = |e: gitmoxi_state::StoreError| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    match req.command.as_str() {
        "sync" => {
            let woken: Vec<String> = state
                .repos
                .targets()
                .into_iter()
                .filter(|t| req.repo.as_deref().is_none_or(|r| t.repo == r) && req.branch.as_deref().is_none_or(|b| t.branch == b))
                .map(|t| {
                    t.signal.wake();
                    format!("{}@{}", t.repo, t.branch)
                })
                .collect();
            if woken.is_empty() {
                return Err(refuse(StatusCode::NOT_FOUND, "no tracked repository and branch match; see the repos of `gitmoxi serve`"));
            }
            Ok(Json(json!({"status": "fetching", "repos": woken})).into_response())
        }
        "allow_prune" => {
            let (Some(repo), Some(branch)) = (req.repo.as_deref(), req.branch.as_deref()) else {
                return Err(refuse(StatusCode::BAD_REQUEST, "\"allow_prune\" needs \"repo\" and \"branch\""));
            };
            let replanned = state.controller.head(repo, branch).is_some();
            state.controller.allow_prune(repo, branch).await.map_err(submit_refused)?;
            Ok(Json(json!({"status": "accepted", "replanned": replanned, "message": "held deletes of this branch may go ahead once"}))
                .into_response())
        }
        "rollback" if req.to.is_some() => {
            let key = resolve(state, req)?;
            let to = gitmoxi_deploy::release::pin::RollbackTo::parse(req.to.as_deref().unwrap_or_default())
                .map_err(|e| refuse(StatusCode::BAD_REQUEST, e))?;
            let by = caller_name(req, caller);
            let pin = state.controller.pin_to(&key, &to, &by).await.map_err(pin_refused)?;
            Ok(Json(json!({
                "status": "accepted",
                "command": "rollback",
                "app": key.prefix,
                "pinned": {"commit": pin.commit, "fingerprint": pin.fingerprint, "deployment": pin.from_deployment, "by": pin.by},
                "message": format!("{} rolls back to commit {} and stays pinned there until `gitmoxi unpin {}` or a commit that changes its files", key.prefix, gitmoxi_deploy::strategy::short_commit(&pin.commit), key.prefix),
            }))
            .into_response())
        }
        "unpin" => {
            let key = resolve(state, req)?;
            let pin = state.controller.unpin(&key).await.map_err(pin_refused)?;
            Ok(Json(json!({
                "status": "accepted",
                "command": "unpin",
                "app": key.prefix,
                "was_pinned_at": pin.commit,
                "message": format!("{} follows the branch head again", key.prefix),
            }))
            .into_response())
        }
        "override_freeze" => {
            let key = resolve(state, req)?;
            let by = caller_name(req, caller);
            let message = format!("freeze override given by {by}: the app's next change may start during a freeze");
            let submitted =
                state.controller.submit(&key, Command::OverrideFreeze { by: by.clone() }, message).await.map_err(submit_refused)?;
            if let Some(forwarded) = forwarded_answer(state, &key, &req.command, &submitted) {
                return Ok(forwarded);
            }
            Ok(Json(json!({"status": "accepted", "command": "override_freeze", "app": key.prefix, "by": by})).into_response())
        }
        "force" | "rollback" | "pause" | "resume" => {
            let key = resolve(state, req)?;
            let (command, message) = match req.command.as_str() {
                "force" => (Command::Force, "redeploy forced by an operator"),
                "rollback" => (Command::Rollback, "rollback requested by an operator"),
                "pause" => (Command::Pause, "paused by an operator: held at its current step"),
                _ => (Command::Resume, "resumed by an operator"),
            };
            let submitted = state.controller.submit(&key, command, message.to_string()).await.map_err(submit_refused)?;
            if let Some(forwarded) = forwarded_answer(state, &key, &req.command, &submitted) {
                return Ok(forwarded);
            }
            let view = match views::app_detail(&state.controller, &key.prefix, Some(&key.repo), Some(&key.branch)) {
                Ok(Found::One(v)) => v,
                _ => json!(null),
            };
            Ok(Json(json!({"status": "accepted", "command": req.command, "app": view})).into_response())
        }
        "approve" | "reject" => {
            if !state.access.may_answer_gates(caller) {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    format!(
                        "only the tokens named in approvers ({}) may answer approval gates; this request came with {}",
                        state.access.approvers().join(", "),
                        caller.map_or("no token".to_string(), |c| format!("the token '{c}'")),
                    ),
                ));
            }
            let key = resolve(state, req)?;
            let answer = approval(state, req, caller)?;
            // the replica that acts for the app knows which gate waits; another one hands it over
            let gate = if state.controller.acts_for(&key) {
                let waiting = store.record(&key).map_err(internal)?.filter(|r| r.in_flight()).and_then(|r| r.awaiting_approval);
                let Some(gate) = waiting else {
                    return Err(refuse(
                        StatusCode::CONFLICT,
                        format!("{} waits at no approval gate; `gitmoxi status {}` shows where its deployment is", key.prefix, key.prefix),
                    ));
                };
                Some(gate)
            } else {
                None
            };
            let message = match &gate {
                Some(g) => format!("{answer} at {}", g.stage),
                None => answer.to_string(),
            };
            let submitted = state.controller.submit(&key, Command::Answer { approval: answer }, message).await.map_err(submit_refused)?;
            if let Some(forwarded) = forwarded_answer(state, &key, &req.command, &submitted) {
                return Ok(forwarded);
            }
            // logged here: the gate was checked here, unless this replica took the app's shard
            // between the check and the submit (then the planner notes an answer that finds no gate)
            let (gate, stage) = gate.map_or((None, None), |g| (Some(g.gate), Some(g.stage)));
            Ok(Json(json!({"status": "accepted", "command": req.command, "app": key.prefix, "gate": gate, "stage": stage})).into_response())
        }
        other => Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("unknown command \"{other}\"; use sync, force, allow_prune, rollback, pause, resume, approve, reject, override_freeze or unpin"),
        )),
    }
}

/// A pin or unpin that could not be done, as an answer.
fn pin_refused(e: crate::runtime::controller::pins::PinError) -> Box<Response> {
    use crate::runtime::controller::pins::PinError;
    let status = match &e {
        PinError::InFlight { .. } | PinError::NotOwner { .. } => StatusCode::CONFLICT,
        PinError::NoTarget(_) | PinError::NotPinned { .. } | PinError::NoHead { .. } => StatusCode::NOT_FOUND,
        PinError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        PinError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    refuse(status, e.to_string())
}

/// A command that could not be taken, as an answer.
fn submit_refused(e: crate::runtime::controller::commands::SubmitError) -> Box<Response> {
    use crate::runtime::controller::commands::SubmitError;
    let status = match &e {
        SubmitError::Store(gitmoxi_state::StoreError::TooManyCommands { .. }) => StatusCode::TOO_MANY_REQUESTS,
        SubmitError::Store(_) | SubmitError::Forward { .. } | SubmitError::Replan(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    refuse(status, e.to_string())
}

/// With high availability, the answer for a command handed to the replica that owns the app
/// (202, naming the shard and its holder); `None` when it was logged here.
fn forwarded_answer(state: &HttpState, key: &AppKey, command: &str, submitted: &Submitted) -> Option<Response> {
    let Submitted::Forwarded { shard, owner } = submitted else { return None };
    let renew = state.controller.ha().map_or(std::time::Duration::ZERO, |ha| ha.config.renew);
    Some(
        (
            StatusCode::ACCEPTED,
            Json(json!({
                "status": "forwarded",
                "command": command,
                "app": key.prefix,
                "shard": shard,
                "owner": owner,
                "message": format!(
                    "{} belongs to shard {shard}, held by {}; the command waits in the HA table and its owner applies it within {}",
                    key.prefix,
                    owner.as_deref().unwrap_or("no replica right now"),
                    humantime::format_duration(renew),
                ),
            })),
        )
            .into_response(),
    )
}

/// Applies the commands other replicas left for this one's shards, as if given here by the same
/// caller, until `shutdown`.
pub async fn apply_forwarded(
    state: HttpState,
    mut inbox: tokio::sync::mpsc::Receiver<crate::io::ha::Forwarded>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let forwarded = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = inbox.recv() => match next {
                Some(f) => f,
                None => break,
            },
        };
        if let Some(allow) = forwarded.request.get("allow_prune") {
            let (repo, branch) = (allow["repo"].as_str().unwrap_or_default(), allow["branch"].as_str().unwrap_or_default());
            if let Err(e) = state.controller.allow_prune_here(repo, branch).await {
                tracing::warn!(repo, branch, from = %forwarded.from, error = %e, "an allow_prune given on another replica was not recorded here");
            }
            continue;
        }
        if let Some(submit) = forwarded.request.get("submit") {
            // a command of any producer, typed (issue 24)
            match serde_json::from_value::<crate::runtime::controller::commands::ForwardedCommand>(submit.clone()) {
                Ok(command) => {
                    let (app, name) = (command.app.clone(), command.command.name());
                    match state.controller.submit_forwarded(command).await {
                        Ok(_) => {
                            tracing::info!(command = name, app = %app, from = %forwarded.from, "applied a command given on another replica")
                        }
                        Err(e) => {
                            tracing::warn!(command = name, app = %app, from = %forwarded.from, error = %e, "a command given on another replica was not recorded here")
                        }
                    }
                }
                Err(e) => tracing::error!(from = %forwarded.from, error = %e, "a forwarded command is not a command; dropped"),
            }
            continue;
        }
        let req: CommandRequest = match serde_json::from_value(forwarded.request) {
            Ok(req) => req,
            Err(e) => {
                tracing::error!(from = %forwarded.from, error = %e, "a forwarded command is not a command; dropped");
                continue;
            }
        };
        match run(&state, &req, forwarded.caller.as_deref()).await {
            Ok(_) => {
                tracing::info!(command = %req.command, app = ?req.app, from = %forwarded.from, "applied a command given on another replica")
            }
            Err(refusal) => tracing::warn!(
                command = %req.command,
                app = ?req.app,
                from = %forwarded.from,
                status = %refusal.status(),
                "a command given on another replica was refused here"
            ),
        }
    }
}
