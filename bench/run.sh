#!/usr/bin/env bash
# bench/run.sh — websock's engines against WebSocket++, Boost.Beast, Node's ws and a plain
# TCP echo (the ceiling: bench/peers/tcp_echo.cpp, driven with loadgen --raw, the same payload
# bytes without framing), in one run. Every table shows each server's ratio to the TCP echo.
#
# Run it through `make bench` (which builds everything first). For every measurement a fresh
# server is started pinned to CPU 0 (taskset) and bench/loadgen runs pinned to CPU 1:
#
#   throughput  100 connections x 8 messages in flight, 32-byte text messages: echoed msg/s,
#               and server CPU time (utime+stime from /proc/PID/stat, sampled by the loadgen at
#               the edges of the measured window, warm-up excluded) / messages echoed
#   big         8 connections x 2 in flight, 64 KiB binary messages: MB/s of payload echoed
#               (one direction) and server CPU per message
#   one         100 connections x 1 in flight, 32 bytes: server CPU per message when every
#               message costs the server a wake-up
#   latency     20,000 msg/s in total over 100 connections, 32 bytes: p50 / p99 in us, measured
#               from each message's scheduled send time (no coordinated omission)
#   idle        10,000 connections opened, one echo each, then held: the server's VmRSS and
#               descriptors per connection, and the machine's Slab and KernelStack deltas
#
# Each measurement is repeated BENCH_RUNS times; the servers are interleaved (their order
# rotates every round) so that slow drifts of a shared machine hit all of them alike. The
# tables (bench/report.mjs) show medians of the clean runs and the ratio to websock. Every
# loadgen run is bounded in time, and so is the whole script: about 5.5 minutes by default on a
# quiet machine and at most about 8 with every wait and redo; about 2 (at most 3) with
# BENCH_QUICK=1.
#
# Environment (all optional):
#   BIN_DIR             where the binaries are (default build/release/bin)
#   BENCH_RUNS          repetitions of every measurement (default 3)
#   BENCH_QUICK=1       short windows (1 s warm-up + 2 s measured) for a quick look
#   BENCH_WARMUP        warm-up seconds (default 2; quick 1)
#   BENCH_DURATION      measured seconds per run (default 8, at most 10; quick 2)
#   BENCH_SERVERS       subset and order, e.g. "tcp-echo websock beast" (default: tcp-echo,
#                       websock (thread per client), websock-event (one epoll loop),
#                       websock-event2 (--event-loops 2), websocketpp, beast, node-ws);
#                       "websock-spin" is websock-event with --busy-poll-us 200;
#                       "tcp-echo-uring" is the TCP echo on io_uring (bench/peers/tcp_echo_uring.cpp,
#                       built when liburing-dev is installed), the ceiling's other candidate
#   BENCH_KINDS         which measurements, default "throughput big one latency idle"
#   BENCH_LOADGEN_SPIN=1  the load generator polls without sleeping, so that its own
#                       wake-ups (tens of µs on a VM) stay out of every server's latency
#   BENCH_CONNECTIONS   connections for throughput and latency (default 100)
#   BENCH_INFLIGHT      messages in flight per connection (default 8)
#   BENCH_SIZE          message size in bytes (default 32, at least 24)
#   BENCH_RATE          total rate for the latency runs (default 20000)
#   BENCH_BIG_SIZE      message size of the "big" runs (default 65536), BENCH_BIG_CONNECTIONS
#                       (8) and BENCH_BIG_INFLIGHT (2)
#   BENCH_IDLE_CONNECTIONS  connections for the idle runs (default 10000; the loadgen and the
#                       server each need one descriptor per connection, under `ulimit -Hn`)
#   BENCH_OUT           folder for raw results (default build/bench)
#   BENCH_QUIET_WAIT    before each measurement, wait up to this many seconds for the machine
#                       to be quiet (other processes under 10% of it); default 20, 0 = don't
#   BENCH_NICE          niceness of the server and the loadgen (default -10 when run as root,
#                       else 0), so that a compiler next door takes less of their CPUs
#   BENCH_QUIET_BUDGET  the waits of a whole run add up to at most this (default 90 s; quick 20)
#   BENCH_ATTEMPTS      a run during which other processes used more than 25% of a CPU is
#                       redone, up to this many attempts in all (default 2) ...
#   BENCH_MAX_REDOS     ... and at most this many redone runs per benchmark (default 6; quick 3)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=${BIN_DIR:-build/release/bin}
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    WARMUP=${BENCH_WARMUP:-1}
    DURATION=${BENCH_DURATION:-2}
    IDLE_HOLD=1
    QUIET_BUDGET=${BENCH_QUIET_BUDGET:-20}
    MAX_REDOS=${BENCH_MAX_REDOS:-3}
