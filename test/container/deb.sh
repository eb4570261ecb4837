#!/usr/bin/env bash
# The Debian packages of `make deb`, installed into a fresh Debian 12 root and used from it:
#
#   test/container/deb.sh DEB_DIR          (make test-deb, after make deb; needs root)
#
#  1. the root: the debian:bookworm-slim base image the container tests make (common.sh),
#     exported into a directory (with WEBSOCK_SKIP_CONTAINER=1: debootstrapped directly);
#  2. apt-get install of the three .deb files (their dependencies from the Debian mirror),
#     plus g++ and pkgconf; the files land where they should, the config is a conffile
#     readable by root only, the systemd unit is enabled and hardened
#     (systemd-analyze security --offline: exposure at most 2.0);
#  3. libwebsock-dev: test/install/consumer.cpp built in the root with
#     g++ $(pkg-config --cflags --libs websock) loads libwebsock.so.MAJOR and runs (echo over
#     loopback);
#  4. websock-hub from the package, as nobody in a chroot, with the packaged config plus a
#     port, a password and a Redis (the host's redis-server): two nodes, a publish to one
#     reaches a subscriber of the other (hub-check.mjs); SIGTERM stops each with exit 0.
#  5. apt-get purge leaves nothing behind (files, config, the unit's enable link).
# Every process, mount and temporary file is removed on exit, whatever happens. Loopback only.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
HERE=$REPO/test/container
WORK=$REPO/build/container
DEB_DIR=$(cd "${1:?usage: deb.sh DEB_DIR}" && pwd)
TAG=test-deb
STARTED=$(date +%s)
mkdir -p "$WORK"
TMP=$(mktemp -d "$WORK/deb.XXXXXX")
ROOT=$TMP/root
BASE_ROOTFS=""
# shellcheck source=test/container/common.sh
. "$HERE/common.sh"

[ "$(id -u)" -eq 0 ] || skip "needs root (chroot, mounts); run as root"
for tool in chroot node redis-server systemd-analyze tar; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: run make deps (scripts/install-deps.sh)"
done
[ -d "$REPO/test/node_modules/ws" ] || die "test/node_modules/ws is missing: run make deps"
DEBS=("$DEB_DIR"/libwebsock0_*.deb "$DEB_DIR"/libwebsock-dev_*.deb "$DEB_DIR"/websock-hub_*.deb)
for deb in "${DEBS[@]}"; do [ -f "$deb" ] || die "$deb is missing: run make deb"; done

