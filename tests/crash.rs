//! kill -9 test (TESTING.md §1): the real `gitmoxi serve` against moto is SIGKILLed at random
//! moments while it deploys three commits to ECS rolling services, a blue/green service and a
//! Lambda function, and restarted on the same state directory each time (at least 20 kills). At the
//! end every app must have converged with nothing duplicated: one task definition revision per
//! deployment, one task set on the blue/green service, one Lambda version per code change, and a
//! history that tells every deployment.
//!
//! `harness = false`: a plain program (run by `cargo test`); `CRASH_SEED=n` replays a run.

#![allow(clippy::unwrap_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/binary_harness.rs"]
mod binary_harness;
use binary_harness::{aws, free_port, get, git, infra, start_moto, write, write_rolling_app, Moto, FARGATE_NETWORK, TERRAFORM_INPUT};

const ROLLING: [&str; 3] = ["alpha", "beta", "gamma"];
const ZIPS: [&str; 3] = [
    "UEsDBBQAAAAAAAAAIVzyoV+SNwAAADcAAAAGAAAAYXBwLnB5ZGVmIGhhbmRsZXIoZXZlbnQsIGNvbnRleHQpOgogICAgcmV0dXJuIHsidmVyc2lvbiI6IDF9ClBLAQIUAxQAAAAAAAAAIVzyoV+SNwAAADcAAAAGAAAAAAAAAAAAAACAAQAAAABhcHAucHlQSwUGAAAAAAEAAQA0AAAAWwAAAAAA",
    "UEsDBBQAAAAAAAAAIVyrHxmQNwAAADcAAAAGAAAAYXBwLnB5ZGVmIGhhbmRsZXIoZXZlbnQsIGNvbnRleHQpOgogICAgcmV0dXJuIHsidmVyc2lvbiI6IDJ9ClBLAQIUAxQAAAAAAAAAIVyrHxmQNwAAADcAAAAGAAAAAAAAAAAAAACAAQAAAABhcHAucHlQSwUGAAAAAAEAAQA0AAAAWwAAAAAA",
    "UEsDBBQAAAAAAAAAIVycdduRNwAAADcAAAAGAAAAYXBwLnB5ZGVmIGhhbmRsZXIoZXZlbnQsIGNvbnRleHQpOgogICAgcmV0dXJuIHsidmVyc2lvbiI6IDN9ClBLAQIUAxQAAAAAAAAAIVycdduRNwAAADcAAAAGAAAAAAAAAAAAAACAAQAAAABhcHAucHlQSwUGAAAAAAEAAQA0AAAAWwAAAAAA",
];

/// Every app's files at `version` (1-based).
fn write_apps(repo: &Path, version: usize) {
    let (input, net) = (TERRAFORM_INPUT, FARGATE_NETWORK);
    for name in ROLLING {
        write_rolling_app(repo, name, &format!("nginx:{version}"));
    }
    let p = "apps/web/web";
    write(
        repo,
        &format!("{p}_svcdef.json"),
        &format!(
            r#"{{"serviceName": "web", "cluster": "prod", "desiredCount": 1, "deploymentController": {{"type": "EXTERNAL"}}, "launchType": "FARGATE", {net},
                "loadBalancers": [{{"targetGroupArn": "{{{{ target_group_arns['web-a'] }}}}", "containerName": "web", "containerPort": 80}}]}}"#
        ),
    );
    write(
        repo,
        &format!("{p}_taskdef.json"),
        &format!(
            r#"{{"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
                "containerDefinitions": [{{"name": "web", "image": "nginx:{version}", "memory": 512, "portMappings": [{{"containerPort": 80}}]}}]}}"#
        ),
    );
    write(
        repo,
        &format!("{p}_depdef.json"),
        r#"{"targetGroupArnPairs": [["{{ target_group_arns['web-a'] }}", "{{ target_group_arns['web-b'] }}"]],
            "trafficShiftingConfig": {"type": "LINEAR", "percent": 50, "waitInterval": 1}, "stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#,
    );
    write(repo, &format!("{p}_input.json"), input);
    let p = "fn/hello";
    write(
        repo,
        &format!("{p}_lambdadef.json"),
        &format!(
            r#"{{"FunctionName": "hello", "Runtime": "python3.12", "Handler": "app.handler", "Role": "{{{{ lambda_role_arn }}}}", "Code": {{"ZipFile": "{}"}}}}"#,
            ZIPS[version - 1]
        ),
    );
    write(
        repo,
        &format!("{p}_lambdadepdef.json"),
        r#"{"alias": "live", "trafficShiftingConfig": {"type": "CANARY", "percent": 50, "waitInterval": 1}}"#,
    );
    write(repo, &format!("{p}_lambdainput.json"), input);
}

fn serve(moto: &Moto, repo: &Path, state: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gitmoxi"))
        .args(["serve", "--repo", repo.to_str().unwrap(), "--branch", "main", "--poll-interval", "300ms", "--aws-max-attempts", "1"])
        .arg("--state-dir")
        .arg(state)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("AWS_ENDPOINT_URL", &moto.1)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("GITMOXI_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gitmoxi serve starts")
}

