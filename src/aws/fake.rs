//! The in-memory fake AWS world for simulation tests (TESTING.md §1): ECS clusters, task
//! definitions, services with a scheduler, tasks that take time to start or fail with a stop
//! reason, and fault knobs (throttling, 5xx, "applied but the response was lost").
//!
//! Time is `tokio::time::Instant` (pause it in tests); the world advances lazily on every call.
//! Invariant: the fake mirrors the API contracts gitmoxi relies on (client-token idempotency of
//! CreateService, tags on task definitions, DescribeServices of a missing service = no entry).

use super::{AwsError, AwsErrorKind, AwsProvider, Ecs};
use async_trait::async_trait;
use gitmoxi_deploy::observed::{ObservedContainer, ObservedDeployment, ObservedService, ObservedTask};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

const ACCOUNT: &str = "123456789012";

#[derive(Debug, Clone)]
struct FakeTaskDef {
    arn: String,
    images: Vec<String>,
    tags: BTreeMap<String, String>,
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
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            start_delay: Duration::from_secs(20),
            fail_delay: Duration::from_secs(15),
            failing_images: vec!["fail".into()],
            stuck_images: vec!["stuck".into()],
        }
    }
}

#[derive(Default)]
struct World {
    clusters: BTreeSet<(String, String)>,
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
    mutations: Vec<(String, String)>,
    knobs: Knobs,
}

/// The fake world; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct FakeWorld {
    inner: Arc<Mutex<World>>,
}

