//! The tracked repositories: those of the configuration and those added through the API are the
//! same kind of object (SPEC §5). API-added ones are persisted in the store and come back after a
//! restart; each (repository, branch) runs one source loop, owned and joined here.
//!
//! Removing a repository stops its sources, forgets its heads and, once its sources ended,
//! deletes its mirror under the state directory; nothing in AWS is touched (its apps keep
//! running as they are).
//!
//! The API may add at most [`MAX_API_REPOS`] repositories of at most [`MAX_BRANCHES`] branches,
//! each a valid git branch name ([`check_branch`]).

use crate::io::credentials::TokenSource;
use crate::runtime::config::{repo_name, RepoConfig};
use crate::runtime::controller::Controller;
use crate::runtime::source::SourceSignal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The kind of shared HA item a repository added through the API is.
const SHARED_REPOS: &str = "repos";
/// How many repositories the API may add.
pub const MAX_API_REPOS: usize = 100;
/// How many branches one repository added through the API may track.
pub const MAX_BRANCHES: usize = 20;

/// A repository as the API describes it (Gitmoxi's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRecord {
    pub repo_url: String,
    pub branches: Vec<String>,
    /// Secrets Manager / SSM ARN, `GITHUB_TOKEN`, or empty (no token).
    #[serde(default)]
    pub access_token_arn: String,
    #[serde(default = "github")]
    pub provider: String,
    /// Where it comes from: `config` or `api`.
    #[serde(default)]
    pub origin: String,
}

fn github() -> String {
    "github".into()
}

struct Running {
    config: RepoConfig,
    record: RepoRecord,
    signals: Vec<(String, Arc<SourceSignal>)>,
    cancel: CancellationToken,
    /// Its source loops (its mirror is deleted only once they ended).
    sources: TaskTracker,
}

/// One branch a webhook or a sync can wake.
#[derive(Clone)]
pub struct WakeTarget {
    pub repo: String,
    pub url: String,
    pub branch: String,
    pub signal: Arc<SourceSignal>,
}

