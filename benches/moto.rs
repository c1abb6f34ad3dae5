//! Benchmarks of the real `gitmoxi serve` binary against moto, every AWS call going through the
//! counting proxy (`gitmoxi_testing::fault_proxy`, no faults). Figures go to the README's table.
//!
//! - `webhook N`: a push webhook received → gitmoxi's first AWS call, over N pushes (median, p99).
//! - `fanout N`: one commit changes the shared input of N ECS services; gitmoxi against the
//!   baseline script (`scripts/baseline-deploy.sh`: `aws ecs register-task-definition` +
//!   `aws ecs update-service` per service with the AWS CLI), in the same run; calls per deployment.
//! - `rss N`: peak RSS of `gitmoxi serve` managing N apps (after they deployed and one more pass).
//! - `quota N`: N new ECS services in one commit through a proxy that throttles as AWS's quota
//!   buckets do, with gitmoxi's default client-side rate limits: how long, how many calls, how
//!   many throttled.
//!
//! moto has no quotas: every benchmark but `quota` lifts gitmoxi's rate limits (`[aws_limits]`
//! in a generated configuration) so it measures gitmoxi, not the limits.
//!
//! Run: `cargo bench --bench moto -- webhook 100 fanout 200 rss 2000` (needs `.venv` from
//! `make test`; the fan-out needs `.venv-awscli` from `make bench`).

use gitmoxi_testing::fault_proxy::{FaultProxy, Faults};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/common/binary_harness.rs"]
mod binary_harness;
use binary_harness::{free_port, git, infra, root, start_moto, write, Moto, Process};

const SECRET: &str = "bench-webhook-secret";

fn commit(dir: &Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A repository of `n` ECS services whose image comes from `shared/release.json`.
fn repository(infra: &str, n: usize, desired: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    git(d, &["config", "user.email", "bench@gitmoxi.dev"]);
    git(d, &["config", "user.name", "bench"]);
    write(d, "infra/terraform_output.json", infra);
    write(d, "shared/release.json", r#"{"image": {"value": "nginx:1"}}"#);
    for i in 0..n {
        let p = format!("apps/team{}/svc{i:04}/svc{i:04}", i % 20);
        write(
            d,
            &format!("{p}_svcdef.json"),
            &format!(
                r#"{{"serviceName": "svc{i:04}", "cluster": "{{{{ cluster_name }}}}", "desiredCount": {desired}, "launchType": "FARGATE",
  "networkConfiguration": {{"awsvpcConfiguration": {{"subnets": {{{{ private_subnets | tojson }}}}, "securityGroups": ["{{{{ security_group_id }}}}"]}}}}}}"#
            ),
        );
        write(d, &format!("{p}_taskdef.json"), &taskdef(i, "{{ image }}"));
        write(d, &format!("{p}_depdef.json"), r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 300}}"#);
        write(
            d,
            &format!("{p}_input.json"),
            r#"{"ref": {"file": ["infra/terraform_output.json", "shared/release.json"], "type": "TERRAFORM"}}"#,
        );
    }
    commit(d, "services");
    dir
}

fn taskdef(i: usize, image: &str) -> String {
    format!(
        r#"{{"family": "svc{i:04}", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
  "containerDefinitions": [{{"name": "app", "image": "{image}", "memory": 512, "essential": true}}]}}"#
    )
}

struct Serve {
    process: Process,
    api: String,
    repo: String,
    _state: tempfile::TempDir,
    _config: tempfile::TempDir,
}

