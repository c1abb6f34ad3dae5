//! The one way an operator command reaches an app (issue 24): every producer — the API, the
//! page, gmctl's v1 calls, Slack's buttons, the CLI through the API — calls
//! [`Controller::submit`]. Without high availability (or on the replica that owns the app) the
//! command is appended to the app's log in the store and the app is queued; under HA, for an app
//! another replica owns, it is handed to that replica through the HA table and appended there.
//!
//! Must never: write a command anywhere but the log of the replica that acts for the app, or
//! answer "accepted" for a command that was not written (or handed over).

use super::Controller;
use gitmoxi_deploy::commands::Command;
use gitmoxi_deploy::record::{AppKey, Level};
use gitmoxi_state::{HistoryEvent, StoreError};
use serde::{Deserialize, Serialize};

/// Where a submitted command went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Appended to the app's log here, with this sequence number.
    Logged { seq: u64 },
    /// Handed to the replica that owns the app (its shard's inbox in the HA table); the owner
    /// appends it within a lease renewal.
    Forwarded { shard: u32, owner: Option<String> },
}

/// Why a command was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the command was not recorded: {0}")]
    Store(#[from] StoreError),
    #[error("could not hand the command to the replica that owns {app}: {message}; try again")]
    Forward { app: String, message: String },
    #[error("the command was recorded, but the branch could not be planned again: {0}")]
    Replan(String),
}

/// What a forwarded command carries from the replica that received it to the owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardedCommand {
    pub app: AppKey,
    pub command: Command,
    /// The history line the owner writes with it.
    pub note: String,
}

impl Controller {
    /// Submits `command` for `key` (see the module): `note` is the history line it leaves.
    pub async fn submit(&self, key: &AppKey, command: Command, note: String) -> Result<Submitted, SubmitError> {
        if let Some(ha) = self.ha().filter(|ha| !ha.owns(key)) {
            let now = self.clock.now_ms();
            let forwarded = ForwardedCommand { app: key.clone(), command, note };
            let request = serde_json::json!({ "submit": forwarded });
            let n = self.jitter_ms(u64::MAX / 2);
            let owner = ha.owner_of(key, now).map(|(name, _)| name);
            let shard = ha
                .forward(key, request, None, now, n)
                .await
                .map_err(|e| SubmitError::Forward { app: key.prefix.clone(), message: e.to_string() })?;
            return Ok(Submitted::Forwarded { shard, owner });
        }
        self.submit_here(key, command, note).await
    }

    /// [`Controller::submit`] of one command for many apps (gmctl's `commit deploy -f`): each
    /// branch is planned again once, not once per app. Stops at the first that is not taken.
    pub async fn submit_all(&self, keys: &[AppKey], command: &Command, note: &str) -> Result<Vec<Submitted>, SubmitError> {
        let mut out = Vec::with_capacity(keys.len());
        let mut branches = std::collections::BTreeSet::new();
        for key in keys {
            if self.ha().is_some_and(|ha| !ha.owns(key)) {
                out.push(self.submit(key, command.clone(), note.to_string()).await?);
            } else {
                out.push(self.log_here(key, command, note.to_string())?);
                branches.insert((key.repo.clone(), key.branch.clone()));
            }
        }
        if *command == Command::Force {
            for (repo, branch) in branches {
                self.request_replan(&repo, &branch).await.map_err(|e| SubmitError::Replan(e.to_string()))?;
            }
        }
        Ok(out)
    }

    /// Appends `command` to the app's log in this replica's store, notes it, and queues the app
    /// (a force plans the branch again: it changes the head's intent).
    pub(crate) async fn submit_here(&self, key: &AppKey, command: Command, note: String) -> Result<Submitted, SubmitError> {
        let force = command == Command::Force;
        let submitted = self.log_here(key, &command, note)?;
        if force {
            self.request_replan(&key.repo, &key.branch).await.map_err(|e| SubmitError::Replan(e.to_string()))?;
        }
        Ok(submitted)
    }

    fn log_here(&self, key: &AppKey, command: &Command, note: String) -> Result<Submitted, SubmitError> {
        let seq = self.store.submit_command(key, command)?;
        let event = HistoryEvent { at_ms: self.clock.now_ms(), level: Level::Info, deployment: None, commit: None, message: note };
        if let Err(e) = self.store.append_history(key, &event) {
            tracing::warn!(app = %key, error = %e, "the command is recorded; its history line is not");
        }
        self.queue.add(key.clone());
        Ok(Submitted::Logged { seq })
    }

    /// Lets the held deletes of `repo`/`branch` go ahead once, on every replica that holds a
    /// shard of an app the branch holds back (HA), and here.
    pub async fn allow_prune(&self, repo: &str, branch: &str) -> Result<(), SubmitError> {
        if let Some(ha) = self.ha() {
            let now = self.clock.now_ms();
            let held: Vec<AppKey> = self.head(repo, branch).map_or_else(Vec::new, |h| {
                h.intents
                    .values()
                    .filter(|i| i.intent == gitmoxi_deploy::intent::Intent::Held)
                    .map(|i| AppKey { repo: repo.to_string(), branch: branch.to_string(), prefix: i.app.clone() })
                    .filter(|k| !ha.owns(k))
                    .collect()
            });
            let mut shards = std::collections::BTreeSet::new();
            for key in held {
                if shards.insert(ha.shard_of(&key)) {
                    let request = serde_json::json!({"allow_prune": {"repo": repo, "branch": branch}});
                    ha.forward(&key, request, None, now, self.jitter_ms(u64::MAX / 2))
                        .await
                        .map_err(|e| SubmitError::Forward { app: key.prefix.clone(), message: e.to_string() })?;
                }
            }
        }
        self.allow_prune_here(repo, branch).await
    }

    /// Records an `allow_prune` in this replica's store and plans the branch again.
    pub async fn allow_prune_here(&self, repo: &str, branch: &str) -> Result<(), SubmitError> {
        self.store.allow_prune(repo, branch)?;
        self.request_replan(repo, branch).await.map_err(|e| SubmitError::Replan(e.to_string()))
    }

    /// Appends a command another replica received for an app this one owns (from the HA inbox).
    pub async fn submit_forwarded(&self, forwarded: ForwardedCommand) -> Result<Submitted, SubmitError> {
        self.submit_here(&forwarded.app, forwarded.command, forwarded.note).await
    }
}
