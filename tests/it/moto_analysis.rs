//! Metric analysis against moto (issue 25): the test writes each side's series with PutMetricData
//! (a healthy green, a slow green, too few samples), and gitmoxi reads them with GetMetricData at
//! every traffic step and the bake of a task-set blue/green deployment — moto's CloudWatch with
//! the percentiles and metric math `tests/moto/server.py` adds. What AWS ends up serving is
//! checked on the listener, and the verdicts through the API.

use crate::moto::{synced, Moto, Server};
use crate::moto_blue_green::{outputs, task_sets, write_app, Watch, PREFIX};
use crate::support::TestRepo;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The depdef: CANARY 50 % then 100 %, 1 s waits, and the analysis reading `namespace`. Each
/// scenario has its own namespace, and its metric names carry it too: moto 5.2.5 ignores the
/// namespace of a query with dimensions (AWS does not), so two scenarios' series would mix.
fn depdef(namespace: &str, extra: &str) -> String {
    format!(
        r#"{{"targetGroupArnPairs": [["{{{{ target_group_arns['web-a'] }}}}", "{{{{ target_group_arns['web-b'] }}}}"],
                         ["{{{{ target_group_arns['admin-c'] }}}}", "{{{{ target_group_arns['admin-d'] }}}}"]],
  "trafficShiftingConfig": {{"type": "CANARY", "percent": 50, "waitInterval": 1}},
  "stabilityCheck": {{"pollInterval": 1, "timeout": 60}},
  "analysis": {{"window": 300, "interval": 1, "consecutiveInconclusive": 2{extra}, "checks": [
    {{"name": "p99 latency", "unit": "ms", "minSamples": 10, "compare": {{"tolerance": 25, "confidence": 95}},
      "metric": {{"namespace": "{namespace}", "metricName": "Latency{namespace}", "dimensions": {{"TargetGroup": "{{{{ green }}}}"}}, "stat": "p99", "period": 10}}}},
    {{"name": "error rate", "unit": "%", "max": 5, "minSamples": 10,
      "expression": "100 * FILL(errors, 0) / requests",
      "metrics": {{"errors": {{"namespace": "{namespace}", "metricName": "Errors{namespace}", "dimensions": {{"TargetGroup": "{{{{ green }}}}"}}, "stat": "Sum", "period": 10}},
                  "requests": {{"namespace": "{namespace}", "metricName": "Requests{namespace}", "dimensions": {{"TargetGroup": "{{{{ green }}}}"}}, "stat": "Sum", "period": 10}}}}}}
  ]}}}}
"#
    )
}

/// `targetgroup/name/id`: the ALB dimension of a target group ARN.
pub(crate) fn dimension(arn: &str) -> String {
    format!("targetgroup/{}", arn.split(":targetgroup/").nth(1).expect("a target group ARN"))
}

/// Puts `samples` periods of 10 s (ending 10 s ago; 24 fit a 300 s window for 50 s after) of latency `latency(i)` ms, 100 requests
/// and an error every fourth period, for the target group `arn`.
pub(crate) async fn put_series(cw: &aws_sdk_cloudwatch::Client, namespace: &str, arn: &str, samples: u32, latency: impl Fn(u32) -> f64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    let dims = Dimension::builder().name("TargetGroup").value(dimension(arn)).build();
    let mut data = Vec::new();
    for i in 0..samples {
        let at = aws_smithy_types::DateTime::from_secs(now - 10 - 10 * i64::from(i));
        let datum =
            |name: &str, value: f64| MetricDatum::builder().metric_name(name).dimensions(dims.clone()).timestamp(at).value(value).build();
        data.push(datum(&format!("Latency{namespace}"), latency(i)));
        data.push(datum(&format!("Requests{namespace}"), 100.0));
        if i % 4 == 0 {
            data.push(datum(&format!("Errors{namespace}"), 1.0));
        }
    }
    cw.put_metric_data().namespace(namespace).set_metric_data(Some(data)).send().await.expect("put metric data");
}

/// The newest deployment of the app, whole (timeline and analysis).
async fn newest_deployment(server: &Server) -> Value {
    let http = reqwest::Client::new();
    let list: Value =
        http.get(format!("{}/api/v2/deployments?app={PREFIX}&limit=1", server.api)).send().await.expect("list").json().await.expect("json");
    let id = list["deployments"][0]["id"].as_str().expect("a deployment").to_string();
    http.get(format!("{}/api/v2/deployments/{id}", server.api)).send().await.expect("get").json().await.expect("json")
}

