//! Simulation of Lambda deployments: the real controller against the fake world on a paused
//! clock — canary success, an alarm during the canary, a failed update, a version that never
//! becomes Active, restarts in every phase, a newer commit while shifting, event-source wiring
//! and the delete.

use crate::sim::{Sim, MINUTES, REGION};
use gitmoxi_deploy::record::{FailureCause, Outcome};
use std::collections::BTreeMap;

const PREFIX: &str = "fn/hello";
const CANARY: &str = r#"{"alias": "live", "trafficShiftingConfig": {"type": "CANARY", "percent": 20, "waitInterval": 30},
  "alarms": {"alarmNames": ["hello-errors"]}, "readinessCheck": {"waitInterval": 2, "maxRetries": 10}}"#;
const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/hello/9";
const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:jobs";

/// A function whose code is `code` (base64 zip) and whose MODE variable is `mode`.
fn add_function(sim: &mut Sim, code: &str, mode: &str, depdef: &str) {
    sim.tree.insert(
        &format!("{PREFIX}_lambdadef.json"),
        &format!(
            r#"{{"FunctionName": "hello", "Runtime": "python3.12", "Handler": "app.handler",
  "Role": "arn:aws:iam::123456789012:role/hello", "Code": {{"ZipFile": "{code}"}},
  "Environment": {{"Variables": {{"MODE": "{mode}"}}}}}}"#
        ),
    );
    sim.tree.insert(&format!("{PREFIX}_lambdadepdef.json"), depdef);
}

fn alias(sim: &Sim) -> Option<(String, BTreeMap<String, f64>)> {
    sim.world.lambda_alias(REGION, "hello", "live")
}

fn on_version(sim: &Sim, version: &str) -> bool {
    sim.idle(PREFIX) && alias(sim).is_some_and(|(v, extra)| v == version && extra.is_empty())
}

async fn first_deployment(sim: &mut Sim) {
    sim.world.set_alarm("hello-errors", "OK");
    add_function(sim, "djE=", "ok", CANARY);
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| on_version(s, "1")).await, "{:?}", sim.history(PREFIX));
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn a_canary_moves_20_percent_then_all_traffic_to_the_new_version() {
    let mut sim = Sim::new();
    first_deployment(&mut sim).await;
    add_function(&mut sim, "djI=", "ok", CANARY);
    sim.commit();
    assert!(
        sim.run_until(10 * MINUTES, |s| alias(s).is_some_and(|(v, extra)| v == "1" && extra.get("2") == Some(&0.2))).await,
        "canary: {:?}",
        sim.history(PREFIX)
    );
    assert!(sim.run_until(10 * MINUTES, |s| on_version(s, "2")).await, "{:?}", sim.history(PREFIX));
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    assert_eq!(sim.world.lambda_versions(REGION, "hello"), vec!["1", "2"], "deleteOldVersion is off by default");
    let history = sim.history(PREFIX);
    for line in ["code of hello updated", "configuration of hello updated", "alias live: 20 % on version 2", "deployment succeeded"] {
        assert!(history.iter().any(|h| h.contains(line)), "{line}: {history:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_alarm_during_the_canary_puts_the_alias_back_and_deletes_the_new_version() {
    let mut sim = Sim::new();
    first_deployment(&mut sim).await;
    add_function(&mut sim, "djI=", "ok", CANARY);
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| alias(s).is_some_and(|(_, extra)| extra.get("2") == Some(&0.2))).await);
    sim.world.set_alarm("hello-errors", "ALARM");
    assert!(sim.run_until(5 * MINUTES, |s| s.idle(PREFIX)).await);
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::RolledBack));
    assert_eq!(alias(&sim), Some(("1".to_string(), BTreeMap::new())), "old version, no routing");
    assert_eq!(sim.world.lambda_versions(REGION, "hello"), vec!["1"], "the new version is deleted");
    let app = sim.store.app(&Sim::key(PREFIX)).unwrap().unwrap();
    assert!(app.last_cause.as_ref().unwrap().to_string().contains("alarm fired: hello-errors"), "{:?}", app.last_cause);
}

