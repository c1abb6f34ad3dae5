//! gitmoxi-state — the sled store (SPEC §7.2): per app the applied fingerprint, rendered documents
//! and rollback target; the in-flight deployment record; finished deployments; failed
//! fingerprints; ownership; a bounded history of events; operator commands; a schema version.
//!
//! Invariants: a record is durable (flushed) before the executor performs the AWS call its phase
//! leads to; finishing a deployment (record → history, app entry updated) is one transaction;
//! nothing here talks to AWS or git. Values are JSON so they stay readable with `sled` tools.

use gitmoxi_deploy::intent::Intent;
use gitmoxi_deploy::plan::Completion;
use gitmoxi_deploy::record::{AppKey, AppliedState, DeploymentRecord, FailureCause, Level, Outcome};
use gitmoxi_deploy::spec::{AppKind, Diagnostic};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use std::path::Path;

mod commands;
mod documents;
mod mirror;
mod tables;

pub use commands::{LoggedCommand, PendingCommands, MAX_PENDING_COMMANDS};
pub use mirror::{AppState, Changes, ImportedApp};
pub use tables::{branch_row, Table, TableName};

/// The on-disk format version this build reads and writes (3: operator commands are a log).
pub const SCHEMA_VERSION: u32 = 3;
/// History events kept per app (oldest pruned).
pub const MAX_HISTORY_PER_APP: usize = 500;
/// Finished deployments kept per app (oldest pruned).
pub const MAX_DEPLOYMENTS_PER_APP: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}", describe_sled(.0))]
    Io(#[from] sled::Error),
    #[error("state store entry {key} is corrupt ({source}); move the state directory aside to start fresh")]
    Corrupt { key: String, source: serde_json::Error },
    #[error("state directory was written by schema version {found}, this gitmoxi reads version {SCHEMA_VERSION}; upgrade gitmoxi or use another --state-dir")]
    Schema { found: u32 },
    #[error("state store entry {key} refers to document {document}, which is missing: the store is corrupt; move the state directory aside to start fresh")]
    MissingDocument { key: String, document: String },
    #[error("state store transaction failed: {0}")]
    Transaction(String),
    #[error("state store flush did not finish: {0}; check the state directory's disk")]
    Flush(String),
    #[error("{waiting} commands already wait for {app}; wait until gitmoxi has acted on them (`gitmoxi status`) before giving more")]
    TooManyCommands { app: String, waiting: usize },
}

/// sled reports a held directory lock as an `Other` error wrapping the OS's `WouldBlock`.
fn is_lock_contention(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("could not acquire lock"),
        _ => false,
    }
}

/// What a sled error means for an operator: corruption is not a disk-space problem.
fn describe_sled(e: &sled::Error) -> String {
    match e {
        sled::Error::Corruption { .. } => format!(
            "the state store is corrupt ({e}); move the state directory aside (e.g. mv state state.corrupt) and start again: \
             gitmoxi then starts from an empty store and adopts every app AWS already runs as the head renders it"
        ),
        sled::Error::Io(io) if is_lock_contention(e) => {
            format!("the state store is in use by another process ({io}); stop the other gitmoxi or give this one its own --state-dir")
        }
        sled::Error::Io(_) => format!("state store I/O failed: {e}; check the state directory's disk space and permissions"),
        sled::Error::CollectionNotFound(_) | sled::Error::Unsupported(_) | sled::Error::ReportableBug(_) => {
            format!("state store failed: {e}")
        }
    }
}

/// What the store keeps per app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppEntry {
    pub key: AppKey,
    pub kind: AppKind,
    pub applied: AppliedState,
    /// The desired app of the last applied deployment, by document id (see [`documents`]):
    /// the rendered documents as AWS got them, stored once with the deployment record.
    #[serde(default)]
    pub applied_document: Option<String>,
    /// The latest head's problems with this app (render/validation errors, conflicts, held deletes).
    pub problems: Vec<Diagnostic>,
    /// What the last head wants for this app, and why (stored under their first names).
    #[serde(rename = "plan_action")]
    pub intent: Option<Intent>,
    #[serde(rename = "plan_reason")]
    pub intent_reason: Option<String>,
    pub last_deployment: Option<String>,
    pub last_outcome: Option<Outcome>,
    /// Why the last deployment failed (schema 1 kept its text; see `migrate_v1`).
    pub last_cause: Option<FailureCause>,
    pub head_commit: Option<String>,
    /// Why this version of gitmoxi leaves the app untouched (a strategy it does not implement yet).
    #[serde(default)]
    pub unsupported: Option<String>,
    pub updated_at_ms: u64,
    /// Why the head's change has not started (dependencies, a freeze), as the worker last found
    /// (issue 26). The worker's.
    #[serde(default)]
    pub hold: Option<gitmoxi_deploy::release::Hold>,
    /// The head's: the app's `dependsOn` as its last head had it (see [`HeadIntent::depends_on`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// The head's: an operator's pin (see [`HeadIntent::pin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<gitmoxi_deploy::release::pin::Pin>,
}

