"""Tests of the ECS scheduler extension in server.py, against a running server.

Run: python tests/moto/test_server.py  (starts its own server on a free port)
"""

import datetime
import os
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SchedulerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        env = dict(os.environ, GITMOXI_MOTO_TASK_START_SECONDS="0.3", GITMOXI_MOTO_MINUTE_SECONDS="1")
        cls.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "server.py"), "--host", "127.0.0.1", "--port", str(cls.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            # MOTO_LOG=FILE keeps the server's log (its tracebacks) for a failing run
            stderr=open(os.environ.get("MOTO_LOG", os.devnull), "w"),
        )
        url = f"http://127.0.0.1:{cls.port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        cls.url = url
        kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        cls.ecs = boto3.client("ecs", **kw)
        ec2 = boto3.client("ec2", **kw)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        cls.subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        cls.sg = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
        cls.ecs.create_cluster(clusterName="c")
        cls.elb = boto3.client("elbv2", **kw)
        lb = cls.elb.create_load_balancer(Name="lb", Subnets=[cls.subnet], SecurityGroups=[cls.sg])["LoadBalancers"][0]["LoadBalancerArn"]
        cls.tg = cls.elb.create_target_group(Name="tg", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        listener = cls.elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[{"Type": "forward", "TargetGroupArn": cls.tg}])
        cls.green_tg = cls.elb.create_target_group(Name="tg-green", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        cls.rule = cls.elb.create_rule(
            ListenerArn=listener["Listeners"][0]["ListenerArn"],
            Priority=10,
            Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
            Actions=[{"Type": "forward", "TargetGroupArn": cls.tg}],
        )["Rules"][0]["RuleArn"]

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=10)

    def register(self, image):
        return self.ecs.register_task_definition(
            family="web",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "web", "image": image, "memory": 512}],
        )["taskDefinition"]["taskDefinitionArn"]

    def describe(self, name):
        return self.ecs.describe_services(cluster="c", services=[name])["services"][0]

    def wait(self, name, predicate, seconds=10):
        deadline = time.time() + seconds
        while time.time() < deadline:
            svc = self.describe(name)
            if predicate(svc):
                return svc
            time.sleep(0.1)
        self.fail(f"condition not reached: {self.describe(name)}")

    def net(self):
        return {"awsvpcConfiguration": {"subnets": [self.subnet], "securityGroups": [self.sg]}}

    def test_create_then_rolling_update_replaces_tasks(self):
        td1 = self.register("nginx:1")
        self.ecs.create_service(cluster="c", serviceName="s1", taskDefinition=td1, desiredCount=2, launchType="FARGATE", networkConfiguration=self.net())
        svc = self.wait("s1", lambda s: s["runningCount"] == 2 and s["deployments"][0]["rolloutState"] == "COMPLETED")
        self.assertEqual(len(svc["deployments"]), 1)
        tasks = self.ecs.list_tasks(cluster="c", serviceName="s1")["taskArns"]
        self.assertEqual(len(tasks), 2)
        described = self.ecs.describe_tasks(cluster="c", tasks=tasks)["tasks"]
        self.assertTrue(all(t["startedBy"] == svc["deployments"][0]["id"] for t in described))
        td2 = self.register("nginx:2")
        self.ecs.update_service(cluster="c", service="s1", taskDefinition=td2)
        svc = self.describe("s1")
        self.assertEqual([d["status"] for d in svc["deployments"]], ["PRIMARY", "ACTIVE"])
        svc = self.wait("s1", lambda s: len(s["deployments"]) == 1 and s["runningCount"] == 2)
        self.assertEqual(svc["deployments"][0]["taskDefinition"], td2)
        stopped = self.ecs.list_tasks(cluster="c", serviceName="s1", desiredStatus="STOPPED")["taskArns"]
        reasons = {t["stoppedReason"] for t in self.ecs.describe_tasks(cluster="c", tasks=stopped)["tasks"]}
        self.assertTrue(all(r.startswith("Scaling activity initiated") for r in reasons), reasons)

    def test_failing_image_stops_with_a_pull_error(self):
        td = self.register("nginx:fail")
        self.ecs.create_service(cluster="c", serviceName="s2", taskDefinition=td, desiredCount=1, launchType="FARGATE", networkConfiguration=self.net())
        self.wait("s2", lambda s: s["deployments"][0].get("failedTasks", 0) >= 1)
        stopped = self.ecs.list_tasks(cluster="c", serviceName="s2", desiredStatus="STOPPED")["taskArns"]
        tasks = self.ecs.describe_tasks(cluster="c", tasks=stopped)["tasks"]
        self.assertTrue(tasks)
        self.assertIn("CannotPullContainerError", tasks[0]["stoppedReason"])
        self.assertEqual(self.describe("s2")["runningCount"], 0)

    def test_an_assumed_role_reaches_its_own_account_and_an_untrusted_one_is_denied(self):
        sts = boto3.client("sts", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        creds = sts.assume_role(RoleArn="arn:aws:iam::111111111111:role/gitmoxi-deploy", RoleSessionName="gitmoxi")["Credentials"]
        other = boto3.client(
            "ecs",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        other.create_cluster(clusterName="only-in-b")
        self.assertIn("111111111111", other.describe_clusters(clusters=["only-in-b"])["clusters"][0]["clusterArn"])
        self.assertEqual(self.ecs.describe_clusters(clusters=["only-in-b"])["clusters"], [], "accounts are isolated")
        with self.assertRaises(Exception) as denied:
            sts.assume_role(RoleArn="arn:aws:iam::222222222222:role/untrusted-gitmoxi", RoleSessionName="gitmoxi")
        self.assertEqual(denied.exception.response["Error"]["Code"], "AccessDenied")
        self.assertIn("not authorized to perform: sts:AssumeRole", str(denied.exception))

    def native_service(self, name, config, load_balancers=None):
        td1 = self.register("nginx:1")
        self.ecs.create_service(
            cluster="c",
            serviceName=name,
            taskDefinition=td1,
            desiredCount=2,
            launchType="FARGATE",
            deploymentConfiguration=config,
            loadBalancers=load_balancers or [],
            networkConfiguration={"awsvpcConfiguration": {"subnets": [self.subnet], "securityGroups": [self.sg]}},
        )
        self.wait_deployment(name, lambda d: d["status"] == "SUCCESSFUL")
        return td1

    def newest(self, name):
        # as gitmoxi asks: those created since a moment ago
        since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
        listed = self.ecs.list_service_deployments(cluster="c", service=name, createdAt={"after": since})["serviceDeployments"]
        newest = max(listed, key=lambda b: b["createdAt"])
        return self.ecs.describe_service_deployments(serviceDeploymentArns=[newest["serviceDeploymentArn"]])["serviceDeployments"][0]

    def wait_deployment(self, name, predicate, seconds=20):
        deadline = time.time() + seconds
        seen = []
        while time.time() < deadline:
            d = self.newest(name)
            seen.append((d["status"], d.get("lifecycleStage"), d.get("targetServiceRevision", {}).get("requestedProductionTrafficWeight")))
            if predicate(d):
                return d, seen
            time.sleep(0.1)
        self.fail(f"{name}: the service deployment never got there: {seen[-5:]}")

    def weights(self):
        rule = self.elb.describe_rules(RuleArns=[self.rule])["Rules"][0]
        return {t["TargetGroupArn"]: t.get("Weight") for t in rule["Actions"][0]["ForwardConfig"]["TargetGroups"]}

    def test_native_linear_moves_the_production_rule_then_bakes_and_cleans_up(self):
        config = {"strategy": "LINEAR", "bakeTimeInMinutes": 1, "linearConfiguration": {"stepPercent": 50, "stepBakeTimeInMinutes": 1}}
        lbs = [
            {
                "targetGroupArn": self.tg,
                "containerName": "web",
                "containerPort": 80,
                "advancedConfiguration": {
                    "alternateTargetGroupArn": self.green_tg,
                    "productionListenerRule": self.rule,
                    "roleArn": "arn:aws:iam::123456789012:role/ecs-lb",
                },
            }
        ]
        self.native_service("lin", config, lbs)
        td2 = self.register("nginx:2")
        self.ecs.update_service(cluster="c", service="lin", taskDefinition=td2)
        d, seen = self.wait_deployment("lin", lambda d: d["status"] == "SUCCESSFUL")
        weights = [w for status, stage, w in seen if stage == "PRODUCTION_TRAFFIC_SHIFT"]
        self.assertIn(50.0, weights, seen)
        stages = [stage for _, stage, _ in seen if stage]
        self.assertLess(stages.index("PRODUCTION_TRAFFIC_SHIFT"), stages.index("BAKE_TIME"), stages)
        svc = self.describe("lin")
        self.assertEqual(svc["taskDefinition"], td2)
        self.assertEqual(len(svc["deployments"]), 1, "blue cleaned up")
        # after the first update (create) production moved to the green group, this one moved it back
        self.assertEqual(self.weights(), {self.tg: 100, self.green_tg: 0}, "production on the group green ran in")

    def test_a_pause_hook_waits_for_continue_and_a_rollback_answer_puts_blue_back(self):
        config = {
            "strategy": "BLUE_GREEN",
            "bakeTimeInMinutes": 0,
            "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"], "timeoutConfiguration": {"timeoutInMinutes": 600}}],
        }
        td1 = self.register("nginx:1")
        self.ecs.create_service(cluster="c", serviceName="paused", taskDefinition=td1, desiredCount=1, launchType="FARGATE",
                                deploymentConfiguration=config,
                                networkConfiguration={"awsvpcConfiguration": {"subnets": [self.subnet], "securityGroups": [self.sg]}})
        d, _ = self.wait_deployment("paused", lambda d: any(h["status"] == "AWAITING_ACTION" for h in d.get("lifecycleHookDetails", [])))
        hook = d["lifecycleHookDetails"][0]
        self.assertEqual((d["lifecycleStage"], hook["targetType"]), ("POST_SCALE_UP", "PAUSE"))
        self.ecs.continue_service_deployment(serviceDeploymentArn=d["serviceDeploymentArn"], hookId=hook["hookId"], action="CONTINUE")
        self.wait_deployment("paused", lambda d: d["status"] == "SUCCESSFUL")
        td2 = self.register("nginx:2")
        self.ecs.update_service(cluster="c", service="paused", taskDefinition=td2)
        d, _ = self.wait_deployment("paused", lambda d: any(h["status"] == "AWAITING_ACTION" for h in d.get("lifecycleHookDetails", [])))
        self.ecs.continue_service_deployment(serviceDeploymentArn=d["serviceDeploymentArn"], hookId=d["lifecycleHookDetails"][0]["hookId"], action="ROLLBACK")
        d, _ = self.wait_deployment("paused", lambda d: d["status"] == "ROLLBACK_SUCCESSFUL")
        self.assertIn("ROLLBACK", d["rollback"]["reason"])
        self.assertEqual(self.describe("paused")["taskDefinition"], td1, "blue is back")
        with self.assertRaises(Exception) as answered:
            self.ecs.continue_service_deployment(serviceDeploymentArn=d["serviceDeploymentArn"], hookId="hook-x", action="CONTINUE")
        self.assertEqual(answered.exception.response["Error"]["Code"], "InvalidParameterException")

    def test_a_failing_lambda_hook_and_a_stop_roll_back(self):
        hooked = {
            "strategy": "BLUE_GREEN",
            "bakeTimeInMinutes": 0,
            "lifecycleHooks": [{"targetType": "AWS_LAMBDA", "hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:check-fail",
                                "lifecycleStages": ["POST_PRODUCTION_TRAFFIC_SHIFT"]}],
        }
        td1 = self.register("nginx:1")
        self.ecs.create_service(cluster="c", serviceName="hooked", taskDefinition=td1, desiredCount=1, launchType="FARGATE",
                                deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0},
                                networkConfiguration={"awsvpcConfiguration": {"subnets": [self.subnet], "securityGroups": [self.sg]}})
        self.wait_deployment("hooked", lambda d: d["status"] == "SUCCESSFUL")
        self.ecs.update_service(cluster="c", service="hooked", taskDefinition=self.register("nginx:2"), deploymentConfiguration=hooked)
        d, _ = self.wait_deployment("hooked", lambda d: d["status"] == "ROLLBACK_SUCCESSFUL")
        self.assertIn("check-fail returned FAILED at POST_PRODUCTION_TRAFFIC_SHIFT", d["statusReason"])
        self.assertEqual(self.describe("hooked")["taskDefinition"], td1)
        # a long bake, stopped by the caller: ECS rolls back; a second stop is a conflict
        slow = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 600}
        self.ecs.update_service(cluster="c", service="hooked", taskDefinition=self.register("nginx:3"), deploymentConfiguration=slow)
        d, _ = self.wait_deployment("hooked", lambda d: d.get("lifecycleStage") == "BAKE_TIME")
        self.ecs.stop_service_deployment(serviceDeploymentArn=d["serviceDeploymentArn"], stopType="ROLLBACK")
        d, _ = self.wait_deployment("hooked", lambda d: d["status"] == "ROLLBACK_SUCCESSFUL")
        self.assertEqual(self.describe("hooked")["taskDefinition"], td1)
        with self.assertRaises(Exception) as again:
            self.ecs.stop_service_deployment(serviceDeploymentArn=d["serviceDeploymentArn"], stopType="ROLLBACK")
        self.assertEqual(again.exception.response["Error"]["Code"], "ConflictException")

    def test_get_metric_data_computes_percentiles_and_metric_math(self):
        cw = boto3.client("cloudwatch", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        start = now - datetime.timedelta(seconds=60)
        dims = [{"Name": "TargetGroup", "Value": "targetgroup/g/1"}]
        data = []
        for i in range(6):
            at = start + datetime.timedelta(seconds=10 * i + 1)
            data.append({"MetricName": "RequestCount", "Dimensions": dims, "Timestamp": at, "Value": 100.0})
            for v in range(1, 101):
                data.append({"MetricName": "Latency", "Dimensions": dims, "Timestamp": at, "Value": float(v + i)})
            if i % 2 == 0:
                data.append({"MetricName": "Errors", "Dimensions": dims, "Timestamp": at, "Value": 5.0})
        for chunk in range(0, len(data), 500):
            cw.put_metric_data(Namespace="T", MetricData=data[chunk:chunk + 500])

        def stat(ident, name, s):
            return {"Id": ident, "MetricStat": {"Metric": {"Namespace": "T", "MetricName": name, "Dimensions": dims}, "Period": 10, "Stat": s}, "ReturnData": False}

        out = cw.get_metric_data(
            MetricDataQueries=[
                dict(stat("p", "Latency", "p99"), ReturnData=True),
                stat("errors", "Errors", "Sum"),
                stat("requests", "RequestCount", "Sum"),
                {"Id": "rate", "Expression": "100 * FILL(errors, 0) / requests", "Period": 10},
            ],
            StartTime=start,
            EndTime=now,
            ScanBy="TimestampAscending",
        )
        results = {r["Id"]: r["Values"] for r in out["MetricDataResults"]}
        self.assertEqual(results["p"], [99.0 + i for i in range(6)], "nearest-rank p99 of 1..100 (+i)")
        self.assertEqual(results["rate"], [5.0, 0.0, 5.0, 0.0, 5.0, 0.0], "FILL gives 0 where no error was put")

    def test_delete_stops_tasks(self):
        td = self.register("nginx:1")
        self.ecs.create_service(cluster="c", serviceName="s3", taskDefinition=td, desiredCount=1, launchType="FARGATE", networkConfiguration=self.net())
        self.wait("s3", lambda s: s["runningCount"] == 1)
        self.ecs.delete_service(cluster="c", service="s3", force=True)
        self.assertEqual(self.ecs.list_tasks(cluster="c", serviceName="s3", desiredStatus="RUNNING")["taskArns"], [])

    def task_set(self, arn):
        return self.ecs.describe_task_sets(cluster="c", service="bg", taskSets=[arn])["taskSets"][0]

    def wait_task_set(self, arn, predicate, seconds=10):
        deadline = time.time() + seconds
        while time.time() < deadline:
            ts = self.task_set(arn)
            if predicate(ts):
                return ts
            time.sleep(0.1)
        self.fail(f"condition not reached: {self.task_set(arn)}")

    def healthy(self):
        health = self.elb.describe_target_health(TargetGroupArn=self.tg)["TargetHealthDescriptions"]
        return sum(1 for h in health if h["TargetHealth"]["State"] == "healthy")

    def test_task_sets_run_scale_register_targets_and_are_idempotent(self):
        td = self.register("nginx:1")
        self.ecs.create_service(cluster="c", serviceName="bg", desiredCount=2, deploymentController={"type": "EXTERNAL"})
        lbs = [{"targetGroupArn": self.tg, "containerName": "web", "containerPort": 80}]
        args = dict(
            cluster="c", service="bg", taskDefinition=td, externalId="x", launchType="FARGATE", networkConfiguration=self.net(),
            loadBalancers=lbs, scale={"value": 100.0, "unit": "PERCENT"}, clientToken="token-1",
        )
        arn = self.ecs.create_task_set(**args)["taskSet"]["taskSetArn"]
        self.assertEqual(self.ecs.create_task_set(**args)["taskSet"]["taskSetArn"], arn, "a replay returns the same task set")
        ts = self.wait_task_set(arn, lambda t: t.get("runningCount") == 2)
        self.assertEqual((ts["computedDesiredCount"], ts["status"]), (2, "PRIMARY"))
        tasks = self.ecs.list_tasks(cluster="c", startedBy=ts["id"])["taskArns"]
        self.assertEqual(len(tasks), 2)
        self.assertEqual(self.healthy(), 2)
        self.ecs.update_task_set(cluster="c", service="bg", taskSet=arn, scale={"value": 50.0, "unit": "PERCENT"})
        self.wait_task_set(arn, lambda t: t.get("runningCount") == 1)
        self.assertEqual(self.healthy(), 1)
        self.ecs.delete_task_set(cluster="c", service="bg", taskSet=arn, force=True)
        self.assertEqual(self.ecs.list_tasks(cluster="c", startedBy=ts["id"], desiredStatus="RUNNING")["taskArns"], [])
        self.assertEqual(self.healthy(), 0)


if __name__ == "__main__":
    unittest.main()
