//! gmctl's risk assessment: `POST /api/v1/commits/riskiq` assesses a branch's newest commit
//! against what gitmoxi applied (computed without any AI service, [`gitmoxi_deploy::risk`]; with
//! `[llm]` configured, a model-written summary on top) and keeps it; `GET /api/v1/riskiq` reads
//! the kept assessments of a commit, optionally of one file.
//!
//! The render takes one of the render slots previews and dryrun share ([`crate::io::renders`]); the
//! model is the one of gitmoxi's `[llm]` configuration, whatever the request names (the operator
//! pays for it).

use super::reply::error;
use super::state::HttpState;
use super::v1::{changed_files, fetch_tracked, CommitRequest};
use crate::runtime::assessments::{self, Kept};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gitmoxi_deploy::risk::{self, AppRisk};
use serde::Deserialize;
use serde_json::{json, Value};

/// `gmctl commit riskiq -r URL -b BRANCH`: fetch the newest commit, render it, assess it.
pub async fn assess(State(state): State<HttpState>, body: Result<Json<CommitRequest>, JsonRejection>) -> Response {
    let (req, repo, fetched) = match fetch_tracked(&state, body, "the assessment").await {
        Ok(found) => found,
        Err(resp) => return *resp,
    };
    let artifacts = match changed_files(&fetched).await {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let snapshot = match crate::runtime::preview::render(&state.controller, fetched.mirror.clone(), fetched.latest.clone()).await {
        Ok(s) => s,
        Err(e) => return not_rendered(&fetched.latest, e),
    };
    let assessed = match crate::runtime::preview::assess(&state.controller, &repo.name, &req.branch, &snapshot) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let risks: Vec<AppRisk> = assessed.into_iter().map(|a| a.risk).collect();
    // each change described as the one comparison against what AWS holds now (issue 23)
    let changing: Vec<String> = risks
        .iter()
        .filter(|r| matches!(r.kind, risk::RiskChangeKind::Create | risk::RiskChangeKind::Update))
        .map(|r| r.prefix.clone())
        .collect();
    let live = crate::runtime::preview::live_changes(&state.controller, &snapshot, &changing).await;
    let live_text = |prefix: &str| -> Option<String> {
        let l = live.get(prefix)?;
        Some(if l.creates {
            "in AWS: not there yet; it is created".to_string()
        } else if l.differences.is_empty() {
            "in AWS: every field the files set is already held".to_string()
        } else {
            format!("in AWS today: {}", l.differences.join("; "))
        })
    };
    let score = risk::commit_score(&risks);
    let facts = json!({
        "commit": fetched.latest,
        "repository": crate::io::git::source::redact(&repo.url),
        "branch": req.branch,
        "score": score,
        "level": risk::RiskLevel::of(score).as_str(),
        "apps": risks.iter().map(|r| match live_text(&r.prefix) {
            Some(l) => format!("{}\n{l}", risk::render_text(r)),
            None => risk::render_text(r),
        }).collect::<Vec<_>>(),
    });
    let prompt = format!("{}\n\n{}", crate::integrations::llm::RISK_SYSTEM, serde_json::to_string_pretty(&facts).unwrap_or_default());
    let mut messages = vec![format!(
        "commit {}: risk {} ({score}/100) over {} app(s) that change",
        gitmoxi_deploy::strategy::short_commit(&fetched.latest),
        risk::RiskLevel::of(score).as_str(),
        risks.len()
    )];
    let ai_summary = match (&state.llm, req.llm_provider.as_deref()) {
        (Some(llm), provider) => {
            if let Some(p) = provider {
                messages.push(format!("llm_provider '{p}' is not used: gitmoxi asks the endpoint of its [llm] configuration"));
            }
            messages.extend(llm.unused_model(req.llm_model.as_deref()));
            match crate::integrations::llm::complete(llm, &state.controller.credentials, crate::integrations::llm::RISK_SYSTEM, &facts)
                .await
            {
                Ok(text) => Some(text),
                Err(e) => {
                    messages.push(format!("no model summary: {e}"));
                    None
                }
            }
        }
        (None, _) => {
            messages.push("no model summary: [llm] is not configured (the assessment above needs none)".into());
            None
        }
    };
    let kept: Vec<Kept> = risks
        .iter()
        .map(|r| {
            let mut assessment = risk::render_text(r);
            if let Some(l) = live_text(&r.prefix) {
                assessment.push_str(&format!("\n{l}"));
            }
            if let Some(summary) = &ai_summary {
                assessment.push_str(&format!("\n\nmodel summary of the commit: {summary}"));
            }
            Kept::of(&fetched.latest, r, assessment, &prompt, ai_summary.clone(), "applied")
        })
        .collect();
    // a commit gitmoxi already deployed changes nothing against what it applied: its
    // assessment is the one kept when it was processed, against its predecessor (issue 25)
    if kept.is_empty() {
        match assessments::of_commit(&state.controller.store, &fetched.latest) {
            Ok(Some(processed)) => {
                let score = processed.iter().map(|k| k.score).max().unwrap_or(0);
                // the files it changed, against its parent (not against itself, the last known)
                let (mirror, commit) = (fetched.mirror.clone(), fetched.latest.clone());
                let own_changes = tokio::task::spawn_blocking(move || {
                    let (full, parent) = crate::io::git::changes::parent_of(&mirror, &commit)?;
                    crate::io::git::changes::relevant_files(&mirror, parent.as_deref(), &full)
                })
                .await;
                let mut artifacts = artifacts;
                if let (Ok(Ok(Value::Object(files))), Some(o)) = (own_changes, artifacts.as_object_mut()) {
                    o.extend(files);
                }
                messages[0] = format!(
                    "commit {} is already deployed: its assessment against the commit processed before it, {} app(s), risk {} ({score}/100)",
                    gitmoxi_deploy::strategy::short_commit(&fetched.latest),
                    processed.len(),
                    risk::RiskLevel::of(score).as_str()
                );
                return Json(json!({
                    "latest_commit_hash": fetched.latest,
                    "deployment_artifacts_from_changed_files": artifacts,
                    "riskiq": {"commit_hash": fetched.latest, "score": score, "level": risk::RiskLevel::of(score).as_str(), "apps": processed, "ai_summary": Value::Null},
                    "message_list": messages,
                }))
                .into_response();
            }
            Ok(None) => {}
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    if let Err(e) = assessments::keep(&state.controller.store, &fetched.latest, &kept, false) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("the assessment was not kept: {e}"));
    }
    Json(json!({
        "latest_commit_hash": fetched.latest,
        "deployment_artifacts_from_changed_files": artifacts,
        "riskiq": {"commit_hash": fetched.latest, "score": score, "level": risk::RiskLevel::of(score).as_str(), "apps": kept, "ai_summary": ai_summary},
        "message_list": messages,
    }))
    .into_response()
}

/// The answer for a commit that gave no snapshot: 422 when it does not render, 503 when the
/// render slots stayed busy or the render was stopped (the caller may try again).
pub(crate) fn not_rendered(commit: &str, e: crate::io::renders::RenderError) -> Response {
    match e {
        crate::io::renders::RenderError::Failed(why) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, format!("commit {commit} does not render: {why}"))
        }
        other => error(StatusCode::SERVICE_UNAVAILABLE, format!("commit {commit} was not rendered: {other}")),
    }
}

