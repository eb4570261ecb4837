#!/usr/bin/env bash
# bench/fanout.sh — the hub's fan-out case: one publisher, FANOUT_SUBSCRIBERS subscribers on
# one channel, FANOUT_SIZE-byte messages; deliveries per second and publish-to-delivery
# latency, for websock-hub and broadcast servers on WebSocket++ and Node's ws.
#
# Run it through `make bench-fanout`. Each run starts a fresh server pinned to CPU 0 and
# bench/fanout (the client: subscribers and publisher, one epoll thread) pinned to CPU 1.
#   websock-hub   publisher: POST /channel/bench/ (the aiows API), pipelined on one keep-alive
#                 connection; subscribers: ws://.../channel/bench/
#   websock-send-all  bench_websock_fanout: a WebSocket publisher on /pub, relayed by one
#                 WebSocketServer::send_all per message (thread per client; -event: one epoll
#                 loop; -event2: two loops; -queued: thread per client with direct sends off,
#                 not in the default list)
#   websocketpp   bench_websocketpp_fanout: a WebSocket publisher on /pub, relayed to every other client
#   node-ws       bench/peers/ws_fanout.mjs: the same with ws
# The publisher keeps at most FANOUT_WINDOW messages not yet delivered to every subscriber.
#
# Environment (all optional): BIN_DIR (build/release/bin), FANOUT_SUBSCRIBERS (1000),
# FANOUT_SIZE (32), FANOUT_WARMUP (2), FANOUT_DURATION (5, at most 120), FANOUT_WINDOW (64),
# FANOUT_RUNS (3), FANOUT_SERVERS ("websock-hub websock-send-all websock-send-all-event
# websock-send-all-event2 websocketpp node-ws"),
# FANOUT_NICE (-10 as root, else 0). Bounded: every run has the client's own deadlines, and
# the server is stopped after it.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=${BIN_DIR:-build/release/bin}
SUBS=${FANOUT_SUBSCRIBERS:-1000}
SIZE=${FANOUT_SIZE:-32}
WARMUP=${FANOUT_WARMUP:-2}
DURATION=${FANOUT_DURATION:-5}
WINDOW=${FANOUT_WINDOW:-64}
RUNS=${FANOUT_RUNS:-3}
SERVERS=${FANOUT_SERVERS:-"websock-hub websock-send-all websock-send-all-event websock-send-all-event2 websocketpp node-ws"}
if [ "$(id -u)" -eq 0 ]; then NICE=${FANOUT_NICE:--10}; else NICE=${FANOUT_NICE:-0}; fi
command -v taskset >/dev/null || { echo "fanout.sh: taskset (util-linux) is required" >&2; exit 1; }
OUT_DIR=${BENCH_OUT:-build/bench}
OUT=$OUT_DIR/fanout-$(date +%Y%m%d-%H%M%S).jsonl
mkdir -p "$OUT_DIR"
# 1,000 subscribers and more: every descriptor the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

server_cmd() {
    case "$1" in
        websock-hub) echo "$BIN_DIR/websock-hub --host 127.0.0.1 --port 0 --pwd bench-password" ;;
        websock-send-all) echo "$BIN_DIR/bench_websock_fanout --host 127.0.0.1 --port 0 --engine threads" ;;
        websock-send-all-queued) echo "$BIN_DIR/bench_websock_fanout --host 127.0.0.1 --port 0 --engine threads --no-direct-sends" ;;
        websock-send-all-event) echo "$BIN_DIR/bench_websock_fanout --host 127.0.0.1 --port 0 --engine event" ;;
        websock-send-all-event2) echo "$BIN_DIR/bench_websock_fanout --host 127.0.0.1 --port 0 --engine event --event-loops 2" ;;
        websocketpp) echo "$BIN_DIR/bench_websocketpp_fanout --host 127.0.0.1 --port 0" ;;
        node-ws)     echo "node bench/peers/ws_fanout.mjs --host 127.0.0.1 --port 0" ;;
        *) echo "fanout.sh: unknown server $1" >&2; exit 1 ;;
    esac
}
client_args() {
    case "$1" in
        websock-hub) echo "--sub-path /channel/bench/ --publish http --pub-path /channel/bench/ --pwd bench-password" ;;
        *)           echo "--sub-path /sub --publish ws --pub-path /pub" ;;
    esac
}

echo "fanout: $SUBS subscribers, $SIZE-byte messages, window $WINDOW, ${WARMUP} s warm-up + ${DURATION} s, $RUNS runs; results in $OUT"
for run in $(seq 1 "$RUNS"); do
    for name in $SERVERS; do
        bin=$(server_cmd "$name"); bin=${bin%% *}
        if [ "$bin" != node ] && [ ! -x "$bin" ]; then echo "  $name run $run: skipped ($bin is not built)"; continue; fi
        log=$(mktemp)
        # shellcheck disable=SC2046
        nice -n "$NICE" taskset -c 0 $(server_cmd "$name") >"$log" 2>&1 &
        spid=$!
        port=
        for _ in $(seq 1 100); do
            port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$log" | head -1)
            [ -n "$port" ] && break
            sleep 0.1
        done
        if [ -z "$port" ]; then echo "fanout.sh: $name did not start:"; cat "$log"; kill "$spid" 2>/dev/null || true; exit 1; fi
        # shellcheck disable=SC2046
        if result=$(nice -n "$NICE" taskset -c 1 "$BIN_DIR/fanout" --port "$port" --subscribers "$SUBS" --size "$SIZE" \
                     --warmup "$WARMUP" --duration "$DURATION" --window "$WINDOW" $(client_args "$name") | head -1); then
            echo "$result" | sed "s/^{/{\"server\":\"$name\",\"run\":$run,/" >>"$OUT"
            echo "  $name run $run: $(echo "$result" | sed -n 's/.*"deliveries_per_s":\([0-9]*\).*"p50_us":\([0-9]*\),"p99_us":\([0-9]*\).*/\1 deliveries\/s, p50 \2 us, p99 \3 us/p')"
        else
            echo "  $name run $run: FAILED"; tail -5 "$log"
        fi
        kill "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        rm -f "$log"
    done
done

# Medians per server.
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
const by = {};
for (const r of rows) (by[r.server] ??= []).push(r);
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
console.log("\n| server | deliveries/s (median) | range | p50 µs | p99 µs | runs |");
console.log("|---|---|---|---|---|---|");
for (const [name, rs] of Object.entries(by)) {
  const d = rs.map((r) => r.deliveries_per_s);
  console.log(`| ${name} | ${Math.round(med(d)).toLocaleString("en")} | ${Math.round(Math.min(...d)).toLocaleString("en")}–${Math.round(Math.max(...d)).toLocaleString("en")} | ${med(rs.map((r) => r.p50_us))} | ${med(rs.map((r) => r.p99_us))} | ${rs.length} |`);
}' "$OUT"
