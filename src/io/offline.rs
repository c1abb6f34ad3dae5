//! Offline tools on a checkout: `validate`, `render`, `plan` (no server, no AWS).
//!
//! Must never write to the checkout. `validate` and `render` without `--rev` read the work tree
//! (uncommitted edits included); `plan` and `render --rev` read commits. Templates render in
//! memory-capped render workers (this binary, see [`crate::io::render_worker`]), so one template
//! cannot exhaust the machine's memory.

use crate::io::git::{DirTree, GitTree};
use gitmoxi_deploy::intent::{applied_as_of, intents_of_head, AppIntent, Intent, PrunePolicy};
use gitmoxi_deploy::spec::{load_snapshot, Diagnostic, FileTree, RenderContext};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One app's validation result (the `--json` shape of `gitmoxi validate`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Validation {
    pub app: String,
    pub kind: String,
    pub ok: bool,
    pub errors: Vec<Diagnostic>,
    /// What is suspicious but not wrong (unknown fields, …): the app still deploys.
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("cannot read {path}; give the path of a checkout of the deployment repository")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Git(#[from] crate::io::git::GitError),
    #[error("no app with prefix '{prefix}' in {place}; apps there: {known}")]
    UnknownApp { prefix: String, place: String, known: String },
    #[error("{0}")]
    Render(String),
}

/// Loads `rev` (or the work tree) of the repository at `path` through render workers; in
/// process when this binary cannot be found. `keep_rendered`: every rendered document too
/// (`render` prints them; `validate` and `plan` need only the parsed apps).
fn load(path: &Path, rev: Option<&str>, ctx: &RenderContext, keep_rendered: bool) -> Result<gitmoxi_deploy::spec::Snapshot, OfflineError> {
    let tree = tree_for(path, rev)?;
    match std::env::current_exe() {
        Ok(worker) if worker.file_stem().is_some_and(|s| s == "gitmoxi") => {
            crate::io::render_worker::load_sandboxed(&worker, tree.as_ref(), path, rev, ctx, keep_rendered).map_err(OfflineError::Render)
        }
        Ok(_) | Err(_) => Ok(load_snapshot(tree.as_ref(), ctx)),
    }
}

/// The files of `rev` of the repository at `path`, or of its work tree (uncommitted edits).
pub(crate) fn tree_for(path: &Path, rev: Option<&str>) -> Result<Box<dyn FileTree>, OfflineError> {
    match rev {
        Some(rev) => Ok(Box::new(GitTree::open(path, rev)?)),
        None => Ok(Box::new(DirTree::open(path).map_err(|source| OfflineError::Io { path: path.display().to_string(), source })?)),
    }
}

/// Validates every app of the work tree at `path`; also returns repository warnings.
pub fn validate(path: &Path, ctx: &RenderContext) -> Result<(Vec<Validation>, Vec<Diagnostic>), OfflineError> {
    let snapshot = load(path, None, ctx, false)?;
    let plan = intents_of_head(&snapshot, &BTreeMap::new(), PrunePolicy::default(), &BTreeSet::new(), None);
    let conflicts: BTreeMap<&str, &AppIntent> = plan.iter().filter(|e| e.intent == Intent::Conflict).map(|e| (e.app.as_str(), e)).collect();
    let mut out = Vec::new();
    for (prefix, app) in &snapshot.apps {
        let (kind, mut errors, warnings, files) = match app {
            Ok(a) => (a.kind, Vec::new(), a.warnings.clone(), &a.files),
            Err(i) => (i.kind, i.errors.clone(), Vec::new(), &i.files),
        };
        if let Some(c) = conflicts.get(prefix.as_str()) {
            let file = files.files.values().next().cloned().unwrap_or_else(|| prefix.clone());
            errors.push(Diagnostic::new(file, c.reason.clone()));
        }
        out.push(Validation { app: prefix.clone(), kind: kind.as_str().to_string(), ok: errors.is_empty(), errors, warnings });
    }
    // the repository's own warnings (lonely files and the like); each app's are in its result
    Ok((out, snapshot.warnings.clone()))
}

/// The rendered documents of one app, keyed by file kind.
pub fn render(
    path: &Path,
    prefix: &str,
    rev: Option<&str>,
    ctx: &RenderContext,
) -> Result<Result<serde_json::Value, Vec<Diagnostic>>, OfflineError> {
    let snapshot = load(path, rev, ctx, true)?;
    let prefix = prefix.trim_end_matches('_');
    match snapshot.apps.get(prefix) {
        Some(Ok(app)) => {
            let docs: serde_json::Map<String, serde_json::Value> = app
                .rendered
                .iter()
                .map(|(k, v)| (k.suffix().trim_start_matches('_').trim_end_matches(".json").to_string(), v.clone()))
                .collect();
            Ok(Ok(serde_json::json!({
                "app": app.prefix,
                "kind": app.kind.as_str(),
                "identity": app.identity.to_string(),
                "fingerprint": app.fingerprint,
                "documents": docs,
            })))
        }
        Some(Err(invalid)) => Ok(Err(invalid.errors.clone())),
        None => Err(OfflineError::UnknownApp {
            prefix: prefix.to_string(),
            place: rev.map_or_else(|| path.display().to_string(), |r| format!("{} at {r}", path.display())),
            known: snapshot.apps.keys().take(20).cloned().collect::<Vec<_>>().join(", "),
        }),
    }
}

/// What a reconcile at `to` would do if everything at `from` had been applied.
pub fn plan(path: &Path, from: Option<&str>, to: &str, ctx: &RenderContext, policy: PrunePolicy) -> Result<Vec<AppIntent>, OfflineError> {
    let to_snapshot = load(path, Some(to), ctx, false)?;
    let from_snapshot = from.map(|rev| load(path, Some(rev), ctx, false)).transpose()?;
    let applied = from_snapshot.as_ref().map(applied_as_of).unwrap_or_default();
    let mut entries = intents_of_head(&to_snapshot, &applied, policy, &BTreeSet::new(), None);
    // the order of the changes (issue 26): a delete's `dependsOn` is the one it had in `from`
    let deleted_depends_on: BTreeMap<String, Vec<String>> =
        from_snapshot.iter().flat_map(|s| s.valid()).map(|a| (a.prefix.clone(), a.depends_on().to_vec())).collect();
    gitmoxi_deploy::release::order::assign_waves(&to_snapshot, &mut entries, &deleted_depends_on);
    Ok(entries)
}
