#!/usr/bin/env bash
# The chat room's container image, built and run the way CI can without a Docker engine:
# buildah builds examples/chat/Dockerfile, podman runs it on the host network, the browser
# test (test/e2e/chat.test.mjs) talks to it, and a `ws` client checks that `podman stop`
# closes the room gracefully (close 1001, exit code 0).
#
#   test/container/run.sh                (make test-container; needs root)
#
# Steps:
#  1. the base image debian:bookworm-slim, made here: debootstrap --variant=minbase from the
#     Debian mirror of this machine's apt sources, trimmed like the official slim image and
#     imported with podman. Kept in podman's storage: later runs skip this step.
#  2. buildah bud --layers (cached layers make a rebuild take seconds).
#  3. podman run --network host --init on a free loopback port; wait for /healthz; run the
#     image's HEALTHCHECK once with `podman healthcheck run`; check the process is not root.
#  4. the browser test against it (WEBSOCK_CHAT_URL).
#  5. podman stop while a client is connected: close 1001, exit 0, within a few seconds.
# The container and every temporary file are removed on exit, whatever happens.
#
# Environment: WEBSOCK_CONTAINER_REBUILD_BASE=1 makes the base image again;
# WEBSOCK_SKIP_CONTAINER=1 skips the whole test (it prints SKIP); STORAGE_DRIVER=vfs for
# hosts where overlay mounts fail. Loopback only: always --network host, never a bridge or a
# published port (-p), which would route through private address ranges.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
HERE=$REPO/test/container
WORK=$REPO/build/container
IMAGE=websock-chat
NAME=websock-chat-test-$$
TAG=test-container
STARTED=$(date +%s)
mkdir -p "$WORK"
TMP=$(mktemp -d "$WORK/run.XXXXXX")
BASE_ROOTFS=""
# shellcheck source=test/container/common.sh
. "$HERE/common.sh"

[ "${WEBSOCK_SKIP_CONTAINER:-0}" = 1 ] && skip "WEBSOCK_SKIP_CONTAINER=1"
# debootstrap and rootful podman with runc need root (CI runs as root, see `make deps`).
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, rootful podman/buildah); run as root or set WEBSOCK_SKIP_CONTAINER=1"
for tool in buildah podman debootstrap runc node tar; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: run make deps (scripts/install-deps.sh)"
done
[ -d "$REPO/test/node_modules/playwright-core" ] && [ -d "$REPO/test/node_modules/ws" ] ||
    die "test/node_modules/playwright-core is missing: run make deps"

cleanup() {
    local rc=$?
    set +e
    if podman container exists "$NAME" 2>/dev/null; then
        if [ $rc -ne 0 ]; then
            say "container log (last 40 lines):"
            podman logs --tail 40 "$NAME" 2>&1 | sed 's/^/    /'
        fi
        pm rm -f -t 2 "$NAME" >/dev/null
    fi
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
# ---- 1. the base image -------------------------------------------------------------------
ensure_base_image

# ---- 2. the image ------------------------------------------------------------------------
phase_start image-build
# --ignorefile: Docker reads examples/chat/Dockerfile.dockerignore by itself; buildah 1.28
# needs to be told (build_image does).
build_image examples/chat/Dockerfile "$IMAGE"
[ "$(podman image inspect "$IMAGE" --format '{{.Config.StopSignal}}')" = SIGTERM ] || die "the image has no STOPSIGNAL SIGTERM"
[ "$(podman image inspect "$IMAGE" --format '{{.Config.User}}')" != "" ] || die "the image runs as root"
grep -q healthz <<<"$(podman image inspect "$IMAGE" --format '{{.HealthCheck}}')" || die "the image has no HEALTHCHECK"
phase_end

# ---- 3. run it ---------------------------------------------------------------------------
phase_start run
PORT=$(free_port)
URL=http://127.0.0.1:$PORT/
pm run -d --network host --init --name "$NAME" -e WEBSOCK_CHAT_PORT="$PORT" \
    "$IMAGE" websock-chat --host 127.0.0.1 --port "$PORT" --web-root /usr/share/websock-chat >/dev/null
healthz() { [[ "$(http_status 127.0.0.1 "$PORT" /healthz)" == "HTTP/1.1 200 "* ]]; }
deadline=$(( $(date +%s) + 30 ))
until healthz; do
    [ "$(podman inspect "$NAME" --format '{{.State.Running}}' 2>/dev/null)" = true ] || die "the container is not running"
    [ "$(date +%s)" -lt "$deadline" ] || die "$URL/healthz did not answer 200 within 30 s"
    sleep 0.2  # polling period, not synchronisation: the loop checks the condition
done
say "$URL answers /healthz"
pm healthcheck run "$NAME" >/dev/null || die "the image's HEALTHCHECK fails against the running container"
[ "$(pm inspect "$NAME" --format '{{.State.Health.Status}}')" = healthy ] || die "podman does not report the container healthy"
user=$(pm exec "$NAME" id -un)
[ "$user" != root ] || die "websock-chat runs as root in the container"
say "HEALTHCHECK passes; the server runs as '$user'"
phase_end

# ---- 4. the browser test against the container --------------------------------------------
phase_start browser-test
(cd test && WEBSOCK_CHAT_URL=$URL node --test --test-concurrency=1 e2e/chat.test.mjs) || die "the browser test failed against the container"
phase_end

# ---- 5. graceful stop ---------------------------------------------------------------------
phase_start stop
node "$HERE/stop-check.mjs" "$URL" --deadline-ms 8000 -- podman stop -t 10 "$NAME" || die "podman stop was not graceful"
status=$(podman inspect "$NAME" --format '{{.State.Status}} {{.State.ExitCode}}')
[ "$status" = "exited 0" ] || die "after podman stop: $status (expected: exited 0)"
grep -q 'websock-chat: stopped' <<<"$(podman logs "$NAME" 2>&1)" || die "the server did not log its orderly stop"
say "podman stop: close 1001 sent, exited 0"
phase_end
