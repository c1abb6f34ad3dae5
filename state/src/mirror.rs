//! What high availability (SPEC §7.3) needs of the store: a journal of what changed since the
//! mirror last copied it to DynamoDB, each app's stored state as bytes to copy, and the import of
//! a shard's state that another replica wrote.
//!
//! Invariants: the journal is kept only when enabled (one process without HA keeps nothing); an
//! export is the app's state as stored when it is read (so copying it again is harmless); an
//! import replaces an app's state whole (entry, record, commands, history) and is never
//! journaled (what came from the table does not go back to it); documents arrive before the
//! record that refers to them.

use super::{app_key_bytes, decode, documents, encode, history_prefix, AppEntry, HistoryEvent, Store, StoreError};
use gitmoxi_deploy::record::AppKey;
use serde_json::Value;
use std::collections::BTreeSet;

/// What changed since the journal was last taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Apps whose entry, in-flight record or commands were written.
    pub apps: BTreeSet<AppKey>,
    /// History events appended, with their store-wide sequence numbers.
    pub history: Vec<(AppKey, u64, HistoryEvent)>,
    /// Deployments that finished (by id).
    pub finished: Vec<(AppKey, String)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty() && self.history.is_empty() && self.finished.is_empty()
    }

    /// Adds `other` (taken earlier and not copied) back.
    pub fn merge(&mut self, other: Changes) {
        self.apps.extend(other.apps);
        self.history.extend(other.history);
        self.finished.extend(other.finished);
    }
}

/// An app's stored state, as bytes to copy (JSON values as the store keeps them: a record's
/// documents are references, see [`Store::document`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppState {
    pub entry: Option<Value>,
    pub record: Option<Value>,
    pub commands: Option<Value>,
    /// The documents the record and the entry refer to.
    pub documents: Vec<String>,
}

/// One app's state from the table, to import.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedApp {
    pub key: AppKey,
    pub state: AppState,
    /// Oldest first.
    pub history: Vec<HistoryEvent>,
    /// Finished deployments as stored (documents as references).
    pub deployments: Vec<Value>,
}

impl Store {
    /// Starts keeping the journal of changes (HA).
    pub fn enable_journal(&self) {
        let mut journal = self.journal_lock();
        if journal.is_none() {
            *journal = Some(Changes::default());
        }
    }

    fn journal_lock(&self) -> std::sync::MutexGuard<'_, Option<Changes>> {
        self.journal.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn journal_app(&self, key: &AppKey) {
        if let Some(j) = self.journal_lock().as_mut() {
            j.apps.insert(key.clone());
        }
    }

    pub(crate) fn journal_history(&self, key: &AppKey, seq: u64, event: &HistoryEvent) {
        if let Some(j) = self.journal_lock().as_mut() {
            j.history.push((key.clone(), seq, event.clone()));
        }
    }

    pub(crate) fn journal_finished(&self, key: &AppKey, id: &str) {
        if let Some(j) = self.journal_lock().as_mut() {
            j.apps.insert(key.clone());
            j.finished.push((key.clone(), id.to_string()));
        }
    }