#[derive(Debug, Deserialize)]
pub struct RiskQuery {
    commit_hash: String,
    file_path: Option<String>,
}

/// `gmctl riskiq get -c HASH [-f FILE]`: the kept assessments of a commit (a prefix of at least
/// 7 digits names it), of the app that owns FILE when given; none kept: an empty list.
pub async fn get(State(state): State<HttpState>, Query(q): Query<RiskQuery>) -> Response {
    if !crate::io::git::changes::is_commit_id(&q.commit_hash) {
        return error(StatusCode::BAD_REQUEST, format!("'{}' is not a commit id: use 7 to 40 hex digits", q.commit_hash));
    }
    let wanted = q.commit_hash.to_ascii_lowercase();
    let mut out: Vec<Kept> = Vec::new();
    for commit in assessments::commits(&state.controller.store).iter().filter(|c| c.starts_with(&wanted)) {
        let kept = assessments::of_commit(&state.controller.store, commit);
        let kept = match kept {
            Ok(kept) => kept.unwrap_or_default(),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        out.extend(kept);
    }
    if let Some(file) = q.file_path.as_deref().map(|f| f.trim_start_matches("./")) {
        out.retain(|k| owns(&k.file_path, file));
    }
    Json(out).into_response()
}

/// Whether the app at `prefix` owns `file` (the prefix itself, `PREFIX_kind.json`, or a folder
/// that holds the prefix).
fn owns(prefix: &str, file: &str) -> bool {
    match file.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('_') || rest.starts_with('/'),
        None => prefix.strip_prefix(file.trim_end_matches('/')).is_some_and(|rest| rest.starts_with('/')),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_belongs_to_the_app_whose_prefix_it_extends() {
        for (prefix, file, owned) in [
            ("apps/api/api", "apps/api/api_svcdef.json", true),
            ("apps/api/api", "apps/api/api", true),
            ("apps/api/api", "apps/api", true),
            ("apps/api/api", "apps/api/api2_svcdef.json", false),
            ("apps/api/api", "apps/web/web_svcdef.json", false),
            ("apps/api/api", "app", false),
        ] {
            assert_eq!(super::owns(prefix, file), owned, "{prefix} {file}");
        }
    }
}