/// A configuration that lifts every client-side rate limit (moto has no quotas).
fn unlimited_config(dir: &Path) -> PathBuf {
    let families = ["ecs_read", "ecs_task_definition", "ecs_write", "elb_read", "elb_write", "lambda", "cloudwatch", "other"];
    let text: String = families.iter().map(|f| format!("[aws_limits.{f}]\nper_second = 100000.0\nburst = 100000.0\n")).collect();
    let path = dir.join("gitmoxi.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// `gitmoxi serve` on `repo` with AWS at `aws`; `limited`: with the default rate limits.
async fn serve(repo: &Path, aws: &str) -> Serve {
    serve_with(repo, aws, false).await
}

async fn serve_with(repo: &Path, aws: &str, limited: bool) -> Serve {
    let state = tempfile::tempdir().expect("state");
    let config = tempfile::tempdir().expect("config dir");
    let port = free_port();
    // BENCH_SERVE_WRAPPER="heaptrack -o /tmp/ht" profiles the server (its figures are then the wrapper's)
    let wrapper = std::env::var("BENCH_SERVE_WRAPPER").unwrap_or_default();
    let mut wrapper = wrapper.split_whitespace();
    let mut command = match wrapper.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(wrapper).arg(env!("CARGO_BIN_EXE_gitmoxi"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_gitmoxi")),
    };
    let child = command
        .args(["serve", "--branch", "main", "--poll-interval", "1h", "--drift-interval", "1h", "--concurrency", "16"])
        .arg("--repo")
        .arg(repo)
        .arg("--state-dir")
        .arg(state.path())
        .args(if limited { Vec::new() } else { vec!["--config".into(), unlimited_config(config.path()).display().to_string()] })
        .args(["--listen", &format!("127.0.0.1:{port}"), "--github-webhook-secret", SECRET])
        .env("AWS_ENDPOINT_URL", aws)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("GITMOXI_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("gitmoxi serve starts");
    let serve = Serve {
        process: Process(child),
        api: format!("http://127.0.0.1:{port}"),
        repo: repo.display().to_string(),
        _state: state,
        _config: config,
    };
    for _ in 0..400 {
        if reqwest::get(format!("{}/api/v2/apps", serve.api)).await.is_ok() {
            return serve;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("gitmoxi serve did not answer on {}", serve.api);
}

impl Serve {
    async fn push(&self, client: &reqwest::Client) {
        let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "repository": {"clone_url": self.repo}})).expect("json");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(&body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let answer = client
            .post(format!("{}/webhooks/github", self.api))
            .header("x-github-event", "push")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .expect("webhook answered");
        assert!(answer.status().is_success(), "webhook refused: {}", answer.status());
    }

    /// Waits (polling every 100 ms, bounded by `limit`) until all `n` apps satisfy `done`.
    async fn wait_all(&self, n: usize, limit: Duration, what: &str, done: impl Fn(&Value) -> bool) {
        let start = Instant::now();
        loop {
            let apps: Vec<Value> = match reqwest::get(format!("{}/api/v2/apps", self.api)).await {
                Ok(answer) => answer.json().await.unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            let behind = n.saturating_sub(apps.iter().filter(|a| done(a)).count());
            if behind == 0 {
                return;
            }
            assert!(start.elapsed() < limit, "{behind} of {n} apps not {what} after {limit:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until all `n` apps are Synced on `commit` with a succeeded deployment.
    async fn wait_synced(&self, commit: &str, n: usize, limit: Duration) {
        let what = format!("synced on {commit}");
        self.wait_all(n, limit, &what, |a| a["status"] == "Synced" && a["applied_commit"] == commit && a["last_outcome"] == "succeeded")
            .await;
    }

    /// VmHWM (peak resident set), VmRSS, RssAnon (heap) and RssFile (mapped files) in KiB.
    fn memory_kib(&self) -> (u64, u64, u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.0.id())).expect("/proc status");
        let field = |name: &str| -> u64 {
            status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
    }
}

/// Waits until the proxy has seen no request for `quiet` (bounded by `limit`).
async fn quiet(proxy: &FaultProxy, quiet: Duration, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        let probe = Instant::now();
        tokio::time::sleep(quiet).await;
        if proxy.first_request_since(probe).is_none() {
            return;
        }
    }
}

/// moto, the counting proxy in front of it, a repository of `n` services with `desired` tasks and
/// `gitmoxi serve` on it, every app deployed (bounded by `limit`). Bind `_moto` first when
/// destructuring (the server stops before moto) and bind the proxy: a field left to `..` is
/// dropped at once.
struct Stage {
    server: Serve,
    proxy: FaultProxy,
    repo: tempfile::TempDir,
    /// How long the first commit took to deploy.
    deployed: Duration,
    _moto: Moto,
}

async fn stage(n: usize, desired: u32, limit: Duration) -> Stage {
    let moto = start_moto("0.3");
    let proxy = FaultProxy::start(&moto.1, Faults::default()).await.expect("proxy");
    let repo = repository(&infra(&moto, "prod", &[]), n, desired);
    let server = serve(repo.path(), &proxy.url).await;
    let first = git(repo.path(), &["rev-parse", "HEAD"]);
    let start = Instant::now();
    server.wait_synced(&first, n, limit).await;
    Stage { server, proxy, repo, deployed: start.elapsed(), _moto: moto }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn webhook(pushes: usize) {
    let Stage { _moto, repo, proxy, server, .. } = stage(1, 1, Duration::from_secs(120)).await;
    let client = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(pushes);
    for i in 0..pushes {
        write(repo.path(), "shared/release.json", &format!(r#"{{"image": {{"value": "nginx:{}"}}}}"#, i + 2));
        let head = commit(repo.path(), &format!("release {i}"));
        quiet(&proxy, Duration::from_millis(300), Duration::from_secs(30)).await;
        let sent = Instant::now();
        server.push(&client).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let first_call = loop {
            if let Some((at, op)) = proxy.first_request_since(sent) {
                break (at, op);
            }
            assert!(Instant::now() < deadline, "no AWS call within 10 s of push {i}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        latencies.push(first_call.0 - sent);
        if i == 0 {
            eprintln!("first AWS call after a push: {}:{}", first_call.1.service, first_call.1.name);
        }
        server.wait_synced(&head, 1, Duration::from_secs(120)).await;
    }
    latencies.sort();
    println!(
        "| webhook → first AWS call, {pushes} pushes | median {} | p99 {} | max {} |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().expect("pushes"))
    );
}

fn awscli() -> PathBuf {
    let aws = root().join(".venv-awscli/bin/aws");
    assert!(aws.exists(), "the AWS CLI is not installed: `make bench` creates .venv-awscli with awscli from PyPI");
    aws
}

async fn fanout(n: usize) {
    let aws = awscli();
    let Stage { _moto, repo, proxy, server, .. } = stage(n, 1, Duration::from_secs(1200)).await;
    let client = reqwest::Client::new();
    quiet(&proxy, Duration::from_millis(500), Duration::from_secs(60)).await;

    // gitmoxi: one commit changes the shared input of every service
    write(repo.path(), "shared/release.json", r#"{"image": {"value": "nginx:2"}}"#);
    let head = commit(repo.path(), "release nginx:2 everywhere");
    proxy.reset();
    let start = Instant::now();
    server.push(&client).await;
    let updated = loop {
        let updates = proxy.counts().iter().filter(|(op, _)| op.name == "UpdateService").map(|(_, c)| c.total()).sum::<u64>();
        if updates >= n as u64 {
            break start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(1200), "only {updates} of {n} services updated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    server.wait_synced(&head, n, Duration::from_secs(1200)).await;
    let converged = start.elapsed();
    let gitmoxi_calls = proxy.total();
    let gitmoxi_mutations: u64 = proxy.mutations().values().sum();
    drop(server);

    // the baseline: what CI pipelines do, one service after another with the AWS CLI
    let rendered = tempfile::tempdir().expect("tmp");
    for i in 0..n {
        write(rendered.path(), &format!("svc{i:04}.json"), &taskdef(i, "nginx:3"));
    }
    proxy.reset();
    let start = Instant::now();
    let status = Command::new("bash")
        .arg(root().join("scripts/baseline-deploy.sh"))
        .arg(rendered.path())
        .arg(n.to_string())
        .env("AWS_CLI", &aws)
        .env("AWS_ENDPOINT_URL", &proxy.url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .status()
        .expect("baseline runs");
    let baseline = start.elapsed();
    assert!(status.success(), "the baseline script failed");
    let baseline_calls = proxy.total();
    println!(
        "| fan-out, {n} services, one commit | gitmoxi: all updated {:.1} s, all stable {:.1} s | AWS CLI script: {:.1} s | {:.1}× faster to update, {:.1}× to stable |",
        updated.as_secs_f64(),
        converged.as_secs_f64(),
        baseline.as_secs_f64(),
        baseline.as_secs_f64() / updated.as_secs_f64(),
        baseline.as_secs_f64() / converged.as_secs_f64()
    );
    println!(
        "| AWS calls per deployment | gitmoxi: {:.2} mutating (minimum 2: RegisterTaskDefinition + UpdateService), {:.2} in all with stability checks | AWS CLI script: {:.2} (no stability check) | |",
        gitmoxi_mutations as f64 / n as f64,
        gitmoxi_calls as f64 / n as f64,
        baseline_calls as f64 / n as f64
    );
}

/// N new services in one commit under AWS's quota buckets, with the default rate limits.
async fn quota(n: usize) {
    let moto = start_moto("0.3");
    let proxy = FaultProxy::start(&moto.1, Faults { aws_quotas: true, ..Faults::default() }).await.expect("proxy");
    let repo = repository(&infra(&moto, "prod", &[]), n, 1);
    let start = Instant::now();
    let server = serve_with(repo.path(), &proxy.url, true).await;
    let first = git(repo.path(), &["rev-parse", "HEAD"]);
    server.wait_synced(&first, n, Duration::from_secs(7200)).await;
    let took = start.elapsed();
    let throttled: u64 = proxy.counts().values().map(|c| c.throttled).sum();
    let total = proxy.total();
    println!(
        "| fan-out under AWS's quotas, {n} new services in one commit, default rate limits | all stable in {:.0} s | {total} calls, {throttled} throttled ({:.2} %) |",
        took.as_secs_f64(),
        throttled as f64 * 100.0 / total.max(1) as f64
    );
    drop(server);
    drop(moto);
}

async fn rss(n: usize) {
    let Stage { _moto, repo, proxy: _proxy, server, deployed } = stage(n, 0, Duration::from_secs(3000)).await;
    let client = reqwest::Client::new();
    // one more head that changes nothing: the steady-state pass over every app
    write(repo.path(), "README.md", "unrelated change\n");
    let head = commit(repo.path(), "unrelated");
    server.push(&client).await;
    let what = format!("Synced on the no-change head {head}");
    server.wait_all(n, Duration::from_secs(600), &what, |a| a["commit"] == head.as_str() && a["status"] == "Synced").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (peak, now, anon, file) = server.memory_kib();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "| peak RSS of `gitmoxi serve`, {n} apps | {:.1} MiB peak, {:.1} MiB after ({:.1} heap, {:.1} mapped files) | {n} apps deployed in {:.0} s, then a no-change head {} |",
        mib(peak),
        mib(now),
        mib(anon),
        mib(file),
        deployed.as_secs_f64(),
        &head[..7]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut args = args.iter();
    while let Some(what) = args.next() {
        let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("`{what}` needs a count, e.g. `{what} 100`"));
        match what.as_str() {
            "webhook" => runtime.block_on(webhook(n)),
            "fanout" => runtime.block_on(fanout(n)),
            "quota" => runtime.block_on(quota(n)),
            "rss" => runtime.block_on(rss(n)),
            other => panic!("unknown benchmark `{other}`: webhook, fanout, quota or rss"),
        }
    }
}
