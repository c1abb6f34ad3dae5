//! The status of an app as people see it (API, CLI, metrics, the page): one word derived from
//! the head's intent, the in-flight record, the operator's pause and what was applied. Derived
//! here, in one place, so every interface says the same thing.

use crate::intent::Intent;
use crate::record::{AppliedState, DeploymentRecord, Operation, Outcome};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What an app is doing or why it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AppStatus {
    /// AWS runs the head's fingerprint.
    Synced,
    /// A deployment is in flight.
    Deploying,
    /// The resource is being deleted.
    Deleting,
    /// Held at its current step by an operator.
    Paused,
    /// The deployment waits at an approval gate (`gitmoxi approve` / `gitmoxi reject`).
    WaitingForApproval,
    /// The head's files do not render or validate.
    Invalid,
    /// Another app claims the same AWS identity.
    Conflict,
    /// Its delete waits for `--allow-prune` (prune protection).
    DeleteHeld,
    /// This gitmoxi leaves it untouched (a kind it does not implement).
    Unsupported,
    /// The head's fingerprint failed and was rolled back.
    RolledBack,
    /// The head's fingerprint failed with nothing rolled back.
    Failed,
    /// Waiting for its first look (or a change not yet picked up).
    Pending,
    /// Its change waits for other apps of the commit (`dependsOn`), or its delete for the apps
    /// that depend on it.
    Waiting,
    /// A dependency failed or rolled back: its change waits for a commit that fixes it.
    Blocked,
    /// A freeze holds its change.
    Frozen,
    /// AWS runs the files an operator rolled it back to (`gitmoxi rollback --to`), not the
    /// branch head's, until `gitmoxi unpin` or a commit that changes its files.
    Pinned,
}

impl AppStatus {
    /// The word the API, CLI and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::Synced => "Synced",
            AppStatus::Deploying => "Deploying",
            AppStatus::Deleting => "Deleting",
            AppStatus::Paused => "Paused",
            AppStatus::WaitingForApproval => "WaitingForApproval",
            AppStatus::Invalid => "Invalid",
            AppStatus::Conflict => "Conflict",
            AppStatus::DeleteHeld => "DeleteHeld",
            AppStatus::Unsupported => "Unsupported",
            AppStatus::RolledBack => "RolledBack",
            AppStatus::Failed => "Failed",
            AppStatus::Pending => "Pending",
            AppStatus::Waiting => "Waiting",
            AppStatus::Blocked => "Blocked",
            AppStatus::Frozen => "Frozen",
            AppStatus::Pinned => "Pinned",
        }
    }
}

impl fmt::Display for AppStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far gitmoxi got with one commit (gmctl's `commit get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStatus {
    /// A deployment of the commit is in flight.
    Processing,
    /// A deployment of the commit failed, or an app of it could not deploy (invalid, conflict).
    ProcessedError,
    /// Everything the commit asked for is done.
    ProcessedSuccess,
}

impl CommitStatus {
    /// gmctl's word.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitStatus::Processing => "PROCESSING",
            CommitStatus::ProcessedError => "PROCESSED_ERROR",
            CommitStatus::ProcessedSuccess => "PROCESSED_SUCCESS",
        }
    }
}

/// The status of a commit from its deployments and from how many of its apps could not deploy
/// at all (render or validation errors, conflicts): a head whose apps all failed validation
/// made no deployment, and is no success.
pub fn commit_status(deployments: impl IntoIterator<Item = crate::record::DeploymentStatus>, blocked_apps: usize) -> CommitStatus {
    use crate::record::DeploymentStatus as D;
    let mut status = if blocked_apps > 0 { CommitStatus::ProcessedError } else { CommitStatus::ProcessedSuccess };
    for deployment in deployments {
        match deployment {
            D::Processing => return CommitStatus::Processing,
            D::ProcessedError => status = CommitStatus::ProcessedError,
            D::ProcessedSuccess => {}
        }
    }
    status
}

