//! Metric analysis (issue 25): checks on CloudWatch metrics that decide whether traffic moves on,
//! evaluated at the end of each traffic step and of the bake of gitmoxi's own blue/green and
//! Lambda strategies.
//!
//! A check reads one metric (or a metric-math expression over several) for the green side and,
//! for a comparison, the same query with the blue side's names: `{{ green }}` / `{{ blue }}` (and
//! `{{ green_task_set }}`, `{{ blue_task_set }}`, `{{ load_balancer }}`) in dimension values are
//! filled from the deployment's sides. A **threshold** judges green alone (`min` / `max` on the
//! mean of its periods); a **comparison** runs a Mann–Whitney U test of green against blue.
//!
//! Invariants: everything here is pure; the executor fetches what [`queries::request`] asks with
//! GetMetricData and hands back values per query id; a check never passes on too few samples (it
//! is inconclusive), and the verdict of a run names every check with its numbers.

pub mod queries;
pub mod stats;
pub mod verdict;

use crate::spec::diag::Diagnostic;
use crate::spec::fields::FieldReader;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most checks one app may have.
pub const MAX_CHECKS: usize = 20;

/// The most metrics one expression may read (20 checks × 2 sides × 11 queries stay within one
/// GetMetricData call of 500 queries).
pub const MAX_EXPRESSION_METRICS: usize = 10;

/// The most samples (window ÷ period) one query may return: a day of minutes.
pub const MAX_SAMPLES: u64 = 1440;

/// What to do when the analysis stays inconclusive `consecutiveInconclusive` runs in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnInconclusive {
    /// Hold traffic where it is and wait for a person (`gitmoxi approve` / `reject`), up to
    /// `holdTimeout`, then roll back.
    Hold,
    /// Roll back.
    Rollback,
    /// Move on as if the checks had passed (logged as a warning).
    Continue,
}

/// Which direction of a difference is a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailIf {
    /// Green higher than blue is worse (latency, errors): the default.
    Higher,
    /// Green lower than blue is worse (throughput, success rate).
    Lower,
    /// Any difference beyond the tolerance is a failure.
    Either,
}

/// A comparison of green against blue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The confidence (percent) a difference must reach: p < 1 − confidence/100 (default 95).
    pub confidence_pct: f64,
    /// The effect-size tolerance: a difference of the medians counts only beyond this percent of
    /// blue's median (default 25).
    pub tolerance_pct: f64,
    /// Which direction fails.
    pub fail_if: FailIf,
}

/// One CloudWatch metric, as GetMetricData's `MetricStat` names it (placeholders unfilled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricSpec {
    /// The namespace (`AWS/ApplicationELB`, `AWS/Lambda`, a custom one).
    pub namespace: String,
    /// The metric's name.
    pub metric_name: String,
    /// Dimensions (name, value); values may hold placeholders.
    pub dimensions: Vec<(String, String)>,
    /// A statistic (`Average`, `Sum`, `Maximum`, `Minimum`, `SampleCount`) or percentile (`p99`).
    pub stat: String,
    /// The period of one sample, seconds (a multiple of 60, or 1, 5, 10, 30).
    pub period_secs: u64,
}

/// What a check reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricSource {
    /// One metric.
    Metric(MetricSpec),
    /// A metric-math expression over named metrics (ids as the expression uses them).
    Expression {
        /// The expression (`100 * errors / requests`).
        expression: String,
        /// The metrics it reads, by id.
        metrics: Vec<(String, MetricSpec)>,
    },
}

impl MetricSource {
    /// The period of the source's samples.
    pub fn period_secs(&self) -> u64 {
        match self {
            MetricSource::Metric(m) => m.period_secs,
            MetricSource::Expression { metrics, .. } => metrics.iter().map(|(_, m)| m.period_secs).max().unwrap_or(60),
        }
    }
}

/// One check of the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Its name, in messages and the timeline.
    pub name: String,
    /// What it reads.
    pub source: MetricSource,
    /// Green's mean over the window may not be below this.
    pub min: Option<f64>,
    /// Green's mean over the window may not be above this.
    pub max: Option<f64>,
    /// Green against blue.
    pub compare: Option<Comparison>,
    /// The fewest samples (periods with data) each side needs; below it the check is
    /// inconclusive (default 5).
    pub min_samples: u32,
    /// The unit shown with values (`ms`, `%`), when known.
    pub unit: Option<String>,
}

