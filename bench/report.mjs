// bench/report.mjs — turns the raw results of bench/run.sh (one JSON object a line) into the
// markdown tables of docs/benchmarks.md, every one with each server's ratio to the plain TCP
// echo (tcp-echo, the ceiling), or to websock when the run had no tcp-echo. The io_uring echo
// (tcp-echo-uring) is a row like any other, compared with the epoll tcp-echo.
//
//   node bench/report.mjs build/bench/results-YYYYMMDD-HHMMSS.jsonl
//
// Lines: {"meta": {...}} first, then one {"rep","attempt","server","kind","exit","result"} per
// loadgen run (every attempt, noisy ones included), then {"summary": {...}}. Older files have
// no "kind": the loadgen's mode stands in for it.
//
// Which runs count: a run is *clean* when it succeeded (exit 0) and other processes used at
// most `noisy_limit`% of a CPU during its window. Medians are over the clean runs of a server;
// a server with no clean run of a measurement falls back to all its successful runs, and the
// cell is marked with †. Idle runs are always clean: memory does not depend on the
// neighbours. The ratio compares medians chosen the same way.
import fs from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node bench/report.mjs RESULTS.jsonl');
  process.exit(1);
}
const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim().startsWith('{'));
let meta = {};
let summary = {};
const runs = [];
for (const line of lines) {
  let o;
  try { o = JSON.parse(line); } catch { continue; }
  if (o.meta) meta = o.meta;
  else if (o.summary) summary = o.summary;
  else if (o.result) runs.push({ ...o, kind: o.kind ?? o.result.mode });
}
const noisyLimit = meta.noisy_limit ?? 25;
const servers = meta.servers ?? [...new Set(runs.map((r) => r.server))];
const skipped = meta.skipped ?? {};
const measured = (s) => !skipped[s] && runs.some((r) => r.server === s);
const refName = servers.includes('tcp-echo') && measured('tcp-echo') ? 'tcp-echo' : 'websock';

// kind: which runs; key: the loadgen's JSON field (or a function of the result).
const mbps = (r) => (r.msgs_per_s >= 0 ? (r.msgs_per_s * r.size) / 1e6 : -1);
const metrics = {
  tput: { kind: 'throughput', key: 'msgs_per_s', dec: 0 },
  cpu: { kind: 'throughput', key: 'server_cpu_us_per_msg', dec: 2 },
  lgcpu: { kind: 'throughput', key: 'client_cpu_pct', dec: 0 },
  bigmb: { kind: 'big', key: mbps, dec: 0 },
  bigcpu: { kind: 'big', key: 'server_cpu_us_per_msg', dec: 1 },
  onetput: { kind: 'one', key: 'msgs_per_s', dec: 0 },
  onecpu: { kind: 'one', key: 'server_cpu_us_per_msg', dec: 2 },
  lcpu: { kind: 'latency', key: 'server_cpu_us_per_msg', dec: 2 },
  p50: { kind: 'latency', key: 'p50_us', dec: 0 },
  p99: { kind: 'latency', key: 'p99_us', dec: 0 },
  rss: { kind: 'idle', key: 'rss_kb', dec: 1, scale: 1 / 1024 },
  perconn: { kind: 'idle', key: 'rss_per_conn_kb', dec: 0, scale: 1024 },
  fds: { kind: 'idle', key: 'fds_per_conn', dec: 2 },
  // Machine-wide deltas: another process freeing memory meanwhile can make them negative.
  slab: { kind: 'idle', key: 'slab_per_conn_b', dec: 0, signed: true },
  kstack: { kind: 'idle', key: 'kernel_stack_per_conn_b', dec: 0, signed: true },
  threads: { kind: 'idle', key: 'threads', dec: 0 },
};

const isClean = (r) => r.kind === 'idle' || (r.result.other_cpu_pct ?? 0) <= noisyLimit;
const ok = (r) => r.exit === 0 && !r.server_died;
// An idle run in which the server refused some connections (loadgen exit 2) still measured the
// ones it held: its per-connection figures count, marked ‡ with how many were opened.
const partial = (r) => r.kind === 'idle' && r.exit === 2 && !r.server_died && (r.result.opened ?? 0) > 0;
const usable = (r) => ok(r) || partial(r);

