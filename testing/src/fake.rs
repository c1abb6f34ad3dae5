//! The in-memory fake AWS world for simulation tests (TESTING.md §1): ECS clusters, task
//! definitions, services with a scheduler, tasks that take time to start or fail with a stop
//! reason, and fault knobs (throttling, 5xx, "applied but the response was lost").
//!
//! Blue/green pieces live here too: task sets with their own scheduler (Spot capacity that runs
//! out), target groups whose targets turn healthy after a delay, listeners and rules with
//! weights, and alarms whose state can be scheduled at a virtual time (`fake_elb.rs` has the
//! ELB and CloudWatch adapters over this world).
//!
//! Time is `tokio::time::Instant` (pause it in tests); the world advances lazily on every call.
//! Invariant: the fake mirrors the API contracts gitmoxi relies on (client-token idempotency of
//! CreateService, tags on task definitions, DescribeServices of a missing service = no entry).

use async_trait::async_trait;
use gitmoxi::aws::{Alarms, ApiGateway, AwsError, AwsErrorKind, AwsProvider, Ecs, Elb, Lambda};
use gitmoxi_deploy::observed::{ObservedContainer, ObservedDeployment, ObservedService, ObservedTask, ObservedTaskSet};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

const ACCOUNT: &str = "123456789012";

mod metrics;
mod native;
mod settings;
pub use native::WALL_ORIGIN_MS;

#[derive(Debug, Clone)]
struct FakeTaskDef {
    arn: String,
    images: Vec<String>,
    tags: BTreeMap<String, String>,
    /// Each container's `awslogs` group and stream prefix, as registered.
    logs: Vec<gitmoxi_deploy::observed::ObservedTaskLogs>,
}

#[derive(Debug, Clone)]
struct FakeDeployment {
    id: String,
    task_definition: String,
}

#[derive(Debug, Clone)]
struct FakeService {
    arn: String,
    region: String,
    cluster: String,
    name: String,
    status: String,
    task_definition: String,
    desired: u32,
    deployments: Vec<FakeDeployment>,
    tags: BTreeMap<String, String>,
    client_token: Option<String>,
    events: Vec<String>,
    /// `deploymentController.type` (ECS or EXTERNAL).
    controller: String,
    /// `deploymentConfiguration`, as last sent.
    deployment_configuration: Option<Value>,
    /// What DescribeServices reports of the service's settings ([`settings`]).
    settings: serde_json::Map<String, Value>,
}

/// A task set of an EXTERNAL service.
#[derive(Debug, Clone)]
pub(super) struct FakeTaskSet {
    id: String,
    arn: String,
    service_key: (String, String, String),
    external_id: String,
    task_definition: String,
    scale: f64,
    status: String,
    target_groups: Vec<String>,
    capacity_providers: Vec<String>,
    client_token: Option<String>,
    /// The last time a task could not be placed (failures are reported at most once a minute).
    last_capacity_failure: Option<Instant>,
}

/// A listener default action or rule that forwards with weights.
#[derive(Debug, Clone)]
pub(super) struct FakeForward {
    pub(super) arn: String,
    pub(super) load_balancer: String,
    pub(super) is_rule: bool,
    pub(super) targets: Vec<(String, u32)>,
}

#[derive(Debug, Clone)]
struct FakeTask {
    arn: String,
    service_key: (String, String, String),
    deployment: String,
    task_definition: String,
    created: Instant,
    /// When it becomes RUNNING (None: never).
    running_at: Option<Instant>,
    /// When it stops, and why.
    stopped_at: Option<(Instant, String, String)>,
    /// The exit code of its container once it stopped (one-off tasks: RunTask).
    exit_code: Option<i32>,
}

impl FakeTask {
    fn status(&self, now: Instant) -> &'static str {
        match (&self.stopped_at, self.running_at) {
            (Some((at, _, _)), _) if *at <= now => "STOPPED",
            (_, Some(at)) if at <= now => "RUNNING",
            _ => "PENDING",
        }
    }
}

/// Fault and behaviour knobs.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// How long a healthy task takes to reach RUNNING.
    pub start_delay: Duration,
    /// How long a failing task takes to stop.
    pub fail_delay: Duration,
    /// An image containing any of these substrings fails with CannotPullContainerError.
    pub failing_images: Vec<String>,
    /// An image containing any of these never reaches RUNNING (stuck PENDING).
    pub stuck_images: Vec<String>,
    /// An image containing any of these runs but never turns healthy in its target groups.
    pub unhealthy_images: Vec<String>,
    /// How long after RUNNING a task turns healthy in its target groups.
    pub health_delay: Duration,
    /// How many FARGATE_SPOT tasks can run at once (None: unlimited).
    pub spot_capacity: Option<u32>,
    /// An ECS lifecycle hook whose Lambda's name contains any of these answers FAILED.
    pub failing_hooks: Vec<String>,
    /// An ECS lifecycle hook whose Lambda's name contains any of these answers IN_PROGRESS for 30 s.
    pub slow_hooks: Vec<String>,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            start_delay: Duration::from_secs(20),
            fail_delay: Duration::from_secs(15),
            failing_images: vec!["fail".into()],
            stuck_images: vec!["stuck".into()],
            unhealthy_images: vec!["unhealthy".into()],
            health_delay: Duration::from_secs(10),
            spot_capacity: None,
            failing_hooks: vec!["fail".into()],
            slow_hooks: vec!["slow".into()],
        }
    }
}

#[derive(Default)]
pub(super) struct World {
    clusters: BTreeSet<(String, String)>,
    task_sets: Vec<FakeTaskSet>,
    /// Target group ARN → load balancer ARN (None: not attached).
    pub(super) target_groups: BTreeMap<String, Option<String>>,
    pub(super) forwards: Vec<FakeForward>,
    /// Alarm name → scheduled states (from when).
    pub(super) alarms: BTreeMap<String, Vec<(Instant, String)>>,
    /// Secrets Manager secrets and SSM parameters by id / name.
    secrets: BTreeMap<String, String>,
    /// Lambda functions, mappings, APIs and lambda targets (`fake_lambda.rs`).
    pub(super) lambda: super::fake_lambda::LambdaWorld,
    task_defs: BTreeMap<(String, String), Vec<FakeTaskDef>>,
    services: BTreeMap<(String, String, String), FakeService>,
    tasks: Vec<FakeTask>,
    seq: u64,
    /// Pending faults per operation: how many calls to throttle / to apply-then-lose.
    throttle: BTreeMap<String, u32>,
    lose: BTreeMap<String, u32>,
    /// Every call per operation.
    calls: BTreeMap<String, u32>,
    /// Successful mutations in order: (operation, detail).
    pub(super) mutations: Vec<(String, String)>,
    knobs: Knobs,
    /// Service deployments of ECS's native strategies (`fake/native.rs`).
    native: Vec<native::FakeNativeDeployment>,
    /// When the world began (its wall clock starts at [`WALL_ORIGIN_MS`] then).
    origin: Option<Instant>,
    /// Every call is refused: the world of an account no credentials reach.
    refuse: Option<String>,
    /// CloudWatch metric datapoints (`fake/metrics.rs`).
    pub(super) metrics: metrics::Metrics,
    /// The client tokens of RunTask calls (a replay starts nothing).
    run_tokens: Vec<String>,
}