/// Owns every source loop.
pub struct Repos {
    controller: Arc<Controller>,
    state_dir: PathBuf,
    poll_interval: Duration,
    template: RepoConfig,
    running: Mutex<BTreeMap<String, Running>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// What the API may add (URLs and token sources; see [`crate::io::repo_policy`]).
    api_policy: crate::io::repo_policy::ApiRepoPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{0}")]
    Invalid(String),
    #[error("repository {0} is already tracked; delete it first to change it")]
    Exists(String),
    #[error("no tracked repository {0}")]
    Unknown(String),
    #[error("repository {0} comes from the configuration file; change it there")]
    FromConfig(String),
    #[error(transparent)]
    Store(#[from] gitmoxi_state::StoreError),
}

impl Repos {
    pub fn new(
        controller: Arc<Controller>,
        state_dir: PathBuf,
        default_poll: Duration,
        shutdown: CancellationToken,
        api_policy: crate::io::repo_policy::ApiRepoPolicy,
    ) -> Arc<Repos> {
        let template = RepoConfig {
            name: String::new(),
            url: String::new(),
            branches: Vec::new(),
            poll_interval: default_poll,
            max_prune: 3,
            max_prune_percent: 25,
            token: None,
            drift: Default::default(),
            forge: None,
            ssh: None,
            scope: api_policy.scope.clone(),
            adopt_untagged: false,
        };
        Arc::new(Repos {
            controller,
            state_dir,
            poll_interval: default_poll,
            template,
            running: Mutex::new(BTreeMap::new()),
            tracker: TaskTracker::new(),
            shutdown,
            api_policy,
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        crate::base::sync::lock(&self.running)
    }

    /// Starts the repositories of the configuration, then those added through the API before.
    pub fn start(&self, configured: &[RepoConfig]) -> Result<(), RepoError> {
        for repo in configured {
            let record = RepoRecord {
                repo_url: repo.url.clone(),
                branches: repo.branches.clone(),
                access_token_arn: String::new(),
                provider: github(),
                origin: "config".into(),
            };
            let running = self.spawn(repo.clone(), record);
            self.running().insert(repo.name.clone(), running);
        }
        for record in self.stored()? {
            if let Err(e) = self.add_running(record.clone(), false) {
                tracing::error!(repo = %record.repo_url, error = %e, "an API-added repository could not be started");
            }
        }
        Ok(())
    }

    fn stored(&self) -> Result<Vec<RepoRecord>, RepoError> {
        let table = self.controller.store.table::<RepoRecord>(gitmoxi_state::TableName::ApiRepos)?;
        Ok(table.entries()?.into_iter().map(|(_, record)| record).collect())
    }

    fn persist(&self) -> Result<(), RepoError> {
        let api: Vec<RepoRecord> = self.running().values().filter(|r| r.record.origin == "api").map(|r| r.record.clone()).collect();
        let table = self.controller.store.table::<RepoRecord>(gitmoxi_state::TableName::ApiRepos)?;
        for (url, _) in table.entries()? {
            if !api.iter().any(|r| r.repo_url == url) {
                table.remove(&url)?;
            }
        }
        for record in &api {
            table.put(&record.repo_url, record)?;
        }
        Ok(())
    }

    /// Starts the source loops of a repository; the caller keeps the answer in `running`.
    fn spawn(&self, config: RepoConfig, record: RepoRecord) -> Running {
        let cancel = self.shutdown.child_token();
        let sources = TaskTracker::new();
        let mut signals = Vec::new();
        for branch in &config.branches {
            let signal = SourceSignal::new();
            signals.push((branch.clone(), signal.clone()));
            self.tracker.spawn(sources.track_future(crate::runtime::source::run(
                self.controller.clone(),
                config.clone(),
                branch.clone(),
                self.state_dir.clone(),
                signal,
                cancel.clone(),
            )));
        }
        sources.close();
        tracing::info!(repo = %config.name, branches = ?config.branches, origin = %record.origin, "tracking repository");
        // kept after the repository is deleted: its deployment records still name their URL
        let url = crate::io::git::source::redact(&config.url);
        if let Err(e) = self.controller.store.table(gitmoxi_state::TableName::RepoUrls).and_then(|t| t.put(&config.name, &url)) {
            tracing::warn!(repo = %config.name, error = %e, "the repository's URL was not remembered for its records");
        }
        Running { config, record, signals, cancel, sources }
    }

    /// Starts an API repository (`limited`: a new one, held to [`MAX_API_REPOS`]; those stored
    /// before come back whatever their number).
    fn add_running(&self, mut record: RepoRecord, limited: bool) -> Result<String, RepoError> {
        let url = record.repo_url.trim().to_string();
        if url.is_empty() {
            return Err(RepoError::Invalid("repo_url is required".into()));
        }
        if record.branches.is_empty() {
            record.branches = vec!["main".into()];
        }
        record.branches = check_branches(&record.branches).map_err(RepoError::Invalid)?;
        let token = match record.access_token_arn.trim() {
            "" => None,
            arn => Some(TokenSource::parse(arn).map_err(RepoError::Invalid)?),
        };
        crate::io::repo_policy::check_api_repo(&url, token.as_ref(), &self.api_policy).map_err(RepoError::Invalid)?;
        let name = repo_name(&url);
        record.repo_url = url.clone();
        record.origin = "api".into();
        let config = RepoConfig {
            name: name.clone(),
            url: url.clone(),
            branches: record.branches.clone(),
            token,
            poll_interval: self.poll_interval,
            ..self.template.clone()
        };
        // checked and inserted under one lock: two calls at once cannot both pass
        let mut running = self.running();
        if running.values().any(|r| r.config.url == url) {
            return Err(RepoError::Exists(url));
        }
        if running.contains_key(&name) {
            return Err(RepoError::Invalid(format!(
                "another repository is already named '{name}'; repository names come from the URL's last part"
            )));
        }
        let api = running.values().filter(|r| r.record.origin == "api").count();
        if limited && api >= MAX_API_REPOS {
            return Err(RepoError::Invalid(format!(
                "{api} repositories were added through the API already, the most there may be ({MAX_API_REPOS}); delete one first"
            )));
        }
        let started = self.spawn(config, record);
        running.insert(name.clone(), started);
        Ok(name)
    }

    /// Adds a repository through the API (persisted; its sources start now). With high
    /// availability it is shared through the table, and every replica tracks it
    /// ([`Repos::follow_shared`]); a share that fails undoes the add.
    pub async fn add(self: &Arc<Self>, record: RepoRecord) -> Result<String, RepoError> {
        let name = self.add_running(record.clone(), true)?;
        self.persist()?;
        if let Some(ha) = self.controller.ha() {
            let body = serde_json::to_string(&record).unwrap_or_default();
            if let Err(e) = ha.share(SHARED_REPOS, &record.repo_url, &body).await {
                let _ = self.remove_here(&name).await;
                return Err(RepoError::Invalid(format!(
                    "the repository was not added: the other replicas could not be told ({e}); try again"
                )));
            }
        }
        Ok(name)
    }

    /// With high availability: tracks the repositories other replicas added through the API,
    /// and stops those they deleted, every `every`, until shutdown.
    pub async fn follow_shared(self: Arc<Self>, every: Duration) {
        let Some(ha) = self.controller.ha().cloned() else { return };
        // what the table showed before: a repository gone from it was deleted elsewhere (one
        // this replica just added and is still sharing was never seen, so it stays)
        let mut seen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let shared = match ha.shared(SHARED_REPOS).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the repositories shared through the HA table");
                    continue;
                }
            };
            let now: std::collections::BTreeSet<String> = shared.iter().map(|(url, _)| url.clone()).collect();
            let tracked: Vec<(String, String)> = self
                .running()
                .iter()
                .filter(|(_, r)| r.record.origin == "api")
                .map(|(name, r)| (name.clone(), r.record.repo_url.clone()))
                .collect();
            for (url, body) in &shared {
                if tracked.iter().any(|(_, u)| u == url) {
                    continue;
                }
                match serde_json::from_str::<RepoRecord>(body) {
                    Ok(record) => match self.add_running(record, false).and_then(|_| self.persist()) {
                        Ok(()) => tracing::info!(repo = %url, "tracking a repository another replica added"),
                        Err(e) => tracing::warn!(repo = %url, error = %e, "a repository another replica added could not be started"),
                    },
                    Err(e) => tracing::warn!(repo = %url, error = %e, "a shared repository is unreadable"),
                }
            }
            for (name, url) in tracked {
                if seen.contains(&url) && !now.contains(&url) {
                    match self.remove_here(&name).await {
                        Ok(_) => tracing::info!(repo = %url, "stopped tracking a repository another replica deleted"),
                        Err(e) => tracing::warn!(repo = %url, error = %e, "a repository another replica deleted is still tracked"),
                    }
                }
            }
            seen = now;
        }
    }

