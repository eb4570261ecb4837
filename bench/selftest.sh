#!/usr/bin/env bash
# bench/selftest.sh — checks the load generator itself (not the servers' speed).
#
# 1. Against every echo server available (websock-echo, WebSocket++, Beast, Node ws), in each
#    mode, text and binary, at sizes on both sides of the 7-bit / 16-bit / 64-bit length
#    boundaries: loadgen must exit 0, with no mismatch, sent == received and nothing left
#    unanswered.
#    And --raw against the plain TCP echoes (bench_tcp_echo on epoll, bench_tcp_echo_uring on
#    io_uring, also with a tiny buffer pool): the same checks without framing; against a
#    WebSocket server --raw must fail (the server answers no raw echo).
# 2. Against bench/selftest/faulty_echo.mjs: frames dribbled a few bytes per write, messages
#    fragmented with a ping in between, many frames per read — all must pass; corrupted,
#    dropped, retyped messages, a server-sent Close and a wrong Sec-WebSocket-Accept must fail.
#
# Bounded: every loadgen run is 1-2 s and has a hard timeout. Run: `make bench-selftest`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
BIN_DIR=${BIN_DIR:-build/release/bin}
LOADGEN="$BIN_DIR/loadgen"
[ -x "$LOADGEN" ] || { echo "selftest: $LOADGEN is missing" >&2; exit 1; }

