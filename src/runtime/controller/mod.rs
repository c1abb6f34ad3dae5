//! The controller: heads of tracked branches → per-app plans → a work queue of apps → reconcile.
//!
//! Owns the in-memory desired state (the latest loaded head per repo/branch) and the queue.
//! Level-triggered (rule 1): a reconcile never learns why it runs. Must never block the runtime:
//! rendering and git run on `spawn_blocking`.

pub mod commands;
pub mod heads;
mod holds;
pub mod pins;
pub mod queue;
pub mod reconcile;

use crate::base::clock::Clock;
use crate::io::aws::AwsProvider;
use crate::io::metrics::Metrics;
use gitmoxi_deploy::intent::{intents_of_head, AppIntent, AppliedApp, Intent, PrunePolicy};
use gitmoxi_deploy::record::{AppKey, Level, Operation};
use gitmoxi_deploy::spec::{Diagnostic, Snapshot};
use gitmoxi_state::{AppEntry, HistoryEvent, Store, StoreError};
use queue::WorkQueue;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The loaded head of one tracked branch.
pub struct HeadState {
    pub repo: String,
    pub branch: String,
    pub commit: String,
    pub snapshot: Snapshot,
    /// What the head wants of each app, by prefix.
    pub intents: BTreeMap<String, AppIntent>,
    pub loaded_at_ms: u64,
    /// The prune settings it was planned with (a re-plan after a command uses them again).
    pub policy: RepoPolicy,
    /// The apps an operator pinned (`gitmoxi rollback --to`): their files in `snapshot` are the
    /// pinned ones, not the branch's (issue 26).
    pub pins: BTreeMap<String, PinSummary>,
    /// The branch's own snapshot of each pinned app (what a release of the pin goes back to).
    pub unpinned: BTreeMap<String, Result<gitmoxi_deploy::spec::DesiredApp, gitmoxi_deploy::spec::InvalidApp>>,
}

/// What the heads keep of a pin (the API and the page show it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinSummary {
    /// The commit the app is pinned at.
    pub commit: String,
    /// Who pinned it.
    pub by: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

impl HeadState {
    /// The fingerprint of the app at `prefix` in this head, when it renders and validates.
    pub fn fingerprint_of(&self, prefix: &str) -> Option<&str> {
        self.snapshot.apps.get(prefix).and_then(|a| a.as_ref().ok()).map(|a| a.fingerprint.as_str())
    }
}

/// Settings of the controller.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    pub default_region: String,
    /// Reconciles running at once.
    pub concurrency: usize,
    /// Seed of ids and jitter (random in production, fixed in tests).
    pub seed: u64,
    /// How often a steady app is compared with AWS.
    pub drift_interval: Duration,
    /// The controller's own AWS account (STS GetCallerIdentity at start; `None` when STS did
    /// not answer): an app naming another account fails without touching anything.
    pub own_account: Option<String>,
    /// The other accounts the controller has a role in, and their regions (`[accounts]`).
    pub account_roles: gitmoxi_deploy::accounts::AccountRoles,
    /// Size bounds on what a commit may make gitmoxi read and render (`[limits]`).
    pub render_limits: gitmoxi_deploy::spec::Limits,
    /// The gitmoxi binary that renders heads in memory-capped children (`None`: render in
    /// this process, as simulations do).
    pub render_worker: Option<std::path::PathBuf>,
    /// `[[freezes]]`: when changes of matching apps wait (issue 26).
    pub freezes: Vec<gitmoxi_deploy::release::freeze::Freeze>,
}

/// Per-repo prune settings.
#[derive(Debug, Clone, Copy)]
pub struct RepoPolicy {
    pub max_prune: usize,
    pub max_prune_percent: u32,
    pub drift: gitmoxi_deploy::drift::DriftPolicy,
    /// `adopt_untagged`: the repository may take over resources gitmoxi did not create.
    pub adopt_untagged: bool,
}

