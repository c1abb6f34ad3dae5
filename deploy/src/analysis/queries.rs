//! The metric queries of an analysis run: presets, placeholders filled from the deployment's
//! sides, and the one GetMetricData request of a run (query ids `c<i>g` / `c<i>b` per check and
//! side; an expression's metrics as `c<i>g_<id>`, not returned).
//!
//! Invariants: a request is a pure function of (spec, sides, window), so the executor can cache
//! its answer per window; every id is a valid GetMetricData id; a check's blue query is its green
//! query with the green names swapped for blue's.

use super::{AnalysisSpec, MetricSource, MetricSpec, PresetTarget};
use serde::{Deserialize, Serialize};

/// The names of one deployment's two sides, filled into `{{ … }}` placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideNames {
    /// `{{ green }}`: green's ALB target-group dimension (`targetgroup/name/id`) or Lambda version.
    pub green: String,
    /// `{{ blue }}`: blue's.
    pub blue: String,
    /// `{{ green_task_set }}`: green's task set id (ECS).
    #[serde(default)]
    pub green_task_set: Option<String>,
    /// `{{ blue_task_set }}`.
    #[serde(default)]
    pub blue_task_set: Option<String>,
    /// `{{ load_balancer }}`: the ALB dimension (`app/name/id`) in front of the target groups.
    #[serde(default)]
    pub load_balancer: Option<String>,
    /// `{{ function }}`: the Lambda function's name.
    #[serde(default)]
    pub function: Option<String>,
    /// `{{ alias }}`: the Lambda alias.
    #[serde(default)]
    pub alias: Option<String>,
    /// `{{ cluster }}`: the ECS cluster's name.
    #[serde(default)]
    pub cluster: Option<String>,
    /// `{{ family }}`: the task definition family.
    #[serde(default)]
    pub family: Option<String>,
    /// `{{ green_revision }}`: the revision green runs (Container Insights' `TaskDefinitionRevision`).
    #[serde(default)]
    pub green_revision: Option<String>,
    /// `{{ blue_revision }}`: the revision blue runs.
    #[serde(default)]
    pub blue_revision: Option<String>,
}

impl SideNames {
    /// The ECS names of both sides' task definitions: `cluster`, `family`, and each revision
    /// (from task definition ARNs `…:task-definition/family:revision`).
    pub fn with_revisions(mut self, cluster: &str, green_td: Option<&str>, blue_td: Option<&str>) -> SideNames {
        let split = |arn: &str| -> Option<(String, String)> {
            let (family, revision) = arn.rsplit('/').next()?.split_once(':')?;
            Some((family.to_string(), revision.to_string()))
        };
        self.cluster = Some(cluster.rsplit('/').next().unwrap_or(cluster).to_string());
        if let Some((family, revision)) = green_td.and_then(split) {
            self.family = Some(family);
            self.green_revision = Some(revision);
        }
        self.blue_revision = blue_td.and_then(split).map(|(_, r)| r);
        self
    }
}

/// The placeholders a depdef may hold in its `analysis` (kept verbatim by template rendering).
pub const PLACEHOLDERS: &[&str] = &["green", "blue", "green_task_set", "blue_task_set", "load_balancer", "green_revision", "blue_revision"];

/// Which side a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The new version.
    Green,
    /// The version running before.
    Blue,
}

/// One query of a GetMetricData call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryKind {
    /// A `MetricStat`, its dimensions filled.
    Stat(MetricSpec),
    /// A metric-math expression over other queries' ids.
    Expression {
        /// The expression, its ids rewritten to the request's.
        expression: String,
        /// Its period, seconds.
        period_secs: u64,
    },
}

/// One query and whether its values are returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricQuery {
    /// The id (unique in the request).
    pub id: String,
    /// What it reads.
    pub kind: QueryKind,
    /// Its values come back (an expression's inputs do not).
    pub return_data: bool,
}

/// One GetMetricData request: its queries over [start, end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricRequest {
    /// The queries.
    pub queries: Vec<MetricQuery>,
    /// The window's start, ms since the epoch.
    pub start_ms: u64,
    /// The window's end (exclusive), ms since the epoch, aligned to the longest period.
    pub end_ms: u64,
}

/// The id of check `i`'s result for `side`.
pub fn result_id(i: usize, side: Side) -> String {
    match side {
        Side::Green => format!("c{i}g"),
        Side::Blue => format!("c{i}b"),
    }
}

