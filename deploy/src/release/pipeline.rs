//! Promotion between environments (issue 26, `[[pipelines]]` in the configuration file): ordered
//! stages, each a tracked repository and branch (and optionally a folder of it). A release is
//! the set of app files one commit of the first stage changed; promotion makes the next stage's
//! branch carry the same file contents for those apps — a commit gitmoxi writes and pushes (or a
//! pull request) — once the stage before is healthy and the next stage's conditions hold: `soak`
//! (time healthy before), `approvers` (named people, `required_approvals` of them), `window` (a
//! weekly time range in UTC). Decided here ([`step`]) from facts the runner gathers; the runner
//! writes, pushes and persists.
//!
//! Invariants: nothing is deployed that Git does not show (a promotion is a commit in the next
//! stage's branch); a stage is promoted at most once per release (the commit carries a
//! `Gitmoxi-Release` trailer the runner looks for before writing another); a failed stage stops
//! the release.

use super::freeze::{FreezeWindow, MINUTES_PER_WEEK};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a promotion reaches the next stage's branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A commit pushed to the branch.
    Push,
    /// A branch pushed and a pull request opened on the forge; merging it promotes.
    PullRequest,
}

/// One stage of a pipeline (checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `repo@branch` (or `repo@branch:folder`), as shown.
    pub name: String,
    /// A `[[repos]]` name.
    pub repo: String,
    /// A branch gitmoxi tracks in it.
    pub branch: String,
    /// The folder the pipeline's apps live under in this stage (`""`: the whole repository).
    pub folder: String,
    /// How long the stage before must have been healthy.
    pub soak: Duration,
    /// Who may approve the promotion to this stage (empty: no approval needed).
    pub approvers: Vec<String>,
    /// How many of them must approve.
    pub required_approvals: usize,
    /// When promotions to this stage may happen (weekly, UTC; `None`: any time).
    pub window: Option<(u64, u64)>,
    /// How the promotion is written.
    pub via: Via,
}

/// A pipeline (checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// Its name.
    pub name: String,
    /// The stages, first to last.
    pub stages: Vec<Stage>,
}

impl Stage {
    /// A stage of `repo`'s `branch` (and `folder`), without conditions; named `repo@branch` or
    /// `repo@branch:folder`.
    pub fn new(repo: &str, branch: &str, folder: &str) -> Stage {
        let name = if folder.is_empty() { format!("{repo}@{branch}") } else { format!("{repo}@{branch}:{folder}") };
        Stage {
            name,
            repo: repo.to_string(),
            branch: branch.to_string(),
            folder: folder.to_string(),
            soak: Duration::ZERO,
            approvers: Vec::new(),
            required_approvals: 0,
            window: None,
            via: Via::Push,
        }
    }

    /// An app prefix of the first stage as this stage names it (the folder swapped).
    pub fn map_prefix(&self, from: &Stage, prefix: &str) -> Option<String> {
        let rest = strip_folder(&from.folder, prefix)?;
        Some(join_folder(&self.folder, rest))
    }

    /// A path of the first stage as this stage names it.
    pub fn map_path(&self, from: &Stage, path: &str) -> Option<String> {
        self.map_prefix(from, path)
    }

    /// Whether `prefix` (an app of this stage's repository) is under its folder.
    pub fn contains(&self, prefix: &str) -> bool {
        strip_folder(&self.folder, prefix).is_some()
    }
}

fn strip_folder<'a>(folder: &str, path: &'a str) -> Option<&'a str> {
    if folder.is_empty() {
        return Some(path);
    }
    path.strip_prefix(folder).and_then(|rest| rest.strip_prefix('/'))
}

fn join_folder(folder: &str, rest: &str) -> String {
    if folder.is_empty() {
        rest.to_string()
    } else {
        format!("{folder}/{rest}")
    }
}

/// Where a release's apps stand in one stage, as the runner finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageHealth {
    /// Every app runs the release's files there.
    Healthy,
    /// Not yet (the branch not fetched, a deployment in flight, held).
    Deploying(String),
    /// An app failed or rolled back there.
    Failed(String),
}

/// One app of a release as its stage shows it: its status there and its last cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInStage {
    /// The app as the stage names it.
    pub app: String,
    /// Its status (`None`: the stage does not know it yet).
    pub status: Option<crate::status::AppStatus>,
    /// Why its last deployment failed, if it did.
    pub cause: Option<String>,
}