pub struct Controller {
    pub store: Store,
    pub aws: Arc<dyn AwsProvider>,
    pub clock: Clock,
    pub metrics: Metrics,
    pub settings: ControllerSettings,
    pub queue: WorkQueue<AppKey>,
    heads: RwLock<BTreeMap<(String, String), Arc<HeadState>>>,
    rng: Mutex<rand::rngs::StdRng>,
    failures: Mutex<HashMap<AppKey, u32>>,
    notifier: std::sync::OnceLock<crate::integrations::notify::Notifier>,
    /// When each app was last compared with AWS, and what was found (in memory: a restart
    /// checks every app once more).
    pub(crate) drift_seen: Mutex<HashMap<AppKey, gitmoxi_deploy::drift::DriftSeen>>,
    /// Repository tokens, read on use with a short cache.
    pub credentials: Arc<crate::io::credentials::Credentials>,
    /// Messages for the one owner of the heads ([`heads`]).
    head_inbox: heads::HeadInbox,
    /// How each tracked branch's last fetches went (the web page's Repositories).
    fetches: Mutex<BTreeMap<(String, String), FetchStatus>>,
    /// Steady-state DescribeServices batched across apps.
    pub(crate) service_reads: Arc<crate::io::aws::batch::ServiceReads>,
    /// High availability (`[ha]`): shard leases and the table the state is copied to.
    ha: std::sync::OnceLock<Arc<crate::io::ha::Ha>>,
    /// The pins of each branch as the head rows hold them (read once, then kept by the heads
    /// owner, their one writer: a head is planned without reading every row of its branch).
    pins: Mutex<HashMap<(String, String), BranchPins>>,
}

/// The pins of one branch, by app prefix.
type BranchPins = Vec<(String, gitmoxi_deploy::release::pin::Pin)>;

/// How the fetches of one branch went (in memory: a restart starts over).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchStatus {
    /// When the last fetch ended.
    pub last_attempt_ms: u64,
    /// When a fetch last succeeded.
    pub last_success_ms: Option<u64>,
    /// Why the last fetch failed (`None` when it succeeded).
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Aws(#[from] crate::io::aws::AwsError),
    /// Rule 2 would be broken: a plan was about to act for an app whose last writes are not
    /// durable. Nothing was sent; the next pass replans from what is stored.
    #[error("refusing to act for {0}: its record is not flushed yet (persist before you act); nothing was sent")]
    NotDurable(AppKey),
    /// High availability: this replica may not act for the app now (another holds its shard,
    /// the lease lapsed, or its state is not in the table yet). Nothing was sent.
    #[error("refusing to act: {0}")]
    NotActing(#[from] crate::io::ha::Refusal),
}

impl ControllerError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            ControllerError::Store(_) => "store",
            ControllerError::NotDurable(_) => "not_durable",
            ControllerError::NotActing(_) => "ha_not_acting",
            ControllerError::Aws(e) => e.metric_label(),
        }
    }
}

impl Controller {
    pub fn new(store: Store, aws: Arc<dyn AwsProvider>, clock: Clock, metrics: Metrics, settings: ControllerSettings) -> Arc<Controller> {
        let rng = rand::rngs::StdRng::seed_from_u64(settings.seed);
        let credentials = Arc::new(crate::io::credentials::Credentials::new(aws.clone(), settings.default_region.clone()));
        Arc::new(Controller {
            store,
            aws,
            clock,
            metrics,
            settings,
            queue: WorkQueue::new(),
            heads: RwLock::new(BTreeMap::new()),
            rng: Mutex::new(rng),
            failures: Mutex::new(HashMap::new()),
            notifier: std::sync::OnceLock::new(),
            drift_seen: Mutex::new(HashMap::new()),
            credentials,
            head_inbox: heads::HeadInbox::new(),
            fetches: Mutex::new(BTreeMap::new()),
            service_reads: Arc::new(crate::io::aws::batch::ServiceReads::default()),
            ha: std::sync::OnceLock::new(),
            pins: Mutex::new(HashMap::new()),
        })
    }

