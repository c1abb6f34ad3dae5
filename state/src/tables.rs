//! The small tables beside the apps' state (issue 24): what used to be string keys of one `meta`
//! table holding JSON strings, written by six modules, is one sled tree per [`TableName`], with
//! typed values and one writer each (named on the variant). `meta` keeps the schema version only.
//!
//! Invariants: a table's values are the caller's type, stored as JSON (readable with sled tools);
//! a value that does not read is an error naming the table and key, never a silent default.

use super::{decode, encode, Store, StoreError};
use serde::{de::DeserializeOwned, Serialize};
use std::marker::PhantomData;

/// The tables, each with its one writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableName {
    /// The last head each branch loaded (`repo\0branch` → commit). Writer: the branch's source loop.
    LoadedHeads,
    /// The commits each branch loaded, newest first (`repo\0branch` → `[(commit, ms)]`). Writer:
    /// the branch's source loop.
    SeenCommits,
    /// The comment of each pull-request preview (`repo\0number` → comment id). Writer: the
    /// preview of that pull request (one at a time).
    PreviewComments,
    /// Kept risk assessments (commit → the apps' assessments). Writer: the riskiq handler.
    RiskAssessments,
    /// The order the assessments were kept in (`""` → commits, oldest first). Writer: the riskiq
    /// handler.
    RiskAssessmentOrder,
    /// Signed-out page sessions (cookie signature → expiry, ms). Writer: the page's sign-out.
    RevokedSessions,
    /// Repositories added through the API (URL → record). Writer: the repositories manager.
    ApiRepos,
    /// Each repository's URL, kept after it is deleted (name → URL). Writer: the repositories
    /// manager.
    RepoUrls,
    /// The last head of each pipeline's first stage the pipelines runner looked at (pipeline →
    /// commit). Writer: the pipelines runner.
    PipelineHeads,
    /// Releases and how far each got (release id → release). Writer: the pipelines runner.
    Releases,
    /// Approvals of promotions (`release\0stage\0by` → the approval). Writer: the release
    /// approval handler (`POST /api/v2/releases/{id}/approve`).
    ReleaseApprovals,
}

impl TableName {
    /// The sled tree's name.
    fn tree(self) -> &'static str {
        match self {
            TableName::LoadedHeads => "loaded_heads",
            TableName::SeenCommits => "seen_commits",
            TableName::PreviewComments => "preview_comments",
            TableName::RiskAssessments => "risk_assessments",
            TableName::RiskAssessmentOrder => "risk_assessment_order",
            TableName::RevokedSessions => "revoked_sessions",
            TableName::ApiRepos => "api_repos",
            TableName::RepoUrls => "repo_urls",
            TableName::PipelineHeads => "pipeline_heads",
            TableName::Releases => "releases",
            TableName::ReleaseApprovals => "release_approvals",
        }
    }
}

/// A typed table: string keys, `V` values.
pub struct Table<V> {
    tree: sled::Tree,
    name: TableName,
    value: PhantomData<fn() -> V>,
}

impl<V: Serialize + DeserializeOwned> Table<V> {
    pub fn get(&self, key: &str) -> Result<Option<V>, StoreError> {
        self.tree.get(key.as_bytes())?.map(|v| decode(self.label(key).as_bytes(), &v)).transpose()
    }

    pub fn put(&self, key: &str, value: &V) -> Result<(), StoreError> {
        self.tree.insert(key.as_bytes(), encode(value))?;
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.tree.remove(key.as_bytes())?;
        Ok(())
    }

    /// Every row, by key.
    pub fn entries(&self) -> Result<Vec<(String, V)>, StoreError> {
        self.tree
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let key = String::from_utf8_lossy(&k).to_string();
                Ok((key.clone(), decode(self.label(&key).as_bytes(), &v)?))
            })
            .collect()
    }

    fn label(&self, key: &str) -> String {
        format!("{}/{}", self.name.tree(), key.replace('\0', "/"))
    }
}

/// `repo\0branch` (or `repo\0number`): the key of a per-branch row.
pub fn branch_row(repo: &str, branch: &str) -> String {
    format!("{repo}\0{branch}")
}

impl Store {
    /// The table `name`, with `V` values.
    pub fn table<V: Serialize + DeserializeOwned>(&self, name: TableName) -> Result<Table<V>, StoreError> {
        Ok(Table { tree: self.db.open_tree(name.tree())?, name, value: PhantomData })
    }

    /// Schema 2 → 3: the `meta` rows become rows of their tables (a repository name ends at the
    /// first `/`, a pull request's number follows the last).
    pub(crate) fn migrate_meta_rows(&self) -> Result<(), StoreError> {
        for kv in self.meta.iter() {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k).to_string();
            if name == "schema_version" {
                continue;
            }
            // meta held JSON text inside a JSON string
            let text: String = decode(&k, &v)?;
            let value: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
            let per_branch = |rest: &str| rest.split_once('/').map(|(repo, branch)| branch_row(repo, branch));
            match name.split_once('/') {
                Some(("head", rest)) => {
                    if let Some(row) = per_branch(rest) {
                        self.table::<String>(TableName::LoadedHeads)?.put(&row, &text)?;
                    }
                }
                Some(("commits", rest)) => {
                    if let Some(row) = per_branch(rest) {
                        self.table::<serde_json::Value>(TableName::SeenCommits)?.put(&row, &value)?;
                    }
                }
                Some(("pr-comment", rest)) => {
                    if let (Some((repo, number)), Ok(id)) = (rest.rsplit_once('/'), text.parse::<u64>()) {
                        self.table::<u64>(TableName::PreviewComments)?.put(&branch_row(repo, number), &id)?;
                    }
                }
                Some(("riskiq", commit)) => self.table::<serde_json::Value>(TableName::RiskAssessments)?.put(commit, &value)?,
                Some(("repo_url", repo)) => self.table::<String>(TableName::RepoUrls)?.put(repo, &text)?,
                Some(("repos", "api")) => {
                    let table = self.table::<serde_json::Value>(TableName::ApiRepos)?;
                    for record in value.as_array().into_iter().flatten() {
                        if let Some(url) = record.get("repo_url").and_then(serde_json::Value::as_str) {
                            table.put(url, record)?;
                        }
                    }
                }
                Some(("ui", "revoked_sessions")) => {
                    let table = self.table::<u64>(TableName::RevokedSessions)?;
                    for (signature, expires) in value.as_object().into_iter().flatten() {
                        table.put(signature, &expires.as_u64().unwrap_or(0))?;
                    }
                }
                _ if name == "riskiq-index" => self.table::<serde_json::Value>(TableName::RiskAssessmentOrder)?.put("", &value)?,
                _ => continue,
            }
            self.meta.remove(k)?;
        }
        Ok(())
    }
}
