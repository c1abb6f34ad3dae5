//! High availability (SPEC §7.3, opt-in with `[ha]`): replicas share the apps by shard leases in
//! a DynamoDB table, and the state a replica needs to take over a shard lives in that table.
//!
//! - **Leases.** Every `renew` interval each replica announces itself, reads the leases, renews
//!   its own and takes free or expired ones up to its fair share ([`gitmoxi_deploy::shards`]).
//!   Taking a lease raises its fencing token.
//! - **Fencing.** The local store (sled) stays the executor's; at each flush (the point before
//!   any AWS action, rule 2) the apps written since are copied to the table in a transaction that
//!   checks the shard's lease (owner and token). A refused copy means another replica owns the
//!   shard: this one drops it and acts no more for its apps. A replica also stops acting when
//!   its lease may have run out (no renewal for `lease - margin`), whether or not it could ask.
//! - **Take-over.** A shard's state (entries, in-flight records, commands, history, finished
//!   deployments, documents) is read from the table into the local store before any of its
//!   apps is reconciled, so an in-flight deployment resumes with its id and timeline.
//! - **Reads on any replica.** A replica re-reads a shard it does not own when the owner's
//!   published write counter moved, so its API and page answer for every app (seconds behind).
//! - **Commands on any replica.** A command for an app another replica owns goes to the shard's
//!   inbox in the table; the owner applies it at its next round.
//!
//! Must never: act for an app of a shard it does not hold; write a shard's state without the
//! lease check; import over a shard it owns.

pub mod table;

use gitmoxi_deploy::record::AppKey;
use gitmoxi_deploy::shards::{plan_leases, shard_of, Lease};
use gitmoxi_state::{Changes, ImportedApp, Store};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use table::{LeaseItem, Table, TableError, Write};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// `[ha]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HaConfig {
    /// The DynamoDB table (see `packaging/dynamodb-table.json`).
    pub table: String,
    /// Its region (default: the controller's region).
    pub region: Option<String>,
    /// Another endpoint (a local DynamoDB, tests); default: AWS's.
    pub endpoint: Option<String>,
    /// How many shards apps are split into (the same on every replica).
    pub shards: u32,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// How often leases are renewed and the table read.
    pub renew: Duration,
    /// This replica's name (default: host name and process id).
    pub replica: String,
    /// How long history and finished deployments are kept in the table.
    pub history_ttl: Duration,
    /// The URL this replica's API answers at (shown to operators).
    pub url: Option<String>,
}

impl HaConfig {
    /// A lease stops being trusted this long before it would run out (the time a renewal may take).
    pub fn margin(&self) -> Duration {
        (self.lease / 5).max(Duration::from_millis(500))
    }
}

/// A shard this replica holds.
#[derive(Debug, Clone)]
struct Owned {
    token: u64,
    /// Until when it may act: the start of its last successful renewal + lease − margin.
    valid_until: Instant,
    /// Transactions written since it took the shard (published on the lease as `seq`).
    writes: u64,
}

#[derive(Debug, Default)]
struct HaState {
    owned: BTreeMap<u32, Owned>,
    /// (token, seq) of each shard this replica last read while another owned it.
    read: BTreeMap<u32, (u64, u64)>,
    /// The inbox counter of each owned shard last handled.
    inbox_seen: BTreeMap<u32, u64>,
    leases: Vec<LeaseItem>,
    replicas: Vec<table::Replica>,
    last_round_ms: u64,
    last_error: Option<String>,
}

/// Why the executor may not act for an app now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("shard {shard} of {key} is not held by this replica; its owner acts for it")]
    NotOwner { key: AppKey, shard: u32 },
    #[error("the lease of shard {shard} ({key}) was not renewed in time; acting stops until it is")]
    LeaseLapsed { key: AppKey, shard: u32 },
    #[error("the state of {key} is not in the HA table yet (DynamoDB did not take it); nothing was sent, the next pass retries")]
    NotMirrored { key: AppKey },
}