    /// Sets where deployment events go (once; `app.rs` does it at start-up).
    pub fn set_notifier(&self, notifier: crate::integrations::notify::Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// Turns high availability on (once, before `run`; `app.rs` does it when `[ha]` is set).
    pub fn set_ha(&self, ha: Arc<crate::io::ha::Ha>) {
        self.store.enable_journal();
        let _ = self.ha.set(ha);
    }

    /// High availability, when `[ha]` turned it on.
    pub fn ha(&self) -> Option<&Arc<crate::io::ha::Ha>> {
        self.ha.get()
    }

    /// Whether this process acts for `key`: always without HA; with it, when it holds the
    /// app's shard.
    pub fn acts_for(&self, key: &AppKey) -> bool {
        self.ha().is_none_or(|ha| ha.owns(key))
    }

    /// Queues every app (stored or in a loaded head) that `pick` selects (a shard just taken).
    pub fn enqueue_shard(&self, pick: impl Fn(&AppKey) -> bool) {
        let mut keys: BTreeSet<AppKey> = self.store.app_keys().unwrap_or_default();
        for head in crate::base::sync::read(&self.heads).values() {
            for prefix in head.intents.keys() {
                keys.insert(AppKey { repo: head.repo.clone(), branch: head.branch.clone(), prefix: prefix.clone() });
            }
        }
        for key in keys.into_iter().filter(|k| pick(k)) {
            self.queue.add(key);
        }
        self.metrics.queue_depth.set(self.queue.len() as i64);
    }

    /// Queues a notification (never blocks; nothing happens without a notifier).
    pub fn notify(&self, event: crate::integrations::notify::Event) {
        if let Some(n) = self.notifier.get() {
            n.send(event);
        }
    }

    /// Makes the store durable without holding an async worker: the flush runs on a blocking
    /// thread (a throw-away test store flushes in place; see `Store::is_temporary`).
    /// With high availability, what changed is then copied to the table (fenced by the shards'
    /// leases); an app whose copy did not land is not acted for (`Ha::may_act`).
    pub async fn flush_store(&self) -> Result<(), StoreError> {
        if self.store.is_temporary() {
            self.store.flush()?;
        } else {
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.flush()).await {
                Ok(result) => result?,
                Err(e) => return Err(StoreError::Flush(format!("the flush task ended abnormally: {e}"))),
            }
        }
        if let Some(ha) = self.ha() {
            if let Err(e) = ha.mirror(&self.store, &self.metrics, self.clock.now_ms()).await {
                tracing::warn!(error = %e, "could not copy the state to the HA table; the apps it concerns wait");
            }
        }
        Ok(())
    }

    /// A jitter of up to `max_ms` from the seeded source (rule 7).
    pub fn jitter_ms(&self, max_ms: u64) -> u64 {
        crate::base::sync::lock(&self.rng).random_range(0..=max_ms)
    }

    /// A fresh deployment id.
    pub fn new_id(&self) -> String {
        let n: u64 = crate::base::sync::lock(&self.rng).random();
        format!("dep-{n:016x}")
    }

    pub fn head(&self, repo: &str, branch: &str) -> Option<Arc<HeadState>> {
        crate::base::sync::read(&self.heads).get(&(repo.to_string(), branch.to_string())).cloned()
    }

    /// Forgets the head of a branch that is no longer tracked (its apps stop being reconciled).
    /// The heads owner's (see [`heads`]).
    fn forget_head(&self, repo: &str, branch: &str) {
        crate::base::sync::write(&self.heads).remove(&(repo.to_string(), branch.to_string()));
    }

    /// The drift the last comparison with AWS found for an app, if any.
    pub fn drift_found(&self, key: &AppKey) -> Option<String> {
        crate::base::sync::lock(&self.drift_seen).get(key).and_then(|s| s.found.clone())
    }

    /// The app's status (the API, the page, the metrics, and the priority of its AWS calls),
    /// from what the store holds of it, the head it is planned from and the operator's pause.
    pub fn status_of(
        &self,
        entry: &AppEntry,
        head: Option<&HeadState>,
        record: Option<&gitmoxi_deploy::record::DeploymentRecord>,
        paused: bool,
    ) -> gitmoxi_deploy::status::AppStatus {
        gitmoxi_deploy::status::app_status(&gitmoxi_deploy::status::StatusFacts {
            intent: entry.intent,
            head_fingerprint: head.and_then(|h| h.fingerprint_of(&entry.key.prefix)),
            in_flight: record.filter(|r| r.in_flight()),
            paused,
            applied: &entry.applied,
            last_outcome: entry.last_outcome,
            unsupported: entry.unsupported.is_some(),
            hold: entry.hold.as_ref(),
            pinned: head.is_some_and(|h| h.pins.contains_key(&entry.key.prefix)),
        })
    }

