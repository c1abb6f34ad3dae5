//! What merging or deploying a branch's newest commit would do, without doing it: fetch the
//! newest commit into the mirror under preview refs (the source loop's head stays where it is),
//! render it in the same memory-capped workers as the source loop, and compare each app with
//! what gitmoxi applied (gmctl `commit dryrun` and `commit riskiq`).
//!
//! Bounds (issue 27):
//! - every render here takes one of the render slots previews, riskiq and dryrun share
//!   ([`crate::io::renders`]), and stops — its worker killed with its process group — when its
//!   caller lets go of it (a timeout, a newer push to the pull request, a client gone);
//! - a pull request (or another ref than the branch) is fetched into a scratch repository of its
//!   own under `STATE/previews/`, which reads the mirror's objects (only what the mirror lacks
//!   crosses the network), may hold at most [`MAX_PREVIEW_FETCH_BYTES`], and is removed when the
//!   preview ends; what a crash leaves there is removed after [`LEFTOVER_AFTER`]. The mirror never
//!   holds a pull request's objects, and the preview refs earlier versions left in it are pruned.

use crate::io::git::GitSource;
use crate::io::renders::{Permit, RenderError};
use crate::runtime::config::RepoConfig;
use crate::runtime::controller::Controller;
use gitmoxi_deploy::risk::{self, AppChange, AppRisk};
use gitmoxi_deploy::spec::{load_snapshot, AppKind, AppSpec, DesiredApp, Identity, RenderContext, Snapshot};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// The most a preview's fetch may bring beside the mirror's objects.
pub const MAX_PREVIEW_FETCH_BYTES: u64 = 256 << 20;
/// A scratch repository this old is a crash's leftover: a preview lasts minutes.
pub const LEFTOVER_AFTER: Duration = Duration::from_secs(3600);
/// Where the mirror keeps the branch heads a dry run or an assessment fetched.
const PREVIEW_REFS: &str = "refs/gitmoxi-preview/";

/// The newest commit of a branch, fetched but not loaded.
pub struct Fetched {
    /// The branch's newest commit.
    pub latest: String,
    /// The head gitmoxi loaded last (what it deploys now), if any.
    pub last_known: Option<String>,
    /// The bare mirror holding both.
    pub mirror: PathBuf,
}

/// A source fetching into `dir` (the mirror, or a scratch repository) under preview refs, with
/// the repository's credentials.
async fn preview_source(controller: &Controller, repo: &RepoConfig, branch: &str, dir: PathBuf) -> Result<GitSource, String> {
    let source = GitSource::for_preview(&repo.url, branch, dir, None);
    crate::runtime::source::authorize(controller, repo, &source).await?;
    Ok(source)
}