impl AppEntry {
    pub fn new(key: AppKey, kind: AppKind) -> Self {
        AppEntry {
            key,
            kind,
            applied: AppliedState::default(),
            applied_document: None,
            problems: Vec::new(),
            intent: None,
            intent_reason: None,
            last_deployment: None,
            last_outcome: None,
            last_cause: None,
            head_commit: None,
            unsupported: None,
            updated_at_ms: 0,
            hold: None,
            depends_on: Vec::new(),
            pin: None,
        }
    }
}

/// What the heads owner keeps of an app (issue 24: its own table, so the heads owner and the
/// app's worker never write the same row): what the newest head wants of it and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadIntent {
    pub kind: AppKind,
    /// The head's problems with this app (render/validation errors, conflicts, held deletes).
    pub problems: Vec<Diagnostic>,
    pub intent: Option<Intent>,
    pub intent_reason: Option<String>,
    pub head_commit: Option<String>,
    pub updated_at_ms: u64,
    /// The app's `dependsOn` in the last head that had it (kept once its files are gone: deletes
    /// run dependents first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// An operator pinned the app (`gitmoxi rollback --to`, issue 26): the heads owner deploys
    /// the pinned files instead of the branch's until `gitmoxi unpin` or a commit that changes
    /// the app's files. In this row so that high availability copies it with the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<gitmoxi_deploy::release::pin::Pin>,
}

impl HeadIntent {
    /// The head's part of a (joined) entry.
    pub fn of(entry: &AppEntry) -> HeadIntent {
        HeadIntent {
            kind: entry.kind,
            problems: entry.problems.clone(),
            intent: entry.intent,
            intent_reason: entry.intent_reason.clone(),
            head_commit: entry.head_commit.clone(),
            updated_at_ms: entry.updated_at_ms,
            depends_on: entry.depends_on.clone(),
            pin: entry.pin.clone(),
        }
    }
}

/// The app as readers see it: the worker's entry and the head's intent joined. An intent
/// without an entry is an app the head wants (new, invalid); a delete intent without an entry
/// is an app that is gone.
fn joined(key: &AppKey, entry: Option<AppEntry>, intent: Option<HeadIntent>) -> Option<AppEntry> {
    let mut out = match (entry, &intent) {
        (Some(e), _) => e,
        (None, Some(i)) if i.intent != Some(Intent::Delete) => AppEntry::new(key.clone(), i.kind),
        (None, _) => return None,
    };
    if let Some(i) = intent {
        out.problems = i.problems;
        out.intent = i.intent;
        out.intent_reason = i.intent_reason;
        out.head_commit = i.head_commit;
        out.updated_at_ms = out.updated_at_ms.max(i.updated_at_ms);
        out.depends_on = i.depends_on;
        out.pin = i.pin;
    }
    Some(out)
}

/// The worker's part of an entry: the head's fields are not kept in its row.
fn worker_part(entry: &AppEntry) -> AppEntry {
    AppEntry {
        problems: Vec::new(),
        intent: None,
        intent_reason: None,
        head_commit: None,
        unsupported: None,
        depends_on: Vec::new(),
        pin: None,
        ..entry.clone()
    }
}

/// One line of an app's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub at_ms: u64,
    pub level: Level,
    pub deployment: Option<String>,
    pub commit: Option<String>,
    pub message: String,
}

/// Operator commands waiting for an app, folded (the planner decides what they do; see
/// [`gitmoxi_deploy::commands`]).
pub use gitmoxi_deploy::commands::OperatorCommands as Commands;