/// Another AWS account of a simulation: its own world, and whether its role trusts the controller.
#[derive(Clone)]
pub struct FakeAccount {
    /// The account id.
    pub id: String,
    /// What AWS holds in that account.
    pub world: FakeWorld,
    /// Whether its role lets the controller in (AssumeRole succeeds).
    pub trusts: bool,
}

/// The fake world; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct FakeWorld {
    inner: Arc<Mutex<World>>,
}

impl FakeWorld {
    pub fn new() -> Self {
        let world = Self::default();
        world.world().origin = Some(Instant::now());
        world
    }

    pub(super) fn world(&self) -> MutexGuard<'_, World> {
        gitmoxi::sync::lock(&self.inner)
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.world().knobs = knobs;
    }

    pub fn create_cluster(&self, region: &str, name: &str) {
        self.world().clusters.insert((region.to_string(), name.to_string()));
    }

    /// The next `n` calls of `operation` fail with a throttling error and change nothing.
    pub fn throttle(&self, operation: &str, n: u32) {
        *self.world().throttle.entry(operation.to_string()).or_default() += n;
    }

    /// The next `n` calls of `operation` take effect, then answer with a 503 (response lost).
    pub fn lose_response(&self, operation: &str, n: u32) {
        *self.world().lose.entry(operation.to_string()).or_default() += n;
    }

    /// How many calls of each operation were made.
    pub fn all_calls(&self) -> BTreeMap<String, u32> {
        self.world().calls.clone()
    }

    /// How many calls of `operation` were made.
    pub fn calls(&self, operation: &str) -> u32 {
        self.world().calls.get(operation).copied().unwrap_or(0)
    }

    /// Successful mutations of `operation` (with details), in order.
    pub fn mutations(&self, operation: &str) -> Vec<String> {
        self.world().mutations.iter().filter(|(op, _)| op == operation).map(|(_, d)| d.clone()).collect()
    }

    /// How many successful mutations the world has seen (all operations).
    pub fn mutation_count(&self) -> usize {
        self.world().mutations.len()
    }

    /// The container images of a registered task definition (by ARN), as ECS would describe it.
    pub fn task_definition_images(&self, region: &str, task_definition: &str) -> Vec<String> {
        self.world().images_of(region, task_definition)
    }

    /// Registered revisions of a family.
    pub fn revisions(&self, region: &str, family: &str) -> usize {
        self.world().task_defs.get(&(region.to_string(), family.to_string())).map_or(0, Vec::len)
    }

    /// The service as ECS would describe it now.
    pub fn service(&self, region: &str, cluster: &str, name: &str) -> Option<ObservedService> {
        let mut w = self.world();
        let now = Instant::now();
        w.advance(now);
        w.services.get(&(region.to_string(), cluster.to_string(), name.to_string())).map(|s| w.describe(s, now))
    }

    /// Changes one of a service's settings behind gitmoxi's back (drift of a svcdef field).
    pub fn set_service_setting(&self, region: &str, cluster: &str, name: &str, field: &str, value: Value) {
        let mut w = self.world();
        if let Some(s) = w.services.get_mut(&(region.to_string(), cluster.to_string(), name.to_string())) {
            s.settings.insert(field.to_string(), value);
        }
    }

    /// Changes a service's task definition behind gitmoxi's back (drift, tests).
    pub fn set_service_task_definition(&self, region: &str, cluster: &str, name: &str, task_definition: &str) {
        let mut w = self.world();
        w.seq += 1;
        let id = format!("ecs-svc/{}", w.seq);
        if let Some(s) = w.services.get_mut(&(region.to_string(), cluster.to_string(), name.to_string())) {
            s.task_definition = task_definition.to_string();
            s.deployments.insert(0, FakeDeployment { id, task_definition: task_definition.to_string() });
        }
    }

    /// Scales a service behind gitmoxi's back, as Application Auto Scaling or an operator does:
    /// ECS then runs `desired` tasks of the current task definition.
    pub fn scale_service(&self, region: &str, cluster: &str, name: &str, desired: u32) {
        let mut w = self.world();
        if let Some(s) = w.services.get_mut(&(region.to_string(), cluster.to_string(), name.to_string())) {
            s.desired = desired;
        }
    }

    /// A Secrets Manager secret or an SSM parameter (by id / name).
    pub fn put_secret(&self, id: &str, value: &str) {
        self.world().secrets.insert(id.to_string(), value.to_string());
    }

    /// A target group (optionally attached to a load balancer).
    pub fn add_target_group(&self, arn: &str, load_balancer: Option<&str>) {
        self.world().target_groups.insert(arn.to_string(), load_balancer.map(str::to_string));
    }

    /// A listener whose default action forwards to `targets` (ARN, weight).
    pub fn add_listener(&self, arn: &str, load_balancer: &str, targets: &[(&str, u32)]) {
        let targets = targets.iter().map(|(t, w)| (t.to_string(), *w)).collect();
        self.world().forwards.push(FakeForward { arn: arn.into(), load_balancer: load_balancer.into(), is_rule: false, targets });
    }

    /// A listener rule that forwards to `targets`.
    pub fn add_rule(&self, arn: &str, load_balancer: &str, targets: &[(&str, u32)]) {
        let targets = targets.iter().map(|(t, w)| (t.to_string(), *w)).collect();
        self.world().forwards.push(FakeForward { arn: arn.into(), load_balancer: load_balancer.into(), is_rule: true, targets });
    }

    /// The weights a listener default action or rule forwards with now.
    pub fn forward_weights(&self, arn: &str) -> Vec<(String, u32)> {
        self.world().forwards.iter().find(|f| f.arn == arn).map(|f| f.targets.clone()).unwrap_or_default()
    }

    /// Every Lambda invocation made (function, payload), oldest first.
    pub fn lambda_invocations(&self) -> Vec<(String, Value)> {
        self.world().lambda.invocations.clone()
    }

    /// PutMetricData: one datapoint `ago` before now (virtual time) on the world's wall clock.
    pub fn put_metric(&self, namespace: &str, name: &str, dimensions: &[(&str, &str)], ago: Duration, value: f64) {
        let mut w = self.world();
        let now = Instant::now();
        let at_ms = w.wall_ms(now).saturating_sub(ago.as_millis() as u64);
        let mut dimensions: Vec<(String, String)> = dimensions.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        dimensions.sort();
        w.metrics.points.push(metrics::Datapoint { namespace: namespace.into(), name: name.into(), dimensions, at_ms, value });
    }

    /// GetMetricData as CloudWatch answers it (the fake's own calls, for the Alarms client).
    pub(crate) fn metric_data(
        &self,
        request: &gitmoxi_deploy::analysis::queries::MetricRequest,
    ) -> Result<BTreeMap<String, Vec<f64>>, String> {
        self.world().metrics.get(request)
    }

    /// Creates (or sets) an alarm's state from now on.
    pub fn set_alarm(&self, name: &str, state: &str) {
        self.set_alarm_after(name, state, Duration::ZERO);
    }

    /// Schedules an alarm's state from `after` (virtual time) on.
    pub fn set_alarm_after(&self, name: &str, state: &str, after: Duration) {
        let at = Instant::now() + after;
        self.world().alarms.entry(name.to_string()).or_default().push((at, state.to_string()));
    }

    /// The service's task sets as ECS would describe them now.
    pub fn task_sets(&self, region: &str, cluster: &str, service: &str) -> Vec<ObservedTaskSet> {
        let mut w = self.world();
        let now = Instant::now();
        w.advance(now);
        let key = (region.to_string(), cluster.to_string(), service.to_string());
        w.task_sets.iter().filter(|t| t.service_key == key).map(|t| w.observe_task_set(t, now)).collect()
    }

    /// Healthy targets of a target group now.
    pub fn healthy_targets(&self, target_group: &str) -> u32 {
        let mut w = self.world();
        let now = Instant::now();
        w.advance(now);
        w.healthy_in(target_group, now)
    }

    /// A provider handing out this world's ECS per region.
    pub fn provider(&self) -> Arc<dyn AwsProvider> {
        self.provider_with_accounts(&[])
    }

    /// A provider for this world (the controller's own account) and other accounts' worlds,
    /// reached as AWS reaches them through roles: an account whose role does not trust the
    /// controller is refused at AssumeRole, and no account's calls ever land in another's world.
    pub fn provider_with_accounts(&self, accounts: &[FakeAccount]) -> Arc<dyn AwsProvider> {
        Arc::new(FakeProvider { world: self.clone(), accounts: accounts.iter().map(|a| (a.id.clone(), a.clone())).collect() })
    }

    /// A world that refuses every call (an account the controller cannot reach).
    fn refusing(account: &str) -> FakeWorld {
        let world = FakeWorld::new();
        world.world().refuse = Some(account.to_string());
        world
    }

    fn client(&self, region: &str) -> FakeEcs {
        FakeEcs { world: self.clone(), region: region.to_string() }
    }

    pub(super) fn begin(&self, operation: &'static str) -> Result<(), AwsError> {
        let mut w = self.world();
        *w.calls.entry(operation.to_string()).or_default() += 1;
        if let Some(account) = &w.refuse {
            let message = format!("no credentials reach account {account}");
            return Err(AwsError::new("ecs", operation, AwsErrorKind::AccessDenied, "AccessDeniedException", message));
        }
        if let Some(n) = w.throttle.get_mut(operation).filter(|n| **n > 0) {
            *n -= 1;
            return Err(AwsError::new("ecs", operation, AwsErrorKind::Throttled, "ThrottlingException", "Rate exceeded"));
        }
        Ok(())
    }

    pub(super) fn end<T>(&self, operation: &'static str, result: Result<T, AwsError>) -> Result<T, AwsError> {
        let mut w = self.world();
        if result.is_ok() {
            if let Some(n) = w.lose.get_mut(operation).filter(|n| **n > 0) {
                *n -= 1;
                return Err(AwsError::new("ecs", operation, AwsErrorKind::Unavailable, "ServiceUnavailable", "response lost (fake fault)"));
            }
        }
        result
    }
}

