//! Operator commands waiting for an app (pause, resume, rollback, force, rebalance), as the
//! planner reads them, and what a step consumed of them.
//!
//! The store keeps `OperatorCommands` per app; the HTTP handlers only write them. Whether a
//! command applies, and when it is used up, is the planner's decision ([`crate::strategy`]):
//! the executor clears exactly what [`Consumed`] names, after persisting the step's record.

use serde::{Deserialize, Serialize};

/// Operator commands waiting for an app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorCommands {
    /// Redeploy even when applied or failed (consumed when a deployment starts).
    pub force: bool,
    /// Hold the app at its current step until resumed (no further shift, no new deployment).
    #[serde(default)]
    pub paused: bool,
    /// Roll the in-flight deployment back (consumed by the next pass).
    #[serde(default)]
    pub rollback: bool,
    /// Move a steady blue/green service's scale between its primary and fallback task sets,
    /// consumed once the scales are set or refused.
    #[serde(default)]
    pub rebalance: Option<Rebalance>,
    /// An answer to the approval gate the in-flight deployment waits at (consumed when the
    /// answer reaches AWS, or with a note when nothing waits).
    #[serde(default)]
    pub approval: Option<Approval>,
}

/// No command waiting.
pub static NO_COMMANDS: OperatorCommands = OperatorCommands::none();

impl OperatorCommands {
    /// No command at all.
    pub const fn none() -> OperatorCommands {
        OperatorCommands { force: false, paused: false, rollback: false, rebalance: None, approval: None }
    }
}

/// An answer to an approval gate, and who gave it, how and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Approve (go on) or reject (roll back).
    pub approve: bool,
    /// Who answered (the API token's name, the Slack user, `cli`).
    pub by: String,
    /// How the answer came.
    pub via: AnswerChannel,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

impl std::fmt::Display for Approval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.approve { "approved" } else { "rejected" };
        write!(f, "{verb} by {} via {}", self.by, self.via.as_str())
    }
}

/// An answer as the record keeps it: which gate it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateAnswer {
    /// The gate (an ECS hook id, or `before 50 %`).
    pub gate: String,
    /// The answer.
    #[serde(flatten)]
    pub answer: Approval,
}

/// Where an approval answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerChannel {
    /// `gitmoxi approve` / `gitmoxi reject`.
    Cli,
    /// The HTTP API.
    Api,
    /// The web page.
    Page,
    /// A Slack button.
    Slack,
    /// Nobody answered in time: the gate's `onTimeout` decided.
    Timeout,
}

impl AnswerChannel {
    /// The word the API and the timeline use.
    pub fn as_str(&self) -> &'static str {
        match self {
            AnswerChannel::Cli => "cli",
            AnswerChannel::Api => "api",
            AnswerChannel::Page => "page",
            AnswerChannel::Slack => "slack",
            AnswerChannel::Timeout => "timeout",
        }
    }
}

/// Which way a rebalance moves scale (Gitmoxi's Spot fallback: to the fallback's on-demand
/// capacity when Spot is short, back to the primary's Spot when it returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RebalanceDirection {
    /// From the primary task set to the fallback (gmctl without `--revert`).
    ToFallback,
    /// From the fallback task set back to the primary (`--revert`).
    ToPrimary,
}

/// An operator's rebalance as asked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Rebalance {
    /// Move scale one way: everything (`--shift_all`), or only what is needed (to the fallback:
    /// the primary's tasks it cannot place; back to the primary: the fallback's whole share).
    Move {
        /// Which way.
        direction: RebalanceDirection,
        /// Everything, not only what is needed.
        all: bool,
    },
    /// Absolute scales (primary %, fallback %), as stores written before `Move` hold them.
    Scales(f64, f64),
}

/// The commands a step used up; the executor clears them once the step's record is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consumed {
    /// The force the step used (a deployment started).
    pub force: bool,
    /// The rollback the step used (it rolled back, or said why it could not).
    pub rollback: bool,
    /// The rebalance the step used (AWS shows the new scales).
    pub rebalance: bool,
    /// The approval answer the step used (sent to AWS, or noted as answering nothing).
    pub approval: bool,
}

impl Consumed {
    /// Whether nothing was consumed.
    pub fn is_empty(&self) -> bool {
        !(self.force || self.rollback || self.rebalance || self.approval)
    }

    /// The commands left once these are cleared.
    pub fn clear_from(&self, mut commands: OperatorCommands) -> OperatorCommands {
        if self.force {
            commands.force = false;
        }
        if self.rollback {
            commands.rollback = false;
        }
        if self.approval {
            commands.approval = None;
        }
        if self.rebalance {
            commands.rebalance = None;
        }
        commands
    }
}
