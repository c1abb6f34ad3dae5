//! Operator commands waiting for an app (pause, resume, rollback, force, rebalance, a gate's
//! answer), as the planner reads them, and what a step consumed of them.
//!
//! Every producer (the API, the page, gmctl's v1 calls, Slack, the CLI) appends a [`Command`]
//! to the app's log with a sequence number; nothing but the app's worker removes from it. The
//! planner reads the log folded into [`OperatorCommands`] ([`fold`]) together with the highest
//! sequence it saw; once the step's record is stored, the executor removes exactly what
//! [`Consumed`] names up to that sequence ([`Consumed::removes`]), so a command given after the
//! read is never wiped with the one that was used. Whether a command applies, and when it is
//! used up, is the planner's decision ([`crate::strategy`]).

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
    /// Who let the app's next change through a freeze (`gitmoxi sync --override-freeze`),
    /// consumed when that deployment starts.
    #[serde(default)]
    pub override_freeze: Option<String>,
}

/// No command waiting.
pub static NO_COMMANDS: OperatorCommands = OperatorCommands::none();

impl OperatorCommands {
    /// No command at all.
    pub const fn none() -> OperatorCommands {
        OperatorCommands { force: false, paused: false, rollback: false, rebalance: None, approval: None, override_freeze: None }
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
    /// gitmoxi's metric analysis answered (an ECS PAUSE hook before a production step).
    Analysis,
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
            AnswerChannel::Analysis => "analysis",
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
    /// The freeze override the step used (a deployment or delete started under a freeze).
    pub override_freeze: bool,
}

impl Consumed {
    /// Whether nothing was consumed.
    pub fn is_empty(&self) -> bool {
        !(self.force || self.rollback || self.rebalance || self.approval || self.override_freeze)
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
        if self.override_freeze {
            commands.override_freeze = None;
        }
        commands
    }
}

/// One operator command, as appended to an app's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Redeploy even when applied or failed.
    Force,
    /// Hold the app at its current step.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Roll the in-flight deployment back (and end a pause).
    Rollback,
    /// Move a steady blue/green service's scale between its task sets.
    Rebalance {
        /// What was asked.
        rebalance: Rebalance,
    },
    /// An answer to the approval gate the deployment waits at.
    Answer {
        /// Approve or reject, by whom, how, when.
        approval: Approval,
    },
    /// Let the app's next change through a freeze.
    OverrideFreeze {
        /// Who asked (the API token's name, `cli`).
        by: String,
    },
}

impl Command {
    /// What the timeline and the answers call it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Force => "force",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Rollback => "rollback",
            Command::Rebalance { .. } => "rebalance",
            Command::Answer { approval } if approval.approve => "approve",
            Command::Answer { .. } => "reject",
            Command::OverrideFreeze { .. } => "override-freeze",
        }
    }

    /// Whether it sets the pause state (pause, resume, and rollback, which ends a pause).
    fn sets_pause(&self) -> bool {
        matches!(self, Command::Pause | Command::Resume | Command::Rollback)
    }
}

/// The commands of a log (sequence, command; oldest first) as the planner reads them: force and
/// rollback once given, the newest rebalance and answer, paused per the newest pause, resume or
/// rollback.
pub fn fold<'a>(log: impl IntoIterator<Item = (u64, &'a Command)>) -> OperatorCommands {
    let mut out = OperatorCommands::none();
    for (_, command) in log {
        match command {
            Command::Force => out.force = true,
            Command::Pause => out.paused = true,
            Command::Resume => out.paused = false,
            Command::Rollback => {
                out.rollback = true;
                out.paused = false;
            }
            Command::Rebalance { rebalance } => out.rebalance = Some(*rebalance),
            Command::Answer { approval } => out.approval = Some(approval.clone()),
            Command::OverrideFreeze { by } => out.override_freeze = Some(by.clone()),
        }
    }
    out
}

