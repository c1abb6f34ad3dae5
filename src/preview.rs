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

/// A source on the repository's mirror that fetches under preview refs, with its credentials.
async fn preview_source(
    controller: &Controller,
    state_dir: &std::path::Path,
    repo: &RepoConfig,
    branch: &str,
) -> Result<GitSource, String> {
    let source = GitSource::for_preview(&repo.url, branch, crate::source::mirror_dir(state_dir, repo), None);
    crate::source::authorize(controller, repo, &source).await?;
    Ok(source)
}

/// Fetches the branch's newest commit into the mirror under preview refs.
pub async fn fetch_newest(
    controller: &Controller,
    state_dir: &std::path::Path,
    repo: &RepoConfig,
    branch: &str,
) -> Result<Fetched, String> {
    let source = preview_source(controller, state_dir, repo, branch).await?;
    let mirror = source.mirror().to_path_buf();
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
            Some(worker) => crate::render_worker::load_sandboxed(worker, &tree, &mirror, Some(&commit), &ctx, false),
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

/// What merging a commit into a tracked branch would do, against the live state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanPreview {
    /// The repository's name.
    pub repo: String,
    /// The branch it would merge into.
    pub branch: String,
    /// The branch's head gitmoxi deploys now.
    pub base: Option<String>,
    /// The commit previewed.
    pub to: String,
    /// Every app with something to do or to know, riskiest first.
    pub apps: Vec<PreviewApp>,
}

/// One app of a preview.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreviewApp {
    pub prefix: String,
    /// deploy, delete, move, held, error, conflict (or none, with drift known).
    pub action: &'static str,
    /// Where it deploys, when known.
    pub identity: Option<String>,
    /// Why, as the planner says it.
    pub reason: String,
    /// What changes in AWS and how risky it is (deploys, deletes, moves).
    pub risk: Option<AppRisk>,
    /// Drift gitmoxi found at its last comparison with AWS.
    pub drift: Option<String>,
}

/// The preview of `snapshot` (the commit `to`) merged into `branch` of `repo`: the planner's
/// intents with the operator's commands left out, each deploy with what changes in AWS.
pub fn plan_preview(
    controller: &Controller,
    repo: &RepoConfig,
    branch: &str,
    snapshot: &Snapshot,
    to: &str,
) -> Result<PlanPreview, String> {
    let policy = crate::controller::RepoPolicy { max_prune: repo.max_prune, max_prune_percent: repo.max_prune_percent, drift: repo.drift };
    let scoped = gitmoxi_deploy::scope::restrict(snapshot.clone(), &repo.scope, controller.settings.own_account.as_deref());
    let snapshot = &scoped;
    let (_, intents) = controller.intents_of(&repo.name, branch, snapshot, policy, false).map_err(|e| e.to_string())?;
    let mut risks: std::collections::BTreeMap<String, AppRisk> =
        assess(controller, &repo.name, branch, snapshot)?.into_iter().map(|a| (a.prefix, a.risk)).collect();
    let drift_of = |prefix: &str| {
        let key = gitmoxi_deploy::record::AppKey { repo: repo.name.clone(), branch: branch.to_string(), prefix: prefix.to_string() };
        controller.drift_found(&key)
    };
    let mut apps: Vec<PreviewApp> = intents
        .into_iter()
        .filter_map(|i| {
            let drift = drift_of(&i.app);
            let risk = risks.remove(&i.app);
            let keep = i.intent != gitmoxi_deploy::intent::Intent::Keep || drift.is_some();
            keep.then(|| PreviewApp { action: i.intent.as_str(), identity: i.identity, reason: i.reason, risk, drift, prefix: i.app })
        })
        .collect();
    apps.sort_by(|a, b| {
        let score = |x: &PreviewApp| x.risk.as_ref().map_or(0, |r| r.score);
        score(b).cmp(&score(a)).then_with(|| a.prefix.cmp(&b.prefix))
    });
    let base = controller.head(&repo.name, branch).map(|h| h.commit.clone());
    Ok(PlanPreview { repo: repo.name.clone(), branch: branch.to_string(), base, to: to.to_string(), apps })
}