#[tokio::test(start_paused = true)]
async fn a_failed_update_reports_its_cause_and_shifts_nothing() {
    let mut sim = Sim::new();
    first_deployment(&mut sim).await;
    add_function(&mut sim, "djE=", "update-fails", CANARY);
    sim.commit();
    assert!(
        sim.run_until(10 * MINUTES, |s| s.idle(PREFIX) && s.outcome(PREFIX) == Some(Outcome::Failed)).await,
        "{:?}",
        sim.history(PREFIX)
    );
    assert_eq!(alias(&sim), Some(("1".to_string(), BTreeMap::new())));
    assert_eq!(sim.world.lambda_versions(REGION, "hello"), vec!["1"]);
    let app = sim.store.app(&Sim::key(PREFIX)).unwrap().unwrap();
    let record = sim.store.deployment(app.last_deployment.as_deref().unwrap()).unwrap().unwrap();
    assert!(record.evidence.iter().any(|e| e.contains("KMS key is invalid")), "{:?}", record.evidence);
    assert!(matches!(record.cause, Some(FailureCause::AwsRejected { .. })));
    assert!(sim.history(PREFIX).iter().any(|h| h.contains("nothing was shifted")));
}

#[tokio::test(start_paused = true)]
async fn a_version_that_never_becomes_active_rolls_back_after_the_readiness_budget() {
    let mut sim = Sim::new();
    first_deployment(&mut sim).await;
    add_function(&mut sim, "djI=", "never-ready", CANARY);
    sim.commit();
    assert!(
        sim.run_until(10 * MINUTES, |s| s.idle(PREFIX) && s.outcome(PREFIX) == Some(Outcome::RolledBack)).await,
        "{:?}",
        sim.history(PREFIX)
    );
    let app = sim.store.app(&Sim::key(PREFIX)).unwrap().unwrap();
    assert!(app.last_cause.as_ref().unwrap().to_string().contains("stability timeout after 20 s"), "{:?}", app.last_cause);
    assert_eq!(alias(&sim), Some(("1".to_string(), BTreeMap::new())));
    assert_eq!(sim.world.lambda_versions(REGION, "hello"), vec!["1"]);
}

#[tokio::test(start_paused = true)]
async fn a_newer_commit_during_shifting_rolls_back_then_deploys_the_newest() {
    let mut sim = Sim::new();
    first_deployment(&mut sim).await;
    add_function(&mut sim, "djI=", "ok", CANARY);
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| alias(s).is_some_and(|(_, extra)| extra.get("2") == Some(&0.2))).await);
    add_function(&mut sim, "djM=", "ok", CANARY);
    sim.commit();
    assert!(sim.run_until(15 * MINUTES, |s| on_version(s, "3")).await, "{:?}", sim.history(PREFIX));
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    assert_eq!(sim.world.lambda_versions(REGION, "hello"), vec!["1", "3"], "the superseded version 2 was deleted");
    assert!(sim.history(PREFIX).iter().any(|h| h.contains("superseded by commit")));
}

#[tokio::test(start_paused = true)]
async fn restarts_in_every_phase_publish_one_version_per_deployment() {
    let mut sim = Sim::new();
    sim.world.set_alarm("hello-errors", "OK");
    for op in ["CreateFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration", "PublishVersion", "CreateAlias", "UpdateAlias"] {
        sim.world.lose_response(op, 1);
    }
    add_function(&mut sim, "djE=", "ok", CANARY);
    sim.commit();
    let mut restarts = 0;
    for (code, version) in [("djE=", "1"), ("djI=", "2")] {
        if version == "2" {
            add_function(&mut sim, code, "ok", CANARY);
            sim.commit();
        }
        restarts += sim.restart_at_boundaries_until(PREFIX, 20 * MINUTES, |s| on_version(s, version)).await;
        assert!(on_version(&sim, version), "{version}: {:?} {}", sim.history(PREFIX), sim.seed_note());
    }
    assert!(restarts >= 8, "{restarts}");
    assert_eq!(sim.world.lambda_versions(REGION, "hello"), vec!["1", "2"], "one version per deployment");
    assert_eq!(sim.world.mutations("PublishVersion").len(), 1, "published once (creation publishes version 1)");
}