/// What the status is derived from.
#[derive(Debug, Clone, Copy)]
pub struct StatusFacts<'a> {
    /// What the latest head wants of the app (`None`: not in a loaded head).
    pub intent: Option<Intent>,
    /// The head's fingerprint of the app, when it is valid.
    pub head_fingerprint: Option<&'a str>,
    /// The deployment in flight, if any.
    pub in_flight: Option<&'a DeploymentRecord>,
    /// An operator paused the app.
    pub paused: bool,
    /// What the store remembers of the app.
    pub applied: &'a AppliedState,
    /// How the last deployment ended, if one did.
    pub last_outcome: Option<Outcome>,
    /// This version of gitmoxi leaves the app untouched.
    pub unsupported: bool,
    /// Why its change has not started (dependencies, a freeze), as its worker last found.
    pub hold: Option<&'a crate::release::Hold>,
    /// An operator pinned it (`gitmoxi rollback --to`).
    pub pinned: bool,
}

impl AppStatus {
    /// Whether the app is in motion — a deployment or delete in flight, held at a step or a gate,
    /// or a change about to start — so its AWS calls go before steady-state checks when the
    /// client-side rate limits are tight.
    pub fn is_in_motion(self) -> bool {
        match self {
            AppStatus::Deploying | AppStatus::Deleting | AppStatus::Paused | AppStatus::WaitingForApproval | AppStatus::Pending => true,
            AppStatus::Waiting
            | AppStatus::Blocked
            | AppStatus::Frozen
            | AppStatus::Pinned
            | AppStatus::Synced
            | AppStatus::Invalid
            | AppStatus::Conflict
            | AppStatus::DeleteHeld
            | AppStatus::Unsupported
            | AppStatus::RolledBack
            | AppStatus::Failed => false,
        }
    }
}

