//! `trafficShiftingConfig.approval` of a depdef or lambdadepdef (gitmoxi's own strategies):
//! `{"before": [50, 100], "timeout": "2h", "onTimeout": "rollback" | "continue"}` — traffic holds
//! before each named step until a person approves or rejects it. Every mistake names the field.

use super::fields::FieldReader;
use crate::schedule::{ApprovalGates, OnTimeout, TrafficShifting, DEFAULT_GATE_TIMEOUT_SECS};
use serde_json::{Map, Value};

/// The longest a gate may wait: a week.
const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// Reads the gates of `config` (the `trafficShiftingConfig` object) for the schedule `shifting`,
/// or, with explicit `steps`, before the steps that ask for one (`approval` then only gives the
/// gates' `timeout` and `onTimeout`).
pub(crate) fn gates(
    r: &mut FieldReader<'_>,
    config: &Map<String, Value>,
    shifting: &TrafficShifting,
    explicit: Option<&[crate::schedule::ShiftStep]>,
) -> Option<ApprovalGates> {
    const PATH: &str = "trafficShiftingConfig.approval";
    let empty = Map::new();
    let approval = match (r.object(config.get("approval"), PATH), explicit) {
        (Some(a), _) => a,
        (None, Some(_)) => &empty,
        (None, None) => return None,
    };
    r.warn_unknown(approval, PATH, &["before", "timeout", "onTimeout"]);
    let steps = shifting.steps();
    let mut before = Vec::new();
    match (approval.get("before"), explicit) {
        (Some(_), Some(_)) => {
            r.error(&format!("{PATH}.before"), "with steps, put {\"approval\": true} before the step a person approves");
            return None;
        }
        (None, Some(explicit)) => before.extend(explicit.iter().filter(|s| s.approval).map(|s| s.weight)),
        (before_value, None) => match before_value {
            Some(Value::Array(items)) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    let Some(w) = r.int(Some(item), &format!("{PATH}.before[{i}]"), 1, 100) else { continue };
                    let w = w as u32;
                    if steps.contains(&w) {
                        before.push(w);
                    } else {
                        let list: Vec<String> = steps.iter().map(u32::to_string).collect();
                        r.error(
                            &format!("{PATH}.before[{i}]"),
                            format!("{w} % is not a step of this schedule (its steps: {})", list.join(", ")),
                        );
                    }
                }
            }
            _ => {
                r.error(&format!("{PATH}.before"), "list the green weights a person must approve, e.g. [50, 100]");
                return None;
            }
        },
    }
    let timeout_secs = match approval.get("timeout") {
        None | Some(Value::Null) => DEFAULT_GATE_TIMEOUT_SECS,
        Some(Value::String(text)) => match duration_secs(text) {
            Some(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => secs,
            _ => {
                r.error(
                    &format!("{PATH}.timeout"),
                    format!("\"{text}\" is not a duration of 1 s to 7 days; write e.g. 900, \"30m\" or \"2h\""),
                );
                DEFAULT_GATE_TIMEOUT_SECS
            }
        },
        Some(other) => {
            r.int(Some(other), &format!("{PATH}.timeout"), 1, MAX_TIMEOUT_SECS as i64).map_or(DEFAULT_GATE_TIMEOUT_SECS, |s| s as u64)
        }
    };
    let on_timeout = match r.string(approval.get("onTimeout"), &format!("{PATH}.onTimeout")) {
        None => OnTimeout::Rollback,
        Some(text) => match text.trim().to_ascii_lowercase().as_str() {
            "rollback" => OnTimeout::Rollback,
            "continue" => OnTimeout::Continue,
            _ => {
                r.error(&format!("{PATH}.onTimeout"), format!("is \"{text}\"; use rollback or continue"));
                OnTimeout::Rollback
            }
        },
    };
    (!before.is_empty()).then(|| ApprovalGates::new(&before, timeout_secs, on_timeout))
}

/// `90`, `90s`, `30m`, `2h`, `1d` in seconds.
fn duration_secs(text: &str) -> Option<u64> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::schedule::ShiftType;
    use serde_json::json;

    fn read(config: Value) -> (Option<ApprovalGates>, Vec<String>) {
        let text = config.to_string();
        let mut r = FieldReader::new("web_depdef.json", &text);
        let shifting = TrafficShifting { percent: 25, wait_interval_secs: 60, kind: ShiftType::Linear, approval: None };
        let gates = gates(&mut r, config.as_object().unwrap(), &shifting, None);
        (gates, r.errors.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn gates_are_read_with_their_defaults() {
        let (g, errors) = read(json!({"approval": {"before": [50, 100]}}));
        assert!(errors.is_empty(), "{errors:?}");
        let g = g.unwrap();
        assert_eq!((g.weights(), g.timeout_secs, g.on_timeout), (vec![50, 100], DEFAULT_GATE_TIMEOUT_SECS, OnTimeout::Rollback));
        let (g, _) = read(json!({"approval": {"before": [25], "timeout": "30m", "onTimeout": "Continue"}}));
        let g = g.unwrap();
        assert_eq!((g.timeout_secs, g.on_timeout), (1800, OnTimeout::Continue));
        assert_eq!(read(json!({"approval": {"before": [75], "timeout": 90}})).0.unwrap().timeout_secs, 90);
        assert!(read(json!({})).0.is_none(), "no approval, no gates");
    }

    #[test]
    fn each_mistake_names_the_field() {
        for (config, says) in [
            (json!({"approval": {"before": [30]}}), "30 % is not a step of this schedule (its steps: 25, 50, 75, 100)"),
            (json!({"approval": {"before": []}}), "trafficShiftingConfig.approval.before"),
            (json!({"approval": {"before": [50], "timeout": "soon"}}), "trafficShiftingConfig.approval.timeout"),
            (json!({"approval": {"before": [50], "timeout": "30d"}}), "1 s to 7 days"),
            (json!({"approval": {"before": [50], "onTimeout": "shrug"}}), "use rollback or continue"),
            (json!({"approval": {"before": [0]}}), "trafficShiftingConfig.approval.before[0]"),
        ] {
            let (_, errors) = read(config.clone());
            assert!(errors.iter().any(|e| e.contains(says)), "{config}: {errors:?}");
        }
    }
}
