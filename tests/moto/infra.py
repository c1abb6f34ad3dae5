#!/usr/bin/env python3
"""Creates demo/test infrastructure in moto and writes it as `terraform output -json`.

VPC (with DNS hostnames, which moto's ECS requires), two subnets, a security group, an ECS
cluster and a CloudWatch log group. Usage:
  python tests/moto/infra.py --endpoint http://127.0.0.1:PORT --out infra/terraform_output.json [--cluster NAME]
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
    args = parser.parse_args()
    kw = dict(endpoint_url=args.endpoint, region_name=args.region, aws_access_key_id="test", aws_secret_access_key="test")
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
    with open(args.out, "w") as f:
        json.dump(outputs, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