/// The app's status.
pub fn app_status(facts: &StatusFacts<'_>) -> AppStatus {
    if facts.paused {
        return AppStatus::Paused;
    }
    if let Some(record) = facts.in_flight {
        if record.awaiting_approval.is_some() {
            return AppStatus::WaitingForApproval;
        }
        return match record.operation {
            Operation::Delete => AppStatus::Deleting,
            Operation::Deploy => AppStatus::Deploying,
        };
    }
    match facts.intent {
        Some(Intent::Error) => return AppStatus::Invalid,
        Some(Intent::Conflict) => return AppStatus::Conflict,
        Some(Intent::Held) if facts.head_fingerprint.is_none() => return AppStatus::DeleteHeld,
        Some(Intent::Held | Intent::Deploy | Intent::Delete | Intent::Move | Intent::Keep) | None => {}
    }
    if facts.unsupported {
        return AppStatus::Unsupported;
    }
    match facts.head_fingerprint {
        Some(fp) if facts.applied.failed.contains(fp) => match facts.last_outcome {
            Some(Outcome::RolledBack) => AppStatus::RolledBack,
            Some(Outcome::Failed | Outcome::Succeeded | Outcome::Superseded | Outcome::Deleted) | None => AppStatus::Failed,
        },
        Some(fp) if facts.applied.is_applied(fp) && facts.pinned => AppStatus::Pinned,
        Some(fp) if facts.applied.is_applied(fp) => AppStatus::Synced,
        Some(_) | None => facts.hold.map_or(AppStatus::Pending, crate::release::Hold::status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::AppKey;
    use crate::record::{DeploymentStatus, Phase, RollingPhase, Strategy};
    use crate::spec::{AppKind, Identity};

    fn record(operation: Operation) -> DeploymentRecord {
        DeploymentRecord {
            id: "d".into(),
            app: AppKey { repo: "r".into(), branch: "main".into(), prefix: "p".into() },
            kind: AppKind::Ecs,
            commit: "c".into(),
            fingerprint: "fp2".into(),
            identity: Identity::Ecs { account: None, region: "us-east-1".into(), cluster: "c".into(), service: "s".into() },
            account_id: None,
            operation,
            strategy: Strategy::Rolling,
            desired: None,
            desired_lambda: None,
            previous_version: None,
            previous_task_definition: None,
            previous_service: None,
            forced: false,
            phase: Phase::Rolling(RollingPhase::Register),
            status: DeploymentStatus::Processing,
            outcome: None,
            cause: None,
            evidence: vec![],
            traffic: None,
            task_set_scales: None,
            task_set_arns: None,
            awaiting_approval: None,
            approvals: Vec::new(),
            hooks: Vec::new(),
            analysis: None,
            started_at_ms: 0,
            updated_at_ms: 0,
            finished_at_ms: None,
            timeline: vec![],
        }
    }

    #[test]
    fn a_commit_is_a_success_only_when_nothing_of_it_failed_or_could_not_deploy() {
        use crate::record::DeploymentStatus as D;
        assert_eq!(commit_status([D::ProcessedSuccess, D::ProcessedSuccess], 0), CommitStatus::ProcessedSuccess);
        assert_eq!(commit_status([D::ProcessedSuccess, D::Processing], 0), CommitStatus::Processing);
        assert_eq!(commit_status([D::ProcessedError, D::ProcessedSuccess], 0), CommitStatus::ProcessedError);
        assert_eq!(commit_status([], 2), CommitStatus::ProcessedError, "every app failed validation: no deployment, no success");
        assert_eq!(commit_status([], 0), CommitStatus::ProcessedSuccess, "nothing to do");
    }

    #[test]
    fn each_situation_has_one_status() {
        let applied = AppliedState { fingerprint: Some("fp1".into()), failed: ["fp3".to_string()].into(), ..Default::default() };
        let deploying = record(Operation::Deploy);
        let deleting = record(Operation::Delete);
        let mut gated = record(Operation::Deploy);
        gated.awaiting_approval = Some(crate::record::AwaitingApproval {
            gate: "hook-1".into(),
            service_deployment: "arn:sd".into(),
            stage: "POST_TEST_TRAFFIC_SHIFT".into(),
            since_ms: 1,
        });
        let base = StatusFacts {
            intent: Some(Intent::Keep),
            head_fingerprint: Some("fp1"),
            in_flight: None,
            paused: false,
            applied: &applied,
            last_outcome: Some(Outcome::Succeeded),
            unsupported: false,
            hold: None,
            pinned: false,
        };
        let waiting = crate::release::Hold::Waiting { on: vec!["db/migrate".into()] };
        let frozen = crate::release::Hold::Frozen { freeze: "year end".into(), reason: "holidays".into(), until_ms: 1 };
        let cases: [(&str, StatusFacts, AppStatus); 17] = [
            ("applied", base, AppStatus::Synced),
            ("paused wins", StatusFacts { paused: true, in_flight: Some(&deploying), ..base }, AppStatus::Paused),
            ("deploying", StatusFacts { in_flight: Some(&deploying), ..base }, AppStatus::Deploying),
            ("at a gate", StatusFacts { in_flight: Some(&gated), ..base }, AppStatus::WaitingForApproval),
            ("deleting", StatusFacts { in_flight: Some(&deleting), ..base }, AppStatus::Deleting),
            ("invalid", StatusFacts { intent: Some(Intent::Error), head_fingerprint: None, ..base }, AppStatus::Invalid),
            ("conflict", StatusFacts { intent: Some(Intent::Conflict), ..base }, AppStatus::Conflict),
            ("delete held", StatusFacts { intent: Some(Intent::Held), head_fingerprint: None, ..base }, AppStatus::DeleteHeld),
            ("unsupported", StatusFacts { unsupported: true, ..base }, AppStatus::Unsupported),
            (
                "rolled back",
                StatusFacts { head_fingerprint: Some("fp3"), last_outcome: Some(Outcome::RolledBack), ..base },
                AppStatus::RolledBack,
            ),
            ("failed", StatusFacts { head_fingerprint: Some("fp3"), last_outcome: Some(Outcome::Failed), ..base }, AppStatus::Failed),
            ("a new fingerprint", StatusFacts { intent: Some(Intent::Deploy), head_fingerprint: Some("fp2"), ..base }, AppStatus::Pending),
            ("not in a head", StatusFacts { intent: None, head_fingerprint: None, ..base }, AppStatus::Pending),
            ("pinned", StatusFacts { pinned: true, ..base }, AppStatus::Pinned),
            (
                "waits for a dependency",
                StatusFacts { intent: Some(Intent::Deploy), head_fingerprint: Some("fp2"), hold: Some(&waiting), ..base },
                AppStatus::Waiting,
            ),
            (
                "a delete under a freeze",
                StatusFacts { intent: Some(Intent::Delete), head_fingerprint: None, hold: Some(&frozen), ..base },
                AppStatus::Frozen,
            ),
            ("a stale hold of an applied app", StatusFacts { hold: Some(&frozen), ..base }, AppStatus::Synced),
        ];
        for (name, facts, want) in cases {
            assert_eq!(app_status(&facts), want, "{name}");
        }
    }
}
