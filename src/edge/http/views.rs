//! JSON views of apps and deployments for the API and the CLI.
//!
//! Status is derived from the head plan, the store and the in-flight record; views never carry
//! secrets.

use crate::base::clock::format_ms;
use crate::runtime::controller::Controller;
use gitmoxi_deploy::record::DeploymentRecord;
use gitmoxi_deploy::status::AppStatus;
use gitmoxi_state::{AppEntry, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One app in lists.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppView {
    pub app: String,
    pub repo: String,
    pub branch: String,
    pub kind: String,
    pub status: AppStatus,
    pub phase: Option<String>,
    /// The traffic split of an in-flight blue/green deployment.
    #[serde(default)]
    pub traffic: Option<gitmoxi_deploy::schedule::Weights>,
    pub commit: Option<String>,
    pub applied_commit: Option<String>,
    pub identity: Option<String>,
    pub fingerprint: Option<String>,
    pub failed_fingerprints: Vec<String>,
    pub last_deployment: Option<String>,
    pub last_outcome: Option<String>,
    pub last_cause: Option<String>,
    pub reason: Option<String>,
    pub problems: Vec<String>,
    /// High availability: the app's shard and the replica holding its lease (absent without HA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerView>,
    /// Why its change has not started (Waiting, Blocked, Frozen): what it waits for and what
    /// releases it (issue 26).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The commit an operator pinned it at (`gitmoxi rollback --to`), by whom and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<PinView>,
}

/// A pin, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PinView {
    pub commit: String,
    pub by: String,
    pub at: String,
}

/// Who acts for an app under high availability.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OwnerView {
    pub shard: u32,
    /// The replica holding the shard's lease (`None`: nobody right now; a replica takes it
    /// within a lease).
    pub replica: Option<String>,
    /// The lease's fencing token.
    pub token: Option<u64>,
    /// Whether the replica answering is the owner.
    pub here: bool,
}

pub fn app_view(controller: &Controller, entry: &AppEntry, record: Option<&DeploymentRecord>) -> AppView {
    let head = controller.head(&entry.key.repo, &entry.key.branch);
    let in_flight = record.filter(|r| r.in_flight());
    let paused = controller.store.commands(&entry.key).is_ok_and(|c| c.paused);
    let status = controller.status_of(entry, head.as_deref(), record, paused);
    AppView {
        app: entry.key.prefix.clone(),
        repo: entry.key.repo.clone(),
        branch: entry.key.branch.clone(),
        kind: entry.kind.as_str().to_string(),
        status,
        phase: in_flight.map(|r| r.phase.name().to_string()),
        traffic: in_flight.and_then(|r| r.traffic),
        commit: entry.head_commit.clone(),
        applied_commit: entry.applied.commit.clone(),
        identity: entry.applied.identity.as_ref().map(ToString::to_string).or_else(|| in_flight.map(|r| r.identity.to_string())),
        fingerprint: entry.applied.fingerprint.clone(),
        failed_fingerprints: entry.applied.failed.iter().cloned().collect(),
        last_deployment: entry.last_deployment.clone(),
        last_outcome: entry.last_outcome.map(|o| o.as_str().to_string()),
        last_cause: entry.last_cause.as_ref().map(ToString::to_string),
        reason: entry.unsupported.clone().or_else(|| entry.intent_reason.clone()),
        problems: entry.problems.iter().map(ToString::to_string).collect(),
        owner: controller.ha().map(|ha| {
            let held = ha.owner_of(&entry.key, controller.clock.now_ms());
            OwnerView {
                shard: ha.shard_of(&entry.key),
                replica: held.as_ref().map(|(r, _)| r.clone()),
                token: held.map(|(_, t)| t),
                here: ha.owns(&entry.key),
            }
        }),
        held: entry
            .hold
            .as_ref()
            .filter(|_| matches!(status, AppStatus::Waiting | AppStatus::Blocked | AppStatus::Frozen))
            .map(|h| h.describe(&entry.key.prefix)),
        pinned: head.as_ref().and_then(|h| h.pins.get(&entry.key.prefix)).map(|p| PinView {
            commit: p.commit.clone(),
            by: p.by.clone(),
            at: format_ms(p.at_ms),
        }),
    }
}

/// Sets the scrape-time gauges (apps by kind and status, traffic of in-flight deployments).
pub fn refresh_gauges(controller: &Controller) -> Result<(), StoreError> {
    let apps = all_apps(controller)?;
    controller.metrics.apps.reset();
    controller.metrics.traffic_weight.reset();
    for a in &apps {
        controller.metrics.apps.with_label_values(&[a.kind.as_str(), a.status.as_str()]).inc();
        if let Some(w) = a.traffic {
            controller.metrics.traffic_weight.with_label_values(&[a.app.as_str(), "blue"]).set(i64::from(w.blue));
            controller.metrics.traffic_weight.with_label_values(&[a.app.as_str(), "green"]).set(i64::from(w.green));
        }
    }
    Ok(())
}

pub fn all_apps(controller: &Controller) -> Result<Vec<AppView>, StoreError> {
    let mut out = Vec::new();
    for entry in controller.store.apps()? {
        let record = controller.store.record(&entry.key)?;
        out.push(app_view(controller, &entry, record.as_ref()));
    }
    Ok(out)
}

pub enum Found {
    None,
    One(Value),
    Many(Vec<String>),
}