/// Whether `id` is a valid GetMetricData id: a lowercase letter, then letters, digits and `_`.
pub fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && id.len() <= 255
}

/// Whether `word` names a metric-math function (`FILL`, `SUM`, `METRICS`…): upper case.
pub fn is_function(word: &str) -> bool {
    word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && word.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The identifiers of an expression, in order (numbers and operators skipped).
pub fn identifiers(expression: &str) -> Vec<String> {
    tokens(expression).into_iter().filter_map(|t| if let Token::Ident(w) = t { Some(w) } else { None }).collect()
}

enum Token {
    Ident(String),
    Other(String),
}

fn tokens(expression: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = expression.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Other(chars[start..i].iter().collect()));
        } else {
            out.push(Token::Other(c.to_string()));
            i += 1;
        }
    }
    out
}

/// `expression` with each id of `metrics` replaced by `prefix_<id>`.
fn rewrite(expression: &str, prefix: &str, metrics: &[(String, MetricSpec)]) -> String {
    tokens(expression)
        .into_iter()
        .map(|t| match t {
            Token::Ident(w) if metrics.iter().any(|(id, _)| *id == w) => format!("{prefix}_{w}"),
            Token::Ident(w) | Token::Other(w) => w,
        })
        .collect()
}

/// `text` with its placeholders filled for `side` (a blue query reads blue's names where the
/// check says green's); an unknown or unfillable placeholder is kept as written.
pub fn fill(text: &str, sides: &SideNames, side: Side) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = after[..close].trim();
        let value = match (name, side) {
            ("green", Side::Green) => Some(sides.green.clone()),
            ("green", Side::Blue) | ("blue", Side::Green | Side::Blue) => Some(sides.blue.clone()),
            ("green_task_set", Side::Green) => sides.green_task_set.clone(),
            ("green_task_set", Side::Blue) | ("blue_task_set", Side::Green | Side::Blue) => sides.blue_task_set.clone(),
            ("green_revision", Side::Green) => sides.green_revision.clone(),
            ("green_revision", Side::Blue) | ("blue_revision", Side::Green | Side::Blue) => sides.blue_revision.clone(),
            ("cluster", _) => sides.cluster.clone(),
            ("family", _) => sides.family.clone(),
            ("load_balancer", _) => sides.load_balancer.clone(),
            ("function", _) => sides.function.clone(),
            ("alias", _) => sides.alias.clone(),
            _ => None,
        };
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

fn filled(spec: &MetricSpec, sides: &SideNames, side: Side) -> MetricSpec {
    MetricSpec { dimensions: spec.dimensions.iter().map(|(k, v)| (k.clone(), fill(v, sides, side))).collect(), ..spec.clone() }
}

fn push_side(queries: &mut Vec<MetricQuery>, i: usize, source: &MetricSource, sides: &SideNames, side: Side) {
    let id = result_id(i, side);
    match source {
        MetricSource::Metric(m) => queries.push(MetricQuery { id, kind: QueryKind::Stat(filled(m, sides, side)), return_data: true }),
        MetricSource::Expression { expression, metrics } => {
            for (sub, m) in metrics {
                queries.push(MetricQuery { id: format!("{id}_{sub}"), kind: QueryKind::Stat(filled(m, sides, side)), return_data: false });
            }
            let expression = rewrite(expression, &id, metrics);
            queries.push(MetricQuery {
                id,
                kind: QueryKind::Expression { expression, period_secs: source.period_secs() },
                return_data: true,
            });
        }
    }
}

/// The request of a run at `now_ms`: every check's green query, and blue's for comparisons,
/// over the `window` that ends at the last whole period before now.
pub fn request(spec: &AnalysisSpec, sides: &SideNames, now_ms: u64) -> MetricRequest {
    let mut queries = Vec::new();
    for (i, check) in spec.checks.iter().enumerate() {
        push_side(&mut queries, i, &check.source, sides, Side::Green);
        if check.compare.is_some() {
            push_side(&mut queries, i, &check.source, sides, Side::Blue);
        }
    }
    let align = spec.checks.iter().map(|c| c.source.period_secs()).max().unwrap_or(60).max(1) * 1000;
    let end_ms = now_ms - now_ms % align;
    MetricRequest { queries, start_ms: end_ms.saturating_sub(spec.window_secs * 1000), end_ms }
}