/// The `analysis` block of a depdef or lambdadepdef.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSpec {
    /// How far back each run looks, seconds (default 300).
    pub window_secs: u64,
    /// How long after a failed or inconclusive run the next one is made, seconds (default 60).
    pub interval_secs: u64,
    /// Failed runs tolerated: the run after them rolls back (default 0: the first failure).
    pub failure_limit: u32,
    /// Inconclusive runs in a row after which `onInconclusive` applies (default 3).
    pub consecutive_inconclusive: u32,
    /// What to do then.
    pub on_inconclusive: OnInconclusive,
    /// How long a hold waits for a person before rolling back, seconds (default 3600).
    pub hold_timeout_secs: u64,
    /// Also run during the bake, before promotion (default true).
    pub during_bake: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

/// The kind of app a preset is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetTarget {
    /// A task-set blue/green ECS service behind an ALB.
    Ecs,
    /// A Lambda function behind an alias.
    Lambda,
}

const CHECK_FIELDS: &[&str] = &["name", "preset", "metric", "expression", "metrics", "min", "max", "compare", "minSamples", "unit"];

/// Reads `analysis` (at `path` in the file) for an app of `target`; errors name the field.
pub fn parse(r: &mut FieldReader<'_>, value: Option<&Value>, path: &str, target: PresetTarget) -> Option<AnalysisSpec> {
    let obj = r.object(value, path)?;
    r.warn_unknown(
        obj,
        path,
        &["window", "interval", "failureLimit", "consecutiveInconclusive", "onInconclusive", "holdTimeout", "duringBake", "checks"],
    );
    let field = |f: &str| format!("{path}.{f}");
    let mut spec = AnalysisSpec {
        window_secs: 300,
        interval_secs: 60,
        failure_limit: 0,
        consecutive_inconclusive: 3,
        on_inconclusive: OnInconclusive::Hold,
        hold_timeout_secs: 3600,
        during_bake: true,
        checks: Vec::new(),
    };
    if let Some(w) = r.int(obj.get("window"), &field("window"), 60, 86_400) {
        spec.window_secs = w as u64;
    }
    if let Some(i) = r.int(obj.get("interval"), &field("interval"), 1, 86_400) {
        spec.interval_secs = i as u64;
    }
    if let Some(n) = r.int(obj.get("failureLimit"), &field("failureLimit"), 0, 100) {
        spec.failure_limit = n as u32;
    }
    if let Some(n) = r.int(obj.get("consecutiveInconclusive"), &field("consecutiveInconclusive"), 1, 100) {
        spec.consecutive_inconclusive = n as u32;
    }
    if let Some(t) = r.int(obj.get("holdTimeout"), &field("holdTimeout"), 1, 7 * 86_400) {
        spec.hold_timeout_secs = t as u64;
    }
    if let Some(b) = r.bool(obj.get("duringBake"), &field("duringBake")) {
        spec.during_bake = b;
    }
    if let Some(s) = r.string(obj.get("onInconclusive"), &field("onInconclusive")) {
        match s.to_ascii_lowercase().as_str() {
            "hold" => spec.on_inconclusive = OnInconclusive::Hold,
            "rollback" => spec.on_inconclusive = OnInconclusive::Rollback,
            "continue" => spec.on_inconclusive = OnInconclusive::Continue,
            _ => r.error(&field("onInconclusive"), format!("is \"{s}\"; use hold, rollback or continue")),
        }
    }
    match obj.get("checks") {
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.len() > MAX_CHECKS {
                r.error(&field("checks"), format!("has {} checks; at most {MAX_CHECKS} are allowed", items.len()));
            }
            for (i, item) in items.iter().take(MAX_CHECKS).enumerate() {
                let at = format!("{path}.checks[{i}]");
                if let Some(check) = parse_check(r, item, &at, target, spec.window_secs) {
                    if spec.checks.iter().any(|c| c.name == check.name) {
                        r.error(
                            &format!("{at}.name"),
                            format!("\"{}\" is the name of another check; give each check its own name", check.name),
                        );
                    }
                    spec.checks.push(check);
                }
            }
        }
        _ => r.error(
            &field("checks"),
            "must be a non-empty list of checks (each a preset, a metric or an expression, with min, max or compare)",
        ),
    }
    Some(spec)
}

