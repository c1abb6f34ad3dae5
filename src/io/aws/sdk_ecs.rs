//! The ECS adapter over the official SDK.
//!
//! Create/register/update bodies are the user's JSON, sent verbatim: the typed builder fills only
//! the required fields, then `mutate_request` swaps in the exact JSON body before signing. Every
//! field of the ECS API therefore passes through, including ones newer than this code.

use super::{no_retry, AwsError, AwsErrorKind, Ecs};
use async_trait::async_trait;
use aws_sdk_ecs::types::{DesiredStatus, ServiceField, SortOrder, TaskDefinitionField};
use aws_sdk_ecs::Client;
use aws_smithy_types::body::SdkBody;
use gitmoxi_deploy::observed::{
    ObservedContainer, ObservedDeployment, ObservedNativeDeployment, ObservedNativeHook, ObservedService, ObservedTask, ObservedTaskSet,
};
use serde_json::Value;

const SERVICE: &str = "ecs";

pub struct SdkEcs {
    client: Client,
    metrics: crate::io::metrics::AwsCallMetrics,
}

impl SdkEcs {
    pub fn new(client: Client, metrics: crate::io::metrics::AwsCallMetrics) -> Self {
        SdkEcs { client, metrics }
    }

    fn track<T>(&self, operation: &'static str, result: Result<T, AwsError>) -> Result<T, AwsError> {
        self.metrics.observe(SERVICE, operation, result.as_ref().err());
        result
    }
}

/// A closure that replaces the serialized body with `body` (the Lambda adapter uses it too).
pub(super) fn raw_body(body: &Value) -> impl Fn(&mut aws_smithy_runtime_api::client::orchestrator::HttpRequest) + Send + Sync + 'static {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    move |req| {
        let len = bytes.len();
        *req.body_mut() = SdkBody::from(bytes.clone());
        req.headers_mut().insert("content-length", len.to_string());
    }
}

/// Keeps the raw JSON of a response (read after the SDK parsed it), so the services' settings
/// reach the comparison in the API's own shape, every field ECS reports, none converted by hand.
#[derive(Debug, Clone, Default)]
struct KeepResponse(std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for KeepResponse {
    fn name(&self) -> &'static str {
        "KeepResponse"
    }

    fn read_after_deserialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let (Some(bytes), Ok(mut kept)) = (context.response().body().bytes(), self.0.lock()) {
            *kept = Some(bytes.to_vec());
        }
        Ok(())
    }
}

impl KeepResponse {
    /// The settings of each service DescribeServices answered, by ARN: the members of
    /// [`gitmoxi_deploy::compare::COMPARED`] as ECS sent them.
    fn service_settings(&self) -> std::collections::HashMap<String, Value> {
        let kept = self.0.lock().ok().and_then(|mut k| k.take()).unwrap_or_default();
        let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(&kept) else { return Default::default() };
        let Some(Value::Array(services)) = answer.get("services") else { return Default::default() };
        services
            .iter()
            .filter_map(|svc| {
                let arn = svc.get("serviceArn")?.as_str()?.to_string();
                let settings: serde_json::Map<String, Value> = gitmoxi_deploy::compare::COMPARED
                    .iter()
                    .filter_map(|field| svc.get(*field).map(|v| ((*field).to_string(), v.clone())))
                    .collect();
                Some((arn, Value::Object(settings)))
            })
            .collect()
    }
}

fn i32_to_u32(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn str_field<'a>(body: &'a Value, name: &str) -> &'a str {
    body.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// Which tasks ListTasks should return.