    /// Journals everything the store holds of `key` (the first owner of a shard copies what it
    /// had before HA was turned on): its state, history and kept deployments.
    pub fn journal_all_of(&self, key: &AppKey) -> Result<(), StoreError> {
        let prefix = history_prefix(key);
        let mut history = Vec::new();
        for kv in self.history.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let seq = k.get(prefix.len()..).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes);
            history.push((key.clone(), seq, decode::<HistoryEvent>(&k, &v)?));
        }
        let finished: Vec<(AppKey, String)> = self
            .deployments_of(key, super::MAX_DEPLOYMENTS_PER_APP)?
            .into_iter()
            .filter(|d| !d.in_flight())
            .map(|d| (key.clone(), d.id))
            .collect();
        if let Some(j) = self.journal_lock().as_mut() {
            j.apps.insert(key.clone());
            j.history.extend(history);
            j.finished.extend(finished);
        }
        Ok(())
    }

    /// Takes what changed since the last call (empty when the journal is off).
    pub fn take_changes(&self) -> Changes {
        self.journal_lock().as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Puts back changes that could not be copied (they are copied with the next ones).
    pub fn restore_changes(&self, changes: Changes) {
        if let Some(j) = self.journal_lock().as_mut() {
            j.merge(changes);
        }
    }

    /// Whether the journal holds a change of `key` not yet taken.
    pub fn has_pending_change(&self, key: &AppKey) -> bool {
        self.journal_lock()
            .as_ref()
            .is_some_and(|j| j.apps.contains(key) || j.history.iter().any(|(k, ..)| k == key) || j.finished.iter().any(|(k, _)| k == key))
    }

    /// Every app key the store holds anything of (entry, record or commands).
    pub fn app_keys(&self) -> Result<BTreeSet<AppKey>, StoreError> {
        let mut keys = BTreeSet::new();
        for entry in self.apps()? {
            keys.insert(entry.key);
        }
        for record in self.records.iter().values() {
            let v = record?;
            if let Some(app) = decode::<Value>(b"records", &v)?.get("app") {
                if let Ok(key) = serde_json::from_value::<AppKey>(app.clone()) {
                    keys.insert(key);
                }
            }
        }
        Ok(keys)
    }

    /// An app's stored state.
    pub fn export_app(&self, key: &AppKey) -> Result<AppState, StoreError> {
        let k = app_key_bytes(key);
        // the entry as readers see it (the worker's row and the head's, joined): the table keeps
        // the shape older builds wrote
        let entry: Option<Value> = self.app(key)?.map(|e| serde_json::to_value(e).unwrap_or_default());
        let record: Option<Value> = self.records.get(&k)?.map(|v| decode(&k, &v)).transpose()?;
        let commands: Option<Value> = self.export_commands(key)?;
        let mut refs: Vec<String> = record.as_ref().map(documents::references).unwrap_or_default();
        if let Some(id) = entry.as_ref().and_then(|e| e.get("applied_document")).and_then(Value::as_str) {
            refs.push(id.to_string());
        }
        refs.sort();
        refs.dedup();
        Ok(AppState { entry, record, commands, documents: refs })
    }

    /// A finished (or in-flight) deployment as stored, with its document references.
    pub fn deployment_stored(&self, id: &str) -> Result<Option<Value>, StoreError> {
        self.deployments.get(id.as_bytes())?.map(|v| decode(id.as_bytes(), &v)).transpose()
    }

    /// The ids of the documents a stored record refers to.
    pub fn references_of(stored: &Value) -> Vec<String> {
        documents::references(stored)
    }

    /// A document's bytes.
    pub fn document(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.documents.get(id.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Whether a document is stored.
    pub fn has_document(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.documents.contains_key(id.as_bytes())?)
    }

    /// Stores a document copied from the table (content-addressed: an existing one is the same).
    pub fn put_document(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        decode::<Value>(id.as_bytes(), bytes)?;
        if !self.documents.contains_key(id.as_bytes())? {
            self.documents.insert(id.as_bytes(), bytes)?;
        }
        Ok(())
    }

    /// Replaces the state of the apps of a shard with what the table holds: `apps` are imported
    /// whole; `dropped` (apps this store holds in the shard that the table does not) are
    /// forgotten. Every document the imported state refers to must be stored first.
    pub fn import(&self, apps: &[ImportedApp], dropped: &[AppKey]) -> Result<(), StoreError> {
        for app in apps {
            let k = app_key_bytes(&app.key);
            for (field, value) in [("entry", &app.state.entry), ("record", &app.state.record)] {
                if let Some(v) = value {
                    for id in
                        documents::references(v).into_iter().chain(v.get("applied_document").and_then(Value::as_str).map(String::from))
                    {
                        if !self.documents.contains_key(id.as_bytes())? {
                            return Err(StoreError::MissingDocument { key: format!("{} ({field})", app.key), document: id });
                        }
                    }
                }
            }
            if let Some(entry) = &app.state.entry {
                // refuse what this build cannot read before replacing anything
                serde_json::from_value::<AppEntry>(entry.clone())
                    .map_err(|source| StoreError::Corrupt { key: format!("{} (entry from the table)", app.key), source })?;
            }
            for deployment in &app.deployments {
                let Some(id) = deployment.get("id").and_then(Value::as_str) else { continue };
                let record = self.load_record(id.as_bytes(), &encode(deployment))?;
                self.deployments.insert(id.as_bytes(), encode(deployment))?;
                self.deployments_by_app.insert(Self::index_key(&record), id.as_bytes())?;
            }
            if let Some(record) = &app.state.record {
                let loaded = self.load_record(&k, &encode(record))?;
                if !self.deployments.contains_key(loaded.id.as_bytes())? {
                    self.deployments.insert(loaded.id.as_bytes(), encode(record))?;
                    self.deployments_by_app.insert(Self::index_key(&loaded), loaded.id.as_bytes())?;
                }
            }
            match &app.state.entry {
                Some(v) => {
                    let entry: AppEntry = serde_json::from_value(v.clone())
                        .map_err(|source| StoreError::Corrupt { key: format!("{} (entry from the table)", app.key), source })?;
                    self.apps.insert(&k, encode(&super::worker_part(&entry)))?;
                    self.intents.insert(&k, encode(&super::HeadIntent::of(&entry)))?;
                }
                None => {
                    self.apps.remove(&k)?;
                    self.intents.remove(&k)?;
                }
            }
            replace(&self.records, &k, app.state.record.as_ref())?;
            self.import_commands(&app.key, app.state.commands.as_ref())?;
            let prefix = history_prefix(&app.key);
            for old in self.history.scan_prefix(&prefix).keys() {
                self.history.remove(old?)?;
            }
            for event in app.history.iter().rev().take(super::MAX_HISTORY_PER_APP).rev() {
                let mut hk = prefix.clone();
                hk.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
                self.history.insert(hk, encode(event))?;
            }
            self.mark_unflushed(&k);
        }
        for key in dropped {
            let k = app_key_bytes(key);
            self.apps.remove(&k)?;
            self.intents.remove(&k)?;
            self.records.remove(&k)?;
            self.drop_commands(key)?;
            self.mark_unflushed(&k);
        }
        Ok(())
    }
}

fn replace(tree: &sled::Tree, key: &[u8], value: Option<&Value>) -> Result<(), StoreError> {
    match value {
        Some(v) => tree.insert(key, encode(v))?,
        None => tree.remove(key)?,
    };
    Ok(())
}
