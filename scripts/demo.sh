#!/usr/bin/env bash
# The main job, locally, through the same path as in AWS: DynamoDB Local, the table, seed data,
# `ddb watch` (the table's stream triggering the function in-process), a new message, and the
# function moving the group rows. Prints Andrew's conversation list before and after; exits
# non-zero if the rows did not move in time. Stops everything it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
# Its own DynamoDB Local on a free port (DEMO_PORT to choose one), so a shared one on 8000
# (`make dynamodb-local`) is left alone.
port=${DEMO_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
wait_seconds=${DEMO_WAIT_SECONDS:-30}
run=$(mktemp -d)
pidfile=$run/dynamodb-local.pid
watch_pid=

stop_all() {
  if [[ -n $watch_pid ]] && kill -0 "$watch_pid" 2>/dev/null; then
    kill -TERM "$watch_pid" 2>/dev/null || true
    wait "$watch_pid" 2>/dev/null || true
  fi
  scripts/dynamodb-local.sh stop "$pidfile"
}
trap 'stop_all; rm -rf "$run"' EXIT

export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$port
# `make demo` built it (cargo build --workspace --bins) wherever cargo builds: CARGO_TARGET_DIR is honoured.
ddb=$(scripts/target-dir.sh)/debug/ddb
andrew=90f1c8d4-6c0a-4c41-9d55-8a8a5a0f1e01
londo_group=8f1a3c5e-7b9d-4e2f-a6c8-0d4e6f8a1c05

echo "== DynamoDB Local on 127.0.0.1:$port, the table and the seed"
scripts/dynamodb-local.sh start "$port" "$pidfile"
$ddb schema-load
$ddb seed

echo
echo "== ddb watch: the table's stream -> the function (in-process); log: $run/watch.log"
$ddb watch --failures-file "$run/failures.jsonl" >"$run/watch.log" 2>&1 &
watch_pid=$!

echo
echo "== Andrew's conversations (newest first): Londo's is at the bottom"
$ddb conversations "$andrew"

echo
echo "== Londo writes to Andrew (ddb send: one message item, nothing else)"
sent=$($ddb send --json --group "$londo_group" --from londo "Londo here: are we still on for Friday?")
created_at=$(sed -E 's/.*"created_at":"([^"]+)".*/\1/' <<<"$sent")
echo "message at $created_at"

moved=
for _ in $(seq 1 $((wait_seconds * 5))); do
  top=$($ddb conversations "$andrew" --limit 1 --json)
  if [[ $top == *"\"uuid\":\"$londo_group\""* && $top == *"\"created_at\":\"$created_at\""* ]]; then
    moved=yes
    break
  fi
  kill -0 "$watch_pid" 2>/dev/null || { echo "ddb watch exited; its log:" >&2; cat "$run/watch.log" >&2; exit 1; }
  sleep 0.2
done

echo
echo "== Andrew's conversations after the stream triggered the function: Londo's is on top"
$ddb conversations "$andrew"

kill -TERM "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
watch_pid=
echo
echo "== ddb watch $(tail -n 1 "$run/watch.log")"
if [[ -z $moved ]]; then
  echo "demo FAILED: the rows did not move within ${wait_seconds} s; ddb watch's log:" >&2
  cat "$run/watch.log" >&2
  exit 1
fi
echo "demo OK: the stream record reached the function, which moved both group rows to the new message"
