//! The pipelines runner (issue 26): turns each new head of a pipeline's first stage into a
//! release (the apps that commit changed), follows each open release through its stages, and
//! promotes it — a commit written to the next stage's branch and pushed, never a deploy Git does
//! not show. What a release does next is the pure crate's decision
//! ([`gitmoxi_deploy::release::pipeline::step`]); this gathers the facts (stage heads, the apps'
//! statuses, approvals), persists, then acts.
//!
//! One writer per table: this runner writes `PipelineHeads` and `Releases`; approvals are the
//! approval handler's (`ReleaseApprovals`), read here. Crash-safe: a promotion is marked in its
//! release before Git is touched; a resumed one first looks for its commit (its trailer) in the
//! branch, so a kill at any point never leaves a second commit.

use crate::io::git::promote::{Promoted, PromotionPlan};
use crate::io::git::GitSource;
use crate::runtime::config::RepoConfig;
use crate::runtime::controller::Controller;
use gitmoxi_deploy::record::AppKey;
use gitmoxi_deploy::release::pipeline::{self, Blocker, Decision, Pipeline, Release, ReleaseOutcome, StageHealth, StageProgress, Via};
use gitmoxi_state::{StoreError, TableName};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often open releases are looked at (a head installed also wakes the runner).
const TICK: Duration = Duration::from_secs(2);
/// Releases kept per pipeline (the oldest ended ones go first).
const MAX_RELEASES: usize = 200;

/// An approval as the handler stores it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReleaseApproval {
    pub release: String,
    pub stage: String,
    pub by: String,
    pub at_ms: u64,
}

/// A release as the API shows it: the record and what blocks it now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReleaseView {
    #[serde(flatten)]
    pub release: Release,
    /// The stage it is in.
    pub stage: String,
    /// What stops it from going on (empty: moving, or ended).
    pub blocked_by: Vec<String>,
}

/// The runner, shared with the HTTP handlers (which read releases and store approvals).
pub struct Pipelines {
    controller: Arc<Controller>,
    pipelines: Vec<Pipeline>,
    repos: BTreeMap<String, RepoConfig>,
    state_dir: std::path::PathBuf,
    wake_sources: Arc<crate::runtime::repos::Repos>,
    blockers: Mutex<BTreeMap<String, Vec<Blocker>>>,
    nudge: tokio::sync::Notify,
}

