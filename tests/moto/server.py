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

STS: moto lets any AssumeRole switch accounts (the role need not exist), which is how the tests
reach a second account. AWS refuses an AssumeRole whose role does not trust the caller; here a role
whose name starts with `untrusted-` stands for one (AccessDenied, AWS's message).

The scheduler advances lazily on DescribeServices, ListTasks and DescribeTasks. Pinned to moto
5.2.5: the patched methods are checked at start-up and the server refuses to start on another
version. Run: python tests/moto/server.py --host 127.0.0.1 --port N
"""

import os
import sys
import threading
import time

import moto
from moto.core.utils import utcnow
from moto.ecs.models import EC2ContainerServiceBackend, Task
from moto.moto_api._internal import mock_random
from moto.sts.models import STSBackend

PINNED_MOTO = "5.2.5"
START_SECONDS = float(os.environ.get("GITMOXI_MOTO_TASK_START_SECONDS", "1"))
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
            deployment = {"id": task_set.id, "taskDefinition": task_set.task_definition}
            live.append(_launch(backend, service, deployment, task_set.launch_type, task_set.network_configuration))
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
    running_primary = sum(1 for t in mine if t.started_by == primary["id"] and t.last_status == "RUNNING")
    if running_primary >= service.desired_count:
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


def create_service(self, *args, **kwargs):
    with LOCK:
        service = _orig_create_service(self, *args, **kwargs)
        if _scheduled(service) and service.task_definition:
            service.deployments = []
            service.running_count = 0
            service.pending_count = 0
            _new_deployment(self, service)
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
        service = _orig_update_service(self, service_properties)
        if _scheduled(service):
            if service.task_definition and not service.task_definition.startswith("arn:"):
                service.task_definition = self.describe_task_definition(service.task_definition).arn
            if service.task_definition != old_task_definition or force or not service.deployments:
                _new_deployment(self, service)
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
        tasks = _orig_list_tasks(self, cluster_str, container_instance, family, started_by, None, desiredStatus)
        if name:
            arns = {s.arn for s in self.services.values() if s.name == name}
            tasks = [t for t in tasks if getattr(t, "_gm_service", None) in arns]
        return tasks


def describe_tasks(self, cluster_str, tasks):
    with LOCK:
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


def main():
    install()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
