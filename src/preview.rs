//! What merging or deploying a branch's newest commit would do, without doing it: fetch the
//! newest commit into the mirror under preview refs (the source loop's head stays where it is),
//! render it in the same memory-capped workers as the source loop, and compare each app with
//! what gitmoxi applied (gmctl `commit dryrun` and `commit riskiq`).

use crate::config::RepoConfig;
use crate::controller::Controller;
use crate::git::GitSource;
use gitmoxi_deploy::risk::{self, AppChange, AppRisk};
use gitmoxi_deploy::spec::{load_snapshot, AppKind, AppSpec, DesiredApp, Identity, RenderContext, Snapshot};
use std::path::PathBuf;
use std::sync::Arc;

/// The newest commit of a branch, fetched but not loaded.
pub struct Fetched {
    /// The branch's newest commit.
    pub latest: String,
    /// The head gitmoxi loaded last (what it deploys now), if any.
    pub last_known: Option<String>,
    /// The bare mirror holding both.
    pub mirror: PathBuf,
}

/// Fetches the branch's newest commit into the mirror under preview refs.
pub async fn fetch_newest(
    controller: &Controller,
    state_dir: &std::path::Path,
    repo: &RepoConfig,
    branch: &str,
) -> Result<Fetched, String> {
    let token = match &repo.token {
        Some(from) => Some(controller.credentials.token(from).await.map_err(|e| format!("no token for the fetch: {e}"))?),
        None => None,
    };
    let mirror = crate::source::mirror_dir(state_dir, repo);
    let source = GitSource::for_preview(&repo.url, branch, mirror.clone(), token);
    let latest = tokio::task::spawn_blocking(move || source.fetch())
        .await
        .map_err(|e| format!("the fetch task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    let last_known = controller.head(&repo.name, branch).map(|h| h.commit.clone());
    Ok(Fetched { latest, last_known, mirror })
}

/// Renders a fetched commit as the source loop would (through the render workers when set).
pub async fn render(controller: &Arc<Controller>, mirror: PathBuf, commit: String) -> Result<Snapshot, String> {
    let ctx = RenderContext { default_region: controller.settings.default_region.clone(), limits: controller.settings.render_limits };
    let worker = controller.settings.render_worker.clone();
    tokio::task::spawn_blocking(move || {
        let tree = crate::git::source::GitTree::open(&mirror, &commit).map_err(|e| e.to_string())?;
        match &worker {
            Some(worker) => crate::render_worker::load_sandboxed(worker, &tree, &mirror, Some(&commit), &ctx),
            None => Ok(load_snapshot(&tree, &ctx)),
        }
    })
    .await
    .map_err(|e| format!("the render task failed: {e}"))?
}

/// One app's assessment beside the files it concerns.
pub struct Assessed {
    /// The app's folder.
    pub prefix: String,
    /// The risk.
    pub risk: AppRisk,
}

/// The risk of every app of `snapshot` against what gitmoxi applied for this repository and
/// branch; apps applied but gone from the snapshot are deletes (or moves, when another folder
/// now holds the same service or function). Unchanged apps are left out.
pub fn assess(controller: &Controller, repo: &str, branch: &str, snapshot: &Snapshot) -> Result<Vec<Assessed>, String> {
    let entries = controller.store.apps().map_err(|e| e.to_string())?;
    let own = controller.settings.own_account.as_deref();
    let mut applied: Vec<(String, AppSpec, Identity)> = Vec::new();
    for entry in entries.iter().filter(|e| e.key.repo == repo && e.key.branch == branch) {
        let Some(identity) = entry.applied.identity.clone() else { continue };
        let Some(document) = controller.store.applied_document(&entry.key).map_err(|e| e.to_string())? else { continue };
        let spec = match entry.kind {
            AppKind::Ecs => serde_json::from_value(document).map(AppSpec::Ecs),
            AppKind::Lambda => serde_json::from_value(document).map(AppSpec::Lambda),
        };
        match spec {
            Ok(spec) => applied.push((entry.key.prefix.clone(), spec, identity)),
            Err(e) => tracing::warn!(app = %entry.key.prefix, error = %e, "the applied document is unreadable; the app is assessed as new"),
        }
    }
    let present: Vec<(&String, &DesiredApp)> = snapshot.apps.iter().filter_map(|(p, a)| a.as_ref().ok().map(|a| (p, a))).collect();
    let mut changes = Vec::new();
    for (prefix, app) in &present {
        let before = applied.iter().find(|(p, ..)| p == *prefix).map(|(_, spec, _)| spec);
        changes.push(AppChange::Present { prefix, before, after: &app.spec, identity: &app.identity });
    }
    for (prefix, app) in &snapshot.apps {
        if let Err(invalid) = app {
            changes.push(AppChange::Invalid { prefix, errors: invalid.errors.iter().map(ToString::to_string).collect() });
        }
    }
    for (prefix, spec, identity) in &applied {
        if snapshot.apps.contains_key(prefix) {
            continue;
        }
        let moved_to = present.iter().find(|(_, a)| a.identity.in_account(own) == identity.in_account(own)).map(|(p, _)| p.as_str());
        changes.push(AppChange::Deleted { prefix, before: spec, identity, moved_to });
    }
    Ok(risk::assess(&changes)
        .into_iter()
        .filter(|r| r.kind != risk::RiskChangeKind::Unchanged)
        .map(|risk| Assessed { prefix: risk.prefix.clone(), risk })
        .collect())
}