/// What operators see of high availability (API, page, `/readyz`).
#[derive(Debug, Clone, Serialize)]
pub struct HaStatus {
    pub replica: String,
    pub table: String,
    pub shards: u32,
    pub ready: bool,
    pub owned: Vec<u32>,
    pub leases: Vec<LeaseView>,
    pub replicas: Vec<ReplicaView>,
    pub last_round_ms: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeaseView {
    pub shard: u32,
    pub owner: String,
    pub token: u64,
    pub expires_ms: u64,
    pub held: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaView {
    pub name: String,
    pub url: Option<String>,
    pub alive: bool,
}

/// What the HA loop needs of the controller it runs beside (issue 24: HA is a gate the executor
/// asks and a sender of messages; it does not know the controller, which implements this).
pub trait ShardHost: Send + Sync + 'static {
    /// The store the journal is kept in and shards are imported into.
    fn store(&self) -> &gitmoxi_state::Store;
    fn metrics(&self) -> &crate::io::metrics::Metrics;
    fn now_ms(&self) -> u64;
    /// A jitter of up to `max_ms` from the seeded source.
    fn jitter_ms(&self, max_ms: u64) -> u64;
    /// Replaces the state of a shard's apps with the table's (through the heads owner).
    fn import_state(
        &self,
        apps: Vec<gitmoxi_state::ImportedApp>,
        dropped: Vec<AppKey>,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
    /// Queues every app `pick` selects (a shard just taken).
    fn enqueue_shard(&self, pick: &dyn Fn(&AppKey) -> bool);
}

/// A command left for another replica.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Forwarded {
    pub request: Value,
    pub caller: Option<String>,
    pub from: String,
}

pub struct Ha {
    pub config: HaConfig,
    table: Table,
    state: Mutex<HaState>,
    /// One copy to the table at a time (the journal is taken whole).
    mirror_lock: tokio::sync::Mutex<()>,
    ready: AtomicBool,
    /// Documents already in the table (content-addressed: written once).
    documents_sent: Mutex<HashSet<String>>,
    /// What the table holds of each app item as far as this replica knows (by shard and sort
    /// key: the body's hash, or `None` when absent): an unchanged item is not written again.
    known: Mutex<HashMap<(u32, String), Option<u64>>>,
    /// Commands from the inbox of owned shards, for the API to apply.
    commands: tokio::sync::mpsc::Sender<Forwarded>,
    command_rx: Mutex<Option<tokio::sync::mpsc::Receiver<Forwarded>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn hash_of(body: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

/// The sort key part of an app (hex of its key: any repository, branch or folder name).
fn app_sk(key: &AppKey) -> String {
    hex::encode(format!("{}\0{}\0{}", key.repo, key.branch, key.prefix))
}

impl Ha {
    /// Connects to the table through the standard AWS chain (region and endpoint from `[ha]`).
    pub async fn connect(config: HaConfig, default_region: &str, metrics: &crate::io::metrics::Metrics) -> Ha {
        let region = config.region.clone().unwrap_or_else(|| default_region.to_string());
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(region));
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        let table = Table::new(aws_sdk_dynamodb::Client::new(&sdk), config.table.clone())
            .with_metrics(metrics.ha_table_requests.clone(), metrics.ha_table_items_written.clone());
        Self::with_table(config, table)
    }

    /// Shares a value with every replica (issue 24: what one replica is told — a repository added
    /// through the API — every replica acts on).
    pub async fn share(&self, kind: &str, key: &str, body: &str) -> Result<(), TableError> {
        self.table.put_shared(kind, key, body, None).await
    }

    /// Shares a value with every replica until `ttl` (epoch seconds; DynamoDB forgets it later).
    pub async fn share_until(&self, kind: &str, key: &str, body: &str, ttl: u64) -> Result<(), TableError> {
        self.table.put_shared(kind, key, body, Some(ttl)).await
    }

    /// Stops sharing a value.
    pub async fn unshare(&self, kind: &str, key: &str) -> Result<(), TableError> {
        self.table.delete_shared(kind, key).await
    }

    /// Every shared value of `kind`: (key, body).
    pub async fn shared(&self, kind: &str) -> Result<Vec<(String, String)>, TableError> {
        self.table.shared(kind).await
    }

    fn with_table(config: HaConfig, table: Table) -> Ha {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        Ha {
            config,
            table,
            state: Mutex::new(HaState::default()),
            mirror_lock: tokio::sync::Mutex::new(()),
            ready: AtomicBool::new(false),
            documents_sent: Mutex::new(HashSet::new()),
            known: Mutex::new(HashMap::new()),
            commands: tx,
            command_rx: Mutex::new(Some(rx)),
        }
    }

    pub fn shard_of(&self, key: &AppKey) -> u32 {
        shard_of(key, self.config.shards)
    }

    /// Whether this replica holds the app's shard and its lease is still trusted.
    pub fn owns(&self, key: &AppKey) -> bool {
        let shard = self.shard_of(key);
        lock(&self.state).owned.get(&shard).is_some_and(|o| Instant::now() < o.valid_until)
    }

    /// Whether the executor may act for `key` now: it holds the shard, the lease is trusted and
    /// the app's last writes are in the table.
    pub fn may_act(&self, store: &Store, key: &AppKey) -> Result<(), Refusal> {
        let shard = self.shard_of(key);
        match lock(&self.state).owned.get(&shard) {
            None => return Err(Refusal::NotOwner { key: key.clone(), shard }),
            Some(o) if Instant::now() >= o.valid_until => return Err(Refusal::LeaseLapsed { key: key.clone(), shard }),
            Some(_) => {}
        }
        if store.has_pending_change(key) {
            return Err(Refusal::NotMirrored { key: key.clone() });
        }
        Ok(())
    }

    /// Whether the first round (leases read, owned shards loaded) is done.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The owner of an app's shard as last read (`None`: nobody holds it).
    pub fn owner_of(&self, key: &AppKey, now: u64) -> Option<(String, u64)> {
        let shard = self.shard_of(key);
        lock(&self.state)
            .leases
            .iter()
            .find(|l| l.lease.shard == shard && l.lease.is_held(now))
            .map(|l| (l.lease.owner.clone(), l.lease.token))
    }

    pub fn status(&self, now_ms: u64) -> HaStatus {
        let state = lock(&self.state);
        HaStatus {
            replica: self.config.replica.clone(),
            table: self.config.table.clone(),
            shards: self.config.shards,
            ready: self.is_ready(),
            owned: state.owned.keys().copied().collect(),
            leases: state
                .leases
                .iter()
                .map(|l| LeaseView {
                    shard: l.lease.shard,
                    owner: l.lease.owner.clone(),
                    token: l.lease.token,
                    expires_ms: l.lease.expires_ms,
                    held: l.lease.is_held(now_ms),
                })
                .collect(),
            replicas: state
                .replicas
                .iter()
                .map(|r| ReplicaView { name: r.name.clone(), url: r.url.clone(), alive: r.expires_ms > now_ms })
                .collect(),
            last_round_ms: state.last_round_ms,
            last_error: state.last_error.clone(),
        }
    }

    /// The commands other replicas left for this one's shards (taken once, by the API).
    pub fn take_commands(&self) -> Option<tokio::sync::mpsc::Receiver<Forwarded>> {
        lock(&self.command_rx).take()
    }

    /// Leaves a command for the owner of `key`'s shard.
    pub async fn forward(&self, key: &AppKey, request: Value, caller: Option<&str>, now_ms: u64, n: u64) -> Result<u32, TableError> {
        let shard = self.shard_of(key);
        let body = serde_json::to_string(&Forwarded { request, caller: caller.map(String::from), from: self.config.replica.clone() })
            .unwrap_or_default();
        let ttl = now_ms / 1000 + 86_400;
        self.table.post_command(shard, &format!("{now_ms:013}#{}#{n:016x}", self.config.replica), &body, ttl).await?;
        Ok(shard)
    }

    /// Copies what changed to the table, each owned shard in fenced transactions. Changes of
    /// shards this replica does not hold are dropped (their owner writes them); changes the table
    /// did not take for a transient reason are kept for the next copy.
    pub async fn mirror(&self, store: &Store, metrics: &crate::io::metrics::Metrics, now_ms: u64) -> Result<(), TableError> {
        let _one = self.mirror_lock.lock().await;
        let changes = store.take_changes();
        if changes.is_empty() {
            return Ok(());
        }
        let mut by_shard: BTreeMap<u32, Changes> = BTreeMap::new();
        for key in changes.apps {
            by_shard.entry(self.shard_of(&key)).or_default().apps.insert(key);
        }
        for h in changes.history {
            by_shard.entry(self.shard_of(&h.0)).or_default().history.push(h);
        }
        for f in changes.finished {
            by_shard.entry(self.shard_of(&f.0)).or_default().finished.push(f);
        }
        let mut first_error = None;
        for (shard, part) in by_shard {
            let token = match lock(&self.state).owned.get(&shard) {
                Some(o) if Instant::now() < o.valid_until => o.token,
                Some(_) => {
                    // held, but the lease is not trusted until a renewal lands: keep the changes
                    // (nothing is acted on meanwhile) and copy them once it is
                    store.restore_changes(part);
                    continue;
                }
                // another replica's shard: its owner writes its state
                None => continue,
            };
            let result = match self.writes_of(store, &part, now_ms).await {
                Ok(writes) => {
                    let writes = self.unknown(shard, writes);
                    match writes.is_empty() {
                        true => Ok(writes),
                        false => self.table.write_shard(shard, &self.config.replica, token, &writes).await.map(|()| writes),
                    }
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(writes) if writes.is_empty() => {}
                Ok(writes) => {
                    self.remember(shard, &writes);
                    if let Some(o) = lock(&self.state).owned.get_mut(&shard) {
                        o.writes += 1;
                    }
                }
                Err(TableError::Fenced { .. }) => {
                    metrics.fenced_writes.inc();
                    tracing::error!(
                        shard,
                        token,
                        "the HA table refused this replica's write: another replica holds the shard now; acting for its apps stops here"
                    );
                    self.drop_shard(shard, metrics);
                }
                Err(e) => {
                    tracing::warn!(shard, error = %e, "could not copy state to the HA table; its apps wait until it can");
                    store.restore_changes(part);
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The writes that change what the table holds (as far as this replica knows).
    fn unknown(&self, shard: u32, writes: Vec<Write>) -> Vec<Write> {
        let known = lock(&self.known);
        writes
            .into_iter()
            .filter(|w| match w {
                Write::Put { sk, body, .. } => known.get(&(shard, sk.clone())) != Some(&Some(hash_of(body))),
                Write::Delete { sk } => known.get(&(shard, sk.clone())) != Some(&None),
            })
            .collect()
    }

    /// Remembers what the table holds after `writes` landed (app items only: history and
    /// deployments are written once).
    fn remember(&self, shard: u32, writes: &[Write]) {
        let mut known = lock(&self.known);
        for w in writes {
            match w {
                Write::Put { sk, body, .. } if sk.starts_with("app#") => {
                    known.insert((shard, sk.clone()), Some(hash_of(body)));
                }
                Write::Delete { sk } => {
                    known.insert((shard, sk.clone()), None);
                }
                Write::Put { .. } => {}
            }
        }
    }

    fn drop_shard(&self, shard: u32, metrics: &crate::io::metrics::Metrics) {
        let mut state = lock(&self.state);
        state.owned.remove(&shard);
        state.read.remove(&shard);
        metrics.shards_owned.set(state.owned.len() as i64);
    }

    /// The table writes of one shard's changes (documents are written first, outside it).
    async fn writes_of(&self, store: &Store, changes: &Changes, now_ms: u64) -> Result<Vec<Write>, TableError> {
        let ttl = Some(now_ms / 1000 + self.config.history_ttl.as_secs());
        let mut writes = Vec::new();
        let mut documents: BTreeSet<String> = BTreeSet::new();
        for key in &changes.apps {
            let state = store.export_app(key)?;
            documents.extend(state.documents.iter().cloned());
            let app = serde_json::to_string(key).unwrap_or_default();
            for (part, value) in [("entry", &state.entry), ("record", &state.record), ("commands", &state.commands)] {
                let sk = format!("app#{}#{part}", app_sk(key));
                writes.push(match value {
                    Some(v) => Write::Put { sk, body: self.body_of(v).await?, app: app.clone(), ttl: None },
                    None => Write::Delete { sk },
                });
            }
        }
        for (key, seq, event) in &changes.history {
            let sk = format!("hist#{}#{:013}#{seq:016x}", app_sk(key), event.at_ms);
            // a long message (a diagnosis) goes to a document like any large body
            let body = self.body_of(&serde_json::to_value(event).unwrap_or_default()).await?;
            writes.push(Write::Put { sk, body, app: serde_json::to_string(key).unwrap_or_default(), ttl });
        }
        for (key, id) in &changes.finished {
            let Some(stored) = store.deployment_stored(id)? else { continue };
            documents.extend(Store::references_of(&stored));
            let sk = format!("dep#{}#{id}", app_sk(key));
            writes.push(Write::Put { sk, body: self.body_of(&stored).await?, app: serde_json::to_string(key).unwrap_or_default(), ttl });
        }
        for id in documents {
            if lock(&self.documents_sent).contains(&id) {
                continue;
            }
            if let Some(bytes) = store.document(&id)? {
                self.table.put_document(&id, &bytes).await?;
                lock(&self.documents_sent).insert(id);
            }
        }
        Ok(writes)
    }

    /// An item body: the JSON itself, or for a large one a reference to a document holding it.
    async fn body_of(&self, value: &Value) -> Result<String, TableError> {
        let text = serde_json::to_string(value).unwrap_or_default();
        if text.len() <= table::INLINE_BODY_BYTES {
            return Ok(text);
        }
        let id = format!("body-{}", hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())[..16]));
        if !lock(&self.documents_sent).contains(&id) {
            self.table.put_document(&id, text.as_bytes()).await?;
            lock(&self.documents_sent).insert(id.clone());
        }
        Ok(serde_json::json!({ "$body": id }).to_string())
    }

    /// A body read back (a large one from its document).
    async fn value_of(&self, body: &str, sk: &str) -> Result<Value, TableError> {
        let corrupt = |why: String| TableError::Corrupt { table: self.config.table.clone(), pk: "shard".into(), sk: sk.to_string(), why };
        let value: Value = serde_json::from_str(body).map_err(|e| corrupt(e.to_string()))?;
        match value.get("$body").and_then(Value::as_str) {
            Some(id) if value.as_object().is_some_and(|o| o.len() == 1) => {
                let bytes = self.table.document(id).await?.ok_or_else(|| corrupt(format!("its body document {id} is missing")))?;
                serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))
            }
            _ => Ok(value),
        }
    }

    /// A shard's state as the table holds it, with every document it refers to stored locally,
    /// and every app the table holds in it. `full` (a take-over) reads everything; otherwise
    /// (following another owner's shard) the apps' items are read, and history and deployments
    /// only of the apps whose items changed since this replica last read them.
    async fn read_shard(&self, store: &Store, shard: u32, full: bool) -> Result<(Vec<ImportedApp>, BTreeSet<AppKey>), TableError> {
        let mut items = if full {
            self.table.shard_items(shard).await?
        } else {
            self.table.state_items(shard, &table::Range::Prefix("app#".into()), None).await?
        };
        let app_of = |sk: &str| sk.split('#').nth(1).map(str::to_string);
        let mut present = BTreeSet::new();
        for item in items.iter().filter(|i| i.sk.starts_with("app#")) {
            if let Ok(key) = serde_json::from_str::<AppKey>(&item.app) {
                present.insert(key);
            }
        }
        let changed: BTreeSet<String> = {
            let mut known = lock(&self.known);
            let mut now: HashMap<(u32, String), Option<u64>> = HashMap::new();
            for app in items.iter().filter(|i| i.sk.starts_with("app#")).filter_map(|i| app_of(&i.sk)) {
                for part in ["entry", "record", "commands"] {
                    now.insert((shard, format!("app#{app}#{part}")), None);
                }
            }
            for item in items.iter().filter(|i| i.sk.starts_with("app#")) {
                now.insert((shard, item.sk.clone()), Some(hash_of(&item.body)));
            }
            let changed = now.iter().filter(|(k, v)| known.get(*k) != Some(*v)).filter_map(|((_, sk), _)| app_of(sk)).collect();
            known.retain(|(s, _), _| *s != shard);
            known.extend(now);
            changed
        };
        if !full {
            items.retain(|i| app_of(&i.sk).is_some_and(|a| changed.contains(&a)));
            for app in &changed {
                let history = table::Range::Between(format!("hist#{app}#"), format!("hist#{app}#~"));
                items.extend(self.table.state_items(shard, &history, Some(gitmoxi_state::MAX_HISTORY_PER_APP)).await?);
                items.extend(self.table.state_items(shard, &table::Range::Prefix(format!("dep#{app}#")), None).await?);
            }
        }
        let mut apps: BTreeMap<AppKey, ImportedApp> = BTreeMap::new();
        let mut history: BTreeMap<AppKey, Vec<(String, gitmoxi_state::HistoryEvent)>> = BTreeMap::new();
        for item in items {
            let corrupt = |why: String| TableError::Corrupt {
                table: self.config.table.clone(),
                pk: table::shard_pk(shard),
                sk: item.sk.clone(),
                why,
            };
            let key: AppKey = serde_json::from_str(&item.app).map_err(|e| corrupt(format!("app: {e}")))?;
            let value = self.value_of(&item.body, &item.sk).await?;
            let app = apps.entry(key.clone()).or_insert_with(|| ImportedApp {
                key: key.clone(),
                state: Default::default(),
                history: Vec::new(),
                deployments: Vec::new(),
            });
            if item.sk.starts_with("app#") {
                match item.sk.rsplit('#').next() {
                    Some("entry") => app.state.entry = Some(value),
                    Some("record") => app.state.record = Some(value),
                    Some("commands") => app.state.commands = Some(value),
                    _ => return Err(corrupt("unknown app item".into())),
                }
            } else if item.sk.starts_with("hist#") {
                let event = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
                history.entry(key).or_default().push((item.sk.clone(), event));
            } else if item.sk.starts_with("dep#") {
                app.deployments.push(value);
            }
        }
        for (key, mut events) in history {
            events.sort_by(|a, b| a.0.cmp(&b.0));
            if let Some(app) = apps.get_mut(&key) {
                app.history = events.into_iter().map(|(_, e)| e).collect();
            }
        }
        // documents before the state that refers to them
        let mut wanted = BTreeSet::new();
        for app in apps.values() {
            for v in app.state.record.iter().chain(app.deployments.iter()) {
                wanted.extend(Store::references_of(v));
            }
            if let Some(id) = app.state.entry.as_ref().and_then(|e| e.get("applied_document")).and_then(Value::as_str) {
                wanted.insert(id.to_string());
            }
        }
        for id in wanted {
            if store.has_document(&id)? {
                continue;
            }
            match self.table.document(&id).await? {
                Some(bytes) => store.put_document(&id, &bytes)?,
                None => {
                    return Err(TableError::Corrupt {
                        table: self.config.table.clone(),
                        pk: format!("doc#{id}"),
                        sk: "part#000".into(),
                        why: "a record refers to it and it is missing".into(),
                    })
                }
            }
            lock(&self.documents_sent).insert(id);
        }
        Ok((apps.into_values().collect(), present))
    }

    /// Reads a shard into the local store (through the heads owner: no head is planned while
    /// it replaces state); apps the store holds in the shard that the table does not are dropped.
    async fn load_shard(&self, controller: &impl ShardHost, shard: u32, full: bool) -> Result<usize, String> {
        let (apps, present) = self.read_shard(controller.store(), shard, full).await.map_err(|e| e.to_string())?;
        let local = controller.store().app_keys().map_err(|e| e.to_string())?;
        let dropped: Vec<AppKey> = local.into_iter().filter(|k| self.shard_of(k) == shard && !present.contains(k)).collect();
        let count = apps.len();
        controller.import_state(apps, dropped).await.map_err(|e| e.to_string())?;
        Ok(count)
    }

    /// Runs the lease rounds until `shutdown`, then gives every lease back.
    pub async fn run(self: Arc<Self>, controller: Arc<impl ShardHost>, shutdown: CancellationToken) {
        controller.store().enable_journal();
        loop {
            let started = Instant::now();
            if let Err(e) = self.round(&controller).await {
                tracing::warn!(error = %e, "HA round failed; leases are retried at the next one");
                lock(&self.state).last_error = Some(e);
            } else {
                lock(&self.state).last_error = None;
                self.ready.store(true, Ordering::SeqCst);
            }
            let jitter = Duration::from_millis(controller.jitter_ms(self.config.renew.as_millis() as u64 / 10));
            let mut next = started + self.config.renew.saturating_sub(jitter);
            // a lease whose owner stopped announcing itself is taken the moment it runs out
            if let Some(expires_ms) = self.next_orphan_expiry(controller.now_ms()) {
                let wait = Duration::from_millis(expires_ms.saturating_sub(controller.now_ms()) + 50);
                next = next.min(Instant::now() + wait);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// When the first lease held by a replica that missed its last announcements runs out.
    fn next_orphan_expiry(&self, now_ms: u64) -> Option<u64> {
        let state = lock(&self.state);
        let lease_ms = self.config.lease.as_millis() as u64;
        let late = |owner: &str| {
            state
                .replicas
                .iter()
                .find(|r| r.name == owner)
                .is_none_or(|r| r.expires_ms + self.config.renew.as_millis() as u64 * 3 / 2 < now_ms + lease_ms)
        };
        state
            .leases
            .iter()
            .filter(|l| l.lease.owner != self.config.replica && l.lease.is_held(now_ms) && late(&l.lease.owner))
            .map(|l| l.lease.expires_ms)
            .min()
    }

    /// After the controller stopped: copies the last changes and gives the leases back, so
    /// another replica takes over at once instead of after the lease.
    pub async fn leave(&self, controller: &impl ShardHost) {
        let now = controller.now_ms();
        if let Err(e) = self.mirror(controller.store(), controller.metrics(), now).await {
            tracing::warn!(error = %e, "could not copy the last changes to the HA table before leaving");
        }
        let owned: Vec<(u32, u64)> = lock(&self.state).owned.iter().map(|(s, o)| (*s, o.token)).collect();
        for (shard, token) in owned {
            if let Err(e) = self.table.release(shard, &self.config.replica, token).await {
                tracing::warn!(shard, error = %e, "could not give the lease back; it runs out on its own");
            }
        }
        lock(&self.state).owned.clear();
        controller.metrics().shards_owned.set(0);
        let _ = self.table.leave(&self.config.replica).await;
    }

    /// One round: announce, read, renew, give back, take, follow the others' shards, inbox.
    async fn round(&self, controller: &Arc<impl ShardHost>) -> Result<(), String> {
        let metrics = controller.metrics();
        let lease_ms = self.config.lease.as_millis() as u64;
        let me = self.config.replica.clone();
        let now = controller.now_ms();
        self.table.heartbeat(&me, now + lease_ms, self.config.url.as_deref()).await.map_err(|e| e.to_string())?;
        // what changed since the last round goes first: the lease publishes how far it went
        if let Err(e) = self.mirror(controller.store(), metrics, now).await {
            tracing::warn!(error = %e, "could not copy state to the HA table this round");
        }
        let leases = self.table.leases().await.map_err(|e| e.to_string())?;
        let replicas = self.table.replicas().await.map_err(|e| e.to_string())?;
        let now = controller.now_ms();
        let live: BTreeSet<String> = replicas.iter().filter(|r| r.expires_ms > now).map(|r| r.name.clone()).collect();
        // a shard the table says is another's (or has another token) is not ours any more
        let held: Vec<(u32, Owned)> = lock(&self.state).owned.clone().into_iter().collect();
        for (shard, owned) in held {
            let current = leases.iter().find(|l| l.lease.shard == shard);
            if current.is_none_or(|l| l.lease.owner != me || l.lease.token != owned.token) {
                metrics.lease_renew_failures.inc();
                tracing::error!(shard, "the HA table shows another owner for a shard this replica held; acting for its apps stops");
                self.drop_shard(shard, metrics);
            }
        }
        // the plan counts only leases this replica trusts as its own
        let owned_now: BTreeMap<u32, Owned> = lock(&self.state).owned.clone();
        let view: Vec<Lease> = leases
            .iter()
            .map(|l| {
                let mut lease = l.lease.clone();
                if lease.owner == me && !owned_now.contains_key(&lease.shard) {
                    // ours from before a restart (the same name): free to take again
                    lease.expires_ms = 0;
                }
                lease
            })
            .collect();
        let plan = plan_leases(&me, now, self.config.shards, &view, &live);
        for shard in plan.renew {
            let Some(owned) = owned_now.get(&shard) else { continue };
            let sent = Instant::now();
            match self.table.renew(shard, &me, owned.token, controller.now_ms() + lease_ms, owned.writes).await {
                Ok(()) => {
                    if let Some(o) = lock(&self.state).owned.get_mut(&shard) {
                        o.valid_until = sent + self.config.lease.saturating_sub(self.config.margin());
                    }
                }
                Err(TableError::Fenced { .. }) => {
                    metrics.lease_renew_failures.inc();
                    tracing::error!(shard, "lost the lease of a shard to another replica; acting for its apps stops");
                    self.drop_shard(shard, metrics);
                }
                Err(e) => {
                    metrics.lease_renew_failures.inc();
                    tracing::warn!(shard, error = %e, "could not renew a lease; this replica stops acting for its apps if it cannot before it runs out");
                }
            }
        }
        for shard in plan.release {
            let Some(owned) = lock(&self.state).owned.remove(&shard) else { continue };
            metrics.shards_owned.set(lock(&self.state).owned.len() as i64);
            let _ = self.mirror(controller.store(), metrics, now).await;
            tracing::info!(shard, "giving a shard back: a replica with fewer shards takes it");
            self.table.release(shard, &me, owned.token).await.map_err(|e| e.to_string())?;
        }
        for shard in plan.take {
            // a lease given back (expired at 0) is handed over, not taken over
            let previous = leases
                .iter()
                .find(|l| l.lease.shard == shard && l.lease.expires_ms > 0)
                .map(|l| l.lease.owner.clone())
                .filter(|o| !o.is_empty());
            let sent = Instant::now();
            let now = controller.now_ms();
            let Some(token) = self.table.take(shard, &me, now, now + lease_ms).await.map_err(|e| e.to_string())? else { continue };
            let valid_until = sent + self.config.lease.saturating_sub(self.config.margin());
            let bootstrap = token == 1;
            let items = if bootstrap { Vec::new() } else { self.table.shard_items(shard).await.map_err(|e| e.to_string())? };
            if bootstrap && items.is_empty() {
                // the first owner ever: what this replica's store holds of the shard is the truth
                for key in controller.store().app_keys().map_err(|e| e.to_string())? {
                    if self.shard_of(&key) == shard {
                        controller.store().journal_all_of(&key).map_err(|e| e.to_string())?;
                    }
                }
            } else {
                let count = self.load_shard(controller.as_ref(), shard, true).await?;
                tracing::info!(shard, token, apps = count, "loaded the shard's state from the HA table");
            }
            {
                let mut state = lock(&self.state);
                state.owned.insert(shard, Owned { token, valid_until, writes: 0 });
                state.read.remove(&shard);
                metrics.shards_owned.set(state.owned.len() as i64);
            }
            if previous.as_deref().is_some_and(|p| p != me) {
                metrics.lease_takeovers.inc();
                tracing::warn!(shard, token, from = previous.as_deref().unwrap_or(""), "took over a shard whose lease ran out");
            } else {
                tracing::info!(shard, token, "holding a shard");
            }
            controller.enqueue_shard(&|key| self.shard_of(key) == shard);
        }
        // the shards others own: read again when their owner wrote
        let owned: BTreeSet<u32> = lock(&self.state).owned.keys().copied().collect();
        for l in &leases {
            let shard = l.lease.shard;
            if owned.contains(&shard) {
                let seen = lock(&self.state).inbox_seen.get(&shard).copied();
                if seen != Some(l.inbox) {
                    self.apply_inbox(shard).await.map_err(|e| e.to_string())?;
                    lock(&self.state).inbox_seen.insert(shard, l.inbox);
                }
                continue;
            }
            let mark = (l.lease.token, l.seq);
            if lock(&self.state).read.get(&shard) == Some(&mark) {
                continue;
            }
            self.load_shard(controller.as_ref(), shard, false).await?;
            lock(&self.state).read.insert(shard, mark);
        }
        let mut state = lock(&self.state);
        state.leases = leases;
        state.replicas = replicas;
        state.last_round_ms = controller.now_ms();
        Ok(())
    }

    /// Hands the commands waiting in an owned shard's inbox to the API, and removes them.
    async fn apply_inbox(&self, shard: u32) -> Result<(), TableError> {
        for item in self.table.inbox(shard).await? {
            match serde_json::from_str::<Forwarded>(&item.body) {
                Ok(forwarded) => {
                    if self.commands.send(forwarded).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => tracing::error!(shard, error = %e, "a forwarded command is unreadable; it is dropped"),
            }
            self.table.remove_command(shard, &item.sk).await?;
        }
        Ok(())
    }
}
