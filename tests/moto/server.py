#!/usr/bin/env python3
"""moto's server plus a small ECS service scheduler, for gitmoxi's tests and demo.

moto 5.2.5 never runs a rolling deployment: its services launch no tasks and UpdateService opens
no new deployment. This extension gives services with the ECS deployment controller a scheduler:

- every CreateService, and every UpdateService that changes the task definition (or forces a new
  deployment), opens a new PRIMARY deployment (the previous one becomes ACTIVE);
- the PRIMARY deployment's tasks are launched through moto's own Task model, with
  `startedBy` = the deployment id, and reach RUNNING after GITMOXI_MOTO_TASK_START_SECONDS;
- a task whose container image contains `fail` stops instead, with a CannotPullContainerError
  stop reason (stop code TaskFailedToStart), and is replaced like ECS does;
- once the PRIMARY deployment runs its desired count, older deployments' tasks are stopped
  ("Scaling activity initiated by …") and the deployment list shrinks to the PRIMARY, whose
  rolloutState becomes COMPLETED;
- runningCount, pendingCount, rolloutState and deployments[] are kept true at every describe;
- ListTasks honours serviceName; DeleteService stops the service's tasks.

Services with the EXTERNAL deployment controller get a task-set scheduler (gitmoxi blue/green):

- CreateTaskSet is idempotent by clientToken (a replay returns the same task set) and launches
  ceil(desiredCount × scale %) tasks with `startedBy` = the task set id; UpdateTaskSet rescales;
  DeleteTaskSet stops its tasks;
- each RUNNING task is registered (by a private IP of its own) in the task set's target groups,
  so DescribeTargetHealth reports it healthy, and deregistered when it stops;
- computedDesiredCount, runningCount and pendingCount of every task set are kept true.

ECS's own strategies (moto models none of them): a service whose deploymentConfiguration.strategy
is BLUE_GREEN, LINEAR or CANARY opens a service deployment on create and on each new revision,
and ListServiceDeployments / DescribeServiceDeployments / StopServiceDeployment /
ContinueServiceDeployment answer for it, as the ECS developer guide describes:

- stages in order: PRE_SCALE_UP, SCALE_UP (green tasks start; blue keeps serving), POST_SCALE_UP,
  TEST_TRAFFIC_SHIFT, POST_TEST_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT (all at once; stepPercent
  every stepBakeTimeInMinutes; or canaryPercent for canaryBakeTimeInMinutes, then the rest; each
  production step preceded by PRE_PRODUCTION_TRAFFIC_SHIFT, whose hooks run before it),
  POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME (bakeTimeInMinutes, both revisions run), CLEAN_UP (blue
  stops) → SUCCESSFUL; with loadBalancers[].advancedConfiguration the production (and test)
  listener rule's forward weights move between the service's target group and the alternate one,
  and production stays on the green group afterwards;
- lifecycle hooks run at the stages they name and a stage ends when they succeeded: an AWS_LAMBDA
  hook answers SUCCEEDED, FAILED when its function's name contains `fail`, or IN_PROGRESS for a
  few seconds first when it contains `slow` (moto runs no Lambda code); a PAUSE hook is
  AWAITING_ACTION until ContinueServiceDeployment (CONTINUE / ROLLBACK) or its timeout;
- the circuit breaker (when enabled), a failed hook, StopServiceDeployment(ROLLBACK) or a
  ROLLBACK answer put blue back: ROLLBACK_SUCCESSFUL with the reason.
A "minute" of these settings lasts GITMOXI_MOTO_MINUTE_SECONDS (default 60; the tests use 1).

STS: moto lets any AssumeRole switch accounts (the role need not exist), which is how the tests
reach a second account. AWS refuses an AssumeRole whose role does not trust the caller; here a role
whose name starts with `untrusted-` stands for one (AccessDenied, AWS's message).

One-off tasks of gitmoxi's hooks (RunTask with `startedBy` `gitmoxi-hook/…`): RUNNING for twice
the task start time, then STOPPED ("Essential container in task exited") with the exit code the
image names (`exit-3` → 3, otherwise 0). Lambda Invoke (moto runs no function code here): a
function whose name contains `fail` answers a FunctionError (Unhandled) with an error line in the
log's tail, any other function answers 200.

CloudWatch GetMetricData (moto computes Sum, Average, Minimum, Maximum and SampleCount, and an
expression only when it is another query's id): percentile statistics (`p99`: nearest rank over
the period's datapoints) and metric math over query ids (`+ - * /`, parentheses, numbers,
`FILL(id, value)`; an operation applies to the timestamps both sides have, a division by zero
drops the point), as the CloudWatch user guide describes them.

The scheduler advances lazily on DescribeServices, ListTasks and DescribeTasks. Pinned to moto
5.2.5: the patched methods are checked at start-up and the server refuses to start on another
version. Run: python tests/moto/server.py --host 127.0.0.1 --port N
"""

import base64
import datetime
import json
import math
import re
import os
import sys
import threading
import time

import moto
import moto.cloudwatch.models as cloudwatch_models
from moto.awslambda.models import LambdaFunction
from moto.core.utils import utcnow
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend, Task
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api._internal import mock_random
from moto.core.responses import ActionResult
from moto.sts.models import STSBackend

PINNED_MOTO = "5.2.5"
START_SECONDS = float(os.environ.get("GITMOXI_MOTO_TASK_START_SECONDS", "1"))
MINUTE_SECONDS = float(os.environ.get("GITMOXI_MOTO_MINUTE_SECONDS", "60"))
FAIL_MARKER = "fail"
LOCK = threading.RLock()

