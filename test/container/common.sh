# Sourced by the container tests (run.sh: the chat image; hub.sh: the hub image; deb.sh: the
# Debian packages in a fresh root). The caller sets REPO (the repository), WORK
# (build/container), TMP (its own temporary directory, removed at exit) and TAG (the prefix of
# its messages), then calls:
#
#   container_engine_setup   our containers.conf (rlimits this machine allows), podman info
#   ensure_base_image        localhost/debian:bookworm-slim, made with debootstrap when missing
#   debootstrap_root DIR     a minimal bookworm root in DIR (what the base image is made of)
#   free_port                a free TCP port on 127.0.0.1
#   http_status HOST PORT PATH   the status line of GET PATH, or nothing (bash's /dev/tcp)
#
# Loopback only: containers run with --network host, never a bridge or a published port (-p),
# which would route through private address ranges.

# shellcheck source=test/container/mirror.sh
. "$REPO/test/container/mirror.sh"

BASE_IMAGE=localhost/debian:bookworm-slim
SUITE=bookworm

say() { printf '%s: %s\n' "$TAG" "$*"; }
skip() { say "SKIP: $*"; exit 0; }
die() { say "FAIL: $*" >&2; exit 1; }
TIMINGS=""
phase_start() { PHASE=$1; PHASE_T0=$(date +%s); say "== $PHASE"; }
phase_end() { local dt=$(( $(date +%s) - PHASE_T0 )); TIMINGS="$TIMINGS $PHASE=${dt}s"; say "   $PHASE took ${dt}s"; }

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

free_port() {
    node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })"
}

http_status() {  # http_status HOST PORT PATH
    timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2 && printf 'GET $3 HTTP/1.1\r\nHost: $1\r\nConnection: close\r\n\r\n' >&3 && head -n 1 <&3 | tr -d '\r'" 2>/dev/null || true
}

container_engine_setup() {
    local hard_nofile hard_nproc pid_max nofile nproc
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
    mkdir -p "$WORK"
    export CONTAINERS_CONF=$WORK/containers.conf
    sed -e "s/\"nofile=65536:65536\"/\"nofile=$nofile:$nofile\"/" \
        -e "s/\"nproc=65536:65536\"/\"nproc=$nproc:$nproc\"/" \
        "$REPO/test/container/containers.conf" >"$CONTAINERS_CONF.$$"
    mv "$CONTAINERS_CONF.$$" "$CONTAINERS_CONF"
    say "CONTAINERS_CONF=$CONTAINERS_CONF (nofile=$nofile, nproc=$nproc)"
    # The engine must answer at all; a clear reason beats a cryptic failure later.
    if ! podman info >"$TMP/info.txt" 2>&1; then
        cat "$TMP/info.txt" >&2
        die "podman info failed (see above)"
    fi
    say "podman $(podman version --format '{{.Client.Version}}'), buildah $(buildah version --json 2>/dev/null | awk -F'"' '/"version"/ { print $4; exit }'), storage $(podman info --format '{{.Store.GraphDriverName}}')"
}

# debootstrap_root DIR: debootstrap --variant=minbase bookworm into DIR from the Debian
# mirror of this machine's apt sources, nothing mounted below DIR afterwards.
debootstrap_root() {
    local dir=$1 mirror
    mirror=$(debian_mirror "$SUITE")
    [ -n "$mirror" ] || die "no 'deb ... $SUITE' source in /etc/apt/sources.list{,.d/*}: cannot pick a Debian mirror"
    say "debootstrap --variant=minbase $SUITE from $mirror"
    timeout 1200 debootstrap --variant=minbase "$SUITE" "$dir" "$mirror" >"$TMP/debootstrap.log" 2>&1 || {
        tail -30 "$TMP/debootstrap.log" >&2
        unmount_under "$dir"
        die "debootstrap failed (log above)"
    }
    unmount_under "$dir"
}

# The base image debian:bookworm-slim, made here from a debootstrapped root trimmed like the
# official slim image and imported with podman. Kept in podman's storage: later runs skip
# this (WEBSOCK_CONTAINER_REBUILD_BASE=1 makes it again).
ensure_base_image() {
    if [ "${WEBSOCK_CONTAINER_REBUILD_BASE:-0}" != 1 ] && podman image exists "$BASE_IMAGE"; then
        say "base image $BASE_IMAGE exists: debootstrap skipped"
        return 0
    fi
    phase_start base-image
    local rootfs
    rootfs=$(mktemp -d "$WORK/rootfs.XXXXXX")
    BASE_ROOTFS=$rootfs  # the caller's cleanup removes it when this fails half-way
    debootstrap_root "$rootfs"
    # Slim it the way the official image is: no package caches or lists, no docs, manuals
    # or translations (and dpkg keeps them out of later installs), no host files.
    (
        cd "$rootfs"
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
    say "apt sources inside the image: $(grep -v '^#' "$rootfs/etc/apt/sources.list" | tr '\n' ' ')"
    tar --numeric-owner -C "$rootfs" -c . | pm import --quiet \
        --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$BASE_IMAGE" >/dev/null
    rm -rf --one-file-system "$rootfs"
    BASE_ROOTFS=""
    say "imported $BASE_IMAGE ($(podman image inspect "$BASE_IMAGE" --format '{{.Size}}') bytes)"
    phase_end
}

# The build context of an image is the repository root; buildah 1.28 does not read
# <Containerfile>.dockerignore by itself, so it is passed with --ignorefile. --format docker:
# the OCI image format has no HEALTHCHECK.
build_image() {  # build_image CONTAINERFILE IMAGE [buildah bud options...]
    local file=$1 image=$2
    shift 2
    local ignore=""
    [ -f "$file.dockerignore" ] && ignore="--ignorefile $file.dockerignore"
    # shellcheck disable=SC2086
    timeout 1800 buildah bud --isolation chroot --pull=never --layers --format docker $ignore \
        -f "$file" -t "$image" "$@" . >"$TMP/build-${image##*/}.log" 2>&1 || {
        tail -40 "$TMP/build-${image##*/}.log" >&2
        die "buildah bud -f $file -t $image failed (log above)"
    }
    say "built $image: $(podman image inspect "$image" --format '{{.Size}}') bytes"
}