/// The release's health in a stage whose head carries it: every app `Synced` and every removed
/// app gone is healthy; an app that failed, rolled back, is invalid, in conflict or blocked fails
/// the stage; anything else is on its way.
pub fn health_of(apps: &[AppInStage], removed_still_there: &[String]) -> StageHealth {
    use crate::status::AppStatus;
    for a in apps {
        let Some(status) = a.status else { return StageHealth::Deploying(format!("{} is not known yet", a.app)) };
        match status {
            AppStatus::Synced => {}
            AppStatus::Failed | AppStatus::RolledBack | AppStatus::Invalid | AppStatus::Conflict | AppStatus::Blocked => {
                let cause = a.cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default();
                return StageHealth::Failed(format!("{} is {status}{cause}", a.app));
            }
            AppStatus::Deploying
            | AppStatus::Deleting
            | AppStatus::Paused
            | AppStatus::WaitingForApproval
            | AppStatus::DeleteHeld
            | AppStatus::Unsupported
            | AppStatus::Pending
            | AppStatus::Waiting
            | AppStatus::Frozen
            | AppStatus::Pinned => return StageHealth::Deploying(format!("{} is {status}", a.app)),
        }
    }
    match removed_still_there.first() {
        Some(app) => StageHealth::Deploying(format!("{app} is being deleted")),
        None => StageHealth::Healthy,
    }
}

/// What a release did in one stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageProgress {
    /// The stage (`repo@branch`).
    pub stage: String,
    /// The commit that carries the release in this stage's branch (the first stage's: the
    /// release's commit).
    pub commit: Option<String>,
    /// When a promotion to this stage began (persisted before anything is written to Git).
    #[serde(default)]
    pub promoting_since_ms: Option<u64>,
    /// The pull request opened for it (`via = "pull_request"`).
    #[serde(default)]
    pub pull_request: Option<String>,
    /// When every app of the release was first seen healthy here.
    #[serde(default)]
    pub healthy_at_ms: Option<u64>,
    /// Who approved the promotion to this stage, with when.
    #[serde(default)]
    pub approvals: Vec<(String, u64)>,
}

/// How a release ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReleaseOutcome {
    /// Healthy in the last stage.
    Done,
    /// An app failed or rolled back in a stage: not promoted further.
    Failed {
        /// The stage.
        stage: String,
        /// What failed.
        why: String,
    },
    /// A newer release carries all of its apps before it was promoted.
    Superseded {
        /// The newer release.
        by: String,
    },
}

/// A release: the app files one commit of the first stage changed, and how far they got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// `PIPELINE-COMMIT10`.
    pub id: String,
    /// The pipeline.
    pub pipeline: String,
    /// The first stage's commit.
    pub commit: String,
    /// Its message's first line.
    pub title: String,
    /// When gitmoxi saw it.
    pub created_at_ms: u64,
    /// The apps it changes (as the first stage names them) whose files are there.
    pub apps: Vec<String>,
    /// The apps it removes.
    pub removed: Vec<String>,
    /// One entry per stage.
    pub stages: Vec<StageProgress>,
    /// How it ended (`None`: still going).
    pub outcome: Option<ReleaseOutcome>,
}

/// What stops a release from going to the next stage now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Blocker {
    /// The stage it is in is not healthy yet.
    Deploying {
        /// The stage.
        stage: String,
        /// What it waits for.
        detail: String,
    },
    /// It must soak longer in the stage it is in.
    Soak {
        /// Time left (ms).
        left_ms: u64,
    },
    /// Approvals are missing.
    Approval {
        /// Who may approve.
        approvers: Vec<String>,
        /// How many more are needed.
        missing: usize,
    },
    /// The next stage's window is closed.
    Window {
        /// When it opens (ms since the epoch).
        opens_at_ms: u64,
    },
}

impl Blocker {
    /// What an operator reads.
    pub fn describe(&self) -> String {
        match self {
            Blocker::Deploying { stage, detail } => format!("{stage}: {detail}"),
            Blocker::Soak { left_ms } => format!("soak: {} left", human_duration(*left_ms)),
            Blocker::Approval { approvers, missing } => {
                format!("approval: {missing} more of {} (`gitmoxi releases approve RELEASE STAGE`)", approvers.join(", "))
            }
            Blocker::Window { opens_at_ms } => format!("window closed: opens {}", super::freeze::format_utc(*opens_at_ms)),
        }
    }
}

fn human_duration(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// What the runner does next for a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing now: what blocks it (empty while nothing is known yet).
    Wait(Vec<Blocker>),
    /// The stage at this index became healthy now: remember when.
    Healthy(usize),
    /// Promote to the stage at this index.
    Promote(usize),
    /// It ended.
    End(ReleaseOutcome),
}

/// The stage a release is in: the last one that carries its commit.
pub fn current_stage(release: &Release) -> usize {
    release.stages.iter().rposition(|s| s.commit.is_some()).unwrap_or(0)
}