    /// Stops tracking an API-added repository (by URL or name), on every replica with high
    /// availability; its mirror is deleted once its sources stopped.
    pub async fn remove(self: &Arc<Self>, url_or_name: &str) -> Result<RepoRecord, RepoError> {
        let removed = self.remove_here(url_or_name).await?;
        if let Some(ha) = self.controller.ha() {
            if let Err(e) = ha.unshare(SHARED_REPOS, &removed.repo_url).await {
                tracing::warn!(repo = %removed.repo_url, error = %e, "the other replicas were not told of the delete; they keep tracking it");
                return Err(RepoError::Invalid(format!(
                    "the repository is no longer tracked here, but the other replicas could not be told ({e}); delete it again"
                )));
            }
        }
        Ok(removed)
    }

    /// Stops tracking an API-added repository on this replica.
    async fn remove_here(self: &Arc<Self>, url_or_name: &str) -> Result<RepoRecord, RepoError> {
        let key = {
            let running = self.running();
            running
                .iter()
                .find(|(name, r)| r.config.url == url_or_name || name.as_str() == url_or_name)
                .map(|(n, r)| (n.clone(), r.record.origin.clone()))
        };
        let Some((name, origin)) = key else { return Err(RepoError::Unknown(url_or_name.to_string())) };
        if origin == "config" {
            return Err(RepoError::FromConfig(name));
        }
        let removed = self.running().remove(&name).ok_or_else(|| RepoError::Unknown(name.clone()))?;
        removed.cancel.cancel();
        for branch in &removed.config.branches {
            if let Err(e) = self.controller.request_forget(&removed.config.name, branch).await {
                tracing::warn!(repo = %name, error = %e, "the head of a removed repository was not forgotten");
            }
        }
        self.persist()?;
        tracing::info!(repo = %name, "stopped tracking repository");
        self.delete_mirror_when_stopped(&removed);
        Ok(removed.record)
    }