fn parse_check(r: &mut FieldReader<'_>, item: &Value, at: &str, target: PresetTarget, window_secs: u64) -> Option<Check> {
    let obj = r.object(Some(item), at)?;
    r.warn_unknown(obj, at, CHECK_FIELDS);
    let field = |f: &str| format!("{at}.{f}");
    let preset = r.string(obj.get("preset"), &field("preset"));
    let metric = obj.get("metric").filter(|v| !v.is_null());
    let expression = r.string(obj.get("expression"), &field("expression"));
    let given = [preset.is_some(), metric.is_some(), expression.is_some()].iter().filter(|b| **b).count();
    if given != 1 {
        r.error(at, "give exactly one of preset, metric or expression");
        return None;
    }
    let mut unit = r.string(obj.get("unit"), &field("unit"));
    let (source, default_name) = if let Some(p) = &preset {
        let Some((source, preset_unit)) = queries::preset(p, target) else {
            let names = queries::preset_names(target).join(", ");
            r.error(&field("preset"), format!("is \"{p}\"; the presets for this kind of app are {names}"));
            return None;
        };
        unit = unit.or(preset_unit.map(str::to_string));
        (source, p.clone())
    } else if let Some(m) = metric {
        let spec = parse_metric(r, m, &field("metric"))?;
        let name = spec.metric_name.clone();
        (MetricSource::Metric(spec), name)
    } else {
        let expression = expression.unwrap_or_default();
        let Some(metrics_obj) = r.object(obj.get("metrics"), &field("metrics")) else {
            r.error(
                &field("metrics"),
                "an expression needs the metrics it reads: {\"id\": {namespace, metricName, dimensions, stat, period}}",
            );
            return None;
        };
        let mut metrics = Vec::new();
        for (id, m) in metrics_obj {
            if !queries::valid_id(id) {
                r.error(&format!("{at}.metrics.{id}"), "an id starts with a lowercase letter and holds only letters, digits and _");
                continue;
            }
            if let Some(spec) = parse_metric(r, m, &format!("{at}.metrics.{id}")) {
                metrics.push((id.clone(), spec));
            }
        }
        if metrics.is_empty() {
            return None;
        }
        if metrics.len() > MAX_EXPRESSION_METRICS {
            r.error(&field("metrics"), format!("has {} metrics; an expression may read at most {MAX_EXPRESSION_METRICS}", metrics.len()));
        }
        for word in queries::identifiers(&expression) {
            let known = metrics.iter().any(|(id, _)| *id == word) || queries::is_function(&word);
            if !known {
                r.error(&field("expression"), format!("reads \"{word}\", which is not one of its metrics ({})", ids(&metrics)));
            }
        }
        (MetricSource::Expression { expression: expression.clone(), metrics }, expression)
    };
    if source.period_secs() > window_secs {
        r.error(&field("metric"), format!("its period ({} s) is longer than the analysis window ({window_secs} s)", source.period_secs()));
    }
    let smallest = match &source {
        MetricSource::Metric(m) => m.period_secs,
        MetricSource::Expression { metrics, .. } => metrics.iter().map(|(_, m)| m.period_secs).min().unwrap_or(60),
    };
    if window_secs / smallest.max(1) > MAX_SAMPLES {
        r.error(
            &field("metric"),
            format!(
                "a period of {smallest} s over the {window_secs} s window is {} samples; at most {MAX_SAMPLES}: use a longer period",
                window_secs / smallest.max(1)
            ),
        );
    }
    let name = r.string(obj.get("name"), &field("name")).unwrap_or(default_name);
    let min = r.number(obj.get("min"), &field("min"), f64::MIN, f64::MAX);
    let max = r.number(obj.get("max"), &field("max"), f64::MIN, f64::MAX);
    let compare = match r.object(obj.get("compare"), &field("compare")) {
        Some(c) => {
            r.warn_unknown(c, &field("compare"), &["confidence", "tolerance", "failIf"]);
            let confidence_pct = r.number(c.get("confidence"), &format!("{at}.compare.confidence"), 50.0, 99.999).unwrap_or(95.0);
            let tolerance_pct = r.number(c.get("tolerance"), &format!("{at}.compare.tolerance"), 0.0, 10_000.0).unwrap_or(25.0);
            let fail_if =
                match r.string(c.get("failIf"), &format!("{at}.compare.failIf")).as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("higher") => FailIf::Higher,
                    Some("lower") => FailIf::Lower,
                    Some("either") => FailIf::Either,
                    Some(other) => {
                        r.error(&format!("{at}.compare.failIf"), format!("is \"{other}\"; use higher, lower or either"));
                        FailIf::Higher
                    }
                };
            Some(Comparison { confidence_pct, tolerance_pct, fail_if })
        }
        None => None,
    };
    if min.is_none() && max.is_none() && compare.is_none() {
        r.error(at, "says nothing to judge: give min, max (a threshold on green) or compare (green against blue)");
        return None;
    }
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            r.error(&field("min"), format!("{lo} is above max {hi}"));
        }
    }
    let min_samples = r.int(obj.get("minSamples"), &field("minSamples"), 1, 10_000).map_or(5, |n| n as u32);
    Some(Check { name, source, min, max, compare, min_samples, unit })
}

