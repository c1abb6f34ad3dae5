//! ECS's own strategies against moto with the project's scheduler extension (which models service
//! deployments, stages, listener-rule weights, hooks and rollbacks as the ECS guide describes;
//! a "minute" lasts a second): the real SDK adapters, controller, CLI and Git repository.

use crate::moto::{synced, Moto, Server};
use crate::support::TestRepo;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const PREFIX: &str = "prod/web/web";

/// A native app on the ALB of `infra_with_alb`: production rule `api_rule_arn`, target groups
/// web-a (the service's) and web-b (the alternate).
fn write_app(repo: &TestRepo, image: &str, deployment_configuration: &str, depdef: &str) {
    repo.write(
        &format!("{PREFIX}_svcdef.json"),
        &format!(
            r#"{{"serviceName": "web", "cluster": "{{{{ cluster_name }}}}", "desiredCount": 2, "launchType": "FARGATE",
  "deploymentConfiguration": {deployment_configuration},
  "networkConfiguration": {{"awsvpcConfiguration": {{"subnets": {{{{ private_subnets | tojson }}}}, "securityGroups": ["{{{{ security_group_id }}}}"]}}}},
  "loadBalancers": [{{"targetGroupArn": "{{{{ target_group_arns['web-a'] }}}}", "containerName": "web", "containerPort": 80,
    "advancedConfiguration": {{"alternateTargetGroupArn": "{{{{ target_group_arns['web-b'] }}}}",
      "productionListenerRule": "{{{{ api_rule_arn }}}}", "roleArn": "arn:aws:iam::123456789012:role/ecs-infrastructure"}}}}]}}
"#
        ),
    );
    repo.write(
        &format!("{PREFIX}_taskdef.json"),
        r#"{"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
  "containerDefinitions": [{"name": "web", "image": "{{ image }}", "memory": 512, "portMappings": [{"containerPort": 80}]}]}
"#,
    );
    repo.write(&format!("{PREFIX}_depdef.json"), depdef);
    repo.write(
        &format!("{PREFIX}_input.json"),
        &format!(r#"{{"ref": {{"file": "infra/terraform_output.json", "type": "TERRAFORM"}}, "image": "{image}"}}"#),
    );
}

const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 30}}"#;

fn outputs(json: &str) -> (String, String, String) {
    let v: Value = serde_json::from_str(json).expect("outputs");
    let tg = |name: &str| v["target_group_arns"]["value"][name].as_str().expect("tg").to_string();
    (tg("web-a"), tg("web-b"), v["api_rule_arn"]["value"].as_str().expect("rule").to_string())
}

/// (target group, weight) of the rule's forward action.
async fn rule_weights(elb: &aws_sdk_elasticloadbalancingv2::Client, rule: &str) -> Vec<(String, i32)> {
    let r = elb.describe_rules().rule_arns(rule).send().await.expect("describe rules");
    let action = &r.rules()[0].actions()[0];
    match action.forward_config.as_ref().map(|c| c.target_groups()).filter(|t| !t.is_empty()) {
        Some(groups) => groups.iter().map(|t| (t.target_group_arn().unwrap_or_default().to_string(), t.weight().unwrap_or(1))).collect(),
        None => action.target_group_arn.clone().map(|tg| vec![(tg, 100)]).unwrap_or_default(),
    }
}

async fn running(moto: &Moto) -> String {
    let ecs = moto.ecs().await;
    let svc = ecs.describe_services().cluster("prod").services("web").send().await.unwrap();
    svc.services()[0].task_definition().unwrap().rsplit('/').next().unwrap().to_string()
}

/// Synced by a deployment other than `before`.
fn synced_after(app: &Value, before: &Value) -> bool {
    synced(app) && app["last_deployment"] != *before
}

