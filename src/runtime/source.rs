//! The Git source loop of one tracked branch: fetch, and when the head moved (or on first
//! load) render the whole checkout and hand it to the controller.
//!
//! Blocking git and rendering run on `spawn_blocking`. A failed fetch or an unreadable
//! checkout changes nothing (the previous head stays in force); it is logged and counted.

use crate::io::git::GitSource;
use crate::runtime::config::RepoConfig;
use crate::runtime::controller::heads::LoadedHead;
use crate::runtime::controller::{Controller, RepoPolicy};
use gitmoxi_deploy::spec::{load_snapshot, RenderContext, Snapshot};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// How a branch's source loop is reached: wake it now, or wake it and wait for a fetch.
pub struct SourceSignal {
    wake: Notify,
    fetches: watch::Sender<Fetches>,
}

/// Fetches begun and finished by one source loop (a fetch ends once its head, if new, is
/// installed).
#[derive(Debug, Clone, Copy, Default)]
struct Fetches {
    started: u64,
    finished: u64,
}

impl SourceSignal {
    pub fn new() -> Arc<SourceSignal> {
        Arc::new(SourceSignal { wake: Notify::new(), fetches: watch::channel(Fetches::default()).0 })
    }

    /// Wakes the loop: it fetches at once (wakes during a fetch coalesce into one more).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wakes the loop and waits, at most `limit`, until a fetch that began after this call has
    /// finished; `false` when the limit passed first.
    pub async fn fetch_now(&self, limit: Duration) -> bool {
        let mut fetches = self.fetches.subscribe();
        let begun_before = fetches.borrow().started;
        self.wake();
        let finished = tokio::time::timeout(limit, fetches.wait_for(|f| f.finished > begun_before)).await;
        matches!(finished, Ok(Ok(_)))
    }

    fn begin(&self) {
        self.fetches.send_modify(|f| f.started += 1);
    }

    fn end(&self) {
        self.fetches.send_modify(|f| f.finished = f.started);
    }
}

/// How many loaded commits are remembered per branch (for `GET /api/v1/commits`).
const COMMITS_KEPT: usize = 100;

/// The commits loaded for a branch, newest first, with when they were received (epoch ms).
pub fn commits_seen(store: &gitmoxi_state::Store, repo: &str, branch: &str) -> Vec<(String, u64)> {
    let row = gitmoxi_state::branch_row(repo, branch);
    match store.table::<Vec<(String, u64)>>(gitmoxi_state::TableName::SeenCommits).and_then(|t| t.get(&row)) {
        Ok(seen) => seen.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(repo, branch, error = %e, "the loaded commits could not be read");
            Vec::new()
        }
    }
}

fn remember_commit(store: &gitmoxi_state::Store, repo: &str, branch: &str, commit: &str, at_ms: u64) {
    let mut seen = commits_seen(store, repo, branch);
    if seen.first().map(|(c, _)| c.as_str()) == Some(commit) {
        return;
    }
    seen.insert(0, (commit.to_string(), at_ms));
    seen.truncate(COMMITS_KEPT);
    let row = gitmoxi_state::branch_row(repo, branch);
    if let Err(e) = store.table(gitmoxi_state::TableName::SeenCommits).and_then(|t| t.put(&row, &seen)) {
        tracing::warn!(repo, branch, error = %e, "could not remember the loaded commit");
    }
}

/// Gives a source its credentials, read on use: the HTTPS token, or the SSH deploy key and the
/// known_hosts file its server must be in.
pub async fn authorize(controller: &Controller, repo: &RepoConfig, source: &GitSource) -> Result<(), String> {
    if let Some(from) = &repo.token {
        let token = controller.credentials.token(from).await.map_err(|e| format!("no token for the fetch: {e}"))?;
        source.set_token(Some(token));
    }
    if let Some(ssh) = &repo.ssh {
        let private_key = match &ssh.key {
            Some(from) => {
                let mut key = controller.credentials.token(from).await.map_err(|e| format!("no SSH deploy key for the fetch: {e}"))?;
                if !key.ends_with('\n') {
                    key.push('\n');
                }
                Some(key)
            }
            None => None,
        };
        source.set_ssh(Some(crate::io::git::source::SshAuth {
            private_key: private_key.unwrap_or_default(),
            known_hosts: ssh.known_hosts.clone(),
        }));
    }
    Ok(())
}

/// Where a repo's bare mirror lives under the state directory.
pub fn mirror_dir(state_dir: &std::path::Path, repo: &RepoConfig) -> PathBuf {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(&Sha256::digest(repo.url.as_bytes())[..8]);
    state_dir.join("repos").join(format!("{}-{digest}", repo.name))
}