    /// The level-triggered invariant (issue 23): an app that is not at rest (Synced, Failed,
    /// RolledBack, DeleteHeld, Invalid, Conflict, Unsupported, Paused, WaitingForApproval) has
    /// a pass scheduled soon — within `pending` while its head's intent waits to be acted on,
    /// within `moving` while a deployment or delete is in flight. Apps backing off after errors
    /// are left out. The simulations check it after every step; the answer names the apps
    /// that break it.
    pub fn unscheduled_apps(&self, pending: std::time::Duration, moving: std::time::Duration) -> Result<Vec<String>, StoreError> {
        use gitmoxi_deploy::status::AppStatus;
        let now = tokio::time::Instant::now();
        let backing_off: BTreeSet<AppKey> = crate::base::sync::lock(&self.failures).keys().cloned().collect();
        let mut broken = Vec::new();
        for entry in self.store.apps()? {
            if backing_off.contains(&entry.key) {
                continue;
            }
            let head = self.head(&entry.key.repo, &entry.key.branch);
            let record = self.store.record(&entry.key)?;
            let paused = self.store.commands(&entry.key)?.paused;
            let status = self.status_of(&entry, head.as_deref(), record.as_ref(), paused);
            let within = match status {
                AppStatus::Pending => pending,
                AppStatus::Deploying | AppStatus::Deleting => moving,
                AppStatus::Synced
                | AppStatus::Failed
                | AppStatus::RolledBack
                | AppStatus::DeleteHeld
                | AppStatus::Invalid
                | AppStatus::Conflict
                | AppStatus::Unsupported
                | AppStatus::Paused
                | AppStatus::WaitingForApproval
                | AppStatus::Pinned
                // held on purpose; each looks again on its own clock and is woken by what it waits on
                | AppStatus::Waiting
                | AppStatus::Blocked
                | AppStatus::Frozen => continue,
            };
            let due = self.queue.due_at(&entry.key);
            if due.is_none_or(|at| at > now + within) {
                broken.push(format!(
                    "{} is {status} but its next pass is {:?} away",
                    entry.key,
                    due.map(|at| at.saturating_duration_since(now))
                ));
            }
        }
        Ok(broken)
    }

    /// Records how a fetch of `repo`/`branch` ended (`error`: why it failed).
    pub fn record_fetch(&self, repo: &str, branch: &str, error: Option<String>) {
        let now = self.clock.now_ms();
        let mut fetches = crate::base::sync::lock(&self.fetches);
        let status = fetches.entry((repo.to_string(), branch.to_string())).or_default();
        status.last_attempt_ms = now;
        if error.is_none() {
            status.last_success_ms = Some(now);
        }
        status.error = error;
    }

