#!/usr/bin/env bash
# The README's two commands in a fresh Debian 12 root: debootstrap a minimal bookworm with
# only git and make, clone this repository into it, and in a chroot run
#   1. make run        wait until the chat room answers on 127.0.0.1:8467, then stop it
#   2. make test's release suites: deps-test, check-node-engines, unit, integration, hub, e2e,
#      faults, client, the short soak, install (consumer builds) and docs
#      (the container suite needs a booted system: podman does not run in a plain chroot;
#      the sanitizer and fuzz builds are left out to keep this under an hour on 2 cores)
# and say how many packages each step installed, and how long it took. Not part of
# `make test` (it downloads about 500 MB and takes 30-60 minutes); run it by hand, as root:
#
#   test/container/fresh-root.sh [COMMIT]        (default HEAD; log in build/fresh-root/)
#
# Node.js is Debian 12's own (18.20) in the root, whatever the host has. The host's CA
# certificates are copied in (npm checks the registry's certificate), and so are the host's
# apt sources (the same mirror, with bookworm-security, as an installed system has).
# Loopback only; every step has a time limit.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
COMMIT=$(git rev-parse "${1:-HEAD}")
WORK=$REPO/build/fresh-root
ROOT=$WORK/root
SUITE=bookworm
STARTED=$(date +%s)

say() { printf 'fresh-root: %s\n' "$*"; }
die() { say "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || die "debootstrap is missing (make deps)"

# shellcheck source=test/container/mirror.sh
. "$REPO/test/container/mirror.sh"

unmount_root() {
    awk -v d="$ROOT" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
}
CHAT_PID=""
cleanup() {
    local rc=$?
    set +e
    [ -n "$CHAT_PID" ] && kill -- -"$CHAT_PID" 2>/dev/null
    unmount_root
    say "total $(( $(date +%s) - STARTED ))s"
    [ $rc -eq 0 ] && say "PASS" || say "FAIL (exit $rc)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

packages() { chroot "$ROOT" dpkg-query -W -f='${Status}\n' | grep -c 'install ok installed'; }
installed_mb() { chroot "$ROOT" dpkg-query -W -f='${Installed-Size}\n' | awk '{ s += $1 } END { print int(s / 1024) }'; }
used_mb() { du -sm --one-file-system "$ROOT" | cut -f1; }
step() {  # step NAME SECONDS COMMAND: run COMMAND in the root, log it, time it
    local name=$1 limit=$2 command=$3 t0 rc=0 before after
    before=$(packages)
    t0=$(date +%s)
    say "== $name (at most ${limit}s): $command"
    timeout "$limit" chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        bash -c "cd /root/websock && $command" >"$WORK/$name.log" 2>&1 || rc=$?
    after=$(packages)
    say "   $name: exit $rc in $(( $(date +%s) - t0 ))s; packages $before -> $after; root $(used_mb) MB (log: $WORK/$name.log)"
    if [ $rc -ne 0 ]; then
        tail -40 "$WORK/$name.log" | sed 's/^/    /' >&2
        FAILED="$FAILED $name"
    fi
    return 0  # the next suites still run; the exit code says whether any failed
}
FAILED=""

mkdir -p "$WORK"
unmount_root
rm -rf --one-file-system "$ROOT"
MIRROR=$(debian_mirror "$SUITE")
[ -n "$MIRROR" ] || die "no 'deb ... $SUITE' source in this machine's apt sources"
t0=$(date +%s)
say "debootstrap --variant=minbase --include=git,make $SUITE from $MIRROR"
timeout 1500 debootstrap --variant=minbase --include=git,make "$SUITE" "$ROOT" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
unmount_root
say "   debootstrap: $(( $(date +%s) - t0 ))s, $(packages) packages, $(used_mb) MB"

# What an installed system has and a bare debootstrap lacks: apt sources with updates and
# security, this machine's apt settings for its mirror, DNS, CA certificates for npm.
rm -f "$ROOT/etc/apt/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && cp "$f" "$ROOT$f"
done
for f in /etc/apt/apt.conf.d/99artifact-registry; do [ -f "$f" ] && cp "$f" "$ROOT$f"; done
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
mkdir -p "$ROOT/etc/ssl" "$ROOT/usr/share/ca-certificates"
cp -a /etc/ssl/certs "$ROOT/etc/ssl/"
cp -a /usr/share/ca-certificates/. "$ROOT/usr/share/ca-certificates/"

mount -t proc proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys"
mount --rbind /dev "$ROOT/dev"
mount -t tmpfs -o mode=1777 shm "$ROOT/dev/shm"

git clone --quiet --no-hardlinks "$REPO" "$ROOT/root/websock"
git -C "$ROOT/root/websock" checkout --quiet "$COMMIT"
say "cloned $(git -C "$ROOT/root/websock" log --oneline -1)"

# ---- 1. make run: the chat room answers, then stop it -------------------------------------
before=$(packages)
t0=$(date +%s)
say "== make run"
setsid chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c 'cd /root/websock && exec make run' >"$WORK/make-run.log" 2>&1 &
CHAT_PID=$!
answers() {
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/8467 && printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 && head -n 1 <&3 | grep -q '^HTTP/1\.1 200 '" 2>/dev/null
}
deadline=$(( $(date +%s) + 2400 ))
until answers; do
    kill -0 "$CHAT_PID" 2>/dev/null || { tail -40 "$WORK/make-run.log" >&2; die "make run ended before the chat room answered"; }
    [ "$(date +%s)" -lt "$deadline" ] || { tail -40 "$WORK/make-run.log" >&2; die "the chat room did not answer within 40 minutes"; }
    sleep 2  # polling period: the loop waits on the condition
done
say "   make run: the chat room answers GET / on 127.0.0.1:8467 after $(( $(date +%s) - t0 ))s; packages $before -> $(packages); root $(used_mb) MB"
say "   installed size of every package: $(installed_mb) MB"
kill -TERM -- -"$CHAT_PID" 2>/dev/null || true
wait "$CHAT_PID" 2>/dev/null || true
CHAT_PID=""

# ---- 2. make test's release suites ------------------------------------------------------
step deps-test 2400 'make deps-test'
step check-node-engines 300 'node --version && make check-node-engines'
step release-build 3600 'make -j2 BUILD=release test-bins'
step test-unit 900 'make BUILD=release test-unit'
step test-integration 1800 'make BUILD=release test-integration'
step test-hub 1200 'make BUILD=release test-hub'
step test-e2e 900 'make BUILD=release test-e2e'
step test-faults 1200 'make BUILD=release test-faults'
step test-client 900 'make BUILD=release test-client'
step soak-short 900 'make BUILD=release soak-short'
step test-install 900 'make BUILD=release test-install'
step test-docs 300 'make BUILD=release test-docs'
say "   installed size of every package: $(installed_mb) MB"
[ -z "$FAILED" ] || die "failed:$FAILED (logs in $WORK)"