struct FakeProvider {
    world: FakeWorld,
    accounts: BTreeMap<String, FakeAccount>,
}

impl FakeProvider {
    /// The world calls into `account` reach (a refusing one when none).
    fn world_of(&self, account: Option<&str>) -> FakeWorld {
        match account {
            None => self.world.clone(),
            Some(id) => self.reachable(id).unwrap_or_else(|| FakeWorld::refusing(id)),
        }
    }

    /// The world of account `id` when the controller reaches it: its own, or a trusting role's.
    fn reachable(&self, id: &str) -> Option<FakeWorld> {
        if id == ACCOUNT {
            return Some(self.world.clone());
        }
        self.accounts.get(id).filter(|a| a.trusts).map(|a| a.world.clone())
    }
}

#[async_trait]
impl AwsProvider for FakeProvider {
    async fn caller_account(&self) -> Result<String, AwsError> {
        Ok(ACCOUNT.to_string())
    }

    /// The caller's own account, and the accounts whose role trusts it; any other is refused
    /// as AWS refuses an AssumeRole nobody granted.
    async fn reach(&self, account: Option<&str>, _region: &str) -> Result<(), AwsError> {
        match account {
            None => Ok(()),
            Some(id) if self.reachable(id).is_some() => Ok(()),
            Some(id) => Err(AwsError::new(
                "sts",
                "AssumeRole",
                AwsErrorKind::AccessDenied,
                "AccessDenied",
                format!("User: arn:aws:sts::{ACCOUNT}:assumed-role/gitmoxi/gitmoxi is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{id}:role/gitmoxi-deploy"),
            )),
        }
    }

    fn ecs(&self, account: Option<&str>, region: &str) -> Arc<dyn Ecs> {
        Arc::new(self.world_of(account).client(region))
    }

    fn elb(&self, account: Option<&str>, _region: &str) -> Arc<dyn Elb> {
        Arc::new(super::fake_elb::FakeElb { world: self.world_of(account) })
    }

    fn alarms(&self, account: Option<&str>, _region: &str) -> Arc<dyn Alarms> {
        Arc::new(super::fake_elb::FakeAlarms { world: self.world_of(account) })
    }

    fn lambda(&self, account: Option<&str>, region: &str) -> Arc<dyn Lambda> {
        Arc::new(super::fake_lambda::FakeLambda { world: self.world_of(account), region: region.to_string() })
    }

    fn apigw(&self, account: Option<&str>, _region: &str) -> Arc<dyn ApiGateway> {
        Arc::new(super::fake_lambda::FakeApiGateway { world: self.world_of(account) })
    }

    fn secrets(&self, _account: Option<&str>, _region: &str) -> Arc<dyn gitmoxi::credentials::SecretStore> {
        Arc::new(FakeSecrets { world: self.world.clone() })
    }
}

fn not_found(operation: &'static str, code: &str, message: String) -> AwsError {
    AwsError::new("ecs", operation, AwsErrorKind::NotFound, code, message)
}

/// ECS's answer to a request that names a task definition it does not know.
fn unknown_task_definition(operation: &'static str) -> AwsError {
    AwsError::new("ecs", operation, AwsErrorKind::Rejected, "ClientException", "Unable to describe task definition.")
}

fn invalid(operation: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::new("ecs", operation, AwsErrorKind::Rejected, "InvalidParameterException", message)
}

fn short_cluster(c: &str) -> String {
    c.rsplit('/').next().unwrap_or(c).to_string()
}

impl World {
    /// What ECS's DescribeTaskDefinition answers: the ARN of an ARN, of `family:revision`, or of
    /// a family's newest revision; `None` for a name it does not know. ECS keeps ARNs on
    /// services and task sets, whatever name a request gave.
    pub(super) fn resolve_task_definition(&self, region: &str, name: &str) -> Option<String> {
        let short = name.rsplit_once(":task-definition/").map_or(name, |(_, rest)| rest);
        let (family, revision) = match short.rsplit_once(':') {
            Some((family, revision)) => (family, revision.parse::<usize>().ok()),
            None => (short, None),
        };
        let revs = self.task_defs.get(&(region.to_string(), family.to_string()))?;
        let found = match revision {
            Some(n) => revs.get(n.checked_sub(1)?),
            None => revs.last(),
        };
        found.map(|t| t.arn.clone())
    }

    fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn images_of(&self, region: &str, task_definition: &str) -> Vec<String> {
        let family = task_definition.rsplit('/').next().and_then(|f| f.split(':').next()).unwrap_or_default();
        self.task_defs
            .get(&(region.to_string(), family.to_string()))
            .and_then(|revs| revs.iter().find(|t| t.arn == task_definition))
            .map(|t| t.images.clone())
            .unwrap_or_default()
    }

