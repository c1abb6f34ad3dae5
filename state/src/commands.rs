//! The operator-command log (issue 24): per app, an append-only list of [`Command`]s keyed by a
//! sequence number. Producers only append ([`Store::submit_command`]); only the app's worker
//! removes, and only what it read ([`Store::consume_commands`]): a command given after a step
//! read the log is never wiped with the one the step used.
//!
//! Also the per-branch permission to go ahead with held deletes (`allow_prune`), the same way:
//! appended by a producer, consumed up to what the heads owner read.
//!
//! Invariants: sequence numbers grow per app across restarts and HA hand-offs (a new entry takes
//! a number above the highest the app's log ever gave — a high-water mark kept beside the log and
//! copied with it —, whatever replica appended it and whatever was consumed); an append never
//! replaces an entry; a log is bounded ([`MAX_PENDING_COMMANDS`]).

use super::{app_key_bytes, decode, encode, Store, StoreError};
use gitmoxi_deploy::commands::{fold, Command, Consumed, OperatorCommands};
use gitmoxi_deploy::record::AppKey;
use serde::{Deserialize, Serialize};

/// Commands that may wait for one app; more are refused (an operator, not a loop, gives them).
pub const MAX_PENDING_COMMANDS: usize = 64;

/// One entry of an app's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedCommand {
    /// Its place in the app's log.
    pub seq: u64,
    /// What was asked.
    #[serde(flatten)]
    pub command: Command,
}

/// An app's log as one read saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PendingCommands {
    /// Oldest first.
    pub log: Vec<(u64, Command)>,
}

impl PendingCommands {
    /// The commands as the planner reads them.
    pub fn view(&self) -> OperatorCommands {
        fold(self.log.iter().map(|(seq, c)| (*seq, c)))
    }

    /// The highest sequence read (0: none): what a consumption may remove up to.
    pub fn through(&self) -> u64 {
        self.log.last().map_or(0, |(seq, _)| *seq)
    }
}

fn log_prefix(key: &AppKey) -> Vec<u8> {
    let mut k = app_key_bytes(key);
    k.push(0xff);
    k
}

/// The row that keeps the highest sequence an app's log ever gave (`app key, 0xfe`): a new
/// entry goes above it even once every entry was consumed, on this replica or after a hand-off.
fn mark_key(key: &AppKey) -> Vec<u8> {
    let mut k = app_key_bytes(key);
    k.push(0xfe);
    k
}

fn entry_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(prefix: &[u8], key: &[u8]) -> u64 {
    key.get(prefix.len()..).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes)
}