#[tokio::test(start_paused = true)]
async fn event_sources_are_wired_to_the_alias_updated_and_removed_with_the_function() {
    let mut sim = Sim::new();
    sim.world.add_target_group(TG, None);
    sim.world.add_http_api("api1", "route1");
    add_function(&mut sim, "djE=", "ok", r#"{"alias": "live"}"#);
    let sources = |batch: u32| {
        format!(
            r#"{{"PushEventSources": [
  {{"Service": "elasticloadbalancing.amazonaws.com", "TargetGroupArn": "{TG}"}},
  {{"Service": "apigateway.amazonaws.com", "ApiId": "api1", "RouteId": "route1"}}],
 "PullEventSources": {{"EventSourceMapping": {{"EventSourceArn": "{QUEUE}", "BatchSize": {batch}}}}}}}"#
        )
    };
    sim.tree.insert(&format!("{PREFIX}_lambdaeventsourcedef.json"), &sources(5));
    sim.commit();
    let alias_arn = format!("arn:aws:lambda:{REGION}:123456789012:function:hello:live");
    assert!(sim.run_until(10 * MINUTES, |s| on_version(s, "1")).await, "{:?}", sim.history(PREFIX));
    assert_eq!(sim.world.lambda_mappings(), vec![(QUEUE.to_string(), alias_arn.clone(), Some(5))]);
    assert_eq!(sim.world.lambda_targets(TG), vec![alias_arn.clone()]);
    assert_eq!(sim.world.lambda_permissions(REGION, "hello", "live").len(), 2);
    let (integrations, routes) = sim.world.http_api("api1").unwrap();
    assert_eq!(integrations.len(), 1);
    assert_eq!(integrations[0].1, alias_arn);
    assert_eq!(routes["route1"], Some(format!("integrations/{}", integrations[0].0)));

    // a batch size change is an update of the mapping, not a new one
    sim.tree.insert(&format!("{PREFIX}_lambdaeventsourcedef.json"), &sources(7));
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.world.lambda_mappings() == vec![(QUEUE.to_string(), alias_arn.clone(), Some(7))]).await);

    // drift: a mapping deleted by hand is noticed and healed (the default policy)
    sim.world.delete_lambda_mappings();
    assert!(
        sim.run_until(15 * MINUTES, |s| s.world.lambda_mappings() == vec![(QUEUE.to_string(), alias_arn.clone(), Some(7))]).await,
        "{:?}",
        sim.history(PREFIX)
    );
    let history = sim.history(PREFIX);
    assert!(
        history
            .iter()
            .any(|h| h.starts_with("drift: event sources of alias live differ from the file: the mapping from") && h.contains(QUEUE)),
        "{history:?}"
    );

    // the API source leaves the file: the route no longer targets the alias, the integration
    // and its permission are gone; the target group keeps the alias
    sim.tree.insert(
        &format!("{PREFIX}_lambdaeventsourcedef.json"),
        &format!(
            r#"{{"PushEventSources": [{{"Service": "elasticloadbalancing.amazonaws.com", "TargetGroupArn": "{TG}"}}],
 "PullEventSources": {{"EventSourceMapping": {{"EventSourceArn": "{QUEUE}", "BatchSize": 7}}}}}}"#
        ),
    );
    sim.commit();
    assert!(
        sim.run_until(10 * MINUTES, |s| s.world.http_api("api1").is_some_and(|(i, _)| i.is_empty())).await,
        "{:?}",
        sim.history(PREFIX)
    );
    let (_, routes) = sim.world.http_api("api1").unwrap();
    assert_eq!(routes["route1"], None, "the route no longer targets the alias");
    assert_eq!(sim.world.lambda_permissions(REGION, "hello", "live").len(), 1);
    assert_eq!(sim.world.lambda_targets(TG), vec![alias_arn.clone()]);

    // the lambdadef is gone: mappings, permissions, then the function (another app stays, so the
    // checkout is not empty; this test allows deleting half of the apps)
    sim.policy.max_prune_percent = 100;
    sim.add_app("prod/web/web", "web", "nginx:1");
    for suffix in ["_lambdadef.json", "_lambdadepdef.json", "_lambdaeventsourcedef.json"] {
        sim.tree.remove(&format!("{PREFIX}{suffix}"));
    }
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| !s.world.lambda_exists(REGION, "hello")).await, "{:?}", sim.history(PREFIX));
    assert!(sim.world.lambda_mappings().is_empty());
    assert!(sim.world.lambda_targets(TG).is_empty(), "the alias is no longer a target of {TG}");
    assert!(sim.run_until(MINUTES, |s| s.store.app(&Sim::key(PREFIX)).unwrap().is_none()).await, "the app is forgotten");
}

