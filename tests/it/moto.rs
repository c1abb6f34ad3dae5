//! Against moto (with the project's ECS scheduler, tests/moto/server.py): the real SDK adapters,
//! the real controller and HTTP API, a real Git repository.
//!
//! Each test starts its own moto on a free port and stops it by pid. Without `.venv` (created by
//! `make test`) these tests fail with a message saying so; they are never skipped.

use crate::binary_harness;
pub use crate::binary_harness::free_port;
use crate::support::{ecs_app, TestRepo};
use gitmoxi::aws::pool::SdkProvider;
use gitmoxi::clock::Clock;
use gitmoxi::config::{Config, RepoConfig};
use gitmoxi::metrics::Metrics;
use gitmoxi_testing::fault_proxy::{FaultProxy, Faults};
use serde_json::Value;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// moto with the project's schedulers (tasks start after 0.5 s), stopped when dropped.
pub struct Moto {
    process: binary_harness::Moto,
    pub url: String,
}

impl Moto {
    pub async fn start() -> Moto {
        let process = binary_harness::start_moto("0.5");
        let url = process.1.clone();
        Moto { process, url }
    }

    /// Creates VPC, subnets, security group, cluster and log group; returns the Terraform outputs.
    pub fn infra(&self, cluster: &str) -> String {
        self.infra_with(cluster, &[])
    }

    /// `infra` plus an ALB with two target-group pairs, two listeners, a rule and an alarm.
    pub fn infra_with_alb(&self, cluster: &str) -> String {
        self.infra_with(cluster, &["--alb"])
    }

    /// `infra` plus a Lambda role, an SQS queue, a lambda target group, an HTTP API and an alarm.
    pub fn infra_with_lambda(&self, cluster: &str) -> String {
        self.infra_with(cluster, &["--lambda"])
    }

    pub fn infra_with(&self, cluster: &str, extra: &[&str]) -> String {
        binary_harness::infra(&self.process, cluster, extra)
    }

    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config_at(&self.url, 1).await
    }

    pub async fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.sdk_config().await)
    }
}

/// An SDK configuration for `endpoint` (moto or a proxy in front of it) with standard retries.
pub async fn sdk_config_at(endpoint: &str, max_attempts: u32) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new("test", "test", None, None, "moto"))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(max_attempts))
        .load()
        .await
}

/// What a test server is configured with besides its repository.
struct Settings<'a> {
    max_prune_percent: u32,
    poll: Duration,
    github_secret: Option<&'a str>,
    notify: (Option<String>, Option<String>),
    drift_interval: Duration,
    llm: Option<gitmoxi::llm::LlmConfig>,
    /// The API token, and the networks whose gmctl calls need none.
    api_token: Option<String>,
    gmctl_tokenless: Vec<ipnet::IpNet>,
    /// Commit statuses of the repository, and the public URL they link to.
    forge: Option<gitmoxi::forge::ForgeTarget>,
    public_url: Option<String>,
    /// Another URL for the repository (e.g. ssh://…) and its SSH settings.
    repo_url: Option<String>,
    ssh: Option<gitmoxi::config::SshConfig>,
    /// `[accounts]`: the workload accounts' roles.
    accounts: std::collections::BTreeMap<String, gitmoxi::aws::accounts::AccountRole>,
    /// Slack's interactive callback.
    slack: Option<gitmoxi::http::slack::SlackInteractive>,
    /// The client-side rate limits.
    aws_limits: gitmoxi::aws::limits::Limits,
    /// `[notifications] webhook_hosts`.
    webhook_hosts: Vec<String>,
    /// `[[freezes]]`.
    freezes: Vec<gitmoxi_deploy::release::freeze::Freeze>,
    /// More `[[repos]]` (plain: polled every 500 ms, no token) by name and path.
    extra_repos: Vec<(String, String)>,
    /// `[[pipelines]]`.
    pipelines: Vec<gitmoxi_deploy::release::pipeline::Pipeline>,
    /// The forge of the extra repositories.
    extra_forge: Option<gitmoxi::forge::ForgeTarget>,
}

impl Settings<'_> {
    /// Polls every 500 ms; no webhook secret, notifications or model; drift every 5 minutes.
    fn plain(max_prune_percent: u32) -> Self {
        Settings {
            max_prune_percent,
            poll: Duration::from_millis(500),
            github_secret: None,
            notify: (None, None),
            drift_interval: Duration::from_secs(300),
            llm: None,
            api_token: None,
            gmctl_tokenless: Vec::new(),
            forge: None,
            public_url: None,
            repo_url: None,
            ssh: None,
            accounts: Default::default(),
            slack: None,
            aws_limits: Default::default(),
            webhook_hosts: Vec::new(),
            freezes: Vec::new(),
            extra_repos: Vec::new(),
            pipelines: Vec::new(),
            extra_forge: None,
        }
    }
}