PASS=0
FAIL=0
SPID=""
TMP=$(mktemp -d)
cleanup() {
    if [ -n "$SPID" ]; then kill -TERM "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

start() {  # command... -> SPID, SPORT
    # Emptied here, not by the redirect below: that one runs in the child, possibly after the
    # first read, which would then find the previous server's port.
    : >"$TMP/server.log"
    "$@" >>"$TMP/server.log" 2>&1 &
    SPID=$!
    for _ in $(seq 200); do
        SPORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$TMP/server.log" | head -1)
        [ -n "$SPORT" ] && return 0
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    echo "selftest: could not start: $*" >&2
    cat "$TMP/server.log" >&2
    return 1
}
stop() {
    [ -n "$SPID" ] || return 0
    kill -TERM "$SPID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    SPID=""
}

field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"; }

# expect NAME want(ok|fail) loadgen-args...
expect() {
    local name=$1 want=$2; shift 2
    local out rc=0
    out=$(timeout --kill-after=5 40 "$LOADGEN" --port "$SPORT" --server-pid "$SPID" "$@" 2>"$TMP/err") || rc=$?
    local json sent recv unans mism
    json=$(printf '%s\n' "$out" | grep '^{' | head -1)
    sent=$(field "$json" sent); recv=$(field "$json" received)
    unans=$(field "$json" unanswered); mism=$(field "$json" mismatches)
    local ok=0
    if [ "$want" = ok ]; then
        if [ "$rc" -eq 0 ] && [ -n "$json" ] && [ "$sent" = "$recv" ] && [ "$unans" = 0 ] && [ "$mism" = 0 ] &&
            [ "$(field "$json" clean_closes)" = "$(field "$json" opened)" ]; then ok=1; fi
    else
        [ "$rc" -ne 0 ] && ok=1
    fi
    if [ "$ok" -eq 1 ]; then
        PASS=$((PASS + 1))
        printf 'ok    %-58s exit %d, sent %s, received %s\n' "$name" "$rc" "${sent:--}" "${recv:--}"
    else
        FAIL=$((FAIL + 1))
        printf 'FAIL  %-58s exit %d (wanted %s), sent %s, received %s, unanswered %s, mismatches %s\n' \
            "$name" "$rc" "$want" "${sent:--}" "${recv:--}" "${unans:--}" "${mism:--}"
        sed 's/^/      /' "$TMP/err" | head -5
    fi
}

# ---- 1. the real servers ----------------------------------------------------------------------
declare -A CMDS=(
    [websock]="$BIN_DIR/websock-echo --host 127.0.0.1 --port 0"
    [websocketpp]="$BIN_DIR/bench_websocketpp_echo --port 0"
    [beast]="$BIN_DIR/bench_beast_echo --port 0"
    [node-ws]="node bench/peers/ws_echo.mjs --port 0"
)
for s in websock websocketpp beast node-ws; do
    # shellcheck disable=SC2086
    set -- ${CMDS[$s]}
    if [ "$s" = node-ws ]; then
        [ -d bench/node_modules/ws ] || { echo "skip  $s: bench/node_modules/ws missing"; continue; }
    elif [ ! -x "$1" ]; then
        echo "skip  $s: $1 not built"; continue
    fi
    start "$@" || { FAIL=$((FAIL + 1)); continue; }
    for size in 24 125 126 65535 65536 1048576; do
        for kind in text binary; do
            flag=""; [ "$kind" = binary ] && flag=--binary
            inflight=8; [ "$size" -ge 65536 ] && inflight=2
            # shellcheck disable=SC2086
            expect "$s throughput $kind $size B" ok --mode throughput --connections 10 --inflight "$inflight" \
                --size "$size" --warmup 0.2 --duration 0.8 $flag
        done
    done
    expect "$s latency 5000 msg/s, 50 conns" ok --mode latency --connections 50 --rate 5000 --warmup 0.2 --duration 1
    expect "$s idle 300 conns" ok --mode idle --connections 300 --warmup 0 --duration 0.5
    stop
done

# ---- 1b. raw mode against the plain TCP echoes (epoll, and io_uring when liburing-dev is there) --
raw_echo_checks() {  # label command...
    local label=$1; shift
    start "$@" && {
        for size in 24 125 65536 1048576; do
            inflight=8; [ "$size" -ge 65536 ] && inflight=2
            expect "$label --raw throughput text $size B" ok --raw --mode throughput --connections 10 --inflight "$inflight" \
                --size "$size" --warmup 0.2 --duration 0.8
            expect "$label --raw throughput binary $size B" ok --raw --mode throughput --connections 10 --inflight "$inflight" \
                --size "$size" --warmup 0.2 --duration 0.8 --binary
        done
        expect "$label --raw latency 5000 msg/s, 50 conns" ok --raw --mode latency --connections 50 --rate 5000 --warmup 0.2 --duration 1
        expect "$label --raw idle 300 conns" ok --raw --mode idle --connections 300 --warmup 0 --duration 0.5
        stop
    } || FAIL=$((FAIL + 1))
}
if [ -x "$BIN_DIR/bench_tcp_echo" ]; then
    raw_echo_checks tcp-echo "$BIN_DIR/bench_tcp_echo" --port 0
    if [ -x "$BIN_DIR/websock-echo" ]; then
        start "$BIN_DIR/websock-echo" --host 127.0.0.1 --port 0 --quiet && {
            expect "--raw against a WebSocket server is caught" fail --raw --mode throughput --connections 2 --inflight 2 \
                --size 64 --warmup 0 --duration 0.5 --drain 1 --connect-timeout 2
            stop
        } || FAIL=$((FAIL + 1))
    fi
else
    echo "skip  tcp-echo: $BIN_DIR/bench_tcp_echo not built"
fi
if [ -x "$BIN_DIR/bench_tcp_echo_uring" ]; then
    raw_echo_checks tcp-echo-uring "$BIN_DIR/bench_tcp_echo_uring" --port 0
    # Tiny pools, so that the rare paths run all the time: 8 buffers of 64 bytes for 100
    # connections (recvs end with ENOBUFS and are re-armed), 64 of 64 bytes for 64 KiB messages
    # (a connection's queue passes its cap and its recv is paused). Every echo must still come
    # back whole and in order, and the server's exit line must show that the path was taken.
    uring_tiny_pool() {  # label buffers what-must-be-nonzero loadgen-args...
        local label=$1 buffers=$2 counter=$3; shift 3
        start "$BIN_DIR/bench_tcp_echo_uring" --port 0 --buffers "$buffers" --buffer-size 64 && {
            expect "tcp-echo-uring, $buffers x 64 B buffers, $label" ok --raw --mode throughput "$@" --warmup 0.2 --duration 0.8
            stop
            if grep -Eq "tcp_echo_uring: (.*[^0-9])?[1-9][0-9]* $counter" "$TMP/server.log"; then
                PASS=$((PASS + 1)); echo "ok    tcp-echo-uring, $buffers x 64 B buffers: '$counter' happened"
            else
                FAIL=$((FAIL + 1)); echo "FAIL  tcp-echo-uring, $buffers x 64 B buffers: no '$counter' in its exit line:"
                sed 's/^/      /' "$TMP/server.log" | tail -2
            fi
        } || FAIL=$((FAIL + 1))
    }
    uring_tiny_pool "100 x 8 x 32 B" 8 "recvs ended for lack of buffers" --connections 100 --inflight 8 --size 32
    uring_tiny_pool "4 x 2 x 64 KiB" 64 "paused" --connections 4 --inflight 2 --size 65536 --binary
else
    echo "skip  tcp-echo-uring: $BIN_DIR/bench_tcp_echo_uring not built (liburing-dev missing?)"
fi

# ---- 2. the awkward server ------------------------------------------------------------------
if command -v node >/dev/null; then
    for m in dribble fragment coalesce; do
        start node bench/selftest/faulty_echo.mjs "$m" || { FAIL=$((FAIL + 1)); continue; }
        for size in 24 200 70000; do
            expect "faulty_echo $m, $size B text" ok --mode throughput --connections 4 --inflight 4 --size "$size" \
                --warmup 0 --duration 1
            expect "faulty_echo $m, $size B binary" ok --mode throughput --connections 4 --inflight 4 --size "$size" \
                --warmup 0 --duration 1 --binary
        done
        expect "faulty_echo $m, latency" ok --mode latency --connections 4 --rate 500 --warmup 0 --duration 1
        kill -TERM "$SPID"; wait "$SPID" 2>/dev/null; SPID=""
        if [ "$m" = fragment ]; then
            if grep -q 'pongs ok=[1-9][0-9]* bad=0' "$TMP/server.log"; then
                PASS=$((PASS + 1)); echo "ok    faulty_echo fragment: every ping got its pong ($(grep -o 'ok=[0-9]*' "$TMP/server.log"))"
            else
                FAIL=$((FAIL + 1)); echo "FAIL  faulty_echo fragment: pongs: $(grep pongs "$TMP/server.log")"
            fi
        fi
    done
    for m in corrupt drop close badaccept binaryflip; do
        start node bench/selftest/faulty_echo.mjs "$m" || { FAIL=$((FAIL + 1)); continue; }
        expect "faulty_echo $m is caught" fail --mode throughput --connections 4 --inflight 4 --size 64 \
            --warmup 0 --duration 1 --drain 1 --connect-timeout 2
        stop
    done
else
    echo "skip  faulty_echo: node is not installed"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