/// The store. Cheap to clone (sled handles are shared).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    apps: sled::Tree,
    records: sled::Tree,
    deployments: sled::Tree,
    /// Index of `deployments` by app: app key, 0xff, start time (big-endian), id → id. Pruning
    /// reads one app's entries instead of decoding every record kept (quadratic at 2,000 apps).
    deployments_by_app: sled::Tree,
    history: sled::Tree,
    /// What the newest head wants of each app: the heads owner's rows (see [`HeadIntent`]).
    intents: sled::Tree,
    /// Operator commands, a log per app (see [`commands`]).
    command_log: sled::Tree,
    /// `allow_prune` permissions per branch, consumed by the heads owner.
    allowed_prunes: sled::Tree,
    /// Content-addressed documents that records refer to (see [`documents`]).
    documents: sled::Tree,
    meta: sled::Tree,
    /// A throw-away store flushes synchronously: tests run on a paused tokio clock, which would
    /// leap forward while an asynchronous flush waits on sled's own threads.
    temporary: bool,
    /// Apps whose record, entry or commands were written since the last flush (rule 2: the
    /// executor acts for an app only once this says its writes are durable).
    unflushed: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<Vec<u8>>>>,
    /// What changed since high availability's mirror last copied it (`None`: no HA, nothing kept).
    journal: std::sync::Arc<std::sync::Mutex<Option<Changes>>>,
}

fn app_key_bytes(key: &AppKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.repo.len() + key.branch.len() + key.prefix.len() + 2);
    out.extend_from_slice(key.repo.as_bytes());
    out.push(0);
    out.extend_from_slice(key.branch.as_bytes());
    out.push(0);
    out.extend_from_slice(key.prefix.as_bytes());
    out
}

/// The key [`app_key_bytes`] made.
fn key_of_bytes(bytes: &[u8]) -> AppKey {
    let text = String::from_utf8_lossy(bytes);
    let mut parts = text.splitn(3, '\0');
    let repo = parts.next().unwrap_or_default().to_string();
    let branch = parts.next().unwrap_or_default().to_string();
    let prefix = parts.next().unwrap_or_default().to_string();
    AppKey { repo, branch, prefix }
}

fn history_prefix(key: &AppKey) -> Vec<u8> {
    let mut k = app_key_bytes(key);
    k.push(0xff);
    k
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { key: String::from_utf8_lossy(key).replace('\0', "/"), source })
}

/// Schema 1 → 2, per app entry:
/// - `last_cause` was the cause's text; it becomes the cause itself, taken from the app's last
///   deployment record (the text alone cannot be parsed back);
/// - the applied `desiredCount` is taken from the applied svcdef schema 1 kept in `rendered`
///   (which schema 2 no longer keeps: the applied document is referenced instead), so
///   the first update after the upgrade does not reset a count autoscaling owns.
///
/// Everything else reads as it was written (the phase, intent and strategy words did not change).
fn migrate_v1(db: &sled::Db) -> Result<(), StoreError> {
    let apps = db.open_tree("apps")?;
    let deployments = db.open_tree("deployments")?;
    for item in apps.iter() {
        let (key, bytes) = item?;
        let mut entry: Value = decode(&key, &bytes)?;
        if entry.get("last_cause").is_some_and(Value::is_string) {
            let cause = match entry.get("last_deployment").and_then(Value::as_str) {
                Some(id) => match deployments.get(id.as_bytes())? {
                    Some(record) => decode::<Value>(id.as_bytes(), &record)?.get("cause").cloned().unwrap_or(Value::Null),
                    None => Value::Null,
                },
                None => Value::Null,
            };
            entry["last_cause"] = cause;
        }
        let applied_count = entry.pointer("/rendered/svc_def/desiredCount").cloned();
        if let (Some(count), Some(applied)) = (applied_count, entry.get_mut("applied").and_then(Value::as_object_mut)) {
            applied.insert("desired_count".into(), count);
        }
        if let Some(fields) = entry.as_object_mut() {
            fields.remove("rendered");
        }
        apps.insert(key, encode(&entry))?;
    }
    Ok(())
}