_orig_create_service = EC2ContainerServiceBackend.create_service
_orig_update_service = EC2ContainerServiceBackend.update_service
_orig_describe_services = EC2ContainerServiceBackend.describe_services
_orig_list_tasks = EC2ContainerServiceBackend.list_tasks
_orig_describe_tasks = EC2ContainerServiceBackend.describe_tasks
_orig_delete_service = EC2ContainerServiceBackend.delete_service
_orig_create_task_set = EC2ContainerServiceBackend.create_task_set
_orig_describe_task_sets = EC2ContainerServiceBackend.describe_task_sets
_orig_update_task_set = EC2ContainerServiceBackend.update_task_set
_orig_delete_task_set = EC2ContainerServiceBackend.delete_task_set
_orig_assume_role = STSBackend.assume_role
_REQUEST = threading.local()
_IP_COUNTER = [0]
UNTRUSTED_ROLE_PREFIX = "untrusted-"


def _scheduled(service):
    return (service.deployment_controller or {}).get("type", "ECS") == "ECS"


def _service_tasks(backend, service):
    tasks = backend.tasks.get(service.cluster_name, {})
    return [t for t in tasks.values() if getattr(t, "_gm_service", None) == service.arn]


def _stop(task, reason, code):
    task.desired_status = "STOPPED"
    task.last_status = "STOPPED"
    task.stopped_reason = reason
    task.stop_code = code
    task.stopped_at = utcnow()


def _event(service, message):
    service.events.insert(0, {"id": str(mock_random.uuid4()), "createdAt": utcnow(), "message": message})
    del service.events[100:]


def _launch(backend, service, deployment, launch_type=None, network_configuration=None):
    cluster = backend._get_cluster(service.cluster_name)
    task_definition = backend.describe_task_definition(deployment["taskDefinition"])
    task = Task(
        cluster,
        task_definition,
        None,
        None,
        backend,
        group=f"service:{service.name}",
        launch_type=launch_type or service.launch_type or "FARGATE",
        started_by=deployment["id"],
        networking_configuration=network_configuration or service.network_configuration or None,
        platform_version=service.platform_version,
    )
    # Our scheduler owns this task's lifecycle: no state-manager transitions.
    task._transitions = []
    task.last_status = "PENDING"
    task._gm_service = service.arn
    task._gm_created = time.monotonic()
    task._gm_fails = any(FAIL_MARKER in (c.get("image") or "") for c in task_definition.container_definitions)
    backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    return task


def _new_deployment(backend, service):
    deployment_id = f"ecs-svc/{mock_random.randint(10**18, 10**19 - 1)}"
    now = utcnow()
    for d in service.deployments:
        if d.get("status") == "PRIMARY":
            d["status"] = "ACTIVE"
            d["updatedAt"] = now
    service.deployments.insert(
        0,
        {
            "id": deployment_id,
            "status": "PRIMARY",
            "taskDefinition": service.task_definition,
            "desiredCount": service.desired_count,
            "pendingCount": 0,
            "runningCount": 0,
            "failedTasks": 0,
            "createdAt": now,
            "updatedAt": now,
            "launchType": service.launch_type,
            "platformVersion": service.platform_version,
            "networkConfiguration": service.network_configuration or None,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
        },
    )
    _event(service, f"(service {service.name}) has started a deployment {deployment_id}.")


def _elbv2(backend):
    from moto.elbv2.models import elbv2_backends

    return elbv2_backends[backend.account_id][backend.region_name]


def _register(backend, task_set, task):
    """Registers a RUNNING task in the task set's target groups, under an IP of its own."""
    if getattr(task, "_gm_ip", None) is None:
        _IP_COUNTER[0] += 1
        n = _IP_COUNTER[0]
        task._gm_ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
    for lb in task_set.load_balancers or []:
        arn = lb.get("targetGroupArn")
        if arn:
            _elbv2(backend).register_targets(arn, [{"Id": task._gm_ip, "Port": int(lb.get("containerPort") or 80)}])


def _deregister(backend, task_set, task):
    if getattr(task, "_gm_ip", None) is None:
        return
    for lb in task_set.load_balancers or []:
        arn = lb.get("targetGroupArn")
        if arn:
            try:
                _elbv2(backend).deregister_targets(arn, [{"Id": task._gm_ip}])
            except Exception:  # the target group may be gone: nothing left to deregister
                pass


def _set_tasks(backend, task_set):
    tasks = backend.tasks.get(task_set.cluster.split("/")[-1], {})
    return [t for t in tasks.values() if t.started_by == task_set.id]


def _advance_task(backend, service, t, now):
    if t.last_status == "PENDING" and now - t._gm_created >= START_SECONDS:
        if t._gm_fails:
            _stop(
                t,
                "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref: not found",
                "TaskFailedToStart",
            )
            _event(service, f"(service {service.name}) task {t.id} failed to start: CannotPullContainerError")
        else:
            t.last_status = "RUNNING"
            t.started_at = utcnow()