/// A running controller (in-process, real time) against moto, through a fault proxy that counts
/// its calls (no faults unless the test asks); `stop` checks every call against the IAM policy.
pub struct Server {
    pub api: String,
    /// The API token the server wants, if any (the helpers send it).
    pub token: Option<String>,
    pub proxy: FaultProxy,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    _state: tempfile::TempDir,
}

impl Server {
    pub async fn start(moto: &Moto, repo: &TestRepo, max_prune_percent: u32) -> Server {
        Self::start_through(moto, repo, Settings::plain(max_prune_percent), Faults::default(), 1).await
    }

    /// A server with a chosen poll interval and GitHub webhook secret.
    pub async fn start_with(moto: &Moto, repo: &TestRepo, max_prune_percent: u32, poll: Duration, github_secret: Option<&str>) -> Server {
        Self::start_full(moto, repo, max_prune_percent, poll, github_secret, (None, None), Duration::from_secs(300)).await
    }

    /// Everything configurable: `notify` = (Slack webhook URL, generic webhook URL).
    pub async fn start_full(
        moto: &Moto,
        repo: &TestRepo,
        max_prune_percent: u32,
        poll: Duration,
        github_secret: Option<&str>,
        notify: (Option<String>, Option<String>),
        drift_interval: Duration,
    ) -> Server {
        Self::start_llm(moto, repo, max_prune_percent, poll, github_secret, notify, drift_interval, None).await
    }