/// The marker that finds a preview's comment again.
pub const MARKER: &str = "<!-- gitmoxi-plan-preview -->";

/// The preview as Markdown (a pull-request comment; `gitmoxi plan --server` prints it too).
pub fn markdown(p: &PlanPreview) -> String {
    let short = |c: &str| gitmoxi_deploy::strategy::short_commit(c).to_string();
    let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
    let mut out = format!("{MARKER}\n### gitmoxi plan: merging `{}` into `{}`\n\n", short(&p.to), p.branch);
    out.push_str(&match &p.base {
        Some(b) => format!("Compared with what gitmoxi applied from `{}` (head `{}`), and the drift it knows of.\n\n", p.repo, short(b)),
        None => format!("`{}`@`{}` has no head loaded yet: everything is compared with nothing applied.\n\n", p.repo, p.branch),
    });
    if p.apps.is_empty() {
        out.push_str("Nothing changes in AWS.\n");
        return out;
    }
    let score = gitmoxi_deploy::risk::commit_score(&p.apps.iter().filter_map(|a| a.risk.clone()).collect::<Vec<_>>());
    out.push_str(&format!(
        "**{} app(s)** — risk **{}** ({score}/100)\n\n| app | action | where | risk |\n|---|---|---|---|\n",
        p.apps.len(),
        gitmoxi_deploy::risk::RiskLevel::of(score).as_str()
    ));
    for a in &p.apps {
        let risk = a.risk.as_ref().map_or_else(|| "—".to_string(), |r| format!("{} ({})", r.level.as_str(), r.score));
        let place = a.risk.as_ref().map(|r| r.target.clone()).filter(|t| !t.is_empty()).or_else(|| a.identity.clone());
        out.push_str(&format!("| `{}` | {} | {} | {risk} |\n", a.prefix, a.action, cell(place.as_deref().unwrap_or("—"))));
    }
    for a in &p.apps {
        out.push_str(&format!("\n<details><summary><code>{}</code> — {}</summary>\n\n", a.prefix, a.action));
        out.push_str(&format!("{}\n", cell(&a.reason)));
        if let Some(r) = &a.risk {
            for reason in &r.reasons {
                out.push_str(&format!("\n- {} (+{}: {})", cell(&reason.change), reason.weight, reason.why));
            }
            out.push('\n');
        }
        if let Some(d) = &a.drift {
            out.push_str(&format!("\n⚠️ drift found at the last comparison with AWS: {}\n", cell(d)));
        }
        out.push_str("\n</details>\n");
    }
    out
}

/// Fetches `rev` of a tracked repository without loading it, renders it and previews merging
/// it into `branch`. `rev`: a branch of the remote, `pull/N` (GitHub) / `merge-requests/N`
/// (GitLab), a full `refs/…` name, or a commit id already fetched (the branch is fetched first).
pub async fn preview_rev(
    controller: &Arc<Controller>,
    state_dir: &std::path::Path,
    repo: &RepoConfig,
    branch: &str,
    rev: &str,
) -> Result<PlanPreview, String> {
    let source = preview_source(controller, state_dir, repo, branch).await?;
    let mirror = source.mirror().to_path_buf();
    let rev = rev.trim().to_string();
    let commit = tokio::task::spawn_blocking(move || -> Result<String, String> {
        if crate::git::changes::is_commit_id(&rev) {
            source.fetch().map_err(|e| e.to_string())?;
            return crate::git::changes::parent_of(source.mirror(), &rev).map(|(full, _)| full);
        }
        let remote_ref = match rev.as_str() {
            r if r.starts_with("refs/") => r.to_string(),
            r if r.starts_with("pull/") || r.starts_with("merge-requests/") => format!("refs/{r}/head"),
            r => format!("refs/heads/{r}"),
        };
        source.fetch_ref(&remote_ref).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("the fetch task failed: {e}"))??;
    let snapshot = render(controller, mirror, commit.clone()).await?;
    plan_preview(controller, repo, branch, &snapshot, &commit)
}
