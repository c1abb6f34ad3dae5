//! Blue/green against moto (with the project's task-set scheduler): a real ALB with two listeners,
//! a rule and two target-group pairs, the real SDK adapters, controller and Git repository. The
//! test watches DescribeListeners/DescribeRules while gitmoxi shifts, like an SRE would.

use crate::moto::{synced, Moto, Server};
use crate::support::TestRepo;
use aws_sdk_elasticloadbalancingv2::types::Action;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const PREFIX: &str = "prod/web/web";

pub fn write_app(repo: &TestRepo, image: &str) {
    repo.write(
        &format!("{PREFIX}_svcdef.json"),
        r#"{"serviceName": "web", "cluster": "{{ cluster_name }}", "desiredCount": 2, "deploymentController": {"type": "EXTERNAL"},
  "launchType": "FARGATE",
  "networkConfiguration": {"awsvpcConfiguration": {"subnets": {{ private_subnets | tojson }}, "securityGroups": ["{{ security_group_id }}"]}},
  "loadBalancers": [{"targetGroupArn": "{{ target_group_arns['web-a'] }}", "containerName": "web", "containerPort": 80},
                    {"targetGroupArn": "{{ target_group_arns['admin-c'] }}", "containerName": "web", "containerPort": 8080}]}
"#,
    );
    repo.write(
        &format!("{PREFIX}_taskdef.json"),
        r#"{"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
  "containerDefinitions": [{"name": "web", "image": "{{ image }}", "memory": 512,
    "portMappings": [{"containerPort": 80}, {"containerPort": 8080}]}]}
"#,
    );
    repo.write(
        &format!("{PREFIX}_depdef.json"),
        r#"{"targetGroupArnPairs": [["{{ target_group_arns['web-a'] }}", "{{ target_group_arns['web-b'] }}"],
                         ["{{ target_group_arns['admin-c'] }}", "{{ target_group_arns['admin-d'] }}"]],
  "trafficShiftingConfig": {"type": "LINEAR", "percent": 20, "waitInterval": 1},
  "alarms": {"alarmNames": ["{{ alarm_name }}"]},
  "stabilityCheck": {"pollInterval": 1, "timeout": 60}}
"#,
    );
    repo.write(
        &format!("{PREFIX}_input.json"),
        &format!(r#"{{"ref": {{"file": "infra/terraform_output.json", "type": "TERRAFORM"}}, "image": "{image}"}}"#),
    );
}

pub fn outputs(json: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>, String) {
    let v: Value = serde_json::from_str(json).expect("outputs");
    let map = |name: &str| -> BTreeMap<String, String> {
        v[name]["value"].as_object().expect("map").iter().map(|(k, v)| (k.clone(), v.as_str().expect("arn").to_string())).collect()
    };
    (map("target_group_arns"), map("listener_arns"), v["api_rule_arn"]["value"].as_str().expect("rule").to_string())
}

