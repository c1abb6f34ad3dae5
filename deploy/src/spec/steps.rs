//! `trafficShiftingConfig.steps` (issue 25): an explicit schedule for task-set blue/green and
//! Lambda instead of `type` + `percent`, e.g.
//! `[{"weight": 5, "wait": 300, "scale": 10}, {"approval": true}, {"weight": 25, "analysis": true}, {"weight": 100}]`.
//!
//! Invariants: weights strictly increase and end at 100; a `scale` is at least its step's weight
//! (a canary never gets more traffic than its capacity serves) and never goes down; an approval
//! stands before a weight step; every mistake names the step and the field.

use super::fields::FieldReader;
use crate::schedule::ShiftStep;
use serde_json::{Map, Value};

/// The most steps a schedule may have.
pub const MAX_STEPS: usize = 100;

/// Reads `config.steps` (`None` when absent); `default_wait` is `waitInterval`; `scale_allowed`:
/// an ECS task-set app (a Lambda alias has no capacity to scale).
pub(crate) fn parse(
    r: &mut FieldReader<'_>,
    config: &Map<String, Value>,
    default_wait: u64,
    scale_allowed: bool,
) -> Option<Vec<ShiftStep>> {
    const PATH: &str = "trafficShiftingConfig.steps";
    let items = match config.get("steps") {
        None | Some(Value::Null) => return None,
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_STEPS => items,
        Some(_) => {
            r.error(PATH, format!("must be a list of 1 to {MAX_STEPS} steps, e.g. [{{\"weight\": 10, \"wait\": 300}}, {{\"approval\": true}}, {{\"weight\": 100}}]"));
            return None;
        }
    };
    if config.contains_key("type") || config.contains_key("percent") {
        r.warn("trafficShiftingConfig.type", "type and percent are ignored when steps are given");
    }
    let mut steps: Vec<ShiftStep> = Vec::new();
    let mut gate_next = false;
    for (i, item) in items.iter().enumerate() {
        let at = format!("{PATH}[{i}]");
        let Some(obj) = r.object(Some(item), &at) else { continue };
        r.warn_unknown(obj, &at, &["weight", "wait", "scale", "analysis", "approval"]);
        if obj.contains_key("approval") && !obj.contains_key("weight") {
            match obj.get("approval") {
                Some(Value::Bool(true)) => gate_next = true,
                Some(Value::Bool(false)) => {}
                _ => r.error(
                    &format!("{at}.approval"),
                    "must be true: a person approves before the next step (set the gates' timeout in trafficShiftingConfig.approval)",
                ),
            }
            continue;
        }
        let Some(weight) = r.int(obj.get("weight"), &format!("{at}.weight"), 1, 100).map(|w| w as u32) else {
            if !obj.contains_key("weight") {
                r.error(&at, "a step is {\"weight\": N, …} or {\"approval\": true}");
            }
            continue;
        };
        let wait_secs = r.int(obj.get("wait"), &format!("{at}.wait"), 0, 86_400).map_or(default_wait, |w| w as u64);
        let scale = r.int(obj.get("scale"), &format!("{at}.scale"), 1, 100).map(|s| s as u32);
        if scale.is_some() && !scale_allowed {
            r.error(&format!("{at}.scale"), "scale applies to ECS task sets only; a Lambda alias has no capacity to scale");
        }
        if let Some(s) = scale.filter(|s| *s < weight) {
            r.error(
                &format!("{at}.scale"),
                format!("is {s} %, below the step's weight {weight} %: green would get more traffic than its capacity serves"),
            );
        }
        let analysis = r.bool(obj.get("analysis"), &format!("{at}.analysis")).unwrap_or(false);
        let approval = gate_next || r.bool(obj.get("approval"), &format!("{at}.approval")).unwrap_or(false);
        gate_next = false;
        if let Some(prev) = steps.last() {
            if weight <= prev.weight {
                r.error(
                    &format!("{at}.weight"),
                    format!("is {weight} %, not above the step before ({} %): weights must increase", prev.weight),
                );
            }
            if scale.unwrap_or(100) < prev.required_scale() {
                r.error(
                    &format!("{at}.scale"),
                    format!("green's scale may not go down (the step before needs {} %)", prev.required_scale()),
                );
            }
        }
        steps.push(ShiftStep { weight, wait_secs, scale, approval, analysis });
    }
    if gate_next {
        r.error(PATH, "the last step is an approval: put it before the step it guards");
    }
    match steps.last() {
        Some(last) if last.weight == 100 => Some(steps),
        Some(last) => {
            r.error(PATH, format!("ends at {} %: the last step must bring green to 100 %, e.g. {{\"weight\": 100}}", last.weight));
            None
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(config: Value, scale_allowed: bool) -> (Option<Vec<ShiftStep>>, Vec<String>) {
        let text = config.to_string();
        let mut r = FieldReader::new("web_depdef.json", &text);
        let steps = parse(&mut r, config.as_object().expect("object"), 60, scale_allowed);
        (steps, r.errors.iter().map(|e| e.message.clone()).collect())
    }

    #[test]
    fn the_issues_example_reads_as_four_weights_with_a_gate_and_a_scale() {
        let (steps, errors) = read(
            json!({"steps": [{"weight": 5, "wait": 300, "scale": 10}, {"approval": true}, {"weight": 25, "analysis": true}, {"weight": 100}]}),
            true,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let steps = steps.expect("steps");
        assert_eq!(
            steps,
            vec![
                ShiftStep { weight: 5, wait_secs: 300, scale: Some(10), approval: false, analysis: false },
                ShiftStep { weight: 25, wait_secs: 60, scale: None, approval: true, analysis: true },
                ShiftStep { weight: 100, wait_secs: 60, scale: None, approval: false, analysis: false },
            ]
        );
        assert_eq!(steps[1].required_scale(), 100, "a step without scale needs all of green");
    }

    #[test]
    fn schedules_that_cannot_work_are_errors_naming_the_step() {
        for (config, scale_allowed, want) in [
            (json!({"steps": [{"weight": 50}]}), true, "ends at 50 %"),
            (json!({"steps": [{"weight": 50}, {"weight": 20}, {"weight": 100}]}), true, "steps[1].weight: is 20 %, not above"),
            (
                json!({"steps": [{"weight": 50, "scale": 20}, {"weight": 100}]}),
                true,
                "steps[0].scale: is 20 %, below the step's weight 50 %",
            ),
            (json!({"steps": [{"weight": 10, "scale": 10}, {"weight": 100}]}), false, "ECS task sets only"),
            (json!({"steps": [{"weight": 100}, {"approval": true}]}), true, "the last step is an approval"),
            (json!({"steps": []}), true, "a list of 1 to 100 steps"),
            (json!({"steps": [{"wait": 5}]}), true, "a step is"),
            (json!({"steps": [{"weight": 10, "scale": 50}, {"weight": 30, "scale": 30}, {"weight": 100}]}), true, "may not go down"),
        ] {
            let (_, errors) = read(config.clone(), scale_allowed);
            assert!(errors.iter().any(|e| e.contains(want)), "{config}: {errors:?} lacks {want}");
        }
    }
}
