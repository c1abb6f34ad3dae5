//! Bounds on the renders gitmoxi does on request (issue 27): plan previews, gmctl `commit riskiq`
//! and `commit dryrun` share [`MAX_RENDERS`] render slots, each held for as long as its
//! render-worker child runs (a render stopped by a timeout gives its slot back only once its
//! worker is dead); and one pull request has one preview at a time: a newer push cancels the
//! older preview ([`Newest`]), whose worker is killed with its process group.
//!
//! The source loop does not take a slot: what gitmoxi deploys never waits behind a preview.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Render workers run at once for previews, riskiq and dryrun (each may use
/// [`crate::io::render_worker::WORKER_MEMORY_MIB`]).
pub const MAX_RENDERS: usize = 2;
/// How long a riskiq, dryrun or `GET /api/v2/preview` render waits for a slot.
pub const QUEUE_WAIT: Duration = Duration::from_secs(60);

/// Why a render on request gave no snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// Every slot stayed taken for the whole wait.
    Busy(Duration),
    /// Stopped before it finished: a newer push to the pull request, the pull request closed, a
    /// timeout, or the caller went away.
    Cancelled,
    /// The render itself failed (the worker could not start, the commit is unreadable, …).
    Failed(String),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Busy(waited) => write!(
                f,
                "{MAX_RENDERS} renders (plan previews, commit riskiq, commit dryrun) were running for the whole {} s this one waited; try again in a minute",
                waited.as_secs()
            ),
            RenderError::Cancelled => {
                f.write_str("the render was stopped before it finished (a newer push, a closed pull request, a timeout, or the caller went away)")
            }
            RenderError::Failed(why) => f.write_str(why),
        }
    }
}

impl From<String> for RenderError {
    fn from(why: String) -> RenderError {
        RenderError::Failed(why)
    }
}

/// One render slot; given back when dropped (move it into the task that waits for the worker).
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
}

/// The slots every render on request shares.
fn slots() -> &'static Arc<Semaphore> {
    static SLOTS: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(MAX_RENDERS)))
}

/// Renders on request running now (at most [`MAX_RENDERS`]).
pub fn running() -> usize {
    MAX_RENDERS.saturating_sub(slots().available_permits())
}

/// A render slot, waiting at most `wait` for one, or until `cancel` fires.
pub async fn permit(wait: Duration, cancel: &CancellationToken) -> Result<Permit, RenderError> {
    permit_from(slots().clone(), wait, cancel).await
}

async fn permit_from(slots: Arc<Semaphore>, wait: Duration, cancel: &CancellationToken) -> Result<Permit, RenderError> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(RenderError::Cancelled),
        got = tokio::time::timeout(wait, slots.acquire_owned()) => match got {
            Ok(Ok(slot)) => Ok(Permit { _slot: slot }),
            Ok(Err(_)) => Err(RenderError::Failed("the render slots are closed: gitmoxi is stopping".into())),
            Err(_) => Err(RenderError::Busy(wait)),
        },
    }
}

/// The newest job of each key (a pull request): beginning one cancels the one before it.
#[derive(Debug)]
pub struct Newest<K: Eq + Hash + Clone> {
    jobs: Mutex<HashMap<K, (u64, CancellationToken)>>,
    next: AtomicU64,
}

impl<K: Eq + Hash + Clone> Default for Newest<K> {
    fn default() -> Self {
        Newest { jobs: Mutex::new(HashMap::new()), next: AtomicU64::new(0) }
    }
}

impl<K: Eq + Hash + Clone> Newest<K> {
    /// Registers a new job for `key`, cancelling the job it replaces.
    pub fn begin(self: &Arc<Self>, key: K) -> Ticket<K> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let replaced = crate::base::sync::lock(&self.jobs).insert(key.clone(), (id, cancel.clone()));
        if let Some((_, older)) = replaced {
            older.cancel();
        }
        Ticket { owner: self.clone(), key, id, cancel }
    }

    /// Cancels the job of `key` (a closed pull request); whether there was one.
    pub fn cancel(&self, key: &K) -> bool {
        match crate::base::sync::lock(&self.jobs).remove(key) {
            Some((_, job)) => {
                job.cancel();
                true
            }
            None => false,
        }
    }

    /// Keys with a job running.
    pub fn len(&self) -> usize {
        crate::base::sync::lock(&self.jobs).len()
    }

    /// Whether no job runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A job's place in [`Newest`]: its cancellation, and its entry, removed when dropped unless a
/// newer job took the key.
#[derive(Debug)]
pub struct Ticket<K: Eq + Hash + Clone> {
    owner: Arc<Newest<K>>,
    key: K,
    id: u64,
    cancel: CancellationToken,
}

impl<K: Eq + Hash + Clone> Ticket<K> {
    /// Fires when a newer job of the same key begins, or the key is cancelled.
    pub fn token(&self) -> &CancellationToken {
        &self.cancel
    }
}

impl<K: Eq + Hash + Clone> Drop for Ticket<K> {
    fn drop(&mut self) {
        let mut jobs = crate::base::sync::lock(&self.owner.jobs);
        if jobs.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            jobs.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_job_of_the_same_key_cancels_the_older_one_only() {
        let jobs: Arc<Newest<(String, u64)>> = Arc::default();
        let first = jobs.begin(("deploys".into(), 7));
        let other = jobs.begin(("deploys".into(), 8));
        assert!(!first.token().is_cancelled());
        let second = jobs.begin(("deploys".into(), 7));
        assert!(first.token().is_cancelled(), "the older push's preview is cancelled");
        assert!(!second.token().is_cancelled());
        assert!(!other.token().is_cancelled(), "another pull request is untouched");
        assert_eq!(jobs.len(), 2);
        drop(first);
        assert_eq!(jobs.len(), 2, "the older job's end leaves the newer job registered");
        assert!(jobs.cancel(&("deploys".into(), 7)), "closing the pull request cancels its preview");
        assert!(second.token().is_cancelled());
        assert!(!jobs.cancel(&("deploys".into(), 7)));
        drop(second);
        drop(other);
        assert!(jobs.is_empty());
    }

    #[tokio::test]
    async fn a_render_waits_for_a_slot_and_says_when_none_came() {
        let slots = Arc::new(Semaphore::new(2));
        let cancel = CancellationToken::new();
        let a = permit_from(slots.clone(), Duration::from_millis(10), &cancel).await.unwrap();
        let _b = permit_from(slots.clone(), Duration::from_millis(10), &cancel).await.unwrap();
        let busy = permit_from(slots.clone(), Duration::from_millis(10), &cancel).await.unwrap_err();
        assert_eq!(busy, RenderError::Busy(Duration::from_millis(10)));
        assert!(busy.to_string().contains("try again"), "{busy}");
        drop(a);
        permit_from(slots.clone(), Duration::from_millis(10), &cancel).await.expect("a slot given back is taken");
        cancel.cancel();
        assert_eq!(permit_from(slots, Duration::from_secs(60), &cancel).await.unwrap_err(), RenderError::Cancelled);
    }
}