/// Why an approval was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("no release {0}; `gitmoxi releases` lists them")]
    NoRelease(String),
    #[error("release {release} has no stage {stage} after its first (stages: {stages})")]
    NoStage { release: String, stage: String, stages: String },
    #[error("{by} is not an approver of {stage} (approvers: {approvers})")]
    NotApprover { by: String, stage: String, approvers: String },
    #[error("release {0} has ended; nothing waits for an approval")]
    Ended(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Pipelines {
    pub fn new(
        controller: Arc<Controller>,
        pipelines: Vec<Pipeline>,
        repos: &[RepoConfig],
        state_dir: std::path::PathBuf,
        wake_sources: Arc<crate::runtime::repos::Repos>,
    ) -> Arc<Pipelines> {
        Arc::new(Pipelines {
            controller,
            pipelines,
            repos: repos.iter().map(|r| (r.name.clone(), r.clone())).collect(),
            state_dir,
            wake_sources,
            blockers: Mutex::new(BTreeMap::new()),
            nudge: tokio::sync::Notify::new(),
        })
    }

    /// Whether any pipeline is configured.
    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
    }

    /// Every release kept, newest first, with what blocks each.
    pub fn releases(&self) -> Result<Vec<ReleaseView>, StoreError> {
        let mut all: Vec<Release> =
            self.controller.store.table::<Release>(TableName::Releases)?.entries()?.into_iter().map(|(_, r)| r).collect();
        all.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then_with(|| b.id.cmp(&a.id)));
        let blockers = crate::base::sync::lock(&self.blockers);
        Ok(all
            .into_iter()
            .map(|release| {
                let stage = release.stages[pipeline::current_stage(&release)].stage.clone();
                let blocked_by = match &release.outcome {
                    Some(_) => Vec::new(),
                    None => blockers.get(&release.id).map(|b| b.iter().map(Blocker::describe).collect()).unwrap_or_default(),
                };
                ReleaseView { release, stage, blocked_by }
            })
            .collect())
    }

    /// Records `by`'s approval of `release`'s promotion to `stage` (its name, or its repository).
    pub fn approve(&self, release: &str, stage: &str, by: &str) -> Result<String, ApproveError> {
        let table = self.controller.store.table::<Release>(TableName::Releases)?;
        let found = table.get(release)?.ok_or_else(|| ApproveError::NoRelease(release.to_string()))?;
        if found.outcome.is_some() {
            return Err(ApproveError::Ended(release.to_string()));
        }
        let pipeline =
            self.pipelines.iter().find(|p| p.name == found.pipeline).ok_or_else(|| ApproveError::NoRelease(release.to_string()))?;
        let target = pipeline.stages.iter().skip(1).find(|s| s.name == stage || s.repo == stage).ok_or_else(|| ApproveError::NoStage {
            release: release.to_string(),
            stage: stage.to_string(),
            stages: pipeline.stages.iter().skip(1).map(|s| s.name.clone()).collect::<Vec<_>>().join(", "),
        })?;
        if !target.approvers.iter().any(|a| a == by) {
            return Err(ApproveError::NotApprover {
                by: by.to_string(),
                stage: target.name.clone(),
                approvers: target.approvers.join(", "),
            });
        }
        let approval = ReleaseApproval {
            release: release.to_string(),
            stage: target.name.clone(),
            by: by.to_string(),
            at_ms: self.controller.clock.now_ms(),
        };
        let key = format!("{release}\0{}\0{by}", target.name);
        self.controller.store.table::<ReleaseApproval>(TableName::ReleaseApprovals)?.put(&key, &approval)?;
        self.nudge.notify_one();
        Ok(target.name.clone())
    }

    /// Runs until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if self.pipelines.is_empty() {
            return;
        }
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "pipelines: could not look at the releases; next tick");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.nudge.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// One look at every pipeline: new releases, then each open release's next step.
    pub async fn tick(&self) -> Result<(), String> {
        for pipeline in &self.pipelines {
            self.new_release(pipeline).await.map_err(|e| format!("pipeline {}: {e}", pipeline.name))?;
            let mut open: Vec<Release> = self
                .table()
                .map_err(|e| e.to_string())?
                .entries()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(_, r)| r)
                .filter(|r| r.pipeline == pipeline.name && r.outcome.is_none())
                .collect();
            open.sort_by_key(|r| r.created_at_ms);
            for release in open {
                if let Err(e) = self.advance(pipeline, release.clone()).await {
                    tracing::warn!(release = %release.id, error = %e, "pipelines: the release could not go on; next tick");
                    crate::base::sync::lock(&self.blockers)
                        .insert(release.id.clone(), vec![Blocker::Deploying { stage: "promotion".into(), detail: e }]);
                }
            }
        }
        Ok(())
    }

    fn table(&self) -> Result<gitmoxi_state::Table<Release>, StoreError> {
        self.controller.store.table::<Release>(TableName::Releases)
    }

    fn mirror_of(&self, repo: &str) -> Option<std::path::PathBuf> {
        self.repos.get(repo).map(|r| crate::runtime::source::mirror_dir(&self.state_dir, r))
    }

    /// A new head of the first stage that changed app files under its folder is a release.
    async fn new_release(&self, pipeline: &Pipeline) -> Result<(), String> {
        let first = &pipeline.stages[0];
        let Some(head) = self.controller.head(&first.repo, &first.branch) else { return Ok(()) };
        let heads = self.controller.store.table::<String>(TableName::PipelineHeads).map_err(|e| e.to_string())?;
        let last = heads.get(&pipeline.name).map_err(|e| e.to_string())?;
        if last.as_deref() == Some(head.commit.as_str()) {
            return Ok(());
        }
        if let Some(last) = last {
            let mirror = self.mirror_of(&first.repo).ok_or("the first stage's repository is not configured")?;
            let (from, to) = (last.clone(), head.commit.clone());
            let changed = tokio::task::spawn_blocking(move || crate::io::git::changes::changed_apps(&mirror, &from, &to))
                .await
                .map_err(|e| e.to_string())??;
            let (apps, removed, title) = changed;
            let apps: Vec<String> = apps.into_iter().filter(|a| first.contains(a)).collect();
            let removed: Vec<String> = removed.into_iter().filter(|a| first.contains(a)).collect();
            if !apps.is_empty() || !removed.is_empty() {
                self.create(pipeline, &head.commit, title, apps, removed).map_err(|e| e.to_string())?;
            }
        }
        // the first head seen is where the pipeline starts: nothing before it is a release
        heads.put(&pipeline.name, &head.commit).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn create(&self, pipeline: &Pipeline, commit: &str, title: String, apps: Vec<String>, removed: Vec<String>) -> Result<(), StoreError> {
        let table = self.table()?;
        let id = format!("{}-{}", pipeline.name, gitmoxi_deploy::strategy::short_commit(commit));
        let mut stages: Vec<StageProgress> =
            pipeline.stages.iter().map(|s| StageProgress { stage: s.name.clone(), ..StageProgress::default() }).collect();
        stages[0].commit = Some(commit.to_string());
        let release = Release {
            id: id.clone(),
            pipeline: pipeline.name.clone(),
            commit: commit.to_string(),
            title,
            created_at_ms: self.controller.clock.now_ms(),
            apps,
            removed,
            stages,
            outcome: None,
        };
        let mut all: Vec<Release> = table.entries()?.into_iter().map(|(_, r)| r).filter(|r| r.pipeline == pipeline.name).collect();
        for old in pipeline::superseded_by(&release, &all) {
            if let Some(mut r) = all.iter().find(|r| r.id == old).cloned() {
                r.outcome = Some(ReleaseOutcome::Superseded { by: id.clone() });
                table.put(&r.id, &r)?;
            }
        }
        tracing::info!(release = %id, apps = release.apps.len(), removed = release.removed.len(), "pipelines: a new release");
        table.put(&id, &release)?;
        // keep the newest ended releases within the bound
        all.sort_by_key(|r| std::cmp::Reverse(r.created_at_ms));
        for stale in all.iter().skip(MAX_RELEASES).filter(|r| r.outcome.is_some()) {
            table.remove(&stale.id)?;
        }
        Ok(())
    }

    /// Where the release's apps stand in the stage it is in.
    fn health(&self, pipeline: &Pipeline, release: &Release, at: usize) -> StageHealth {
        let stage = &pipeline.stages[at];
        let first = &pipeline.stages[0];
        let Some(commit) = release.stages[at].commit.as_deref() else { return StageHealth::Deploying("not promoted yet".into()) };
        let Some(head) = self.controller.head(&stage.repo, &stage.branch) else {
            return StageHealth::Deploying(format!("{} has no head loaded yet", stage.name));
        };
        let trailer = (at > 0).then(|| pipeline::trailer(release, stage));
        let carried =
            self.mirror_of(&stage.repo).is_some_and(|m| crate::io::git::promote::carries(&m, &head.commit, commit, trailer.as_deref()));
        if !carried {
            return StageHealth::Deploying(match &release.stages[at].pull_request {
                Some(url) => format!("pull request {url} waits to be merged"),
                None => format!("waiting for {} to load {}", stage.name, gitmoxi_deploy::strategy::short_commit(commit)),
            });
        }
        let key = |prefix: &str| AppKey { repo: stage.repo.clone(), branch: stage.branch.clone(), prefix: prefix.to_string() };
        let apps: Vec<pipeline::AppInStage> = release
            .apps
            .iter()
            .filter_map(|a| stage.map_prefix(first, a))
            .map(|app| {
                let k = key(&app);
                let entry = self.controller.store.app(&k).ok().flatten();
                let status = entry.as_ref().map(|entry| {
                    let record = self.controller.store.record(&k).ok().flatten();
                    let paused = self.controller.store.commands(&k).is_ok_and(|c| c.paused);
                    self.controller.status_of(entry, Some(&head), record.as_ref(), paused)
                });
                let cause = entry.and_then(|e| e.last_cause.map(|c| c.to_string()));
                pipeline::AppInStage { app, status, cause }
            })
            .collect();
        let removed: Vec<String> = release
            .removed
            .iter()
            .filter_map(|a| stage.map_prefix(first, a))
            .filter(|app| {
                self.controller.store.app(&key(app)).ok().flatten().is_some_and(|e| e.applied.owned || e.applied.fingerprint.is_some())
            })
            .collect();
        pipeline::health_of(&apps, &removed)
    }

    /// One step of one release.
    async fn advance(&self, pipeline: &Pipeline, mut release: Release) -> Result<(), String> {
        // the approvals given so far, into the record
        let approvals = self.controller.store.table::<ReleaseApproval>(TableName::ReleaseApprovals).map_err(|e| e.to_string())?;
        for (_, given) in approvals.entries().map_err(|e| e.to_string())?.into_iter().filter(|(_, a)| a.release == release.id) {
            if let Some(stage) = release.stages.iter_mut().find(|s| s.stage == given.stage) {
                if !stage.approvals.iter().any(|(by, _)| *by == given.by) {
                    stage.approvals.push((given.by.clone(), given.at_ms));
                }
            }
        }
        let at = pipeline::current_stage(&release);
        // a pipeline whose stages changed under an open release: `step` ends it
        let health = if at < pipeline.stages.len() {
            self.health(pipeline, &release, at)
        } else {
            StageHealth::Deploying("the pipeline has no such stage any more".into())
        };
        let now = self.controller.clock.now_ms();
        let decision = pipeline::step(&release, pipeline, &health, now);
        let table = self.table().map_err(|e| e.to_string())?;
        match decision {
            Decision::Wait(blockers) => {
                crate::base::sync::lock(&self.blockers).insert(release.id.clone(), blockers);
                table.put(&release.id, &release).map_err(|e| e.to_string())?;
            }
            Decision::Healthy(i) => {
                release.stages[i].healthy_at_ms = Some(now);
                tracing::info!(release = %release.id, stage = %release.stages[i].stage, "pipelines: healthy");
                table.put(&release.id, &release).map_err(|e| e.to_string())?;
                self.nudge.notify_one();
            }
            Decision::End(outcome) => {
                tracing::info!(release = %release.id, outcome = ?outcome, "pipelines: the release ended");
                release.outcome = Some(outcome);
                crate::base::sync::lock(&self.blockers).remove(&release.id);
                table.put(&release.id, &release).map_err(|e| e.to_string())?;
            }
            Decision::Promote(i) => {
                // persist before acting: a crash from here on resumes the promotion, which looks
                // for its own commit before it writes one
                if release.stages[i].promoting_since_ms.is_none() {
                    release.stages[i].promoting_since_ms = Some(now);
                    table.put(&release.id, &release).map_err(|e| e.to_string())?;
                    self.controller.store.flush().map_err(|e| e.to_string())?;
                }
                let (commit, pull_request) = self.promote(pipeline, &release, i).await?;
                release.stages[i].commit = Some(commit.clone());
                release.stages[i].pull_request = pull_request;
                crate::base::sync::lock(&self.blockers).remove(&release.id);
                table.put(&release.id, &release).map_err(|e| e.to_string())?;
                tracing::info!(release = %release.id, stage = %release.stages[i].stage, commit = %commit, "pipelines: promoted");
                // the next stage fetches now, not at its next poll
                let target = &pipeline.stages[i];
                for t in self.wake_sources.targets().into_iter().filter(|t| t.repo == target.repo && t.branch == target.branch) {
                    t.signal.wake();
                }
            }
        }
        Ok(())
    }

    /// Writes and pushes the promotion of `release` to stage `i` (with `via = "pull_request"`, to
    /// its own branch, and opens the pull request); answers the commit that carries it and the
    /// pull request's URL.
    async fn promote(&self, pipeline: &Pipeline, release: &Release, i: usize) -> Result<(String, Option<String>), String> {
        let (first, target) = (&pipeline.stages[0], &pipeline.stages[i]);
        let repo = self.repos.get(&target.repo).ok_or("the stage's repository is not configured")?.clone();
        let plan = PromotionPlan {
            source_mirror: self.mirror_of(&first.repo).ok_or("the first stage's repository is not configured")?,
            source_commit: release.commit.clone(),
            apps: release.apps.iter().filter_map(|a| target.map_prefix(first, a).map(|t| (a.clone(), t))).collect(),
            removed: release.removed.iter().filter_map(|a| target.map_prefix(first, a)).collect(),
            message: pipeline::commit_message(release, first, target),
            trailer: pipeline::trailer(release, target),
        };
        let source = GitSource::for_promotion(&repo.url, &target.branch, crate::runtime::source::mirror_dir(&self.state_dir, &repo));
        crate::runtime::source::authorize(&self.controller, &repo, &source).await?;
        let head_branch = format!("gitmoxi/release/{}", release.id);
        let to_ref = match target.via {
            Via::Push => format!("refs/heads/{}", target.branch),
            Via::PullRequest => format!("refs/heads/{head_branch}"),
        };
        let message = plan.message.clone();
        let promoted = tokio::task::spawn_blocking(move || source.promote(&plan, &to_ref))
            .await
            .map_err(|e| format!("the promotion task ended abnormally: {e}"))?
            .map_err(|e| e.to_string())?;
        let commit = self.recorded(release, target, promoted);
        let pull_request = match target.via {
            Via::Push => None,
            Via::PullRequest => {
                let forge = repo.forge.as_ref().ok_or("via = \"pull_request\" needs a [repos.forge] on the stage's repository")?;
                let token = self
                    .controller
                    .credentials
                    .token(&forge.token)
                    .await
                    .map_err(|e| format!("no forge token for the pull request: {e}"))?;
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .map_err(|e| format!("no HTTP client for the forge: {e}"))?;
                let title = message.lines().next().unwrap_or_default().to_string();
                let url =
                    crate::integrations::forge::open_pull_request(&client, forge, &token, &head_branch, &target.branch, &title, &message)
                        .await?;
                tracing::info!(release = %release.id, stage = %target.name, pull_request = %url, "pipelines: pull request opened");
                Some(url)
            }
        };
        Ok((commit, pull_request))
    }

    /// The commit a promotion left (a resumed one found its own: said once, not written again).
    fn recorded(&self, release: &Release, target: &pipeline::Stage, promoted: Promoted) -> String {
        match promoted {
            Promoted::Pushed(c) => {
                // the kill -9 test stops here: pushed, not yet recorded
                crate::base::failpoint::hit("promotion_pushed");
                c
            }
            Promoted::Found(c) => {
                tracing::info!(release = %release.id, stage = %target.name, commit = %c, "pipelines: the promotion was already pushed (resumed after a stop); not written again");
                c
            }
        }
    }
}