    /// Deletes a removed repository's mirror once its source loops ended (in the background:
    /// a fetch under way finishes first). Kept when the same repository was added again
    /// meanwhile; otherwise renamed away under the lock repositories are started under (a
    /// repository added right after gets a fresh mirror), then deleted.
    fn delete_mirror_when_stopped(self: &Arc<Self>, removed: &Running) {
        let mirror = crate::runtime::source::mirror_dir(&self.state_dir, &removed.config);
        let sources = removed.sources.clone();
        // no source of it starts again: `wait` ends once the running ones have
        sources.close();
        let name = removed.config.name.clone();
        let repos = self.clone();
        self.tracker.spawn(async move {
            sources.wait().await;
            let trash = {
                let running = repos.running();
                if running.values().any(|r| crate::runtime::source::mirror_dir(&repos.state_dir, &r.config) == mirror) {
                    tracing::info!(repo = %name, "the mirror of the removed repository is kept: the repository was added again");
                    return;
                }
                let Some(file_name) = mirror.file_name().map(|f| f.to_string_lossy().into_owned()) else { return };
                let trash = mirror.with_file_name(format!(".deleted-{file_name}-{}", repos.controller.clock.now_ms()));
                match std::fs::rename(&mirror, &trash) {
                    Ok(()) => trash,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                    Err(e) => {
                        tracing::warn!(repo = %name, error = %e, "the mirror of the removed repository was not deleted");
                        return;
                    }
                }
            };
            match tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&trash)).await {
                Ok(Ok(())) => tracing::info!(repo = %name, "deleted the mirror of the removed repository"),
                Ok(Err(e)) => tracing::warn!(repo = %name, error = %e, "the mirror of the removed repository was not deleted completely"),
                Err(e) => tracing::warn!(repo = %name, error = %e, "deleting the mirror of the removed repository failed"),
            }
        });
    }

    /// The URL of a repository by name, tracked or once tracked (the name when never seen).
    pub fn url_of(&self, name: &str) -> String {
        if let Some(r) = self.running().get(name) {
            return r.record.repo_url.clone();
        }
        match self.controller.store.table::<String>(gitmoxi_state::TableName::RepoUrls).and_then(|t| t.get(name)) {
            Ok(Some(url)) => url,
            Ok(None) | Err(_) => name.to_string(),
        }
    }

    /// Every tracked repository.
    pub fn list(&self) -> Vec<RepoRecord> {
        self.running().values().map(|r| r.record.clone()).collect()
    }

    /// Their configurations (diagnosis reads their mirrors).
    pub fn configs(&self) -> Vec<RepoConfig> {
        self.running().values().map(|r| r.config.clone()).collect()
    }

    /// Every branch a push or a sync can wake.
    pub fn targets(&self) -> Vec<WakeTarget> {
        self.running()
            .values()
            .flat_map(|r| {
                r.signals.iter().map(|(branch, signal)| WakeTarget {
                    repo: r.config.name.clone(),
                    url: r.config.url.clone(),
                    branch: branch.clone(),
                    signal: signal.clone(),
                })
            })
            .collect()
    }

    /// How many (repository, branch) heads there are to load.
    pub fn tracked(&self) -> usize {
        self.running().values().map(|r| r.config.branches.len()).sum()
    }

    /// Waits for every source loop to end (after the shutdown signal).
    pub async fn join(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Checks the branches an API caller asks for: each a valid branch name ([`check_branch`]),
/// duplicates dropped, at most [`MAX_BRANCHES`].
pub fn check_branches(branches: &[String]) -> Result<Vec<String>, String> {
    let mut kept: Vec<String> = Vec::new();
    for branch in branches {
        check_branch(branch)?;
        if !kept.contains(branch) {
            kept.push(branch.clone());
        }
    }
    if kept.len() > MAX_BRANCHES {
        return Err(format!("{} branches asked for; a repository tracks at most {MAX_BRANCHES}", kept.len()));
    }
    Ok(kept)
}

/// Whether `name` is a branch name git accepts (the rules of `git check-ref-format --branch`)
/// that nothing can take for a command-line option: not empty, at most 255 bytes; no control
/// character, white space or any of `~ ^ : ? * [ \`; no `..`, `@{` or `//`; not `@` or `HEAD`;
/// not starting with `-` or `/`, not ending with `/` or `.`; no part (between `/`) starting
/// with `.` or ending with `.lock`.
pub fn check_branch(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a branch name is empty".into());
    }
    if name.len() > 255 {
        return Err(format!("a branch name is {} bytes long; git branch names here are at most 255", name.len()));
    }
    let refuse = |why: String| Err(format!("branch '{}' is not a valid branch name: {why}", name.escape_debug()));
    if let Some(c) = name.chars().find(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(*c)) {
        return refuse(format!("it contains {c:?}"));
    }
    if name.starts_with('-') {
        return refuse("it starts with '-'".into());
    }
    for bad in ["..", "@{", "//"] {
        if name.contains(bad) {
            return refuse(format!("it contains '{bad}'"));
        }
    }
    if name == "@" || name == "HEAD" {
        return refuse("git keeps that name for itself".into());
    }
    if name.starts_with('/') || name.ends_with('/') || name.ends_with('.') {
        return refuse("it starts or ends with '/', or ends with '.'".into());
    }
    if name.split('/').any(|part| part.starts_with('.') || part.ends_with(".lock")) {
        return refuse("a part of it starts with '.' or ends with '.lock'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_follow_gits_rules() {
        let longest = "x".repeat(255);
        for good in ["main", "release/2024.05", "feature/x-y_z", "v1.2.3", "a@b", "ünïcode", longest.as_str()] {
            assert_eq!(check_branch(good), Ok(()), "{good}");
        }
        let long = "x".repeat(256);
        for bad in [
            "",
            "-f",
            "--upload-pack=evil",
            "a..b",
            "a b",
            "a\tb",
            "a\nb",
            "a\u{7f}",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[b",
            "a\\b",
            "a@{1}",
            "@",
            "HEAD",
            "/a",
            "a/",
            "a//b",
            "a.",
            ".hidden",
            "a/.b",
            "a.lock",
            "a.lock/b",
            "\u{a0}nbsp",
            long.as_str(),
        ] {
            assert!(check_branch(bad).is_err(), "{bad:?}");
        }
        assert!(check_branch("a\nb").unwrap_err().contains("a\\nb"), "control characters are shown escaped");
    }

    #[test]
    fn branches_are_deduplicated_and_bounded() {
        let asked = vec!["main".to_string(), "prod".to_string(), "main".to_string()];
        assert_eq!(check_branches(&asked), Ok(vec!["main".to_string(), "prod".to_string()]));
        let many: Vec<String> = (0..=MAX_BRANCHES).map(|i| format!("b{i}")).collect();
        assert!(check_branches(&many).unwrap_err().contains("at most"));
        assert!(check_branches(&["ok".to_string(), "not ok".to_string()]).is_err());
    }
}