    /// How the fetches of every branch went.
    pub fn fetch_statuses(&self) -> Vec<((String, String), FetchStatus)> {
        crate::base::sync::lock(&self.fetches).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn heads(&self) -> Vec<Arc<HeadState>> {
        crate::base::sync::read(&self.heads).values().cloned().collect()
    }

    /// Enqueues every app with a stored record or entry (start-up: resume whatever was in flight).
    pub fn enqueue_stored(&self) -> Result<(), StoreError> {
        for record in self.store.records()? {
            self.queue.add(record.app.clone());
        }
        Ok(())
    }

    /// Plans the current head of `repo`/`branch` again (after a force or allow-prune command).
    /// The heads owner's (see [`heads`]).
    fn replan(&self, repo: &str, branch: &str) -> Result<bool, StoreError> {
        let Some(head) = self.head(repo, branch) else { return Ok(false) };
        // the branch's own files: pins are applied again from the table
        let mut snapshot = head.snapshot.clone();
        for (prefix, own) in &head.unpinned {
            snapshot.apps.insert(prefix.clone(), own.clone());
        }
        self.apply_head(repo, branch, &head.commit, snapshot, head.policy)?;
        Ok(true)
    }

    /// What a head would do to this repository's branch against what gitmoxi applied: the apps of
    /// the branch and the head's intents. `with_commands`: operator commands (force, allowed
    /// prunes) count, as when the head is installed; a preview of a pull request leaves them out.
    pub fn intents_of(
        &self,
        repo: &str,
        branch: &str,
        snapshot: &Snapshot,
        policy: RepoPolicy,
        with_commands: bool,
    ) -> Result<(Vec<AppEntry>, Vec<gitmoxi_deploy::intent::AppIntent>), StoreError> {
        let entries = self.store.apps()?;
        let own = self.settings.own_account.as_deref();
        // what other repositories and branches own: this head may not take it (issue 27)
        let claims: BTreeMap<gitmoxi_deploy::spec::Identity, String> = entries
            .iter()
            .filter(|e| !(e.key.repo == repo && e.key.branch == branch))
            .filter_map(|e| {
                Some((e.applied.identity.as_ref()?.in_account(own), format!("{}/{}:{}", e.key.repo, e.key.branch, e.key.prefix)))
            })
            .collect();
        let mine: Vec<AppEntry> = entries.into_iter().filter(|e| e.key.repo == repo && e.key.branch == branch).collect();
        let mut applied = BTreeMap::new();
        let mut force = BTreeSet::new();
        for e in &mine {
            // an app whose first deployment is in flight owns nothing yet, but its record names
            // what it is creating: a head without its files deletes that too (issue 23, item 1)
            let identity = match &e.applied.identity {
                Some(identity) => Some(identity.clone()),
                None => self.store.record(&e.key)?.filter(|r| r.in_flight() && r.operation == Operation::Deploy).map(|r| r.identity),
            };
            if let Some(identity) = identity {
                applied.insert(
                    e.key.prefix.clone(),
                    AppliedApp {
                        prefix: e.key.prefix.clone(),
                        kind: e.kind,
                        identity,
                        fingerprint: e.applied.fingerprint.clone(),
                        failed: e.applied.failed.clone(),
                        rolled_back: e.last_outcome == Some(gitmoxi_deploy::record::Outcome::RolledBack),
                    },
                );
            }
            if with_commands && self.store.commands(&e.key)?.force {
                force.insert(e.key.prefix.clone());
            }
            // an operator's pin deploys its files even when they failed before (issue 26)
            if e.pin.as_ref().is_some_and(|p| e.applied.fingerprint.as_deref() != Some(p.fingerprint.as_str())) {
                force.insert(e.key.prefix.clone());
            }
        }
        let allow_prune = with_commands && self.store.allowed_prune(repo, branch)?.is_some();
        let prune = PrunePolicy { max_prune: policy.max_prune, max_prune_percent: policy.max_prune_percent, allow_prune };
        let plan = intents_of_head(snapshot, &applied, prune, &force, own);
        let mut plan = gitmoxi_deploy::intent::claimed_elsewhere(plan, snapshot, &claims, own);
        // the order of the changes (issue 26): a delete's `dependsOn` as its last head had it
        let mut deleted_depends_on = BTreeMap::new();
        for entry in plan.iter().filter(|e| e.intent == Intent::Delete) {
            let key = AppKey { repo: repo.to_string(), branch: branch.to_string(), prefix: entry.app.clone() };
            if let Some(stored) = self.store.intent(&key)?.filter(|i| !i.depends_on.is_empty()) {
                deleted_depends_on.insert(entry.app.clone(), stored.depends_on);
            }
        }
        gitmoxi_deploy::release::order::assign_waves(snapshot, &mut plan, &deleted_depends_on);
        Ok((mine, plan))
    }

    /// Installs a newly loaded head: plans it against the store, hands moved apps over, records
    /// each app's plan, and enqueues every app that has something to do. Only the heads owner
    /// calls it in a running controller ([`heads`]); tests that drive heads by hand call it from
    /// one task.
    pub fn apply_head(&self, repo: &str, branch: &str, commit: &str, mut snapshot: Snapshot, policy: RepoPolicy) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let (pins, unpinned) = self.apply_pins(repo, branch, commit, &mut snapshot)?;
        let allowed = self.store.allowed_prune(repo, branch)?;
        let (mine, plan) = self.intents_of(repo, branch, &snapshot, policy, true)?;
        let key_of = |prefix: &str| AppKey { repo: repo.to_string(), branch: branch.to_string(), prefix: prefix.to_string() };

        for entry in &plan {
            let key = key_of(&entry.app);
            if entry.intent == Intent::Move {
                if let Some(from) = &entry.moved_from {
                    self.store.move_app(&key_of(from), &key)?;
                    let event = HistoryEvent {
                        at_ms: now,
                        level: Level::Info,
                        deployment: None,
                        commit: Some(commit.to_string()),
                        message: format!("moved from '{from}': {}", entry.reason),
                    };
                    self.store.append_history(&key, &event)?;
                }
            }
            // the heads owner writes only its own row (issue 24): what the head wants; the
            // worker's entry (applied state, outcome, ownership) is never read back and rewritten
            let stored = self.store.intent(&key)?;
            let problems: Vec<Diagnostic> = match snapshot.apps.get(&entry.app) {
                Some(Err(invalid)) => invalid.errors.clone(),
                Some(Ok(valid)) => {
                    // the plan's own warnings (e.g. a target group two apps share) show beside the files'
                    let mut problems = valid.warnings.clone();
                    let own: BTreeSet<String> = problems.iter().map(ToString::to_string).collect();
                    problems.extend(entry.warnings.iter().filter(|w| !own.contains(*w)).map(|w| Diagnostic::new(&entry.app, w.clone())));
                    problems
                }
                None => Vec::new(),
            };
            let changed = stored.as_ref().is_none_or(|i| i.intent != Some(entry.intent) || i.head_commit.as_deref() != Some(commit));
            if changed && entry.intent == Intent::Held {
                self.notify(crate::integrations::notify::Event::of_app("held", &key, commit, format!("delete held: {}", entry.reason)));
            }
            if changed && matches!(entry.intent, Intent::Error | Intent::Conflict | Intent::Held) {
                let event = HistoryEvent {
                    at_ms: now,
                    level: if entry.intent == Intent::Held { Level::Warn } else { Level::Error },
                    deployment: None,
                    commit: Some(commit.to_string()),
                    message: format!("{}: {}", entry.intent.as_str(), entry.reason),
                };
                self.store.append_history(&key, &event)?;
            }
            let mut wanted = gitmoxi_state::HeadIntent {
                kind: entry.kind,
                problems,
                intent: Some(entry.intent),
                intent_reason: Some(entry.reason.clone()),
                head_commit: Some(commit.to_string()),
                updated_at_ms: stored.as_ref().map_or(now, |i| i.updated_at_ms),
                // kept once the app's files are gone: its delete goes before its dependencies'
                depends_on: match snapshot.apps.get(&entry.app) {
                    Some(Ok(app)) => app.depends_on().to_vec(),
                    Some(Err(_)) | None => stored.as_ref().map(|i| i.depends_on.clone()).unwrap_or_default(),
                },
                // an operator's pin stays until released (by `apply_pins` above, or `unpin`)
                pin: stored.as_ref().and_then(|i| i.pin.clone()),
            };
            // the same plan again (a replan, a poll of an unchanged head) writes nothing: at
            // thousands of apps, and with HA every write is copied to the table
            if stored.as_ref() != Some(&wanted) {
                wanted.updated_at_ms = now;
                self.store.put_intent(&key, &wanted)?;
            }
        }
        let planned: BTreeSet<&str> = plan.iter().map(|e| e.app.as_str()).collect();
        for e in &mine {
            let gone = !planned.contains(e.key.prefix.as_str()) && e.applied.identity.is_none() && !e.applied.owned;
            if gone && self.store.record(&e.key)?.is_none() {
                // the head's row, and the entry only while it still owns nothing (one transaction)
                self.store.remove_app(&e.key)?;
            }
        }
        let keep: BTreeSet<String> = planned.iter().map(|p| p.to_string()).collect();
        self.store.forget_intents_without_entry(repo, branch, &keep)?;
        // an allowed prune is used up by the head that deletes (the permissions it read; one given
        // since stays for the next head)
        if let Some(through) = allowed.filter(|_| plan.iter().any(|e| e.intent == Intent::Delete)) {
            self.store.consume_allowed_prune(repo, branch, through)?;
        }
        // every processed commit is assessed against the one processed before it (issue 25);
        // the first head after a start has none in memory (gmctl's `commit riskiq` assesses it
        // against what was applied)
        if let Some(previous) = self.head(repo, branch).filter(|h| h.commit != commit) {
            let own = self.settings.own_account.as_deref();
            crate::runtime::assessments::assess_processed(&self.store, own, repo, branch, commit, &previous.snapshot, &snapshot);
        }
        let state = HeadState {
            repo: repo.to_string(),
            branch: branch.to_string(),
            commit: commit.to_string(),
            snapshot,
            intents: plan.iter().map(|e| (e.app.clone(), e.clone())).collect(),
            loaded_at_ms: now,
            policy,
            pins,
            unpinned,
        };
        crate::base::sync::write(&self.heads).insert((repo.to_string(), branch.to_string()), Arc::new(state));
        for entry in plan {
            self.queue.add(key_of(&entry.app));
        }
        self.metrics.queue_depth.set(self.queue.len() as i64);
        Ok(())
    }