    /// The scheduler: bring every active service's primary deployment to its desired count,
    /// replace failed tasks, drain older deployments once the primary is complete; then the
    /// task sets of EXTERNAL services.
    pub(super) fn advance(&mut self, now: Instant) {
        self.advance_task_sets(now);
        self.advance_native(now);
        // each service's tasks by index, found in one pass (a scan per service made every call
        // cost services × tasks, and simulations of thousands of apps cubic)
        let mut by_service: HashMap<(String, String, String), Vec<usize>> = HashMap::new();
        for (i, t) in self.tasks.iter().enumerate() {
            by_service.entry(t.service_key.clone()).or_default().push(i);
        }
        let keys: Vec<_> = self.services.keys().cloned().collect();
        for key in keys {
            let Some(service) = self.services.get(&key).cloned() else { continue };
            let mut mine = by_service.remove(&key).unwrap_or_default();
            if service.status != "ACTIVE" {
                for &i in &mine {
                    if self.tasks[i].stopped_at.is_none() {
                        self.tasks[i].stopped_at = Some((now, "ServiceSchedulerInitiated".into(), "Service deleted".into()));
                    }
                }
                continue;
            }
            let Some(primary) = service.deployments.first().cloned() else { continue };
            let live =
                mine.iter().filter(|&&i| self.tasks[i].deployment == primary.id && self.tasks[i].status(now) != "STOPPED").count() as u32;
            let before = self.tasks.len();
            for _ in live..service.desired {
                self.launch(&key, &primary.id, &primary.task_definition, now);
            }
            mine.extend(before..self.tasks.len());
            // scale in the primary when desired dropped
            let mut live_primary: Vec<usize> =
                mine.iter().copied().filter(|&i| self.tasks[i].deployment == primary.id && self.tasks[i].stopped_at.is_none()).collect();
            while live_primary.len() as u32 > service.desired {
                if let Some(i) = live_primary.pop() {
                    self.tasks[i].stopped_at = Some((
                        now,
                        "ServiceSchedulerInitiated".into(),
                        format!("Scaling activity initiated by (deployment {})", primary.id),
                    ));
                }
            }
            let running_primary =
                mine.iter().filter(|&&i| self.tasks[i].deployment == primary.id && self.tasks[i].status(now) == "RUNNING").count() as u32;
            if running_primary >= service.desired && !self.native_in_progress(&key) {
                for &i in &mine {
                    if self.tasks[i].deployment != primary.id && self.tasks[i].stopped_at.is_none() {
                        self.tasks[i].stopped_at = Some((
                            now,
                            "ServiceSchedulerInitiated".into(),
                            format!("Scaling activity initiated by (deployment {})", primary.id),
                        ));
                    }
                }
                if let Some(s) = self.services.get_mut(&key) {
                    s.deployments.truncate(1);
                }
            }
        }
    }

    fn describe(&self, s: &FakeService, now: Instant) -> ObservedService {
        let key = (s.region.clone(), s.cluster.clone(), s.name.clone());
        let count = |dep: &str, status: &str| {
            self.tasks.iter().filter(|t| t.service_key == key && t.deployment == dep && t.status(now) == status).count() as u32
        };
        let deployments: Vec<ObservedDeployment> = s
            .deployments
            .iter()
            .enumerate()
            .map(|(i, d)| ObservedDeployment {
                id: d.id.clone(),
                status: if i == 0 { "PRIMARY".into() } else { "ACTIVE".into() },
                task_definition: d.task_definition.clone(),
                desired_count: if i == 0 { s.desired } else { 0 },
                running_count: count(&d.id, "RUNNING"),
                pending_count: count(&d.id, "PENDING"),
                failed_tasks: self
                    .tasks
                    .iter()
                    .filter(|t| {
                        t.service_key == key
                            && t.deployment == d.id
                            && t.stopped_at.as_ref().is_some_and(|(_, c, _)| c == "TaskFailedToStart")
                    })
                    .count() as u32,
                rollout_state: Some(
                    if i == 0 && s.deployments.len() == 1 && count(&d.id, "RUNNING") >= s.desired { "COMPLETED" } else { "IN_PROGRESS" }
                        .into(),
                ),
                rollout_state_reason: None,
            })
            .collect();
        let external = s.controller == "EXTERNAL";
        let primary_set = self.task_sets.iter().find(|t| t.service_key == key && t.status == "PRIMARY");
        let service_tasks = |status: &str| self.tasks.iter().filter(|t| t.service_key == key && t.status(now) == status).count() as u32;
        ObservedService {
            arn: s.arn.clone(),
            status: s.status.as_str().into(),
            task_definition: if external { primary_set.map(|t| t.task_definition.clone()) } else { Some(s.task_definition.clone()) },
            desired_count: s.desired,
            running_count: if external { service_tasks("RUNNING") } else { deployments.iter().map(|d| d.running_count).sum() },
            pending_count: if external { service_tasks("PENDING") } else { deployments.iter().map(|d| d.pending_count).sum() },
            deployments,
            has_load_balancers: false,
            deployment_controller: Some(s.controller.as_str().into()),
            tags: s.tags.clone(),
            events: s.events.iter().rev().take(10).cloned().collect(),
            settings: Some(Value::Object(s.settings.clone())),
        }
    }

    fn observe_task(&self, t: &FakeTask, now: Instant) -> ObservedTask {
        let status = t.status(now);
        let (stop_code, reason) = match (&t.stopped_at, status) {
            (Some((_, code, reason)), "STOPPED") => (Some(code.clone()), Some(reason.clone())),
            _ => (None, None),
        };
        ObservedTask {
            arn: t.arn.clone(),
            task_definition: t.task_definition.clone(),
            last_status: status.into(),
            desired_status: if t.stopped_at.is_some() { "STOPPED".into() } else { "RUNNING".into() },
            started_by: Some(t.deployment.clone()),
            stopped_reason: reason,
            stop_code,
            health_status: Some("UNKNOWN".into()),
            containers: vec![ObservedContainer {
                name: "main".into(),
                exit_code: if status == "STOPPED" { t.exit_code } else { None },
                reason: None,
            }],
        }
    }
}

const CAPACITY_REASON: &str = "Capacity is unavailable at this time. Please try again later or in a different availability zone";

impl World {
    /// Launches one task of `task_definition` started by `started_by`: it reaches RUNNING after
    /// `start_delay`, or stops with a pull error when its image fails, or never starts.
    fn launch(&mut self, key: &(String, String, String), started_by: &str, task_definition: &str, now: Instant) {
        let images = self.images_of(&key.0, task_definition);
        let fails = images.iter().any(|i| self.knobs.failing_images.iter().any(|f| i.contains(f.as_str())));
        let stuck = images.iter().any(|i| self.knobs.stuck_images.iter().any(|f| i.contains(f.as_str())));
        let (running_at, stopped_at) = if fails {
            let reason =
                format!("CannotPullContainerError: pull image manifest has been retried 5 time(s): {} not found", images.join(","));
            (None, Some((now + self.knobs.fail_delay, "TaskFailedToStart".to_string(), reason)))
        } else if stuck {
            (None, None)
        } else {
            (Some(now + self.knobs.start_delay), None)
        };
        let id = self.next_id();
        self.tasks.push(FakeTask {
            arn: format!("arn:aws:ecs:{}:{ACCOUNT}:task/{}/{id:032x}", key.0, key.1),
            service_key: key.clone(),
            deployment: started_by.to_string(),
            task_definition: task_definition.to_string(),
            created: now,
            running_at,
            stopped_at,
            exit_code: None,
        });
    }