/// Fetches and loads once; returns the head commit, and the snapshot when it is new.
pub async fn fetch_and_load(
    source: Arc<GitSource>,
    last: Option<String>,
    ctx: RenderContext,
    worker: Option<std::path::PathBuf>,
) -> Result<(String, Option<Snapshot>), crate::io::git::GitError> {
    tokio::task::spawn_blocking(move || {
        let commit = source.fetch()?;
        if last.as_deref() == Some(commit.as_str()) {
            return Ok((commit, None));
        }
        let snapshot = match &worker {
            // a template that explodes in memory kills a worker, never the controller
            Some(worker) => {
                crate::io::render_worker::load_sandboxed(worker, &source.tree(&commit)?, source.mirror(), Some(&commit), &ctx, false)
                    .map_err(crate::io::git::GitError::Read)?
            }
            None => {
                let mut snapshot = load_snapshot(&source.tree(&commit)?, &ctx);
                crate::io::render_worker::drop_rendered(&mut snapshot);
                snapshot
            }
        };
        Ok((commit, Some(snapshot)))
    })
    .await
    .unwrap_or_else(|e| Err(crate::io::git::GitError::Read(format!("git task panicked: {e}"))))
}

/// Polls one branch until shutdown; `wake` triggers an immediate fetch.
pub async fn run(
    controller: Arc<Controller>,
    repo: RepoConfig,
    branch: String,
    state_dir: PathBuf,
    signal: Arc<SourceSignal>,
    shutdown: CancellationToken,
) {
    let source = Arc::new(GitSource::new(&repo.url, &branch, mirror_dir(&state_dir, &repo), None));
    let ctx = RenderContext { default_region: controller.settings.default_region.clone(), limits: controller.settings.render_limits };
    let policy = RepoPolicy {
        max_prune: repo.max_prune,
        max_prune_percent: repo.max_prune_percent,
        drift: repo.drift,
        adopt_untagged: repo.adopt_untagged,
    };
    let head_row = gitmoxi_state::branch_row(&repo.name, &branch);
    let mut last: Option<String> = None;
    loop {
        signal.begin();
        // read on use: a rotated secret is picked up within the cache TTL
        if let Err(e) = authorize(&controller, &repo, &source).await {
            tracing::error!(repo = %repo.name, "{e}");
        }
        match fetch_and_load(source.clone(), last.clone(), ctx.clone(), controller.settings.render_worker.clone()).await {
            Ok((commit, Some(snapshot))) => {
                // apps outside the repository's scope are invalid, naming the rule (issue 27)
                let snapshot = gitmoxi_deploy::scope::restrict(snapshot, &repo.scope, controller.settings.own_account.as_deref());
                controller.metrics.git_fetch_total.with_label_values(&["changed"]).inc();
                tracing::info!(repo = %repo.name, branch = %branch, commit = %commit, apps = snapshot.apps.len(), "loaded head");
                for w in &snapshot.warnings {
                    tracing::warn!(repo = %repo.name, "{w}");
                }
                let head = LoadedHead {
                    repo: repo.name.clone(),
                    branch: branch.clone(),
                    commit: commit.clone(),
                    snapshot,
                    policy,
                    source: shutdown.clone(),
                };
                match controller.load_head(head).await {
                    Ok(()) => {
                        controller.record_fetch(&repo.name, &branch, None);
                        if let Err(e) =
                            controller.store.table(gitmoxi_state::TableName::LoadedHeads).and_then(|t| t.put(&head_row, &commit))
                        {
                            tracing::warn!(repo = %repo.name, branch = %branch, error = %e, "the loaded head was not remembered");
                        }
                        remember_commit(&controller.store, &repo.name, &branch, &commit, controller.clock.now_ms());
                        last = Some(commit);
                    }
                    Err(e) => {
                        controller.record_fetch(&repo.name, &branch, Some(format!("the new head could not be recorded: {e}")));
                        tracing::error!(repo = %repo.name, error = %e, "could not record the new head; will retry")
                    }
                }
            }
            Ok((_, None)) => {
                controller.metrics.git_fetch_total.with_label_values(&["unchanged"]).inc();
                controller.record_fetch(&repo.name, &branch, None);
            }
            Err(e) => {
                controller.metrics.git_fetch_total.with_label_values(&["error"]).inc();
                controller.record_fetch(&repo.name, &branch, Some(crate::io::git::source::redact_in_text(&e.to_string())));
                tracing::error!(repo = %repo.name, branch = %branch, error = %e, "git fetch failed; the previous head stays in force");
            }
        }
        signal.end();
        let jitter = controller.jitter_ms(repo.poll_interval.as_millis() as u64 / 10);
        let pause = repo.poll_interval + Duration::from_millis(jitter);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
            _ = signal.wake.notified() => {}
        }
    }
}
