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
BASE_IMAGE=localhost/debian:bookworm-slim
SUITE=bookworm
NAME=websock-chat-test-$$
STARTED=$(date +%s)

say() { printf 'test-container: %s\n' "$*"; }
skip() { say "SKIP: $*"; exit 0; }
die() { say "FAIL: $*" >&2; exit 1; }
phase_start() { PHASE=$1; PHASE_T0=$(date +%s); say "== $PHASE"; }
TIMINGS=""
phase_end() { local dt=$(( $(date +%s) - PHASE_T0 )); TIMINGS="$TIMINGS $PHASE=${dt}s"; say "   $PHASE took ${dt}s"; }

[ "${WEBSOCK_SKIP_CONTAINER:-0}" = 1 ] && skip "WEBSOCK_SKIP_CONTAINER=1"
# debootstrap and rootful podman with runc need root (CI runs as root, see `make deps`).
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, rootful podman/buildah); run as root or set WEBSOCK_SKIP_CONTAINER=1"
for tool in buildah podman debootstrap runc node tar; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: run make deps (scripts/install-deps.sh)"
done
[ -d "$REPO/test/node_modules/playwright-core" ] && [ -d "$REPO/test/node_modules/ws" ] ||
    die "test/node_modules/playwright-core is missing: run make deps"

mkdir -p "$WORK"
TMP=$(mktemp -d "$WORK/run.XXXXXX")
ROOTFS=""

# podman without systemd logs that it cannot manage health-check timers: harmless noise.
pm() {
    local rc=0
    podman "$@" 2>"$TMP/podman.err" || rc=$?
    grep -v 'unable to get systemd connection' "$TMP/podman.err" >&2 || true
    return $rc
}

unmount_under() {  # lazily unmount anything still mounted below $1 (debootstrap's /proc...)
    local dir=$1
    awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
}

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
    if [ -n "$ROOTFS" ] && [ -d "$ROOTFS" ]; then
        unmount_under "$ROOTFS"
        rm -rf --one-file-system "$ROOTFS"
    fi
    rm -rf "$TMP"
    say "total $(( $(date +%s) - STARTED ))s:${TIMINGS}"
    [ $rc -eq 0 ] && say "PASS" || say "FAIL (exit $rc)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- containers.conf: ours, with rlimits this machine allows -----------------------------
hard_nofile=$(ulimit -Hn)
hard_nproc=$(ulimit -Hu)
pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
clamp() {  # clamp VALUE... : the smallest, "unlimited" counting as infinite
    local best=""
    for v in "$@"; do
        [ "$v" = unlimited ] && continue
        if [ -z "$best" ] || [ "$v" -lt "$best" ]; then best=$v; fi
    done
    echo "${best:-65536}"
}
nofile=$(clamp 65536 "$hard_nofile")
nproc=$(clamp 65536 "$hard_nproc" "$pid_max")
export CONTAINERS_CONF=$WORK/containers.conf
sed -e "s/\"nofile=65536:65536\"/\"nofile=$nofile:$nofile\"/" \
    -e "s/\"nproc=65536:65536\"/\"nproc=$nproc:$nproc\"/" \
    "$HERE/containers.conf" >"$CONTAINERS_CONF"
say "CONTAINERS_CONF=$CONTAINERS_CONF (nofile=$nofile, nproc=$nproc)"
# The engine must answer at all; a clear reason beats a cryptic failure later.
if ! podman info >"$TMP/info.txt" 2>&1; then
    cat "$TMP/info.txt" >&2
    die "podman info failed (see above)"
fi
say "podman $(podman version --format '{{.Client.Version}}'), buildah $(buildah version --json 2>/dev/null | awk -F'"' '/"version"/ { print $4; exit }'), storage $(podman info --format '{{.Store.GraphDriverName}}')"

# ---- 1. the base image -------------------------------------------------------------------
# The Debian mirror is the one apt on this machine uses for $SUITE (one-line .list format
# or deb822 .sources); no other address.
debian_mirror() {
    local files=()
    [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 0
    awk -v suite="$SUITE" '
        function flush() {
            if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " ") && uris != "" && !found) {
                split(uris, u, " "); print u[1]; found = 1
            }
            types = ""; uris = ""; suites = ""; enabled = ""
        }
        FNR == 1 { flush() }
        FILENAME ~ /\.sources$/ {
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            if ($0 ~ /^[ \t]*#/) next
            key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
            if (key == "types") types = $0
            else if (key == "uris") uris = $0
            else if (key == "suites") suites = $0
            else if (key == "enabled") enabled = tolower($0)
            next
        }
        /^[ \t]*deb[ \t]/ && !found {
            line = $0; gsub(/\[[^]]*\]/, "", line); n = split(line, f, /[ \t]+/)
            i = (f[1] == "") ? 2 : 1
            if (f[i + 2] == suite) { print f[i + 1]; found = 1 }
        }
        END { flush() }
    ' "${files[@]}"
}