    /// `start_full` with an LLM endpoint for diagnoses.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_llm(
        moto: &Moto,
        repo: &TestRepo,
        max_prune_percent: u32,
        poll: Duration,
        github_secret: Option<&str>,
        notify: (Option<String>, Option<String>),
        drift_interval: Duration,
        llm: Option<gitmoxi::llm::LlmConfig>,
    ) -> Server {
        let settings = Settings { llm, notify, github_secret, ..Settings { poll, drift_interval, ..Settings::plain(max_prune_percent) } };
        Self::start_through(moto, repo, settings, Faults::default(), 1).await
    }

    /// A server that notifies `notify` = (Slack, generic webhook) and lets depdef webhooks reach
    /// `webhook_hosts` besides public https hosts.
    pub async fn start_notifying(moto: &Moto, repo: &TestRepo, notify: (Option<String>, Option<String>), webhook_hosts: &[&str]) -> Server {
        let webhook_hosts = webhook_hosts.iter().map(|h| h.to_string()).collect();
        let settings = Settings { notify, webhook_hosts, ..Settings::plain(25) };
        Self::start_through(moto, repo, settings, Faults::default(), 1).await
    }

    /// A server whose repository is reached at `url` (e.g. ssh://) with `ssh` settings.
    pub async fn start_at(moto: &Moto, repo: &TestRepo, url: &str, ssh: gitmoxi::config::SshConfig) -> Server {
        let settings = Settings { repo_url: Some(url.to_string()), ssh: Some(ssh), ..Settings::plain(25) };
        Self::start_through(moto, repo, settings, Faults::default(), 1).await
    }

    /// A server that reports commit statuses to `target`, linking to `public_url`.
    pub async fn start_with_statuses(
        moto: &Moto,
        repo: &TestRepo,
        target: gitmoxi::forge::ForgeTarget,
        public_url: &str,
        github_secret: Option<&str>,
    ) -> Server {
        let settings = Settings { forge: Some(target), public_url: Some(public_url.to_string()), github_secret, ..Settings::plain(25) };
        Self::start_through(moto, repo, settings, Faults::default(), 1).await
    }

    /// A server that wants `token` on its API, but not from `tokenless` networks on `/api/v1`.
    pub async fn start_with_token(moto: &Moto, repo: &TestRepo, token: &str, tokenless: Vec<ipnet::IpNet>) -> Server {
        // polls hourly: new commits arrive only when a command fetches them (gmctl commit deploy)
        let settings = Settings {
            api_token: Some(token.to_string()),
            gmctl_tokenless: tokenless,
            poll: Duration::from_secs(3600),
            ..Settings::plain(25)
        };
        Self::start_through(moto, repo, settings, Faults::default(), 1).await
    }

    /// A server that reaches the workload accounts of `accounts` through their roles, comparing
    /// with AWS every `drift_interval`.
    /// A server that also tracks `extra_repos` (name, path) and runs `pipelines`.
    pub async fn start_with_pipelines(
        moto: &Moto,
        repo: &TestRepo,
        extra_repos: Vec<(String, String)>,
        pipelines: Vec<gitmoxi_deploy::release::pipeline::Pipeline>,
        extra_forge: Option<gitmoxi::forge::ForgeTarget>,
    ) -> Server {
        Self::start_through(moto, repo, Settings { extra_repos, pipelines, extra_forge, ..Settings::plain(50) }, Faults::default(), 1).await
    }

    /// A server with `[[freezes]]`.
    pub async fn start_with_freezes(moto: &Moto, repo: &TestRepo, freezes: Vec<gitmoxi_deploy::release::freeze::Freeze>) -> Server {
        Self::start_through(moto, repo, Settings { freezes, ..Settings::plain(50) }, Faults::default(), 1).await
    }

    pub async fn start_with_accounts(
        moto: &Moto,
        repo: &TestRepo,
        accounts: std::collections::BTreeMap<String, gitmoxi::aws::accounts::AccountRole>,
        drift_interval: Duration,
    ) -> Server {
        Self::start_through(moto, repo, Settings { accounts, drift_interval, ..Settings::plain(50) }, Faults::default(), 1).await
    }

    /// A server with the rate limits `aws_limits` whose calls go through a proxy with `faults`.
    pub async fn start_limited(moto: &Moto, repo: &TestRepo, faults: Faults, aws_limits: gitmoxi::aws::limits::Limits) -> Server {
        Self::start_through(moto, repo, Settings { aws_limits, ..Settings::plain(25) }, faults, 3).await
    }

    /// A server whose AWS calls go through a proxy with `faults`, with `max_attempts` SDK attempts.
    pub async fn start_faulty(moto: &Moto, repo: &TestRepo, faults: Faults, max_attempts: u32) -> Server {
        Self::start_through(moto, repo, Settings::plain(25), faults, max_attempts).await
    }

    async fn start_through(moto: &Moto, repo: &TestRepo, settings: Settings<'_>, faults: Faults, max_attempts: u32) -> Server {
        let Settings {
            max_prune_percent,
            poll,
            github_secret,
            notify,
            drift_interval,
            llm,
            api_token,
            gmctl_tokenless,
            forge,
            public_url,
            repo_url,
            ssh,
            accounts,
            slack,
            aws_limits,
            webhook_hosts,
            freezes,
            extra_repos,
            pipelines,
            extra_forge,
        } = settings;
        let proxy = FaultProxy::start(&moto.url, faults).await.expect("fault proxy starts");
        let state = tempfile::tempdir().expect("state dir");
        let port = free_port();
        let config = Config {
            repos: std::iter::once(RepoConfig {
                name: "deploys".into(),
                url: repo_url.unwrap_or_else(|| repo.path().display().to_string()),
                branches: vec!["main".into()],
                poll_interval: poll,
                max_prune: 3,
                max_prune_percent,
                token: None,
                drift: Default::default(),
                forge,
                ssh,
                scope: Default::default(),
                adopt_untagged: false,
            })
            .chain(extra_repos.iter().map(|(name, path)| RepoConfig {
                name: name.clone(),
                url: path.clone(),
                branches: vec!["main".into()],
                poll_interval: poll,
                max_prune: 3,
                max_prune_percent: 50,
                token: None,
                drift: Default::default(),
                forge: extra_forge.clone(),
                ssh: None,
                scope: Default::default(),
                adopt_untagged: false,
            }))
            .collect(),
            default_region: "us-east-1".into(),
            listen: format!("127.0.0.1:{port}").parse().expect("addr"),
            state_dir: state.path().to_path_buf(),
            concurrency: 4,
            api_token: api_token.clone(),
            aws_max_attempts: 1,
            github_webhook_secret: github_secret.map(str::to_string),
            gitlab_webhook_token: None,
            slack_webhook_url: notify.0,
            notify_webhook_url: notify.1,
            drift_interval,
            llm: llm.clone(),
            // the tests add local repositories through the API
            api_repos: gitmoxi::repo_policy::ApiRepoPolicy { allow_local: true, ..Default::default() },
            limits: Default::default(),
            allowed_hosts: Vec::new(),
            gmctl_tokenless_networks: gmctl_tokenless,
            public_url,
            render_worker: Some(env!("CARGO_BIN_EXE_gitmoxi").into()),
            accounts,
            slack,
            api_tokens: Default::default(),
            approvers: Vec::new(),
            aws_limits,
            ha: None,
            webhook_hosts,
            freezes,
            pipelines,
        };
        let metrics = Metrics::new();
        let provider = Arc::new(
            SdkProvider::from_config(sdk_config_at(&proxy.url, max_attempts).await, metrics.aws.clone())
                .with_roles(&config.accounts)
                .with_limits(Arc::new(gitmoxi::aws::limits::Limiter::new(config.aws_limits.clone(), metrics.aws_rate_limited.clone()))),
        );
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = gitmoxi::app::run_with(config, provider, metrics, Clock::system(), 42, stop).await {
                panic!("server failed: {e:#}");
            }
        });
        Server { api: format!("http://127.0.0.1:{port}"), token: api_token, proxy, shutdown, task: Some(task), _state: state }
    }

    pub async fn app(&self, prefix: &str) -> Option<Value> {
        let mut request = reqwest::Client::new().get(format!("{}/api/v2/apps/{prefix}", self.api));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// Polls the app until `done` holds (real time, bounded).
    pub async fn wait_app(&self, prefix: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let start = std::time::Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < limit {
            if let Some(app) = self.app(prefix).await {
                if done(&app) {
                    return app;
                }
                last = app;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("app {prefix} did not reach the expected state in {limit:?}; last seen: {last:#}");
    }

    /// Stops the controller; every AWS call it made must be allowed by the shipped IAM policy.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let allowed = crate::packaging::actions_allowed();
        let denied: Vec<String> = self.proxy.iam_actions().into_iter().filter(|a| !allowed.contains(a)).collect();
        assert!(denied.is_empty(), "gitmoxi sent calls packaging/iam-policy.json does not allow: {denied:?}\n{}", self.proxy.table());
    }
}

const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}, "gmDeploymentCircuitBreaker": {"failureThreshold": 2}}"#;