/// Fetches the branch's newest commit into the mirror under preview refs.
pub async fn fetch_newest(
    controller: &Controller,
    state_dir: &std::path::Path,
    repo: &RepoConfig,
    branch: &str,
) -> Result<Fetched, String> {
    let source = preview_source(controller, repo, branch, crate::runtime::source::mirror_dir(state_dir, repo)).await?;
    let mirror = source.mirror().to_path_buf();
    let latest = tokio::task::spawn_blocking(move || source.fetch())
        .await
        .map_err(|e| format!("the fetch task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    let last_known = controller.head(&repo.name, branch).map(|h| h.commit.clone());
    Ok(Fetched { latest, last_known, mirror })
}

/// Where a fetched commit is read: the mirror, or a preview's scratch repository (kept for as
/// long as a render reads it).
#[derive(Debug, Clone)]
pub enum Place {
    /// The repository's mirror (a branch's commits).
    Mirror(PathBuf),
    /// A pull request's (or another ref's) own repository, removed once the last render ends.
    Scratch(Arc<Scratch>),
}

impl Place {
    pub fn path(&self) -> &Path {
        match self {
            Place::Mirror(path) => path,
            Place::Scratch(scratch) => scratch.path(),
        }
    }
}

/// Renders a fetched commit as the source loop would (through the render workers when set), in
/// one of the shared render slots (waiting at most [`crate::io::renders::QUEUE_WAIT`] for it).
pub async fn render(controller: &Arc<Controller>, mirror: PathBuf, commit: String) -> Result<Snapshot, RenderError> {
    let cancel = CancellationToken::new();
    let permit = crate::io::renders::permit(crate::io::renders::QUEUE_WAIT, &cancel).await?;
    render_in(controller, Place::Mirror(mirror), commit, permit, &cancel).await
}

/// Renders `commit` of `place` in the render slot `permit`, until `cancel` fires or this future
/// is dropped: either kills the worker. The slot is given back when the worker is dead.
pub async fn render_in(
    controller: &Arc<Controller>,
    place: Place,
    commit: String,
    permit: Permit,
    cancel: &CancellationToken,
) -> Result<Snapshot, RenderError> {
    let ctx = RenderContext { default_region: controller.settings.default_region.clone(), limits: controller.settings.render_limits };
    let worker = controller.settings.render_worker.clone();
    let cancel = cancel.child_token();
    // dropped with this future (a timeout, a newer push, a client gone): the worker is killed
    let _stop = cancel.clone().drop_guard();
    tokio::task::spawn_blocking(move || {
        let _slot = permit;
        let path = place.path();
        let tree = crate::io::git::source::GitTree::open(path, &commit).map_err(|e| RenderError::Failed(e.to_string()))?;
        match &worker {
            Some(worker) => crate::io::render_worker::load_sandboxed_until(worker, &tree, path, Some(&commit), &ctx, false, &cancel),
            None => Ok(load_snapshot(&tree, &ctx)),
        }
    })
    .await
    .map_err(|e| RenderError::Failed(format!("the render task failed: {e}")))?
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
    /// What AWS holds now that the files change (issue 23: the one comparison against live
    /// state): each differing field with both values; `None` when it could not be looked at
    /// (no deploy, AWS did not answer in time, too many apps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveChange>,
    /// What the planner warns of (e.g. a target group another app shares).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The wave it goes in (`dependsOn`, issue 26), from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wave: Option<usize>,
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
    let policy = crate::runtime::controller::RepoPolicy {
        max_prune: repo.max_prune,
        max_prune_percent: repo.max_prune_percent,
        drift: repo.drift,
        adopt_untagged: repo.adopt_untagged,
    };
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
            keep.then(|| PreviewApp {
                action: i.intent.as_str(),
                identity: i.identity,
                reason: i.reason,
                risk,
                drift,
                live: None,
                warnings: i.warnings,
                wave: i.wave,
                prefix: i.app,
            })
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
    let mut out = format!("{MARKER}\n### gitmoxi plan: merging {} into {}\n\n", md_code(&short(&p.to)), md_code(&p.branch));
    out.push_str(&match &p.base {
        Some(b) => format!(
            "Compared with what gitmoxi applied from {} (head {}), and the drift it knows of.\n\n",
            md_code(&p.repo),
            md_code(&short(b))
        ),
        None => {
            format!("{}@{} has no head loaded yet: everything is compared with nothing applied.\n\n", md_code(&p.repo), md_code(&p.branch))
        }
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
        out.push_str(&format!("| {} | {} | {} | {risk} |\n", md_code(&a.prefix), a.action, md_text(place.as_deref().unwrap_or("—"))));
    }
    let last_wave = p.apps.iter().filter_map(|a| a.wave).max().unwrap_or(0);
    if last_wave > 1 {
        // the order dependsOn sets: each wave starts once the one before it succeeded
        out.push_str("\n**Order** (`dependsOn`):");
        for wave in 1..=last_wave {
            let apps: Vec<String> = p.apps.iter().filter(|a| a.wave == Some(wave)).map(|a| md_code(&a.prefix)).collect();
            out.push_str(&format!(" {wave}. {}{}", apps.join(", "), if wave < last_wave { " →" } else { "" }));
        }
        out.push('\n');
    }
    for a in &p.apps {
        out.push_str(&format!("\n<details><summary><code>{}</code> — {}</summary>\n\n", html_text(&a.prefix), a.action));
        out.push_str(&format!("{}\n", md_text(&a.reason)));
        if let Some(r) = &a.risk {
            for reason in &r.reasons {
                out.push_str(&format!("\n- {} (+{}: {})", md_text(&reason.change), reason.weight, md_text(&reason.why)));
            }
            out.push('\n');
        }
        match &a.live {
            Some(live) if live.creates => out.push_str("\nNot in AWS yet: it is created.\n"),
            Some(live) if live.fields.is_empty() => {
                out.push_str("\nAWS already holds every field the files set; the task definition or code decides the rest.\n");
            }
            Some(live) => {
                let fields: Vec<String> = live.fields.iter().map(|f| md_code(f)).collect();
                out.push_str(&format!("\nFields AWS holds otherwise today: {}\n", fields.join(", ")));
            }
            None => {}
        }
        for warning in &a.warnings {
            out.push_str(&format!("\n⚠️ {}\n", md_text(warning)));
        }
        if a.drift.is_some() {
            // what differs stays in gitmoxi (the API and the page, behind the token), not in a PR comment
            out.push_str("\n⚠️ gitmoxi found drift at its last comparison with AWS: see the app in gitmoxi (`gitmoxi status` or its page) for what differs.\n");
        }
        out.push_str("\n</details>\n");
    }
    out
}

/// Text from a commit, a file or AWS as Markdown that shows as itself (issue 27): the
/// characters Markdown acts on (emphasis, code, links, images, HTML, headings, tables) are
/// backslash-escaped, `://` is broken so no URL is linked, a zero-width space follows every `@`
/// (no mention), on one line. Other punctuation stays readable.
pub fn md_text(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + 8);
    for c in t.chars() {
        match c {
            '@' => out.push_str("@\u{200B}"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() || c.is_whitespace() => out.push(' '),
            c => out.push(c),
        }
    }
    out.replace("://", ":\\/\\/")
}

/// A name as inline code whatever backticks it holds; `|` escaped for table cells.
fn md_code(t: &str) -> String {
    let t: String = t.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let longest = t.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if t.is_empty() || t.starts_with('`') || t.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{}{pad}{fence}", t.replace('|', "\\|"))
}

/// Text inside HTML (`<summary>`).
fn html_text(t: &str) -> String {
    t.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            '@' => "@\u{200B}".to_string(),
            c if c.is_control() => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod markdown_tests {
    use super::{html_text, md_code, md_text};

    #[test]
    fn names_from_files_cannot_make_links_mentions_or_break_the_table() {
        assert_eq!(md_text("[click](https://evil) @channel"), "\\[click\\](https:\\/\\/evil) @\u{200B}channel");
        assert_eq!(md_text("image of container web: nginx:1 → nginx:2"), "image of container web: nginx:1 → nginx:2", "readable");
        assert_eq!(md_code("a|b"), "`a\\|b`");
        assert_eq!(md_code("x`y"), "``x`y``");
        assert_eq!(html_text("<img src=x onerror=alert(1)>"), "&lt;img src=x onerror=alert(1)&gt;");
    }
}

/// The ref of the remote that `rev` names: `pull/N` (GitHub), `merge-requests/N` (GitLab), a
/// full `refs/…` name, or else a branch.
pub fn remote_ref(rev: &str) -> String {
    match rev {
        r if r.starts_with("refs/") => r.to_string(),
        r if r.starts_with("pull/") || r.starts_with("merge-requests/") => format!("refs/{r}/head"),
        r => format!("refs/heads/{r}"),
    }
}

/// A commit fetched to preview, and where it is read.
pub struct FetchedRev {
    pub commit: String,
    pub place: Place,
}

/// Fetches `rev` of a tracked repository without loading it: a commit id through the branch (into
/// the mirror), anything else into a scratch repository of its own ([`Scratch`]).
pub async fn fetch_rev(
    controller: &Controller,
    state_dir: &Path,
    repo: &RepoConfig,
    branch: &str,
    rev: &str,
) -> Result<FetchedRev, String> {
    let rev = rev.trim().to_string();
    let mirror = crate::runtime::source::mirror_dir(state_dir, repo);
    if crate::io::git::changes::is_commit_id(&rev) {
        let source = preview_source(controller, repo, branch, mirror.clone()).await?;
        let commit = tokio::task::spawn_blocking(move || -> Result<String, String> {
            source.fetch().map_err(|e| e.to_string())?;
            crate::io::git::changes::parent_of(source.mirror(), &rev).map(|(full, _)| full)
        })
        .await
        .map_err(|e| format!("the fetch task failed: {e}"))??;
        return Ok(FetchedRev { commit, place: Place::Mirror(mirror) });
    }
    let scratch = Scratch::new(state_dir);
    let source = preview_source(controller, repo, branch, scratch.path().to_path_buf()).await?.with_fetch_limit(MAX_PREVIEW_FETCH_BYTES);
    let (state_dir, branches) = (state_dir.to_path_buf(), repo.branches.clone());
    // the scratch travels with the fetch: a preview dropped meanwhile removes it once the fetch ends
    let (scratch, commit) = tokio::task::spawn_blocking(move || -> Result<(Scratch, String), String> {
        sweep(&state_dir, &mirror, &branches);
        scratch.prepare(&mirror)?;
        let commit = source.fetch_ref(&remote_ref(&rev)).map_err(|e| e.to_string())?;
        let brought = size_of(scratch.path());
        if brought > MAX_PREVIEW_FETCH_BYTES {
            return Err(too_big(&rev, brought));
        }
        Ok((scratch, commit))
    })
    .await
    .map_err(|e| format!("the fetch task failed: {e}"))??;
    Ok(FetchedRev { commit, place: Place::Scratch(Arc::new(scratch)) })
}

fn too_big(rev: &str, bytes: u64) -> String {
    format!(
        "'{rev}' brought {} MiB the mirror does not have, more than a preview may fetch ({} MiB): preview it on a checkout with `gitmoxi plan`, or keep large files out of the deployment repository",
        bytes >> 20,
        MAX_PREVIEW_FETCH_BYTES >> 20
    )
}

/// Fetches `rev` of a tracked repository without loading it, renders it and previews merging
/// it into `branch`. `rev`: a branch of the remote, `pull/N` (GitHub) / `merge-requests/N`
/// (GitLab), a full `refs/…` name, or a commit id already fetched (the branch is fetched first).
/// Waits at most [`crate::io::renders::QUEUE_WAIT`] for a render slot, held for the fetch and render.
pub async fn preview_rev(
    controller: &Arc<Controller>,
    state_dir: &std::path::Path,
    repo: &RepoConfig,
    branch: &str,
    rev: &str,
) -> Result<PlanPreview, RenderError> {
    let cancel = CancellationToken::new();
    let permit = crate::io::renders::permit(crate::io::renders::QUEUE_WAIT, &cancel).await?;
    preview_with(controller, state_dir, repo, branch, rev, permit, &cancel).await
}

/// [`preview_rev`] in the render slot `permit`, until `cancel` fires (a newer push to the pull
/// request, its close) or this future is dropped.
pub async fn preview_with(
    controller: &Arc<Controller>,
    state_dir: &std::path::Path,
    repo: &RepoConfig,
    branch: &str,
    rev: &str,
    permit: Permit,
    cancel: &CancellationToken,
) -> Result<PlanPreview, RenderError> {
    let fetched = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(RenderError::Cancelled),
        fetched = fetch_rev(controller, state_dir, repo, branch, rev) => fetched?,
    };
    let snapshot = render_in(controller, fetched.place, fetched.commit.clone(), permit, cancel).await?;
    let mut preview = plan_preview(controller, repo, branch, &snapshot, &fetched.commit).map_err(RenderError::Failed)?;
    tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(RenderError::Cancelled),
        () = add_live_changes(controller, &mut preview, &snapshot) => {}
    }
    Ok(preview)
}

/// What a deploy changes in AWS, field by field, from a look at what AWS holds now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LiveChange {
    /// The service or function does not exist yet: everything is created.
    pub creates: bool,
    /// Each field the files set that AWS holds otherwise, with both values (API, CLI, page).
    pub differences: Vec<String>,
    /// The same fields, by name only (what a pull-request comment shows: no live value leaves
    /// gitmoxi through a forge).
    pub fields: Vec<String>,
}

/// How many apps of one preview are looked up in AWS, and how long each look may take: a
/// preview is bounded work whatever the commit holds.
const LIVE_APPS: usize = 50;
const LIVE_LOOK: Duration = Duration::from_secs(5);

/// Fills `live` of each deploy of `preview` from a look at AWS (bounded by [`LIVE_APPS`] and
/// [`LIVE_LOOK`]; a look that fails leaves `None`, never an error: the preview still answers).
async fn add_live_changes(controller: &Controller, preview: &mut PlanPreview, snapshot: &Snapshot) {
    let deploys: Vec<String> =
        preview.apps.iter().filter(|a| a.action == gitmoxi_deploy::intent::Intent::Deploy.as_str()).map(|a| a.prefix.clone()).collect();
    let mut found = live_changes(controller, snapshot, &deploys).await;
    for app in &mut preview.apps {
        app.live = found.remove(&app.prefix);
    }
}

/// The live comparison of each of `prefixes` (at most [`LIVE_APPS`], each look within
/// [`LIVE_LOOK`]); an app AWS could not be asked about is left out.
pub(crate) async fn live_changes(
    controller: &Controller,
    snapshot: &Snapshot,
    prefixes: &[String],
) -> std::collections::BTreeMap<String, LiveChange> {
    let mut out = std::collections::BTreeMap::new();
    for prefix in prefixes.iter().take(LIVE_APPS) {
        let Some(Ok(desired)) = snapshot.apps.get(prefix) else { continue };
        match tokio::time::timeout(LIVE_LOOK, live_change(controller, desired)).await {
            Ok(Ok(live)) => {
                out.insert(prefix.clone(), live);
            }
            Ok(Err(e)) => tracing::info!(app = %prefix, error = %e, "AWS could not be looked at for a preview"),
            Err(_) => tracing::info!(app = %prefix, "AWS did not answer a preview's look within 5 s"),
        }
    }
    out
}

/// The comparison of `app`'s files with what AWS holds (`compare::ecs_service` for a service,
/// `compare::lambda_function` for a function).
async fn live_change(controller: &Controller, app: &DesiredApp) -> Result<LiveChange, crate::io::aws::AwsError> {
    let clients = controller.clients(&app.identity);
    let differences = match (&app.spec, &app.identity) {
        (AppSpec::Ecs(ecs), Identity::Ecs { cluster, service, .. }) => {
            match clients.ecs.describe_service(cluster, service).await?.filter(|s| s.is_active()) {
                None => return Ok(LiveChange { creates: true, differences: Vec::new(), fields: Vec::new() }),
                Some(observed) => gitmoxi_deploy::strategy::ecs_rolling::service_differences(&ecs.svcdef, ecs.strategy, &observed)
                    .into_iter()
                    .map(|d| (d.pointer.clone(), d.to_string()))
                    .collect::<Vec<_>>(),
            }
        }
        (AppSpec::Lambda(lambda), Identity::Lambda { function, .. }) => match clients.lambda.function(function).await? {
            None => return Ok(LiveChange { creates: true, differences: Vec::new(), fields: Vec::new() }),
            Some(observed) => gitmoxi_deploy::compare::lambda_function(&lambda.lambdadef, &observed.config)
                .into_iter()
                .map(|d| (d.split(':').next().unwrap_or_default().to_string(), d))
                .collect(),
        },
        _ => Vec::new(),
    };
    let (fields, differences) = differences.into_iter().unzip();
    Ok(LiveChange { creates: false, differences, fields })
}

/// Where scratch repositories live.
fn previews_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("previews")
}