fn timeline(app: &Value) -> Vec<String> {
    app["history"].as_array().map(|h| h.iter().filter_map(|e| e["message"].as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn cli(server: &Server, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gitmoxi")).args(args).args(["--server", &server.api]).output().expect("gitmoxi runs");
    assert!(out.status.success(), "gitmoxi {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_native_linear_moves_the_production_rule_step_by_step_and_succeeds() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    let infra = moto.infra_with_alb("prod");
    let (web_a, web_b, rule) = outputs(&infra);
    repo.write("infra/terraform_output.json", &infra);
    let linear =
        r#"{"strategy": "LINEAR", "bakeTimeInMinutes": 2, "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 3}}"#;
    write_app(&repo, "nginx:1", linear, DEPDEF);
    repo.commit("web, ECS linear");
    // drift is compared every second: what ECS owns (rule weights, the production group) is no drift
    let server = Server::start_full(&moto, &repo, 25, Duration::from_millis(500), None, (None, None), Duration::from_secs(1)).await;
    let first = server.wait_app(PREFIX, Duration::from_secs(90), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    let production = |weights: &[(String, i32)]| weights.iter().find(|(_, w)| *w == 100).map(|(tg, _)| tg.clone());
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&moto.sdk_config().await);
    let blue = production(&rule_weights(&elb, &rule).await).expect("one group serves production");
    let green = if blue == web_a { web_b.clone() } else { web_a.clone() };

    write_app(&repo, "nginx:2", linear, DEPDEF);
    repo.commit("web v2");
    // watch the rule as an SRE would while ECS moves production to green
    let mut seen = Vec::new();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let w = rule_weights(&elb, &rule).await;
        let g = w.iter().find(|(tg, _)| *tg == green).map_or(0, |(_, w)| *w);
        if seen.last() != Some(&g) {
            seen.push(g);
        }
        if g == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for step in [25, 50, 75, 100] {
        assert!(seen.contains(&step), "the production rule gave green {step} % at some point: {seen:?}");
    }
    let app = server.wait_app(PREFIX, Duration::from_secs(60), |a| synced_after(a, &first["last_deployment"])).await;
    assert_eq!(app["last_outcome"], "succeeded", "{app:#}");
    assert_eq!(running(&moto).await, "web:2");
    assert_eq!(production(&rule_weights(&elb, &rule).await), Some(green.clone()), "production stays on green");
    let lines = timeline(&app);
    for step in [25, 50, 75, 100] {
        let line = format!("ECS shifted production traffic: {step} % to the new revision");
        assert!(lines.contains(&line), "{line} missing: {lines:?}");
    }
    assert!(lines.iter().any(|l| l.starts_with("bake: both revisions run")), "{lines:?}");
    let mutations: Vec<String> = server.proxy.mutations().into_keys().collect();
    assert!(
        !mutations.iter().any(|m| m.contains("ModifyRule") || m.contains("StopServiceDeployment")),
        "ECS moved traffic, not gitmoxi: {mutations:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_pause_hook_is_approved_then_rejected_through_the_cli() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra_with_alb("prod"));
    let paused = r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1,
      "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"], "timeoutConfiguration": {"timeoutInMinutes": 600}}]}"#;
    write_app(&repo, "nginx:1", paused, DEPDEF);
    repo.commit("web behind a gate");
    let server = Server::start(&moto, &repo, 25).await;
    let waiting = |a: &Value| a["status"] == "WaitingForApproval";
    let app = server.wait_app(PREFIX, Duration::from_secs(60), waiting).await;
    assert_eq!(app["deployment"]["awaiting_approval"]["stage"], "POST_SCALE_UP", "the API says where it waits: {app:#}");
    let status = cli(&server, &["status"]);
    assert!(status.lines().any(|l| l.starts_with(PREFIX) && l.contains("WaitingForApproval")), "{status}");
    let said = cli(&server, &["approve", PREFIX]);
    assert!(said.contains("approved by") && said.contains("POST_SCALE_UP"), "{said}");
    let first = server.wait_app(PREFIX, Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    assert_eq!(running(&moto).await, "web:1");

    write_app(&repo, "nginx:2", paused, DEPDEF);
    repo.commit("web v2 behind the gate");
    server.wait_app(PREFIX, Duration::from_secs(60), waiting).await;
    // a gate is not the budget's: well past the 30 s stability timeout, still waiting
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert_eq!(server.app(PREFIX).await.unwrap()["status"], "WaitingForApproval");
    let said = cli(&server, &["reject", PREFIX]);
    assert!(said.contains("rejected by") && said.contains("rolls back"), "{said}");
    let app = server.wait_app(PREFIX, Duration::from_secs(60), |a| a["last_outcome"] == "rolled_back").await;
    assert!(app["last_cause"].as_str().unwrap().contains("rejected at an approval gate by"), "{app:#}");
    let id = app["last_deployment"].as_str().unwrap();
    let record: Value = reqwest::get(format!("{}/api/v2/deployments/{id}", server.api)).await.unwrap().json().await.unwrap();
    let answers = record["approvals"].as_array().unwrap();
    assert!(answers.len() == 1 && answers[0]["approve"] == false && answers[0]["via"] == "cli", "{record:#}");
    assert_eq!(running(&moto).await, "web:1", "ECS put blue back");
    assert_ne!(app["last_deployment"], first["last_deployment"]);
    // answering when nothing waits is refused with the reason
    let out = Command::new(env!("CARGO_BIN_EXE_gitmoxi")).args(["approve", PREFIX, "--server", &server.api]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("waits at no approval gate"), "{}", String::from_utf8_lossy(&out.stderr));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_failing_hook_and_a_gitmoxi_alarm_end_in_ecs_rollbacks() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra_with_alb("prod"));
    let canary =
        r#"{"strategy": "CANARY", "bakeTimeInMinutes": 1, "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 600}}"#;
    let depdef = r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 30}, "alarms": {"alarmNames": ["{{ alarm_name }}"]}}"#;
    let quick = r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1}"#;
    write_app(&repo, "nginx:1", quick, depdef);
    repo.commit("web");
    let server = Server::start(&moto, &repo, 25).await;
    let first = server.wait_app(PREFIX, Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;

    // a Lambda hook that answers FAILED: ECS rolls back, gitmoxi says why
    let hooked = r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1, "lifecycleHooks": [{"targetType": "AWS_LAMBDA",
      "hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:validate-green-fail",
      "roleArn": "arn:aws:iam::123456789012:role/hooks", "lifecycleStages": ["POST_SCALE_UP"]}]}"#;
    write_app(&repo, "nginx:2", hooked, depdef);
    repo.commit("web v2 with a failing hook");
    let failed = server.wait_app(PREFIX, Duration::from_secs(60), |a| a["last_outcome"] == "rolled_back").await;
    let cause = failed["last_cause"].as_str().unwrap();
    assert!(cause.contains("ECS rolled its deployment back") && cause.contains("validate-green-fail returned FAILED"), "{cause}");
    assert_eq!(running(&moto).await, "web:1");

    // a gitmoxi alarm during the canary: gitmoxi asks ECS to roll back (no update on top)
    write_app(&repo, "nginx:3", canary, depdef);
    repo.commit("web v3 as a canary");
    server.wait_app(PREFIX, Duration::from_secs(60), |a| timeline(a).iter().any(|l| l.contains(": 10 % to the new revision"))).await;
    server.proxy.reset();
    let cw = aws_sdk_cloudwatch::Client::new(&moto.sdk_config().await);
    cw.set_alarm_state()
        .alarm_name("web-5xx")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .unwrap();
    let stopped = server
        .wait_app(PREFIX, Duration::from_secs(60), |a| {
            a["last_outcome"] == "rolled_back" && a["last_deployment"] != failed["last_deployment"]
        })
        .await;
    assert!(stopped["last_cause"].as_str().unwrap().contains("alarm fired: web-5xx"), "{stopped:#}");
    let mutations = server.proxy.mutations();
    assert_eq!(mutations.get("ecs:StopServiceDeployment"), Some(&1), "{mutations:?}");
    assert!(!mutations.contains_key("ecs:UpdateService"), "no update on top of ECS's deployment: {mutations:?}");
    assert_eq!(running(&moto).await, "web:1");
    assert_ne!(first["last_deployment"], stopped["last_deployment"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_newer_commit_stops_the_native_deployment_then_deploys_the_newest() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra_with_alb("prod"));
    let slow =
        r#"{"strategy": "LINEAR", "bakeTimeInMinutes": 1, "linearConfiguration": {"stepPercent": 20, "stepBakeTimeInMinutes": 600}}"#;
    let quick = r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1}"#;
    write_app(&repo, "nginx:1", quick, DEPDEF);
    repo.commit("web");
    let server = Server::start(&moto, &repo, 25).await;
    server.wait_app(PREFIX, Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    write_app(&repo, "nginx:2", slow, DEPDEF);
    repo.commit("web v2, slowly");
    server.wait_app(PREFIX, Duration::from_secs(60), |a| timeline(a).iter().any(|l| l.contains(": 20 % to the new revision"))).await;
    write_app(&repo, "nginx:3", quick, DEPDEF);
    repo.commit("web v3 supersedes it");
    let app = server
        .wait_app(PREFIX, Duration::from_secs(90), |a| {
            synced(a) && a["last_outcome"] == "succeeded" && timeline(a).iter().any(|l| l.contains("web:3"))
        })
        .await;
    assert_eq!(running(&moto).await, "web:3", "{app:#}");
    let lines = timeline(&app);
    assert!(lines.iter().any(|l| l.contains("asking ECS to roll its deployment back first")), "{lines:?}");
    assert_eq!(server.proxy.mutations().get("ecs:StopServiceDeployment"), Some(&1));
    server.stop().await;
}