pub fn write_app(repo: &TestRepo, prefix: &str, service: &str, image: &str) {
    write_terraform_app(repo, prefix, service, "{{ image }}", 2, DEPDEF, &format!(r#", "image": "{image}""#));
}

/// An ECS rolling app whose svcdef reads the cluster, subnets and security group from the
/// Terraform outputs of `infra/terraform_output.json`; `image` goes into the taskdef as written
/// (a literal or a template), `input_values` are extra input keys (`, "k": "v"`).
pub fn write_terraform_app(repo: &TestRepo, prefix: &str, service: &str, image: &str, desired: u32, depdef: &str, input_values: &str) {
    repo.write_all(&ecs_app(prefix, service, "{{ cluster_name }}", image, desired, depdef));
    repo.write(
        &format!("{prefix}_input.json"),
        &format!(r#"{{"ref": {{"file": ["infra/terraform_output.json"], "type": "TERRAFORM"}}{input_values}}}"#),
    );
    let svc = std::fs::read_to_string(repo.path().join(format!("{prefix}_svcdef.json"))).expect("svcdef");
    let svc = svc
        .replace("{{ subnets | tojson }}", "{{ private_subnets | tojson }}")
        .replace("{{ security_groups | tojson }}", "[\"{{ security_group_id }}\"]");
    repo.write(&format!("{prefix}_svcdef.json"), &svc);
}

/// Registers a hand-made revision of `web` with another image and puts it on the service `web`
/// of `cluster` behind gitmoxi's back (drift); its ARN.
pub async fn put_hotfix_behind_gitmoxis_back(ecs: &aws_sdk_ecs::Client, cluster: &str) -> String {
    let hotfix_arn = register_by_hand(ecs, "web", "nginx:hotfix", 512).await;
    ecs.update_service().cluster(cluster).service("web").task_definition(&hotfix_arn).send().await.unwrap();
    hotfix_arn
}

/// Registers a Fargate revision of `family` whose one container runs `image`, as a person would
/// (not gitmoxi); its ARN.
pub async fn register_by_hand(ecs: &aws_sdk_ecs::Client, family: &str, image: &str, memory_mib: i32) -> String {
    let container = aws_sdk_ecs::types::ContainerDefinition::builder().name(family).image(image).memory(memory_mib).build();
    let registered = ecs
        .register_task_definition()
        .family(family)
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .container_definitions(container)
        .send()
        .await
        .unwrap();
    registered.task_definition().unwrap().task_definition_arn().unwrap().to_string()
}

/// The app redeployed its applied state after drift and is steady again.
pub fn healed_by_gitmoxi(app: &Value) -> bool {
    app["history"].to_string().contains("redeploying the applied state") && synced(app) && app["phase"].is_null()
}

pub fn synced(app: &Value) -> bool {
    app["status"] == "Synced"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_service_is_created_updated_and_deleted_from_git() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, "prod/web/web", "web", "nginx:1");
    write_app(&repo, "prod/api/api", "api", "nginx:1");
    repo.commit("web and api");
    let server = Server::start(&moto, &repo, 50).await;
    let ecs = moto.ecs().await;

    let app = server.wait_app("prod/web/web", Duration::from_secs(60), synced).await;
    assert_eq!(app["last_outcome"], "succeeded");
    let api = server.wait_app("prod/api/api", Duration::from_secs(60), synced).await;
    assert_eq!(api["last_outcome"], "succeeded", "{api:#}");
    let status = Command::new(env!("CARGO_BIN_EXE_gitmoxi")).args(["status", "--server", &server.api]).output().expect("status runs");
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(table.starts_with("APP"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("prod/web/web") && l.contains("Synced") && l.contains("succeeded")), "{table}");
    let svc = ecs.describe_services().cluster("prod").services("web").send().await.unwrap();
    let svc = &svc.services()[0];
    assert_eq!(svc.status(), Some("ACTIVE"));
    let td_arn = svc.task_definition().unwrap().to_string();
    assert!(td_arn.ends_with("task-definition/web:1"), "{td_arn}");
    let td = ecs.describe_task_definition().task_definition(&td_arn).send().await.unwrap();
    let container = &td.task_definition().unwrap().container_definitions()[0];
    assert_eq!(container.image(), Some("nginx:1"), "rendered from the input file");
    let subnets = svc.network_configuration().unwrap().awsvpc_configuration().unwrap().subnets();
    assert_eq!(subnets.len(), 2, "subnets rendered from the Terraform outputs");

    // image change → new revision on the service
    server.proxy.reset();
    write_app(&repo, "prod/web/web", "web", "nginx:2");
    repo.commit("web v2");
    server.wait_app("prod/web/web", Duration::from_secs(60), |a| synced(a) && a["fingerprint"] != app["fingerprint"]).await;
    eprintln!("calls of one ECS rolling deployment (2 tasks):\n{}", server.proxy.table());
    let mutations: Vec<(String, u64)> = server.proxy.mutations().into_iter().collect();
    assert_eq!(mutations, vec![("ecs:RegisterTaskDefinition".to_string(), 1), ("ecs:UpdateService".to_string(), 1)], "the minimum");
    let svc = ecs.describe_services().cluster("prod").services("web").send().await.unwrap();
    assert!(svc.services()[0].task_definition().unwrap().ends_with("web:2"));
    assert_eq!(svc.services()[0].running_count(), 2);

    // svcdef deleted → service deleted
    for suffix in ["_svcdef.json", "_taskdef.json", "_depdef.json", "_input.json"] {
        repo.remove(&format!("prod/web/web{suffix}"));
    }
    repo.commit("delete web (api stays: an empty checkout would delete nothing)");
    let start = std::time::Instant::now();
    loop {
        let svc = ecs.describe_services().cluster("prod").services("web").send().await.unwrap();
        if svc.services().first().is_some_and(|s| s.status() == Some("INACTIVE")) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "service not deleted: {svc:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let start = std::time::Instant::now();
    while server.app("prod/web/web").await.is_some() {
        assert!(start.elapsed() < Duration::from_secs(30), "the deleted app is still listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let api = ecs.describe_services().cluster("prod").services("api").send().await.unwrap();
    assert_eq!(api.services()[0].status(), Some("ACTIVE"), "the other app is untouched");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_bad_template_does_not_block_its_neighbour() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, "prod/good/good", "good", "nginx:1");
    write_app(&repo, "prod/bad/bad", "bad", "nginx:1");
    repo.write(
        "prod/bad/bad_taskdef.json",
        "{\n  \"family\": \"bad\",\n  \"containerDefinitions\": [\n    {\"name\": \"bad\", \"image\": \"{{ imagee }}\", \"memory\": 512}\n  ]\n}\n",
    );
    repo.commit("good and bad");
    let server = Server::start(&moto, &repo, 25).await;
    server.wait_app("prod/good/good", Duration::from_secs(60), synced).await;
    let bad = server.wait_app("prod/bad/bad", Duration::from_secs(30), |a| a["status"] == "Invalid").await;
    let problem = bad["problems"][0].as_str().unwrap();
    assert!(problem.starts_with("prod/bad/bad_taskdef.json:4:"), "{problem}");
    assert!(problem.contains("'imagee'"), "{problem}");
    let ecs = moto.ecs().await;
    let svc = ecs.describe_services().cluster("prod").services("bad").send().await.unwrap();
    assert!(svc.services().is_empty(), "the bad app deployed nothing");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_cluster_not_found_is_a_clear_error_in_status_and_history() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    let outputs = moto.infra("prod").replace("\"prod\"", "\"missing-cluster\"");
    repo.write("infra/terraform_output.json", &outputs);
    write_app(&repo, "prod/web/web", "web", "nginx:1");
    repo.commit("web on a missing cluster");
    let server = Server::start(&moto, &repo, 25).await;
    let app = server.wait_app("prod/web/web", Duration::from_secs(60), |a| a["last_outcome"] == "failed").await;
    let cause = app["last_cause"].as_str().unwrap();
    assert!(cause.contains("ClusterNotFoundException"), "{cause}");
    let history: Vec<String> = app["history"].as_array().unwrap().iter().map(|h| h["message"].as_str().unwrap().to_string()).collect();
    assert!(history.iter().any(|h| h.contains("ClusterNotFoundException")), "{history:?}");
    assert_eq!(app["status"], "Failed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_breaker_rolls_back_a_failing_image() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, "prod/web/web", "web", "nginx:1");
    repo.commit("web");
    let (llm_url, asked) = llm_stub().await;
    let llm = gitmoxi::llm::LlmConfig { base_url: llm_url, model: "local-model".into(), api_key: None };
    let server =
        Server::start_llm(&moto, &repo, 25, Duration::from_millis(500), None, (None, None), Duration::from_secs(300), Some(llm)).await;
    let first = server.wait_app("prod/web/web", Duration::from_secs(60), synced).await;
    write_app(&repo, "prod/web/web", "web", "nginx:fail");
    repo.commit("broken image");
    let app = server.wait_app("prod/web/web", Duration::from_secs(90), |a| a["status"] == "RolledBack").await;
    assert!(app["last_cause"].as_str().unwrap().contains("circuit breaker tripped"), "{app:#}");
    assert_eq!(app["fingerprint"], first["fingerprint"], "the applied state stays the last good one");
    let ecs = moto.ecs().await;
    let svc = ecs.describe_services().cluster("prod").services("web").send().await.unwrap();
    assert!(svc.services()[0].task_definition().unwrap().ends_with("web:1"), "rolled back to web:1");
    let deployment = app["last_deployment"].as_str().unwrap();
    let record: Value = reqwest::get(format!("{}/api/v2/deployments/{deployment}", server.api)).await.unwrap().json().await.unwrap();
    assert!(record["evidence"].to_string().contains("CannotPullContainerError"), "{record:#}");
    // the diagnosis: cause, evidence, what changed in the app, the next step
    let api = server.api.clone();
    let id = deployment.to_string();
    let out =
        tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_gitmoxi")).args(["diagnose", &id, "--server", &api]).output())
            .await
            .unwrap()
            .expect("diagnose runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "rolled_back: circuit breaker tripped",
        "CannotPullContainerError",
        "+",
        "nginx:fail",
        "-",
        "nginx:1",
        "Next step: the new tasks keep stopping",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
    assert!(text.contains("What changed in the app since"), "{text}");
    assert!(text.contains("Summary (model-written): The image tag nginx:fail does not exist."), "{text}");
    let request = asked.lock().unwrap().clone().expect("the model was asked");
    assert_eq!(request["model"], "local-model");
    assert!(request["messages"][1]["content"].as_str().unwrap().contains("CannotPullContainerError"), "the facts were sent: {request}");
    server.stop().await;
}

/// gmctl `commit riskiq` with `[llm]`: gitmoxi's own assessment goes to the model with the risk
/// instructions and the model gmctl names; its summary comes back on top and is kept with the
/// assessment `riskiq get` reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_riskiq_puts_a_model_summary_on_top_of_the_assessment() {
    let (llm_url, asked) = llm_stub().await;
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, "prod/web/web", "web", "nginx:1");
    repo.commit("web");
    let llm = gitmoxi::llm::LlmConfig { base_url: llm_url, model: "local-model".into(), api_key: None };
    let poll = Duration::from_secs(3600);
    let server = Server::start_llm(&moto, &repo, 25, poll, None, (None, None), Duration::from_secs(300), Some(llm)).await;
    server.wait_app("prod/web/web", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    write_app(&repo, "prod/web/web", "web", "nginx:2");
    let commit = repo.commit("web: nginx 2");
    let url = repo.path().display().to_string();
    let body = serde_json::json!({"repo_url": url, "branch": "main", "llm_model": "risk-model", "llm_provider": "groq"});
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/commits/riskiq", server.api))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["riskiq"]["ai_summary"], "The image tag nginx:fail does not exist.", "{answer}");
    assert!(answer["message_list"].to_string().contains("llm_provider 'groq' is not used"), "{answer}");
    let request = asked.lock().unwrap().clone().expect("the model was asked");
    // issue 27: the model is the operator's ([llm]), never the one the caller names
    assert_eq!(request["model"], "local-model", "the model of [llm], never the one gmctl named");
    assert!(answer["message_list"].to_string().contains("llm_model 'risk-model' is not used"), "{answer}");
    assert!(request["messages"][0]["content"].as_str().unwrap().contains("risk assessment"), "{request}");
    assert!(request["messages"][1]["content"].as_str().unwrap().contains("image of container web: nginx:1 → nginx:2"), "{request}");
    let kept: Value = reqwest::get(format!("{}/api/v1/riskiq?commit_hash={commit}", server.api)).await.unwrap().json().await.unwrap();
    assert!(kept[0]["assessment"].as_str().unwrap().contains("model summary of the commit: The image tag"), "{kept}");
    let svc = moto.ecs().await.describe_services().cluster("prod").services("web").send().await.unwrap();
    assert!(svc.services()[0].task_definition().unwrap().ends_with("web:1"), "an assessment deploys nothing");
    server.stop().await;
}

/// A local server speaking the OpenAI chat-completions API; records the last request.
async fn llm_stub() -> (String, Arc<std::sync::Mutex<Option<Value>>>) {
    use axum::routing::post;
    let asked: Arc<std::sync::Mutex<Option<Value>>> = Arc::new(std::sync::Mutex::new(None));
    let seen = asked.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap() = Some(body);
                axum::Json(serde_json::json!({"choices": [{"message": {"role": "assistant", "content": "The image tag nginx:fail does not exist."}}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_drift_behind_gitmoxis_back_is_healed() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, "prod/web/web", "web", "nginx:1");
    repo.commit("web");
    let server = Server::start_full(&moto, &repo, 25, Duration::from_millis(500), None, (None, None), Duration::from_secs(1)).await;
    server.wait_app("prod/web/web", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    let ecs = moto.ecs().await;
    let hotfix_arn = put_hotfix_behind_gitmoxis_back(&ecs, "prod").await;
    let app = server.wait_app("prod/web/web", Duration::from_secs(60), healed_by_gitmoxi).await;
    assert!(app["history"].to_string().contains("drift: service web runs web:2 instead of web:1"), "{app:#}");
    let svc = ecs.describe_services().cluster("prod").services("web").send().await.unwrap();
    let td = svc.services()[0].task_definition().unwrap().to_string();
    assert_ne!(td, hotfix_arn, "healed");
    let described = ecs.describe_task_definition().task_definition(&td).send().await.unwrap();
    assert_eq!(described.task_definition().unwrap().container_definitions()[0].image(), Some("nginx:1"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_tokens_come_from_secrets_manager_and_ssm_and_are_cached_briefly() {
    use gitmoxi::credentials::{Credentials, TokenSource};
    let moto = Moto::start().await;
    let config = moto.sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let plain = sm.create_secret().name("github/plain").secret_string("ghp_plain_token").send().await.unwrap();
    let json = sm.create_secret().name("github/json").secret_string(r#"{"token": "ghp_json_token", "user": "ci"}"#).send().await.unwrap();
    let ssm = aws_sdk_ssm::Client::new(&config);
    ssm.put_parameter()
        .name("/ci/github-token")
        .value("ghp_ssm_token")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let metrics = Metrics::new();
    let provider = Arc::new(SdkProvider::from_config(config.clone(), metrics.aws.clone()));
    let creds = Credentials::new(provider, "us-east-1".into());
    let plain_arn = plain.arn().unwrap().to_string();
    let source = TokenSource::parse(&plain_arn).unwrap();
    assert_eq!(creds.token(&source).await.unwrap(), "ghp_plain_token");
    assert_eq!(creds.token(&TokenSource::parse(json.arn().unwrap()).unwrap()).await.unwrap(), "ghp_json_token");
    let ssm_arn = "arn:aws:ssm:us-east-1:123456789012:parameter/ci/github-token";
    assert_eq!(creds.token(&TokenSource::parse(ssm_arn).unwrap()).await.unwrap(), "ghp_ssm_token");
    // rotated behind our back: the cached value is served until the TTL runs out
    sm.put_secret_value().secret_id(&plain_arn).secret_string("ghp_rotated").send().await.unwrap();
    assert_eq!(creds.token(&source).await.unwrap(), "ghp_plain_token");
    let text = metrics.render();
    assert!(text.contains(r#"gitmoxi_aws_requests_total{operation="GetSecretValue",result="ok",service="secretsmanager"} 2"#), "{text}");
    // errors name the source, never a value
    let missing = TokenSource::parse("arn:aws:secretsmanager:us-east-1:123456789012:secret:nope").unwrap();
    let err = creds.token(&missing).await.unwrap_err();
    assert!(err.contains("Secrets Manager secret arn:aws:secretsmanager:us-east-1:123456789012:secret:nope"), "{err}");
    let err = creds.token(&TokenSource::Env("GITMOXI_TEST_SURELY_UNSET_VAR".into())).await.unwrap_err();
    assert!(err.contains("environment variable GITMOXI_TEST_SURELY_UNSET_VAR is not set"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_an_autoscaled_count_survives_an_image_deployment_and_a_rollback() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, "prod/web/web", "web", "nginx:1");
    repo.commit("web");
    let server = Server::start(&moto, &repo, 25).await;
    let first = server.wait_app("prod/web/web", Duration::from_secs(60), synced).await;
    let ecs = moto.ecs().await;
    // Application Auto Scaling (or an operator) scales out; the svcdef still says 2
    ecs.update_service().cluster("prod").service("web").desired_count(3).send().await.unwrap();

    write_app(&repo, "prod/web/web", "web", "nginx:2");
    repo.commit("web v2");
    let second = server.wait_app("prod/web/web", Duration::from_secs(60), |a| synced(a) && a["fingerprint"] != first["fingerprint"]).await;
    assert_eq!(second["last_outcome"], "succeeded");
    let svc = ecs.describe_services().cluster("prod").services("web").send().await.unwrap();
    assert!(svc.services()[0].task_definition().unwrap().ends_with("web:2"));
    assert_eq!(svc.services()[0].desired_count(), 3, "the image deployment kept the scaled count");

    write_app(&repo, "prod/web/web", "web", "nginx:fail");
    repo.commit("broken image");
    server.wait_app("prod/web/web", Duration::from_secs(90), |a| a["status"] == "RolledBack").await;
    let svc = ecs.describe_services().cluster("prod").services("web").send().await.unwrap();
    assert!(svc.services()[0].task_definition().unwrap().ends_with("web:2"), "rolled back to web:2");
    assert_eq!(svc.services()[0].desired_count(), 3, "the rollback kept the scaled count too");
    server.stop().await;
}

/// A svcdef without a taskdef file naming `family:revision`, then the family: ECS (moto)
/// reports ARNs; each change converges with one UpdateService and stays synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_task_definition_named_by_family_or_revision_converges() {
    let moto = Moto::start().await;
    let ecs = moto.ecs().await;
    for image in ["nginx:1", "nginx:2"] {
        register_by_hand(&ecs, "api", image, 128).await;
    }
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, "prod/api/api", "api", "unused");
    repo.remove("prod/api/api_taskdef.json");
    let svcdef = std::fs::read_to_string(repo.path().join("prod/api/api_svcdef.json")).unwrap();
    let named = |td: &str| svcdef.replacen('{', &format!("{{\"taskDefinition\": \"{td}\","), 1);
    repo.write("prod/api/api_svcdef.json", &named("api:1"));
    repo.commit("api on api:1");
    let server = Server::start(&moto, &repo, 25).await;
    let first = server.wait_app("prod/api/api", Duration::from_secs(60), synced).await;
    assert_eq!(first["last_outcome"], "succeeded");
    let svc = ecs.describe_services().cluster("prod").services("api").send().await.unwrap();
    assert!(svc.services()[0].task_definition().unwrap().ends_with("task-definition/api:1"));

    server.proxy.reset();
    repo.write("prod/api/api_svcdef.json", &named("api"));
    repo.commit("api on the newest revision of its family");
    let second = server.wait_app("prod/api/api", Duration::from_secs(60), |a| synced(a) && a["fingerprint"] != first["fingerprint"]).await;
    assert_eq!(second["last_outcome"], "succeeded");
    let svc = ecs.describe_services().cluster("prod").services("api").send().await.unwrap();
    assert!(svc.services()[0].task_definition().unwrap().ends_with("task-definition/api:2"), "the family's newest revision");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mutations: Vec<(String, u64)> = server.proxy.mutations().into_iter().collect();
    assert_eq!(mutations, vec![("ecs:UpdateService".to_string(), 1)], "one update, and no update after it converged");
    assert_eq!(server.app("prod/api/api").await.unwrap()["status"], "Synced");
    server.stop().await;
}

/// An app naming another account fails with the account in the message and touches nothing;
/// its neighbour deploys; naming the controller's own account is like naming none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_an_app_in_another_account_fails_and_touches_nothing() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, "prod/web/web", "web", "nginx:1");
    write_app(&repo, "prod/other/other", "other", "nginx:1");
    repo.write("prod/other/other_depdef.json", r#"{"environment": {"account": "210987654321"}, "stabilityCheck": {"pollInterval": 1}}"#);
    write_app(&repo, "prod/own/own", "own", "nginx:1");
    repo.write("prod/own/own_depdef.json", r#"{"environment": {"account": "123456789012"}, "stabilityCheck": {"pollInterval": 1}}"#);
    repo.commit("three apps, one in another account");
    let server = Server::start(&moto, &repo, 100).await;
    server.wait_app("prod/web/web", Duration::from_secs(60), synced).await;
    server.wait_app("prod/own/own", Duration::from_secs(60), synced).await;
    let other = server.wait_app("prod/other/other", Duration::from_secs(60), |a| a["status"] == "Failed").await;
    let cause = other["last_cause"].as_str().unwrap();
    assert!(cause.contains("no role configured for account 210987654321") && cause.contains("123456789012"), "{other:#}");
    let ecs = moto.ecs().await;
    let services = ecs.list_services().cluster("prod").send().await.unwrap();
    assert!(services.service_arns().iter().all(|arn| !arn.ends_with("/other")), "{:?}", services.service_arns());
    let families = ecs.list_task_definition_families().family_prefix("other").send().await.unwrap();
    assert!(families.families().is_empty(), "nothing registered for it: {:?}", families.families());
    server.stop().await;
}

/// Issue 13: a corrupt or lost state directory used to redeploy everything. Five apps (three
/// rolling services, a blue/green service, a Lambda function) are deployed; a new gitmoxi on an
/// empty state directory adopts all five, and moto sees no mutating call at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_fresh_state_directory_adopts_five_running_apps_with_zero_mutating_calls() {
    let moto = Moto::start().await;
    let infra = moto.infra_with("prod", &["--alb", "--lambda"]);
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &infra);
    let depdef = r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#;
    let rolling = ["apps/a/a", "apps/b/b", "apps/c/c"];
    for (i, prefix) in rolling.iter().enumerate() {
        write_terraform_app(&repo, prefix, &format!("svc{i}"), "nginx:1", 1, depdef, "");
    }
    crate::moto_blue_green::write_app(&repo, "nginx:1");
    crate::moto_lambda::write_function(&repo, crate::moto_lambda::ZIPS[0], 5);
    let commit = repo.commit("five apps");
    let all: Vec<&str> = rolling.iter().copied().chain([crate::moto_blue_green::PREFIX, crate::moto_lambda::PREFIX]).collect();
    let first = Server::start(&moto, &repo, 25).await;
    for prefix in &all {
        first.wait_app(prefix, Duration::from_secs(120), |a| synced(a) && a["applied_commit"] == commit.as_str()).await;
    }
    first.stop().await;

    // the state directory is gone: a new one, same AWS, same head
    let second = Server::start(&moto, &repo, 25).await;
    for prefix in &all {
        let app = second.wait_app(prefix, Duration::from_secs(60), |a| synced(a) && a["applied_commit"] == commit.as_str()).await;
        let history = app["history"].to_string();
        assert!(history.contains("adopted: "), "{prefix}: {history}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(second.proxy.mutations().is_empty(), "no mutating call after adoption:\n{}", second.proxy.table());
    second.stop().await;
}