else
    WARMUP=${BENCH_WARMUP:-2}
    DURATION=${BENCH_DURATION:-8}
    IDLE_HOLD=2
    QUIET_BUDGET=${BENCH_QUIET_BUDGET:-90}
    MAX_REDOS=${BENCH_MAX_REDOS:-6}
fi
CONNS=${BENCH_CONNECTIONS:-100}
INFLIGHT=${BENCH_INFLIGHT:-8}
SIZE=${BENCH_SIZE:-32}
RATE=${BENCH_RATE:-20000}
BIG_SIZE=${BENCH_BIG_SIZE:-65536}
BIG_CONNS=${BENCH_BIG_CONNECTIONS:-8}
BIG_INFLIGHT=${BENCH_BIG_INFLIGHT:-2}
IDLE_CONNS=${BENCH_IDLE_CONNECTIONS:-10000}
IDLE_CONNECT_TIMEOUT=30  # 10,000 handshakes against a server confined to one core
KINDS=${BENCH_KINDS:-"throughput big one latency idle"}
for k in $KINDS; do
    case "$k" in throughput|big|one|latency|idle) ;; *) echo "run.sh: unknown BENCH_KINDS entry '$k'" >&2; exit 1;; esac
done
SERVERS=${BENCH_SERVERS:-"tcp-echo websock websock-event websock-event2 websocketpp beast node-ws"}
OUT_DIR=${BENCH_OUT:-build/bench}
QUIET_WAIT=${BENCH_QUIET_WAIT:-20}
ATTEMPTS=${BENCH_ATTEMPTS:-2}
if [ "$(id -u)" -eq 0 ]; then NICE=${BENCH_NICE:--10}; else NICE=${BENCH_NICE:-0}; fi
SERVER_CPU=0
LOADGEN_CPU=1
LOADGEN="$BIN_DIR/loadgen"
# The websock row is the default engine, whatever the caller's environment says.
unset WEBSOCK_ENGINE

# Keep every run short: the rules here are that each run stays around 10 s at most.
awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { exit !(d > 0 && d <= 10 && w >= 0 && w <= 5) }' || {
    echo "run.sh: BENCH_DURATION must be in (0, 10] and BENCH_WARMUP in [0, 5]" >&2; exit 1; }
case "$RUNS" in ''|*[!0-9]*) echo "run.sh: BENCH_RUNS must be a positive integer" >&2; exit 1;; esac
case "$NICE" in -[0-9]|-1[0-9]|-20|[0-9]|1[0-9]) ;; *) echo "run.sh: BENCH_NICE must be in -20..19" >&2; exit 1;; esac
case "$QUIET_WAIT$QUIET_BUDGET$ATTEMPTS$MAX_REDOS" in ''|*[!0-9]*)
    echo "run.sh: BENCH_QUIET_WAIT, BENCH_QUIET_BUDGET, BENCH_ATTEMPTS and BENCH_MAX_REDOS are whole numbers" >&2; exit 1;; esac
if [ "$ATTEMPTS" -lt 1 ] || [ "$ATTEMPTS" -gt 5 ]; then echo "run.sh: BENCH_ATTEMPTS must be in 1..5" >&2; exit 1; fi
if [ "$RUNS" -lt 1 ] || [ "$RUNS" -gt 20 ]; then echo "run.sh: BENCH_RUNS must be in 1..20" >&2; exit 1; fi