pub fn app_detail(controller: &Controller, prefix: &str, repo: Option<&str>, branch: Option<&str>) -> Result<Found, StoreError> {
    let matches: Vec<AppEntry> = controller
        .store
        .apps()?
        .into_iter()
        .filter(|e| e.key.prefix == prefix && repo.is_none_or(|r| e.key.repo == r) && branch.is_none_or(|b| e.key.branch == b))
        .collect();
    match matches.as_slice() {
        [] => Ok(Found::None),
        [entry] => {
            let record = controller.store.record(&entry.key)?;
            let history = controller.store.history(&entry.key)?;
            let history: Vec<Value> = history
                .iter()
                .rev()
                .take(100)
                .rev()
                .map(|h| json!({"at": format_ms(h.at_ms), "level": h.level.as_str(), "deployment": h.deployment, "commit": h.commit, "message": h.message}))
                .collect();
            let mut view = serde_json::to_value(app_view(controller, entry, record.as_ref())).unwrap_or(Value::Null);
            if let Value::Object(obj) = &mut view {
                obj.insert("deployment".into(), record.as_ref().filter(|r| r.in_flight()).map_or(Value::Null, deployment_view));
                obj.insert("history".into(), Value::Array(history));
            }
            Ok(Found::One(view))
        }
        many => Ok(Found::Many(many.iter().map(|e| format!("{}@{}", e.key.repo, e.key.branch)).collect())),
    }
}

/// One page of deployments (newest first) after the one with id `after`, and the id to pass as
/// `after` for the next page (None: this is the last).
pub fn page_of(
    matching: impl Iterator<Item = DeploymentRecord>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<DeploymentRecord>, Option<String>) {
    let mut page: Vec<DeploymentRecord> = match after {
        Some(after) => matching.skip_while(|d| d.id != after).skip(1).take(limit + 1).collect(),
        None => matching.take(limit + 1).collect(),
    };
    let next = (page.len() > limit).then(|| page[limit - 1].id.clone());
    page.truncate(limit);
    (page, next)
}

/// A deployment with its timeline (one deployment's page and answer).
pub fn deployment_view(r: &DeploymentRecord) -> Value {
    let mut view = deployment_summary(r);
    if let Some(o) = view.as_object_mut() {
        o.insert(
            "timeline".into(),
            r.timeline.iter().map(|e| json!({"at": format_ms(e.at_ms), "level": e.level.as_str(), "message": e.message})).collect(),
        );
        o.insert("analysis".into(), analysis_view(r));
        o.insert(
            "hooks".into(),
            r.hooks
                .iter()
                .map(|h| {
                    json!({"hook": h.point.as_str(), "status": h.status, "started_at": format_ms(h.started_ms), "detail": h.detail, "reference": h.reference})
                })
                .collect(),
        );
    }
    view
}

/// The last analysis run in a few words ("bake: pass", "50 %: fail (p99 latency)"); `null`
/// without analysis.
pub fn analysis_summary(r: &DeploymentRecord) -> Value {
    let Some(run) = r.analysis.as_ref().and_then(|a| a.runs.last()) else { return Value::Null };
    let failing: Vec<&str> =
        run.checks.iter().filter(|c| c.verdict != gitmoxi_deploy::analysis::verdict::Verdict::Pass).map(|c| c.name.as_str()).collect();
    let runs = r.analysis.as_ref().map_or(0, |a| a.runs.len());
    let which = if failing.is_empty() { String::new() } else { format!(" ({})", failing.join(", ")) };
    let runs = if runs == 1 { "1 run".to_string() } else { format!("{runs} runs") };
    json!(format!("{}: {}{which}, {runs}", run.step, run.verdict))
}

/// A deployment's metric analysis (issue 25): its sides and every run with each check's values,
/// statistic and verdict (`null` without analysis).
pub fn analysis_view(r: &DeploymentRecord) -> Value {
    let Some(a) = &r.analysis else { return Value::Null };
    let runs: Vec<Value> = a
        .runs
        .iter()
        .map(|run| {
            json!({
                "at": format_ms(run.at_ms),
                "step": run.step,
                "window": [format_ms(run.window_ms.0), format_ms(run.window_ms.1)],
                "verdict": run.verdict,
                "decision": run.decision,
                "checks": run.checks,
            })
        })
        .collect();
    json!({"sides": a.sides, "runs": runs})
}

/// A deployment without its timeline (lists).
pub fn deployment_summary(r: &DeploymentRecord) -> Value {
    json!({
        "id": r.id,
        "app": r.app.prefix,
        "repo": r.app.repo,
        "branch": r.app.branch,
        "commit": r.commit,
        "fingerprint": r.fingerprint,
        "identity": r.identity.to_string(),
        "operation": r.operation,
        "strategy": r.strategy,
        "status": r.status,
        "phase": r.phase.name(),
        "outcome": r.outcome.map(|o| o.as_str()),
        "cause": r.cause.as_ref().map(ToString::to_string),
        "cause_type": r.cause.as_ref().map(|c| c.label()),
        "evidence": r.evidence,
        "analysis_summary": analysis_summary(r),
        "traffic": r.traffic,
        "awaiting_approval": r.awaiting_approval.as_ref().map(|a| json!({"gate": a.gate, "stage": a.stage, "since": format_ms(a.since_ms)})),
        "approvals": r.approvals.iter().map(|a| json!({
            "gate": a.gate, "approve": a.answer.approve, "by": a.answer.by, "via": a.answer.via.as_str(), "at": format_ms(a.answer.at_ms),
        })).collect::<Vec<_>>(),
        "started_at": format_ms(r.started_at_ms),
        "updated_at": format_ms(r.updated_at_ms),
        "finished_at": r.finished_at_ms.map(format_ms),
    })
}
