//! Tests of the analysis spec, its queries and verdicts.

use super::queries::{fill, load_balancer_dimension, request, target_group_dimension, QueryKind, Side, SideNames};
use super::verdict::{judge_all, Verdict};
use super::*;
use serde_json::json;
use std::collections::BTreeMap;

fn sides() -> SideNames {
    SideNames {
        green: "targetgroup/web-b/2".into(),
        blue: "targetgroup/web-a/1".into(),
        green_task_set: Some("ecs-svc/g".into()),
        blue_task_set: Some("ecs-svc/b".into()),
        load_balancer: Some("app/lb/9".into()),
        ..SideNames::default()
    }
}

fn latency_spec() -> AnalysisSpec {
    parse_value(
        "web_depdef.json",
        &json!({"window": 300, "checks": [
            {"name": "latency", "metric": {"namespace": "Web", "metricName": "Latency", "dimensions": {"TargetGroup": "{{ green }}"}, "stat": "Average", "period": 10},
             "compare": {"tolerance": 25}, "unit": "ms"},
            {"name": "5xx", "preset": "ALB_5XX_RATE", "max": 1}
        ]}),
        PresetTarget::Ecs,
    )
    .expect("valid")
}

#[test]
fn checks_parse_with_their_defaults_and_presets_expand() {
    let spec = latency_spec();
    assert_eq!((spec.window_secs, spec.interval_secs, spec.failure_limit, spec.consecutive_inconclusive), (300, 60, 0, 3));
    assert_eq!(spec.on_inconclusive, OnInconclusive::Hold);
    let c = spec.checks[0].compare.as_ref().expect("compare");
    assert_eq!((c.confidence_pct, c.tolerance_pct, c.fail_if), (95.0, 25.0, FailIf::Higher));
    assert_eq!(spec.checks[0].min_samples, 5);
    match &spec.checks[1].source {
        MetricSource::Expression { expression, metrics } => {
            assert_eq!(expression, "100 * FILL(errors, 0) / requests");
            assert_eq!(metrics[0].1.metric_name, "HTTPCode_Target_5XX_Count");
        }
        other @ MetricSource::Metric(_) => panic!("{other:?}"),
    }
    assert_eq!(spec.checks[1].unit.as_deref(), Some("%"));
}

#[test]
fn bad_checks_are_errors_that_name_the_field() {
    let cases = [
        (json!({"checks": []}), "analysis.checks"),
        (json!({"checks": [{"preset": "ALB_5XX_RATE"}]}), "says nothing to judge"),
        (json!({"checks": [{"preset": "LAMBDA_ERROR_RATE", "max": 1}]}), "ALB_5XX_RATE, ALB_P99_LATENCY"),
        (
            json!({"checks": [{"metric": {"namespace": "X", "metricName": "Y", "stat": "median"}, "max": 1}]}),
            "analysis.checks[0].metric.stat",
        ),
        (json!({"checks": [{"metric": {"namespace": "X", "metricName": "Y", "period": 7}, "max": 1}]}), "multiple of 60"),
        (json!({"checks": [{"expression": "a / b", "metrics": {"a": {"namespace": "X", "metricName": "Y"}}, "max": 1}]}), "reads \"b\""),
        (json!({"checks": [{"preset": "ALB_5XX_RATE", "metric": {}, "max": 1}]}), "exactly one of"),
        (json!({"onInconclusive": "pray", "checks": [{"preset": "ALB_5XX_RATE", "max": 1}]}), "use hold, rollback or continue"),
        (json!({"checks": [{"preset": "ALB_5XX_RATE", "max": 1}, {"preset": "ALB_5XX_RATE", "max": 2}]}), "name of another check"),
        (json!({"checks": [{"preset": "ALB_5XX_RATE", "compare": {"confidence": 120}}]}), "compare.confidence"),
        (
            json!({"window": 3600, "checks": [{"metric": {"namespace": "X", "metricName": "Y", "period": 1}, "max": 1}]}),
            "3600 samples; at most 1440",
        ),
    ];
    for (value, want) in cases {
        let errors = parse_value("web_depdef.json", &value, PresetTarget::Ecs).expect_err("invalid");
        let text: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        assert!(text.iter().any(|m| m.contains(want)), "{value}: {text:?} lacks {want}");
    }
}

#[test]
fn placeholders_fill_each_side_and_the_blue_query_swaps_green_for_blue() {
    let s = sides();
    assert_eq!(fill("{{ green }}", &s, Side::Green), "targetgroup/web-b/2");
    assert_eq!(fill("{{green}}", &s, Side::Blue), "targetgroup/web-a/1");
    assert_eq!(fill("{{ green_task_set }}|{{ load_balancer }}", &s, Side::Blue), "ecs-svc/b|app/lb/9");
    assert_eq!(fill("{{ nope }} {{ unclosed", &s, Side::Green), "{{ nope }} {{ unclosed");
    let req = request(&latency_spec(), &s, 1_000_123_456);
    assert_eq!(req.end_ms, 1_000_080_000, "aligned to the longest period (60 s)");
    assert_eq!(req.start_ms, req.end_ms - 300_000);
    let ids: Vec<&str> = req.queries.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, vec!["c0g", "c0b", "c1g_errors", "c1g_requests", "c1g"]);
    match &req.queries[1].kind {
        QueryKind::Stat(m) => assert_eq!(m.dimensions, vec![("TargetGroup".to_string(), "targetgroup/web-a/1".to_string())]),
        other @ QueryKind::Expression { .. } => panic!("{other:?}"),
    }
    match &req.queries[4].kind {
        QueryKind::Expression { expression, .. } => assert_eq!(expression, "100 * FILL(c1g_errors, 0) / c1g_requests"),
        other @ QueryKind::Stat(_) => panic!("{other:?}"),
    }
    assert!(req.queries.iter().all(|q| queries::valid_id(&q.id)));
    assert_eq!(
        load_balancer_dimension("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/my-lb/50dc6c495c0c9188/f2f7dc8efc522ab2"),
        Some("app/my-lb/50dc6c495c0c9188".to_string())
    );
    assert_eq!(
        load_balancer_dimension("arn:aws:elasticloadbalancing:us-east-1:123:listener-rule/app/my-lb/50dc/f2f7/9683"),
        Some("app/my-lb/50dc".to_string())
    );
    assert_eq!(
        target_group_dimension("arn:aws:elasticloadbalancing:us-east-1:123:targetgroup/web-b/73e2d6bc24d8a067"),
        "targetgroup/web-b/73e2d6bc24d8a067"
    );
}