[ -x "$LOADGEN" ] || { echo "run.sh: $LOADGEN is missing; run 'make bench'" >&2; exit 1; }
command -v taskset >/dev/null || { echo "run.sh: taskset (util-linux) is required" >&2; exit 1; }
if [ "$(nproc)" -lt 2 ]; then
    echo "run.sh: needs 2 CPUs (server on CPU 0, loadgen on CPU 1); nproc=$(nproc)" >&2
    exit 1
fi
# 10,000 idle connections need more than the usual 1024 descriptors, in every server and in
# the loadgen: the soft limit goes up to the hard one (which root cannot raise in a container).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ " $KINDS " == *" idle "* ]] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 64)) ]; then
    echo "run.sh: open-file limit $(ulimit -n) is too low for $IDLE_CONNS idle connections (BENCH_IDLE_CONNECTIONS)" >&2
    exit 1
fi

mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
RAW="$OUT_DIR/results-$STAMP.jsonl"
REPORT="$OUT_DIR/results-$STAMP.md"
LOGDIR="$OUT_DIR/logs-$STAMP"
mkdir -p "$LOGDIR"
: >"$RAW"

# Run from a private copy of the binaries: the build folder is shared with whoever is working
# on the tree, and a relink in the middle of a benchmark must not swap (or break) a server.
SNAP=$(mktemp -d "${TMPDIR:-/tmp}/websock-bench.XXXXXX")
SPID=""
trap 'if [ -n "$SPID" ]; then stop_server server; fi; rm -rf "$SNAP"' EXIT
trap 'exit 130' INT TERM
for b in loadgen websock-echo bench_websocketpp_echo bench_beast_echo bench_tcp_echo bench_tcp_echo_uring; do
    if [ -x "$BIN_DIR/$b" ]; then cp -p "$BIN_DIR/$b" "$SNAP/$b"; fi
done
SRC_BIN_DIR=$BIN_DIR
BIN_DIR=$SNAP
LOADGEN="$BIN_DIR/loadgen"
WEBSOCK_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- websock examples/echo 2>/dev/null)" ]; then
    WEBSOCK_REV="$WEBSOCK_REV + uncommitted changes"
fi

# ---- the servers ---------------------------------------------------------------------------
server_cmd() {
    case "$1" in
        websock)     echo "$BIN_DIR/websock-echo --host 127.0.0.1 --port 0" ;;
        tcp-echo)    echo "$BIN_DIR/bench_tcp_echo --host 127.0.0.1 --port 0" ;;
        tcp-echo-uring) echo "$BIN_DIR/bench_tcp_echo_uring --host 127.0.0.1 --port 0" ;;
        websock-event) echo "$BIN_DIR/websock-echo --host 127.0.0.1 --port 0 --engine event" ;;
        websock-event2) echo "$BIN_DIR/websock-echo --host 127.0.0.1 --port 0 --engine event --event-loops 2" ;;
        websock-spin) echo "$BIN_DIR/websock-echo --host 127.0.0.1 --port 0 --engine event --busy-poll-us 200" ;;
        websocketpp) echo "$BIN_DIR/bench_websocketpp_echo --host 127.0.0.1 --port 0" ;;
        beast)       echo "$BIN_DIR/bench_beast_echo --host 127.0.0.1 --port 0" ;;
        node-ws)     echo "node bench/peers/ws_echo.mjs --host 127.0.0.1 --port 0" ;;
        *) return 1 ;;
    esac
}

