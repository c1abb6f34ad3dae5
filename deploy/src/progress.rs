//! Where a deployment stands on its strategy's path: the steps a deployment of this kind goes
//! through, in plain words, and which one is current (the web page draws it as a line).
//!
//! A rollback is a detour: once a deployment rolls back, its line ends with the rollback steps
//! instead of the ones it will no longer take.

use crate::record::{BlueGreenPhase, LambdaPhase, Phase, RollingPhase};
use serde::Serialize;

/// The steps of a deployment's path and the index of the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseLine {
    /// Each step in order, in plain words.
    pub steps: Vec<&'static str>,
    /// The index of the current step in `steps` (`steps.len()` once the deployment is done).
    pub current: usize,
}

const ROLLING: [&str; 3] = ["Register task definition", "Update service", "Wait until stable"];
const ROLLING_BACK: [&str; 2] = ["Put the last good revision back", "Wait until it is stable"];
const BLUE_GREEN: [&str; 7] =
    ["Register task definition", "Create green", "Wait until green is stable", "Shift traffic", "Bake", "Promote green", "Clean up blue"];
const LAMBDA: [&str; 8] = [
    "Update code",
    "Update configuration",
    "Publish version",
    "Wait until ready",
    "Shift traffic",
    "Bake",
    "Wire event sources",
    "Clean up",
];

fn line(steps: &[&'static str], current: usize) -> PhaseLine {
    PhaseLine { steps: steps.to_vec(), current }
}

/// `path` up to (not including) `taken`, then `detour`, at `detour[at]`.
fn detour(path: &[&'static str], taken: usize, detour: &[&'static str], at: usize) -> PhaseLine {
    let steps: Vec<&'static str> = path[..taken].iter().chain(detour).copied().collect();
    PhaseLine { current: taken + at, steps }
}

/// The line of a phase.
pub fn phase_line(phase: &Phase) -> PhaseLine {
    match phase {
        Phase::Rolling(p) => rolling(p),
        Phase::BlueGreen(p) => blue_green(p),
        Phase::Lambda(p) => lambda(p),
        Phase::Done => PhaseLine { steps: vec!["Done"], current: 1 },
    }
}

fn rolling(phase: &RollingPhase) -> PhaseLine {
    match phase {
        RollingPhase::Register => line(&ROLLING, 0),
        RollingPhase::Apply { .. } => line(&ROLLING, 1),
        RollingPhase::Stabilize { .. } => line(&ROLLING, 2),
        RollingPhase::Rollback { .. } => detour(&ROLLING, 3, &ROLLING_BACK, 0),
        RollingPhase::RollbackStabilize { .. } => detour(&ROLLING, 3, &ROLLING_BACK, 1),
        RollingPhase::DeleteService => line(&["Delete the service"], 0),
        RollingPhase::NativeStop { .. } => detour(&ROLLING, 3, &["ECS rolls its deployment back"], 0),
    }
}

fn blue_green(phase: &BlueGreenPhase) -> PhaseLine {
    let rolling_back = ["Traffic back to blue"];
    match phase {
        BlueGreenPhase::Register | BlueGreenPhase::CreateService { .. } => line(&BLUE_GREEN, 0),
        BlueGreenPhase::CreateGreen { .. } => line(&BLUE_GREEN, 1),
        BlueGreenPhase::Stabilize { .. } => line(&BLUE_GREEN, 2),
        BlueGreenPhase::Shift { .. } => line(&BLUE_GREEN, 3),
        BlueGreenPhase::Bake { .. } => line(&BLUE_GREEN, 4),
        BlueGreenPhase::Promote => line(&BLUE_GREEN, 5),
        BlueGreenPhase::CleanUp => line(&BLUE_GREEN, 6),
        BlueGreenPhase::Rollback { .. } => detour(&BLUE_GREEN, 4, &rolling_back, 0),
    }
}

fn lambda(phase: &LambdaPhase) -> PhaseLine {
    match phase {
        LambdaPhase::Create => {
            let mut created = line(&LAMBDA, 0);
            created.steps[0] = "Create function";
            created
        }
        LambdaPhase::UpdateCode { .. } => line(&LAMBDA, 0),
        LambdaPhase::UpdateConfig { .. } => line(&LAMBDA, 1),
        LambdaPhase::Publish => line(&LAMBDA, 2),
        LambdaPhase::Ready { .. } => line(&LAMBDA, 3),
        LambdaPhase::Shift { .. } => line(&LAMBDA, 4),
        LambdaPhase::Bake { .. } => line(&LAMBDA, 5),
        LambdaPhase::Wire { .. } => line(&LAMBDA, 6),
        LambdaPhase::CleanUp { .. } => line(&LAMBDA, 7),
        LambdaPhase::Rollback { .. } => detour(&LAMBDA, 5, &["Alias back on the previous version"], 0),
        LambdaPhase::DeleteFunction => line(&["Delete the function"], 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_marks_its_step_on_its_strategys_line() {
        let shift = Phase::BlueGreen(BlueGreenPhase::Shift { step: 1, green: 40, since_ms: 0 });
        let table: Vec<(Phase, &str, usize)> = vec![
            (Phase::Rolling(RollingPhase::Register), "Register task definition", 3),
            (Phase::Rolling(RollingPhase::Stabilize { task_definition: "td".into(), deadline_ms: 0 }), "Wait until stable", 3),
            (
                Phase::Rolling(RollingPhase::RollbackStabilize { to_task_definition: "td".into(), deadline_ms: 0 }),
                "Wait until it is stable",
                5,
            ),
            (Phase::Rolling(RollingPhase::DeleteService), "Delete the service", 1),
            (shift, "Shift traffic", 7),
            (Phase::BlueGreen(BlueGreenPhase::Rollback { superseded: false, delete_green: true }), "Traffic back to blue", 5),
            (Phase::Lambda(LambdaPhase::Create), "Create function", 8),
            (Phase::Lambda(LambdaPhase::Publish), "Publish version", 8),
            (Phase::Lambda(LambdaPhase::Rollback { version: "3".into(), superseded: false }), "Alias back on the previous version", 6),
        ];
        for (phase, step, len) in table {
            let line = phase_line(&phase);
            assert_eq!(line.steps.len(), len, "{phase:?}: {line:?}");
            assert_eq!(line.steps[line.current], step, "{phase:?}: {line:?}");
        }
    }

    #[test]
    fn a_finished_deployment_is_past_its_last_step() {
        let line = phase_line(&Phase::Done);
        assert_eq!(line.current, line.steps.len());
    }
}
