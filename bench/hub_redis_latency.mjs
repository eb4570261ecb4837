#!/usr/bin/env node
// Publish-to-delivery latency across two websock-hub nodes through Redis.
//
// Starts its own redis-server (free loopback port, no persistence) and two hub nodes on it
// (release build), subscribes on node B (and, for comparison, on node A), then publishes
// over HTTP (POST /channel/lat/, keep-alive) on node A at a fixed rate. Latency = the time
// from just before the POST is written to the moment the subscriber's `ws` hands over the
// message; publisher and subscribers are in this one process, so one clock. Also measured:
// the same on one hub without Redis (LocalBus), and the POST's own answer time (201 comes
// after this node delivered the message itself: read-your-writes).
//
//   node bench/hub_redis_latency.mjs              # 500 msg/s, 1 s warm-up + 5 s measured
//   LAT_RATE=1000 LAT_SECONDS=5 node bench/hub_redis_latency.mjs
//
// Bounded: at most LAT_RATE × (warm-up + LAT_SECONDS) messages (LAT_SECONDS ≤ 60), at most
// LAT_MAX_IN_FLIGHT unanswered POSTs, every wait with a deadline; everything it started is
// stopped at the end, also on failure.

import http from 'node:http';
import { readFileSync } from 'node:fs';
import os from 'node:os';

import { startHub, subscribe, metrics, waitFor, withTimeout } from '../test/hub/hub_helpers.mjs';
import { startRedis } from '../test/hub/redis.mjs';

const RATE = Math.max(1, Math.min(5000, Number(process.env.LAT_RATE || 500)));
const SECONDS = Math.max(1, Math.min(60, Number(process.env.LAT_SECONDS || 5)));
const WARMUP_SECONDS = 1;
const SIZE = Math.max(16, Number(process.env.LAT_SIZE || 32));  // payload bytes
const MAX_IN_FLIGHT = 64;
const PWD = 'bench-pwd';

function percentile(sorted, p) {
    if (sorted.length === 0) return NaN;
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(samplesNs) {
    const us = samplesNs.map((ns) => Number(ns) / 1000).sort((a, b) => a - b);
    const f = (v) => (Number.isFinite(v) ? Math.round(v) : '-');
    return { n: us.length, p50: f(percentile(us, 50)), p90: f(percentile(us, 90)), p99: f(percentile(us, 99)), max: f(us[us.length - 1]) };
}

/** Publish RATE msg/s on `publisher` for warm-up + SECONDS; subscribers timestamp arrivals. */
async function run(label, publisher, subscribers) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const sent = new Map();  // seq -> hrtime at send
    const delivery = subscribers.map(() => []);
    const answers = [];
    const seen = subscribers.map(() => new Set());
    let duplicates = 0;
    subscribers.forEach((ws, s) => {
        ws.on('message', (data) => {
            const now = process.hrtime.bigint();
            const seq = Number(data.toString('utf8', 0, data.indexOf(':')));
            if (seen[s].has(seq)) ++duplicates;
            seen[s].add(seq);
            const at = sent.get(seq);
            if (at !== undefined && seq >= RATE * WARMUP_SECONDS) delivery[s].push(now - at);
        });
    });
    const total = RATE * (WARMUP_SECONDS + SECONDS);
    const interval = 1000 / RATE;
    const padding = 'x'.repeat(SIZE);
    let inFlight = 0;
    let failures = 0;
    let skipped = 0;
    const start = performance.now();
    const posted = [];
    for (let seq = 0; seq < total; ++seq) {
        const due = start + seq * interval;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        if (inFlight >= MAX_IN_FLIGHT) {
            ++skipped;  // the hub is behind: do not pile up (would measure our own queue)
            continue;
        }
        const body = `${seq}:${padding}`.slice(0, Math.max(SIZE, String(seq).length + 1));
        ++inFlight;
        const t0 = process.hrtime.bigint();
        sent.set(seq, t0);
        posted.push(
            new Promise((resolve) => {
                const req = http.request(
                    { host: publisher.host, port: publisher.port, method: 'POST', path: `/channel/lat/?pwd=${PWD}`, agent,
                      headers: { 'Content-Length': Buffer.byteLength(body) } },
                    (res) => {
                        res.resume();
                        res.on('end', () => {
                            --inFlight;
                            if (res.statusCode !== 201) ++failures;
                            else if (seq >= RATE * WARMUP_SECONDS) answers.push(process.hrtime.bigint() - t0);
                            resolve();
                        });
                    },
                );
                req.on('error', () => {
                    --inFlight;
                    ++failures;
                    resolve();
                });
                req.end(body);
            }),
        );
    }
    await withTimeout(Promise.all(posted), 30000, 'the last POSTs');
    const expected = sent.size;
    await waitFor(() => seen.every((set) => set.size >= expected), { timeout: 10000, what: 'every message delivered' }).catch(() => {});
    agent.destroy();
    const lost = seen.map((set) => expected - set.size);
    return { label, sent: expected, skipped, failures, duplicates, lost, delivery: delivery.map(summary), answer: summary(answers) };
}

function loadAverage() {
    try {
        return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    } catch {
        return os.loadavg().map((v) => v.toFixed(2)).join(' ');
    }
}

async function main() {
    const started = [];
    const results = [];
    const loadBefore = loadAverage();
    try {
        const redis = await startRedis();
        started.push(() => redis.stop());
        const env = { env: { HUB_PWD: PWD } };
        const nodeA = await startHub(['--redis', redis.url], env);
        started.push(() => nodeA.stop());
        const nodeB = await startHub(['--redis', redis.url], env);
        started.push(() => nodeB.stop());
        for (const node of [nodeA, nodeB]) await waitFor(async () => (await metrics(node)).hub_bus_connected === 1, { what: 'bus connected' });
        const onB = await subscribe(nodeB, 'lat');
        const onA = await subscribe(nodeA, 'lat');
        results.push(await run('two nodes through Redis', nodeA, [onB, onA]));
        onA.close();
        onB.close();

        const local = await startHub([], env);
        started.push(() => local.stop());
        const onLocal = await subscribe(local, 'lat');
        results.push(await run('one node, no Redis', local, [onLocal]));
        onLocal.close();
    } finally {
        for (const stop of started.reverse()) await stop().catch((err) => console.error(`cleanup: ${err.message}`));
    }

    console.log(`# hub publish-to-delivery latency: ${RATE} msg/s, ${SIZE}-byte text, ${WARMUP_SECONDS} s warm-up + ${SECONDS} s measured`);
    console.log(`# ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average before: ${loadBefore}, after: ${loadAverage()}`);
    console.log('| case | subscriber | messages | p50 µs | p90 µs | p99 µs | max µs | lost | doubled | POST failures |');
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    for (const r of results) {
        const names = r.delivery.length === 2 ? ['on node B (other node)', 'on node A (publishing node)'] : ['on the same node'];
        r.delivery.forEach((d, i) => {
            console.log(`| ${r.label} | ${names[i]} | ${d.n} | ${d.p50} | ${d.p90} | ${d.p99} | ${d.max} | ${r.lost[i]} | ${r.duplicates} | ${r.failures} |`);
        });
        const a = r.answer;
        console.log(`| ${r.label} | (POST answered 201) | ${a.n} | ${a.p50} | ${a.p90} | ${a.p99} | ${a.max} | | | ${r.skipped ? `${r.skipped} skipped` : ''} |`);
    }
}

main().catch((err) => {
    console.error(err.stack || String(err));
    process.exit(1);
});
