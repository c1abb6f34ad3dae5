#!/usr/bin/env bash
# The baseline of the fan-out benchmark: what CI pipelines do today, one service after another
# with the AWS CLI — register the rendered task definition, point the service at it. No stability
# check, no rollback. Usage: AWS_CLI=path/to/aws bash scripts/baseline-deploy.sh DIR N
# (DIR holds svc0000.json … rendered task definitions; AWS_ENDPOINT_URL points at moto).
set -euo pipefail
dir="$1"
n="$2"
aws="${AWS_CLI:-aws}"
for ((i = 0; i < n; i++)); do
  svc=$(printf 'svc%04d' "$i")
  arn=$("$aws" --endpoint-url "$AWS_ENDPOINT_URL" ecs register-task-definition \
    --cli-input-json "file://$dir/$svc.json" --query taskDefinition.taskDefinitionArn --output text)
  "$aws" --endpoint-url "$AWS_ENDPOINT_URL" ecs update-service --cluster prod --service "$svc" \
    --task-definition "$arn" >/dev/null
done