/// A preview's own bare repository under `STATE/previews/`: it reads the mirror's objects
/// (`objects/info/alternates`) and holds the mirror's heads as refs of its own, so a fetch asks
/// only for what the mirror lacks. Removed, with all it fetched, when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// A fresh path for a scratch repository (created by [`Scratch::prepare`]).
    fn new(state_dir: &Path) -> Scratch {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Scratch { dir: previews_dir(state_dir).join(format!("{ms}-{n}")) }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Creates the repository, borrowing `mirror`'s objects and heads (when there is a mirror).
    fn prepare(&self, mirror: &Path) -> Result<(), String> {
        let cannot = |e: &dyn std::fmt::Display| {
            format!("cannot create the preview repository {}: {e}; check that the state directory is writable", self.dir.display())
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| cannot(&e))?;
        drop(git2::Repository::init_bare(&self.dir).map_err(|e| cannot(&e))?);
        let Ok(base) = git2::Repository::open_bare(mirror) else {
            // no mirror yet: the fetch brings everything (and the size bound applies to it)
            return Ok(());
        };
        let objects = std::fs::canonicalize(mirror.join("objects")).unwrap_or_else(|_| mirror.join("objects"));
        let info = self.dir.join("objects").join("info");
        std::fs::create_dir_all(&info).map_err(|e| cannot(&e))?;
        std::fs::write(info.join("alternates"), format!("{}\n", objects.display())).map_err(|e| cannot(&e))?;
        // opened again: the object database is read with its alternates from here on
        let repo = git2::Repository::open_bare(&self.dir).map_err(|e| cannot(&e))?;
        let heads = base.references().map_err(|e| cannot(&e))?;
        for head in heads.flatten() {
            let (Some(name), Some(oid)) = (head.name(), head.target()) else { continue };
            let Some(rest) = name.strip_prefix("refs/gitmoxi/") else { continue };
            // a head the fetch need not bring again; missing ones only cost transfer
            let _ = repo.reference(&format!("refs/gitmoxi-base/{rest}"), oid, true, "the mirror's head");
        }
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "a preview repository could not be removed; it is retried after an hour");
            }
        }
    }
}