fn ids(metrics: &[(String, MetricSpec)]) -> String {
    metrics.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", ")
}

const STATS: &[&str] = &["Average", "Sum", "Minimum", "Maximum", "SampleCount"];

/// Whether `stat` is one GetMetricData accepts that gitmoxi reads (`p50`…`p99.9` included).
pub fn valid_stat(stat: &str) -> bool {
    if STATS.contains(&stat) {
        return true;
    }
    stat.strip_prefix('p').and_then(|n| n.parse::<f64>().ok()).is_some_and(|n| n > 0.0 && n < 100.0)
}

fn parse_metric(r: &mut FieldReader<'_>, value: &Value, at: &str) -> Option<MetricSpec> {
    let obj = r.object(Some(value), at)?;
    r.warn_unknown(obj, at, &["namespace", "metricName", "dimensions", "stat", "period"]);
    let field = |f: &str| format!("{at}.{f}");
    let namespace = r.string(obj.get("namespace"), &field("namespace"));
    let metric_name = r.string(obj.get("metricName"), &field("metricName"));
    let stat = r.string(obj.get("stat"), &field("stat")).unwrap_or_else(|| "Average".to_string());
    if !valid_stat(&stat) {
        r.error(&field("stat"), format!("is \"{stat}\"; use Average, Sum, Minimum, Maximum, SampleCount or a percentile such as p99"));
    }
    let period = r.int(obj.get("period"), &field("period"), 1, 86_400).map_or(60, |p| p as u64);
    if ![1, 5, 10, 30].contains(&period) && !period.is_multiple_of(60) {
        r.error(&field("period"), format!("is {period}; CloudWatch periods are 1, 5, 10, 30 or a multiple of 60 seconds"));
    }
    let mut dimensions = Vec::new();
    if let Some(dims) = r.object(obj.get("dimensions"), &field("dimensions")) {
        if dims.len() > 30 {
            r.error(&field("dimensions"), "has more than the 30 dimensions CloudWatch allows");
        }
        for (k, v) in dims {
            if let Some(s) = r.string(Some(v), &format!("{at}.dimensions.{k}")) {
                dimensions.push((k.clone(), s));
            }
        }
    }
    let (Some(namespace), Some(metric_name)) = (namespace, metric_name) else {
        r.error(at, "needs namespace and metricName");
        return None;
    };
    Some(MetricSpec { namespace, metric_name, dimensions, stat, period_secs: period })
}

/// Reads `analysis` of a rendered file on its own (tests and tools).
pub fn parse_value(file: &str, value: &Value, target: PresetTarget) -> Result<AnalysisSpec, Vec<Diagnostic>> {
    let text = value.to_string();
    let mut r = FieldReader::new(file, &text);
    let spec = parse(&mut r, Some(value), "analysis", target);
    match spec {
        Some(spec) if r.errors.is_empty() => Ok(spec),
        Some(_) | None => Err(r.errors),
    }
}

#[cfg(test)]
mod tests;
