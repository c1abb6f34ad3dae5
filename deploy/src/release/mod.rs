//! Releases (issue 26): what holds a change back before it starts, decided here from facts the
//! executor gathers — the order of apps inside a commit (`dependsOn`, [`order`]) and freezes
//! ([`freeze`]) — what an operator's `rollback --to` pins ([`pin`]), and how a release is
//! promoted from one environment to the next ([`pipeline`]).
//!
//! Invariants: a hold only keeps a deployment or delete from *starting*; one in flight goes on
//! (its guards, gates and rollbacks are untouched), an operator's rollback is never held, and a
//! held app keeps running what it runs. Each hold says what it waits for and what releases it.

pub mod freeze;
pub mod order;
pub mod pin;
pub mod pipeline;

use crate::intent::Intent;
use crate::record::{AppliedState, Outcome};
use crate::status::AppStatus;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Why a change of the head does not start now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Hold {
    /// Waits for dependencies (`dependsOn`) to run the head's files.
    Waiting {
        /// The dependencies not there yet.
        on: Vec<String>,
    },
    /// A dependency failed, rolled back or is invalid: the app does not start until a newer
    /// commit fixes the dependency.
    Blocked {
        /// The dependency.
        dependency: String,
        /// What happened to it.
        cause: String,
    },
    /// A delete waits for the apps that depend on it to be deleted first (reverse order).
    WaitingForDependents {
        /// The dependents still there.
        dependents: Vec<String>,
    },
    /// A freeze holds the change.
    Frozen {
        /// The freeze's name.
        freeze: String,
        /// Its reason.
        reason: String,
        /// When it ends (ms since the epoch).
        until_ms: u64,
    },
}

/// How long a Blocked app waits before looking again (a newer head queues it anyway).
const BLOCKED_RECHECK: Duration = Duration::from_secs(60);
/// How long an app waiting for others looks again (their end also queues it).
const WAITING_RECHECK: Duration = Duration::from_secs(10);
/// At most this long between two looks at a frozen app (a freeze can be lifted by a restart
/// with a new configuration, and the status shows the time left).
const FROZEN_RECHECK_MAX: Duration = Duration::from_secs(300);

impl Hold {
    /// The app's status while held.
    pub fn status(&self) -> AppStatus {
        match self {
            Hold::Waiting { .. } | Hold::WaitingForDependents { .. } => AppStatus::Waiting,
            Hold::Blocked { .. } => AppStatus::Blocked,
            Hold::Frozen { .. } => AppStatus::Frozen,
        }
    }

    /// When to look again.
    pub fn recheck_after(&self, now_ms: u64) -> Duration {
        match self {
            Hold::Waiting { .. } | Hold::WaitingForDependents { .. } => WAITING_RECHECK,
            Hold::Blocked { .. } => BLOCKED_RECHECK,
            Hold::Frozen { until_ms, .. } => {
                Duration::from_millis(until_ms.saturating_sub(now_ms)).clamp(Duration::from_secs(1), FROZEN_RECHECK_MAX)
            }
        }
    }

    /// What an operator reads: what it waits for and what releases it.
    pub fn describe(&self, app: &str) -> String {
        match self {
            Hold::Waiting { on } => format!("waits for {} (dependsOn) to run this head's files", on.join(", ")),
            Hold::Blocked { dependency, cause } => format!(
                "blocked: dependency {dependency} {cause}; {app} does not start until a newer commit fixes {dependency} (or `gitmoxi sync --force {dependency}`)"
            ),
            Hold::WaitingForDependents { dependents } => {
                format!("delete waits for {} (which depend on it) to be deleted first", dependents.join(", "))
            }
            Hold::Frozen { freeze, reason, until_ms } => format!(
                "frozen by '{freeze}' until {} ({reason}); `gitmoxi sync --override-freeze {app}` deploys anyway",
                freeze::format_utc(*until_ms)
            ),
        }
    }
}

/// What one dependency is doing, as [`dependency_state`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyState {
    /// AWS runs the head's files of it.
    Ready,
    /// Its head's files are not deployed yet (deploying, or about to).
    Pending,
    /// It cannot get there without a new commit.
    Broken(String),
}