    /// The task-set scheduler: each task set of an ACTIVE service runs ceil(desired × scale)
    /// tasks; FARGATE_SPOT placements stop at `spot_capacity`; extra tasks are scaled in.
    fn advance_task_sets(&mut self, now: Instant) {
        let sets: Vec<FakeTaskSet> = self.task_sets.clone();
        for set in sets {
            let Some(service) = self.services.get(&set.service_key).cloned() else { continue };
            if service.status != "ACTIVE" {
                continue;
            }
            let want = (f64::from(service.desired) * set.scale / 100.0).ceil() as u32;
            let live: Vec<usize> = self
                .tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.deployment == set.id && t.status(now) != "STOPPED")
                .map(|(i, _)| i)
                .collect();
            let live_count = live.len() as u32;
            if live_count > want {
                for i in live.iter().rev().take((live_count - want) as usize) {
                    self.tasks[*i].stopped_at =
                        Some((now, "ServiceSchedulerInitiated".into(), format!("Scaling activity initiated by (deployment {})", set.id)));
                }
                continue;
            }
            let spot = set.capacity_providers.iter().any(|c| c == "FARGATE_SPOT");
            for _ in live_count..want {
                if spot {
                    if let Some(capacity) = self.knobs.spot_capacity {
                        let spot_sets: Vec<String> = self
                            .task_sets
                            .iter()
                            .filter(|t| t.capacity_providers.iter().any(|c| c == "FARGATE_SPOT"))
                            .map(|t| t.id.clone())
                            .collect();
                        let on_spot =
                            self.tasks.iter().filter(|t| spot_sets.contains(&t.deployment) && t.status(now) != "STOPPED").count() as u32;
                        if on_spot >= capacity {
                            let recent = set.last_capacity_failure.is_some_and(|at| now.duration_since(at) < Duration::from_secs(60));
                            if !recent {
                                // ECS starts no task: it reports a service event (at most once a minute)
                                if let Some(service) = self.services.get_mut(&set.service_key) {
                                    let message = format!(
                                        "(service {}, taskSet {}) was unable to place a task. Reason: {CAPACITY_REASON}.",
                                        service.name, set.id
                                    );
                                    service.events.push(message);
                                }
                                if let Some(t) = self.task_sets.iter_mut().find(|t| t.id == set.id) {
                                    t.last_capacity_failure = Some(now);
                                }
                            }
                            break;
                        }
                    }
                }
                self.launch(&set.service_key, &set.id, &set.task_definition, now);
            }
        }
    }

    pub(super) fn observe_task_set(&self, t: &FakeTaskSet, now: Instant) -> ObservedTaskSet {
        let desired = self.services.get(&t.service_key).map_or(0, |s| s.desired);
        let count = |status: &str| self.tasks.iter().filter(|k| k.deployment == t.id && k.status(now) == status).count() as u32;
        ObservedTaskSet {
            id: t.id.clone(),
            arn: t.arn.clone(),
            status: t.status.as_str().into(),
            external_id: t.external_id.clone(),
            task_definition: t.task_definition.clone(),
            scale_percent: t.scale,
            computed_desired_count: (f64::from(desired) * t.scale / 100.0).ceil() as u32,
            running_count: count("RUNNING"),
            pending_count: count("PENDING"),
            target_groups: t.target_groups.clone(),
            capacity_providers: t.capacity_providers.clone(),
        }
    }

    /// Healthy targets of a target group: RUNNING tasks of the task sets registered in it, once
    /// `health_delay` has passed, unless their image never turns healthy.
    pub(super) fn healthy_in(&self, target_group: &str, now: Instant) -> u32 {
        let sets: Vec<&FakeTaskSet> = self.task_sets.iter().filter(|t| t.target_groups.iter().any(|g| g == target_group)).collect();
        self.tasks
            .iter()
            .filter(|task| {
                let Some(set) = sets.iter().find(|s| s.id == task.deployment) else { return false };
                let healthy_image = !self
                    .images_of(&set.service_key.0, &set.task_definition)
                    .iter()
                    .any(|i| self.knobs.unhealthy_images.iter().any(|u| i.contains(u.as_str())));
                task.status(now) == "RUNNING" && healthy_image && task.running_at.is_some_and(|at| at + self.knobs.health_delay <= now)
            })
            .count() as u32
    }

    /// The alarm's state now (None: no such alarm).
    pub(super) fn alarm_state(&self, name: &str, now: Instant) -> Option<String> {
        let schedule = self.alarms.get(name)?;
        Some(schedule.iter().rfind(|(at, _)| *at <= now).map_or_else(|| "OK".to_string(), |(_, s)| s.clone()))
    }
}

fn tags_of(body: &Value) -> BTreeMap<String, String> {
    body.get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter().filter_map(|t| Some((t.get("key")?.as_str()?.to_string(), t.get("value")?.as_str()?.to_string()))).collect()
        })
        .unwrap_or_default()
}

/// The fake ECS of one region.
pub struct FakeEcs {
    world: FakeWorld,
    region: String,
}

impl FakeEcs {
    fn key(&self, cluster: &str, service: &str) -> (String, String, String) {
        (self.region.clone(), short_cluster(cluster), service.to_string())
    }

    fn check_cluster(&self, w: &World, operation: &'static str, cluster: &str) -> Result<(), AwsError> {
        if w.clusters.contains(&(self.region.clone(), short_cluster(cluster))) {
            Ok(())
        } else {
            Err(not_found(operation, "ClusterNotFoundException", format!("Cluster not found: {cluster}")))
        }
    }
}

