#!/usr/bin/env bash
# The real Lambda runtime, locally: `cargo lambda watch` runs the messaging-stream binary behind
# the Lambda Runtime API emulator on 127.0.0.1, `cargo lambda invoke` sends it
# events/new-message.json, and the function talks to DynamoDB Local. Checks the batch response and
# that Andrew's list now starts with Londo's conversation. Stops what it started, by PID.
#   CARGO_LAMBDA=path/to/cargo-lambda scripts/lambda-invoke.sh   (mk/local.mk installs it from PyPI)
# Its own DynamoDB Local and the runtime emulator each take a free port (DDB_PORT, INVOKE_PORT to choose), so
# the shared DynamoDB Local on 8000 (`make dynamodb-local`) and anything else on 9000 are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo_lambda=${CARGO_LAMBDA:?set CARGO_LAMBDA to the cargo-lambda executable (make lambda-invoke does)}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ddb_port=${DDB_PORT:-$(free_port)}
invoke_port=${INVOKE_PORT:-$(free_port)}
wait_seconds=${INVOKE_WAIT_SECONDS:-300}
run=$(mktemp -d)
pidfile=$run/dynamodb-local.pid
watch_pid=

stop_all() {
  if [[ -n $watch_pid ]]; then
    # cargo lambda watch runs the function as its child: it leads its own process group (setsid).
    kill -TERM -- "-$watch_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$watch_pid" 2>/dev/null || true
  fi
  scripts/dynamodb-local.sh stop "$pidfile"
}
trap 'stop_all; rm -rf "$run"' EXIT

if (exec 3<>"/dev/tcp/127.0.0.1/$invoke_port") 2>/dev/null; then
  echo "port $invoke_port is already in use: set INVOKE_PORT to a free port" >&2; exit 1
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$ddb_port") 2>/dev/null; then
  echo "port $ddb_port is already in use: set DDB_PORT to a free port" >&2; exit 1
fi
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$ddb_port
ddb=$(scripts/target-dir.sh)/debug/ddb
andrew=90f1c8d4-6c0a-4c41-9d55-8a8a5a0f1e01
londo_group=8f1a3c5e-7b9d-4e2f-a6c8-0d4e6f8a1c05

echo "== DynamoDB Local on 127.0.0.1:$ddb_port, the table and the seed"
scripts/dynamodb-local.sh start "$ddb_port" "$pidfile"
$ddb schema-load
$ddb seed

echo "== cargo lambda watch on 127.0.0.1:$invoke_port (log: $run/watch.log)"
# AWS_REGION: otherwise aws-config probes instance metadata. The log stays outside the crate:
# watch would rebuild on any change inside it.
setsid env AWS_REGION=us-east-1 "$cargo_lambda" lambda watch --ignore-changes \
  --invoke-address 127.0.0.1 --invoke-port "$invoke_port" \
  --env-var "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB" >"$run/watch.log" 2>&1 &
watch_pid=$!
for _ in $(seq 1 $((wait_seconds * 5))); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$invoke_port") 2>/dev/null; then break; fi
  kill -0 "$watch_pid" 2>/dev/null || { echo "cargo lambda watch exited; its log:" >&2; cat "$run/watch.log" >&2; exit 1; }
  sleep 0.2
done

echo "== cargo lambda invoke messaging-stream --data-file events/new-message.json"
response=$("$cargo_lambda" lambda invoke messaging-stream --data-file events/new-message.json \
  --invoke-address 127.0.0.1 --invoke-port "$invoke_port")
echo "$response"
top=$($ddb conversations "$andrew" --limit 1 --json)
if [[ $response != '{"batchItemFailures":[]}' ]]; then
  echo "lambda-invoke FAILED: unexpected response; cargo lambda watch's log:" >&2
  cat "$run/watch.log" >&2
  exit 1
fi
if [[ $top != *"\"uuid\":\"$londo_group\""* || $top != *'"created_at":"2025-01-15T10:00:00.123456+00:00"'* ]]; then
  echo "lambda-invoke FAILED: Andrew's newest conversation is not Londo's at the event's time: $top" >&2
  exit 1
fi
echo "lambda-invoke OK: the function, run by the Lambda runtime, moved the rows (Andrew's newest: Londo's)"
