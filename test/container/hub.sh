#!/usr/bin/env bash
# websock-hub's container image (hub/Containerfile), built with buildah and run with podman
# on the host network as hub/compose.yaml says (compose.py reads it: no compose tool needed):
# Redis and two hub nodes. A message published to node A reaches a subscriber of node B.
#
#   test/container/hub.sh                (make test-container-hub; needs root)
#
# Steps:
#  1. the base image debian:bookworm-slim (common.sh; shared with the chat image's test).
#  2. buildah bud of what compose.yaml builds: the hub image and the Redis image (target
#     `redis`); both non-root, with a HEALTHCHECK and STOPSIGNAL SIGTERM; no compiler shipped.
#  3. podman run --network host of compose.yaml's services, dependencies first, with its
#     environment (free loopback ports in REDIS_PORT, HUB_A_PORT, HUB_B_PORT; a random
#     HUB_PWD); each must pass its HEALTHCHECK before the next starts; none runs as root.
#  4. hub-check.mjs: publish to A, a subscriber of B gets it; 403 without the password.
#  5. podman stop node B: exit 0 and the hub's orderly stop in its log.
# Every container and temporary file is removed on exit, whatever happens.
#
# Environment: as run.sh (WEBSOCK_SKIP_CONTAINER=1, WEBSOCK_CONTAINER_REBUILD_BASE=1,
# STORAGE_DRIVER=vfs). Loopback only: --network host, every service on 127.0.0.1.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
HERE=$REPO/test/container
WORK=$REPO/build/container
IMAGE=localhost/websock-hub
REDIS_IMAGE=localhost/websock-hub-redis
PREFIX=websock-hub-test-$$
TAG=test-container-hub
STARTED=$(date +%s)
mkdir -p "$WORK"
TMP=$(mktemp -d "$WORK/hub.XXXXXX")
BASE_ROOTFS=""
# shellcheck source=test/container/common.sh
. "$HERE/common.sh"

[ "${WEBSOCK_SKIP_CONTAINER:-0}" = 1 ] && skip "WEBSOCK_SKIP_CONTAINER=1"
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, rootful podman/buildah); run as root or set WEBSOCK_SKIP_CONTAINER=1"
for tool in buildah podman debootstrap runc node python3 tar; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: run make deps (scripts/install-deps.sh)"
done
[ -d "$REPO/test/node_modules/ws" ] || die "test/node_modules/ws is missing: run make deps"
python3 -c 'import yaml' 2>/dev/null || die "python3-yaml is missing: run make deps"