/// Issue 12 item 4: a change to any configuration field deploys; before, a version matching on 7
/// fields was reused and the deployment reported success with the old network.
#[tokio::test(start_paused = true)]
async fn a_network_and_tracing_change_is_published_as_a_new_version_that_holds_them() {
    let mut sim = Sim::new();
    first_deployment(&mut sim).await;
    sim.tree.insert(
        &format!("{PREFIX}_lambdadef.json"),
        r#"{"FunctionName": "hello", "Runtime": "python3.12", "Handler": "app.handler",
  "Role": "arn:aws:iam::123456789012:role/hello", "Code": {"ZipFile": "djE="},
  "Environment": {"Variables": {"MODE": "ok"}},
  "VpcConfig": {"SubnetIds": ["subnet-2", "subnet-1"], "SecurityGroupIds": ["sg-9"]},
  "TracingConfig": {"Mode": "Active"}, "EphemeralStorage": {"Size": 2048}}"#,
    );
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| on_version(s, "2")).await, "{:?}", sim.history(PREFIX));
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    let live = sim.world.lambda_config(REGION, "hello", "2").expect("version 2");
    assert_eq!(live["VpcConfig"]["SubnetIds"], serde_json::json!(["subnet-1", "subnet-2"]));
    assert_eq!(live["TracingConfig"], serde_json::json!({"Mode": "Active"}));
    assert_eq!(live["EphemeralStorage"], serde_json::json!({"Size": 2048}));
    let old = sim.world.lambda_config(REGION, "hello", "1").expect("version 1");
    assert!(!old.contains_key("VpcConfig"), "version 1 keeps what it was published with: {old:?}");
    assert_eq!(old["TracingConfig"], serde_json::json!({"Mode": "PassThrough"}), "Lambda's default");
}

#[tokio::test(start_paused = true)]
async fn a_gate_before_the_canary_holds_the_alias_until_approved() {
    let gated = r#"{"alias": "live", "trafficShiftingConfig": {"type": "CANARY", "percent": 20, "waitInterval": 30,
      "approval": {"before": [20], "timeout": "1h"}},
      "alarms": {"alarmNames": ["hello-errors"]}, "readinessCheck": {"waitInterval": 2, "maxRetries": 10}}"#;
    let mut sim = Sim::new();
    sim.world.set_alarm("hello-errors", "OK");
    add_function(&mut sim, "djE=", "ok", gated);
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| on_version(s, "1")).await, "{:?}", sim.history(PREFIX));
    add_function(&mut sim, "djI=", "ok", gated);
    sim.commit();
    let waiting = |s: &Sim| s.store.record(&Sim::key(PREFIX)).unwrap().is_some_and(|r| r.awaiting_approval.is_some());
    assert!(sim.run_until(10 * MINUTES, waiting).await, "{:?}", sim.history(PREFIX));
    sim.run_until(20 * MINUTES, |_| false).await;
    assert_eq!(alias(&sim), Some(("1".to_string(), BTreeMap::new())), "no traffic on version 2 while waiting");
    sim.answer_gate(PREFIX, true, "dana", gitmoxi_deploy::commands::AnswerChannel::Api);
    assert!(sim.run_until(10 * MINUTES, |s| on_version(s, "2")).await, "{:?}", sim.history(PREFIX));
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    assert!(sim.history(PREFIX).iter().any(|h| h.starts_with("approved by dana via api before 20 %")), "{:?}", sim.history(PREFIX));
}

/// Issue 25: an `afterShift` Lambda hook runs once the new version has all the traffic; one that
/// raises rolls the alias back, naming the error its log shows; one that returns lets the
/// deployment through. The event carries the deployment's facts.
#[tokio::test(start_paused = true)]
async fn a_lambda_hook_that_raises_rolls_the_alias_back_naming_the_error_and_one_that_returns_lets_it_through() {
    let mut sim = Sim::new();
    for name in ["verify-ok", "verify-fail"] {
        sim.tree.insert(
            &format!("fn/{name}_lambdadef.json"),
            &format!(
                r#"{{"FunctionName": "{name}", "Runtime": "python3.12", "Handler": "app.handler",
  "Role": "arn:aws:iam::123456789012:role/hello", "Code": {{"ZipFile": "djE="}}}}"#
            ),
        );
        sim.tree.insert(&format!("fn/{name}_lambdadepdef.json"), r#"{"alias": "live"}"#);
    }
    first_deployment(&mut sim).await;
    let hooked = |function: &str| {
        format!(
            r#"{{"alias": "live", "trafficShiftingConfig": {{"type": "CANARY", "percent": 20, "waitInterval": 30}},
  "readinessCheck": {{"waitInterval": 2, "maxRetries": 10}},
  "hooks": {{"afterShift": {{"lambda": {{"functionName": "{function}", "payload": {{"path": "/health"}}}}, "timeout": 30}}}}}}"#
        )
    };
    add_function(&mut sim, "djI=", "ok", &hooked("verify-fail"));
    sim.commit();
    assert!(
        sim.run_until(10 * MINUTES, |s| s.idle(PREFIX) && s.outcome(PREFIX) == Some(Outcome::RolledBack)).await,
        "{:?}",
        sim.history(PREFIX)
    );
    let record = sim.last_deployment(PREFIX);
    assert_eq!(
        record.cause,
        Some(FailureCause::HookFailed {
            hook: "afterShift".into(),
            detail: "FunctionError Unhandled — [ERROR] AssertionError: verify-fail: green answered 503 on /health".into()
        })
    );
    assert!(on_version(&sim, "1"), "the alias is back on the old version: {:?}", alias(&sim));
    let invocations = sim.world.lambda_invocations();
    assert_eq!(invocations.len(), 1, "one invocation: {invocations:?}");
    let (function, event) = &invocations[0];
    assert_eq!(function, "verify-fail");
    assert_eq!((event["path"].as_str(), event["gitmoxi"]["hook"].as_str()), (Some("/health"), Some("afterShift")));
    assert_eq!((event["gitmoxi"]["newVersion"].as_str(), event["gitmoxi"]["previousVersion"].as_str()), (Some("2"), Some("1")));

    add_function(&mut sim, "djM=", "ok", &hooked("verify-ok"));
    sim.commit();
    assert!(
        sim.run_until(10 * MINUTES, |s| s.idle(PREFIX) && s.outcome(PREFIX) == Some(Outcome::Succeeded)).await,
        "{:?}",
        sim.history(PREFIX)
    );
    assert!(alias(&sim).is_some_and(|(v, extra)| v != "1" && extra.is_empty()), "{:?}", alias(&sim));
    let history = sim.history(PREFIX).join("\n");
    assert!(history.contains("hook afterShift succeeded"), "{history}");
}

