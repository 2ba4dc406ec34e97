#!/usr/bin/env bash
# The main job, locally: DynamoDB Local, the table, seed data, a new message, the function moving
# the group rows. Prints Andrew's conversation list before and after. Stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${DDB_PORT:-8000}
run=$(mktemp -d)
pidfile=$run/dynamodb-local.pid
trap 'scripts/dynamodb-local.sh stop "$pidfile"; rm -rf "$run"' EXIT

export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$port
ddb=target/debug/ddb
andrew=90f1c8d4-6c0a-4c41-9d55-8a8a5a0f1e01

echo "== starting DynamoDB Local on 127.0.0.1:$port"
scripts/dynamodb-local.sh start "$port" "$pidfile"
$ddb schema-load
$ddb seed
echo
echo "== Andrew's conversations before (newest first): Londo's is at the bottom"
$ddb conversations "$andrew"
echo
echo "== a stream record arrives: Londo writes to Andrew (events/new-message.json)"
$ddb replay events/new-message.json
echo
echo "== Andrew's conversations after: Londo's is on top, with the new last message"
$ddb conversations "$andrew" | tee "$run/after.txt"
top=$(sed -n 2p "$run/after.txt")
if [[ $top != *londo*"are we still on for Friday"* ]]; then
  echo "demo FAILED: the conversation did not move to the top" >&2
  exit 1
fi
echo
echo "demo OK: the function moved both group rows to the new message's sort key"