    /// Runs the heads owner and `concurrency` workers until `shutdown`; each in-flight reconcile
    /// finishes its pass.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut workers = tokio::task::JoinSet::new();
        workers.spawn(self.clone().own_heads(shutdown.clone()));
        for _ in 0..self.settings.concurrency.max(1) {
            let this = self.clone();
            let stop = shutdown.clone();
            workers.spawn(async move {
                loop {
                    let key = tokio::select! {
                        _ = stop.cancelled() => break,
                        key = this.queue.next() => key,
                    };
                    this.metrics.queue_depth.set(this.queue.len() as i64);
                    let started = Instant::now();
                    let result = this.reconcile(&key).await;
                    this.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
                    let delay = this.after_reconcile(&key, result);
                    this.queue.done(&key);
                    this.queue.add_at(key, Instant::now() + delay);
                }
            });
        }
        while workers.join_next().await.is_some() {}
    }

    fn after_reconcile(&self, key: &AppKey, result: Result<Duration, ControllerError>) -> Duration {
        let mut failures = crate::base::sync::lock(&self.failures);
        match result {
            Ok(after) => {
                failures.remove(key);
                after
            }
            Err(e) => {
                self.metrics.reconcile_errors_total.with_label_values(&[e.metric_label()]).inc();
                let n = failures.entry(key.clone()).or_insert(0);
                *n = (*n + 1).min(16);
                let base = Duration::from_secs(1u64 << (*n).min(8)).min(Duration::from_secs(300));
                let jitter = self.jitter_ms(base.as_millis() as u64 / 4);
                tracing::warn!(app = %key, error = %e, retry_in_ms = base.as_millis() as u64 + jitter, "reconcile could not finish; backing off");
                base + Duration::from_millis(jitter)
            }
        }
    }
}

/// The controller as high availability sees it ([`crate::io::ha::ShardHost`]): HA asks it for the
/// store, the clock and the jitter, and hands it imported shards and taken shards' apps.
impl crate::io::ha::ShardHost for Controller {
    fn store(&self) -> &Store {
        &self.store
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn jitter_ms(&self, max_ms: u64) -> u64 {
        Controller::jitter_ms(self, max_ms)
    }

    async fn import_state(&self, apps: Vec<gitmoxi_state::ImportedApp>, dropped: Vec<AppKey>) -> Result<(), String> {
        Controller::import_state(self, apps, dropped).await.map_err(|e| e.to_string())
    }

    fn enqueue_shard(&self, pick: &dyn Fn(&AppKey) -> bool) {
        Controller::enqueue_shard(self, pick)
    }
}