impl Store {
    /// Appends `command` to the app's log; its sequence number. Refused when
    /// [`MAX_PENDING_COMMANDS`] already wait.
    pub fn submit_command(&self, key: &AppKey, command: &Command) -> Result<u64, StoreError> {
        let prefix = log_prefix(key);
        let waiting = self.command_log.scan_prefix(&prefix).count();
        if waiting >= MAX_PENDING_COMMANDS {
            return Err(StoreError::TooManyCommands { app: key.to_string(), waiting });
        }
        let bytes = encode(command);
        let id = self.db.generate_id()?;
        // the app's high-water mark moves first (atomically): no two appends get one number, and
        // no number is given twice, whatever was consumed or imported
        let mut seq = 0;
        self.command_log.fetch_and_update(mark_key(key), |old| {
            let last = old.and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes);
            seq = id.max(last + 1);
            Some(seq.to_be_bytes().to_vec())
        })?;
        self.command_log.insert(entry_key(&prefix, seq), bytes)?;
        self.journal_app(key);
        self.mark_unflushed(&app_key_bytes(key));
        Ok(seq)
    }

    /// The highest sequence the app's log gave.
    fn high_water_mark(&self, key: &AppKey) -> Result<u64, StoreError> {
        Ok(self.command_log.get(mark_key(key))?.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok()).map_or(0, u64::from_be_bytes))
    }

    /// The app's log, oldest first.
    pub fn pending_commands(&self, key: &AppKey) -> Result<PendingCommands, StoreError> {
        // an app that was never given a command has no high-water mark: one point read, no scan
        // (every pass of every app reads its log)
        if !self.command_log.contains_key(mark_key(key))? {
            return Ok(PendingCommands::default());
        }
        let prefix = log_prefix(key);
        let mut log = Vec::new();
        for kv in self.command_log.scan_prefix(&prefix) {
            let (k, v) = kv?;
            log.push((seq_of(&prefix, &k), decode::<Command>(&k, &v)?));
        }
        Ok(PendingCommands { log })
    }

    /// The commands waiting for an app, as the planner reads them.
    pub fn commands(&self, key: &AppKey) -> Result<OperatorCommands, StoreError> {
        Ok(self.pending_commands(key)?.view())
    }

    /// Removes what a step consumed of the log it read (`read`; the app's worker only): only
    /// entries that read saw, so nothing given since is touched.
    pub fn consume_commands(&self, key: &AppKey, consumed: &Consumed, read: &PendingCommands) -> Result<(), StoreError> {
        if read.log.is_empty() {
            return Ok(());
        }
        let prefix = log_prefix(key);
        let removed = consumed.removes(&read.log, read.through());
        if removed.is_empty() {
            return Ok(());
        }
        for seq in removed {
            self.command_log.remove(entry_key(&prefix, seq))?;
        }
        self.journal_app(key);
        self.mark_unflushed(&app_key_bytes(key));
        Ok(())
    }

    /// The log as stored entries and its high-water mark (HA copies it; `None` when nothing was
    /// ever given).
    pub(crate) fn export_commands(&self, key: &AppKey) -> Result<Option<serde_json::Value>, StoreError> {
        let log = self.pending_commands(key)?.log;
        let mark = self.high_water_mark(key)?;
        if log.is_empty() && mark == 0 {
            return Ok(None);
        }
        let entries: Vec<LoggedCommand> = log.into_iter().map(|(seq, command)| LoggedCommand { seq, command }).collect();
        Ok(Some(serde_json::json!({"given_through": mark, "log": entries})))
    }

    /// Replaces the app's log with `value` from the HA table: a list of entries, or (written by
    /// an older build) the folded commands, turned into entries.
    pub(crate) fn import_commands(&self, key: &AppKey, value: Option<&serde_json::Value>) -> Result<(), StoreError> {
        let prefix = log_prefix(key);
        for old in self.command_log.scan_prefix(&prefix).keys() {
            self.command_log.remove(old?)?;
        }
        self.command_log.remove(mark_key(key))?;
        let mark = value.and_then(|v| v.get("given_through")).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let listed = value.and_then(|v| if v.is_array() { Some(v) } else { v.get("log") });
        let entries: Vec<(u64, Command)> = match (value, listed) {
            (None, _) => Vec::new(),
            (Some(_), Some(v)) => serde_json::from_value::<Vec<LoggedCommand>>(v.clone())
                .map_err(|source| StoreError::Corrupt { key: format!("{key} (commands from the table)"), source })?
                .into_iter()
                .map(|e| (e.seq, e.command))
                .collect(),
            (Some(v), None) => {
                let folded: OperatorCommands = serde_json::from_value(v.clone())
                    .map_err(|source| StoreError::Corrupt { key: format!("{key} (commands from the table)"), source })?;
                (1..).zip(unfold(&folded)).collect()
            }
        };
        let highest = entries.iter().map(|(seq, _)| *seq).max().unwrap_or(0).max(mark);
        for (seq, command) in entries {
            self.command_log.insert(entry_key(&prefix, seq), encode(&command))?;
        }
        if highest > 0 {
            self.command_log.insert(mark_key(key), highest.to_be_bytes().to_vec())?;
        }
        Ok(())
    }

    /// Forgets the app's log (the app is gone from the table).
    pub(crate) fn drop_commands(&self, key: &AppKey) -> Result<(), StoreError> {
        self.import_commands(key, None)
    }

    /// Schema 2 → 3: the folded commands each app had become entries of its log.
    pub(crate) fn migrate_folded_commands(&self) -> Result<(), StoreError> {
        let legacy = self.db.open_tree("commands")?;
        for kv in legacy.iter() {
            let (k, v) = kv?;
            let folded: OperatorCommands = decode(&k, &v)?;
            let mut prefix = k.to_vec();
            prefix.push(0xff);
            let mut highest = 0u64;
            for (seq, command) in (1..).zip(unfold(&folded)) {
                self.command_log.insert(entry_key(&prefix, seq), encode(&command))?;
                highest = seq;
            }
            let mut mark = k.to_vec();
            mark.push(0xfe);
            self.command_log.insert(mark, highest.to_be_bytes().to_vec())?;
        }
        self.db.drop_tree("commands")?;
        Ok(())
    }

    /// Schema 2 → 3: `allow_prune/REPO/BRANCH = "1"` meta rows become permissions (the repository
    /// name ends at the first `/`).
    pub(crate) fn migrate_allow_prune_meta(&self) -> Result<(), StoreError> {
        for kv in self.meta.scan_prefix("allow_prune/") {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k).to_string();
            let granted = decode::<String>(&k, &v).is_ok_and(|v| v == "1");
            if let Some((repo, branch)) = name.trim_start_matches("allow_prune/").split_once('/').filter(|_| granted) {
                self.allow_prune(repo, branch)?;
            }
            self.meta.remove(k)?;
        }
        Ok(())
    }

    /// Lets the held deletes of `repo`/`branch` go ahead once (an operator's `allow_prune`).
    pub fn allow_prune(&self, repo: &str, branch: &str) -> Result<u64, StoreError> {
        let seq = self.db.generate_id()?;
        let mut k = branch_key(repo, branch);
        k.extend_from_slice(&seq.to_be_bytes());
        self.allowed_prunes.insert(k, encode(&seq))?;
        Ok(seq)
    }

    /// The newest `allow_prune` waiting for `repo`/`branch` (`None`: none).
    pub fn allowed_prune(&self, repo: &str, branch: &str) -> Result<Option<u64>, StoreError> {
        let prefix = branch_key(repo, branch);
        Ok(self.allowed_prunes.scan_prefix(&prefix).keys().next_back().transpose()?.map(|k| seq_of(&prefix, &k)))
    }

    /// Uses up the permissions given up to `through` (the heads owner, once a head deletes).
    pub fn consume_allowed_prune(&self, repo: &str, branch: &str, through: u64) -> Result<(), StoreError> {
        let prefix = branch_key(repo, branch);
        for k in self.allowed_prunes.scan_prefix(&prefix).keys() {
            let k = k?;
            if seq_of(&prefix, &k) <= through {
                self.allowed_prunes.remove(k)?;
            }
        }
        Ok(())
    }
}

fn branch_key(repo: &str, branch: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(repo.len() + branch.len() + 2);
    k.extend_from_slice(repo.as_bytes());
    k.push(0);
    k.extend_from_slice(branch.as_bytes());
    k.push(0xff);
    k
}

/// Folded commands as log entries (what an older build stored).
fn unfold(c: &OperatorCommands) -> Vec<Command> {
    let mut out = Vec::new();
    if c.paused {
        out.push(Command::Pause);
    }
    if c.force {
        out.push(Command::Force);
    }
    if c.rollback {
        out.push(Command::Rollback);
    }
    if let Some(rebalance) = c.rebalance {
        out.push(Command::Rebalance { rebalance });
    }
    if let Some(approval) = c.approval.clone() {
        out.push(Command::Answer { approval });
    }
    out
}
