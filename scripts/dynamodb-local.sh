#!/usr/bin/env bash
# Starts or stops one DynamoDB Local, always by PID.
#   scripts/dynamodb-local.sh start PORT PIDFILE   waits until it answers on 127.0.0.1:PORT
#   scripts/dynamodb-local.sh stop PIDFILE
# DynamoDB Local has no bind option and listens on all interfaces: we only ever reach it at 127.0.0.1.
set -euo pipefail
dir=${DYNAMODB_LOCAL_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.cache/dynamodb-local/package/emulator}

case ${1:-} in
start)
  port=$2 pidfile=$3
  [[ -f $dir/DynamoDBLocal.jar ]] || { echo "DynamoDB Local is missing in $dir: run 'make dynamodb-local'" >&2; exit 1; }
  command -v java >/dev/null || { echo "java is missing: run 'make java' (installs openjdk-17-jre-headless)" >&2; exit 1; }
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use: set DDB_PORT to a free port" >&2; exit 1
  fi
  log=${pidfile%.pid}.log
  (cd "$dir" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
     -inMemory -port "$port" -disableTelemetry) >"$log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then exit 0; fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "DynamoDB Local exited; its log:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "DynamoDB Local did not answer on port $port within 10 s; log: $log" >&2
  kill "$(cat "$pidfile")" 2>/dev/null || true
  exit 1
  ;;
stop)
  pidfile=$2
  if [[ -f $pidfile ]]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  fi
  ;;
*)
  echo "usage: $0 start PORT PIDFILE | stop PIDFILE" >&2; exit 2 ;;
esac
