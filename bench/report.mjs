// bench/report.mjs — turns the raw results of bench/run.sh (one JSON object a line) into the
// markdown tables of docs/benchmarks.md.
//
//   node bench/report.mjs build/bench/results-YYYYMMDD-HHMMSS.jsonl
//
// Lines: {"meta": {...}} first, then one {"rep","attempt","server","exit","result"} per loadgen
// run (every attempt, noisy ones included), then {"summary": {...}}.
//
// Which runs count: a run is *clean* when it succeeded (exit 0) and other processes used at
// most `noisy_limit`% of a CPU during its window. Medians are over the clean runs of a server;
// a server with no clean run of a measurement falls back to all its successful runs, and the
// cell is marked with †. Idle (RSS) runs are always clean: memory does not depend on the
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
  else if (o.result) runs.push(o);
}
const noisyLimit = meta.noisy_limit ?? 25;
const servers = meta.servers ?? [...new Set(runs.map((r) => r.server))];
const skipped = meta.skipped ?? {};

const metrics = {
  tput: { mode: 'throughput', key: 'msgs_per_s', dec: 0 },
  cpu: { mode: 'throughput', key: 'server_cpu_us_per_msg', dec: 2 },
  lcpu: { mode: 'latency', key: 'server_cpu_us_per_msg', dec: 2 },
  p50: { mode: 'latency', key: 'p50_us', dec: 0 },
  p99: { mode: 'latency', key: 'p99_us', dec: 0 },
  rss: { mode: 'idle', key: 'rss_kb', dec: 1, scale: 1 / 1024 },
  perconn: { mode: 'idle', key: 'rss_per_conn_kb', dec: 1 },
  lgcpu: { mode: 'throughput', key: 'client_cpu_pct', dec: 0 },
};

const isClean = (r) => r.result.mode === 'idle' || (r.result.other_cpu_pct ?? 0) <= noisyLimit;
const ok = (r) => r.exit === 0 && !r.server_died;

function samples(server, m) {
  const def = metrics[m];
  const mine = runs.filter((r) => r.server === server && r.result.mode === def.mode && ok(r));
  const val = (r) => {
    const v = r.result[def.key];
    return typeof v === 'number' && v >= 0 ? v * (def.scale ?? 1) : null;
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

function cell(server, m) {
  const { values, fallback } = samples(server, m);
  const v = median(values);
  if (v === null) return '—';
  let out = fmt(v, metrics[m].dec);
  const ref = servers.includes('websock') ? median(samples('websock', m).values) : null;
  if (ref && ref > 0) out += ` (${(v / ref).toFixed(2)}×)`;
  if (fallback) out += ' †';
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
const rate = meta.rate ?? 20000;
const idle = meta.idle_connections ?? 1000;
p(`### Results (${meta.date ?? '?'}, ${meta.runs ?? '?'} rounds; medians of the clean runs, ratio to websock in parentheses)`);
p();
p(`Machine: ${meta.cpus ?? '?'} CPUs, ${meta.cpu_model ?? '?'}; Linux ${meta.kernel ?? '?'}. Server on CPU 0, loadgen on CPU 1, both at nice ${meta.nice ?? 0}. websock at ${meta.websock_rev ?? '?'}.`);
p(`Throughput: ${meta.connections ?? 100} connections × ${meta.inflight ?? 8} in flight, ${meta.size ?? 32}-byte text messages, ${meta.warmup ?? '?'} s warm-up + ${meta.duration ?? '?'} s measured.`);
p(`Latency: ${rate.toLocaleString('en-US')} msg/s in total over ${meta.connections ?? 100} connections, ${meta.size ?? 32} bytes, same windows. Idle: ${idle.toLocaleString('en-US')} connections, one echo each, then held.`);
p();
p(`| server | throughput (msg/s) ↑ | server CPU (µs/msg) ↓ | server CPU at ${rate.toLocaleString('en-US')} msg/s (µs/msg) ↓ | p50 latency (µs) ↓ | p99 latency (µs) ↓ | RSS with ${idle.toLocaleString('en-US')} idle conns (MiB) ↓ |`);
p('|---|---|---|---|---|---|---|');
for (const s of servers) {
  if (skipped[s]) {
    p(`| ${s} | *pending: ${skipped[s]}* | | | | | |`);
    continue;
  }
  p(`| ${s} | ${cell(s, 'tput')} | ${cell(s, 'cpu')} | ${cell(s, 'lcpu')} | ${cell(s, 'p50')} | ${cell(s, 'p99')} | ${cell(s, 'rss')} |`);
}
p();
p(`Ranges over the runs used above (min–max, and how many runs), the RSS per connection, the`);
p(`loadgen's own CPU in the throughput runs, and how many runs were clean (other processes at`);
p(`most ${noisyLimit}% of a CPU during the window) out of all attempts, throughput / latency:`);
p();
p('| server | throughput | server CPU µs/msg | p50 µs | p99 µs | RSS MiB | RSS KiB per conn | loadgen CPU % | clean runs |');
p('|---|---|---|---|---|---|---|---|---|');
for (const s of servers) {
  if (skipped[s]) continue;
  const count = (mode) => {
    const mine = runs.filter((r) => r.server === s && r.result.mode === mode);
    return `${mine.filter((r) => ok(r) && isClean(r)).length}/${mine.length}`;
  };
  p(`| ${s} | ${range(s, 'tput')} | ${range(s, 'cpu')} | ${range(s, 'p50')} | ${range(s, 'p99')} | ${range(s, 'rss')} | ${fmt(median(samples(s, 'perconn').values), 1)} | ${fmt(median(samples(s, 'lgcpu').values), 0)} | ${count('throughput')} / ${count('latency')} |`);
}
const anyFallback = servers.some((s) => !skipped[s] && Object.keys(metrics).some((m) => samples(s, m).fallback && samples(s, m).values.length));
if (anyFallback) {
  p();
  p(`† no clean run of this measurement: the median of every round's last attempt, taken while other processes used more than ${noisyLimit}% of a CPU — read it as a rough figure.`);
}
const failed = runs.filter((r) => !ok(r));
if (failed.length || (summary.failures ?? []).length) {
  p();
  p('Failed runs (left out):');
  for (const r of failed) p(`- ${r.server} ${r.result.mode} round ${r.rep} attempt ${r.attempt}: loadgen exit ${r.exit}`);
  for (const f of summary.failures ?? []) p(`- ${f}`);
}
if (summary.wall_s !== undefined) {
  p();
  p(`Wall time ${summary.wall_s} s, of which ${summary.quiet_wait_s} s waiting for a quiet machine; ${summary.redos} runs redone because of other processes. Raw results: \`${file}\`.`);
}
console.log(out.join('\n'));
