#!/usr/bin/env bash
# The whole system from a fresh clone (make stack), and its removal (make stack-down).
#   docker/stack.sh up      .env (written once, never overwritten), images, PostgreSQL + S3 +
#                           MLflow, the pipeline against that MLflow (so @production exists),
#                           then the api, monitor, shadow consumer, Redis, Prometheus,
#                           Alertmanager (and Grafana where its image can be pulled)
#   docker/stack.sh down [-v]   stop and remove what `up` started; -v drops the volumes too
#   docker/stack.sh compose     print the compose command the other two use
# Health checks decide the order and the waiting (compose's depends_on conditions, and the
# containers' health here), never fixed sleeps. Works with Compose v2 (`docker compose`) and
# Debian's docker-compose 1.29.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "stack: $*" >&2; }
die() { echo "stack: $*" >&2; exit 1; }

# Which compose: MNIST_COMPOSE when set (e.g. MNIST_COMPOSE=docker-compose to run 1.29 where
# both are installed), else Compose v2, else Debian's docker-compose 1.29.
if [ -n "${MNIST_COMPOSE:-}" ]; then
  read -r -a compose <<< "$MNIST_COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  die "no docker compose (v2) or docker-compose (1.29): install one (.ci/machine does)"
fi
if [ "${1:-}" = compose ]; then  # print the choice, for the tests and scripts
  echo "${compose[*]}"
  exit 0
fi
docker info >/dev/null 2>&1 || die "no Docker engine answers: start dockerd (or Docker Desktop)"
# The classic builder: BuildKit pulls a frontend image, which fails where no registry answers.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

env_has() { [ -f .env ] && grep -qE "^$1=" .env; }

# Append NAME=VALUE to .env unless .env already sets NAME (a user's value is never replaced).
env_default() {
  env_has "$1" || echo "$1=$2" >> .env
}

write_env() {
  if [ ! -f .env ]; then
    log "writing .env from .env.example with generated passwords"
    { cat .env.example
      echo
      echo "# --- written by make stack on $(date -u +%Y-%m-%dT%H:%M:%SZ) ---"
    } > .env.tmp
    chmod 600 .env.tmp
    mv .env.tmp .env
    for secret in POSTGRES_PASSWORD MINIO_ROOT_PASSWORD GRAFANA_ADMIN_PASSWORD; do
      env_default "$secret" "$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    done
  fi
  env_default COMPOSE_PROJECT_NAME mnist
  env_default PYTHON_IMAGE "$(bash docker/base-image.sh)"
  local line
  while IFS= read -r line; do
    env_default "${line%%=*}" "${line#*=}"
  done < <(bash docker/stand-in-images.sh)
  if env_has GRAFANA_IMAGE; then
    env_default COMPOSE_PROFILES grafana
  else
    log "no Grafana image here (no registry, no Debian package): the stack runs without it"
  fi
}

# Wait until SERVICE's container reports healthy (its HEALTHCHECK), or fail with its log.
wait_healthy() {
  local service=$1 id status
  for _ in $(seq 300); do
    id=$("${compose[@]}" ps -q "$service")
    status=$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo starting)
    [ "$status" = healthy ] && return 0
    if [ "$(docker inspect -f '{{.State.Running}}' "$id" 2>/dev/null)" = false ]; then
      "${compose[@]}" logs --tail 50 "$service" >&2
      die "$service exited before it was healthy"
    fi
    sleep 1
  done
  "${compose[@]}" logs --tail 50 "$service" >&2
  die "$service not healthy after 300 s"
}

up() {
  write_env
  mkdir -p reports
  log "building the images"
  "${compose[@]}" build
  log "starting PostgreSQL, S3 and MLflow"
  "${compose[@]}" up -d mlflow
  wait_healthy mlflow
  local port
  port=$("${compose[@]}" port mlflow 5000 | sed 's/.*://')
  log "running the pipeline against the stack's MLflow (http://127.0.0.1:$port)"
  MLFLOW_TRACKING_URI="http://127.0.0.1:$port" make --no-print-directory repro
  log "starting the api, monitor, shadow consumer, Redis, Prometheus and Alertmanager"
  "${compose[@]}" up -d
  wait_healthy api
  port=$("${compose[@]}" port api 8000 | sed 's/.*://')
  # Healthy is alive; ready is serving a model (the one MODEL_URI's alias names).
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
    sleep 1
  done
  curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null || {
    "${compose[@]}" logs --tail 20 api >&2
    die "the api has no model: does @production exist? (mnist registry list; the pipeline" \
        "moves it only from a clean working tree: commit, then mnist registry promote VERSION)"
  }
  log "up: the api at http://127.0.0.1:$port (its page at /), MLflow at :5000, Prometheus at" \
      ":9090, Alertmanager at :9093; make stack-down stops it"
}

down() {
  [ -f .env ] || die "no .env: nothing was started by make stack here"
  "${compose[@]}" down --remove-orphans "$@"
}

case "${1:-}" in
  up) up ;;
  down) shift; down "$@" ;;
  *) die "usage: docker/stack.sh up | down [-v] | compose" ;;
esac