CONTAINERS=()
cleanup() {
    local rc=$?
    set +e
    for name in "${CONTAINERS[@]}"; do
        podman container exists "$name" 2>/dev/null || continue
        if [ $rc -ne 0 ]; then
            say "log of $name (last 20 lines):"
            podman logs --tail 20 "$name" 2>&1 | sed 's/^/    /'
        fi
        pm rm -f -t 2 "$name" >/dev/null
    done
    if [ -n "$BASE_ROOTFS" ] && [ -d "$BASE_ROOTFS" ]; then
        unmount_under "$BASE_ROOTFS"
        rm -rf --one-file-system "$BASE_ROOTFS"
    fi
    rm -rf "$TMP"
    say "total $(( $(date +%s) - STARTED ))s:${TIMINGS}"
    [ $rc -eq 0 ] && say "PASS" || say "FAIL (exit $rc)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

container_engine_setup
ensure_base_image

# ---- 2. the images, as compose.yaml builds them ----------------------------------------------
phase_start image-build
COMPOSE=hub/compose.yaml
builds=$(python3 "$HERE/compose.py" "$COMPOSE" builds) || die "$COMPOSE: cannot read its builds"
# (the lists are read on descriptor 3: podman and buildah would read standard input)
while IFS=$'\t' read -r -u 3 image containerfile target; do
    if [ "$target" = - ]; then build_image "$containerfile" "$image"; else build_image "$containerfile" "$image" --target "$target"; fi
done 3<<<"$builds"
for image in "$IMAGE" "$REDIS_IMAGE"; do
    grep -q "^$image	" <<<"$builds" || die "$COMPOSE does not build $image"
    [ "$(podman image inspect "$image" --format '{{.Config.StopSignal}}')" = SIGTERM ] || die "$image has no STOPSIGNAL SIGTERM"
    user=$(podman image inspect "$image" --format '{{.Config.User}}')
    [ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] || die "$image runs as root"
    [ -n "$(podman image inspect "$image" --format '{{.HealthCheck}}' | grep -v '^<nil>$')" ] || die "$image has no HEALTHCHECK"
done
grep -q metrics <<<"$(podman image inspect "$IMAGE" --format '{{.HealthCheck}}')" || die "the hub's HEALTHCHECK does not ask /metrics"
# The multi-stage build ships no compiler and no headers.
if pm run --rm --network none "$IMAGE" bash -c 'command -v g++ || ls /usr/include/websock 2>/dev/null'; then
    die "the hub image carries a compiler or the build's headers"
fi
phase_end

# ---- 3. Redis and two nodes, as compose.yaml runs them ---------------------------------------
phase_start run
REDIS_PORT=$(free_port)
HUB_A_PORT=$(free_port)
HUB_B_PORT=$(free_port)
while [ "$HUB_B_PORT" = "$HUB_A_PORT" ] || [ "$HUB_B_PORT" = "$REDIS_PORT" ]; do HUB_B_PORT=$(free_port); done
while [ "$HUB_A_PORT" = "$REDIS_PORT" ]; do HUB_A_PORT=$(free_port); done
HUB_PWD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export REDIS_PORT HUB_A_PORT HUB_B_PORT HUB_PWD  # compose.yaml's variables
services=$(python3 "$HERE/compose.py" "$COMPOSE" services) || die "$COMPOSE: cannot read its services"
say "Redis on 127.0.0.1:$REDIS_PORT, node A on :$HUB_A_PORT, node B on :$HUB_B_PORT"

wait_until() {  # wait_until WHAT SECONDS CONTAINER COMMAND...
    local what=$1 seconds=$2 container=$3
    shift 3
    local deadline=$(( $(date +%s) + seconds ))
    until "$@"; do
        [ "$(podman inspect "$container" --format '{{.State.Running}}' 2>/dev/null)" = true ] || die "$container is not running"
        [ "$(date +%s)" -lt "$deadline" ] || die "$what: not within ${seconds}s"
        sleep 0.2  # polling period, not synchronisation: the loop checks the condition
    done
}
healthy() { pm healthcheck run "$1" >/dev/null 2>&1; }

# Each service starts once the ones before it (its dependencies first) pass their
# HEALTHCHECK: compose's depends_on, plus the wait compose leaves to the services.
while IFS=$'\t' read -r -u 3 -a fields; do
    service=${fields[0]} image=${fields[1]} name=$PREFIX-${fields[0]}
    env=()
    for variable in "${fields[@]:2}"; do env+=(-e "$variable"); done
    CONTAINERS+=("$name")
    pm run -d --network host --init --name "$name" "${env[@]}" "$image" >/dev/null
    wait_until "the HEALTHCHECK of $service" 30 "$name" healthy "$name"
    [ "$(pm inspect "$name" --format '{{.State.Health.Status}}')" = healthy ] || die "podman does not report $name healthy"
    user=$(pm exec "$name" id -un)
    [ "$user" != root ] || die "$name runs as root"
    say "$service ($image): healthy, runs as '$user'"
done 3<<<"$services"
[ "${CONTAINERS[*]}" = "$PREFIX-redis $PREFIX-hub-a $PREFIX-hub-b" ] ||
    die "$COMPOSE runs ${CONTAINERS[*]#"$PREFIX-"}, expected redis, hub-a, hub-b"
grep -q "listening on 127.0.0.1:$HUB_A_PORT" <<<"$(podman logs "$PREFIX-hub-a" 2>&1)" || die "node A does not listen on 127.0.0.1:$HUB_A_PORT"
grep -q "listening on 127.0.0.1:$HUB_B_PORT" <<<"$(podman logs "$PREFIX-hub-b" 2>&1)" || die "node B does not listen on 127.0.0.1:$HUB_B_PORT"
if grep -qF "$HUB_PWD" <<<"$(podman logs "$PREFIX-hub-a" 2>&1; podman logs "$PREFIX-hub-b" 2>&1)"; then die "a node logged the password"; fi
phase_end

# ---- 4. publish to A, receive at B ----------------------------------------------------------
phase_start pubsub
node "$HERE/hub-check.mjs" --a "http://127.0.0.1:$HUB_A_PORT" --b "http://127.0.0.1:$HUB_B_PORT" \
    --password "$HUB_PWD" --deadline-ms 10000 || die "a publish to node A did not reach node B's subscriber"
phase_end

# ---- 5. graceful stop ---------------------------------------------------------------------
phase_start stop
t0=$(date +%s)
pm stop -t 10 "$PREFIX-hub-b" >/dev/null
status=$(podman inspect "$PREFIX-hub-b" --format '{{.State.Status}} {{.State.ExitCode}}')
[ "$status" = "exited 0" ] || die "after podman stop: $status (expected: exited 0)"
[ $(( $(date +%s) - t0 )) -lt 10 ] || die "podman stop needed the kill timeout: SIGTERM was not handled"
grep -q 'stopped' <<<"$(podman logs "$PREFIX-hub-b" 2>&1)" || die "node B did not log its orderly stop"
say "podman stop: node B exited 0 after SIGTERM"
phase_end