server_missing() {  # prints why a server cannot run, or nothing
    case "$1" in
        websock)     [ -x "$BIN_DIR/websock-echo" ] || echo "$SRC_BIN_DIR/websock-echo is not built (yet)" ;;
        tcp-echo)    [ -x "$BIN_DIR/bench_tcp_echo" ] || echo "$SRC_BIN_DIR/bench_tcp_echo is not built" ;;
        tcp-echo-uring)
            [ -x "$BIN_DIR/bench_tcp_echo_uring" ] ||
                echo "$SRC_BIN_DIR/bench_tcp_echo_uring is not built (it needs liburing-dev)" ;;
        websock-event|websock-spin|websock-event2)
            if [ ! -x "$BIN_DIR/websock-echo" ]; then echo "$SRC_BIN_DIR/websock-echo is not built (yet)"
            elif ! grep -q -- '--engine' "$BIN_DIR/websock-echo"; then echo "this websock-echo has no --engine option"
            elif [ "$1" = websock-event2 ] && ! grep -q -- '--event-loops' "$BIN_DIR/websock-echo"; then
                echo "this websock-echo has no --event-loops option"
            fi ;;
        websocketpp) [ -x "$BIN_DIR/bench_websocketpp_echo" ] || echo "$SRC_BIN_DIR/bench_websocketpp_echo is not built" ;;
        beast)       [ -x "$BIN_DIR/bench_beast_echo" ] || echo "$SRC_BIN_DIR/bench_beast_echo is not built" ;;
        node-ws)
            if ! command -v node >/dev/null; then echo "node is not installed"
            elif [ ! -d bench/node_modules/ws ]; then echo "bench/node_modules/ws is missing (cd bench && npm install)"
            fi ;;
        *) echo "unknown server '$1' (known: tcp-echo tcp-echo-uring websock websock-event websock-event2 websock-spin websocketpp beast node-ws)" ;;
    esac
}

ACTIVE=()
for s in $SERVERS; do
    why=$(server_missing "$s")
    if [ -n "$why" ]; then
        echo "run.sh: skipping $s: $why" >&2
    else
        ACTIVE+=("$s")
    fi
done
[ "${#ACTIVE[@]}" -gt 0 ] || { echo "run.sh: no server to benchmark" >&2; exit 1; }

SPORT=""
stop_server() {
    [ -n "$SPID" ] || return 0
    if kill -0 "$SPID" 2>/dev/null; then
        kill -TERM "$SPID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$SPID" 2>/dev/null; then
            echo "run.sh: $1 did not stop within 5 s of SIGTERM; killing it" >&2
            kill -KILL "$SPID" 2>/dev/null || true
        fi
    fi
    wait "$SPID" 2>/dev/null || true
    SPID=""
}

start_server() {  # name logfile -> SPID, SPORT
    local cmd
    cmd=$(server_cmd "$1")
    # shellcheck disable=SC2086  # the command is split into words on purpose
    nice -n "$NICE" taskset -c "$SERVER_CPU" $cmd >"$2" 2>&1 &
    SPID=$!
    for _ in $(seq 200); do  # up to 10 s
        if grep -q 'listening on 127.0.0.1:' "$2" 2>/dev/null; then
            SPORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$2" | head -1)
            [ -n "$SPORT" ] && return 0
        fi
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    echo "run.sh: $1 did not start (see $2)" >&2
    stop_server "$1"
    return 1
}

# ---- a shared machine: wait (bounded) for other processes to calm down ----------------------
cpu_busy_total() {  # "busy total" jiffies of the whole machine
    awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8; t = b + $5 + $6 + $9; print b, t; exit }' /proc/stat
}
QUIET_SPENT=0
wait_quiet() {
    [ "$QUIET_WAIT" -gt 0 ] && [ "$QUIET_SPENT" -lt "$QUIET_BUDGET" ] || return 0
    local waited=0 b0 t0 b1 t1 pct
    while :; do
        read -r b0 t0 < <(cpu_busy_total)
        sleep 0.5
        read -r b1 t1 < <(cpu_busy_total)
        pct=$(( (b1 - b0) * 100 / ( (t1 - t0) > 0 ? (t1 - t0) : 1 ) ))
        [ "$pct" -lt 10 ] && return 0
        waited=$((waited + 1)); QUIET_SPENT=$((QUIET_SPENT + 1))
        # each round is half a second (the sleep above) plus half a second here
        sleep 0.5
        if [ "$waited" -ge "$QUIET_WAIT" ] || [ "$QUIET_SPENT" -ge "$QUIET_BUDGET" ]; then
            echo "run.sh: machine still busy (${pct}% of its CPUs used by others); measuring anyway" >&2
            return 0
        fi
    done
}