/// The next step of `release` in `pipeline`, given the health of the stage it is in, at `now`.
pub fn step(release: &Release, pipeline: &Pipeline, health: &StageHealth, now_ms: u64) -> Decision {
    if let Some(outcome) = &release.outcome {
        return Decision::End(outcome.clone());
    }
    let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
    if release.stages.iter().map(|s| s.stage.as_str()).ne(names.iter().copied()) {
        // the configuration changed its stages while the release was open
        return Decision::End(ReleaseOutcome::Failed {
            stage: release.stages.get(current_stage(release)).map_or_else(String::new, |s| s.stage.clone()),
            why: format!(
                "the pipeline's stages changed ({}) while this release was open; a new commit makes a new release",
                names.join(" → ")
            ),
        });
    }
    let at = current_stage(release);
    let Some(stage) = pipeline.stages.get(at) else {
        return Decision::End(ReleaseOutcome::Failed { stage: "?".into(), why: "the pipeline lost the stage this release was in".into() });
    };
    let progress = &release.stages[at];
    match health {
        StageHealth::Failed(why) => return Decision::End(ReleaseOutcome::Failed { stage: stage.name.clone(), why: why.clone() }),
        StageHealth::Deploying(detail) => {
            return Decision::Wait(vec![Blocker::Deploying { stage: stage.name.clone(), detail: detail.clone() }]);
        }
        StageHealth::Healthy => {}
    }
    let Some(healthy_at) = progress.healthy_at_ms else { return Decision::Healthy(at) };
    let Some(next) = pipeline.stages.get(at + 1) else { return Decision::End(ReleaseOutcome::Done) };
    if release.stages[at + 1].promoting_since_ms.is_some() {
        // a promotion began and did not finish: the runner resumes it (it looks for its commit first)
        return Decision::Promote(at + 1);
    }
    let mut blockers = Vec::new();
    let soaked = now_ms.saturating_sub(healthy_at);
    let soak = next.soak.as_millis() as u64;
    if soaked < soak {
        blockers.push(Blocker::Soak { left_ms: soak - soaked });
    }
    if !next.approvers.is_empty() {
        let given = release.stages[at + 1].approvals.iter().filter(|(by, _)| next.approvers.contains(by)).count();
        if given < next.required_approvals {
            blockers.push(Blocker::Approval { approvers: next.approvers.clone(), missing: next.required_approvals - given });
        }
    }
    if let Some((start, end)) = next.window {
        if (FreezeWindow::Weekly { start, end }).ends_at(now_ms).is_none() {
            blockers.push(Blocker::Window { opens_at_ms: next_weekly_start(start, now_ms) });
        }
    }
    if blockers.is_empty() {
        Decision::Promote(at + 1)
    } else {
        Decision::Wait(blockers)
    }
}

/// The next time the weekly minute `start` comes (ms since the epoch).
fn next_weekly_start(start: u64, now_ms: u64) -> u64 {
    let minute = now_ms / 60_000;
    let of_week = (minute + 3 * 24 * 60) % MINUTES_PER_WEEK;
    let ahead = (start + MINUTES_PER_WEEK - of_week) % MINUTES_PER_WEEK;
    (minute + if ahead == 0 { MINUTES_PER_WEEK } else { ahead }) * 60_000
}

/// The trailer a promotion commit carries (how a resumed promotion finds its own commit).
pub fn trailer(release: &Release, stage: &Stage) -> String {
    format!("Gitmoxi-Release: {} -> {}", release.id, stage.name)
}

/// Text from a commit (its title, its paths) as one line of a message: control characters
/// (a newline in a file name) become spaces, so nothing from a commit can add a line — least of
/// all a trailer that would pass for another promotion's.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The promotion commit's message.
pub fn commit_message(release: &Release, from: &Stage, to: &Stage) -> String {
    let mut apps: Vec<String> = release.apps.iter().filter_map(|a| to.map_prefix(from, a)).map(|a| one_line(&a)).collect();
    apps.extend(release.removed.iter().filter_map(|a| to.map_prefix(from, a)).map(|a| format!("{} (removed)", one_line(&a))));
    let title = one_line(&release.title);
    format!(
        "gitmoxi: promote {} to {}\n\nRelease: {title}\nFrom {} at {}\nApps: {}\n\n{}\n",
        release.id,
        to.name,
        from.name,
        release.commit,
        apps.join(", "),
        trailer(release, to)
    )
}

/// Newer releases supersede older ones still waiting to leave the first stage whose apps they
/// all carry; answers the ids superseded.
pub fn superseded_by(newer: &Release, older: &[Release]) -> Vec<String> {
    older
        .iter()
        .filter(|r| r.outcome.is_none() && r.pipeline == newer.pipeline && current_stage(r) == 0 && r.id != newer.id)
        .filter(|r| r.apps.iter().chain(&r.removed).all(|a| newer.apps.contains(a) || newer.removed.contains(a)))
        .map(|r| r.id.clone())
        .collect()
}