/// sled's page cache (its default is 1 GiB): records and history of thousands of apps fit,
/// and the controller keeps what it reads often in memory itself.
const STORE_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// How long opening waits for the directory's lock: sled releases it when its last background
/// thread lets go of the database, which can be a moment after the handle was dropped (a reopen in
/// the same process, a restart that follows its predecessor closely). A lock held longer than this
/// belongs to another process and is reported as such.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn open_waiting_for_lock(config: sled::Config) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(e) if is_lock_contention(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = open_waiting_for_lock(sled::Config::new().path(dir).flush_every_ms(Some(500)).cache_capacity(STORE_CACHE_BYTES))?;
        Self::from_db(db, false)
    }

    /// A store on disk for simulations of crashes: no periodic flush, so only what an explicit
    /// [`Store::flush`] (or sled's own buffer writes) put in the files survives a copy of `dir`
    /// taken at any moment — a crash image. Flushes run in place, as a temporary store's.
    pub fn open_for_simulation(dir: &Path) -> Result<Store, StoreError> {
        let db = open_waiting_for_lock(sled::Config::new().path(dir).flush_every_ms(None).cache_capacity(STORE_CACHE_BYTES))?;
        Self::from_db(db, true)
    }

    /// A throw-away store (tests).
    pub fn temporary() -> Result<Store, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?, true)
    }

    fn from_db(db: sled::Db, temporary: bool) -> Result<Store, StoreError> {
        let meta = db.open_tree("meta")?;
        let found: Option<u32> = meta.get("schema_version")?.map(|v| decode(b"schema_version", &v)).transpose()?;
        if let Some(found) = found.filter(|f| *f > SCHEMA_VERSION || *f == 0) {
            return Err(StoreError::Schema { found });
        }
        if found == Some(1) {
            migrate_v1(&db)?;
        }
        let store = Store {
            apps: db.open_tree("apps")?,
            records: db.open_tree("records")?,
            deployments: db.open_tree("deployments")?,
            deployments_by_app: db.open_tree("deployments_by_app")?,
            history: db.open_tree("history")?,
            intents: db.open_tree("intents")?,
            command_log: db.open_tree("command_log")?,
            allowed_prunes: db.open_tree("allowed_prunes")?,
            documents: db.open_tree("documents")?,
            meta,
            temporary,
            unflushed: Default::default(),
            journal: Default::default(),
            db,
        };
        if found.is_some_and(|f| f < 3) {
            store.migrate_head_fields()?;
            store.migrate_folded_commands()?;
            store.migrate_allow_prune_meta()?;
            store.migrate_meta_rows()?;
        }
        if found != Some(SCHEMA_VERSION) {
            store.meta.insert("schema_version", encode(&SCHEMA_VERSION))?;
        }
        store.index_deployments_once()?;
        Ok(store)
    }

    /// Makes every write so far durable. It blocks: async callers run it on a blocking thread
    /// (`Controller::flush_store`). sled's own `flush_async` is not used: concurrent calls can
    /// deadlock sled 0.34's thread pool (spacejam/sled#1308); a 2,000-app benchmark hit it, every
    /// sled thread waiting in `make_stable` and the controller stuck.
    pub fn flush(&self) -> Result<(), StoreError> {
        // what was written before the flush started is durable once it returns; what is written
        // meanwhile stays marked until the next one
        let pending = std::mem::take(&mut *self.unflushed_keys());
        if let Err(e) = self.db.flush() {
            self.unflushed_keys().extend(pending);
            return Err(e.into());
        }
        Ok(())
    }

    /// Whether every write for `key` (its record, entry and commands) has been flushed.
    pub fn is_durable(&self, key: &AppKey) -> bool {
        !self.unflushed_keys().contains(&app_key_bytes(key))
    }

    fn unflushed_keys(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<Vec<u8>>> {
        // a panic while holding it cannot leave the set inconsistent: recover it
        self.unflushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mark_unflushed(&self, key: &[u8]) {
        self.unflushed_keys().insert(key.to_vec());
    }

    /// A throw-away store: flush it in place (tests run on a paused tokio clock, which would leap
    /// forward while a flush waits on another thread).
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// The app as readers see it (the worker's entry joined with the head's intent).
    pub fn app(&self, key: &AppKey) -> Result<Option<AppEntry>, StoreError> {
        let k = app_key_bytes(key);
        let entry: Option<AppEntry> = self.apps.get(&k)?.map(|v| decode(&k, &v)).transpose()?;
        let intent: Option<HeadIntent> = self.intents.get(&k)?.map(|v| decode(&k, &v)).transpose()?;
        Ok(joined(key, entry, intent))
    }

    /// Writes the worker's part of an app's entry (the app's worker only; the head's fields are
    /// [`Store::put_intent`]'s).
    pub fn put_app(&self, entry: &AppEntry) -> Result<(), StoreError> {
        self.journal_app(&entry.key);
        self.mark_unflushed(&app_key_bytes(&entry.key));
        self.apps.insert(app_key_bytes(&entry.key), encode(&worker_part(entry)))?;
        Ok(())
    }

    /// What the newest head wants of an app (the heads owner's row).
    pub fn intent(&self, key: &AppKey) -> Result<Option<HeadIntent>, StoreError> {
        let k = app_key_bytes(key);
        self.intents.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    /// Writes what the newest head wants of an app (the heads owner only).
    pub fn put_intent(&self, key: &AppKey, intent: &HeadIntent) -> Result<(), StoreError> {
        self.journal_app(key);
        self.mark_unflushed(&app_key_bytes(key));
        self.intents.insert(app_key_bytes(key), encode(intent))?;
        Ok(())
    }

    /// Schema 2 → 3: the head's fields of each entry move to the heads owner's table.
    fn migrate_head_fields(&self) -> Result<(), StoreError> {
        for kv in self.apps.iter() {
            let (k, v) = kv?;
            let entry: AppEntry = decode(&k, &v)?;
            self.intents.insert(&k, encode(&HeadIntent::of(&entry)))?;
            self.apps.insert(&k, encode(&worker_part(&entry)))?;
        }
        Ok(())
    }

    /// The heads owner's rows of one branch, by prefix.
    pub fn intents_of_branch(&self, repo: &str, branch: &str) -> Result<Vec<(String, HeadIntent)>, StoreError> {
        let mut prefix = Vec::new();
        prefix.extend_from_slice(repo.as_bytes());
        prefix.push(0);
        prefix.extend_from_slice(branch.as_bytes());
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.intents.scan_prefix(&prefix) {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k[prefix.len()..]).to_string(), decode(&k, &v)?));
        }
        Ok(out)
    }

    /// Forgets an app that never owned anything (e.g. an invalid app whose files are gone): the
    /// head's row, and the entry in the same transaction only while it still owns nothing and no
    /// deployment is in flight (the heads owner calls it; a worker that started meanwhile wins).
    pub fn remove_app(&self, key: &AppKey) -> Result<(), StoreError> {
        let k = app_key_bytes(key);
        self.journal_app(key);
        self.mark_unflushed(&k);
        let result = (&self.apps, &self.records, &self.intents).transaction(|(apps, records, intents)| {
            intents.remove(k.clone())?;
            if records.get(&k)?.is_some() {
                return Ok(());
            }
            if let Some(v) = apps.get(&k)? {
                let entry: AppEntry = serde_json::from_slice(&v).map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                if entry.applied.identity.is_some() || entry.applied.owned {
                    return Ok(());
                }
                apps.remove(k.clone())?;
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(msg)) => Err(StoreError::Transaction(msg)),
            Err(TransactionError::Storage(e)) => Err(StoreError::Io(e)),
        }
    }

    /// The head's rows of `repo`/`branch` whose app is gone (no entry; the heads owner cleans
    /// them up).
    pub fn forget_intents_without_entry(
        &self,
        repo: &str,
        branch: &str,
        keep: &std::collections::BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let mut prefix = Vec::new();
        prefix.extend_from_slice(repo.as_bytes());
        prefix.push(0);
        prefix.extend_from_slice(branch.as_bytes());
        prefix.push(0);
        for kv in self.intents.scan_prefix(&prefix) {
            let (k, _) = kv?;
            let app = String::from_utf8_lossy(&k[prefix.len()..]).to_string();
            if !keep.contains(&app) && !self.apps.contains_key(&k)? {
                self.intents.remove(&k)?;
            }
        }
        Ok(())
    }

    /// Every app as readers see it, by key.
    pub fn apps(&self) -> Result<Vec<AppEntry>, StoreError> {
        let mut entries = self.apps.iter().peekable();
        let mut intents = self.intents.iter().peekable();
        let mut out = Vec::new();
        loop {
            let next_entry = entries.peek().map(|kv| kv.as_ref().map(|(k, _)| k.clone()).map_err(Clone::clone)).transpose()?;
            let next_intent = intents.peek().map(|kv| kv.as_ref().map(|(k, _)| k.clone()).map_err(Clone::clone)).transpose()?;
            let (entry, intent) = match (&next_entry, &next_intent) {
                (None, None) => break,
                (Some(a), Some(b)) if a == b => (entries.next(), intents.next()),
                (Some(a), Some(b)) if a < b => (entries.next(), None),
                (Some(_), None) => (entries.next(), None),
                _ => (None, intents.next()),
            };
            let entry: Option<(sled::IVec, AppEntry)> =
                entry.transpose()?.map(|(k, v)| decode::<AppEntry>(&k, &v).map(|e| (k, e))).transpose()?;
            let intent: Option<(sled::IVec, HeadIntent)> =
                intent.transpose()?.map(|(k, v)| decode::<HeadIntent>(&k, &v).map(|i| (k, i))).transpose()?;
            let key = match (&entry, &intent) {
                (Some((_, e)), _) => e.key.clone(),
                (None, Some((k, _))) => key_of_bytes(k),
                (None, None) => continue,
            };
            if let Some(app) = joined(&key, entry.map(|(_, e)| e), intent.map(|(_, i)| i)) {
                out.push(app);
            }
        }
        Ok(out)
    }

    /// The in-flight (or last unfinished) record of an app.
    pub fn record(&self, key: &AppKey) -> Result<Option<DeploymentRecord>, StoreError> {
        let k = app_key_bytes(key);
        self.records.get(&k)?.map(|v| self.load_record(&k, &v)).transpose()
    }

    /// Every in-flight record.
    pub fn records(&self) -> Result<Vec<DeploymentRecord>, StoreError> {
        self.records.iter().map(|kv| kv.map_err(StoreError::from).and_then(|(k, v)| self.load_record(&k, &v))).collect()
    }

    /// A stored record with its documents put back.
    fn load_record(&self, key: &[u8], bytes: &[u8]) -> Result<DeploymentRecord, StoreError> {
        let stored: Value = decode(key, bytes)?;
        let joined = documents::join(
            stored,
            |id| self.documents.get(id.as_bytes())?.map(|d| decode(id.as_bytes(), &d)).transpose(),
            |id| StoreError::MissingDocument { key: String::from_utf8_lossy(key).replace('\0', "/"), document: id.to_string() },
        )?;
        serde_json::from_value(joined)
            .map_err(|source| StoreError::Corrupt { key: String::from_utf8_lossy(key).replace('\0', "/"), source })
    }

    /// Stores a record's documents (before the record that refers to them) and returns its bytes.
    fn store_documents(&self, record: &DeploymentRecord) -> Result<documents::SplitRecord, StoreError> {
        let split = documents::split(record, &app_key_bytes(&record.app));
        for (id, bytes) in &split.documents {
            if !self.documents.contains_key(id.as_bytes())? {
                self.documents.insert(id.as_bytes(), bytes.as_slice())?;
            }
        }
        Ok(split)
    }

    /// The rendered documents of an app's last applied deployment (svcdef, taskdef and depdef,
    /// or the Lambda app), as the record carried them.
    pub fn applied_document(&self, key: &AppKey) -> Result<Option<Value>, StoreError> {
        let Some(id) = self.app(key)?.and_then(|e| e.applied_document) else { return Ok(None) };
        self.documents.get(id.as_bytes())?.map(|d| decode(id.as_bytes(), &d)).transpose()
    }

    /// How many documents are stored (tests of their removal).
    pub fn document_count(&self) -> usize {
        self.documents.len()
    }

    fn index_key(record: &DeploymentRecord) -> Vec<u8> {
        let mut k = app_key_bytes(&record.app);
        k.push(0xff);
        k.extend_from_slice(&record.started_at_ms.to_be_bytes());
        k.extend_from_slice(record.id.as_bytes());
        k
    }

    /// Builds the by-app index of a store written before it existed (once: the index is empty).
    fn index_deployments_once(&self) -> Result<(), StoreError> {
        if !self.deployments_by_app.is_empty() {
            return Ok(());
        }
        for kv in self.deployments.iter() {
            let (k, v) = kv?;
            let record = self.load_record(&k, &v)?;
            self.deployments_by_app.insert(Self::index_key(&record), record.id.as_bytes())?;
        }
        Ok(())
    }

    /// Writes the in-flight record (call [`Store::flush`] before acting on it). The by-id tree gets
    /// the first version only — a step rewrites the in-flight tree alone, which halves what every
    /// step writes — and [`Store::deployment`] reads the in-flight version through it.
    pub fn put_record(&self, record: &DeploymentRecord) -> Result<(), StoreError> {
        let split = self.store_documents(record)?;
        self.journal_app(&record.app);
        self.mark_unflushed(&app_key_bytes(&record.app));
        self.records.insert(app_key_bytes(&record.app), split.bytes.as_slice())?;
        if !self.deployments.contains_key(record.id.as_bytes())? {
            self.deployments.insert(record.id.as_bytes(), split.bytes)?;
            self.deployments_by_app.insert(Self::index_key(record), record.id.as_bytes())?;
        }
        Ok(())
    }

    /// The newest version of a deployment kept by id: while it is in flight, the in-flight tree's.
    fn freshest(&self, kept: DeploymentRecord) -> Result<DeploymentRecord, StoreError> {
        if !kept.in_flight() {
            return Ok(kept);
        }
        Ok(self.record(&kept.app)?.filter(|current| current.id == kept.id).unwrap_or(kept))
    }

    /// A deployment by id (in flight or finished).
    pub fn deployment(&self, id: &str) -> Result<Option<DeploymentRecord>, StoreError> {
        match self.deployments.get(id.as_bytes())? {
            Some(v) => Ok(Some(self.freshest(self.load_record(id.as_bytes(), &v)?)?)),
            None => Ok(None),
        }
    }

    /// The newest `limit` deployments of one app, newest first (through the by-app index: the
    /// other apps' deployments are not read).
    pub fn deployments_of(&self, key: &AppKey, limit: usize) -> Result<Vec<DeploymentRecord>, StoreError> {
        let mut prefix = app_key_bytes(key);
        prefix.push(0xff);
        let mut found = Vec::new();
        for id in self.deployments_by_app.scan_prefix(&prefix).values().rev().take(limit) {
            let id = id?;
            if let Some(v) = self.deployments.get(&id)? {
                found.push(self.freshest(self.load_record(&id, &v)?)?);
            }
        }
        Ok(found)
    }

    /// Every deployment kept, newest first.
    pub fn deployments(&self) -> Result<Vec<DeploymentRecord>, StoreError> {
        let mut all: Vec<DeploymentRecord> = self
            .deployments
            .iter()
            .map(|kv| kv.map_err(StoreError::from).and_then(|(k, v)| self.load_record(&k, &v)).and_then(|r| self.freshest(r)))
            .collect::<Result<_, _>>()?;
        all.sort_by(|a, b| b.started_at_ms.cmp(&a.started_at_ms).then_with(|| b.id.cmp(&a.id)));
        Ok(all)
    }

    /// Ends a deployment in one transaction: the record leaves the in-flight tree, the app entry
    /// learns the outcome (applied fingerprint, failed fingerprint or removal).
    pub fn finish(&self, record: &DeploymentRecord, completion: &Completion) -> Result<(), StoreError> {
        let key = app_key_bytes(&record.app);
        self.journal_finished(&record.app, &record.id);
        self.mark_unflushed(&key);
        let split = self.store_documents(record)?;
        let applied_document = split.documents.first().map(|(id, _)| id.clone());
        let record_bytes = split.bytes;
        let result = (&self.apps, &self.records, &self.deployments).transaction(|(apps, records, deployments)| {
            deployments.insert(record.id.as_bytes(), record_bytes.clone())?;
            if let Some(current) = records.get(&key)? {
                let current: Value = serde_json::from_slice(&current).map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                if current.get("id").and_then(Value::as_str) == Some(record.id.as_str()) {
                    records.remove(key.clone())?;
                }
            }
            let mut entry: AppEntry = match apps.get(&key)? {
                Some(v) => serde_json::from_slice(&v).map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?,
                None => AppEntry::new(record.app.clone(), record.kind),
            };
            entry.last_deployment = Some(record.id.clone());
            entry.last_outcome = record.outcome;
            entry.last_cause = record.cause.clone();
            entry.updated_at_ms = record.updated_at_ms;
            match completion {
                Completion::Applied { fingerprint, commit, task_definition } => {
                    // a resource owned under a former identity is deleted once this one runs
                    if let Some(former) = entry.applied.identity.clone().filter(|i| *i != record.identity) {
                        if entry.applied.owned && !entry.applied.retired.contains(&former) {
                            entry.applied.retired.push(former);
                        }
                    }
                    entry.applied.retired.retain(|i| *i != record.identity);
                    entry.applied.fingerprint = Some(fingerprint.clone());
                    entry.applied.commit = Some(commit.clone());
                    entry.applied.identity = Some(record.identity.clone());
                    if task_definition.is_some() {
                        entry.applied.task_definition = task_definition.clone();
                    }
                    entry.applied.failed.remove(fingerprint);
                    if let Some(lambda) = &record.desired_lambda {
                        entry.applied.lambda = Some(lambda.clone());
                    }
                    entry.applied.desired_count = record.desired.as_ref().and_then(|d| d.desired_count());
                    entry.applied.service = record.desired.as_ref().map(|d| d.svcdef.clone());
                    entry.applied_document = applied_document.clone();
                }
                Completion::Failed { fingerprint } => {
                    entry.applied.failed.insert(fingerprint.clone());
                }
                Completion::Removed => {
                    apps.remove(key.clone())?;
                    return Ok(());
                }
                Completion::Retired { identity } => {
                    entry.applied.retired.retain(|i| i != identity);
                }
                Completion::Nothing => {}
            }
            apps.insert(key.clone(), encode(&entry))?;
            Ok(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(msg)) => Err(StoreError::Transaction(msg)),
            Err(TransactionError::Storage(e)) => Err(StoreError::Io(e)),
        }?;
        self.deployments_by_app.insert(Self::index_key(record), record.id.as_bytes())?;
        self.prune_deployments(&record.app)
    }

    fn prune_deployments(&self, key: &AppKey) -> Result<(), StoreError> {
        let mut prefix = app_key_bytes(key);
        prefix.push(0xff);
        // oldest first: the index orders one app's deployments by start time
        let mine: Vec<(sled::IVec, sled::IVec)> = self.deployments_by_app.scan_prefix(&prefix).collect::<Result<_, _>>()?;
        let mut excess = mine.len().saturating_sub(MAX_DEPLOYMENTS_PER_APP);
        let mut released = Vec::new();
        for (index_key, id) in mine {
            if excess == 0 {
                break;
            }
            let stored: Option<Value> = self.deployments.get(&id)?.map(|v| decode(&id, &v)).transpose()?;
            // in flight = no outcome yet (read without fetching the documents)
            let in_flight = stored.as_ref().is_some_and(|s| s.get("outcome").is_none_or(Value::is_null));
            if !in_flight {
                released.extend(stored.as_ref().map(documents::references).unwrap_or_default());
                self.deployments.remove(&id)?;
                self.deployments_by_app.remove(index_key)?;
                excess -= 1;
            }
        }
        self.release_documents(key, released)
    }

    /// Removes the documents of `released` that nothing of the app refers to any more: its kept
    /// deployments, its in-flight record and its applied state.
    fn release_documents(&self, key: &AppKey, released: Vec<String>) -> Result<(), StoreError> {
        if released.is_empty() {
            return Ok(());
        }
        let mut prefix = app_key_bytes(key);
        prefix.push(0xff);
        let mut referenced = std::collections::BTreeSet::new();
        for id in self.deployments_by_app.scan_prefix(&prefix).values() {
            let id = id?;
            if let Some(v) = self.deployments.get(&id)? {
                referenced.extend(documents::references(&decode(&id, &v)?));
            }
        }
        let k = app_key_bytes(key);
        if let Some(v) = self.records.get(&k)? {
            referenced.extend(documents::references(&decode(&k, &v)?));
        }
        if let Some(id) = self.app(key)?.and_then(|e| e.applied_document) {
            referenced.insert(id);
        }
        for id in released.into_iter().filter(|id| !referenced.contains(id)) {
            self.documents.remove(id.as_bytes())?;
        }
        Ok(())
    }

    /// Hands an app's stored state to a new prefix (a folder move; SPEC §1.4).
    pub fn move_app(&self, from: &AppKey, to: &AppKey) -> Result<(), StoreError> {
        let from_k = app_key_bytes(from);
        let to_k = app_key_bytes(to);
        self.journal_app(from);
        self.journal_app(to);
        let result = self.apps.transaction(|apps| {
            if let Some(v) = apps.get(&from_k)? {
                let mut entry: AppEntry = serde_json::from_slice(&v).map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                entry.key = to.clone();
                apps.remove(from_k.clone())?;
                apps.insert(to_k.clone(), encode(&entry))?;
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(msg)) => Err(StoreError::Transaction(msg)),
            Err(TransactionError::Storage(e)) => Err(StoreError::Io(e)),
        }
    }

    /// Appends to an app's history (bounded).
    pub fn append_history(&self, key: &AppKey, event: &HistoryEvent) -> Result<(), StoreError> {
        let mut k = history_prefix(key);
        let seq = self.db.generate_id()?;
        k.extend_from_slice(&seq.to_be_bytes());
        self.history.insert(k, encode(event))?;
        self.journal_history(key, seq, event);
        let prefix = history_prefix(key);
        let count = self.history.scan_prefix(&prefix).count();
        if count > MAX_HISTORY_PER_APP {
            let excess: Vec<_> = self.history.scan_prefix(&prefix).keys().take(count - MAX_HISTORY_PER_APP).collect::<Result<_, _>>()?;
            for k in excess {
                self.history.remove(k)?;
            }
        }
        Ok(())
    }

    /// An app's history, oldest first.
    pub fn history(&self, key: &AppKey) -> Result<Vec<HistoryEvent>, StoreError> {
        self.history
            .scan_prefix(history_prefix(key))
            .values()
            .map(|v| v.map_err(StoreError::from).and_then(|v| decode(b"history", &v)))
            .collect()
    }
}

#[cfg(test)]
mod interleaving_tests;
#[cfg(test)]
mod tests;