# ---- one measurement -----------------------------------------------------------------------
FAILURES=()   # runs that left no result line at all

field() {  # json key -> value
    printf '%s' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"
}
json_str() {  # a shell string as a JSON string
    printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

NOISY_LIMIT=25   # other processes above this % of one CPU during a window: redo the run
REDOS=0
measure() {  # server kind rep [attempt]
    local s=$1 kind=$2 rep=$3 attempt=${4:-1}
    local log="$LOGDIR/$1-$2-$3"
    if [ "$attempt" -gt 1 ]; then log="$log-attempt$attempt"; fi
    local args limit
    case "$kind" in
        throughput) args=(--mode throughput --connections "$CONNS" --inflight "$INFLIGHT" --size "$SIZE"
                          --warmup "$WARMUP" --duration "$DURATION") ;;
        latency)    args=(--mode latency --connections "$CONNS" --rate "$RATE" --size "$SIZE"
                          --warmup "$WARMUP" --duration "$DURATION") ;;
        big)        args=(--mode throughput --connections "$BIG_CONNS" --inflight "$BIG_INFLIGHT" --size "$BIG_SIZE" --binary
                          --warmup "$WARMUP" --duration "$DURATION") ;;
        one)        args=(--mode throughput --connections "$CONNS" --inflight 1 --size "$SIZE"
                          --warmup "$WARMUP" --duration "$DURATION") ;;
        idle)       args=(--mode idle --connections "$IDLE_CONNS" --size "$SIZE" --warmup 0 --duration "$IDLE_HOLD"
                          --connect-timeout "$IDLE_CONNECT_TIMEOUT") ;;
    esac
    case "$s" in tcp-echo|tcp-echo-uring) args+=(--raw) ;; esac
    if [ "${BENCH_LOADGEN_SPIN:-0}" = 1 ] && [ "$kind" = latency ]; then args+=(--spin); fi
    wait_quiet
    if ! start_server "$s" "$log.server.log"; then
        FAILURES+=("$s $kind round $rep: the server did not start (see $log.server.log)")
        return 0
    fi
    # Hard bound on the loadgen: connect (10, idle 30) + warm-up + window + drain (3) + close (2) + slack.
    limit=$(awk -v w="$WARMUP" -v d="$DURATION" -v c="$IDLE_CONNECT_TIMEOUT" 'BEGIN { printf "%d", w + d + c + 15 }')
    local out rc=0
    out=$(timeout --kill-after=5 "$limit" nice -n "$NICE" taskset -c "$LOADGEN_CPU" "$LOADGEN" --host 127.0.0.1 --port "$SPORT" \
            --server-pid "$SPID" --label "$s" "${args[@]}" 2>"$log.loadgen.err") || rc=$?
    local died=false
    kill -0 "$SPID" 2>/dev/null || died=true
    stop_server "$s"
    local json human
    json=$(printf '%s\n' "$out" | grep '^{' | head -1 || true)
    human=$(printf '%s\n' "$out" | grep -v '^{' | head -1 || true)
    printf '%-14s %-10s round %d: %s\n' "$s" "$kind" "$rep" "${human:-no result}" >&2
    if [ -z "$json" ]; then
        FAILURES+=("$s $kind round $rep: loadgen exit $rc, no result (see $log.loadgen.err)")
    else
        printf '{"rep":%d,"attempt":%d,"server":"%s","kind":"%s","exit":%d,"server_died":%s,"result":%s}\n' \
            "$rep" "$attempt" "$s" "$kind" "$rc" "$died" "$json" >>"$RAW"
    fi
    if [ "$rc" -ne 0 ] || [ -z "$json" ] || [ "$died" = true ]; then
        echo "run.sh: that run failed (loadgen exit $rc$([ "$died" = true ] && echo ', the server died'))" >&2
        sed 's/^/    /' "$log.loadgen.err" | head -5 >&2 || true
        return 0
    fi
    local other
    other=$(field "$json" other_cpu_pct)
    if [ -n "$other" ] && [ "$attempt" -lt "$ATTEMPTS" ] && [ "$REDOS" -lt "$MAX_REDOS" ] &&
        awk -v o="$other" -v l="$NOISY_LIMIT" 'BEGIN { exit !(o > l) }'; then
        echo "run.sh: other processes used ${other}% of a CPU during that window; redoing it" >&2
        REDOS=$((REDOS + 1))
        measure "$s" "$kind" "$rep" $((attempt + 1))
    fi
}

