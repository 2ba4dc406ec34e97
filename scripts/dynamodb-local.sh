#!/usr/bin/env bash
# Starts or stops one DynamoDB Local, always by PID.
#   scripts/dynamodb-local.sh start PORT PIDFILE          in memory, one database per key and region
#                                                         (demo, lambda-invoke); waits until it answers
#   scripts/dynamodb-local.sh shared PORT PIDFILE DBDIR   the shared one (`make dynamodb-local`): -sharedDb,
#                                                         data in DBDIR (`-` for in memory); a second call
#                                                         while it runs says so and succeeds
#   scripts/dynamodb-local.sh status PIDFILE PORT         exit 0 if it runs and answers, 3 if not
#   scripts/dynamodb-local.sh stop PIDFILE
# DynamoDB Local has no bind option and listens on all interfaces: we only ever reach it at 127.0.0.1.
# A PID is only ever signalled while its command line is DynamoDB Local's (DynamoDBLocal.jar): a stale PID file
# (after a reboot, the number belongs to another process) is removed with a message, the process left alone.
set -euo pipefail
dir=${DYNAMODB_LOCAL_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.cache/dynamodb-local/package/emulator}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# The command line of PID $1 (empty if there is no such process): /proc on Linux, ps elsewhere.
command_line() {
  if [[ -r /proc/$1/cmdline ]]; then tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
  else ps -p "$1" -o args= 2>/dev/null || true; fi
}
is_dynamodb_local() { [[ $1 =~ ^[0-9]+$ ]] && [[ $(command_line "$1") == *DynamoDBLocal.jar* ]]; }
# The process has not finished exiting. Its command line reads empty from early in its exit, before its
# sockets close; a zombie (state Z) has closed them. So a stop waits on this, not on the command line.
still_running() {
  local state
  if [[ -r /proc/$1/stat ]]; then state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  else state=$(ps -p "$1" -o stat= 2>/dev/null || true); fi
  [[ -n $state && $state != Z* ]]
}
# The PID file names a running DynamoDB Local.
running() { [[ -f $1 ]] && is_dynamodb_local "$(cat "$1")"; }

case ${1:-} in
status)
  pidfile=$2 port=$3
  if running "$pidfile" && answers "$port"; then
    echo "DynamoDB Local is running: pid $(cat "$pidfile"), http://127.0.0.1:$port"
  else
    echo "DynamoDB Local is not running (pid file $pidfile): start it with 'make dynamodb-local'"; exit 3
  fi
  ;;
start|shared)
  mode=$1 port=$2 pidfile=$3
  if [[ $mode == shared ]]; then
    if running "$pidfile"; then
      echo "DynamoDB Local is already running: pid $(cat "$pidfile"), http://127.0.0.1:$port"; exit 0
    fi
    # -sharedDb: one database whatever the access key and region, so ddb, boto3, the AWS CLI and
    # NoSQL Workbench all see the same tables.
    if [[ ${4:--} == - ]]; then
      storage=(-inMemory -sharedDb)
    else
      mkdir -p "$4"
      storage=(-dbPath "$(cd "$4" && pwd)" -sharedDb)
    fi
  else
    storage=(-inMemory)
  fi
  [[ -f $dir/DynamoDBLocal.jar ]] || { echo "DynamoDB Local is missing in $dir: run 'make dynamodb-local'" >&2; exit 1; }
  command -v java >/dev/null || { echo "java is missing: run 'make java' (installs openjdk-17-jre-headless)" >&2; exit 1; }
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use: set DDB_PORT to a free port" >&2; exit 1
  fi
  log=${pidfile%.pid}.log
  mkdir -p "$(dirname "$pidfile")"
  (cd "$dir" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
     "${storage[@]}" -port "$port" -disableTelemetry) >"$log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    if answers "$port"; then
      [[ $mode == shared ]] && echo "DynamoDB Local: pid $(cat "$pidfile"), http://127.0.0.1:$port (${storage[*]})"
      exit 0
    fi
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
    if is_dynamodb_local "$pid"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do still_running "$pid" || break; sleep 0.1; done
      # Still DynamoDB Local after 5 s (checked again: the number is not reused by then).
      if is_dynamodb_local "$pid"; then
        kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do still_running "$pid" || break; sleep 0.1; done
      fi
    elif [[ -n $(command_line "$pid") ]]; then
      echo "pid file $pidfile names pid $pid, which is not DynamoDB Local ($(command_line "$pid" | cut -c1-80)): left alone, stale pid file removed" >&2
    fi
    rm -f "$pidfile"
  fi
  ;;
*)
  echo "usage: $0 start PORT PIDFILE | shared PORT PIDFILE DBDIR|- | status PIDFILE PORT | stop PIDFILE" >&2; exit 2 ;;
esac
