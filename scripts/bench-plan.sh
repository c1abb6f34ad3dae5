#!/usr/bin/env bash
# Generates a Git repository of N ECS apps (sharing a Terraform output file) and times
# `gitmoxi plan` on it (release build). Usage: scripts/bench-plan.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
BIN=target/release/gitmoxi
[ -x "$BIN" ] || cargo build --release --bin gitmoxi
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
mkdir -p "$DIR/infra"
echo '{"cluster_name": {"value": "prod"}, "private_subnets": {"value": ["subnet-1", "subnet-2"]}, "security_group_id": {"value": "sg-1"}}' > "$DIR/infra/terraform_output.json"
for i in $(seq 1 "$N"); do
  d="$DIR/apps/team$((i % 20))/svc$i"
  mkdir -p "$d"
  cat > "$d/svc${i}_svcdef.json" <<JSON
{"serviceName": "svc$i", "cluster": "{{ cluster_name }}", "desiredCount": 2, "launchType": "FARGATE",
 "networkConfiguration": {"awsvpcConfiguration": {"subnets": {{ private_subnets | tojson }}, "securityGroups": ["{{ security_group_id }}"]}}}
JSON
  cat > "$d/svc${i}_taskdef.json" <<JSON
{"family": "svc$i", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
 "containerDefinitions": [{"name": "app", "image": "{{ image }}", "memory": 512, "portMappings": [{"containerPort": 80}]}]}
JSON
  echo '{"stabilityCheck": {"timeout": 300}}' > "$d/svc${i}_depdef.json"
  echo "{\"ref\": {\"file\": \"infra/terraform_output.json\", \"type\": \"TERRAFORM\"}, \"image\": \"nginx:$i\"}" > "$d/svc${i}_input.json"
done
git -C "$DIR" init -q -b main
git -C "$DIR" -c user.email=b@b -c user.name=b add -A
git -C "$DIR" -c user.email=b@b -c user.name=b commit -q -m apps
"$BIN" plan --repo "$DIR" --json > /dev/null # warm the page cache
runs=5
times=()
for r in $(seq 1 $runs); do
  start=$(date +%s.%N)
  "$BIN" plan --repo "$DIR" --json > "$DIR/plan.json"
  end=$(date +%s.%N)
  t=$(awk "BEGIN{printf \"%.3f\", $end - $start}")
  echo "run $r: ${t}s"
  times+=("$t")
done
count=$(grep -c '"action": "deploy"' "$DIR/plan.json" || true)
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
echo "gitmoxi plan over $N apps ($count deploy entries): median ${median}s of $runs runs"
