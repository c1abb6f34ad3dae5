//! Pins (issue 26): `gitmoxi rollback APP --to COMMIT|previous` on a steady app. The target is
//! found in the store's deployment history (the pure crate chooses it), the pin is handed to the
//! heads owner — the one writer of the pins table — which installs it and plans the branch
//! again: the app's desired files become the pinned ones, so the worker redeploys them with the
//! app's own strategy and guards. `gitmoxi unpin APP`, or a commit that changes the app's files,
//! releases it.
//!
//! Must never: pin an app with a deployment in flight (that is `rollback` without `--to`), or
//! pin to anything but a deployment that succeeded.

use super::{Controller, PinSummary};
use gitmoxi_deploy::record::AppKey;
use gitmoxi_deploy::record::Level;
use gitmoxi_deploy::release::pin::{self, Pin, RollbackTo};
use gitmoxi_deploy::spec::Snapshot;
use gitmoxi_state::HistoryEvent;
use gitmoxi_state::StoreError;
use std::collections::BTreeMap;

/// Why a pin or an unpin was refused.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{app} has a deployment in flight; `gitmoxi rollback {app}` (without --to) rolls it back")]
    InFlight { app: String },
    #[error("{0}")]
    NoTarget(String),
    #[error("{app} is not in a loaded head of {repo}@{branch} yet; try again once the branch is fetched")]
    NoHead { app: String, repo: String, branch: String },
    #[error("{app} is not pinned")]
    NotPinned { app: String },
    #[error("under high availability another replica acts for {app} ({owner}); send the command to it")]
    NotOwner { app: String, owner: String },
    #[error("the controller is shutting down")]
    Stopped,
}

/// Sets (or clears) the pin in the app's head row (the heads owner's; high availability copies
/// it with the app).
fn store_pin(controller: &Controller, key: &AppKey, pin: Option<Pin>) -> Result<(), StoreError> {
    let Some(mut row) = controller.store.intent(key)? else { return Ok(()) };
    if row.pin != pin {
        row.pin = pin;
        controller.store.put_intent(key, &row)?;
        controller.forget_kept_pins();
    }
    Ok(())
}

impl Controller {
    /// The pins of `repo`/`branch`, by prefix.
    pub fn pins_of(&self, repo: &str, branch: &str) -> Result<Vec<(String, Pin)>, StoreError> {
        let branch_key = (repo.to_string(), branch.to_string());
        if let Some(kept) = crate::base::sync::lock(&self.pins).get(&branch_key) {
            return Ok(kept.clone());
        }
        let read: Vec<(String, Pin)> =
            self.store.intents_of_branch(repo, branch)?.into_iter().filter_map(|(prefix, row)| row.pin.map(|p| (prefix, p))).collect();
        crate::base::sync::lock(&self.pins).insert(branch_key, read.clone());
        Ok(read)
    }

    /// Forgets what [`Controller::pins_of`] kept (a pin written or released, a shard imported).
    pub(super) fn forget_kept_pins(&self) {
        crate::base::sync::lock(&self.pins).clear();
    }

    /// Rolls a steady app back to `to` and pins it there (see the module). Answers the pin.
    pub async fn pin_to(&self, key: &AppKey, to: &RollbackTo, by: &str) -> Result<Pin, PinError> {
        if let Some(ha) = self.ha().filter(|ha| !ha.owns(key)) {
            let owner = ha.owner_of(key, self.clock.now_ms()).map_or_else(|| "none yet".to_string(), |(name, _)| name);
            return Err(PinError::NotOwner { app: key.prefix.clone(), owner });
        }
        if self.store.record(key)?.is_some_and(|r| r.in_flight()) {
            return Err(PinError::InFlight { app: key.prefix.clone() });
        }
        let head = self.head(&key.repo, &key.branch).ok_or_else(|| PinError::NoHead {
            app: key.prefix.clone(),
            repo: key.repo.clone(),
            branch: key.branch.clone(),
        })?;
        if !head.intents.contains_key(&key.prefix) {
            return Err(PinError::NoTarget(format!(
                "{} is not in the head of {}@{}: only an app the branch has can be pinned",
                key.prefix, key.repo, key.branch
            )));
        }
        let applied = self.store.app(key)?.map(|e| e.applied).unwrap_or_default();
        let deployments = self.store.deployments_of(key, gitmoxi_state::MAX_DEPLOYMENTS_PER_APP)?;
        let target = pin::rollback_target(&deployments, &applied, to).map_err(PinError::NoTarget)?;
        // the branch's own files of the app (not an earlier pin's)
        let branch_app = head.unpinned.get(&key.prefix).or_else(|| head.snapshot.apps.get(&key.prefix));
        let current = branch_app.and_then(|a| a.as_ref().ok());
        let app = pin::desired_from_record(target, current)
            .ok_or_else(|| PinError::NoTarget(format!("deployment {} kept no files to deploy again", target.id)))?;
        let pin = Pin {
            commit: target.commit.clone(),
            fingerprint: target.fingerprint.clone(),
            head_fingerprint: current.map(|c| c.fingerprint.clone()),
            by: by.to_string(),
            at_ms: self.clock.now_ms(),
            from_deployment: target.id.clone(),
            app,
        };
        // a fingerprint that failed since is deployed anyway (the pin is its own force: see
        // `Controller::intents_of`); no separate force command that could race the pin
        self.set_pin(key, Some(pin.clone())).await?;
        Ok(pin)
    }