# ---- the run -------------------------------------------------------------------------------
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "bench: ${#ACTIVE[@]} servers (${ACTIVE[*]}), $RUNS rounds, warm-up ${WARMUP}s + ${DURATION}s measured; $(nproc) CPUs ($CPU_MODEL)" >&2
echo "bench: raw results in $RAW" >&2
{
    printf '{"meta":{"date":"%s","cpus":%d,"cpu_model":%s,"kernel":%s,"nice":%d,"websock_rev":%s,' \
        "$(date -u +%Y-%m-%d)" "$(nproc)" "$(json_str "$CPU_MODEL")" "$(json_str "$(uname -r)")" "$NICE" "$(json_str "$WEBSOCK_REV")"
    printf '"runs":%d,"warmup":%s,"duration":%s,"connections":%d,"inflight":%d,"size":%d,"rate":%s,' \
        "$RUNS" "$WARMUP" "$DURATION" "$CONNS" "$INFLIGHT" "$SIZE" "$RATE"
    printf '"big_size":%d,"big_connections":%d,"big_inflight":%d,"kinds":%s,"server_cpu":%d,"loadgen_cpu":%d,' \
        "$BIG_SIZE" "$BIG_CONNS" "$BIG_INFLIGHT" "$(json_str "$KINDS")" "$SERVER_CPU" "$LOADGEN_CPU"
    printf '"idle_connections":%d,"noisy_limit":%d,"servers":[' "$IDLE_CONNS" "$NOISY_LIMIT"
    sep=""; for s in $SERVERS; do printf '%s%s' "$sep" "$(json_str "$s")"; sep=","; done
    printf '],"skipped":{'
    sep=""; for s in $SERVERS; do
        why=$(server_missing "$s")
        if [ -n "$why" ]; then printf '%s%s:%s' "$sep" "$(json_str "$s")" "$(json_str "$why")"; sep=","; fi
    done
    printf '}}}\n'
} >>"$RAW"
T_START=$(date +%s)
n=${#ACTIVE[@]}
for rep in $(seq 1 "$RUNS"); do
    for kind in $KINDS; do
        for i in $(seq 0 $((n - 1))); do  # rotate the order each round
            measure "${ACTIVE[$(((i + rep - 1) % n))]}" "$kind" "$rep"
        done
    done
done
T_END=$(date +%s)
{
    printf '{"summary":{"wall_s":%d,"quiet_wait_s":%d,"redos":%d,"failures":[' "$((T_END - T_START))" "$QUIET_SPENT" "$REDOS"
    sep=""; for f in "${FAILURES[@]}"; do printf '%s%s' "$sep" "$(json_str "$f")"; sep=","; done
    printf ']}}\n'
} >>"$RAW"

# ---- the tables ----------------------------------------------------------------------------
if command -v node >/dev/null; then
    node bench/report.mjs "$RAW" | tee "$REPORT"
else
    echo "run.sh: node is not installed, so no table; the raw results are in $RAW" >&2
fi
[ "${#FAILURES[@]}" -eq 0 ] && ! grep -q '"exit":[1-9]\|"server_died":true' "$RAW"