impl FakeWorld {
    pub fn new() -> Self {
        Self::default()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
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

    /// How many calls of `operation` were made.
    pub fn calls(&self, operation: &str) -> u32 {
        self.world().calls.get(operation).copied().unwrap_or(0)
    }

    /// Successful mutations of `operation` (with details), in order.
    pub fn mutations(&self, operation: &str) -> Vec<String> {
        self.world().mutations.iter().filter(|(op, _)| op == operation).map(|(_, d)| d.clone()).collect()
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

    /// A provider handing out this world's ECS per region.
    pub fn provider(&self) -> Arc<dyn AwsProvider> {
        Arc::new(FakeProvider { world: self.clone() })
    }

    fn client(&self, region: &str) -> FakeEcs {
        FakeEcs { world: self.clone(), region: region.to_string() }
    }

    fn begin(&self, operation: &'static str) -> Result<(), AwsError> {
        let mut w = self.world();
        *w.calls.entry(operation.to_string()).or_default() += 1;
        if let Some(n) = w.throttle.get_mut(operation).filter(|n| **n > 0) {
            *n -= 1;
            return Err(AwsError::new("ecs", operation, AwsErrorKind::Throttled, "ThrottlingException", "Rate exceeded"));
        }
        Ok(())
    }

    fn end<T>(&self, operation: &'static str, result: Result<T, AwsError>) -> Result<T, AwsError> {
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
}

impl AwsProvider for FakeProvider {
    fn ecs(&self, _account: Option<&str>, region: &str) -> Arc<dyn Ecs> {
        Arc::new(self.world.client(region))
    }
}

fn not_found(operation: &'static str, code: &str, message: String) -> AwsError {
    AwsError::new("ecs", operation, AwsErrorKind::NotFound, code, message)
}

fn invalid(operation: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::new("ecs", operation, AwsErrorKind::Rejected, "InvalidParameterException", message)
}

fn short_cluster(c: &str) -> String {
    c.rsplit('/').next().unwrap_or(c).to_string()
}

impl World {
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
    /// replace failed tasks, drain older deployments once the primary is complete.
    fn advance(&mut self, now: Instant) {
        let keys: Vec<_> = self.services.keys().cloned().collect();
        for key in keys {
            let Some(service) = self.services.get(&key).cloned() else { continue };
            if service.status != "ACTIVE" {
                for t in self.tasks.iter_mut().filter(|t| t.service_key == key && t.stopped_at.is_none()) {
                    t.stopped_at = Some((now, "ServiceSchedulerInitiated".into(), "Service deleted".into()));
                }
                continue;
            }
            let Some(primary) = service.deployments.first().cloned() else { continue };
            let live =
                self.tasks.iter().filter(|t| t.service_key == key && t.deployment == primary.id && t.status(now) != "STOPPED").count()
                    as u32;
            let images = self.images_of(&key.0, &primary.task_definition);
            let fails = images.iter().any(|i| self.knobs.failing_images.iter().any(|f| i.contains(f.as_str())));
            let stuck = images.iter().any(|i| self.knobs.stuck_images.iter().any(|f| i.contains(f.as_str())));
            for _ in live..service.desired {
                let id = self.next_id();
                let arn = format!("arn:aws:ecs:{}:{ACCOUNT}:task/{}/{id:032x}", key.0, key.1);
                let (running_at, stopped_at) = if fails {
                    (
                        None,
                        Some((
                            now + self.knobs.fail_delay,
                            "TaskFailedToStart".to_string(),
                            format!(
                                "CannotPullContainerError: pull image manifest has been retried 5 time(s): {} not found",
                                images.join(",")
                            ),
                        )),
                    )
                } else if stuck {
                    (None, None)
                } else {
                    (Some(now + self.knobs.start_delay), None)
                };
                self.tasks.push(FakeTask {
                    arn,
                    service_key: key.clone(),
                    deployment: primary.id.clone(),
                    task_definition: primary.task_definition.clone(),
                    created: now,
                    running_at,
                    stopped_at,
                });
            }
            // scale in the primary when desired dropped
            let mut live_primary: Vec<usize> = self
                .tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.service_key == key && t.deployment == primary.id && t.stopped_at.is_none())
                .map(|(i, _)| i)
                .collect();
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
                self.tasks.iter().filter(|t| t.service_key == key && t.deployment == primary.id && t.status(now) == "RUNNING").count()
                    as u32;
            if running_primary >= service.desired {
                for t in self.tasks.iter_mut().filter(|t| t.service_key == key && t.deployment != primary.id && t.stopped_at.is_none()) {
                    t.stopped_at = Some((
                        now,
                        "ServiceSchedulerInitiated".into(),
                        format!("Scaling activity initiated by (deployment {})", primary.id),
                    ));
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
        ObservedService {
            arn: s.arn.clone(),
            status: s.status.clone(),
            task_definition: Some(s.task_definition.clone()),
            desired_count: s.desired,
            running_count: deployments.iter().map(|d| d.running_count).sum(),
            pending_count: deployments.iter().map(|d| d.pending_count).sum(),
            deployments,
            has_load_balancers: false,
            tags: s.tags.clone(),
            events: s.events.iter().rev().take(10).cloned().collect(),
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
            last_status: status.to_string(),
            desired_status: if t.stopped_at.is_some() { "STOPPED".into() } else { "RUNNING".into() },
            started_by: Some(t.deployment.clone()),
            stopped_reason: reason,
            stop_code,
            health_status: Some("UNKNOWN".into()),
            containers: vec![ObservedContainer { name: "main".into(), exit_code: None, reason: None }],
        }
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
    async fn describe_service(&self, cluster: &str, service: &str) -> Result<Option<ObservedService>, AwsError> {
        self.world.begin("DescribeServices")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            w.advance(now);
            self.check_cluster(&w, "DescribeServices", cluster)
                .map(|_| w.services.get(&self.key(cluster, service)).map(|s| w.describe(s, now)))
        };
        self.world.end("DescribeServices", result)
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
            match self.check_cluster(&w, "CreateService", &cluster) {
                Err(e) => Err(e),
                Ok(()) => match w.services.get(&key) {
                    Some(existing) if existing.status == "ACTIVE" && existing.client_token.is_some() && existing.client_token == token => {
                        Ok(existing.arn.clone())
                    }
                    Some(existing) if existing.status == "ACTIVE" => {
                        Err(invalid("CreateService", "Creation of service was not idempotent."))
                    }
                    _ => {
                        let td = body.get("taskDefinition").and_then(Value::as_str).unwrap_or_default().to_string();
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
                            deployments: vec![FakeDeployment { id: format!("ecs-svc/{id}"), task_definition: td }],
                            tags: tags_of(body),
                            client_token: token,
                            events: vec![format!("(service {name}) has started.")],
                        };
                        w.services.insert(key, service);
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
            match self.check_cluster(&w, "UpdateService", &cluster) {
                Err(e) => Err(e),
                Ok(()) => match w.services.get_mut(&key) {
                    Some(s) if s.status == "ACTIVE" => {
                        if let Some(n) = body.get("desiredCount").and_then(Value::as_u64) {
                            s.desired = n as u32;
                        }
                        if let Some(td) = body.get("taskDefinition").and_then(Value::as_str) {
                            if td != s.task_definition {
                                s.task_definition = td.to_string();
                                s.deployments.insert(0, FakeDeployment { id: format!("ecs-svc/{id}"), task_definition: td.to_string() });
                            }
                        }
                        let detail = format!("{name} td={} desired={}", s.task_definition, s.desired);
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
}
