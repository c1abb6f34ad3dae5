//! The verdict of one analysis run: each check judged from the values GetMetricData returned,
//! with the numbers an operator needs ("p99 latency green 412 ms vs blue 180 ms (+129 %,
//! tolerance 25 %, p = 0.003)"), and the run's verdict (any failure fails it; else any
//! inconclusive check makes it inconclusive).
//!
//! Invariants: a check with fewer samples than `minSamples` on a side it reads is inconclusive,
//! never a pass; a comparison fails only when the difference is both significant (p below
//! 1 − confidence) and beyond the tolerance in the failing direction.

use super::queries::{result_id, Side};
use super::stats::{finite, mann_whitney, median, without_outliers};
use super::{AnalysisSpec, Check, FailIf};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The verdict of a check or a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Green is fine.
    Pass,
    /// Green is worse: counts toward `failureLimit`.
    Fail,
    /// Too few samples to judge.
    Inconclusive,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

/// The most values of a side kept with a result (for the chart).
pub const KEPT_VALUES: usize = 120;

/// What one side's values were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SideValues {
    /// Periods with data.
    pub samples: u32,
    /// The mean of the values.
    pub mean: Option<f64>,
    /// The median of the values (outliers removed for a comparison).
    pub median: Option<f64>,
    /// The values, oldest first (at most [`KEPT_VALUES`], the newest).
    pub values: Vec<f64>,
}

impl SideValues {
    fn of(values: &[f64]) -> SideValues {
        let v = finite(values);
        let mean = (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let kept = v[v.len().saturating_sub(KEPT_VALUES)..].to_vec();
        SideValues { samples: v.len() as u32, mean, median: median(&v), values: kept }
    }
}

/// One check's result in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Green's values.
    pub green: SideValues,
    /// Blue's values (comparisons).
    #[serde(default)]
    pub blue: Option<SideValues>,
    /// The Mann–Whitney p-value (comparisons with enough samples).
    #[serde(default)]
    pub p_value: Option<f64>,
    /// Green's median against blue's, percent (comparisons).
    #[serde(default)]
    pub change_pct: Option<f64>,
    /// The statistic or rule, in words ("Mann–Whitney U, 95 %", "max 1 %").
    pub rule: String,
    /// What an operator reads.
    pub message: String,
}

/// One analysis run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisRun {
    /// When it ran (ms since the epoch).
    pub at_ms: u64,
    /// The step it judged ("20 %", "bake").
    pub step: String,
    /// The window it read, [start, end) ms.
    pub window_ms: (u64, u64),
    /// The run's verdict.
    pub verdict: Verdict,
    /// What the deployment did with it.
    pub decision: Decision,
    /// Each check.
    pub checks: Vec<CheckResult>,
}

/// What the deployment did after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Traffic moves on.
    Proceed,
    /// Another run after the interval, traffic held.
    Retry,
    /// Traffic held for a person (onInconclusive hold).
    Hold,
    /// Rolled back.
    Rollback,
}