#[async_trait]
impl Ecs for FakeEcs {
    async fn describe_services(&self, cluster: &str, services: &[String]) -> Result<Vec<(String, Option<ObservedService>)>, AwsError> {
        self.world.begin("DescribeServices")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            w.advance(now);
            if services.len() > 10 {
                // ECS: "services" holds at most 10 names
                Err(AwsError::new("ecs", "DescribeServices", AwsErrorKind::Rejected, "InvalidParameterException", "at most 10 services"))
            } else {
                self.check_cluster(&w, "DescribeServices", cluster).map(|_| {
                    services
                        .iter()
                        .map(|name| (name.clone(), w.services.get(&self.key(cluster, name)).map(|s| w.describe(s, now))))
                        .collect()
                })
            }
        };
        self.world.end("DescribeServices", result)
    }

    async fn resolve_task_definition(&self, name: &str) -> Result<Option<String>, AwsError> {
        self.world.begin("DescribeTaskDefinition")?;
        let result = Ok(self.world.world().resolve_task_definition(&self.region, name));
        self.world.end("DescribeTaskDefinition", result)
    }

    async fn task_definition_tags(&self, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
        self.world.begin("DescribeTaskDefinition")?;
        let result = {
            let w = self.world.world();
            Ok(w.task_defs.values().flat_map(|revs| revs.iter()).find(|t| t.arn == arn).map(|t| t.tags.clone()).unwrap_or_default())
        };
        self.world.end("DescribeTaskDefinition", result)
    }

    async fn task_logs(&self, task_definition: &str) -> Result<Vec<gitmoxi_deploy::observed::ObservedTaskLogs>, AwsError> {
        self.world.begin("DescribeTaskDefinition")?;
        let result = {
            let w = self.world.world();
            let family = task_definition.rsplit('/').next().and_then(|f| f.split(':').next()).unwrap_or_default().to_string();
            let revision = task_definition.rsplit('/').next().and_then(|f| f.split(':').nth(1)).map(str::to_string);
            let found = w.task_defs.get(&(self.region.clone(), family)).and_then(|revs| match &revision {
                Some(r) => revs.iter().find(|t| t.arn.ends_with(&format!(":{r}"))),
                None => revs.last(),
            });
            Ok(found.map(|t| t.logs.clone()).unwrap_or_default())
        };
        self.world.end("DescribeTaskDefinition", result)
    }

    async fn find_task_definition(&self, family: &str, deployment_id: &str) -> Result<Option<String>, AwsError> {
        self.world.begin("ListTaskDefinitions")?;
        let result = {
            let w = self.world.world();
            Ok(w.task_defs
                .get(&(self.region.clone(), family.to_string()))
                .and_then(|revs| {
                    revs.iter().rev().take(10).find(|t| t.tags.get("gitmoxi:deployment").map(String::as_str) == Some(deployment_id))
                })
                .map(|t| t.arn.clone()))
        };
        self.world.end("ListTaskDefinitions", result)
    }

    async fn service_tasks(&self, cluster: &str, service: &str) -> Result<Vec<ObservedTask>, AwsError> {
        self.world.begin("ListTasks")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            w.advance(now);
            let key = self.key(cluster, service);
            self.check_cluster(&w, "ListTasks", cluster).map(|_| {
                w.tasks
                    .iter()
                    .filter(|t| t.service_key == key && now.duration_since(t.created) < Duration::from_secs(3600))
                    .map(|t| w.observe_task(t, now))
                    .collect()
            })
        };
        self.world.end("ListTasks", result)
    }

    async fn register_task_definition(&self, body: &Value) -> Result<String, AwsError> {
        self.world.begin("RegisterTaskDefinition")?;
        let result = {
            let mut w = self.world.world();
            let family = body.get("family").and_then(Value::as_str).unwrap_or_default().to_string();
            let containers = body.get("containerDefinitions").and_then(Value::as_array).cloned().unwrap_or_default();
            if family.is_empty() || containers.is_empty() {
                Err(invalid("RegisterTaskDefinition", "family and containerDefinitions are required"))
            } else {
                let revs = w.task_defs.entry((self.region.clone(), family.clone())).or_default();
                let arn = format!("arn:aws:ecs:{}:{ACCOUNT}:task-definition/{family}:{}", self.region, revs.len() + 1);
                revs.push(FakeTaskDef {
                    arn: arn.clone(),
                    images: containers.iter().filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_string)).collect(),
                    tags: tags_of(body),
                    logs: containers
                        .iter()
                        .filter(|c| c.pointer("/logConfiguration/logDriver").and_then(Value::as_str) == Some("awslogs"))
                        .map(|c| gitmoxi_deploy::observed::ObservedTaskLogs {
                            container: c.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                            group: c.pointer("/logConfiguration/options/awslogs-group").and_then(Value::as_str).map(str::to_string),
                            stream_prefix: c
                                .pointer("/logConfiguration/options/awslogs-stream-prefix")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                        })
                        .collect(),
                });
                w.mutations.push(("RegisterTaskDefinition".into(), arn.clone()));
                Ok(arn)
            }
        };
        self.world.end("RegisterTaskDefinition", result)
    }

    async fn create_service(&self, body: &Value) -> Result<String, AwsError> {
        self.world.begin("CreateService")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            let cluster = body.get("cluster").and_then(Value::as_str).unwrap_or("default").to_string();
            let name = body.get("serviceName").and_then(Value::as_str).unwrap_or_default().to_string();
            let token = body.get("clientToken").and_then(Value::as_str).map(str::to_string);
            let key = self.key(&cluster, &name);
            let resolved = body.get("taskDefinition").and_then(Value::as_str).map(|named| w.resolve_task_definition(&self.region, named));
            match self.check_cluster(&w, "CreateService", &cluster) {
                Err(e) => Err(e),
                Ok(()) => match w.services.get(&key) {
                    Some(existing) if existing.status == "ACTIVE" && existing.client_token.is_some() && existing.client_token == token => {
                        Ok(existing.arn.clone())
                    }
                    Some(existing) if existing.status == "ACTIVE" => {
                        Err(invalid("CreateService", "Creation of service was not idempotent."))
                    }
                    _ if resolved == Some(None) => Err(unknown_task_definition("CreateService")),
                    _ => {
                        let td = resolved.flatten().unwrap_or_default();
                        let external = body.pointer("/deploymentController/type").and_then(Value::as_str) == Some("EXTERNAL");
                        let id = w.next_id();
                        let arn = format!("arn:aws:ecs:{}:{ACCOUNT}:service/{}/{name}", self.region, key.1);
                        let service = FakeService {
                            arn: arn.clone(),
                            region: self.region.clone(),
                            cluster: key.1.clone(),
                            name: name.clone(),
                            status: "ACTIVE".into(),
                            task_definition: td.clone(),
                            desired: body.get("desiredCount").and_then(Value::as_u64).unwrap_or(0) as u32,
                            deployments: if external {
                                Vec::new()
                            } else {
                                vec![FakeDeployment { id: format!("ecs-svc/{id}"), task_definition: td }]
                            },
                            tags: tags_of(body),
                            client_token: token,
                            events: vec![format!("(service {name}) has started.")],
                            controller: body.pointer("/deploymentController/type").and_then(Value::as_str).unwrap_or("ECS").to_string(),
                            deployment_configuration: body.get("deploymentConfiguration").cloned(),
                            settings: settings::created(body),
                        };
                        w.services.insert(key.clone(), service);
                        if !external && native::is_native(body.get("deploymentConfiguration")) {
                            w.open_native(&key, &body["deploymentConfiguration"], now);
                        }
                        w.mutations.push(("CreateService".into(), arn.clone()));
                        w.advance(now);
                        Ok(arn)
                    }
                },
            }
        };
        self.world.end("CreateService", result)
    }

    async fn update_service(&self, body: &Value) -> Result<(), AwsError> {
        self.world.begin("UpdateService")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            let cluster = body.get("cluster").and_then(Value::as_str).unwrap_or("default").to_string();
            let name = body.get("service").and_then(Value::as_str).unwrap_or_default().to_string();
            let key = self.key(&cluster, &name);
            let id = w.next_id();
            let resolved = body.get("taskDefinition").and_then(Value::as_str).map(|named| w.resolve_task_definition(&self.region, named));
            match self.check_cluster(&w, "UpdateService", &cluster) {
                Err(e) => Err(e),
                Ok(()) => match w.services.get_mut(&key) {
                    // ECS checks the task definition before it changes anything
                    Some(s) if s.status == "ACTIVE" && resolved == Some(None) => Err(unknown_task_definition("UpdateService")),
                    Some(s) if s.status == "ACTIVE" && settings::refuses(&s.settings, body) => {
                        Err(invalid("UpdateService", settings::FORCE_NEEDED))
                    }
                    Some(s) if s.status == "ACTIVE" => {
                        settings::apply(&mut s.settings, body);
                        let forced = body.get("forceNewDeployment").and_then(Value::as_bool) == Some(true);
                        let sent_count = body.get("desiredCount").and_then(Value::as_u64);
                        if let Some(n) = sent_count {
                            s.desired = n as u32;
                        }
                        if let Some(config) = body.get("deploymentConfiguration") {
                            s.deployment_configuration = Some(config.clone());
                        }
                        let mut opened = false;
                        if let Some(td) = resolved.flatten() {
                            if td != s.task_definition {
                                s.task_definition = td.to_string();
                                s.deployments.insert(0, FakeDeployment { id: format!("ecs-svc/{id}"), task_definition: td.to_string() });
                                opened = true;
                            }
                        }
                        if forced && !opened && s.controller == "ECS" {
                            // a forced deployment replaces every task with the same revision
                            let td = s.task_definition.clone();
                            s.deployments.insert(0, FakeDeployment { id: format!("ecs-svc/{id}"), task_definition: td });
                            opened = true;
                        }
                        let sent = sent_count.map_or(String::new(), |n| format!(" desiredCount={n}"));
                        let detail = format!("{name} td={} desired={}{sent}", s.task_definition, s.desired);
                        let config = s.deployment_configuration.clone();
                        if opened && s.controller == "ECS" && native::is_native(config.as_ref()) {
                            w.open_native(&key, config.as_ref().unwrap_or(&Value::Null), now);
                        }
                        w.mutations.push(("UpdateService".into(), detail));
                        w.advance(now);
                        Ok(())
                    }
                    _ => {
                        Err(AwsError::new("ecs", "UpdateService", AwsErrorKind::NotFound, "ServiceNotFoundException", "Service not found."))
                    }
                },
            }
        };
        self.world.end("UpdateService", result)
    }

    async fn newest_service_deployment(
        &self,
        cluster: &str,
        service: &str,
        since_ms: u64,
    ) -> Result<Option<gitmoxi_deploy::observed::ObservedNativeDeployment>, AwsError> {
        self.world.begin("ListServiceDeployments")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            w.advance(now);
            let key = self.key(cluster, service);
            Ok(w.newest_native(&key, since_ms, now))
        };
        self.world.end("ListServiceDeployments", result)
    }

    async fn continue_service_deployment(&self, arn: &str, hook_id: &str, rollback: bool) -> Result<(), AwsError> {
        self.world.begin("ContinueServiceDeployment")?;
        let result = {
            let mut w = self.world.world();
            let now = Instant::now();
            w.advance(now);
            match w.continue_native(arn, hook_id, rollback, now) {
                Ok(()) => {
                    let action = if rollback { "ROLLBACK" } else { "CONTINUE" };
                    w.mutations.push(("ContinueServiceDeployment".into(), format!("{arn} {hook_id} {action}")));
                    w.advance(now);
                    Ok(())
                }
                Err(message) => Err(invalid("ContinueServiceDeployment", message)),
            }
        };
        self.world.end("ContinueServiceDeployment", result)
    }

    async fn stop_service_deployment(&self, arn: &str) -> Result<(), AwsError> {
        self.world.begin("StopServiceDeployment")?;
        let result = {
            let mut w = self.world.world();
            match w.stop_native(arn) {
                Ok(()) => {
                    w.mutations.push(("StopServiceDeployment".into(), arn.to_string()));
                    w.advance(Instant::now());
                    Ok(())
                }
                Err(("ConflictException", message)) => {
                    Err(AwsError::new("ecs", "StopServiceDeployment", AwsErrorKind::Rejected, "ConflictException", message))
                }
                Err((code, message)) => Err(not_found("StopServiceDeployment", code, message)),
            }
        };
        self.world.end("StopServiceDeployment", result)
    }

    async fn delete_service(&self, cluster: &str, service: &str) -> Result<(), AwsError> {
        self.world.begin("DeleteService")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            let key = self.key(cluster, service);
            if let Some(s) = w.services.get_mut(&key) {
                if s.status == "ACTIVE" {
                    s.status = "INACTIVE".into();
                    w.mutations.push(("DeleteService".into(), service.to_string()));
                }
            }
            w.advance(now);
            Ok(())
        };
        self.world.end("DeleteService", result)
    }

    async fn tag_resource(&self, arn: &str, tags: &[(String, String)]) -> Result<(), AwsError> {
        self.world.begin("TagResource")?;
        let result = {
            let mut w = self.world.world();
            match w.services.values_mut().find(|s| s.arn == arn) {
                Some(s) => {
                    for (k, v) in tags {
                        s.tags.insert(k.clone(), v.clone());
                    }
                    w.mutations.push(("TagResource".into(), arn.to_string()));
                    Ok(())
                }
                None => Err(not_found("TagResource", "ResourceNotFoundException", format!("no resource {arn}"))),
            }
        };
        self.world.end("TagResource", result)
    }

    async fn describe_task_sets(&self, cluster: &str, service: &str) -> Result<Vec<ObservedTaskSet>, AwsError> {
        self.world.begin("DescribeTaskSets")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            w.advance(now);
            let key = self.key(cluster, service);
            self.check_cluster(&w, "DescribeTaskSets", cluster)
                .map(|_| w.task_sets.iter().filter(|t| t.service_key == key).map(|t| w.observe_task_set(t, now)).collect())
        };
        self.world.end("DescribeTaskSets", result)
    }

    async fn tasks_started_by(&self, cluster: &str, started_by: &str) -> Result<Vec<ObservedTask>, AwsError> {
        self.world.begin("ListTasks")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            w.advance(now);
            self.check_cluster(&w, "ListTasks", cluster).map(|_| {
                w.tasks
                    .iter()
                    .filter(|t| t.deployment == started_by && now.duration_since(t.created) < Duration::from_secs(3600))
                    .map(|t| w.observe_task(t, now))
                    .collect()
            })
        };
        self.world.end("ListTasks", result)
    }

    async fn create_task_set(&self, body: &Value) -> Result<String, AwsError> {
        self.world.begin("CreateTaskSet")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            let cluster = body.get("cluster").and_then(Value::as_str).unwrap_or("default").to_string();
            let service = body.get("service").and_then(Value::as_str).unwrap_or_default().to_string();
            let key = self.key(&cluster, &service);
            let token = body.get("clientToken").and_then(Value::as_str).map(str::to_string);
            let controller = w.services.get(&key).filter(|s| s.status == "ACTIVE").map(|s| s.controller.clone());
            let named = body.get("taskDefinition").and_then(Value::as_str).unwrap_or_default();
            let resolved = w.resolve_task_definition(&self.region, named);
            match (self.check_cluster(&w, "CreateTaskSet", &cluster), controller) {
                (Err(e), _) => Err(e),
                (Ok(()), Some(_)) if resolved.is_none() => Err(unknown_task_definition("CreateTaskSet")),
                (Ok(()), None) => Err(not_found("CreateTaskSet", "ServiceNotFoundException", "Service not found.".into())),
                (Ok(()), Some(c)) if c != "EXTERNAL" => Err(invalid(
                    "CreateTaskSet",
                    "Amazon ECS only supports task sets on services configured to use the EXTERNAL deployment controller.",
                )),
                (Ok(()), Some(_)) => {
                    if let Some(existing) = w.task_sets.iter().find(|t| t.client_token.is_some() && t.client_token == token) {
                        Ok(existing.arn.clone())
                    } else {
                        let id = w.next_id();
                        let id = format!("ecs-svc/{:019}", 1_000_000_000_000_000_000u64 + id);
                        let arn = format!("arn:aws:ecs:{}:{ACCOUNT}:task-set/{}/{service}/{id}", self.region, key.1);
                        let target_groups = body
                            .get("loadBalancers")
                            .and_then(Value::as_array)
                            .map(|l| l.iter().filter_map(|e| e.get("targetGroupArn").and_then(Value::as_str).map(str::to_string)).collect())
                            .unwrap_or_default();
                        let capacity_providers = body
                            .get("capacityProviderStrategy")
                            .and_then(Value::as_array)
                            .map(|l| {
                                l.iter().filter_map(|e| e.get("capacityProvider").and_then(Value::as_str).map(str::to_string)).collect()
                            })
                            .unwrap_or_default();
                        let first = !w.task_sets.iter().any(|t| t.service_key == key);
                        w.task_sets.push(FakeTaskSet {
                            id,
                            arn: arn.clone(),
                            service_key: key,
                            external_id: body.get("externalId").and_then(Value::as_str).unwrap_or_default().to_string(),
                            task_definition: resolved.clone().unwrap_or_default(),
                            scale: body.pointer("/scale/value").and_then(Value::as_f64).unwrap_or(100.0),
                            status: if first { "PRIMARY".into() } else { "ACTIVE".into() },
                            target_groups,
                            capacity_providers,
                            client_token: token,
                            last_capacity_failure: None,
                        });
                        w.mutations.push(("CreateTaskSet".into(), arn.clone()));
                        w.advance(now);
                        Ok(arn)
                    }
                }
            }
        };
        self.world.end("CreateTaskSet", result)
    }

    async fn update_task_set_scale(&self, _cluster: &str, _service: &str, task_set: &str, percent: f64) -> Result<(), AwsError> {
        self.world.begin("UpdateTaskSet")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            match w.task_sets.iter_mut().find(|t| t.arn == task_set) {
                Some(t) => {
                    t.scale = percent;
                    w.mutations.push(("UpdateTaskSet".into(), format!("{task_set} {percent}")));
                    w.advance(now);
                    Ok(())
                }
                None => Err(not_found("UpdateTaskSet", "TaskSetNotFoundException", format!("no task set {task_set}"))),
            }
        };
        self.world.end("UpdateTaskSet", result)
    }

    async fn update_primary_task_set(&self, _cluster: &str, _service: &str, task_set: &str) -> Result<(), AwsError> {
        self.world.begin("UpdateServicePrimaryTaskSet")?;
        let result = {
            let mut w = self.world.world();
            match w.task_sets.iter().find(|t| t.arn == task_set).map(|t| t.service_key.clone()) {
                Some(key) => {
                    for t in w.task_sets.iter_mut().filter(|t| t.service_key == key) {
                        t.status = if t.arn == task_set { "PRIMARY".into() } else { "ACTIVE".into() };
                    }
                    w.mutations.push(("UpdateServicePrimaryTaskSet".into(), task_set.to_string()));
                    Ok(())
                }
                None => Err(invalid("UpdateServicePrimaryTaskSet", format!("task set {task_set} not found; a full ARN is required"))),
            }
        };
        self.world.end("UpdateServicePrimaryTaskSet", result)
    }

    /// RunTask of a hook's one-off task (issue 25): it runs for `start_delay`, then its container
    /// exits with the code its image names (`exit-3` → 3; otherwise 0), or fails to start like a
    /// service's task when its image fails; a client token seen before starts nothing.
    async fn run_task(&self, body: &Value) -> Result<(), AwsError> {
        self.world.begin("RunTask")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            let cluster = body["cluster"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string();
            let started_by = body["startedBy"].as_str().unwrap_or_default().to_string();
            let token = body["clientToken"].as_str().unwrap_or_default().to_string();
            let named = body["taskDefinition"].as_str().unwrap_or_default();
            let family = named.rsplit('/').next().and_then(|f| f.split(':').next()).unwrap_or_default().to_string();
            let revision = named.rsplit('/').next().and_then(|f| f.split(':').nth(1)).map(str::to_string);
            let arn = w.task_defs.get(&(self.region.clone(), family.clone())).and_then(|revs| match &revision {
                Some(r) => revs.iter().find(|t| t.arn.ends_with(&format!(":{r}"))).map(|t| t.arn.clone()),
                None => revs.last().map(|t| t.arn.clone()),
            });
            match self.check_cluster(&w, "RunTask", &cluster) {
                Err(e) => Err(e),
                Ok(_) => match arn {
                    None => Err(AwsError::new(
                        "ecs",
                        "RunTask",
                        AwsErrorKind::Rejected,
                        "ClientException",
                        format!("TaskDefinition not found: {named}"),
                    )),
                    Some(_) if w.run_tokens.contains(&token) => Ok(()),
                    Some(arn) => {
                        w.run_tokens.push(token);
                        let key = (self.region.clone(), cluster.clone(), String::new());
                        w.launch(&key, &started_by, &arn, now);
                        let images = w.images_of(&self.region, &arn);
                        let code = images.iter().find_map(|i| {
                            i.split("exit-").nth(1).and_then(|n| n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
                        });
                        let delay = w.knobs.start_delay * 2;
                        if let Some(t) = w.tasks.last_mut().filter(|t| t.stopped_at.is_none() && t.running_at.is_some()) {
                            t.stopped_at =
                                Some((now + delay, "EssentialContainerExited".into(), "Essential container in task exited".into()));
                            t.exit_code = Some(code.unwrap_or(0));
                        }
                        w.mutations.push(("RunTask".into(), format!("{arn} {started_by}")));
                        Ok(())
                    }
                },
            }
        };
        self.world.end("RunTask", result)
    }

    async fn delete_task_set(&self, _cluster: &str, _service: &str, task_set: &str) -> Result<(), AwsError> {
        self.world.begin("DeleteTaskSet")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            if let Some(i) = w.task_sets.iter().position(|t| t.arn == task_set) {
                let removed = w.task_sets.remove(i);
                for t in w.tasks.iter_mut().filter(|t| t.deployment == removed.id && t.stopped_at.is_none()) {
                    t.stopped_at = Some((
                        now,
                        "ServiceSchedulerInitiated".into(),
                        format!("Scaling activity initiated by (deployment {})", removed.id),
                    ));
                }
                w.mutations.push(("DeleteTaskSet".into(), task_set.to_string()));
            }
            Ok(())
        };
        self.world.end("DeleteTaskSet", result)
    }
}

/// Secrets Manager and SSM of the fake world.
struct FakeSecrets {
    world: FakeWorld,
}

#[async_trait]
impl gitmoxi::credentials::SecretStore for FakeSecrets {
    async fn secret(&self, id: &str) -> Result<String, AwsError> {
        self.world.begin("GetSecretValue")?;
        let result = self.world.world().secrets.get(id).cloned().ok_or_else(|| {
            AwsError::new(
                "secretsmanager",
                "GetSecretValue",
                AwsErrorKind::NotFound,
                "ResourceNotFoundException",
                "Secrets Manager can't find the specified secret.",
            )
        });
        self.world.end("GetSecretValue", result)
    }

    async fn parameter(&self, name: &str) -> Result<String, AwsError> {
        self.world.begin("GetParameter")?;
        let result = self.world.world().secrets.get(name).cloned().ok_or_else(|| {
            AwsError::new("ssm", "GetParameter", AwsErrorKind::NotFound, "ParameterNotFound", format!("parameter {name} not found"))
        });
        self.world.end("GetParameter", result)
    }
}