/// The bytes of the files under `dir`.
fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => size_of(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// [`sweep`] for every repository at once (blocking: call it off the async threads, e.g. once at
/// start); previews sweep on their own as they run.
pub fn sweep_previews(state_dir: &Path, repos: &[RepoConfig]) {
    for repo in repos {
        sweep(state_dir, &crate::runtime::source::mirror_dir(state_dir, repo), &repo.branches);
    }
}

/// Removes the scratch repositories a crash left, and once per mirror the preview refs earlier
/// versions left in it (every `refs/gitmoxi-preview/…` but the tracked branches'). Best effort:
/// a failure is logged and the preview goes on.
fn sweep(state_dir: &Path, mirror: &Path, branches: &[String]) {
    let dir = previews_dir(state_dir);
    let entries: Vec<(PathBuf, SystemTime)> = std::fs::read_dir(&dir)
        .map(|read| read.flatten().filter_map(|e| Some((e.path(), e.metadata().ok()?.modified().ok()?))).collect())
        .unwrap_or_default();
    for old in leftovers(&entries, SystemTime::now(), LEFTOVER_AFTER) {
        match std::fs::remove_dir_all(&old) {
            Ok(()) => tracing::info!(dir = %old.display(), "removed a preview repository a previous run left"),
            Err(e) => tracing::warn!(dir = %old.display(), error = %e, "a preview repository a previous run left could not be removed"),
        }
    }
    static SWEPT: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<PathBuf>>> = std::sync::OnceLock::new();
    if !crate::base::sync::lock(SWEPT.get_or_init(Default::default)).insert(mirror.to_path_buf()) {
        return;
    }
    let Ok(repo) = git2::Repository::open_bare(mirror) else { return };
    let names: Vec<String> = match repo.references() {
        Ok(refs) => refs.flatten().filter_map(|r| r.name().map(str::to_string)).collect(),
        Err(_) => return,
    };
    for name in stale_preview_refs(&names, branches) {
        if let Err(e) = repo.find_reference(&name).and_then(|mut r| r.delete()) {
            tracing::warn!(reference = %name, error = %e.message(), "an old preview ref could not be removed from the mirror");
        }
    }
}

/// The scratch repositories of `entries` (path, last change) older than `max_age` at `now`.
fn leftovers(entries: &[(PathBuf, SystemTime)], now: SystemTime, max_age: Duration) -> Vec<PathBuf> {
    entries.iter().filter(|(_, at)| now.duration_since(*at).is_ok_and(|age| age > max_age)).map(|(path, _)| path.clone()).collect()
}

/// The refs of `names` under `refs/gitmoxi-preview/` that are no tracked branch's: pull requests
/// and other refs earlier versions fetched into the mirror.
fn stale_preview_refs(names: &[String], branches: &[String]) -> Vec<String> {
    names.iter().filter(|name| name.strip_prefix(PREVIEW_REFS).is_some_and(|rest| !branches.iter().any(|b| b == rest))).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 26: a preview of a commit whose apps depend on each other says in which order they go.
    #[test]
    fn a_preview_names_the_order_dependson_sets() {
        let app = |prefix: &str, wave: usize| PreviewApp {
            prefix: prefix.into(),
            action: "deploy",
            identity: None,
            reason: "fingerprint changed".into(),
            risk: None,
            drift: None,
            live: None,
            warnings: Vec::new(),
            wave: Some(wave),
        };
        let preview = PlanPreview {
            repo: "deploys".into(),
            branch: "main".into(),
            base: None,
            to: "a".repeat(40),
            apps: vec![app("prod/api/api", 2), app("prod/db/migrate", 1), app("prod/worker/worker", 3)],
        };
        let text = markdown(&preview);
        assert!(text.contains("**Order** (`dependsOn`): 1. `prod/db/migrate` → 2. `prod/api/api` → 3. `prod/worker/worker`"), "{text}");
        let one_wave = PlanPreview { apps: vec![app("prod/db/migrate", 1)], ..preview };
        assert!(!markdown(&one_wave).contains("**Order**"), "nothing to order");
    }

    #[test]
    fn what_a_rev_names_on_the_remote() {
        assert_eq!(remote_ref("pull/7"), "refs/pull/7/head");
        assert_eq!(remote_ref("merge-requests/3"), "refs/merge-requests/3/head");
        assert_eq!(remote_ref("refs/tags/v1"), "refs/tags/v1");
        assert_eq!(remote_ref("feature/x"), "refs/heads/feature/x");
    }

    #[test]
    fn only_scratch_repositories_older_than_the_bound_are_leftovers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100_000);
        let entries = vec![
            (PathBuf::from("old"), now - Duration::from_secs(7200)),
            (PathBuf::from("running"), now - Duration::from_secs(60)),
            (PathBuf::from("at-the-bound"), now - LEFTOVER_AFTER),
            (PathBuf::from("clock-went-back"), now + Duration::from_secs(60)),
        ];
        assert_eq!(leftovers(&entries, now, LEFTOVER_AFTER), vec![PathBuf::from("old")]);
    }

    #[test]
    fn the_preview_refs_of_tracked_branches_stay_and_the_rest_go() {
        let names: Vec<String> = [
            "refs/gitmoxi/main",
            "refs/gitmoxi-preview/main",
            "refs/gitmoxi-preview/release/1",
            "refs/gitmoxi-preview/pull/7/head",
            "refs/gitmoxi-preview/merge-requests/3/head",
            "refs/gitmoxi-preview/heads/feature",
            "refs/gitmoxi-preview/mainline",
        ]
        .map(String::from)
        .to_vec();
        let branches = vec!["main".to_string(), "release/1".to_string()];
        assert_eq!(
            stale_preview_refs(&names, &branches),
            vec![
                "refs/gitmoxi-preview/pull/7/head",
                "refs/gitmoxi-preview/merge-requests/3/head",
                "refs/gitmoxi-preview/heads/feature",
                "refs/gitmoxi-preview/mainline"
            ]
        );
    }

    /// A pull request fetched into a scratch repository: only what the mirror lacks is stored
    /// there, the commit reads through to the mirror's objects, and nothing stays once it is dropped.
    #[test]
    fn a_scratch_repository_borrows_the_mirror_and_leaves_nothing() {
        use gitmoxi_deploy::spec::FileTree;
        let work = tempfile::tempdir().unwrap();
        let origin = git2::Repository::init(work.path().join("origin")).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let commit_file = |name: &str, content: &[u8], parents: &[&git2::Commit]| {
            let blob = origin.blob(content).unwrap();
            let mut tree = origin.treebuilder(parents.first().map(|p| p.tree().unwrap()).as_ref()).unwrap();
            tree.insert(name, blob, 0o100644).unwrap();
            let tree = origin.find_tree(tree.write().unwrap()).unwrap();
            origin.commit(None, &sig, &sig, name, &tree, parents).unwrap()
        };
        // 1 MiB that does not compress: fetched again, it would show in the scratch's size
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let big: Vec<u8> = (0..1 << 20)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (seed >> 56) as u8
            })
            .collect();
        let base = commit_file("big.bin", &big, &[]);
        origin.reference("refs/heads/main", base, true, "main").unwrap();
        let base = origin.find_commit(base).unwrap();
        let head = commit_file("small.txt", b"pr", &[&base]);
        origin.reference("refs/pull/7/head", head, true, "pr").unwrap();
        let url = format!("file://{}", work.path().join("origin").display());
        let state = work.path().join("state");
        let mirror = state.join("repos").join("deploys");
        let main = GitSource::new(&url, "main", mirror.clone(), None);
        main.fetch().unwrap();

        let scratch = Scratch::new(&state);
        scratch.prepare(&mirror).unwrap();
        let source = GitSource::for_preview(&url, "main", scratch.path().to_path_buf(), None);
        let fetched = source.fetch_ref("refs/pull/7/head").unwrap();
        assert_eq!(fetched, head.to_string());
        let tree = crate::io::git::source::GitTree::open(scratch.path(), &fetched).unwrap();
        assert_eq!(tree.read("small.txt").as_deref(), Some(&b"pr"[..]));
        assert_eq!(tree.read("big.bin"), Some(big), "read through the mirror");
        assert!(size_of(scratch.path()) < 512 << 10, "the mirror's objects are not fetched again: {}", size_of(scratch.path()));
        let dir = scratch.path().to_path_buf();
        drop(tree);
        drop(scratch);
        assert!(!dir.exists(), "a preview leaves nothing behind");
        let refs: Vec<String> = git2::Repository::open_bare(&mirror)
            .unwrap()
            .references()
            .unwrap()
            .flatten()
            .filter_map(|r| r.name().map(String::from))
            .collect();
        assert!(refs.iter().all(|r| !r.contains("pull")), "the mirror holds no pull request: {refs:?}");
    }
}