    /// Releases an app's pin (`gitmoxi unpin`): the branch head's files are deployed again.
    pub async fn unpin(&self, key: &AppKey) -> Result<Pin, PinError> {
        let pin = self.store.intent(key)?.and_then(|row| row.pin).ok_or_else(|| PinError::NotPinned { app: key.prefix.clone() })?;
        self.set_pin(key, None).await?;
        Ok(pin)
    }

    async fn set_pin(&self, key: &AppKey, pin: Option<Pin>) -> Result<(), PinError> {
        self.pin_in_heads(key.clone(), pin).await.map_err(|e| match e {
            super::heads::HeadError::Store(e) => PinError::Store(e),
            super::heads::HeadError::Stopped => PinError::Stopped,
        })
    }

    /// The heads owner's part: writes (or removes) the pin row, notes it, and plans the branch
    /// again.
    pub(super) fn install_pin(&self, key: &AppKey, pin: Option<&Pin>) -> Result<(), StoreError> {
        store_pin(self, key, pin.cloned())?;
        let message = match pin {
            Some(pin) => {
                format!(
                    "pinned at commit {} by {}: AWS gets the files of deployment {}; the branch head's files of this app wait until `gitmoxi unpin {}` or a commit that changes them",
                    gitmoxi_deploy::strategy::short_commit(&pin.commit),
                    pin.by,
                    pin.from_deployment,
                    key.prefix
                )
            }
            None => "unpinned by an operator: the branch head's files are deployed again".to_string(),
        };
        let event = gitmoxi_state::HistoryEvent {
            at_ms: self.clock.now_ms(),
            level: gitmoxi_deploy::record::Level::Warn,
            deployment: None,
            commit: pin.map(|p| p.commit.clone()),
            message,
        };
        self.store.append_history(key, &event)?;
        self.replan(&key.repo, &key.branch)?;
        Ok(())
    }

    /// Replaces each pinned app of the loaded head by its pin, or releases the pin (row removed,
    /// noted) when the head changed the app's files. Answers the pins kept and the branch's own
    /// files of those apps. The heads owner's.
    #[allow(clippy::type_complexity)]
    pub(super) fn apply_pins(
        &self,
        repo: &str,
        branch: &str,
        commit: &str,
        snapshot: &mut Snapshot,
    ) -> Result<
        (BTreeMap<String, PinSummary>, BTreeMap<String, Result<gitmoxi_deploy::spec::DesiredApp, gitmoxi_deploy::spec::InvalidApp>>),
        StoreError,
    > {
        let stored = self.pins_of(repo, branch)?;
        let (mut kept, mut own) = (BTreeMap::new(), BTreeMap::new());
        if stored.is_empty() {
            return Ok((kept, own));
        }
        for (prefix, _) in &stored {
            if let Some(app) = snapshot.apps.get(prefix) {
                own.insert(prefix.clone(), app.clone());
            }
        }
        for ((prefix, effect), (_, pin)) in gitmoxi_deploy::release::pin::apply(snapshot, &stored).into_iter().zip(&stored) {
            let key = AppKey { repo: repo.to_string(), branch: branch.to_string(), prefix: prefix.clone() };
            match effect {
                gitmoxi_deploy::release::pin::PinEffect::Kept => {
                    kept.insert(prefix, PinSummary { commit: pin.commit.clone(), by: pin.by.clone(), at_ms: pin.at_ms });
                }
                gitmoxi_deploy::release::pin::PinEffect::Released(why) => {
                    store_pin(self, &key, None)?;
                    own.remove(&prefix);
                    let message = format!(
                        "pin at commit {} released: {why}; the branch head's files are deployed",
                        gitmoxi_deploy::strategy::short_commit(&pin.commit)
                    );
                    tracing::info!(app = %key, "{message}");
                    let event = HistoryEvent {
                        at_ms: self.clock.now_ms(),
                        level: Level::Info,
                        deployment: None,
                        commit: Some(commit.to_string()),
                        message,
                    };
                    self.store.append_history(&key, &event)?;
                }
            }
        }
        Ok((kept, own))
    }
}
