//! Traffic-shifting schedules (SPEC §3.3 step 4, §4.2 step 4): the green/new weight of each step.
//!
//! Invariants: every schedule is non-empty, strictly increasing, ends at 100; blue + green = 100.

use serde::{Deserialize, Serialize};

/// How traffic moves to the new side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShiftType {
    /// One step of `percent`, then the rest.
    Canary,
    /// Steps of `percent` each until all traffic moved.
    Linear,
    /// All traffic in one step.
    AllAtOnce,
}

impl ShiftType {
    /// Accepts CANARY, LINEAR, ALL_AT_ONCE in any case (and AllAtOnce).
    pub fn parse(s: &str) -> Option<ShiftType> {
        match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "CANARY" => Some(ShiftType::Canary),
            "LINEAR" => Some(ShiftType::Linear),
            "ALL_AT_ONCE" | "ALLATONCE" => Some(ShiftType::AllAtOnce),
            _ => None,
        }
    }

    /// The type as the files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ShiftType::Canary => "CANARY",
            ShiftType::Linear => "LINEAR",
            ShiftType::AllAtOnce => "ALL_AT_ONCE",
        }
    }
}

/// `trafficShiftingConfig` with defaults (20 %, 60 s, CANARY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficShifting {
    /// The percentage of one step.
    pub percent: u32,
    /// Seconds to wait after each step, watching alarms.
    pub wait_interval_secs: u64,
    /// CANARY, LINEAR or ALL_AT_ONCE.
    pub kind: ShiftType,
    /// Approval gates before chosen steps (`trafficShiftingConfig.approval`).
    #[serde(default)]
    pub approval: Option<ApprovalGates>,
}

impl Default for TrafficShifting {
    fn default() -> Self {
        TrafficShifting { percent: 20, wait_interval_secs: 60, kind: ShiftType::Canary, approval: None }
    }
}

/// What a gate nobody answered in time does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// Roll the deployment back (the default: nobody said yes).
    #[default]
    Rollback,
    /// Go on as if approved.
    Continue,
}

/// `trafficShiftingConfig.approval`: traffic holds before each chosen step until a person
/// approves (or rejects) it; alarms are watched meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalGates {
    /// The green weights a gate stands before, one bit per weight 0..=127.
    before: [u64; 2],
    /// How long a gate waits for an answer.
    pub timeout_secs: u64,
    /// What happens when nobody answers in time.
    pub on_timeout: OnTimeout,
}

/// A gate's default wait for an answer: a working day.
pub const DEFAULT_GATE_TIMEOUT_SECS: u64 = 8 * 3600;

impl ApprovalGates {
    /// Gates before each of `weights` (1..=100).
    pub fn new(weights: &[u32], timeout_secs: u64, on_timeout: OnTimeout) -> ApprovalGates {
        let mut before = [0u64; 2];
        for w in weights.iter().filter(|w| (1..=100).contains(*w)) {
            before[(*w / 64) as usize] |= 1 << (w % 64);
        }
        ApprovalGates { before, timeout_secs, on_timeout }
    }

    /// Whether a gate stands before the step that brings green to `weight`.
    pub fn before(&self, weight: u32) -> bool {
        weight <= 100 && self.before[(weight / 64) as usize] & (1 << (weight % 64)) != 0
    }

    /// The weights with a gate, ascending.
    pub fn weights(&self) -> Vec<u32> {
        (1..=100).filter(|w| self.before(*w)).collect()
    }
}

impl TrafficShifting {
    /// The green weight after each step.
    pub fn steps(&self) -> Vec<u32> {
        let p = self.percent.clamp(1, 100);
        match self.kind {
            ShiftType::AllAtOnce => vec![100],
            ShiftType::Canary if p >= 100 => vec![100],
            ShiftType::Canary => vec![p, 100],
            ShiftType::Linear => {
                let mut steps: Vec<u32> = (1..).map(|i| i * p).take_while(|w| *w < 100).collect();
                steps.push(100);
                steps
            }
        }
    }
}