if [ "${WEBSOCK_CONTAINER_REBUILD_BASE:-0}" != 1 ] && podman image exists "$BASE_IMAGE"; then
    say "base image $BASE_IMAGE exists: debootstrap skipped"
else
    phase_start base-image
    MIRROR=$(debian_mirror)
    [ -n "$MIRROR" ] || die "no 'deb ... $SUITE' source in /etc/apt/sources.list{,.d/*}: cannot pick a Debian mirror"
    say "debootstrap --variant=minbase $SUITE from $MIRROR"
    ROOTFS=$(mktemp -d "$WORK/rootfs.XXXXXX")
    timeout 1200 debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$TMP/debootstrap.log" 2>&1 || {
        tail -30 "$TMP/debootstrap.log" >&2
        die "debootstrap failed (log above)"
    }
    unmount_under "$ROOTFS"
    # Slim it the way the official image is: no package caches or lists, no docs, manuals
    # or translations (and dpkg keeps them out of later installs), no host files.
    (
        cd "$ROOTFS"
        rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* \
            var/log/*.log var/log/apt/* usr/share/man/* usr/share/info/* etc/resolv.conf etc/hostname
        find usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
        find usr/share/doc -type f ! -name copyright -delete
        find usr/share/doc -depth -type d -empty -delete
        mkdir -p usr/share/doc
        cat >etc/dpkg/dpkg.cfg.d/slim <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
        cat >etc/apt/apt.conf.d/docker-clean <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
        echo 'Acquire::Languages "none";' >etc/apt/apt.conf.d/docker-no-languages
    )
    say "apt sources inside the image: $(grep -v '^#' "$ROOTFS/etc/apt/sources.list" | tr '\n' ' ')"
    tar --numeric-owner -C "$ROOTFS" -c . | pm import --quiet \
        --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$BASE_IMAGE" >/dev/null
    rm -rf --one-file-system "$ROOTFS"
    ROOTFS=""
    say "imported $BASE_IMAGE ($(podman image inspect "$BASE_IMAGE" --format '{{.Size}}') bytes)"
    phase_end
fi

# ---- 2. the image ------------------------------------------------------------------------
phase_start image-build
# --format docker: the OCI image format has no HEALTHCHECK. --ignorefile: Docker reads
# examples/chat/Dockerfile.dockerignore by itself; buildah 1.28 needs to be told.
timeout 1800 buildah bud --isolation chroot --pull=never --layers --format docker \
    --ignorefile examples/chat/Dockerfile.dockerignore \
    -f examples/chat/Dockerfile -t "$IMAGE" . >"$TMP/build.log" 2>&1 || {
    tail -40 "$TMP/build.log" >&2
    die "buildah bud failed (log above)"
}
say "built $IMAGE: $(podman image inspect "$IMAGE" --format '{{.Size}}') bytes"
[ "$(podman image inspect "$IMAGE" --format '{{.Config.StopSignal}}')" = SIGTERM ] || die "the image has no STOPSIGNAL SIGTERM"
[ "$(podman image inspect "$IMAGE" --format '{{.Config.User}}')" != "" ] || die "the image runs as root"
podman image inspect "$IMAGE" --format '{{.HealthCheck}}' | grep -q healthz || die "the image has no HEALTHCHECK"
phase_end

# ---- 3. run it ---------------------------------------------------------------------------
phase_start run
PORT=$(node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")
URL=http://127.0.0.1:$PORT/
pm run -d --network host --init --name "$NAME" -e WEBSOCK_CHAT_PORT="$PORT" \
    "$IMAGE" websock-chat --host 127.0.0.1 --port "$PORT" --web-root /usr/share/websock-chat >/dev/null
healthz() {  # 0 when GET /healthz answers 200
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 && head -n 1 <&3 | grep -q '^HTTP/1\.1 200 '" 2>/dev/null
}
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
podman logs "$NAME" 2>&1 | grep -q 'websock-chat: stopped' || die "the server did not log its orderly stop"
say "podman stop: close 1001 sent, exited 0"
phase_end