function samples(server, m) {
  const def = metrics[m];
  const mine = runs.filter((r) => r.server === server && r.kind === def.kind && usable(r));
  const val = (r) => {
    const v = typeof def.key === 'function' ? def.key(r.result) : r.result[def.key];
    return typeof v === 'number' && (v >= 0 || def.signed) ? v * (def.scale ?? 1) : null;
  };
  const clean = mine.filter(isClean).map(val).filter((v) => v !== null);
  if (clean.length) return { values: clean, fallback: false };
  // No clean run: the last attempt of every round, noisy as it was.
  const last = new Map();
  for (const r of mine) if (!last.has(r.rep) || last.get(r.rep).attempt < r.attempt) last.set(r.rep, r);
  return { values: [...last.values()].map(val).filter((v) => v !== null), fallback: true };
}

const median = (v) => {
  if (!v.length) return null;
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const fmt = (v, dec) =>
  v === null ? '—' : v.toLocaleString('en-US', { minimumFractionDigits: dec, maximumFractionDigits: dec });

// A median with its ratio to the reference server; `ratio: false` for a cell whose reference
// is (close to) zero, such as the TCP echo's RSS per connection.
function cell(server, m, { ratio = true, mark = true } = {}) {
  const { values, fallback } = samples(server, m);
  const v = median(values);
  if (v === null) return '—';
  let out = fmt(v, metrics[m].dec);
  const ref = median(samples(refName, m).values);
  if (ratio && ref && ref > 0) out += ` (${(v / ref).toFixed(2)}×)`;
  if (fallback) out += ' †';
  const part = runs.filter((r) => r.server === server && r.kind === metrics[m].kind && partial(r));
  if (part.length && mark) out += ` ‡ (${median(part.map((r) => r.result.opened)).toLocaleString('en-US')} opened)`;
  return out;
}

function range(server, m) {
  const { values } = samples(server, m);
  if (!values.length) return '—';
  const d = metrics[m].dec;
  const s = [...values].sort((a, b) => a - b);
  return `${fmt(s[0], d)}–${fmt(s[s.length - 1], d)} (${values.length})`;
}

const out = [];
const p = (s = '') => out.push(s);
const rows = (f) => {
  for (const s of servers) {
    if (skipped[s]) p(`| ${s} | *skipped: ${skipped[s]}* |`);
    else f(s);
  }
};
const rate = (meta.rate ?? 20000).toLocaleString('en-US');
const idle = (meta.idle_connections ?? 1000).toLocaleString('en-US');
const kinds = (meta.kinds ?? 'throughput latency idle').split(/\s+/);
p(`### Results (${meta.date ?? '?'}, ${meta.runs ?? '?'} rounds; medians of the clean runs, ratio to ${refName} in parentheses)`);
p();
p(`Machine: ${meta.cpus ?? '?'} CPUs, ${meta.cpu_model ?? '?'}; Linux ${meta.kernel ?? '?'}. Server on CPU ${meta.server_cpu ?? 0}, loadgen on CPU ${meta.loadgen_cpu ?? 1}, both at nice ${meta.nice ?? 0}. websock at ${meta.websock_rev ?? '?'}. Windows: ${meta.warmup ?? '?'} s warm-up + ${meta.duration ?? '?'} s measured.`);
p();
if (kinds.some((k) => ['throughput', 'big', 'one'].includes(k))) {
  p(`Echo: **32 B** = ${meta.connections ?? 100} connections × ${meta.inflight ?? 8} in flight, ${meta.size ?? 32}-byte text messages; **64 KiB** = ${meta.big_connections ?? 8} × ${meta.big_inflight ?? 2}, ${(meta.big_size ?? 65536).toLocaleString('en-US')}-byte binary messages (MB/s of payload, one direction); **1 in flight** = ${meta.connections ?? 100} connections × 1, ${meta.size ?? 32} bytes. CPU is the server's utime+stime per echoed message.`);
  p();
  p('| server | 32 B msg/s ↑ | 32 B CPU µs/msg ↓ | 64 KiB MB/s ↑ | 64 KiB CPU µs/msg ↓ | 1 in flight msg/s ↑ | 1 in flight CPU µs/msg ↓ |');
  p('|---|---|---|---|---|---|---|');
  rows((s) => p(`| ${s} | ${cell(s, 'tput')} | ${cell(s, 'cpu')} | ${cell(s, 'bigmb')} | ${cell(s, 'bigcpu')} | ${cell(s, 'onetput')} | ${cell(s, 'onecpu')} |`));
  p();
}
if (kinds.includes('latency')) {
  p(`Latency: an open loop of ${rate} msg/s in total over ${meta.connections ?? 100} connections, ${meta.size ?? 32} bytes, measured from each message's scheduled send time.`);
  p();
  p(`| server | p50 µs ↓ | p99 µs ↓ | CPU at ${rate} msg/s µs/msg ↓ |`);
  p('|---|---|---|---|');
  rows((s) => p(`| ${s} | ${cell(s, 'p50')} | ${cell(s, 'p99')} | ${cell(s, 'lcpu')} |`));
  p();
}
if (kinds.includes('idle')) {
  p(`Idle: ${idle} connections, one echo each, then held. RSS and descriptors are the server's, per connection (after minus before connecting); Slab and KernelStack are the whole machine's /proc/meminfo deltas per connection, so they include the loadgen's end of every socket (the same for every server) — the TCP echo's row is that floor. RSS per connection has no ratio: the TCP echo's is about zero.`);
  p();
  p('| server | RSS B/conn ↓ | descriptors/conn ↓ | Slab B/conn ↓ | KernelStack B/conn ↓ | threads | RSS MiB |');
  p('|---|---|---|---|---|---|---|');
  rows((s) => p(`| ${s} | ${cell(s, 'perconn', { ratio: false })} | ${cell(s, 'fds', { ratio: false, mark: false })} | ${cell(s, 'slab', { mark: false })} | ${cell(s, 'kstack', { ratio: false, mark: false })} | ${cell(s, 'threads', { ratio: false, mark: false })} | ${cell(s, 'rss', { ratio: false, mark: false })} |`));
  p();
}
p(`Spread over the runs used above (min–max, and how many runs), the loadgen's own CPU in the`);
p(`32 B runs, and how many runs were clean (other processes at most ${noisyLimit}% of a CPU during`);
p(`the window) out of all attempts, per kind:`);
p();
p('| server | 32 B CPU µs/msg | 64 KiB MB/s | 1 in flight CPU µs/msg | p99 µs | loadgen CPU % | clean runs (32 B / 64 KiB / 1 / latency) |');
p('|---|---|---|---|---|---|---|');
for (const s of servers) {
  if (skipped[s]) continue;
  const count = (kind) => {
    const mine = runs.filter((r) => r.server === s && r.kind === kind);
    return `${mine.filter((r) => ok(r) && isClean(r)).length}/${mine.length}`;
  };
  p(`| ${s} | ${range(s, 'cpu')} | ${range(s, 'bigmb')} | ${range(s, 'onecpu')} | ${range(s, 'p99')} | ${fmt(median(samples(s, 'lgcpu').values), 0)} | ${count('throughput')} / ${count('big')} / ${count('one')} / ${count('latency')} |`);
}
const anyFallback = servers.some((s) => !skipped[s] && Object.keys(metrics).some((m) => samples(s, m).fallback && samples(s, m).values.length));
if (anyFallback) {
  p();
  p(`† no clean run of this measurement: the median of every round's last attempt, taken while other processes used more than ${noisyLimit}% of a CPU — read it as a rough figure.`);
}
if (runs.some(partial)) {
  p();
  p(`‡ the server refused some of the ${idle} connections (the loadgen's exit 2; see the failed runs below): the figures are per connection it did hold, and how many it held is in parentheses.`);
}
const failed = runs.filter((r) => !ok(r));
if (failed.length || (summary.failures ?? []).length) {
  p();
  p('Failed runs (left out, except the idle runs marked ‡):');
  for (const r of failed) p(`- ${r.server} ${r.kind} round ${r.rep} attempt ${r.attempt}: loadgen exit ${r.exit}${r.server_died ? ', the server died' : ''}`);
  for (const f of summary.failures ?? []) p(`- ${f}`);
}
if (servers.includes('tcp-echo-uring') && measured('tcp-echo-uring')) {
  p();
  p('tcp-echo-uring is the same plain TCP echo on io_uring (multishot accept and recv, a provided-buffer ring, one `io_uring_submit_and_wait` per loop turn); its ratio, like every other, is to the epoll tcp-echo.');
}
if (summary.wall_s !== undefined) {
  p();
  p(`Wall time ${summary.wall_s} s, of which ${summary.quiet_wait_s} s waiting for a quiet machine; ${summary.redos} runs redone because of other processes. Raw results: \`${file}\`.`);
}
console.log(out.join('\n'));
