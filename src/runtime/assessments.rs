//! Kept risk assessments (gmctl `commit riskiq` / `riskiq get`): one list of app assessments per
//! commit, the newest [`KEPT`] commits. Issue 25: every commit the controller processes is
//! assessed against the commit it processed before (its predecessor as applied) and kept, so a
//! commit that already deployed still has its assessment.
//!
//! Invariants: one writer — every write goes through [`keep`] under one lock, so the table and
//! its order index never disagree; an assessment gmctl asked for (with its model summary) is
//! not replaced by the controller's own.

use gitmoxi_deploy::risk::{self, AppRisk};
use gitmoxi_deploy::spec::Snapshot;
use gitmoxi_state::{Store, StoreError, TableName};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Mutex;

/// The commits whose assessments are kept; older ones are removed.
pub const KEPT: usize = 200;

/// The one writer of the assessments and their order.
static WRITER: Mutex<()> = Mutex::new(());

/// One app's kept assessment, as gmctl `riskiq get` reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kept {
    pub commit_hash: String,
    /// The app's folder (its files start with it).
    pub file_path: String,
    /// The assessment as text: score, level, every reason; the model's summary when asked.
    pub assessment: String,
    /// What a model is (or would be) asked.
    pub prompt: String,
    pub score: u32,
    pub level: String,
    pub kind: String,
    pub target: String,
    pub reasons: Value,
    #[serde(default)]
    pub ai_summary: Option<String>,
    /// What it was assessed against: "applied" (gmctl's request: what gitmoxi applied) or
    /// "predecessor" (the commit processed before it).
    #[serde(default)]
    pub against: Option<String>,
}

impl Kept {
    /// The kept form of `risk` of `commit`.
    pub fn of(commit: &str, risk: &AppRisk, assessment: String, prompt: &str, ai_summary: Option<String>, against: &str) -> Kept {
        Kept {
            commit_hash: commit.to_string(),
            file_path: risk.prefix.clone(),
            assessment,
            prompt: prompt.to_string(),
            score: risk.score,
            level: risk.level.as_str().to_string(),
            kind: serde_json::to_value(risk.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            target: risk.target.clone(),
            reasons: serde_json::to_value(&risk.reasons).unwrap_or(Value::Null),
            ai_summary,
            against: Some(against.to_string()),
        }
    }
}

/// Stores a commit's assessments (replacing what was kept for it, unless `only_if_absent`) and
/// drops the oldest beyond [`KEPT`].
pub fn keep(store: &Store, commit: &str, kept: &[Kept], only_if_absent: bool) -> Result<(), StoreError> {
    let _writer = crate::base::sync::lock(&WRITER);
    let assessments = store.table::<Vec<Kept>>(TableName::RiskAssessments)?;
    if only_if_absent && assessments.get(commit)?.is_some() {
        return Ok(());
    }
    assessments.put(commit, &kept.to_vec())?;
    let order = store.table::<Vec<String>>(TableName::RiskAssessmentOrder)?;
    let mut index = order.get("")?.unwrap_or_default();
    index.retain(|c| c != commit);
    index.push(commit.to_string());
    while index.len() > KEPT {
        let old = index.remove(0);
        assessments.remove(&old)?;
    }
    order.put("", &index)
}

/// The commits with kept assessments, oldest first.
pub fn commits(store: &Store) -> Vec<String> {
    let order = store.table::<Vec<String>>(TableName::RiskAssessmentOrder).and_then(|t| t.get(""));
    match order {
        Ok(index) => index.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "the kept assessments' order could not be read");
            Vec::new()
        }
    }
}

/// The kept assessments of `commit` (a full id).
pub fn of_commit(store: &Store, commit: &str) -> Result<Option<Vec<Kept>>, StoreError> {
    store.table::<Vec<Kept>>(TableName::RiskAssessments)?.get(commit)
}

/// Assesses the processed commit `commit` of `repo`/`branch` against `before` (the snapshot of
/// the commit processed before it) and keeps it, unless gmctl already had it assessed. A commit
/// that changes no app keeps an empty list: `riskiq get` then answers "nothing changed".
pub fn assess_processed(store: &Store, own: Option<&str>, repo: &str, branch: &str, commit: &str, before: &Snapshot, after: &Snapshot) {
    let changes = risk::changes_between(before, after, own);
    let risks = risk::assess(&changes);
    let score = risk::commit_score(&risks);
    let prompt = format!(
        "commit {commit} of {repo}@{branch}: risk {} ({score}/100) against the commit gitmoxi processed before it",
        risk::RiskLevel::of(score).as_str()
    );
    let kept: Vec<Kept> = risks.iter().map(|r| Kept::of(commit, r, risk::render_text(r), &prompt, None, "predecessor")).collect();
    if let Err(e) = keep(store, commit, &kept, true) {
        tracing::warn!(%repo, %branch, %commit, error = %e, "the commit's risk assessment was not kept");
    }
}