enum TaskFilter<'a> {
    Service(&'a str),
    StartedBy(&'a str),
}

/// What DescribeServices says of one service.
fn observed_service(s: &aws_sdk_ecs::types::Service) -> ObservedService {
    ObservedService {
        arn: s.service_arn().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().into(),
        task_definition: s.task_definition().map(str::to_string),
        desired_count: i32_to_u32(s.desired_count()),
        running_count: i32_to_u32(s.running_count()),
        pending_count: i32_to_u32(s.pending_count()),
        deployments: s
            .deployments()
            .iter()
            .map(|d| ObservedDeployment {
                id: d.id().unwrap_or_default().to_string(),
                status: d.status().unwrap_or_default().into(),
                task_definition: d.task_definition().unwrap_or_default().to_string(),
                desired_count: i32_to_u32(d.desired_count()),
                running_count: i32_to_u32(d.running_count()),
                pending_count: i32_to_u32(d.pending_count()),
                failed_tasks: i32_to_u32(d.failed_tasks()),
                rollout_state: d.rollout_state().map(|r| r.as_str().to_string()),
                rollout_state_reason: d.rollout_state_reason().map(str::to_string),
            })
            .collect(),
        has_load_balancers: !s.load_balancers().is_empty(),
        deployment_controller: s.deployment_controller().map(|d| d.r#type().as_str().into()),
        tags: s.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect(),
        events: s.events().iter().take(10).filter_map(|e| e.message().map(str::to_string)).collect(),
        settings: None,
    }
}

fn observed_task(t: &aws_sdk_ecs::types::Task) -> ObservedTask {
    ObservedTask {
        arn: t.task_arn().unwrap_or_default().to_string(),
        task_definition: t.task_definition_arn().unwrap_or_default().to_string(),
        last_status: t.last_status().unwrap_or_default().into(),
        desired_status: t.desired_status().unwrap_or_default().into(),
        started_by: t.started_by().map(str::to_string),
        stopped_reason: t.stopped_reason().map(str::to_string),
        stop_code: t.stop_code().map(|c| c.as_str().to_string()),
        health_status: t.health_status().map(|h| h.as_str().into()),
        containers: t
            .containers()
            .iter()
            .map(|c| ObservedContainer {
                name: c.name().unwrap_or_default().to_string(),
                exit_code: c.exit_code(),
                reason: c.reason().map(str::to_string),
            })
            .collect(),
    }
}

fn observed_task_set(t: &aws_sdk_ecs::types::TaskSet) -> ObservedTaskSet {
    ObservedTaskSet {
        id: t.id().unwrap_or_default().to_string(),
        arn: t.task_set_arn().unwrap_or_default().to_string(),
        status: t.status().unwrap_or_default().into(),
        external_id: t.external_id().unwrap_or_default().to_string(),
        task_definition: t.task_definition().unwrap_or_default().to_string(),
        scale_percent: t.scale().map_or(100.0, |s| s.value()),
        computed_desired_count: i32_to_u32(t.computed_desired_count()),
        running_count: i32_to_u32(t.running_count()),
        pending_count: i32_to_u32(t.pending_count()),
        target_groups: t.load_balancers().iter().filter_map(|l| l.target_group_arn().map(str::to_string)).collect(),
        capacity_providers: t.capacity_provider_strategy().iter().map(|c| c.capacity_provider().to_string()).collect(),
    }
}

impl SdkEcs {
    async fn list_task_arns(&self, cluster: &str, filter: TaskFilter<'_>) -> Result<Vec<String>, AwsError> {
        let mut arns: Vec<String> = Vec::new();
        for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
            let mut token: Option<String> = None;
            for _page in 0..20 {
                let request = self.client.list_tasks().cluster(cluster).desired_status(status.clone()).set_next_token(token.clone());
                let request = match filter {
                    TaskFilter::Service(service) => request.service_name(service),
                    TaskFilter::StartedBy(by) => request.started_by(by),
                };
                let out = request.send().await.map_err(|e| AwsError::from_sdk(SERVICE, "ListTasks", e));
                let out = self.track("ListTasks", out)?;
                arns.extend(out.task_arns().iter().cloned());
                token = out.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        arns.sort();
        arns.dedup();
        Ok(arns)
    }

    async fn describe_task_arns(&self, cluster: &str, arns: Vec<String>) -> Result<Vec<ObservedTask>, AwsError> {
        let mut tasks = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(100) {
            let out = self
                .client
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeTasks", e));
            let out = self.track("DescribeTasks", out)?;
            tasks.extend(out.tasks().iter().map(observed_task));
        }
        Ok(tasks)
    }
}

#[async_trait]
impl Ecs for SdkEcs {
    async fn describe_services(&self, cluster: &str, services: &[String]) -> Result<Vec<(String, Option<ObservedService>)>, AwsError> {
        let kept = KeepResponse::default();
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .set_services(Some(services.to_vec()))
            .include(ServiceField::Tags)
            .customize()
            .interceptor(kept.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeServices", e));
        let out = self.track("DescribeServices", out)?;
        let mut settings = kept.service_settings();
        // ECS answers the services it knows (in any order) and a failure for each it does not
        let named = |s: &aws_sdk_ecs::types::Service, name: &str| {
            s.service_name() == Some(name) || s.service_arn().is_some_and(|arn| arn == name || arn.ends_with(&format!("/{name}")))
        };
        let mut observe = |s: &aws_sdk_ecs::types::Service| {
            let mut observed = observed_service(s);
            observed.settings = settings.remove(&observed.arn);
            observed
        };
        let mut found: Vec<(String, Option<ObservedService>)> = Vec::with_capacity(services.len());
        for name in services {
            found.push((name.clone(), out.services().iter().find(|s| named(s, name)).map(&mut observe)));
        }
        Ok(found)
    }

    async fn resolve_task_definition(&self, name: &str) -> Result<Option<String>, AwsError> {
        let described = self
            .client
            .describe_task_definition()
            .task_definition(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeTaskDefinition", e));
        match self.track("DescribeTaskDefinition", described) {
            Ok(d) => Ok(d.task_definition().and_then(|t| t.task_definition_arn()).map(str::to_string)),
            // ECS: ClientException "Unable to describe task definition." for an unknown name
            Err(e) if e.code == "ClientException" => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn task_definition_tags(&self, arn: &str) -> Result<std::collections::BTreeMap<String, String>, AwsError> {
        let described = self
            .client
            .describe_task_definition()
            .task_definition(arn)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeTaskDefinition", e));
        let described = self.track("DescribeTaskDefinition", described)?;
        Ok(described.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect())
    }

    async fn task_logs(&self, task_definition: &str) -> Result<Vec<gitmoxi_deploy::observed::ObservedTaskLogs>, AwsError> {
        let described = self
            .client
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeTaskDefinition", e));
        let described = self.track("DescribeTaskDefinition", described)?;
        let containers = described.task_definition().map(|t| t.container_definitions()).unwrap_or_default();
        Ok(containers
            .iter()
            .filter_map(|c| {
                let config = c.log_configuration().filter(|l| l.log_driver().as_str() == "awslogs")?;
                let option = |k: &str| config.options().and_then(|o| o.get(k)).cloned();
                Some(gitmoxi_deploy::observed::ObservedTaskLogs {
                    container: c.name().unwrap_or_default().to_string(),
                    group: option("awslogs-group"),
                    stream_prefix: option("awslogs-stream-prefix"),
                })
            })
            .collect())
    }

    async fn find_task_definition(&self, family: &str, deployment_id: &str) -> Result<Option<String>, AwsError> {
        let list = self
            .client
            .list_task_definitions()
            .family_prefix(family)
            .sort(SortOrder::Desc)
            .max_results(10)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "ListTaskDefinitions", e));
        let list = self.track("ListTaskDefinitions", list)?;
        let mut arns: Vec<&String> = list.task_definition_arns().iter().collect();
        // Newest first by revision (some endpoints ignore `sort`); the tagged one is recent.
        arns.sort_by_key(|arn| std::cmp::Reverse(arn.rsplit(':').next().and_then(|r| r.parse::<u64>().ok()).unwrap_or(0)));
        for arn in arns.into_iter().take(10) {
            // familyPrefix matches other families that start alike; keep this family only.
            let revisionless = arn.rsplit_once(':').map_or(arn.as_str(), |(a, _)| a);
            if !revisionless.ends_with(&format!("/{family}")) {
                continue;
            }
            let tags = self.task_definition_tags(arn).await?;
            if tags.get(gitmoxi_deploy::strategy::ecs_rolling::TAG_DEPLOYMENT).map(String::as_str) == Some(deployment_id) {
                return Ok(Some(arn.clone()));
            }
        }
        Ok(None)
    }

    async fn service_tasks(&self, cluster: &str, service: &str) -> Result<Vec<ObservedTask>, AwsError> {
        let arns = self.list_task_arns(cluster, TaskFilter::Service(service)).await?;
        self.describe_task_arns(cluster, arns).await
    }

    async fn register_task_definition(&self, body: &Value) -> Result<String, AwsError> {
        let out = self
            .client
            .register_task_definition()
            .family(str_field(body, "family"))
            .set_container_definitions(Some(Vec::new()))
            .customize()
            .mutate_request(raw_body(body))
            // Not idempotent: an SDK retry after a lost answer registers a second revision. The
            // controller retries instead, after looking the tagged revision up.
            .config_override(aws_sdk_ecs::config::Config::builder().retry_config(no_retry()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "RegisterTaskDefinition", e));
        let out = self.track("RegisterTaskDefinition", out)?;
        out.task_definition().and_then(|t| t.task_definition_arn()).map(str::to_string).ok_or_else(|| {
            AwsError::new(
                SERVICE,
                "RegisterTaskDefinition",
                AwsErrorKind::Unavailable,
                "EmptyResponse",
                "no task definition ARN in the answer",
            )
        })
    }

    async fn create_service(&self, body: &Value) -> Result<String, AwsError> {
        let out = self
            .client
            .create_service()
            .service_name(str_field(body, "serviceName"))
            .customize()
            .mutate_request(raw_body(body))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "CreateService", e));
        let out = self.track("CreateService", out)?;
        Ok(out.service().and_then(|s| s.service_arn()).unwrap_or_default().to_string())
    }

    async fn update_service(&self, body: &Value) -> Result<(), AwsError> {
        let out = self
            .client
            .update_service()
            .service(str_field(body, "service"))
            .customize()
            .mutate_request(raw_body(body))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateService", e));
        self.track("UpdateService", out).map(|_| ())
    }

    async fn newest_service_deployment(
        &self,
        cluster: &str,
        service: &str,
        since_ms: u64,
    ) -> Result<Option<ObservedNativeDeployment>, AwsError> {
        let after = aws_smithy_types::DateTime::from_millis(since_ms as i64);
        let listed = self
            .client
            .list_service_deployments()
            .cluster(cluster)
            .service(service)
            .created_at(aws_sdk_ecs::types::CreatedAt::builder().after(after).build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "ListServiceDeployments", e));
        let listed = self.track("ListServiceDeployments", listed)?;
        let newest = listed
            .service_deployments()
            .iter()
            .filter_map(|b| Some((b.created_at().map_or(0, |t| t.to_millis().unwrap_or(0)), b.service_deployment_arn()?)))
            .max_by_key(|(created, _)| *created);
        let Some((_, arn)) = newest else { return Ok(None) };
        let described = self
            .client
            .describe_service_deployments()
            .service_deployment_arns(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeServiceDeployments", e));
        let described = self.track("DescribeServiceDeployments", described)?;
        Ok(described.service_deployments().first().map(native_deployment))
    }

    async fn stop_service_deployment(&self, arn: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .stop_service_deployment()
            .service_deployment_arn(arn)
            .stop_type(aws_sdk_ecs::types::StopServiceDeploymentStopType::Rollback)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "StopServiceDeployment", e));
        self.track("StopServiceDeployment", out).map(|_| ())
    }

    async fn continue_service_deployment(&self, arn: &str, hook_id: &str, rollback: bool) -> Result<(), AwsError> {
        use aws_sdk_ecs::types::DeploymentLifecycleHookAction as HookAction;
        let out = self
            .client
            .continue_service_deployment()
            .service_deployment_arn(arn)
            .hook_id(hook_id)
            .action(if rollback { HookAction::Rollback } else { HookAction::Continue })
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "ContinueServiceDeployment", e));
        self.track("ContinueServiceDeployment", out).map(|_| ())
    }

    async fn delete_service(&self, cluster: &str, service: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .delete_service()
            .cluster(cluster)
            .service(service)
            .force(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DeleteService", e));
        match self.track("DeleteService", out) {
            Ok(_) => Ok(()),
            // Already gone: the goal is reached.
            Err(e) if e.code == "ServiceNotFoundException" || e.code == "ServiceNotActiveException" => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn tag_resource(&self, arn: &str, tags: &[(String, String)]) -> Result<(), AwsError> {
        let tags = tags.iter().map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build()).collect();
        let out = self
            .client
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "TagResource", e));
        self.track("TagResource", out).map(|_| ())
    }

    async fn describe_task_sets(&self, cluster: &str, service: &str) -> Result<Vec<ObservedTaskSet>, AwsError> {
        let out = self
            .client
            .describe_task_sets()
            .cluster(cluster)
            .service(service)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeTaskSets", e));
        match self.track("DescribeTaskSets", out) {
            Ok(out) => Ok(out.task_sets().iter().map(observed_task_set).collect()),
            // A service that is gone has no task sets.
            Err(e) if e.code == "ServiceNotFoundException" || e.code == "ServiceNotActiveException" => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn tasks_started_by(&self, cluster: &str, started_by: &str) -> Result<Vec<ObservedTask>, AwsError> {
        let arns = self.list_task_arns(cluster, TaskFilter::StartedBy(started_by)).await?;
        self.describe_task_arns(cluster, arns).await
    }

    async fn create_task_set(&self, body: &Value) -> Result<String, AwsError> {
        let out = self
            .client
            .create_task_set()
            .cluster(str_field(body, "cluster"))
            .service(str_field(body, "service"))
            .task_definition(str_field(body, "taskDefinition"))
            .customize()
            .mutate_request(raw_body(body))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "CreateTaskSet", e));
        let out = self.track("CreateTaskSet", out)?;
        Ok(out.task_set().and_then(|t| t.task_set_arn()).unwrap_or_default().to_string())
    }

    async fn update_task_set_scale(&self, cluster: &str, service: &str, task_set: &str, percent: f64) -> Result<(), AwsError> {
        let scale = aws_sdk_ecs::types::Scale::builder().value(percent).unit(aws_sdk_ecs::types::ScaleUnit::Percent).build();
        let out = self
            .client
            .update_task_set()
            .cluster(cluster)
            .service(service)
            .task_set(task_set)
            .scale(scale)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateTaskSet", e));
        self.track("UpdateTaskSet", out).map(|_| ())
    }

    async fn update_primary_task_set(&self, cluster: &str, service: &str, task_set: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .update_service_primary_task_set()
            .cluster(cluster)
            .service(service)
            .primary_task_set(task_set)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateServicePrimaryTaskSet", e));
        self.track("UpdateServicePrimaryTaskSet", out).map(|_| ())
    }

    async fn delete_task_set(&self, cluster: &str, service: &str, task_set: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .delete_task_set()
            .cluster(cluster)
            .service(service)
            .task_set(task_set)
            .force(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DeleteTaskSet", e));
        match self.track("DeleteTaskSet", out) {
            Ok(_) => Ok(()),
            // Already gone (a replay after a lost answer, say): the goal is reached. ECS says
            // TaskSetNotFoundException; some endpoints a ClientException that it does not exist.
            Err(e) if e.code == "TaskSetNotFoundException" || (e.code == "ClientException" && e.message.contains("does not exist")) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
    async fn run_task(&self, body: &Value) -> Result<(), AwsError> {
        let out = self
            .client
            .run_task()
            .cluster(str_field(body, "cluster"))
            .task_definition(str_field(body, "taskDefinition"))
            .customize()
            .mutate_request(raw_body(body))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "RunTask", e));
        let out = self.track("RunTask", out)?;
        match out.failures().first() {
            // RunTask answers 200 with failures when it could not place the task
            Some(f) if out.tasks().is_empty() => Err(AwsError::new(
                SERVICE,
                "RunTask",
                AwsErrorKind::Rejected,
                f.reason().unwrap_or("RunTaskFailure"),
                format!("RunTask placed no task: {} {}", f.reason().unwrap_or_default(), f.detail().unwrap_or_default()),
            )),
            Some(_) | None => Ok(()),
        }
    }
}

/// Our view of an ECS service deployment.
fn native_deployment(d: &aws_sdk_ecs::types::ServiceDeployment) -> ObservedNativeDeployment {
    ObservedNativeDeployment {
        arn: d.service_deployment_arn().unwrap_or_default().to_string(),
        created_at_ms: d.created_at().and_then(|t| t.to_millis().ok()).unwrap_or(0).max(0) as u64,
        status: d.status().map(|s| s.as_str()).unwrap_or("PENDING").into(),
        status_reason: d.status_reason().map(str::to_string),
        lifecycle_stage: d.lifecycle_stage().map(|s| s.as_str().into()),
        production_weight: d.target_service_revision().and_then(|r| r.requested_production_traffic_weight()),
        rollback_reason: d.rollback().and_then(|r| r.reason()).map(str::to_string),
        hooks: d
            .lifecycle_hook_details()
            .iter()
            .map(|h| ObservedNativeHook {
                id: h.hook_id().unwrap_or_default().to_string(),
                target_type: h.target_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
                target_arn: h.target_arn().map(str::to_string),
                status: h.status().map(|s| s.as_str()).unwrap_or("IN_PROGRESS").into(),
            })
            .collect(),
    }
}
