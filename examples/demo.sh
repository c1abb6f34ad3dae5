#!/usr/bin/env bash
# The gitmoxi demo: a local AWS emulator, a Git repository of ECS files, a rolling update.
# Everything it starts, it stops; it works in ./demo-work (recreated each run). Bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
BIN=$ROOT/target/debug/gitmoxi
WORK=$ROOT/demo-work
[ -x "$PY" ] || { echo "moto is not installed: run 'make demo' (it creates .venv)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "gitmoxi is not built: run 'make demo'" >&2; exit 1; }

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
API_PORT=$(free_port)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

rm -rf "$WORK" && mkdir -p "$WORK"
step "starting the local AWS emulator (moto + gitmoxi's ECS scheduler) on 127.0.0.1:$MOTO_PORT"
"$PY" tests/moto/server.py --host 127.0.0.1 --port "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1 && break; sleep 0.1; done

step "creating the demo infrastructure (VPC, subnets, security group, cluster, log group)"
cp -r examples/repo "$WORK/repo"
mkdir -p "$WORK/repo/infra"
"$PY" tests/moto/infra.py --endpoint "http://127.0.0.1:$MOTO_PORT" --cluster demo --out "$WORK/repo/infra/terraform_output.json"
cat "$WORK/repo/infra/terraform_output.json"

step "committing examples/repo to a fresh Git repository"
git -C "$WORK/repo" init -q -b main
git -C "$WORK/repo" -c user.email=demo@gitmoxi.dev -c user.name=demo add -A
git -C "$WORK/repo" -c user.email=demo@gitmoxi.dev -c user.name=demo commit -q -m "web: first deployment"
git -C "$WORK/repo" log --oneline

step "gitmoxi validate and gitmoxi plan"
"$BIN" validate "$WORK/repo"
"$BIN" plan --repo "$WORK/repo"

export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export GITMOXI_LOG=${GITMOXI_LOG:-info}
step "gitmoxi serve on 127.0.0.1:$API_PORT (log: demo-work/gitmoxi.log)"
"$BIN" serve --repo "$WORK/repo" --branch main --state-dir "$WORK/state" --listen "127.0.0.1:$API_PORT" \
  --poll-interval 1s --aws-max-attempts 1 >"$WORK/gitmoxi.log" 2>&1 &
PIDS+=($!)
SERVER="http://127.0.0.1:$API_PORT"

wait_for() { # wait_for <jq-free python predicate on the app JSON> <seconds>
  local predicate=$1 limit=$2 start=$SECONDS
  while (( SECONDS - start < limit )); do
    if curl -fs "$SERVER/api/v2/apps/apps/web/web" 2>/dev/null | "$PY" -c "import json,sys; a=json.load(sys.stdin); sys.exit(0 if ($predicate) else 1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "timed out; see $WORK/gitmoxi.log" >&2
  return 1
}
show() {
  "$BIN" status --server "$SERVER"
  curl -fs "$SERVER/api/v2/apps/apps/web/web" | "$PY" -c '
import json, sys
app = json.load(sys.stdin)
print()
for h in app["history"][-12:]:
    print("  %s  %-5s  %s" % (h["at"], h["level"], h["message"]))'
}

step "waiting for gitmoxi to create the service"
wait_for 'a["status"] == "Synced"' 90
show
"$PY" - "$MOTO_PORT" <<'PYEOF'
import boto3, sys
ecs = boto3.client("ecs", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
s = ecs.describe_services(cluster="demo", services=["web"])["services"][0]
td = ecs.describe_task_definition(taskDefinition=s["taskDefinition"])["taskDefinition"]
print(f"\n  ECS says: service {s['serviceName']} {s['status']}, {s['runningCount']}/{s['desiredCount']} running, {s['taskDefinition'].split('/')[-1]}, image {td['containerDefinitions'][0]['image']}")
PYEOF

step "committing an image change (nginx 1.27 -> 1.28): a rolling update"
sed -i 's#nginx/nginx:1.27#nginx/nginx:1.28#' "$WORK/repo/apps/web/web_input.json"
git -C "$WORK/repo" -c user.email=demo@gitmoxi.dev -c user.name=demo commit -q -am "web: nginx 1.28"
git -C "$WORK/repo" log --oneline -1
wait_for 'a["status"] == "Synced" and a["applied_commit"] == "'"$(git -C "$WORK/repo" rev-parse HEAD)"'"' 90
show
"$PY" - "$MOTO_PORT" <<'PYEOF'
import boto3, sys
ecs = boto3.client("ecs", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
s = ecs.describe_services(cluster="demo", services=["web"])["services"][0]
td = ecs.describe_task_definition(taskDefinition=s["taskDefinition"])["taskDefinition"]
print(f"\n  ECS says: service {s['serviceName']} {s['status']}, {s['runningCount']}/{s['desiredCount']} running, {s['taskDefinition'].split('/')[-1]}, image {td['containerDefinitions'][0]['image']}")
PYEOF

step "done: stopping gitmoxi and the emulator"
