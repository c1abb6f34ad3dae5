//! The one owner of the branch heads (rule 13). Source loops send "head loaded", HTTP handlers
//! send "replan" after writing their command, a removed repository sends "forget"; one task
//! applies them in the order they arrive. A replan reads the head current when it runs, so no
//! interleaving of a replan and a newer head can put an older head back.
//!
//! The inbox is bounded: a sender waits while the owner is busy. Nothing else writes the heads
//! (tests that drive heads by hand call `Controller::apply_head` from one task).

use super::{Controller, RepoPolicy};
use gitmoxi_deploy::spec::Snapshot;
use gitmoxi_state::StoreError;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How many head messages wait at most before senders wait too.
const INBOX_CAPACITY: usize = 64;

/// A head that a source loop loaded.
pub struct LoadedHead {
    pub repo: String,
    pub branch: String,
    pub commit: String,
    pub snapshot: Snapshot,
    pub policy: RepoPolicy,
    /// The source's own stop signal: a head loaded by a source that was stopped meanwhile (its
    /// repository removed) is dropped, not installed after the "forget".
    pub source: CancellationToken,
}

/// What the owner is asked to do.
enum HeadMessage {
    Loaded {
        head: Box<LoadedHead>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Replan {
        repo: String,
        branch: String,
        done: Option<oneshot::Sender<()>>,
    },
    Forget {
        repo: String,
        branch: String,
    },
    /// An operator pinned an app (`rollback --to`) or unpinned it (`None`).
    Pin {
        key: gitmoxi_deploy::record::AppKey,
        pin: Option<Box<gitmoxi_deploy::release::pin::Pin>>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// High availability: a shard's state read from the table replaces the local one, then
    /// every head is planned again against it.
    Import {
        apps: Vec<gitmoxi_state::ImportedApp>,
        dropped: Vec<gitmoxi_deploy::record::AppKey>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// Why a head could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the controller is shutting down")]
    Stopped,
}

/// The sending side, kept by the controller; the receiving side is taken once by the owner.
pub(super) struct HeadInbox {
    tx: mpsc::Sender<HeadMessage>,
    rx: Mutex<Option<mpsc::Receiver<HeadMessage>>>,
}

impl HeadInbox {
    pub(super) fn new() -> HeadInbox {
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        HeadInbox { tx, rx: Mutex::new(Some(rx)) }
    }
}

impl Controller {
    /// Hands a loaded head to the owner and waits until it is installed (or dropped because its
    /// source stopped).
    pub async fn load_head(&self, head: LoadedHead) -> Result<(), HeadError> {
        let (done, installed) = oneshot::channel();
        self.head_inbox.tx.send(HeadMessage::Loaded { head: Box::new(head), done }).await.map_err(|_| HeadError::Stopped)?;
        installed.await.map_err(|_| HeadError::Stopped)?.map_err(HeadError::from)
    }

    /// Asks the owner to plan the current head of `repo`/`branch` again (after a command such
    /// as force or allow-prune was written); does not wait for it.
    pub async fn request_replan(&self, repo: &str, branch: &str) -> Result<(), HeadError> {
        let message = HeadMessage::Replan { repo: repo.to_string(), branch: branch.to_string(), done: None };
        self.head_inbox.tx.send(message).await.map_err(|_| HeadError::Stopped)
    }

    /// Like [`Controller::request_replan`], and waits until the owner has done it.
    pub async fn replan_and_wait(&self, repo: &str, branch: &str) -> Result<(), HeadError> {
        let (done, replanned) = oneshot::channel();
        let message = HeadMessage::Replan { repo: repo.to_string(), branch: branch.to_string(), done: Some(done) };
        self.head_inbox.tx.send(message).await.map_err(|_| HeadError::Stopped)?;
        replanned.await.map_err(|_| HeadError::Stopped)
    }

    /// Replaces the state of a shard's apps with the table's and plans every head again (the
    /// heads owner does it, so no head is planned against half-replaced state).
    pub async fn import_state(
        &self,
        apps: Vec<gitmoxi_state::ImportedApp>,
        dropped: Vec<gitmoxi_deploy::record::AppKey>,
    ) -> Result<(), HeadError> {
        let (done, imported) = oneshot::channel();
        self.head_inbox.tx.send(HeadMessage::Import { apps, dropped, done }).await.map_err(|_| HeadError::Stopped)?;
        imported.await.map_err(|_| HeadError::Stopped)?.map_err(HeadError::from)
    }

    /// Asks the owner to write (or remove) an app's pin and plan its branch again; waits for it.
    pub(super) async fn pin_in_heads(
        &self,
        key: gitmoxi_deploy::record::AppKey,
        pin: Option<gitmoxi_deploy::release::pin::Pin>,
    ) -> Result<(), HeadError> {
        let (done, installed) = oneshot::channel();
        self.head_inbox.tx.send(HeadMessage::Pin { key, pin: pin.map(Box::new), done }).await.map_err(|_| HeadError::Stopped)?;
        installed.await.map_err(|_| HeadError::Stopped)?.map_err(HeadError::from)
    }

    /// Asks the owner to forget the head of a branch that is no longer tracked.
    pub async fn request_forget(&self, repo: &str, branch: &str) -> Result<(), HeadError> {
        let message = HeadMessage::Forget { repo: repo.to_string(), branch: branch.to_string() };
        self.head_inbox.tx.send(message).await.map_err(|_| HeadError::Stopped)
    }

    /// The owner: applies head messages in order until shutdown. Runs once per controller
    /// (`Controller::run` starts it).
    pub(super) async fn own_heads(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut inbox) = crate::base::sync::lock(&self.head_inbox.rx).take() else {
            tracing::error!("the heads already have an owner; this controller runs twice");
            return;
        };
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = inbox.recv() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            match message {
                HeadMessage::Loaded { head, done } => {
                    let result = if head.source.is_cancelled() {
                        Ok(())
                    } else {
                        let LoadedHead { repo, branch, commit, snapshot, policy, .. } = *head;
                        self.apply_head(&repo, &branch, &commit, snapshot, policy)
                    };
                    let _ = done.send(result);
                }
                HeadMessage::Replan { repo, branch, done } => {
                    if let Err(e) = self.replan(&repo, &branch) {
                        tracing::error!(repo = %repo, branch = %branch, error = %e, "could not plan the head again; the next fetch will");
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                HeadMessage::Forget { repo, branch } => self.forget_head(&repo, &branch),
                HeadMessage::Pin { key, pin, done } => {
                    let _ = done.send(self.install_pin(&key, pin.as_deref()));
                }
                HeadMessage::Import { apps, dropped, done } => {
                    let mut result = self.store.import(&apps, &dropped);
                    // the imported head rows may carry pins
                    self.forget_kept_pins();
                    if result.is_ok() {
                        let heads: Vec<(String, String)> = self.heads().into_iter().map(|h| (h.repo.clone(), h.branch.clone())).collect();
                        for (repo, branch) in heads {
                            if let Err(e) = self.replan(&repo, &branch) {
                                result = Err(e);
                                break;
                            }
                        }
                    }
                    let _ = done.send(result);
                }
            }
        }
    }
}