PIDS=()
cleanup() {
    local rc=$?
    set +e
    # (wait's stderr: bash would report each killed job by name)
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    if [ $rc -ne 0 ]; then
        for log in "$TMP"/*.log; do
            [ -f "$log" ] || continue
            say "$(basename "$log") (last 20 lines):"
            tail -20 "$log" | sed 's/^/    /'
        done
    fi
    unmount_under "$ROOT"
    if [ -n "$BASE_ROOTFS" ] && [ -d "$BASE_ROOTFS" ]; then
        unmount_under "$BASE_ROOTFS"
        rm -rf --one-file-system "$BASE_ROOTFS"
    fi
    rm -rf --one-file-system "$TMP"
    say "total $(( $(date +%s) - STARTED ))s:${TIMINGS}"
    [ $rc -eq 0 ] && say "PASS" || say "FAIL (exit $rc)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_root() { chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# ---- 1. a fresh Debian 12 root -------------------------------------------------------------
phase_start root
mkdir -p "$ROOT"
if [ "${WEBSOCK_SKIP_CONTAINER:-0}" = 1 ]; then
    debootstrap_root "$ROOT"
else
    container_engine_setup
    ensure_base_image
    container=$(pm create "$BASE_IMAGE" true)
    pm export "$container" | tar -x -C "$ROOT"
    pm rm "$container" >/dev/null
fi
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mkdir -p "$ROOT/tmp/debs"
cp "${DEBS[@]}" "$ROOT/tmp/debs/"
say "root from $( [ "${WEBSOCK_SKIP_CONTAINER:-0}" = 1 ] && echo debootstrap || echo "$BASE_IMAGE"): $(in_root dpkg-query -W | wc -l) packages"
phase_end

# ---- 2. install the packages ---------------------------------------------------------------
phase_start install
in_root apt-get update -qq >"$TMP/apt.log" 2>&1 || die "apt-get update failed in the root"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    $(for deb in "${DEBS[@]}"; do echo "/tmp/debs/$(basename "$deb")"; done) g++ pkgconf \
    >>"$TMP/apt.log" 2>&1 || die "apt-get install of the packages failed in the root"
for package in libwebsock0 libwebsock-dev websock-hub; do
    [ "$(in_root dpkg-query -W -f='${Status}' "$package")" = "install ok installed" ] || die "$package is not installed"
done
say "installed: $(in_root dpkg-query -W -f='${Package} ${Version}\n' libwebsock0 libwebsock-dev websock-hub | paste -sd, | sed 's/,/, /g')"
multiarch=$(in_root dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || in_root gcc -print-multiarch)
version=$(in_root pkg-config --modversion websock) || die "pkg-config does not know websock"
major=${version%%.*}
for file in /usr/lib/$multiarch/libwebsock.so.$version /usr/lib/$multiarch/libwebsock.so.$major \
    /usr/lib/$multiarch/libwebsock.so /usr/lib/$multiarch/libwebsock.a /usr/include/websock/websock.hpp \
    /usr/lib/$multiarch/cmake/websock/websockConfig.cmake /usr/bin/websock-hub \
    /lib/systemd/system/websock-hub.service /etc/websock-hub/websock-hub.env; do
    [ -e "$ROOT$file" ] || die "$file is not installed"
done
grep -q '^libwebsock0:' <<<"$(in_root dpkg -S "/usr/lib/$multiarch/libwebsock.so.$version")" || die "the shared library is not in libwebsock0"
grep -q "libwebsock.so.$major " <<<"$(in_root ldconfig -p)" || die "ldconfig does not know libwebsock.so.$major"
[ "$(stat -c %a "$ROOT/etc/websock-hub/websock-hub.env")" = 600 ] || die "websock-hub.env is not mode 0600"
grep -q /etc/websock-hub/websock-hub.env <<<"$(in_root dpkg-query -W -f='${Conffiles}' websock-hub)" ||
    die "websock-hub.env is not a conffile (an upgrade would overwrite the admin's settings)"
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/websock-hub.service" ] || die "websock-hub.service is not enabled"
unit=$ROOT/lib/systemd/system/websock-hub.service
for directive in DynamicUser=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' CapabilityBoundingSet= EnvironmentFile=/etc/websock-hub/websock-hub.env; do
    grep -qx -- "$directive" "$unit" || die "websock-hub.service lacks $directive"
done
systemd-analyze security --offline=true --root="$ROOT" --threshold=20 websock-hub.service >"$TMP/security.txt" 2>&1 ||
    { tail -5 "$TMP/security.txt" >&2; die "systemd-analyze security: exposure above 2.0 (or the unit does not parse)"; }
if grep -E "Unknown (key|section)|Failed to parse|Invalid" "$TMP/security.txt" >&2; then die "the unit has directives systemd does not know"; fi
say "websock-hub.service: enabled; $(grep -o 'Overall exposure level.*' "$TMP/security.txt")"
phase_end

# ---- 3. build against libwebsock-dev ---------------------------------------------------------
phase_start consumer
cp "$REPO/test/install/consumer.cpp" "$ROOT/tmp/consumer.cpp"
in_root sh -c 'g++ -O1 -o /tmp/consumer /tmp/consumer.cpp $(pkg-config --cflags --libs websock)' >"$TMP/consumer.log" 2>&1 ||
    die "consumer.cpp does not build with g++ \$(pkg-config --cflags --libs websock)"
grep -q "NEEDED.*\[libwebsock.so.$major\]" <<<"$(in_root readelf -d /tmp/consumer)" ||
    die "the consumer does not load libwebsock.so.$major"
timeout 60 chroot "$ROOT" /tmp/consumer >>"$TMP/consumer.log" 2>&1 || die "the consumer failed (echo over loopback)"
say "consumer.cpp built with pkg-config against the packages and ran"
phase_end

# ---- 4. websock-hub from the package --------------------------------------------------------
phase_start hub
REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# The packaged config, as systemd would read it: VARIABLE=value lines, comments skipped.
mapfile -t packaged < <(grep -E '^[A-Z_]+=' "$ROOT/etc/websock-hub/websock-hub.env")
grep -qx 'HUB_HOST=127.0.0.1' <<<"$(printf '%s\n' "${packaged[@]}")" || die "the packaged config does not listen on loopback"
start_node() {  # start_node NAME PORT: websock-hub as nobody in the root; its pid in PIDS
    local name=$1 port=$2
    chroot --userspec=nobody:nogroup "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin "${packaged[@]}" \
        HUB_PORT="$port" HUB_PWD="$PASSWORD" HUB_REDIS="redis://127.0.0.1:$REDIS_PORT" \
        /usr/bin/websock-hub >"$TMP/hub-$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$name=$!"
}
A_PORT=$(free_port)
B_PORT=$(free_port)
while [ "$B_PORT" = "$A_PORT" ]; do B_PORT=$(free_port); done
deadline=$(( $(date +%s) + 20 ))
until timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT && printf 'PING\r\n' >&3 && head -n 1 <&3 | grep -q PONG" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || die "redis-server did not answer within 20 s"
    sleep 0.1  # polling period: the loop checks the condition
done
start_node a "$A_PORT"
start_node b "$B_PORT"
for node in a b; do
    port_var=${node^^}_PORT
    deadline=$(( $(date +%s) + 20 ))
    until grep -q "listening on 127.0.0.1:${!port_var}" "$TMP/hub-$node.log"; do
        pid_var=PID_$node
        kill -0 "${!pid_var}" 2>/dev/null || die "websock-hub (node $node) exited"
        [ "$(date +%s)" -lt "$deadline" ] || die "websock-hub (node $node) did not listen within 20 s"
        sleep 0.1  # polling period: the loop checks the condition
    done
done
user=$(ps -o user= -p "$PID_a" | tr -d ' ')
[ "$user" = nobody ] || die "websock-hub runs as '$user', expected nobody"
node "$HERE/hub-check.mjs" --a "http://127.0.0.1:$A_PORT" --b "http://127.0.0.1:$B_PORT" \
    --password "$PASSWORD" --deadline-ms 10000 || die "a publish to node A did not reach node B's subscriber"
for node in a b; do
    pid_var=PID_$node
    kill -TERM "${!pid_var}"
    rc=0
    timeout 15 tail --pid="${!pid_var}" -f /dev/null || die "websock-hub (node $node) did not stop within 15 s of SIGTERM"
    wait "${!pid_var}" || rc=$?
    [ $rc -eq 0 ] || die "websock-hub (node $node) exited $rc after SIGTERM, expected 0"
done
kill -TERM "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
say "websock-hub from the package: two nodes through Redis, as nobody, stopped with SIGTERM (exit 0)"
phase_end

# ---- 5. purge --------------------------------------------------------------------------------
phase_start purge
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q websock-hub libwebsock-dev libwebsock0 \
    >"$TMP/purge.log" 2>&1 || die "apt-get purge of the packages failed in the root"
for file in /usr/bin/websock-hub /etc/websock-hub /etc/systemd/system/multi-user.target.wants/websock-hub.service \
    /lib/systemd/system/websock-hub.service /usr/include/websock /usr/lib/$multiarch/libwebsock.so.$major \
    /usr/lib/$multiarch/pkgconfig/websock.pc /usr/lib/$multiarch/cmake/websock; do
    if [ -e "$ROOT$file" ] || [ -L "$ROOT$file" ]; then die "$file is left after apt-get purge"; fi
done
say "apt-get purge removed every file, the config and the unit's enable link"
phase_end