def _tick_task_sets(backend, service):
    """The task-set scheduler of an EXTERNAL service."""
    now = time.monotonic()
    for task_set in service.task_sets:
        mine = _set_tasks(backend, task_set)
        if service.status != "ACTIVE":
            for t in mine:
                if t.desired_status != "STOPPED":
                    _stop(t, "Service deleted", "ServiceSchedulerInitiated")
                    _deregister(backend, task_set, t)
            continue
        for t in mine:
            was = t.last_status
            _advance_task(backend, service, t, now)
            if was != "RUNNING" and t.last_status == "RUNNING":
                _register(backend, task_set, t)
        scale = task_set.scale or {"value": 100.0, "unit": "PERCENT"}
        want = int(-(-service.desired_count * float(scale.get("value", 100.0)) // 100))
        live = [t for t in mine if t.desired_status == "RUNNING"]
        for _ in range(max(want - len(live), 0)):
            if _spot_short(backend, service, task_set):
                # as ECS does it: a service event, and no task started
                _event(
                    service,
                    f"(service {service.name}, taskSet {task_set.id}) was unable to place a task. Reason: Capacity is "
                    "unavailable at this time. Please try again later or in a different availability zone.",
                )
                break
            deployment = {"id": task_set.id, "taskDefinition": task_set.task_definition}
            task = _launch(backend, service, deployment, task_set.launch_type, task_set.network_configuration)
            task._gm_spot = _on_spot(task_set)
            live.append(task)
        for t in live[want:]:
            _stop(t, f"Scaling activity initiated by (deployment {task_set.id})", "ServiceSchedulerInitiated")
            _deregister(backend, task_set, t)
        mine = _set_tasks(backend, task_set)
        task_set.computed_desired_count = want
        task_set.running_count = sum(1 for t in mine if t.last_status == "RUNNING")
        task_set.pending_count = sum(1 for t in mine if t.last_status == "PENDING")
        task_set.stabilityStatus = "STEADY_STATE" if task_set.running_count == want else "STABILIZING"
    if service.status == "ACTIVE":
        service.running_count = sum(getattr(ts, "running_count", 0) for ts in service.task_sets)
        service.pending_count = sum(getattr(ts, "pending_count", 0) for ts in service.task_sets)


SPOT_CAPACITY_TAG = "gitmoxi-test:spot-capacity"


def _on_spot(task_set):
    providers = [p.get("capacityProvider") for p in (task_set.capacity_provider_strategy or [])]
    return bool(providers) and all(p == "FARGATE_SPOT" for p in providers)


def _spot_short(backend, service, task_set):
    """Whether a FARGATE_SPOT task of `task_set` finds no capacity: the cluster's tag
    `gitmoxi-test:spot-capacity` (a test's knob) caps the Spot tasks running in it."""
    if not _on_spot(task_set):
        return False
    cluster = backend._get_cluster(service.cluster_name)
    tags = {t.get("key"): t.get("value") for t in (cluster.tags or [])}
    cap = tags.get(SPOT_CAPACITY_TAG)
    if cap is None:
        return False
    tasks = backend.tasks.get(cluster.name, {}).values()
    running = sum(1 for t in tasks if getattr(t, "_gm_spot", False) and t.desired_status != "STOPPED")
    return running >= int(cap)


def _tick(backend, service):
    """Advances the service's deployments and tasks to now."""
    if (service.deployment_controller or {}).get("type") == "EXTERNAL":
        _tick_task_sets(backend, service)
        return
    if not _scheduled(service) or not service.deployments:
        return
    mine = _service_tasks(backend, service)
    if service.status != "ACTIVE":
        for t in mine:
            if t.desired_status != "STOPPED":
                _stop(t, "Service deleted", "ServiceSchedulerInitiated")
        service.running_count = 0
        service.pending_count = 0
        return
    now = time.monotonic()
    for t in mine:
        if t.last_status == "PENDING" and now - t._gm_created >= START_SECONDS:
            if t._gm_fails:
                image = ",".join(c.image for c in t.containers) if hasattr(t.containers[0], "image") else ""
                _stop(
                    t,
                    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
                    f"{image or 'the container image'}: not found",
                    "TaskFailedToStart",
                )
                primary = service.deployments[0]
                if t.started_by == primary["id"]:
                    primary["failedTasks"] = primary.get("failedTasks", 0) + 1
                _event(service, f"(service {service.name}) task {t.id} failed to start: CannotPullContainerError")
            else:
                t.last_status = "RUNNING"
                t.started_at = utcnow()
    primary = service.deployments[0]
    primary["desiredCount"] = service.desired_count
    live = [t for t in mine if t.started_by == primary["id"] and t.desired_status == "RUNNING"]
    for _ in range(max(service.desired_count - len(live), 0)):
        live.append(_launch(backend, service, primary))
    for t in live[service.desired_count:]:
        _stop(t, f"Scaling activity initiated by (deployment {primary['id']})", "ServiceSchedulerInitiated")
    mine = _service_tasks(backend, service)
    native_running = _advance_native(backend, service, mine)
    primary = service.deployments[0]
    mine = _service_tasks(backend, service)
    running_primary = sum(1 for t in mine if t.started_by == primary["id"] and t.last_status == "RUNNING")
    if running_primary >= service.desired_count and not native_running:
        for t in mine:
            if t.started_by != primary["id"] and t.desired_status != "STOPPED":
                _stop(t, f"Scaling activity initiated by (deployment {primary['id']})", "ServiceSchedulerInitiated")
        if len(service.deployments) > 1 or primary.get("rolloutState") != "COMPLETED":
            service.deployments[:] = [primary]
            primary["rolloutState"] = "COMPLETED"
            primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
            _event(service, f"(service {service.name}) has reached a steady state.")
    for d in service.deployments:
        d["runningCount"] = sum(1 for t in mine if t.started_by == d["id"] and t.last_status == "RUNNING")
        d["pendingCount"] = sum(1 for t in mine if t.started_by == d["id"] and t.last_status == "PENDING")
        if d is not primary:
            d["desiredCount"] = 0
    service.running_count = sum(d["runningCount"] for d in service.deployments)
    service.pending_count = sum(d["pendingCount"] for d in service.deployments)


# CreateService fields moto 5.2.5 drops; ECS stores them and DescribeServices reports them back
# (moto's serializer reads them from the snake_case attributes set here).
_DROPPED_ON_CREATE = [
    ("capacityProviderStrategy", "capacity_provider_strategy"),
    ("placementConstraints", "placement_constraints"),
    ("placementStrategy", "placement_strategy"),
    ("healthCheckGracePeriodSeconds", "health_check_grace_period_seconds"),
    ("enableExecuteCommand", "enable_execute_command"),
    ("enableECSManagedTags", "enable_ecs_managed_tags"),
    ("availabilityZoneRebalancing", "availability_zone_rebalancing"),
]
FORCE_NEEDED = (
    "When switching from launch type to capacity provider strategy on an existing service, or making a change to a "
    "capacity provider strategy on a service that is already using one, you must force a new deployment."
)


def _deployment_configuration(sent):
    """deploymentConfiguration as ECS reports it: what was sent over ECS's defaults."""
    config = {"maximumPercent": 200, "minimumHealthyPercent": 100, "deploymentCircuitBreaker": {"enable": False, "rollback": False}}
    config.update(sent or {})
    return config


def _keep_settings(service, params):
    for member, attribute in _DROPPED_ON_CREATE:
        if params.get(member) is not None:
            setattr(service, attribute, params[member])
    for attribute, default in (("enable_execute_command", False), ("enable_ecs_managed_tags", False)):
        if getattr(service, attribute, None) is None:
            setattr(service, attribute, default)
    if service.launch_type == "FARGATE" and not service.platform_version:
        service.platform_version = "LATEST"
    if params.get("capacityProviderStrategy"):
        service.launch_type = None
    service.deployment_configuration = _deployment_configuration(params.get("deploymentConfiguration"))


def create_service(self, *args, **kwargs):
    with LOCK:
        service = _orig_create_service(self, *args, **kwargs)
        service._gm_config = getattr(_REQUEST, "config", None) or {}
        _keep_settings(service, getattr(_REQUEST, "params", None) or {})
        if _scheduled(service) and service.task_definition:
            service.deployments = []
            service.running_count = 0
            service.pending_count = 0
            _new_deployment(self, service)
            _open_native(self, service, None)
            _tick(self, service)
        return service


def update_service(self, service_properties):
    with LOCK:
        props = dict(service_properties)
        cluster_str = props.get("cluster", "default")
        name = props.get("service", "").split("/")[-1]
        force = bool(props.get("force_new_deployment", False))
        before = self._get_service(cluster_str, name)
        old_task_definition = before.task_definition
        strategy = props.get("capacity_provider_strategy")
        if strategy is not None and strategy != getattr(before, "capacity_provider_strategy", None) and not force:
            raise InvalidParameterException(FORCE_NEEDED)
        service = _orig_update_service(self, service_properties)
        config = getattr(_REQUEST, "config", None)
        if config is not None:
            service._gm_config = config
            service.deployment_configuration = _deployment_configuration(config)
        if strategy:
            service.launch_type = None
        if _scheduled(service):
            if service.task_definition and not service.task_definition.startswith("arn:"):
                service.task_definition = self.describe_task_definition(service.task_definition).arn
            if service.task_definition != old_task_definition or force or not service.deployments:
                source = service.deployments[0] if service.deployments else None
                _new_deployment(self, service)
                _open_native(self, service, source)
            _tick(self, service)
        return service


def describe_services(self, cluster_str, service_names_or_arns):
    with LOCK:
        services, failures = _orig_describe_services(self, cluster_str, service_names_or_arns)
        for service in services:
            _tick(self, service)
        return services, failures


def list_tasks(self, cluster_str=None, container_instance=None, family=None, started_by=None, service_name=None, desiredStatus=None):
    with LOCK:
        # tick only the services asked about: ticking all made every call O(services)
        name = service_name.split("/")[-1] if service_name else None
        for service in list(self.services.values()):
            if name is None or service.name == name:
                _tick(self, service)
        _tick_one_off(self)
        tasks = _orig_list_tasks(self, cluster_str, container_instance, family, started_by, None, desiredStatus)
        if name:
            arns = {s.arn for s in self.services.values() if s.name == name}
            tasks = [t for t in tasks if getattr(t, "_gm_service", None) in arns]
        return tasks


def describe_tasks(self, cluster_str, tasks):
    with LOCK:
        _tick_one_off(self)
        described = _orig_describe_tasks(self, cluster_str, tasks)
        owners = {getattr(t, "_gm_service", None) for t in described}
        if None in owners:
            owners = {s.arn for s in self.services.values()}
        for service in list(self.services.values()):
            if service.arn in owners:
                _tick(self, service)
        return _orig_describe_tasks(self, cluster_str, tasks)


def delete_service(self, cluster_name, service_name, force):
    with LOCK:
        service = _orig_delete_service(self, cluster_name, service_name, force)
        _tick(self, service)
        return service


def create_task_set(self, service, cluster_str, task_definition, **kwargs):
    with LOCK:
        token = kwargs.get("client_token")
        name = service.split("/")[-1]
        existing = self.services.get(f"{cluster_str.split('/')[-1]}:{name}")
        if existing and token:
            for task_set in existing.task_sets:
                if task_set.client_token == token:
                    return task_set
        scale = kwargs.pop("scale", None)
        task_set = _orig_create_task_set(self, service, cluster_str, task_definition, **kwargs)
        task_set.scale = scale or {"value": 100.0, "unit": "PERCENT"}
        task_set.cluster = cluster_str
        owner = self._get_service(cluster_str, name)
        if not any(ts.status == "PRIMARY" for ts in owner.task_sets):
            task_set.status = "PRIMARY"
            owner.task_definition = task_set.task_definition
        _tick(self, owner)
        return task_set


def describe_task_sets(self, cluster_str, service, task_sets):
    with LOCK:
        name = service.split("/")[-1]
        for s in list(self.services.values()):
            if s.name == name:
                _tick(self, s)
        return _orig_describe_task_sets(self, cluster_str, service, task_sets)


def update_task_set(self, cluster, service, task_set, scale):
    with LOCK:
        result = _orig_update_task_set(self, cluster, service, task_set, scale)
        _tick(self, self._get_service(cluster, service.split("/")[-1]))
        return result


def delete_task_set(self, cluster, service, task_set):
    with LOCK:
        owner = self._get_service(cluster, service.split("/")[-1])
        removed = _orig_delete_task_set(self, cluster, service, task_set)
        for t in _set_tasks(self, removed):
            if t.desired_status != "STOPPED":
                _stop(t, f"Scaling activity initiated by (deployment {removed.id})", "ServiceSchedulerInitiated")
                _deregister(self, removed, t)
        _tick(self, owner)
        return removed


def assume_role(self, region_name, role_session_name, role_arn, policy, duration, external_id):
    from moto.sts.exceptions import STSClientError

    if role_arn.split(":role/")[-1].split("/")[-1].startswith(UNTRUSTED_ROLE_PREFIX):
        caller = f"arn:aws:sts::{self.account_id}:assumed-role/gitmoxi/{role_session_name}"
        raise STSClientError("AccessDenied", f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}")
    return _orig_assume_role(self, region_name, role_session_name, role_arn, policy, duration, external_id)


# --- ECS-native strategies -------------------------------------------------------------------

NATIVE = ("BLUE_GREEN", "LINEAR", "CANARY")
STAGES = [
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
]
PAUSE_TIMEOUT_MINUTES = 24 * 60


def EcsError(code, message):
    """An ECS error, serialized by moto as ECS answers it."""
    from moto.ecs.exceptions import ECSException

    return ECSException(code, message)


def _minutes(value, default):
    return float(default if value is None else value) * MINUTE_SECONDS


def _native_config(service):
    config = getattr(service, "_gm_config", None) or {}
    return config if config.get("strategy") in NATIVE else None


def _shift_steps(config):
    """(weight, seconds it holds) per production traffic step."""
    strategy = config.get("strategy")
    if strategy == "LINEAR":
        linear = config.get("linearConfiguration") or {}
        step = min(max(float(linear.get("stepPercent", 10.0)), 1.0), 100.0)
        hold = _minutes(linear.get("stepBakeTimeInMinutes"), 6)
        count = int(-(-100 // step))
        return [(min(100.0, k * step), hold) for k in range(1, count + 1)]
    if strategy == "CANARY":
        canary = config.get("canaryConfiguration") or {}
        return [(float(canary.get("canaryPercent", 5.0)), _minutes(canary.get("canaryBakeTimeInMinutes"), 10)), (100.0, 0)]
    return [(100.0, 0)]


def _open_native(backend, service, source):
    config = _native_config(service)
    if not config or not service.deployments:
        return
    native = getattr(service, "_gm_native", None)
    if native is None:
        native = service._gm_native = []
    for d in native:
        if d["end"] is None:
            d["end"] = ("STOPPED", "Service deployment was superseded by a newer deployment.")
            d["finished"] = utcnow()
    cluster = service.cluster_name
    arn = f"arn:aws:ecs:{backend.region_name}:{backend.account_id}:service-deployment/{cluster}/{service.name}/{mock_random.get_random_hex(20)}"
    lbs = [lb for lb in (service.load_balancers or []) if (lb.get("advancedConfiguration") or {}).get("alternateTargetGroupArn")]
    now = time.monotonic()
    native.append(
        {
            "arn": arn,
            "created": utcnow(),
            "finished": None,
            "green": service.deployments[0]["id"],
            "source": dict(source) if source else None,
            "config": config,
            "stage": 0,
            "stage_since": now,
            "prod_step": 0,
            "hooks": None,
            "stop": False,
            "end": None,
            "lbs": lbs,
        }
    )
    _event(service, f"(service {service.name}) has started a service deployment {arn}.")


def _native_running(service):
    return any(d["end"] is None for d in getattr(service, "_gm_native", None) or [])


def _prod_groups(service, lb):
    """(blue, green) target groups of a load balancer entry: production now, and the other."""
    primary = lb.get("targetGroupArn")
    alternate = lb["advancedConfiguration"]["alternateTargetGroupArn"]
    prod = getattr(service, "_gm_prod_tg", {}).get(primary, primary)
    return prod, (alternate if prod == primary else primary)


def _set_weights(backend, service, d, production, test):
    """Sets the forward weights of the production and test listener rules (green's percent)."""
    elb = _elbv2(backend)
    last = d.setdefault("weights", {})
    if last.get("production") == production and last.get("test") == test:
        return
    last.update(production=production, test=test)
    for lb in d["lbs"]:
        blue, green = _prod_groups(service, lb)
        for rule_key, weight in (("productionListenerRule", production), ("testListenerRule", test)):
            rule = lb["advancedConfiguration"].get(rule_key)
            if rule is None or weight is None:
                continue
            forward = {"TargetGroups": [{"TargetGroupArn": blue, "Weight": int(100 - weight)}, {"TargetGroupArn": green, "Weight": int(weight)}]}
            try:
                elb.modify_rule(rule, [], [{"Type": "forward", "ForwardConfig": forward}])
            except Exception as e:  # a rule that is not there: ECS would refuse the service; report it
                _event(service, f"(service {service.name}) could not move traffic on {rule}: {e}")


def _hooks_at(config, stage):
    runs = []
    for i, h in enumerate(config.get("lifecycleHooks") or []):
        if stage not in (h.get("lifecycleStages") or []):
            continue
        target_type = h.get("targetType") or "AWS_LAMBDA"
        timeout = (h.get("timeoutConfiguration") or {})
        runs.append(
            {
                "hookId": f"hook-{mock_random.get_random_hex(12)}",
                "targetType": target_type,
                "targetArn": h.get("hookTargetArn"),
                "status": "AWAITING_ACTION" if target_type == "PAUSE" else "IN_PROGRESS",
                "since": time.monotonic(),
                "timeout": _minutes(timeout.get("timeoutInMinutes"), PAUSE_TIMEOUT_MINUTES),
                "timeoutAction": timeout.get("action") or "ROLLBACK",
            }
        )
    return runs


def _native_rollback(backend, service, d, reason):
    for t in _service_tasks(backend, service):
        if t.started_by == d["green"] and t.desired_status != "STOPPED":
            _stop(t, "Service deployment rolled back", "ServiceSchedulerInitiated")
    source = d["source"]
    if source is not None:
        service.task_definition = source["taskDefinition"]
        source["status"] = "PRIMARY"
        service.deployments[:] = [source] + [x for x in service.deployments if x["id"] not in (d["green"], source["id"])]
    _set_weights(backend, service, d, 0, 0)
    d["end"] = ("ROLLBACK_SUCCESSFUL", reason)
    d["finished"] = utcnow()
    _event(service, f"(service {service.name}) rolled back: {reason}")


def _advance_native(backend, service, mine):
    """Moves the service's running native deployment on; True while one runs."""
    running = [d for d in getattr(service, "_gm_native", None) or [] if d["end"] is None]
    if not running:
        return False
    d = running[-1]
    now = time.monotonic()
    for _ in range(len(STAGES) + 1):
        green_running = sum(1 for t in mine if t.started_by == d["green"] and t.last_status == "RUNNING")
        failed = sum(1 for t in mine if t.started_by == d["green"] and getattr(t, "stop_code", None) == "TaskFailedToStart")
        breaker = (d["config"].get("deploymentCircuitBreaker") or {}).get("enable") is True
        threshold = min(max(-(-service.desired_count // 2), 3), 200)
        if breaker and failed >= threshold:
            _native_rollback(backend, service, d, "Service deployment rolled back because the circuit breaker threshold was exceeded.")
            return False
        if d["stop"]:
            _native_rollback(backend, service, d, "Service deployment rolled back because of a StopServiceDeployment request.")
            return False
        stage = STAGES[d["stage"]]
        if d["hooks"] is None:
            d["hooks"] = _hooks_at(d["config"], stage)
        for h in d["hooks"]:
            name = h["targetArn"] or ""
            if h["targetType"] == "AWS_LAMBDA" and h["status"] == "IN_PROGRESS":
                if "fail" in name:
                    h["status"] = "FAILED"
                    _native_rollback(backend, service, d, f"Lifecycle hook {name} returned FAILED at {stage}.")
                    return False
                if "slow" not in name or now - h["since"] >= 3 * START_SECONDS:
                    h["status"] = "SUCCEEDED"
            if h["targetType"] == "PAUSE" and h["status"] == "AWAITING_ACTION" and now - h["since"] >= h["timeout"]:
                h["status"] = "TIMED_OUT"
                if h["timeoutAction"] != "CONTINUE":
                    _native_rollback(backend, service, d, f"Lifecycle hook {h['hookId']} timed out at {stage}.")
                    return False
        hooks_done = all(h["status"] in ("SUCCEEDED", "TIMED_OUT") for h in d["hooks"])
        elapsed = now - d["stage_since"]
        if stage == "SCALE_UP":
            work_done = green_running >= service.desired_count
        elif stage == "TEST_TRAFFIC_SHIFT":
            _set_weights(backend, service, d, None, 100)
            work_done = True
        elif stage == "PRODUCTION_TRAFFIC_SHIFT":
            steps = _shift_steps(d["config"])
            _set_weights(backend, service, d, _weight_now(d), None)
            work_done = elapsed >= steps[min(d["prod_step"], len(steps) - 1)][1]
        elif stage == "BAKE_TIME":
            _set_weights(backend, service, d, 100, None)
            work_done = elapsed >= _minutes(d["config"].get("bakeTimeInMinutes"), 15)
        else:
            work_done = True
        if not (hooks_done and work_done):
            return True
        if stage == "CLEAN_UP":
            for t in mine:
                if t.started_by != d["green"] and t.desired_status != "STOPPED":
                    _stop(t, f"Scaling activity initiated by (deployment {d['green']})", "ServiceSchedulerInitiated")
            prod = getattr(service, "_gm_prod_tg", None)
            if prod is None:
                prod = service._gm_prod_tg = {}
            for lb in d["lbs"]:
                _, green = _prod_groups(service, lb)
                prod[lb.get("targetGroupArn")] = green
            d["end"] = ("SUCCESSFUL", "Service deployment completed successfully.")
            d["finished"] = utcnow()
            return False
        if stage == "PRODUCTION_TRAFFIC_SHIFT" and d["prod_step"] + 1 < len(_shift_steps(d["config"])):
            # the next production step, its PRE_PRODUCTION_TRAFFIC_SHIFT hooks first
            d["prod_step"] += 1
            d["stage"] -= 1
        else:
            d["stage"] += 1
        d["stage_since"] = now
        d["hooks"] = None
    return True


def _weight_now(d):
    stage = STAGES[d["stage"]]
    steps = _shift_steps(d["config"])
    if stage == "PRE_PRODUCTION_TRAFFIC_SHIFT":
        return steps[d["prod_step"] - 1][0] if d["prod_step"] > 0 else 0.0
    if stage == "PRODUCTION_TRAFFIC_SHIFT":
        return steps[min(d["prod_step"], len(steps) - 1)][0]
    if STAGES.index(stage) < STAGES.index("PRE_PRODUCTION_TRAFFIC_SHIFT"):
        return 0.0
    return 100.0


def _find_native(backend, arn):
    for service in backend.services.values():
        for d in getattr(service, "_gm_native", None) or []:
            if d["arn"] == arn:
                return service, d
    raise EcsError("ServiceDeploymentNotFoundException", f"The service deployment {arn} does not exist.")


def _native_view(service, d, brief):
    status = d["end"][0] if d["end"] else ("ROLLBACK_REQUESTED" if d["stop"] else "IN_PROGRESS")
    view = {
        "serviceDeploymentArn": d["arn"],
        "serviceArn": service.arn,
        "clusterArn": service.cluster_arn,
        "createdAt": d["created"],
        "startedAt": d["created"],
        "status": status,
    }
    if d["end"]:
        view["statusReason"] = d["end"][1]
        view["finishedAt"] = d["finished"]
    if brief:
        return view
    if d["end"] is None:
        view["lifecycleStage"] = STAGES[d["stage"]]
        view["lifecycleHookDetails"] = [
            {k: h[k] for k in ("hookId", "targetType", "targetArn", "status") if h.get(k) is not None} for h in d["hooks"] or []
        ]
    view["targetServiceRevision"] = {
        "arn": f"{service.arn.replace(':service/', ':service-revision/')}/{d['green'].split('/')[-1]}",
        "requestedProductionTrafficWeight": _weight_now(d) if d["end"] is None else (100.0 if status == "SUCCESSFUL" else 0.0),
    }
    view["deploymentConfiguration"] = d["config"]
    if status.startswith("ROLLBACK"):
        view["rollback"] = {"reason": d["end"][1] if d["end"] else "StopServiceDeployment requested", "startedAt": d["finished"] or utcnow()}
    return view


def _service_of(backend, cluster_str, service_str):
    return backend._get_service(cluster_str or "default", (service_str or "").split("/")[-1])


def resp_list_service_deployments(self):
    with LOCK:
        service = _service_of(self.ecs_backend, self._get_param("cluster"), self._get_param("service"))
        _tick(self.ecs_backend, service)
        after = (self._get_param("createdAt") or {}).get("after")
        if after is not None:
            after = after.timestamp() if hasattr(after, "timestamp") else float(after)
        statuses = self._get_param("status") or []
        out = []
        for d in reversed(getattr(service, "_gm_native", None) or []):
            created = d["created"].replace(tzinfo=datetime.timezone.utc) if d["created"].tzinfo is None else d["created"]
            if after is not None and created.timestamp() <= after:
                continue
            view = _native_view(service, d, True)
            if statuses and view["status"] not in statuses:
                continue
            out.append(view)
        return ActionResult({"serviceDeployments": out})


def resp_describe_service_deployments(self):
    with LOCK:
        found, failures = [], []
        for arn in self._get_param("serviceDeploymentArns") or []:
            try:
                service, d = _find_native(self.ecs_backend, arn)
            except Exception:  # moto's ECSException: not ours
                failures.append({"arn": arn, "reason": "MISSING"})
                continue
            _tick(self.ecs_backend, service)
            found.append(_native_view(service, d, False))
        return ActionResult({"serviceDeployments": found, "failures": failures})


def resp_stop_service_deployment(self):
    with LOCK:
        arn = self._get_param("serviceDeploymentArn")
        service, d = _find_native(self.ecs_backend, arn)
        if d["end"] is not None or d["stop"]:
            raise EcsError("ConflictException", f"The service deployment {arn} is already {d['end'][0] if d['end'] else 'stopping'}.")
        d["stop"] = True
        _tick(self.ecs_backend, service)
        return ActionResult({"serviceDeploymentArn": arn})


def resp_continue_service_deployment(self):
    with LOCK:
        arn = self._get_param("serviceDeploymentArn")
        hook_id = self._get_param("hookId")
        action = self._get_param("action") or "CONTINUE"
        service, d = _find_native(self.ecs_backend, arn)
        hook = next((h for h in d["hooks"] or [] if h["hookId"] == hook_id and h["status"] == "AWAITING_ACTION"), None)
        if d["end"] is not None or hook is None:
            raise EcsError("InvalidParameterException", f"The lifecycle hook {hook_id} is not awaiting an action.")
        hook["status"] = "SUCCEEDED"
        if action == "ROLLBACK":
            _native_rollback(self.ecs_backend, service, d, "Service deployment rolled back by ContinueServiceDeployment with action ROLLBACK.")
        _tick(self.ecs_backend, service)
        return ActionResult({"serviceDeploymentArn": arn})


def _keeping_deployment_configuration(handler):
    """The response handler `handler`, with the request's deploymentConfiguration (which moto drops)
    kept for the backend's create_service / update_service of this request."""

    def wrapped(self):
        _REQUEST.config = self._get_param("deploymentConfiguration")
        _REQUEST.params = self._get_params()
        try:
            return handler(self)
        finally:
            _REQUEST.config = None
            _REQUEST.params = None

    return wrapped


# --- CloudWatch: percentiles and metric math ---------------------------------------------------


def _percentile_or(original):
    def get_statistics_for_type(self, stat):
        if isinstance(stat, str) and stat.startswith("p"):
            try:
                q = float(stat[1:])
            except ValueError:
                return None
            values = sorted(self.metric_single_values_list)
            if not values:
                return None
            rank = max(1, math.ceil(q / 100.0 * len(values)))
            return values[min(rank, len(values)) - 1]
        return original(self, stat)

    return get_statistics_for_type


def _tokens(expression):
    out, i = [], 0
    while i < len(expression):
        c = expression[i]
        if c.isspace():
            i += 1
        elif c.isdigit() or c == ".":
            j = i
            while j < len(expression) and (expression[j].isdigit() or expression[j] == "."):
                j += 1
            out.append(("num", float(expression[i:j])))
            i = j
        elif c.isalpha() or c == "_":
            j = i
            while j < len(expression) and (expression[j].isalnum() or expression[j] == "_"):
                j += 1
            out.append(("id", expression[i:j]))
            i = j
        elif c in "+-*/(),":
            out.append(("op", c))
            i += 1
        else:
            raise ValueError(f"Unsupported character {c!r} in the expression")
    return out


def _combine(a, b, op):
    def apply(x, y):
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        return None if y == 0 else x / y

    if not isinstance(a, dict) and not isinstance(b, dict):
        r = apply(a, b)
        return {} if r is None else r
    if not isinstance(a, dict):
        return {t: v for t, v in ((t, apply(a, y)) for t, y in b.items()) if v is not None}
    if not isinstance(b, dict):
        return {t: v for t, v in ((t, apply(x, b)) for t, x in a.items()) if v is not None}
    return {t: v for t, v in ((t, apply(x, b[t])) for t, x in a.items() if t in b) if v is not None}


def parse_expression(expression, results):
    series = {r["id"]: dict(zip(r["timestamps"], r["values"])) for r in results}
    toks = _tokens(expression)
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else (None, None)

    def take(kind=None, value=None):
        t = peek()
        if t[0] is None or (kind and t[0] != kind) or (value is not None and t[1] != value):
            raise ValueError(f"unexpected {t[1]!r} in {expression!r}")
        pos[0] += 1
        return t

    def factor():
        kind, value = take()
        if kind == "num":
            return value
        if kind == "op" and value == "(":
            v = expr()
            take("op", ")")
            return v
        if kind == "op" and value == "-":
            return _combine(0.0, factor(), "-")
        if kind == "id" and value == "FILL":
            take("op", "(")
            _, ident = take("id")
            take("op", ",")
            _, fill = take("num")
            take("op", ")")
            every = {t for s in series.values() for t in s}
            filled = {t: fill for t in every}
            filled.update(series.get(ident, {}))
            return filled
        if kind == "id" and value in series:
            return dict(series[value])
        raise ValueError(f"Unknown metric id {value!r} in {expression!r}")

    def term():
        v = factor()
        while peek() in (("op", "*"), ("op", "/")):
            op = take()[1]
            v = _combine(v, factor(), op)
        return v

    def expr():
        v = term()
        while peek() in (("op", "+"), ("op", "-")):
            op = take()[1]
            v = _combine(v, term(), op)
        return v

    value = expr()
    if not isinstance(value, dict):
        return [], []
    stamps = sorted(value)
    return [value[t] for t in stamps], stamps


# --- hooks: one-off tasks and Lambda invocations -----------------------------------------------

HOOK_PREFIX = "gitmoxi-hook/"


def _tick_one_off(backend):
    now = time.monotonic()
    for cluster_tasks in backend.tasks.values():
        for t in cluster_tasks.values():
            if not (t.started_by or "").startswith(HOOK_PREFIX) or t.last_status == "STOPPED":
                continue
            born = getattr(t, "_gm_born", None)
            if born is None:
                t._gm_born = now
                continue
            if now - born >= 2 * START_SECONDS:
                image = (t.containers[0].image if t.containers else "") or ""
                m = re.search(r"exit-(\d+)", image)
                code = int(m.group(1)) if m else 0
                for c in t.containers:
                    c.exitCode = code
                    c.last_status = "STOPPED"
                _stop(t, "Essential container in task exited", "EssentialContainerExited")


def _invoke_without_code(self, body, request_headers, response_headers):
    name = self.function_name
    if "fail" in name:
        response_headers["x-amz-function-error"] = "Unhandled"
        logs = f"START\n[ERROR] AssertionError: {name}: green answered 503 on /health\nEND\n"
        result = json.dumps({"errorType": "AssertionError", "errorMessage": "green answered 503 on /health"})
    else:
        logs = "START\nEND\n"
        result = json.dumps({"ok": True})
    if request_headers.get("x-amz-invocation-type", "RequestResponse") == "RequestResponse":
        response_headers["x-amz-log-result"] = base64.b64encode(logs.encode("utf-8")).decode("utf-8")
    return result.encode("utf-8")


def install():
    if moto.__version__ != PINNED_MOTO:
        sys.exit(f"tests/moto/server.py is written for moto {PINNED_MOTO}, found {moto.__version__}; run `make test` to install the pinned version")
    EC2ContainerServiceBackend.create_service = create_service
    EC2ContainerServiceBackend.update_service = update_service
    EC2ContainerServiceBackend.describe_services = describe_services
    EC2ContainerServiceBackend.list_tasks = list_tasks
    EC2ContainerServiceBackend.describe_tasks = describe_tasks
    EC2ContainerServiceBackend.delete_service = delete_service
    EC2ContainerServiceBackend.create_task_set = create_task_set
    EC2ContainerServiceBackend.describe_task_sets = describe_task_sets
    EC2ContainerServiceBackend.update_task_set = update_task_set
    EC2ContainerServiceBackend.delete_task_set = delete_task_set
    STSBackend.assume_role = assume_role
    cloudwatch_models.Statistics.get_statistics_for_type = _percentile_or(cloudwatch_models.Statistics.get_statistics_for_type)
    cloudwatch_models.parse_expression = parse_expression
    LambdaFunction.invoke = _invoke_without_code
    EC2ContainerServiceResponse.create_service = _keeping_deployment_configuration(EC2ContainerServiceResponse.create_service)
    EC2ContainerServiceResponse.update_service = _keeping_deployment_configuration(EC2ContainerServiceResponse.update_service)
    EC2ContainerServiceResponse.list_service_deployments = resp_list_service_deployments
    EC2ContainerServiceResponse.describe_service_deployments = resp_describe_service_deployments
    EC2ContainerServiceResponse.stop_service_deployment = resp_stop_service_deployment
    EC2ContainerServiceResponse.continue_service_deployment = resp_continue_service_deployment


def main():
    install()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