/// The facts of one dependency (from the store and the head).
#[derive(Debug, Clone, Copy)]
pub struct DependencyFacts<'a> {
    /// What the head wants of it.
    pub intent: Option<Intent>,
    /// Its fingerprint in the head (valid apps only).
    pub head_fingerprint: Option<&'a str>,
    /// What the store remembers of it.
    pub applied: Option<&'a AppliedState>,
    /// How its last deployment ended, and why.
    pub last_outcome: Option<Outcome>,
    /// Its last deployment's cause, as people read it.
    pub last_cause: Option<&'a str>,
    /// A deployment of it is in flight.
    pub in_flight: bool,
}

/// Where a dependency stands.
pub fn dependency_state(facts: &DependencyFacts<'_>) -> DependencyState {
    match facts.intent {
        Some(Intent::Error) => return DependencyState::Broken("has files that do not render or validate".into()),
        Some(Intent::Conflict) => return DependencyState::Broken("is in conflict with another app".into()),
        Some(Intent::Deploy | Intent::Delete | Intent::Move | Intent::Keep | Intent::Held) | None => {}
    }
    let Some(fingerprint) = facts.head_fingerprint else {
        // gone from the head: validation refuses a dependsOn naming it, so nothing waits on it
        return DependencyState::Ready;
    };
    let applied = facts.applied.filter(|a| a.is_applied(fingerprint));
    match facts.applied {
        Some(a) if a.failed.contains(fingerprint) && !facts.in_flight => {
            let how = match facts.last_outcome {
                Some(Outcome::RolledBack) => "rolled back",
                Some(Outcome::Failed | Outcome::Succeeded | Outcome::Superseded | Outcome::Deleted) | None => "failed",
            };
            let cause = facts.last_cause.map(|c| format!(" ({c})")).unwrap_or_default();
            DependencyState::Broken(format!("{how}{cause}"))
        }
        _ if applied.is_some() && !facts.in_flight => DependencyState::Ready,
        _ => DependencyState::Pending,
    }
}

/// The facts a hold is decided from, for an app whose change would start now.
#[derive(Debug, Clone, Default)]
pub struct HoldFacts {
    /// The change is a delete (else a deploy or a move).
    pub delete: bool,
    /// Each dependency (`dependsOn`) and where it stands (deploys only).
    pub dependencies: Vec<(String, DependencyState)>,
    /// Apps being deleted too that depend on this one and still hold their resource (deletes).
    pub dependents_still_there: Vec<String>,
    /// The freeze in force for the app now, if any.
    pub freeze: Option<freeze::ActiveFreeze>,
    /// An operator overrode the freeze (`gitmoxi sync --override-freeze`).
    pub override_freeze: bool,
}

/// Whether a change that would start now is held, and why: a freeze first (nothing starts under
/// it unless overridden), then a broken dependency, then the ones still on their way; a delete
/// waits for its dependents. (A delete held by prune protection is not a change that starts: it
/// stays DeleteHeld, freeze or not.)
pub fn hold_of(facts: &HoldFacts) -> Option<Hold> {
    if let Some(active) = facts.freeze.as_ref().filter(|_| !facts.override_freeze) {
        return Some(Hold::Frozen { freeze: active.name.clone(), reason: active.reason.clone(), until_ms: active.until_ms });
    }
    if facts.delete {
        return (!facts.dependents_still_there.is_empty())
            .then(|| Hold::WaitingForDependents { dependents: facts.dependents_still_there.clone() });
    }
    if let Some((dependency, DependencyState::Broken(cause))) =
        facts.dependencies.iter().find(|(_, s)| matches!(s, DependencyState::Broken(_)))
    {
        return Some(Hold::Blocked { dependency: dependency.clone(), cause: cause.clone() });
    }
    let on: Vec<String> = facts.dependencies.iter().filter(|(_, s)| *s == DependencyState::Pending).map(|(d, _)| d.clone()).collect();
    (!on.is_empty()).then_some(Hold::Waiting { on })
}

#[cfg(test)]
mod tests;
