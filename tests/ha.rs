//! High availability test (SPEC §7.3): three real `gitmoxi serve` replicas share one repository
//! of 30 apps (26 ECS rolling services, 2 blue/green services behind a real ALB, 2 Lambda
//! functions) through shard leases in moto's DynamoDB, with the shipped table definition.
//!
//! 1. Every app deploys once, whichever replica owns it; every replica's API answers for all 30.
//! 2. kill -9 the owner of a blue/green service in the middle of its traffic shift: another
//!    replica resumes the same deployment (same id) within lease + 5 s; it ends with one task set
//!    on the new image and a timeline that spans the kill.
//! 3. SIGSTOP the owner of the other blue/green service mid-shift, past its lease; the others take
//!    its shards; SIGCONT: it sends no mutating AWS call, and says it lost its leases; the
//!    deployment finishes under the new owner with one task set.
//! 4. Stop all three and start them on empty state directories: the state comes from the table,
//!    nothing is redeployed (same deployments, task definition revisions, Lambda versions).
//!
//! Between 1 and 2 (issue 24: every producer reaches the owner), each on a replica that does
//! not own the app: a gate answered through Slack's interactive callback, a repository added
//! through gmctl's API (every replica tracks it, and drops it when another deletes it), and
//! gmctl's `commit deploy -f` of that repository's app.
//!
//! `harness = false`: a plain program (run by `cargo test`). `HA_SEED=n` replays a run;
//! `HA_ROUNDS=n` repeats steps 2 and 3 with new versions (`make soak`).

#![allow(clippy::unwrap_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/binary_harness.rs"]
mod binary_harness;
use binary_harness::{aws, free_port, get, git, infra, root, start_moto, write, write_rolling_app, Moto, FARGATE_NETWORK, TERRAFORM_INPUT};

const SLACK_SECRET: &str = "ha-test-slack-signing-secret";
const LEASE_SECS: u64 = 6;
const RENEW: &str = "2s";
const SHARDS: u32 = 8;
const ROLLING: usize = 26;
const BLUE_GREEN: [(&str, &str, &str); 2] = [("web", "web-a", "web-b"), ("admin", "admin-c", "admin-d")];
const LAMBDAS: [&str; 2] = ["hello", "bye"];
const ZIP: &str = "UEsDBBQAAAAAAAAAIVzyoV+SNwAAADcAAAAGAAAAYXBwLnB5ZGVmIGhhbmRsZXIoZXZlbnQsIGNvbnRleHQpOgogICAgcmV0dXJuIHsidmVyc2lvbiI6IDF9ClBLAQIUAxQAAAAAAAAAIVzyoV+SNwAAADcAAAAGAAAAAAAAAAAAAACAAQAAAABhcHAucHlQSwUGAAAAAAEAAQA0AAAAWwAAAAAA";

fn rolling_name(i: usize) -> String {
    format!("svc{i:02}")
}

/// Every app's files; the blue/green services run `nginx:{bg[name]}`.
fn write_apps(repo: &Path, bg: &BTreeMap<&str, u32>) {
    let (input, net) = (TERRAFORM_INPUT, FARGATE_NETWORK);
    for i in 0..ROLLING {
        write_rolling_app(repo, &rolling_name(i), "nginx:1");
    }
    for (name, blue, green) in BLUE_GREEN {
        let p = format!("bg/{name}/{name}");
        write(
            repo,
            &format!("{p}_svcdef.json"),
            &format!(
                r#"{{"serviceName": "{name}", "cluster": "prod", "desiredCount": 1, "deploymentController": {{"type": "EXTERNAL"}}, "launchType": "FARGATE", {net},
                    "loadBalancers": [{{"targetGroupArn": "{{{{ target_group_arns['{blue}'] }}}}", "containerName": "{name}", "containerPort": 80}}]}}"#
            ),
        );
        write(
            repo,
            &format!("{p}_taskdef.json"),
            &format!(
                r#"{{"family": "{name}", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
                    "containerDefinitions": [{{"name": "{name}", "image": "nginx:{}", "memory": 512, "portMappings": [{{"containerPort": 80}}]}}]}}"#,
                bg[name]
            ),
        );
        write(
            repo,
            &format!("{p}_depdef.json"),
            &format!(
                r#"{{"targetGroupArnPairs": [["{{{{ target_group_arns['{blue}'] }}}}", "{{{{ target_group_arns['{green}'] }}}}"]],
                    "trafficShiftingConfig": {{"type": "LINEAR", "percent": 10, "waitInterval": 2}}, "stabilityCheck": {{"pollInterval": 1, "timeout": 60}}}}"#
            ),
        );
        write(repo, &format!("{p}_input.json"), input);
    }
    for name in LAMBDAS {
        let p = format!("fn/{name}");
        write(
            repo,
            &format!("{p}_lambdadef.json"),
            &format!(
                r#"{{"FunctionName": "{name}", "Runtime": "python3.12", "Handler": "app.handler", "Role": "{{{{ lambda_role_arn }}}}", "Code": {{"ZipFile": "{ZIP}"}}}}"#
            ),
        );
        write(repo, &format!("{p}_lambdadepdef.json"), r#"{"alias": "live", "trafficShiftingConfig": {"type": "ALL_AT_ONCE"}}"#);
        write(repo, &format!("{p}_lambdainput.json"), input);
    }
}

