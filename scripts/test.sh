#!/usr/bin/env bash
# Runs the test suite against a real Redis and a real S3 server (versitygw,
# posix backend), both bound to 127.0.0.1 on free ports with temporary
# directories, and stops them whatever happens.
#
#   scripts/test.sh                 # go test -race ./...
#   scripts/test.sh -run X ./pkg/.. # any go test arguments
#
# Installs redis-server, nodejs and chromium (apt) and versitygw (go
# install) only when missing; with FERRY_TEST_S3_SERVER=minio, MinIO instead of versitygw.
# Under CI (CI set) a service that cannot be started fails the run;
# elsewhere the tests that need it skip.
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
# MinIO's module has no tagged versions; this is the proxy's newest on 2026-12-05.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
cd "$(dirname "$0")/.."

log() { echo "test.sh: $*" >&2; }
fail_or_warn() {
  if [ -n "${CI:-}" ]; then log "FATAL: $*"; exit 1; fi
  log "WARNING: $* (tests that need it will skip)"
}

gobin="$(go env GOBIN)"; [ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 && return 0
  log "installing redis-server with apt-get"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2 || return 1
  else
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2 || return 1
  fi
}

ensure_versitygw() {
  command -v versitygw >/dev/null 2>&1 && return 0
  log "installing versitygw $VERSITYGW_VERSION with go install (about 90 s)"
  (cd / && GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION") >&2
}

# Node.js runs the real tus-js-client, llama-stack-client and openai-node
# against ferryd (tus/jsclient_test.go, cmd/ferryd/clients_test.go; each
# installs its npm packages into the user cache directory itself, through
# testsvc.NodeModules).
ensure_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return 0
  log "installing nodejs and npm with apt-get"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm) >&2 || return 1
  else
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm) >&2 || return 1
  fi
}

# Chromium runs the web console's browser tests (cmd/ferryd/console_test.go,
# through chromedp); under CI a missing browser fails them.
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  log "installing chromium with apt-get"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2 || return 1
  else
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2 || return 1
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 200); do
    p=$(( (RANDOM << 1 | RANDOM & 1) % 30000 + 20000 ))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  return 1
}
wait_port() { # port seconds
  for _ in $(seq $(( $2 * 20 ))); do port_in_use "$1" && return 0; sleep 0.05; done
  return 1
}

tmp="$(mktemp -d "${TMPDIR:-/tmp}/ferry-test.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# launch NAME SECONDS CMD...: start CMD (with $port set by the caller's
# loop) and wait for its port. A port taken between the probe and the bind
# (another test run, say) just means another try on a fresh port.
launch() {
  local name=$1 secs=$2; shift 2
  "$@" >"$tmp/$name.log" 2>&1 &
  local pid=$!
  # The settle lets a process that lost the port race exit before we look.
  if wait_port "$port" "$secs" && sleep 0.3 && kill -0 "$pid" 2>/dev/null; then pids+=("$pid"); return 0; fi
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  return 1
}

start_redis() {
  ensure_redis || return 1
  mkdir -p "$tmp/redis"
  for _ in 1 2 3 4 5; do
    port=$(free_port) || return 1
    if launch redis 10 redis-server --bind 127.0.0.1 --port "$port" --dir "$tmp/redis" \
        --save "" --appendonly no --protected-mode yes; then
      export FERRY_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
      log "redis-server on 127.0.0.1:$port"
      return 0
    fi
  done
  cat "$tmp/redis.log" >&2; return 1
}

# A 3-master Redis Cluster on loopback (no replicas): the same redis-server
# in cluster mode, so the store is tested where MOVED and cross-slot
# errors are real.
start_redis_cluster() {
  ensure_redis || return 1
  command -v redis-cli >/dev/null 2>&1 || { log "redis-cli is missing"; return 1; }
  local addrs=() i
  for i in 1 2 3; do
    mkdir -p "$tmp/cluster$i"
    local ok=""
    for _ in 1 2 3 4 5; do
      port=$(free_port) || return 1
      if launch "cluster$i" 10 redis-server --bind 127.0.0.1 --port "$port" --dir "$tmp/cluster$i" \
          --save "" --appendonly no --protected-mode yes --cluster-enabled yes \
          --cluster-config-file nodes.conf --cluster-node-timeout 5000; then
        ok=1; break
      fi
    done
    [ -n "$ok" ] || { cat "$tmp/cluster$i.log" >&2; return 1; }
    addrs+=("127.0.0.1:$port")
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$tmp/cluster-create.log" 2>&1 ||
    { cat "$tmp/cluster-create.log" >&2; return 1; }
  local host=${addrs[0]%:*} first=${addrs[0]#*:}
  for _ in $(seq 100); do
    if redis-cli -h "$host" -p "$first" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
      export FERRY_TEST_REDIS_CLUSTER="$(IFS=,; echo "${addrs[*]}")"
      log "redis cluster (3 masters) on $FERRY_TEST_REDIS_CLUSTER"
      return 0
    fi
    sleep 0.1
  done
  log "the cluster did not reach cluster_state:ok"; return 1
}

# MinIO instead of versitygw when FERRY_TEST_S3_SERVER=minio (make bench
# asks for it): installed once into GOBIN like versitygw, in about 6 minutes.
ensure_minio() {
  command -v minio >/dev/null 2>&1 && return 0
  log "installing minio $MINIO_VERSION with go install (about 6 minutes, once)"
  (cd / && GOFLAGS= go install "github.com/minio/minio@$MINIO_VERSION") >&2
}

start_minio() {
  ensure_minio || return 1
  mkdir -p "$tmp/s3"
  for _ in 1 2 3 4 5; do
    port=$(free_port) || return 1
    if launch minio 30 env MINIO_ROOT_USER=ferrytest MINIO_ROOT_PASSWORD=ferrytestsecret \
        minio server --quiet --address "127.0.0.1:$port" "$tmp/s3"; then
      export FERRY_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
      export FERRY_TEST_S3_REGION=us-east-1
      export FERRY_TEST_S3_ACCESS_KEY=ferrytest
      export FERRY_TEST_S3_SECRET_KEY=ferrytestsecret
      log "minio on 127.0.0.1:$port"
      return 0
    fi
  done
  cat "$tmp/minio.log" >&2; return 1
}

start_s3() {
  if [ "${FERRY_TEST_S3_SERVER:-}" = minio ]; then
    start_minio; return
  fi
  ensure_versitygw || return 1
  mkdir -p "$tmp/s3"
  for _ in 1 2 3 4 5; do
    port=$(free_port) || return 1
    if launch versitygw 20 env ROOT_ACCESS_KEY_ID=ferrytest ROOT_SECRET_ACCESS_KEY=ferrytestsecret \
        versitygw --port "127.0.0.1:$port" --quiet posix "$tmp/s3"; then
      break
    fi
    port=""
  done
  if [ -z "$port" ]; then cat "$tmp/versitygw.log" >&2; return 1; fi
  export FERRY_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  export FERRY_TEST_S3_REGION=us-east-1
  export FERRY_TEST_S3_ACCESS_KEY=ferrytest
  export FERRY_TEST_S3_SECRET_KEY=ferrytestsecret
  log "versitygw (posix) on 127.0.0.1:$port"
}

start_redis || fail_or_warn "could not start redis-server"
start_redis_cluster || fail_or_warn "could not start a Redis Cluster"
start_s3 || fail_or_warn "could not start the S3 server"
ensure_node || fail_or_warn "could not install Node.js"
ensure_chromium || fail_or_warn "could not install Chromium"

if [ $# -eq 0 ]; then set -- -race ./...; fi
log "go test $*"
go test "$@"