impl Consumed {
    /// Which entries of `log` (oldest first) the executor removes after a step that read the log
    /// up to `through` and consumed `self`: the consumed kinds given at or before `through`, and
    /// pause / resume entries that a newer pause, resume or rollback (at or before `through`)
    /// has replaced. Nothing given after `through` is ever removed.
    pub fn removes(&self, log: &[(u64, Command)], through: u64) -> Vec<u64> {
        let seen = |seq: u64| seq <= through;
        let last_pause_setter = log.iter().filter(|(seq, c)| seen(*seq) && c.sets_pause()).map(|(seq, _)| *seq).max();
        log.iter()
            .filter(|(seq, _)| seen(*seq))
            .filter(|(seq, command)| match command {
                Command::Force => self.force,
                Command::Rollback => self.rollback,
                Command::Rebalance { .. } => self.rebalance,
                Command::Answer { .. } => self.approval,
                Command::OverrideFreeze { .. } => self.override_freeze,
                Command::Pause | Command::Resume => last_pause_setter.is_some_and(|last| *seq < last),
            })
            .map(|(seq, _)| *seq)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(approve: bool, at_ms: u64) -> Command {
        Command::Answer { approval: Approval { approve, by: "sre".into(), via: AnswerChannel::Api, at_ms } }
    }

    #[test]
    fn the_fold_takes_the_newest_pause_state_and_answer() {
        let log = [(1, Command::Pause), (2, Command::Force), (3, answer(true, 3)), (4, Command::Resume), (5, answer(false, 5))];
        let c = fold(log.iter().map(|(s, c)| (*s, c)));
        assert!(c.force && !c.paused && !c.rollback);
        assert_eq!(c.approval.map(|a| a.approve), Some(false), "the newest answer");
        let c = fold([(1, &Command::Pause), (2, &Command::Rollback)]);
        assert!(c.rollback && !c.paused, "a rollback ends a pause");
    }

    /// Issue 24: an answer given after the step read the log is never wiped with the one it used.
    #[test]
    fn only_what_was_read_is_removed() {
        let log = vec![(1, answer(true, 1)), (2, Command::Force), (7, answer(false, 7)), (8, Command::Force)];
        let consumed = Consumed { approval: true, force: true, ..Consumed::default() };
        assert_eq!(consumed.removes(&log, 2), vec![1, 2], "7 and 8 came after the read");
        assert_eq!(Consumed::default().removes(&log, 8), Vec::<u64>::new(), "nothing consumed, nothing removed");
    }

    #[test]
    fn replaced_pause_states_are_compacted_and_the_state_survives() {
        let log = vec![(1, Command::Pause), (2, Command::Resume), (3, Command::Pause), (4, Command::Rollback), (9, Command::Pause)];
        let consumed = Consumed { rollback: true, ..Consumed::default() };
        let removed = consumed.removes(&log, 4);
        assert_eq!(removed, vec![1, 2, 3, 4]);
        let left: Vec<(u64, Command)> = log.iter().filter(|(s, _)| !removed.contains(s)).cloned().collect();
        assert!(fold(left.iter().map(|(s, c)| (*s, c))).paused, "the pause given after the read holds");
        let log = vec![(1, Command::Pause), (4, Command::Rollback)];
        let left: Vec<(u64, Command)> = log.iter().filter(|(s, _)| !consumed.removes(&log, 4).contains(s)).cloned().collect();
        assert!(!fold(left.iter().map(|(s, c)| (*s, c))).paused, "the consumed rollback's end of the pause is kept");
    }

    #[test]
    fn commands_serialize_with_their_name() {
        let text = serde_json::to_string(&Command::Rebalance {
            rebalance: Rebalance::Move { direction: RebalanceDirection::ToFallback, all: true },
        })
        .unwrap();
        assert!(text.contains("\"command\":\"rebalance\""), "{text}");
        let back: Command = serde_json::from_str(&text).unwrap();
        assert_eq!(back.name(), "rebalance");
    }
}