/// One replica: its name, port, state directory and (while it runs) its process.
struct Replica {
    name: String,
    port: u16,
    state: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl Replica {
    fn new(name: &str, dir: &Path, moto: &Moto, repo: &Path) -> Replica {
        let port = free_port();
        let state = dir.join(format!("{name}-state"));
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"listen = "127.0.0.1:{port}"
region = "us-east-1"
aws_max_attempts = 1
slack_signing_secret = "{SLACK_SECRET}"
slack_approvers = ["U-SRE"]
slack_response_hosts = ["127.0.0.1"]

[ha]
table = "gitmoxi-ha"
endpoint = "{moto}"
shards = {SHARDS}
lease = "{LEASE_SECS}s"
renew = "{RENEW}"
replica = "{name}"
url = "http://127.0.0.1:{port}"

[api_repos]
allow_local = true

[[repos]]
url = "{repo}"
branches = ["main"]
poll_interval = "300ms"
"#,
                moto = moto.1,
                repo = repo.display()
            ),
        )
        .unwrap();
        Replica { name: name.to_string(), port, state, config, child: None }
    }

    fn start(&mut self, moto: &Moto, log_dir: &Path) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_dir.join(format!("{}.log", self.name))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gitmoxi"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state)
            .env("AWS_ENDPOINT_URL", &moto.1)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("GITMOXI_LOG", "warn,gitmoxi::ha=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gitmoxi serve starts");
        self.child = Some(child);
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> Option<Value> {
        get(&self.url(path))
    }

    /// Its metrics (retried: a process just woken from SIGSTOP answers a moment later).
    fn metrics(&self) -> String {
        for _ in 0..50 {
            let out = Command::new("curl").args(["-fs", "--max-time", "5", &self.url("/metrics")]).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if out.status.success() && text.contains("gitmoxi_queue_depth") {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{} does not answer /metrics", self.name);
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit (it gives its leases back).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if c.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("{} did not stop within 30 s of SIGTERM", self.name);
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_ref() {
            let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
        }
        self.kill9();
    }
}

fn post(url: &str, body: &Value) -> Value {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-H", "content-type: application/json", "-d", &body.to_string(), url])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("POST {url}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Slack's signed interactive request for a click on `action` by `user` on `gate`'s buttons,
/// posted to `url`; the HTTP status.
fn slack_click(url: &str, action: &str, user: &str, gate: &Value) -> u16 {
    use hmac::Mac;
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": {"id": user, "username": "sre"},
        "response_url": "http://127.0.0.1:9/slack-response",
        "actions": [{"action_id": action, "value": gate.to_string()}],
    });
    let encoded: String = payload
        .to_string()
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    let body = format!("payload={encoded}");
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SLACK_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
        .args(["-H", "content-type: application/x-www-form-urlencoded"])
        .args(["-H", &format!("x-slack-request-timestamp: {ts}"), "-H", &format!("x-slack-signature: {signature}")])
        .args(["--data-binary", &body, url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// Issue 24: each producer, used on a replica that does not own the app, reaches the owner.
fn producers_reach_the_owner(replicas: &[Replica], repo: &Path, dir: &Path, moto: &Moto) {
    let all: Vec<&Replica> = replicas.iter().collect();
    // Slack: a gate before 100 % of the function `hello`, answered on another replica
    let prefix = "fn/hello";
    write(
        repo,
        "fn/hello_lambdadepdef.json",
        r#"{"alias": "live", "trafficShiftingConfig": {"type": "CANARY", "percent": 50, "waitInterval": 1, "approval": {"before": [100]}}}"#,
    );
    let def = std::fs::read_to_string(repo.join("fn/hello_lambdadef.json")).unwrap();
    write(repo, "fn/hello_lambdadef.json", &def.replacen('{', r#"{"Timeout": 7, "#, 1));
    git(repo, &["commit", "-qam", "hello: a gate before 100 %"]);
    let waiting =
        wait_apps(&all, Duration::from_secs(90), "hello waits at its gate", |apps| apps[prefix]["status"] == "WaitingForApproval");
    let owner = waiting[prefix]["owner"]["replica"].as_str().unwrap().to_string();
    let at_owner = replicas.iter().find(|r| r.name == owner).unwrap();
    let detail = at_owner.get(&format!("/api/v2/apps/{prefix}")).unwrap();
    let deployment = detail["deployment"]["id"].as_str().expect("in flight").to_string();
    let gate = serde_json::json!({"repo": "repo", "branch": "main", "app": prefix, "deployment": deployment, "gate": "before 100 %"});
    let elsewhere = replicas.iter().find(|r| r.name != owner).unwrap();
    assert_eq!(slack_click(&elsewhere.url("/webhooks/slack/interactive"), "gitmoxi_approve", "U-SRE", &gate), 200);
    wait_apps(&[at_owner], Duration::from_secs(60), "the Slack answer given elsewhere reached the owner", |apps| {
        settled(&apps[prefix]) && apps[prefix]["last_deployment"] == deployment.as_str()
    });
    let record = at_owner.get(&format!("/api/v2/deployments/{deployment}")).unwrap();
    assert_eq!(record["outcome"], "succeeded", "{record:#}");
    let given = record["approvals"].as_array().expect("approvals");
    assert_eq!(given.len(), 1, "answered exactly once: {record:#}");
    assert_eq!((given[0]["via"].as_str(), given[0]["approve"].as_bool()), (Some("slack"), Some(true)), "{record:#}");
    println!("ha: a Slack answer given on {} reached {owner}, which let {prefix} go on", elsewhere.name);

    // gmctl repo add on one replica: every replica tracks the repository
    let extra = dir.join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    write(&extra, "infra/terraform_output.json", &std::fs::read_to_string(repo.join("infra/terraform_output.json")).unwrap());
    write_rolling_app(&extra, "extra", "nginx:1");
    git(&extra, &["init", "-q", "-b", "main"]);
    git(&extra, &["config", "user.email", "ha@gitmoxi.dev"]);
    git(&extra, &["config", "user.name", "ha"]);
    git(&extra, &["add", "-A"]);
    git(&extra, &["commit", "-qm", "extra"]);
    let url = extra.display().to_string();
    let added = post(&replicas[1].url("/api/v1/repositories/add"), &serde_json::json!({"repo_url": url, "branches": ["main"]}));
    assert!(added.to_string().contains("extra"), "{added}");
    let start = Instant::now();
    for r in replicas {
        while !r.get("/api/v2/repos").is_some_and(|list| list.to_string().contains(url.as_str())) {
            assert!(start.elapsed() < Duration::from_secs(40), "{} never tracked the repository added on r2", r.name);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let xp = "apps/extra/extra";
    let first = wait_apps(&all, Duration::from_secs(90), "the added repository's app deployed", |apps| {
        apps.get(xp).is_some_and(|a| settled(a) && a["owner"]["replica"].is_string())
    });
    let owner = first[xp]["owner"]["replica"].as_str().unwrap().to_string();
    let before = first[xp]["last_deployment"].as_str().unwrap().to_string();
    // gmctl commit deploy -f on a replica that does not own the app: it redeploys
    let elsewhere = replicas.iter().find(|r| r.name != owner).unwrap();
    let forced = post(&elsewhere.url("/api/v1/commits/deploy"), &serde_json::json!({"repo_url": url, "branch": "main", "force": true}));
    assert!(forced.to_string().contains("redeploys"), "{forced}");
    let at_owner = replicas.iter().find(|r| r.name == owner).unwrap();
    wait_apps(&[at_owner], Duration::from_secs(90), "the forced redeploy given elsewhere ran on the owner", |apps| {
        settled(&apps[xp]) && apps[xp]["last_deployment"] != before.as_str()
    });
    println!("ha: gmctl commit deploy -f on {} redeployed {xp} on {owner}", elsewhere.name);
    // gmctl repo delete on a third replica: every replica stops tracking it
    let deleter = replicas.iter().find(|r| r.name != "r2").unwrap();
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-X", "DELETE", "-w", "\n%{http_code}"])
        .arg(deleter.url(&format!("/api/v1/repositories/delete?repo_url={url}")))
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(answer.ends_with("200"), "{answer}");
    EXTRA_DELETED.store(true, std::sync::atomic::Ordering::SeqCst);
    let start = Instant::now();
    for r in replicas {
        while r.get("/api/v2/repos").is_some_and(|list| list.to_string().contains(url.as_str())) {
            assert!(start.elapsed() < Duration::from_secs(40), "{} still tracks the repository deleted on {}", r.name, deleter.name);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let _ = moto;
    println!("ha: a repository added on r2 was tracked by all three and dropped by all three when {} deleted it", deleter.name);
}

fn text(url: &str) -> String {
    let out = Command::new("curl").args(["-fs", "--max-time", "5", url]).output().unwrap();
    assert!(out.status.success(), "GET {url} failed");
    String::from_utf8_lossy(&out.stdout).to_string()
}

const PRELUDE: &str = r#"
import boto3, json, os
kw = dict(endpoint_url=os.environ["MOTO"], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
"#;

/// What AWS holds: task definition revisions per family, task sets of the blue/green services
/// (status and image), Lambda versions and the rolling services' running tasks.
fn facts(moto: &Moto) -> Value {
    let script = format!(
        r#"{PRELUDE}
ecs = boto3.client("ecs", **kw)
lam = boto3.client("lambda", **kw)
out = {{"revisions": {{}}, "sets": {{}}, "versions": {{}}, "running": 0}}
for family in {families:?}:
    out["revisions"][family] = len(ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"])
for name in ["web", "admin"]:
    sets = ecs.describe_task_sets(cluster="prod", service=name)["taskSets"]
    out["sets"][name] = [[t["status"], ecs.describe_task_definition(taskDefinition=t["taskDefinition"])["taskDefinition"]["containerDefinitions"][0]["image"]] for t in sets]
for name in {lambdas:?}:
    out["versions"][name] = len([v for v in lam.list_versions_by_function(FunctionName=name)["Versions"] if v["Version"] != "$LATEST"])
arns = ecs.list_services(cluster="prod", maxResults=100)["serviceArns"]
for i in range(0, len(arns), 10):
    for s in ecs.describe_services(cluster="prod", services=arns[i:i+10])["services"]:
        out["running"] += s["runningCount"]
print(json.dumps(out))
"#,
        families = (0..ROLLING).map(rolling_name).chain(["web".to_string(), "admin".to_string()]).collect::<Vec<_>>(),
        lambdas = LAMBDAS,
    );
    aws(moto, &script)
}

/// Every app's view from one replica's API, by prefix.
/// Set once the repository added through the API is deleted again: its app stays known (a
/// deleted repository leaves its apps as they are) and is left out of the counts that follow.
static EXTRA_DELETED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn apps(replica: &Replica) -> Option<BTreeMap<String, Value>> {
    let list = replica.get("/api/v2/apps")?;
    let deleted = EXTRA_DELETED.load(std::sync::atomic::Ordering::SeqCst);
    Some(
        list.as_array()?
            .iter()
            .filter(|a| !(deleted && a["repo"] == "extra"))
            .map(|a| (a["app"].as_str().unwrap_or_default().to_string(), a.clone()))
            .collect(),
    )
}

fn settled(a: &Value) -> bool {
    a["status"] == "Synced" && a["last_outcome"] == "succeeded"
}

/// Waits until `done` holds for the apps as `replica` reports them (bounded).
fn wait_apps(
    replicas: &[&Replica],
    limit: Duration,
    what: &str,
    done: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    let start = Instant::now();
    let mut last = BTreeMap::new();
    while start.elapsed() < limit {
        for r in replicas {
            if let Some(apps) = apps(r) {
                if done(&apps) {
                    return apps;
                }
                last = apps;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let summary: Vec<String> = last.values().map(|a| format!("{} {} {} {}", a["app"], a["status"], a["phase"], a["owner"])).collect();
    panic!("{what}: not reached in {limit:?}; last seen:\n{}", summary.join("\n"));
}

/// The sum of a replica's mutating AWS calls (anything but Describe*, List*, Get*).
fn mutating_calls(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("gitmoxi_aws_requests_total{"))
        .filter(|l| {
            let op = l.split("operation=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
            !(op.starts_with("Describe") || op.starts_with("List") || op.starts_with("Get"))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).unwrap_or(0.0) as u64
}

/// (requests, items written) to the HA table by all running replicas so far.
fn table_use(replicas: &[Replica]) -> (u64, u64) {
    let mut requests = 0;
    let mut items = 0;
    for r in replicas.iter().filter(|r| r.child.is_some()) {
        let m = r.metrics();
        requests += m
            .lines()
            .filter(|l| l.starts_with("gitmoxi_ha_table_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64;
        items += counter(&m, "gitmoxi_ha_table_items_written_total");
    }
    (requests, items)
}

fn green_of(app: &Value) -> i64 {
    app["traffic"]["green"].as_i64().unwrap_or(-1)
}

fn bg_prefix(name: &str) -> String {
    format!("bg/{name}/{name}")
}

fn main() {
    let seed: u64 = std::env::var("HA_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let rounds: u32 = std::env::var("HA_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let moto = start_moto("0.3");
    let dir = tempfile::tempdir().unwrap();
    let logs = root().join("target/ha-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    write(&repo, "infra/terraform_output.json", &infra(&moto, "prod", &["--alb", "--lambda"]));
    // the table as packaging/ ships it
    aws(
        &moto,
        &format!(
            "{PRELUDE}\nspec = json.load(open({:?}))\nspec['TableName'] = 'gitmoxi-ha'\nboto3.client('dynamodb', **kw).create_table(**spec)\nprint('{{}}')",
            root().join("packaging/dynamodb-table.json").display().to_string()
        ),
    );
    let mut bg: BTreeMap<&str, u32> = BLUE_GREEN.iter().map(|(n, ..)| (*n, 1)).collect();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.email", "ha@gitmoxi.dev"]);
    git(&repo, &["config", "user.name", "ha"]);
    write_apps(&repo, &bg);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "30 apps"]);

    let mut replicas: Vec<Replica> = ["r1", "r2", "r3"].iter().map(|n| Replica::new(n, dir.path(), &moto, &repo)).collect();
    for r in replicas.iter_mut() {
        r.start(&moto, &logs);
    }

    // 1. everything deploys once; every replica answers for all 30 apps
    let total = ROLLING + BLUE_GREEN.len() + LAMBDAS.len();
    let all: Vec<&Replica> = replicas.iter().collect();
    wait_apps(&all, Duration::from_secs(240), "all 30 apps deployed", |apps| apps.len() == total && apps.values().all(settled));
    for r in &replicas {
        wait_apps(&[r], Duration::from_secs(30), &format!("{} answers for all 30", r.name), |apps| {
            apps.len() == total && apps.values().all(|a| settled(a) && a["owner"]["replica"].is_string())
        });
        let ha = r.get("/api/v2/ha").unwrap();
        assert!(ha["ready"].as_bool().unwrap(), "{ha}");
    }
    let owned: Vec<usize> = replicas.iter().map(|r| r.get("/api/v2/ha").unwrap()["owned"].as_array().map_or(0, Vec::len)).collect();
    assert_eq!(owned.iter().sum::<usize>(), SHARDS as usize, "every shard has one owner: {owned:?}");
    assert!(owned.iter().all(|n| *n >= 2), "the shards are spread: {owned:?}");
    println!("ha: 30 apps deployed by 3 replicas (shards {owned:?}) in {:.0?}", started.elapsed());
    // a command given to a replica that does not own the app reaches its owner through the table
    let target = format!("apps/{}/{}", rolling_name(0), rolling_name(0));
    let holder = apps(&replicas[0]).unwrap()[&target]["owner"]["replica"].as_str().unwrap().to_string();
    let elsewhere = replicas.iter().find(|r| r.name != holder).unwrap();
    let answer = post(&elsewhere.url("/api/v2/commands"), &serde_json::json!({"command": "pause", "app": target}));
    assert_eq!(answer["status"], "forwarded", "{answer}");
    assert_eq!(answer["owner"], holder.as_str(), "{answer}");
    let owner_replica = replicas.iter().find(|r| r.name == holder).unwrap();
    wait_apps(&[owner_replica], Duration::from_secs(20), "the owner applied the forwarded pause", |apps| {
        apps[&target]["status"] == "Paused"
    });
    let answer = post(&elsewhere.url("/api/v2/commands"), &serde_json::json!({"command": "resume", "app": target}));
    assert_eq!(answer["status"], "forwarded", "{answer}");
    wait_apps(&[owner_replica], Duration::from_secs(20), "the owner applied the forwarded resume", |apps| settled(&apps[&target]));
    // the page says who holds what
    let repos_page = text(&replicas[0].url("/ui/repos"));
    assert!(repos_page.contains("High availability") && repos_page.contains("This page comes from <strong>r1</strong>"), "{repos_page}");
    for r in &replicas {
        assert!(repos_page.contains(&format!("<td>{}</td>", r.name)), "{} holds shards on the page: {repos_page}", r.name);
    }
    let app_page = text(&replicas[1].url(&format!("/ui/app?app={}", bg_prefix("web"))));
    assert!(app_page.contains("id=\"owner\"") && app_page.contains("run by <strong>r"), "{app_page}");
    // and so does the CLI
    let status = Command::new(env!("CARGO_BIN_EXE_gitmoxi")).args(["status", "--server", &replicas[2].url("")]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(status.contains("OWNER") && status.contains("(shard ") && status.lines().count() > total, "{status}");
    producers_reach_the_owner(&replicas, &repo, dir.path(), &moto);
    let (requests, items) = table_use(&replicas);
    println!(
        "ha: the first deployment of 30 apps cost {requests} table requests and {items} written items in all (with the leases' rounds)"
    );

    for round in 0..rounds {
        // 2. kill -9 the owner of a blue/green service mid-shift
        let order: Vec<&str> = if rng.random_bool(0.5) { vec!["web", "admin"] } else { vec!["admin", "web"] };
        let (killed_app, stopped_app) = (order[0], order[1]);
        *bg.get_mut(killed_app).unwrap() += 1;
        write_apps(&repo, &bg);
        git(&repo, &["commit", "-qam", &format!("{killed_app}: nginx:{}", bg[killed_app])]);
        let at: i64 = rng.random_range(2..=5) * 10;
        let alive: Vec<&Replica> = replicas.iter().filter(|r| r.child.is_some()).collect();
        let before = wait_apps(&alive, Duration::from_secs(90), &format!("{killed_app} shifting past {at} %"), |apps| {
            let a = &apps[&bg_prefix(killed_app)];
            green_of(a) >= at && green_of(a) < 100 && a["owner"]["replica"].is_string()
        });
        let app = &before[&bg_prefix(killed_app)];
        let owner = app["owner"]["replica"].as_str().unwrap().to_string();
        let victim = replicas.iter().position(|r| r.name == owner).unwrap();
        let in_flight = replicas[victim].get(&format!("/api/v2/apps/{}", bg_prefix(killed_app))).unwrap();
        let id = in_flight["deployment"]["id"].as_str().map(str::to_string).expect("the deployment in flight");
        let killed_at = Instant::now();
        replicas[victim].kill9();
        println!("ha round {round}: killed {owner} (owner of {killed_app}) at {} % green, deployment {id}", green_of(app));
        let others: Vec<&Replica> = replicas.iter().filter(|r| r.child.is_some()).collect();
        // resumed: a surviving replica holds the shard and has the same deployment in flight
        let mut new_owner = None;
        while new_owner.is_none() && killed_at.elapsed() < Duration::from_secs(LEASE_SECS + 30) {
            for r in &others {
                let Some(detail) = r.get(&format!("/api/v2/apps/{}", bg_prefix(killed_app))) else { continue };
                if detail["owner"]["here"] == true
                    && (detail["deployment"]["id"] == id.as_str() || detail["last_deployment"] == id.as_str())
                {
                    new_owner = Some(r.name.clone());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let took = killed_at.elapsed();
        let new_owner = new_owner.expect("another replica resumed the deployment");
        println!("ha round {round}: {new_owner} resumed {id} {took:.1?} after the kill (lease {LEASE_SECS} s)");
        assert!(took <= Duration::from_secs(LEASE_SECS + 5), "resumed {took:?} after the kill; the goal is lease + 5 s");
        let done =
            wait_apps(&others, Duration::from_secs(120), "the resumed deployment finished", |apps| settled(&apps[&bg_prefix(killed_app)]));
        assert_eq!(done[&bg_prefix(killed_app)]["last_deployment"], id.as_str(), "the same deployment finished, not a new one");
        let at_owner = replicas.iter().find(|r| r.name == new_owner).unwrap();
        let timeline = at_owner.get(&format!("/api/v2/deployments/{id}")).unwrap();
        let lines = timeline["timeline"].as_array().unwrap().len();
        assert_eq!(timeline["outcome"], "succeeded", "{timeline:#}");
        let detail = at_owner.get(&format!("/api/v2/apps/{}", bg_prefix(killed_app))).unwrap();
        let history: Vec<&Value> = detail["history"].as_array().unwrap().iter().filter(|h| h["deployment"] == id.as_str()).collect();
        assert!(history.len() >= lines, "the app's history tells the whole deployment ({} of {lines} lines):\n{detail:#}", history.len());
        // a replica that does not own it tells the same story (read from the table)
        let bystander = replicas.iter().find(|r| r.child.is_some() && r.name != new_owner).unwrap();
        let start = Instant::now();
        loop {
            let seen = bystander.get(&format!("/api/v2/apps/{}", bg_prefix(killed_app))).unwrap_or_default();
            let told = seen["history"].as_array().map_or(0, |h| h.iter().filter(|e| e["deployment"] == id.as_str()).count());
            if seen["last_deployment"] == id.as_str() && told == history.len() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{} does not tell the deployment as its owner does:\n{seen:#}",
                bystander.name
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let f = facts(&moto);
        let image = format!("nginx:{}", bg[killed_app]);
        assert_eq!(f["sets"][killed_app], serde_json::json!([["PRIMARY", image]]), "one task set on the new image: {f}");
        replicas[victim].start(&moto, &logs);

        // 3. SIGSTOP the owner of the other blue/green service mid-shift, past its lease
        *bg.get_mut(stopped_app).unwrap() += 1;
        write_apps(&repo, &bg);
        git(&repo, &["commit", "-qam", &format!("{stopped_app}: nginx:{}", bg[stopped_app])]);
        let all: Vec<&Replica> = replicas.iter().collect();
        let before = wait_apps(&all, Duration::from_secs(90), &format!("{stopped_app} shifting"), |apps| {
            let a = &apps[&bg_prefix(stopped_app)];
            (10..90).contains(&green_of(a)) && a["owner"]["replica"].is_string()
        });
        let owner = before[&bg_prefix(stopped_app)]["owner"]["replica"].as_str().unwrap().to_string();
        let paused = replicas.iter().position(|r| r.name == owner).unwrap();
        // stop it between two steps: right after a shift (the owner's own view moved, its calls
        // answered a moment later), it waits the step's 2 s before its next call
        let seen = green_of(&before[&bg_prefix(stopped_app)]);
        let start = Instant::now();
        while replicas[paused].get(&format!("/api/v2/apps/{}", bg_prefix(stopped_app))).is_some_and(|a| green_of(&a) == seen) {
            assert!(start.elapsed() < Duration::from_secs(20), "{stopped_app} stopped shifting");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        let id = replicas[paused].get(&format!("/api/v2/apps/{}", bg_prefix(stopped_app))).unwrap()["deployment"]["id"]
            .as_str()
            .expect("the deployment in flight")
            .to_string();
        let calls_before = mutating_calls(&replicas[paused].metrics());
        let lost_before = counter(&replicas[paused].metrics(), "gitmoxi_lease_renew_failures_total");
        replicas[paused].signal("-STOP");
        println!("ha round {round}: SIGSTOP {owner} (owner of {stopped_app}) just after its shift past {seen} % green");
        std::thread::sleep(Duration::from_secs(LEASE_SECS + 3));
        let others: Vec<&Replica> = replicas.iter().filter(|r| r.name != owner).collect();
        let status = others[0].get("/api/v2/ha").unwrap();
        let still_its: Vec<&Value> =
            status["leases"].as_array().unwrap().iter().filter(|l| l["owner"] == owner.as_str() && l["held"] == true).collect();
        assert!(still_its.is_empty(), "every shard of the stopped replica was taken over: {status:#}");
        replicas[paused].signal("-CONT");
        std::thread::sleep(Duration::from_millis(1500));
        let after = replicas[paused].metrics();
        assert_eq!(mutating_calls(&after), calls_before, "the woken former owner sent no mutating AWS call:\n{after}");
        assert!(counter(&after, "gitmoxi_lease_renew_failures_total") > lost_before, "it noticed it lost its leases:\n{after}");
        let done = wait_apps(&others, Duration::from_secs(120), "the taken-over deployment finished", |apps| {
            settled(&apps[&bg_prefix(stopped_app)])
        });
        // the same deployment, whoever holds the shard by now (the woken replica may get it back
        // once the shards are spread again, and then rightly finishes it)
        assert_eq!(done[&bg_prefix(stopped_app)]["last_deployment"], id.as_str(), "the same deployment finished, not a new one");
        let f = facts(&moto);
        let image = format!("nginx:{}", bg[stopped_app]);
        assert_eq!(f["sets"][stopped_app], serde_json::json!([["PRIMARY", image]]), "one task set on the new image: {f}");
        println!("ha round {round}: {stopped_app} finished under another replica; the woken one touched nothing");
    }

    // 4. restart all three on empty state directories: nothing is redeployed
    let all: Vec<&Replica> = replicas.iter().collect();
    let before = wait_apps(&all, Duration::from_secs(60), "all settled before the restart", |apps| {
        apps.len() == total && apps.values().all(settled)
    });
    let facts_before = facts(&moto);
    for r in replicas.iter_mut() {
        r.stop();
        std::fs::remove_dir_all(&r.state).unwrap();
    }
    for r in replicas.iter_mut() {
        r.start(&moto, &logs);
    }
    let all: Vec<&Replica> = replicas.iter().collect();
    std::thread::sleep(Duration::from_secs(5));
    let after = wait_apps(&all, Duration::from_secs(60), "all 30 apps known again after the restart", |apps| {
        apps.len() == total && apps.values().all(|a| settled(a) && a["owner"]["replica"].is_string())
    });
    // a few rounds of drift checks and polls: still nothing to do
    std::thread::sleep(Duration::from_secs(6));
    for (prefix, a) in &before {
        assert_eq!(after[prefix]["last_deployment"], a["last_deployment"], "{prefix} was deployed again after the restart");
    }
    let facts_after = facts(&moto);
    assert_eq!(facts_after["revisions"], facts_before["revisions"], "no task definition registered again");
    assert_eq!(facts_after["versions"], facts_before["versions"], "no Lambda version published again");
    assert_eq!(facts_after["sets"], facts_before["sets"]);
    let again = wait_apps(&all, Duration::from_secs(10), "still settled", |apps| apps.values().all(settled));
    assert_eq!(again.len(), total);
    // what the table costs in steady state: 20 s of three replicas with nothing to deploy
    let (r0, i0) = table_use(&replicas);
    let window = Duration::from_secs(20);
    std::thread::sleep(window);
    let (r1, i1) = table_use(&replicas);
    let per_hour = |n: u64| n as f64 * 3600.0 / window.as_secs_f64();
    println!(
        "ha steady state (3 replicas, {SHARDS} shards, renew {RENEW}, 30 apps): {:.0} table requests/h, {:.0} items written/h",
        per_hour(r1 - r0),
        per_hour(i1 - i0)
    );
    for r in replicas.iter_mut() {
        r.stop();
    }
    println!("ha test: {rounds} round(s) passed in {:.0?} (HA_SEED={seed})", started.elapsed());
}