/// One step of a schedule (`trafficShiftingConfig.steps`, or a shorthand expanded): green's
/// weight, how long it holds, the task-set scale green needs first, a gate before it, and
/// whether the metric analysis judges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftStep {
    /// The percentage of traffic on green at this step.
    pub weight: u32,
    /// Seconds the step holds (alarms and the breaker watched) before the next.
    pub wait_secs: u64,
    /// ECS task sets: green's scale (percent of the desired count) before its weight is set;
    /// `None`: full capacity.
    pub scale: Option<u32>,
    /// A person approves before traffic reaches this step.
    pub approval: bool,
    /// The metric analysis runs at the end of this step (when the depdef has `analysis`).
    pub analysis: bool,
}

impl ShiftStep {
    /// The scale green needs before this step: its own, else all of it.
    pub fn required_scale(&self) -> u32 {
        self.scale.unwrap_or(100)
    }
}

impl TrafficShifting {
    /// The shorthand as steps: each weight holds `waitInterval`, is judged by the analysis, and
    /// has a gate where `approval.before` names it; `initial_scale` is green's scale up to the
    /// steps that weight no more than it.
    pub fn expand(&self, initial_scale: Option<u32>) -> Vec<ShiftStep> {
        self.steps()
            .into_iter()
            .map(|weight| ShiftStep {
                weight,
                wait_secs: self.wait_interval_secs,
                scale: initial_scale.filter(|s| weight <= *s),
                approval: self.approval.is_some_and(|g| g.before(weight)),
                analysis: true,
            })
            .collect()
    }
}

/// Absolute weights of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    /// Percentage on the blue (old) side.
    pub blue: u32,
    /// Percentage on the green (new) side.
    pub green: u32,
}

impl Weights {
    /// `green` % on green (at most 100), the rest on blue.
    pub fn green(green: u32) -> Weights {
        let green = green.min(100);
        Weights { blue: 100 - green, green }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(kind: ShiftType, percent: u32) -> Vec<u32> {
        TrafficShifting { percent, wait_interval_secs: 1, kind, approval: None }.steps()
    }

    #[test]
    fn gates_stand_before_the_chosen_weights_only() {
        let gates = ApprovalGates::new(&[20, 64, 100], 60, OnTimeout::Continue);
        assert_eq!(gates.weights(), vec![20, 64, 100]);
        assert!(gates.before(100) && gates.before(64) && !gates.before(40) && !gates.before(0));
        let json = serde_json::to_string(&gates).unwrap();
        assert_eq!(serde_json::from_str::<ApprovalGates>(&json).unwrap(), gates);
    }

    #[test]
    fn schedules_match_the_spec() {
        assert_eq!(steps(ShiftType::Canary, 20), vec![20, 100]);
        assert_eq!(steps(ShiftType::Linear, 30), vec![30, 60, 90, 100]);
        assert_eq!(steps(ShiftType::Linear, 20), vec![20, 40, 60, 80, 100]);
        assert_eq!(steps(ShiftType::Linear, 50), vec![50, 100]);
        assert_eq!(steps(ShiftType::AllAtOnce, 20), vec![100]);
        assert_eq!(steps(ShiftType::Canary, 100), vec![100]);
        assert_eq!(steps(ShiftType::Linear, 100), vec![100]);
    }

    #[test]
    fn every_schedule_is_increasing_ends_at_100_and_weights_sum_to_100() {
        for kind in [ShiftType::Canary, ShiftType::Linear, ShiftType::AllAtOnce] {
            for p in 1..=100 {
                let s = steps(kind, p);
                assert_eq!(s.last(), Some(&100));
                assert!(s.windows(2).all(|w| w[0] < w[1]), "{kind:?} {p}: {s:?}");
                for g in s {
                    let w = Weights::green(g);
                    assert_eq!(w.blue + w.green, 100);
                }
            }
        }
    }

    #[test]
    fn parses_types_leniently() {
        assert_eq!(ShiftType::parse("all_at_once"), Some(ShiftType::AllAtOnce));
        assert_eq!(ShiftType::parse("Canary"), Some(ShiftType::Canary));
        assert_eq!(ShiftType::parse("blue"), None);
    }
}
