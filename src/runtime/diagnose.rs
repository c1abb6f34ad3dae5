//! Diagnosis of a deployment (SPEC §6.5), without any AI service: the cause from the taxonomy,
//! the evidence gitmoxi collected (stop reasons, service events, alarms), what changed in the
//! app's files between the last good commit and this one, and a concrete next step.
//!
//! Reads only: the store and the repository's local mirror. Bounded: at most `MAX_DIFF_LINES`.

use crate::runtime::config::RepoConfig;
use crate::runtime::controller::Controller;
use git2::{DiffFormat, DiffOptions, Oid, Repository};
use gitmoxi_deploy::record::DeploymentRecord;
use serde_json::{json, Value};
use std::path::Path;

const MAX_DIFF_LINES: usize = 200;

/// The diff of the app's files between two commits of the mirror, as unified-diff lines.
pub fn app_diff(mirror: &Path, from: Option<&str>, to: &str, prefix: &str) -> Result<Vec<String>, String> {
    let repo = Repository::open_bare(mirror).map_err(|e| format!("the repository mirror is not readable: {}", e.message()))?;
    let tree_of = |rev: &str| -> Result<git2::Tree<'_>, String> {
        let oid = Oid::from_str(rev).map_err(|e| format!("'{rev}' is not a commit id: {}", e.message()))?;
        repo.find_commit(oid).and_then(|c| c.tree()).map_err(|e| format!("commit {rev} is not in the mirror: {}", e.message()))
    };
    let new = tree_of(to)?;
    let old = match from {
        Some(f) => Some(tree_of(f)?),
        None => None,
    };
    let mut opts = DiffOptions::new();
    opts.pathspec(format!("{prefix}_*"));
    let diff = repo.diff_tree_to_tree(old.as_ref(), Some(&new), Some(&mut opts)).map_err(|e| e.message().to_string())?;
    let mut lines = Vec::new();
    let mut truncated = false;
    diff.print(DiffFormat::Patch, |_delta, _hunk, line| {
        if lines.len() >= MAX_DIFF_LINES {
            truncated = true;
            return false;
        }
        let text = String::from_utf8_lossy(line.content()).trim_matches('\n').to_string();
        let mark = match line.origin() {
            '+' | '-' | ' ' => line.origin().to_string(),
            _ => String::new(),
        };
        lines.push(format!("{mark}{text}"));
        true
    })
    .or_else(|e| if truncated { Ok(()) } else { Err(e.message().to_string()) })?;
    if truncated {
        lines.push(format!("… (diff cut at {MAX_DIFF_LINES} lines)"));
    }
    Ok(lines)
}

/// The diagnosis of one deployment.
pub fn diagnose(controller: &Controller, record: &DeploymentRecord, repos: &[RepoConfig], state_dir: &Path) -> Value {
    let entry = controller.store.app(&record.app).ok().flatten();
    let last_good = entry.as_ref().and_then(|e| e.applied.commit.clone()).filter(|c| c != &record.commit);
    let diff = match repos.iter().find(|r| r.name == record.app.repo) {
        Some(repo) => {
            app_diff(&crate::runtime::source::mirror_dir(state_dir, repo), last_good.as_deref(), &record.commit, &record.app.prefix)
        }
        None => Err(format!("repository '{}' is not tracked by this server", record.app.repo)),
    };
    let summary = match (&record.outcome, &record.cause) {
        (Some(o), Some(c)) => format!("deployment {} of {} ended as {}: {c}", record.id, record.app.prefix, o.as_str()),
        (Some(o), None) => format!("deployment {} of {} ended as {}", record.id, record.app.prefix, o.as_str()),
        (None, _) => format!("deployment {} of {} is in phase {}", record.id, record.app.prefix, record.phase.name()),
    };
    json!({
        "deployment": record.id,
        "app": record.app.prefix,
        "commit": record.commit,
        "summary": summary,
        "cause": record.cause.as_ref().map(ToString::to_string),
        "cause_type": record.cause.as_ref().map(|c| c.label()),
        "evidence": record.evidence,
        "last_good_commit": last_good,
        "diff": diff.as_ref().ok(),
        "diff_error": diff.as_ref().err(),
        "next_step": gitmoxi_deploy::advice::next_step(record),
        "timeline": record.timeline.iter().rev().take(15).rev().map(|e| e.message.clone()).collect::<Vec<_>>(),
    })
}