/// A number for a message: three significant figures, no trailing zeros.
pub fn show(v: f64) -> String {
    if !v.is_finite() {
        return if v > 0.0 {
            "∞".into()
        } else if v < 0.0 {
            "−∞".into()
        } else {
            "n/a".into()
        };
    }
    let a = v.abs();
    let s = if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        let digits = (-a.log10()).floor() as usize + 3;
        format!("{v:.digits$}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn with_unit(v: Option<f64>, unit: &Option<String>) -> String {
    let n = v.map_or_else(|| "n/a".to_string(), show);
    match unit.as_deref() {
        Some("%") => format!("{n} %"),
        Some(u) => format!("{n} {u}"),
        None => n,
    }
}

fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

/// Judges `check` (index `i`) from `values` (query id → values).
pub fn judge(i: usize, check: &Check, values: &BTreeMap<String, Vec<f64>>) -> CheckResult {
    let empty = Vec::new();
    let green_raw = values.get(&result_id(i, Side::Green)).unwrap_or(&empty);
    let green = SideValues::of(green_raw);
    let min_samples = check.min_samples;
    let mut result = CheckResult {
        name: check.name.clone(),
        verdict: Verdict::Pass,
        green: green.clone(),
        blue: None,
        p_value: None,
        change_pct: None,
        rule: String::new(),
        message: String::new(),
    };
    let mut rules = Vec::new();
    if let Some(max) = check.max {
        rules.push(format!("max {}", with_unit(Some(max), &check.unit)));
    }
    if let Some(min) = check.min {
        rules.push(format!("min {}", with_unit(Some(min), &check.unit)));
    }
    let blue_raw = check.compare.as_ref().map(|_| values.get(&result_id(i, Side::Blue)).unwrap_or(&empty));
    if let (Some(c), Some(_)) = (&check.compare, blue_raw) {
        rules.push(format!("Mann–Whitney U at {} %, tolerance {} %", show(c.confidence_pct), show(c.tolerance_pct)));
    }
    result.rule = rules.join("; ");
    let blue = blue_raw.map(|b| SideValues::of(b));
    result.blue = blue.clone();
    let short_green = green.samples < min_samples;
    let short_blue = blue.as_ref().is_some_and(|b| b.samples < min_samples);
    if short_green || short_blue {
        result.verdict = Verdict::Inconclusive;
        let blue_part = blue.as_ref().map_or(String::new(), |b| format!(", blue {}", b.samples));
        result.message = format!("{}: too few samples (green {}{blue_part}; minSamples {min_samples})", check.name, green.samples);
        return result;
    }
    let mut failures = Vec::new();
    let mut passes = Vec::new();
    let mean = green.mean;
    if let (Some(max), Some(m)) = (check.max, mean) {
        if m > max {
            failures.push(format!("green {} above max {}", with_unit(Some(m), &check.unit), with_unit(Some(max), &check.unit)));
        } else {
            passes.push(format!("green {} within max {}", with_unit(Some(m), &check.unit), with_unit(Some(max), &check.unit)));
        }
    }
    if let (Some(min), Some(m)) = (check.min, mean) {
        if m < min {
            failures.push(format!("green {} below min {}", with_unit(Some(m), &check.unit), with_unit(Some(min), &check.unit)));
        } else if check.max.is_none() {
            passes.push(format!("green {} above min {}", with_unit(Some(m), &check.unit), with_unit(Some(min), &check.unit)));
        }
    }
    if let (Some(c), Some(b_raw)) = (&check.compare, blue_raw) {
        let g = without_outliers(green_raw);
        let b = without_outliers(b_raw);
        if (g.len() as u32) < min_samples || (b.len() as u32) < min_samples {
            result.verdict = Verdict::Inconclusive;
            result.message = format!(
                "{}: too few samples once outliers are removed (green {}, blue {}; minSamples {min_samples})",
                check.name,
                g.len(),
                b.len()
            );
            return result;
        }
        let (mg, mb) = (median(&g), median(&b));
        if let Some(side) = result.blue.as_mut() {
            side.median = mb;
        }
        result.green.median = mg;
        let change = match (mg, mb) {
            (Some(g), Some(b)) if b != 0.0 => Some((g - b) / b.abs() * 100.0),
            (Some(0.0), Some(_)) => Some(0.0),
            (Some(g), Some(_)) => Some(if g > 0.0 { f64::INFINITY } else { f64::NEG_INFINITY }),
            _ => None,
        };
        let test = mann_whitney(&g, &b);
        result.p_value = test.map(|t| t.p);
        result.change_pct = change;
        let p = test.map_or(1.0, |t| t.p);
        let alpha = 1.0 - c.confidence_pct / 100.0;
        let change_v = change.unwrap_or(0.0);
        let worse = match c.fail_if {
            FailIf::Higher => change_v > c.tolerance_pct,
            FailIf::Lower => change_v < -c.tolerance_pct,
            FailIf::Either => change_v.abs() > c.tolerance_pct,
        };
        let sign = if change_v >= 0.0 { "+" } else { "" };
        let text = format!(
            "green {} vs blue {} ({sign}{} %, tolerance {} %, {})",
            with_unit(mg, &check.unit),
            with_unit(mb, &check.unit),
            show(change_v),
            show(c.tolerance_pct),
            p_text(p)
        );
        if worse && p < alpha {
            failures.push(text);
        } else if worse {
            passes.push(format!("{text}: not significant at {} %", show(c.confidence_pct)));
        } else {
            passes.push(text);
        }
    }
    if failures.is_empty() {
        result.message = format!("{} {}", check.name, passes.join("; "));
    } else {
        result.verdict = Verdict::Fail;
        result.message = format!("{} {}", check.name, failures.join("; "));
    }
    result
}

/// The run of `spec` over the returned `values`: each check judged, and the run's verdict.
pub fn judge_all(spec: &AnalysisSpec, values: &BTreeMap<String, Vec<f64>>) -> (Verdict, Vec<CheckResult>) {
    let checks: Vec<CheckResult> = spec.checks.iter().enumerate().map(|(i, c)| judge(i, c, values)).collect();
    let verdict = if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if checks.iter().any(|c| c.verdict == Verdict::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    };
    (verdict, checks)
}