fn values(green: &[f64], blue: &[f64], rate: &[f64]) -> BTreeMap<String, Vec<f64>> {
    [("c0g", green), ("c0b", blue), ("c1g", rate)].into_iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
}

fn series(base: f64, n: usize) -> Vec<f64> {
    // deterministic noise of ±5 %
    (0..n).map(|i| base * (1.0 + (((i * 37) % 11) as f64 - 5.0) / 100.0)).collect()
}

#[test]
fn a_healthy_green_passes_a_slow_green_fails_naming_the_numbers() {
    let spec = latency_spec();
    let (verdict, checks) = judge_all(&spec, &values(&series(181.0, 30), &series(180.0, 30), &[0.1; 30]));
    assert_eq!(verdict, Verdict::Pass, "{checks:?}");
    let (verdict, checks) = judge_all(&spec, &values(&series(412.0, 30), &series(180.0, 30), &[0.1; 30]));
    assert_eq!(verdict, Verdict::Fail);
    let m = &checks[0].message;
    assert!(
        m.starts_with("latency green 4") && m.contains("ms vs blue 1") && m.contains("tolerance 25 %") && m.contains("p < 0.001"),
        "{m}"
    );
    assert!(checks[0].change_pct.is_some_and(|c| c > 100.0));
    // the threshold: 5xx rate
    let (verdict, checks) = judge_all(&spec, &values(&series(181.0, 30), &series(180.0, 30), &[3.2; 30]));
    assert_eq!(verdict, Verdict::Fail);
    assert_eq!(checks[1].message, "5xx green 3.2 % above max 1 %");
}

#[test]
fn noise_within_the_tolerance_and_outliers_do_not_fail() {
    let spec = latency_spec();
    // 10 % slower: significant, but within the 25 % tolerance
    let (verdict, checks) = judge_all(&spec, &values(&series(198.0, 30), &series(180.0, 30), &[0.1; 30]));
    assert_eq!(verdict, Verdict::Pass, "{checks:?}");
    // one huge spike on green is removed as an outlier
    let mut spiky = series(180.0, 30);
    spiky[7] = 90_000.0;
    let (verdict, _) = judge_all(&spec, &values(&spiky, &series(180.0, 30), &[0.1; 30]));
    assert_eq!(verdict, Verdict::Pass);
}

#[test]
fn too_few_samples_are_inconclusive_never_a_pass() {
    let spec = latency_spec();
    let (verdict, checks) = judge_all(&spec, &values(&series(900.0, 3), &series(180.0, 30), &[0.1; 30]));
    assert_eq!(verdict, Verdict::Inconclusive);
    assert_eq!(checks[0].message, "latency: too few samples (green 3, blue 30; minSamples 5)");
    let (verdict, _) = judge_all(&spec, &BTreeMap::new());
    assert_eq!(verdict, Verdict::Inconclusive, "no data at all");
}

#[test]
fn container_insights_presets_read_each_sides_task_definition_revision() {
    let spec = parse_value(
        "web_depdef.json",
        &json!({"checks": [{"preset": "ECS_MEMORY_UTILIZED", "compare": {"tolerance": 30}}]}),
        PresetTarget::Ecs,
    )
    .expect("valid");
    let sides = sides().with_revisions(
        "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
        Some("arn:aws:ecs:us-east-1:123456789012:task-definition/web:7"),
        Some("arn:aws:ecs:us-east-1:123456789012:task-definition/web:6"),
    );
    let req = request(&spec, &sides, 1_000_000_000);
    let dims = |i: usize| match &req.queries[i].kind {
        QueryKind::Stat(m) => (m.namespace.clone(), m.metric_name.clone(), m.dimensions.clone()),
        other @ QueryKind::Expression { .. } => panic!("{other:?}"),
    };
    let d = |rev: &str| {
        vec![
            ("ClusterName".to_string(), "prod".to_string()),
            ("TaskDefinitionFamily".into(), "web".into()),
            ("TaskDefinitionRevision".into(), rev.into()),
        ]
    };
    assert_eq!(dims(0), ("ECS/ContainerInsights".to_string(), "MemoryUtilized".to_string(), d("7")));
    assert_eq!(dims(1).2, d("6"), "blue's revision");
    assert!(parse_value("f", &json!({"checks": [{"preset": "ECS_CPU_UTILIZED", "max": 200}]}), PresetTarget::Lambda).is_err(), "ECS only");
}