/// Issue 25: `steps` on a Lambda alias — 10 % judged by the analysis (CloudWatch in the fake
/// world: the new version's error rate), a person's approval, then 50 % and 100 %; the alias never
/// passes a step before its gate is answered, and the run is kept with its step.
#[tokio::test(start_paused = true)]
async fn steps_on_an_alias_are_judged_gated_and_shifted_in_order() {
    let stepped = r#"{"alias": "live", "readinessCheck": {"waitInterval": 2, "maxRetries": 10},
      "trafficShiftingConfig": {"waitInterval": 30, "steps": [{"weight": 10, "analysis": true}, {"approval": true}, {"weight": 50}, {"weight": 100}]},
      "analysis": {"window": 120, "duringBake": false, "checks": [{"name": "error rate", "unit": "%", "max": 5, "minSamples": 3,
        "metric": {"namespace": "Hello", "metricName": "ErrorRate", "dimensions": {"Version": "{{ green }}"}, "stat": "Average", "period": 10}}]}}"#;
    let mut sim = Sim::new();
    add_function(&mut sim, "djE=", "ok", stepped);
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| on_version(s, "1")).await, "{:?}", sim.history(PREFIX));
    // version 2 errs 1 % of the time: data for the minutes the analysis reads
    for i in 0..60u64 {
        sim.world.put_metric("Hello", "ErrorRate", &[("Version", "2")], std::time::Duration::from_secs(i * 10), 1.0);
    }
    add_function(&mut sim, "djI=", "ok", stepped);
    sim.commit();
    let waiting = |s: &Sim| s.store.record(&Sim::key(PREFIX)).unwrap().is_some_and(|r| r.awaiting_approval.is_some());
    assert!(sim.run_until(10 * MINUTES, waiting).await, "{:?}", sim.history(PREFIX));
    assert_eq!(alias(&sim), Some(("1".to_string(), BTreeMap::from([("2".to_string(), 0.1)]))), "10 % while the gate waits");
    let record = sim.store.record(&Sim::key(PREFIX)).unwrap().expect("in flight");
    let runs = &record.analysis.as_ref().expect("analysis").runs;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!((runs[0].step.as_str(), runs[0].checks[0].message.as_str()), ("10 %", "error rate green 1 % within max 5 %"));
    assert_eq!(record.awaiting_approval.as_ref().map(|a| a.gate.as_str()), Some("before 50 %"));
    sim.answer_gate(PREFIX, true, "dana", gitmoxi_deploy::commands::AnswerChannel::Api);
    assert!(sim.run_until(10 * MINUTES, |s| on_version(s, "2")).await, "{:?}", sim.history(PREFIX));
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    let history = sim.history(PREFIX).join("\n");
    for line in
        ["alias live: 10 % on version 2", "analysis at 10 %: pass", "approved by dana via api before 50 %", "alias live: 50 % on version 2"]
    {
        assert!(history.contains(line), "{line}: {history}");
    }
}