/// Issue 25: ECS's LINEAR with `analysis` — gitmoxi adds a PAUSE hook before every production
/// step and answers it from CloudWatch: a slow green is rolled back by ECS at 50 % (the check and
/// its numbers are the cause), a healthy one goes on to 100 % — no human needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_native_linear_with_analysis_is_answered_continue_or_rollback_by_the_analysis() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    let infra = moto.infra_with_alb("prod");
    let (web_a, web_b, rule) = outputs(&infra);
    repo.write("infra/terraform_output.json", &infra);
    let linear =
        r#"{"strategy": "LINEAR", "bakeTimeInMinutes": 1, "linearConfiguration": {"stepPercent": 50, "stepBakeTimeInMinutes": 1}}"#;
    let with_analysis = |namespace: &str| {
        format!(
            r#"{{"stabilityCheck": {{"pollInterval": 1, "timeout": 60}},
  "analysis": {{"window": 300, "interval": 1, "checks": [{{"name": "p99 latency", "unit": "ms", "minSamples": 10, "compare": {{"tolerance": 25}},
    "metric": {{"namespace": "{namespace}", "metricName": "Latency{namespace}", "dimensions": {{"TargetGroup": "{{{{ green }}}}"}}, "stat": "p99", "period": 10}}}}]}}}}"#
        )
    };
    write_app(&repo, "nginx:1", linear, DEPDEF);
    repo.commit("web, ECS linear");
    let server = Server::start(&moto, &repo, 25).await;
    let first = server.wait_app(PREFIX, Duration::from_secs(90), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    let config = moto.sdk_config().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    let weights = rule_weights(&elb, &rule).await;
    let blue = weights.iter().find(|(_, w)| *w == 100).map(|(tg, _)| tg.clone()).expect("one group serves production");
    let green = if blue == web_a { web_b.clone() } else { web_a.clone() };

    // a slow green: ECS is told ROLLBACK at the pause before its second step
    crate::moto_analysis::put_series(&cw, "Nat1", &blue, 24, |i| 180.0 + f64::from(i % 5)).await;
    crate::moto_analysis::put_series(&cw, "Nat1", &green, 24, |i| 412.0 + f64::from(i % 5)).await;
    write_app(&repo, "nginx:2", linear, &with_analysis("Nat1"));
    repo.commit("web v2, slow");
    let app = server
        .wait_app(PREFIX, Duration::from_secs(90), |a| synced_after(a, &first["last_deployment"]) || a["last_outcome"] == "rolled_back")
        .await;
    let app = if app["last_outcome"] == "rolled_back" {
        app
    } else {
        server.wait_app(PREFIX, Duration::from_secs(60), |a| a["last_outcome"] == "rolled_back").await
    };
    let cause = app["last_cause"].as_str().expect("a cause");
    assert!(cause.starts_with("metric analysis failed: p99 latency: p99 latency green 414 ms vs blue 182 ms"), "{cause}");
    assert_eq!(running(&moto).await, "web:1", "ECS put blue back");
    let lines = timeline(&app);
    assert!(lines.iter().any(|l| l.contains("the analysis answers")), "{lines:?}");
    assert!(lines.iter().any(|l| l.ends_with("ECS rolls back (ROLLBACK)")), "{lines:?}");
    let second = app["last_deployment"].clone();

    // a healthy green: every pause is answered CONTINUE, ECS finishes
    crate::moto_analysis::put_series(&cw, "Nat2", &blue, 24, |i| 180.0 + f64::from(i % 5)).await;
    crate::moto_analysis::put_series(&cw, "Nat2", &green, 24, |i| 181.0 + f64::from(i % 6)).await;
    write_app(&repo, "nginx:3", linear, &with_analysis("Nat2"));
    repo.commit("web v3, healthy");
    let app = server.wait_app(PREFIX, Duration::from_secs(90), |a| synced_after(a, &second) && a["last_outcome"] == "succeeded").await;
    assert_eq!(running(&moto).await, "web:3");
    let lines = timeline(&app);
    assert!(lines.iter().any(|l| l.contains("analysis at 50 %: pass")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("ECS goes on (CONTINUE)")), "{lines:?}");
    server.stop().await;
}
