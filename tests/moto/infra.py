#!/usr/bin/env python3
"""Creates demo/test infrastructure in moto and writes it as `terraform output -json`.

VPC (with DNS hostnames, which moto's ECS requires), two subnets, a security group, an ECS
cluster and a CloudWatch log group. With --alb also what blue/green needs: an application load
balancer with two target-group pairs (web-a/web-b on port 80, admin-c/admin-d on port 8080), a
listener per port forwarding to the first group of its pair, a path rule on port 80, and a
CloudWatch alarm `web-5xx` in state OK. Usage:
  python tests/moto/infra.py --endpoint http://127.0.0.1:PORT --out infra/terraform_output.json [--cluster NAME] [--alb]
      [--role-arn arn:aws:iam::ACCOUNT:role/NAME]   (in another account)
"""

import argparse
import json

import boto3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cluster", default="demo")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--alb", action="store_true")
    parser.add_argument("--lambda", dest="with_lambda", action="store_true")
    parser.add_argument("--role-arn", help="create it in the role's account (moto's AssumeRole switches accounts)")
    args = parser.parse_args()
    kw = dict(endpoint_url=args.endpoint, region_name=args.region, aws_access_key_id="test", aws_secret_access_key="test")
    if args.role_arn:
        creds = boto3.client("sts", **kw).assume_role(RoleArn=args.role_arn, RoleSessionName="infra")["Credentials"]
        kw.update(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    ec2 = boto3.client("ec2", **kw)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"{args.region}{az}")["Subnet"]["SubnetId"]
        for i, az in ((1, "a"), (2, "b"))
    ]
    sg = ec2.create_security_group(GroupName=f"{args.cluster}-tasks", Description="gitmoxi demo tasks", VpcId=vpc)["GroupId"]
    cluster = boto3.client("ecs", **kw).create_cluster(clusterName=args.cluster)["cluster"]
    log_group = f"/ecs/{args.cluster}"
    boto3.client("logs", **kw).create_log_group(logGroupName=log_group)
    outputs = {
        "vpc_id": {"sensitive": False, "type": "string", "value": vpc},
        "private_subnets": {"sensitive": False, "type": ["list", "string"], "value": subnets},
        "security_group_id": {"sensitive": False, "type": "string", "value": sg},
        "cluster_name": {"sensitive": False, "type": "string", "value": cluster["clusterName"]},
        "cluster_arn": {"sensitive": False, "type": "string", "value": cluster["clusterArn"]},
        "log_group": {"sensitive": False, "type": "string", "value": log_group},
        "region": {"sensitive": False, "type": "string", "value": args.region},
    }
    if args.alb:
        outputs.update(alb(kw, vpc, subnets, sg))
    if args.with_lambda:
        outputs.update(lambda_sources(kw))
    with open(args.out, "w") as f:
        json.dump(outputs, f, indent=2)
        f.write("\n")


def alb(kw, vpc, subnets, sg):
    elb = boto3.client("elbv2", **kw)
    lb = elb.create_load_balancer(Name="web", Subnets=subnets, SecurityGroups=[sg], Type="application")["LoadBalancers"][0]
    tgs = {}
    for name, port in (("web-a", 80), ("web-b", 80), ("admin-c", 8080), ("admin-d", 8080)):
        tg = elb.create_target_group(Name=name, Protocol="HTTP", Port=port, VpcId=vpc, TargetType="ip")
        tgs[name] = tg["TargetGroups"][0]["TargetGroupArn"]
    listeners = {}
    for port, tg in ((80, "web-a"), (8080, "admin-c")):
        listener = elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port, DefaultActions=[{"Type": "forward", "TargetGroupArn": tgs[tg]}]
        )
        listeners[str(port)] = listener["Listeners"][0]["ListenerArn"]
    rule = elb.create_rule(
        ListenerArn=listeners["80"],
        Priority=10,
        Conditions=[{"Field": "path-pattern", "Values": ["/api/*"]}],
        Actions=[{"Type": "forward", "TargetGroupArn": tgs["web-a"]}],
    )["Rules"][0]["RuleArn"]
    boto3.client("cloudwatch", **kw).put_metric_alarm(
        AlarmName="web-5xx",
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=5,
        ComparisonOperator="GreaterThanThreshold",
    )
    out = lambda v, t="string": {"sensitive": False, "type": t, "value": v}  # noqa: E731
    return {
        "load_balancer_arn": out(lb["LoadBalancerArn"]),
        "target_group_arns": out(tgs, ["map", "string"]),
        "listener_arns": out(listeners, ["map", "string"]),
        "api_rule_arn": out(rule),
        "alarm_name": out("web-5xx"),
    }


def lambda_sources(kw):
    """What a Lambda app needs around it: a role, an SQS queue, a lambda-type target group, an
    HTTP API with a route, and an alarm `hello-errors` in state OK."""
    trust = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    )
    role = boto3.client("iam", **kw).create_role(RoleName="hello-lambda", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    sqs = boto3.client("sqs", **kw)
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    tg = boto3.client("elbv2", **kw).create_target_group(Name="hello-fn", TargetType="lambda")["TargetGroups"][0]["TargetGroupArn"]
    api = boto3.client("apigatewayv2", **kw)
    api_id = api.create_api(Name="hello", ProtocolType="HTTP")["ApiId"]
    route_id = api.create_route(ApiId=api_id, RouteKey="GET /hello")["RouteId"]
    boto3.client("cloudwatch", **kw).put_metric_alarm(
        AlarmName="hello-errors",
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    out = lambda v: {"sensitive": False, "type": "string", "value": v}  # noqa: E731
    return {
        "lambda_role_arn": out(role),
        "queue_arn": out(queue),
        "lambda_target_group_arn": out(tg),
        "api_id": out(api_id),
        "route_id": out(route_id),
    }


if __name__ == "__main__":
    main()
