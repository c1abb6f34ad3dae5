//! The tracked repositories: those of the configuration and those added through the API are the
//! same kind of object (SPEC §5). API-added ones are persisted in the store and come back after a
//! restart; each (repository, branch) runs one source loop, owned and joined here.
//!
//! Removing a repository stops its sources and forgets its heads; nothing in AWS is touched (its
//! apps keep running as they are).

use crate::config::{repo_name, RepoConfig};
use crate::controller::Controller;
use crate::credentials::TokenSource;
use crate::source::SourceSignal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const STORE_KEY: &str = "repos/api";
/// Where a repository's URL is remembered by name (`repo_url/NAME`), also after it is deleted.
const URL_KEY: &str = "repo_url/";

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
    /// What the API may add (URLs and token sources; see [`crate::repo_policy`]).
    api_policy: crate::repo_policy::ApiRepoPolicy,
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
        api_policy: crate::repo_policy::ApiRepoPolicy,
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
        crate::sync::lock(&self.running)
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
            self.spawn(repo.clone(), record);
        }
        for record in self.stored()? {
            if let Err(e) = self.add_running(record.clone()) {
                tracing::error!(repo = %record.repo_url, error = %e, "an API-added repository could not be started");
            }
        }
        Ok(())
    }

    fn stored(&self) -> Result<Vec<RepoRecord>, RepoError> {
        Ok(match self.controller.store.meta(STORE_KEY)? {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| RepoError::Invalid(format!("the stored repositories are unreadable: {e}")))?
            }
            None => Vec::new(),
        })
    }

    fn persist(&self) -> Result<(), RepoError> {
        let api: Vec<RepoRecord> = self.running().values().filter(|r| r.record.origin == "api").map(|r| r.record.clone()).collect();
        self.controller.store.put_meta(STORE_KEY, &serde_json::to_string(&api).unwrap_or_default())?;
        Ok(())
    }

    fn spawn(&self, config: RepoConfig, record: RepoRecord) {
        let cancel = self.shutdown.child_token();
        let mut signals = Vec::new();
        for branch in &config.branches {
            let signal = SourceSignal::new();
            signals.push((branch.clone(), signal.clone()));
            self.tracker.spawn(crate::source::run(
                self.controller.clone(),
                config.clone(),
                branch.clone(),
                self.state_dir.clone(),
                signal,
                cancel.clone(),
            ));
        }
        tracing::info!(repo = %config.name, branches = ?config.branches, origin = %record.origin, "tracking repository");
        // kept after the repository is deleted: its deployment records still name their URL
        if let Err(e) = self.controller.store.put_meta(&format!("{URL_KEY}{}", config.name), &crate::git::source::redact(&config.url)) {
            tracing::warn!(repo = %config.name, error = %e, "the repository's URL was not remembered for its records");
        }
        self.running().insert(config.name.clone(), Running { config, record, signals, cancel });
    }

    fn add_running(&self, mut record: RepoRecord) -> Result<String, RepoError> {
        let url = record.repo_url.trim().to_string();
        if url.is_empty() {
            return Err(RepoError::Invalid("repo_url is required".into()));
        }
        if record.branches.is_empty() {
            record.branches = vec!["main".into()];
        }
        let token = match record.access_token_arn.trim() {
            "" => None,
            arn => Some(TokenSource::parse(arn).map_err(RepoError::Invalid)?),
        };
        crate::repo_policy::check_api_repo(&url, token.as_ref(), &self.api_policy).map_err(RepoError::Invalid)?;
        let name = repo_name(&url);
        if self.running().values().any(|r| r.config.url == url) {
            return Err(RepoError::Exists(url));
        }
        if self.running().contains_key(&name) {
            return Err(RepoError::Invalid(format!(
                "another repository is already named '{name}'; repository names come from the URL's last part"
            )));
        }
        record.repo_url = url.clone();
        record.origin = "api".into();
        let config = RepoConfig {
            name: name.clone(),
            url,
            branches: record.branches.clone(),
            token,
            poll_interval: self.poll_interval,
            ..self.template.clone()
        };
        self.spawn(config, record);
        Ok(name)
    }

    /// Adds a repository through the API (persisted; its sources start now).
    pub fn add(&self, record: RepoRecord) -> Result<String, RepoError> {
        let name = self.add_running(record)?;
        self.persist()?;
        Ok(name)
    }

    /// Stops tracking an API-added repository (by URL or name).
    pub async fn remove(&self, url_or_name: &str) -> Result<RepoRecord, RepoError> {
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
        Ok(removed.record)
    }

    /// The URL of a repository by name, tracked or once tracked (the name when never seen).
    pub fn url_of(&self, name: &str) -> String {
        if let Some(r) = self.running().get(name) {
            return r.record.repo_url.clone();
        }
        match self.controller.store.meta(&format!("{URL_KEY}{name}")) {
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