fn steps(deployment: &Value) -> Vec<(String, String)> {
    deployment["analysis"]["runs"]
        .as_array()
        .map(|runs| {
            runs.iter().map(|r| (r["step"].as_str().unwrap_or("").to_string(), r["verdict"].as_str().unwrap_or("").to_string())).collect()
        })
        .unwrap_or_default()
}

/// Moto with an ALB, a repository holding the blue/green app on nginx:1 (with `depdef` when
/// given), and gitmoxi serving it once its first deployment succeeded.
struct Deployed {
    _moto: Moto,
    repo: TestRepo,
    server: Server,
    tgs: std::collections::BTreeMap<String, String>,
    watch: Watch,
    config: aws_config::SdkConfig,
}

async fn deployed(depdef: Option<String>) -> Deployed {
    let moto = Moto::start().await;
    let infra = moto.infra_with_alb("prod");
    let (tgs, listeners, rule) = outputs(&infra);
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &infra);
    write_app(&repo, "nginx:1");
    if let Some(d) = depdef {
        repo.write(&format!("{PREFIX}_depdef.json"), &d);
    }
    repo.commit("web: blue/green");
    let server = Server::start(&moto, &repo, 25).await;
    let config = moto.sdk_config().await;
    let watch = Watch { elb: aws_sdk_elasticloadbalancingv2::Client::new(&config), listener: listeners["80"].clone(), rule };
    server.wait_app(PREFIX, Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    Deployed { _moto: moto, repo, server, tgs, watch, config }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_analysis_promotes_a_healthy_green_rolls_back_a_slow_one_naming_the_numbers_and_an_inconclusive_one() {
    let Deployed { _moto, repo, server, tgs, watch, config } = deployed(Some(depdef("Web0", ""))).await;
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    let ecs = aws_sdk_ecs::Client::new(&config);

    // a healthy green (web-b): both sides near 180 ms, 1 % errors → every step passes, promoted
    put_series(&cw, "Web1", &tgs["web-a"], 24, |i| 180.0 + f64::from(i % 5)).await;
    put_series(&cw, "Web1", &tgs["web-b"], 24, |i| 181.0 + f64::from(i % 6)).await;
    write_app(&repo, "nginx:2");
    repo.write(&format!("{PREFIX}_depdef.json"), &depdef("Web1", ""));
    let second = repo.commit("web: nginx 2");
    let app = server.wait_app(PREFIX, Duration::from_secs(90), |a| synced(a) && a["applied_commit"] == second.as_str()).await;
    assert_eq!(app["last_outcome"], "succeeded", "{app:#}");
    let d = newest_deployment(&server).await;
    let pass = |s: &str| (s.to_string(), "pass".to_string());
    assert_eq!(steps(&d), vec![pass("50 %"), pass("100 %"), pass("bake")], "{:#}", d["analysis"]);
    assert_eq!(d["analysis"]["sides"]["green"], dimension(&tgs["web-b"]));
    let run = &d["analysis"]["runs"][0];
    assert_eq!(run["checks"][0]["green"]["samples"], 24, "{run:#}");
    assert!(run["checks"][0]["p_value"].as_f64().is_some(), "{run:#}");
    assert_eq!(run["checks"][1]["message"], "error rate green 0.25 % within max 5 %", "metric math through CloudWatch: {run:#}");
    assert_eq!(watch.green(&tgs["web-b"]).await, 100);

    // a slow green (web-a this time): p99 412 ms against 180 → rolled back at 50 %, the cause names it
    put_series(&cw, "Web2", &tgs["web-b"], 24, |i| 180.0 + f64::from(i % 5)).await;
    put_series(&cw, "Web2", &tgs["web-a"], 24, |i| 412.0 + f64::from(i % 5)).await;
    write_app(&repo, "nginx:3");
    repo.write(&format!("{PREFIX}_depdef.json"), &depdef("Web2", ""));
    repo.commit("web: nginx 3, slow");
    let app = server.wait_app(PREFIX, Duration::from_secs(90), |a| a["last_outcome"] == "rolled_back").await;
    let cause = app["last_cause"].as_str().expect("a cause");
    assert!(
        cause.starts_with(
            "metric analysis failed: p99 latency: p99 latency green 414 ms vs blue 182 ms (+127 %, tolerance 25 %, p < 0.001)"
        ),
        "{cause}"
    );
    let d = newest_deployment(&server).await;
    assert_eq!(steps(&d), vec![("50 %".to_string(), "fail".to_string())]);
    // `gitmoxi deployments` says it in a column
    let api = server.api.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gitmoxi"))
            .args(["deployments", "--app", PREFIX, "--server", &api])
            .output()
            .expect("gitmoxi runs")
    })
    .await
    .expect("joined");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().next().is_some_and(|h| h.contains("ANALYSIS")), "{table}");
    assert!(table.contains("50 %: fail (p99 latency), 1 run"), "{table}");
    assert_eq!(watch.green(&tgs["web-b"]).await, 100, "traffic back on blue");
    let sets = task_sets(&ecs).await;
    assert_eq!(sets.len(), 1, "green deleted: {sets:?}");
    assert!(sets[0].task_definition().unwrap().ends_with("web:2"));

    // too few samples on green, onInconclusive rollback: two inconclusive runs, then rolled back
    put_series(&cw, "Web3", &tgs["web-b"], 24, |i| 180.0 + f64::from(i % 5)).await;
    put_series(&cw, "Web3", &tgs["web-a"], 3, |_| 181.0).await;
    write_app(&repo, "nginx:4");
    repo.write(&format!("{PREFIX}_depdef.json"), &depdef("Web3", r#", "onInconclusive": "rollback""#));
    repo.commit("web: nginx 4, no traffic yet");
    let third = app["last_deployment"].clone();
    let app =
        server.wait_app(PREFIX, Duration::from_secs(90), |a| a["last_outcome"] == "rolled_back" && a["last_deployment"] != third).await;
    assert!(app["last_cause"].as_str().expect("a cause").starts_with("metric analysis inconclusive after 2 runs"), "{app:#}");
    let d = newest_deployment(&server).await;
    let inconclusive = ("50 %".to_string(), "inconclusive".to_string());
    assert_eq!(steps(&d), vec![inconclusive.clone(), inconclusive]);
    assert!(d["analysis"]["runs"][0]["checks"][0]["message"].as_str().unwrap().contains("too few samples (green 3, blue 24"), "{d:#}");
    assert_eq!(watch.green(&tgs["web-b"]).await, 100);
    server.stop().await;
}

/// Hooks against moto (issue 25): a `beforeShift` task hook runs in the service's network
/// (RunTask, the moto scheduler ends it with the exit code its image names); one that exits 1
/// rolls the deployment back before any traffic moves, naming the exit code; one that exits 0
/// lets the deployment through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_before_shift_hook_task_that_exits_1_rolls_back_and_one_that_exits_0_lets_traffic_move() {
    let Deployed { _moto, repo, server, tgs, watch, config } = deployed(None).await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    // the checks: smoke:1 exits 1, smoke:2 exits 0
    for image in ["smoke:exit-1", "smoke:exit-0"] {
        let logs = aws_sdk_ecs::types::LogConfiguration::builder()
            .log_driver(aws_sdk_ecs::types::LogDriver::Awslogs)
            .options("awslogs-group", "/ecs/smoke")
            .options("awslogs-stream-prefix", "hooks")
            .build()
            .expect("log configuration");
        let container = aws_sdk_ecs::types::ContainerDefinition::builder()
            .name("smoke")
            .image(image)
            .memory(128)
            .essential(true)
            .log_configuration(logs)
            .build();
        ecs.register_task_definition()
            .family("smoke")
            .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
            .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .container_definitions(container)
            .send()
            .await
            .expect("register the smoke check");
    }
    let depdef = std::fs::read_to_string(repo.path().join(format!("{PREFIX}_depdef.json"))).unwrap();
    let with_hook = |td: &str| {
        depdef.replacen('{', &format!(r#"{{"hooks": {{"beforeShift": {{"task": {{"taskDefinition": "{td}"}}, "timeout": 60}}}}, "#), 1)
    };

    write_app(&repo, "nginx:2");
    repo.write(&format!("{PREFIX}_depdef.json"), &with_hook("smoke:1"));
    repo.commit("web: nginx 2, smoke check that fails");
    let app = server.wait_app(PREFIX, Duration::from_secs(90), |a| a["last_outcome"] == "rolled_back").await;
    let cause = app["last_cause"].as_str().expect("a cause");
    assert!(cause.starts_with("hook beforeShift failed: task ") && cause.contains("(smoke: exit 1)"), "{cause}");
    assert!(cause.contains("— logs: /ecs/smoke hooks/smoke/"), "where the check's logs are: {cause}");
    assert_eq!(watch.green(&tgs["web-b"]).await, 0, "no traffic moved");
    let hooks = ecs
        .list_tasks()
        .cluster("prod")
        .started_by(format!("gitmoxi-hook/{}/beforeShift", app["last_deployment"].as_str().unwrap()))
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert_eq!(hooks.task_arns().len(), 1, "one task ran the check");

    write_app(&repo, "nginx:3");
    repo.write(&format!("{PREFIX}_depdef.json"), &with_hook("smoke:2"));
    let third = repo.commit("web: nginx 3, smoke check that passes");
    let app = server.wait_app(PREFIX, Duration::from_secs(90), |a| synced(a) && a["applied_commit"] == third.as_str()).await;
    assert_eq!(app["last_outcome"], "succeeded", "{app:#}");
    assert_eq!(watch.green(&tgs["web-b"]).await, 100);
    let d = newest_deployment(&server).await;
    let timeline = d["timeline"].to_string();
    assert!(timeline.contains("hook beforeShift succeeded: task "), "{timeline}");
    server.stop().await;
}

/// Issue 25: `steps` on a task set against moto — green starts at half the desired count and takes
/// 25 % (judged by the analysis), a person approves, green is scaled to all of it before 100 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_steps_start_green_at_half_its_count_judge_25_percent_wait_for_a_person_then_scale_up_before_100() {
    let Deployed { _moto, repo, server, tgs, watch, config } = deployed(None).await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    put_series(&cw, "Steps", &tgs["web-a"], 24, |i| 180.0 + f64::from(i % 5)).await;
    put_series(&cw, "Steps", &tgs["web-b"], 24, |i| 181.0 + f64::from(i % 6)).await;
    let stepped = depdef("Steps", "").replace(
        r#""trafficShiftingConfig": {"type": "CANARY", "percent": 50, "waitInterval": 1}"#,
        r#""trafficShiftingConfig": {"waitInterval": 1, "approval": {"timeout": 600}, "steps": [
            {"weight": 25, "scale": 50, "analysis": true}, {"approval": true}, {"weight": 100}]}"#,
    );
    assert_ne!(stepped, depdef("Steps", ""));
    write_app(&repo, "nginx:2");
    repo.write(&format!("{PREFIX}_depdef.json"), &stepped);
    repo.commit("web: nginx 2 in steps");
    let app = server.wait_app(PREFIX, Duration::from_secs(90), |a| a["status"] == "WaitingForApproval").await;
    assert_eq!(watch.green(&tgs["web-b"]).await, 25, "25 % while the gate waits: {app:#}");
    let sets = task_sets(&ecs).await;
    let green = sets.iter().find(|s| s.status() == Some("ACTIVE")).expect("green");
    assert_eq!(green.scale().map(|s| s.value()), Some(50.0), "green runs half the desired count: {sets:?}");
    let d = newest_deployment(&server).await;
    assert_eq!(steps(&d), vec![("25 %".to_string(), "pass".to_string())]);
    assert_eq!(d["awaiting_approval"]["gate"], "before 100 %", "{d:#}");
    let answered = reqwest::Client::new()
        .post(format!("{}/api/v2/commands", server.api))
        .json(&serde_json::json!({"command": "approve", "app": PREFIX, "by": "dana"}))
        .send()
        .await
        .expect("approve");
    assert_eq!(answered.status().as_u16(), 200);
    let app = server.wait_app(PREFIX, Duration::from_secs(90), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    assert_eq!(watch.green(&tgs["web-b"]).await, 100, "{app:#}");
    let sets = task_sets(&ecs).await;
    assert_eq!(sets.len(), 1, "blue deleted: {sets:?}");
    assert_eq!(sets[0].scale().map(|s| s.value()), Some(100.0), "scaled to all of it before 100 %");
    let d = newest_deployment(&server).await;
    let timeline = d["timeline"].to_string();
    assert!(timeline.contains("scaling green from 50 % to 100 % of the desired count before it takes 100 % of the traffic"), "{timeline}");
    assert!(d["approvals"][0]["by"] == "dana" && d["approvals"][0]["gate"] == "before 100 %", "{d:#}");
}