/// (target group, weight %) of a forward action.
fn weights(actions: &[Action]) -> Split {
    let Some(forward) = actions.iter().find(|a| a.r#type.as_ref().is_some_and(|t| t.as_str() == "forward")) else { return Vec::new() };
    match forward.forward_config.as_ref().map(|c| c.target_groups()).filter(|t| !t.is_empty()) {
        Some(tuples) => tuples.iter().map(|t| (t.target_group_arn().unwrap_or_default().to_string(), t.weight().unwrap_or(1))).collect(),
        None => forward.target_group_arn.clone().map(|tg| vec![(tg, 100)]).unwrap_or_default(),
    }
}

/// What AWS's load balancer forwards: one listener's default action and one rule.
pub struct Watch {
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub listener: String,
    pub rule: String,
}

impl Watch {
    /// (listener default action weights, rule weights) now.
    async fn now(&self) -> (Split, Split) {
        let l = self.elb.describe_listeners().listener_arns(&self.listener).send().await.expect("describe listeners");
        let r = self.elb.describe_rules().rule_arns(&self.rule).send().await.expect("describe rules");
        (weights(l.listeners()[0].default_actions()), weights(r.rules()[0].actions()))
    }

    /// The weight of `green` on the listener, 0 when absent.
    pub async fn green(&self, green: &str) -> i32 {
        self.now().await.0.iter().find(|(tg, _)| tg == green).map_or(0, |(_, w)| *w)
    }
}

/// (target group, weight) of one forward action.
type Split = Vec<(String, i32)>;

/// Polls the listener and the rule (bounded) and records every distinct pair of splits.
fn record_splits(watch: Arc<Watch>, seen: Arc<Mutex<Vec<(Split, Split)>>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for _ in 0..3000 {
            let now = watch.now().await;
            {
                let mut seen = seen.lock().unwrap();
                if seen.last() != Some(&now) {
                    seen.push(now);
                }
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    })
}

/// The task sets of service `web` in cluster `prod`, as ECS holds them.
pub async fn task_sets(ecs: &aws_sdk_ecs::Client) -> Vec<aws_sdk_ecs::types::TaskSet> {
    ecs.describe_task_sets().cluster("prod").service("web").send().await.expect("task sets").task_sets().to_vec()
}

fn target_groups(ts: &aws_sdk_ecs::types::TaskSet) -> Vec<String> {
    ts.load_balancers().iter().filter_map(|l| l.target_group_arn().map(str::to_string)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_blue_green_shifts_linear_20_on_two_listeners_then_promotes_and_rolls_back_on_an_alarm() {
    let moto = Moto::start().await;
    let infra = moto.infra_with_alb("prod");
    let (tgs, listeners, rule) = outputs(&infra);
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &infra);
    write_app(&repo, "nginx:1");
    repo.commit("web: blue/green");
    let server = Server::start(&moto, &repo, 25).await;
    let config = moto.sdk_config().await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let watch = Arc::new(Watch { elb: aws_sdk_elasticloadbalancingv2::Client::new(&config), listener: listeners["80"].clone(), rule });
    let admin = Watch { elb: watch.elb.clone(), listener: listeners["8080"].clone(), rule: watch.rule.clone() };

    // first deployment: the service, its first task set, primary; no shifting
    let app = server.wait_app(PREFIX, Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    let sets = task_sets(&ecs).await;
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0].status(), Some("PRIMARY"));
    assert_eq!(target_groups(&sets[0]), vec![tgs["web-a"].clone(), tgs["admin-c"].clone()]);
    let first_commit = app["applied_commit"].as_str().unwrap().to_string();

    // an update shifts 20 % per second on both listeners and the rule
    let seen = Arc::new(Mutex::new(Vec::new()));
    let poller = record_splits(watch.clone(), seen.clone());
    server.proxy.reset();
    write_app(&repo, "nginx:2");
    let second = repo.commit("web: nginx 2");
    server.wait_app(PREFIX, Duration::from_secs(90), |a| synced(a) && a["applied_commit"] == second.as_str()).await;
    poller.abort();
    eprintln!("calls of one blue/green deployment (2 tasks, LINEAR 20, 2 listeners + 1 rule):\n{}", server.proxy.table());
    // reads: each pass asks for its four target groups in one call, and only the phase that
    // waits for green's health reads target health (347 calls in all before, 202 after)
    let calls = |name: &str| -> u64 { server.proxy.counts().iter().filter(|(op, _)| op.name == name).map(|(_, c)| c.total()).sum() };
    let passes = calls("DescribeServices");
    assert!(calls("DescribeTargetGroups") <= passes, "one DescribeTargetGroups per pass: {}", server.proxy.table());
    assert!(calls("DescribeTargetHealth") * 2 < calls("DescribeTargetGroups"), "health only while stabilizing: {}", server.proxy.table());
    let expected: BTreeMap<String, u64> = [
        ("ecs:RegisterTaskDefinition", 1),
        ("ecs:CreateTaskSet", 1),
        ("elasticloadbalancing:ModifyListener", 10),
        ("elasticloadbalancing:ModifyRule", 5),
        ("ecs:UpdateServicePrimaryTaskSet", 1),
        ("ecs:DeleteTaskSet", 1),
    ]
    .into_iter()
    .map(|(op, n)| (op.to_string(), n))
    .collect();
    assert_eq!(server.proxy.mutations(), expected, "the minimum: one modify per listener and rule per step");
    let seen = seen.lock().unwrap().clone();
    let green_of = |split: &Split| split.iter().find(|(tg, _)| tg == &tgs["web-b"]).map_or(0, |(_, w)| *w);
    let mut listener_greens: Vec<i32> = seen.iter().map(|(l, _)| green_of(l)).collect();
    let mut rule_greens: Vec<i32> = seen.iter().map(|(_, r)| green_of(r)).collect();
    listener_greens.dedup();
    rule_greens.dedup();
    assert_eq!(listener_greens, vec![0, 20, 40, 60, 80, 100], "listener splits seen: {seen:?}");
    assert_eq!(rule_greens, vec![0, 20, 40, 60, 80, 100], "rule splits seen: {seen:?}");
    for (l, r) in &seen {
        assert_eq!(l.iter().map(|(_, w)| w).sum::<i32>(), 100, "{l:?}");
        assert_eq!(r.iter().map(|(_, w)| w).sum::<i32>(), 100, "{r:?}");
    }
    assert_eq!(admin.green(&tgs["admin-d"]).await, 100, "the second pair moved too");
    let sets = task_sets(&ecs).await;
    assert_eq!(sets.len(), 1, "blue deleted: {sets:?}");
    assert_eq!(sets[0].status(), Some("PRIMARY"));
    assert!(sets[0].task_definition().unwrap().ends_with("web:2"));
    assert_eq!(target_groups(&sets[0]), vec![tgs["web-b"].clone(), tgs["admin-d"].clone()]);
    assert_ne!(first_commit, second);

    // the next commit goes back to the other target groups
    write_app(&repo, "nginx:3");
    let third = repo.commit("web: nginx 3");
    server.wait_app(PREFIX, Duration::from_secs(90), |a| synced(a) && a["applied_commit"] == third.as_str()).await;
    let sets = task_sets(&ecs).await;
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(target_groups(&sets[0]), vec![tgs["web-a"].clone(), tgs["admin-c"].clone()]);
    assert_eq!(watch.green(&tgs["web-a"]).await, 100);

    // an alarm during shifting, while paused: everything back on blue, green deleted
    write_app(&repo, "nginx:4");
    repo.commit("web: nginx 4");
    let start = std::time::Instant::now();
    while watch.green(&tgs["web-b"]).await == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "shifting never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // paused mid-shift: the split holds, and the alarm is still watched (issue 12 item 5)
    let paused = reqwest::Client::new()
        .post(format!("{}/api/v2/commands", server.api))
        .json(&serde_json::json!({"command": "pause", "app": PREFIX}))
        .send()
        .await
        .expect("pause");
    assert_eq!(paused.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = watch.green(&tgs["web-b"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(watch.green(&tgs["web-b"]).await, held, "a paused split does not move");
    assert!(held < 100, "paused before the end of the shift: {held}");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    cloudwatch
        .set_alarm_state()
        .alarm_name("web-5xx")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("test: 5xx spike")
        .send()
        .await
        .expect("set alarm state");
    // the app stays paused (no new deployment until resumed); its deployment rolled back
    let app = server.wait_app(PREFIX, Duration::from_secs(60), |a| a["last_outcome"] == "rolled_back").await;
    assert_eq!(app["status"], "Paused", "{app:#}");
    let resumed = reqwest::Client::new()
        .post(format!("{}/api/v2/commands", server.api))
        .json(&serde_json::json!({"command": "resume", "app": PREFIX}))
        .send()
        .await
        .expect("resume");
    assert_eq!(resumed.status().as_u16(), 200);
    let app = server.wait_app(PREFIX, Duration::from_secs(60), |a| a["status"] == "RolledBack").await;
    assert!(app["last_cause"].as_str().unwrap().contains("alarm fired: web-5xx"), "{app:#}");
    assert_eq!(watch.now().await.0, vec![(tgs["web-a"].clone(), 100), (tgs["web-b"].clone(), 0)]);
    assert_eq!(admin.now().await.0, vec![(tgs["admin-c"].clone(), 100), (tgs["admin-d"].clone(), 0)]);
    let sets = task_sets(&ecs).await;
    assert_eq!(sets.len(), 1, "green deleted: {sets:?}");
    assert!(sets[0].task_definition().unwrap().ends_with("web:3"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_missing_target_group_among_the_pairs_is_named_and_nothing_is_created() {
    let moto = Moto::start().await;
    let infra = moto.infra_with_alb("prod");
    let (tgs, _, _) = outputs(&infra);
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &infra);
    write_app(&repo, "nginx:1");
    // the four groups are asked for in one call; a deleted one fails that call, then the groups
    // are asked for one by one to name it
    let gone = tgs["admin-d"].replace("admin-d", "admin-gone");
    let depdef = std::fs::read_to_string(repo.path().join(format!("{PREFIX}_depdef.json"))).unwrap();
    repo.write(&format!("{PREFIX}_depdef.json"), &depdef.replace("{{ target_group_arns['admin-d'] }}", &gone));
    repo.commit("web: blue/green with a group that does not exist");
    let server = Server::start(&moto, &repo, 25).await;
    let app = server.wait_app(PREFIX, Duration::from_secs(60), |a| a["last_outcome"] == "failed").await;
    let text = app.to_string();
    assert!(text.contains(&format!("target group {gone} of the depdef does not exist")), "{app:#}");
    let ecs = moto.ecs().await;
    let sets = ecs.describe_task_sets().cluster("prod").service("web").send().await;
    assert!(sets.map(|s| s.task_sets().is_empty()).unwrap_or(true), "no task set was created");
    server.stop().await;
}

/// Issue 23, item 12 against moto: ECS reports a Spot shortage as a service event ("… was unable
/// to place a task. Reason: Capacity is unavailable …") and starts no task (tests/moto/server.py
/// models it with the cluster tag `gitmoxi-test:spot-capacity`); gitmoxi reads the event and a
/// fallback task set on FARGATE takes the shortfall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_spot_shortage_reported_as_a_service_event_is_covered_by_the_fallback_task_set() {
    let moto = Moto::start().await;
    let infra = moto.infra_with_alb("prod");
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &infra);
    write_app(&repo, "nginx:1");
    let svcdef = std::fs::read_to_string(repo.path().join(format!("{PREFIX}_svcdef.json"))).unwrap();
    let spot = svcdef
        .replace(r#""launchType": "FARGATE","#, r#""capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}],"#);
    assert_ne!(svcdef, spot);
    repo.write(&format!("{PREFIX}_svcdef.json"), &spot);
    let depdef = std::fs::read_to_string(repo.path().join(format!("{PREFIX}_depdef.json"))).unwrap();
    let with_fallback = depdef.replacen('{', r#"{"fallbackCapacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}], "#, 1);
    repo.write(&format!("{PREFIX}_depdef.json"), &with_fallback);
    repo.commit("web: blue/green on Spot with a fallback");
    let ecs = moto.ecs().await;
    let cluster = ecs.describe_clusters().clusters("prod").send().await.unwrap().clusters()[0].cluster_arn().unwrap().to_string();
    let knob = aws_sdk_ecs::types::Tag::builder().key("gitmoxi-test:spot-capacity").value("1").build();
    ecs.tag_resource().resource_arn(&cluster).tags(knob).send().await.unwrap();

    let server = Server::start(&moto, &repo, 25).await;
    let app = server.wait_app(PREFIX, Duration::from_secs(90), |a| a["last_outcome"].is_string() && !a["last_outcome"].is_null()).await;
    assert_eq!(app["last_outcome"], "succeeded", "{app:#}");
    let sets = task_sets(&ecs).await;
    assert_eq!(sets.len(), 2, "green and its fallback: {sets:?}");
    let providers = |ts: &aws_sdk_ecs::types::TaskSet| -> Vec<String> {
        ts.capacity_provider_strategy().iter().map(|p| p.capacity_provider().to_string()).collect()
    };
    let spot_set = sets.iter().find(|s| providers(s) == ["FARGATE_SPOT"]).expect("the Spot task set");
    let fallback_set = sets.iter().find(|s| providers(s) == ["FARGATE"]).expect("the fallback task set");
    assert_eq!((spot_set.running_count(), fallback_set.running_count()), (1, 1), "{sets:?}");
    let events = ecs.describe_services().cluster("prod").services("web").send().await.unwrap().services()[0].events().to_vec();
    assert!(
        events.iter().any(|e| e.message().unwrap_or_default().contains("Capacity is unavailable")),
        "ECS said so as a service event: {events:?}"
    );
    server.stop().await;
}