const FACTS: &str = r#"
import boto3, json, os
kw = dict(endpoint_url=os.environ["MOTO"], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
ecs = boto3.client("ecs", **kw)
lam = boto3.client("lambda", **kw)
out = {"services": {}, "revisions": {}}
for name in ["alpha", "beta", "gamma"]:
    s = ecs.describe_services(cluster="prod", services=[name])["services"][0]
    td = ecs.describe_task_definition(taskDefinition=s["taskDefinition"])["taskDefinition"]
    out["services"][name] = {"image": td["containerDefinitions"][0]["image"], "running": s["runningCount"], "deployments": len(s["deployments"])}
for family in ["alpha", "beta", "gamma", "web"]:
    out["revisions"][family] = len(ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"])
sets = ecs.describe_task_sets(cluster="prod", service="web")["taskSets"]
out["web"] = [{"status": t["status"], "td": t["taskDefinition"]} for t in sets]
out["web_image"] = [ecs.describe_task_definition(taskDefinition=t["taskDefinition"])["taskDefinition"]["containerDefinitions"][0]["image"] for t in sets]
out["versions"] = [v["Version"] for v in lam.list_versions_by_function(FunctionName="hello")["Versions"] if v["Version"] != "$LATEST"]
a = lam.get_alias(FunctionName="hello", Name="live")
out["alias"] = {"version": a["FunctionVersion"], "routing": (a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}}
print(json.dumps(out))
"#;

fn main() {
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(42);
    let mut rng = StdRng::seed_from_u64(seed);
    let moto = start_moto("0.3");
    let repo = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    write(repo.path(), "infra/terraform_output.json", &infra(&moto, "prod", &["--alb", "--lambda"]));
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["config", "user.email", "crash@gitmoxi.dev"]);
    git(repo.path(), &["config", "user.name", "crash test"]);
    let port = free_port();
    let api = format!("http://127.0.0.1:{port}");
    let mut kills = 0;
    let mut child = None;
    let started = Instant::now();
    for version in 1..=3 {
        write_apps(repo.path(), version);
        git(repo.path(), &["add", "-A"]);
        git(repo.path(), &["commit", "-q", "-m", &format!("version {version}")]);
        // kill -9 at random moments while this version deploys
        for _ in 0..8 {
            let mut c = child.take().unwrap_or_else(|| serve(&moto, repo.path(), state.path(), port));
            std::thread::sleep(Duration::from_millis(rng.random_range(300..2500)));
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
            kills += 1;
        }
    }
    assert!(kills >= 20, "{kills} kills");
    // let the last run finish the job
    let mut c = serve(&moto, repo.path(), state.path(), port);
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    let deadline = Instant::now() + Duration::from_secs(180);
    let prefixes = ["apps/alpha/alpha", "apps/beta/beta", "apps/gamma/gamma", "apps/web/web", "fn/hello"];
    loop {
        let done = prefixes.iter().all(|p| {
            get(&format!("{api}/api/v2/apps/{p}")).is_some_and(|a| a["status"] == "Synced" && a["applied_commit"] == head.as_str())
        });
        if done {
            break;
        }
        if Instant::now() > deadline {
            let apps = get(&format!("{api}/api/v2/apps")).unwrap_or(Value::Null);
            let _ = c.kill();
            panic!("not converged after {kills} kills (CRASH_SEED={seed}): {apps:#}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let facts = aws(&moto, FACTS);
    let fail = |what: String| -> ! { panic!("{what} (CRASH_SEED={seed}; facts: {facts:#})") };
    // nothing duplicated: at most one revision / version per commit, the last one live
    for name in ROLLING {
        let s = &facts["services"][name];
        if s["image"] != "nginx:3" || s["running"] != 1 || s["deployments"] != 1 {
            fail(format!("{name} did not converge on nginx:3"));
        }
        if facts["revisions"][name].as_u64().unwrap_or(99) > 3 {
            fail(format!("{name}: {} task definition revisions for 3 commits", facts["revisions"][name]));
        }
    }
    if facts["web"].as_array().map(Vec::len) != Some(1) || facts["web"][0]["status"] != "PRIMARY" || facts["web_image"][0] != "nginx:3" {
        fail("the blue/green service does not have exactly one primary task set on nginx:3".into());
    }
    if facts["revisions"]["web"].as_u64().unwrap_or(99) > 3 {
        fail(format!("web: {} revisions for 3 commits", facts["revisions"]["web"]));
    }
    let versions: Vec<String> = facts["versions"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    if versions.len() > 3
        || facts["alias"]["version"].as_str() != versions.last().map(String::as_str)
        || facts["alias"]["routing"] != serde_json::json!({})
    {
        fail(format!("Lambda: versions {versions:?}, alias {}", facts["alias"]));
    }
    // a complete history: every deployment ended, with a timeline from its start
    for p in prefixes {
        let list = get(&format!("{api}/api/v2/deployments?app={p}&limit=100")).unwrap_or(Value::Null);
        let deployments = list["deployments"].as_array().cloned().unwrap_or_default();
        if deployments.is_empty() || deployments[0]["commit"] != head.as_str() || deployments[0]["outcome"] != "succeeded" {
            fail(format!("{p}: the newest deployment is not a success of the head: {list}"));
        }
        for d in &deployments {
            let full = get(&format!("{api}/api/v2/deployments/{}", d["id"].as_str().unwrap())).unwrap_or(Value::Null);
            let first = full["timeline"][0]["message"].as_str().unwrap_or("");
            if d["outcome"].is_null() || !first.starts_with("deployment started") {
                fail(format!("{p}: deployment {} is unfinished or lost its start: {full}", d["id"]));
            }
        }
    }
    let _ = c.kill();
    let _ = c.wait();
    println!("crash test: {kills} kills, converged in {:.0?} (CRASH_SEED={seed})", started.elapsed());
    println!("1 passed, 0 failed");
}