fn alb(name: &str, stat: &str) -> MetricSpec {
    MetricSpec {
        namespace: "AWS/ApplicationELB".into(),
        metric_name: name.into(),
        dimensions: vec![("LoadBalancer".into(), "{{ load_balancer }}".into()), ("TargetGroup".into(), "{{ green }}".into())],
        stat: stat.into(),
        period_secs: 60,
    }
}

fn lambda(name: &str, stat: &str) -> MetricSpec {
    MetricSpec {
        namespace: "AWS/Lambda".into(),
        metric_name: name.into(),
        dimensions: vec![
            ("FunctionName".into(), "{{ function }}".into()),
            ("Resource".into(), "{{ function }}:{{ alias }}".into()),
            ("ExecutedVersion".into(), "{{ green }}".into()),
        ],
        stat: stat.into(),
        period_secs: 60,
    }
}

fn insights(name: &str) -> MetricSpec {
    MetricSpec {
        namespace: "ECS/ContainerInsights".into(),
        metric_name: name.into(),
        dimensions: vec![
            ("ClusterName".into(), "{{ cluster }}".into()),
            ("TaskDefinitionFamily".into(), "{{ family }}".into()),
            ("TaskDefinitionRevision".into(), "{{ green_revision }}".into()),
        ],
        stat: "Average".into(),
        period_secs: 60,
    }
}

/// The presets for `target`, by name.
pub fn preset_names(target: PresetTarget) -> Vec<&'static str> {
    match target {
        PresetTarget::Ecs => vec!["ALB_5XX_RATE", "ALB_P99_LATENCY", "ECS_CPU_UTILIZED", "ECS_MEMORY_UTILIZED"],
        PresetTarget::Lambda => vec!["LAMBDA_ERROR_RATE", "LAMBDA_P99_DURATION"],
    }
}

/// The source and unit of the preset `name` for `target`, `None` when there is no such preset.
pub fn preset(name: &str, target: PresetTarget) -> Option<(MetricSource, Option<&'static str>)> {
    let upper = name.to_ascii_uppercase();
    match (upper.as_str(), target) {
        ("ALB_5XX_RATE", PresetTarget::Ecs) => Some((
            MetricSource::Expression {
                expression: "100 * FILL(errors, 0) / requests".into(),
                metrics: vec![("errors".into(), alb("HTTPCode_Target_5XX_Count", "Sum")), ("requests".into(), alb("RequestCount", "Sum"))],
            },
            Some("%"),
        )),
        ("ALB_P99_LATENCY", PresetTarget::Ecs) => Some((MetricSource::Metric(alb("TargetResponseTime", "p99")), Some("s"))),
        // Container Insights with enhanced observability: per task definition revision, and
        // green and blue run different revisions
        ("ECS_CPU_UTILIZED", PresetTarget::Ecs) => Some((MetricSource::Metric(insights("CpuUtilized")), Some("CPU units"))),
        ("ECS_MEMORY_UTILIZED", PresetTarget::Ecs) => Some((MetricSource::Metric(insights("MemoryUtilized")), Some("MiB"))),
        ("LAMBDA_ERROR_RATE", PresetTarget::Lambda) => Some((
            MetricSource::Expression {
                expression: "100 * FILL(errors, 0) / invocations".into(),
                metrics: vec![("errors".into(), lambda("Errors", "Sum")), ("invocations".into(), lambda("Invocations", "Sum"))],
            },
            Some("%"),
        )),
        ("LAMBDA_P99_DURATION", PresetTarget::Lambda) => Some((MetricSource::Metric(lambda("Duration", "p99")), Some("ms"))),
        _ => None,
    }
}

/// The ALB dimension (`app/name/id`) of a listener or rule ARN
/// (`…:listener/app/name/id/listener-id`, `…:listener-rule/app/name/id/listener-id/rule-id`).
pub fn load_balancer_dimension(listener_or_rule_arn: &str) -> Option<String> {
    let (_, resource) = listener_or_rule_arn.split_once(":listener/").or_else(|| listener_or_rule_arn.split_once(":listener-rule/"))?;
    let parts: Vec<&str> = resource.split('/').collect();
    (parts.len() >= 3).then(|| parts[..3].join("/"))
}

/// The ALB dimension (`targetgroup/name/id`) of a target group ARN.
pub fn target_group_dimension(arn: &str) -> String {
    arn.split_once(":targetgroup/").map_or_else(|| arn.to_string(), |(_, rest)| format!("targetgroup/{rest}"))
}
