// Issue 13's bar, end to end: 1,000 resumable subscribers and a steady publisher through
//   (a) every subscriber's connection cut and re-opened,
//   (b) a zero-downtime restart of a single hub (SIGHUP),
//   (c) one of two Redis-backed nodes killed, its subscribers resuming on the other;
// every subscriber ends with every accepted message exactly once and in order (a publish whose
// answer died with its node in (c) is "in doubt": it may be there too, once, at its own offset),
// and during (b) no connection attempt is refused.
//
// A "subscriber" here is one logical client across its connections (Resumer): it keeps the
// last position it saw and resumes from it, as docs/hub.md's browser example does.
// WEBSOCK_RESUME_SUBSCRIBERS changes the count (default 1,000).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';

import { startHub, tempDir, metrics, mapLimit, ms, waitFor, withTimeout, HOST } from './hub_helpers.mjs';
import { StreamClient, publishStream, assertExactlyOnce } from './streams_harness.mjs';
import { startRedis } from './redis.mjs';

const SUBSCRIBERS = Number(process.env.WEBSOCK_RESUME_SUBSCRIBERS || 1000);
const CHANNEL = 'endurance';
const PWD = 'resume-pwd';

/** One subscriber across its connections. */
class Resumer {
    constructor(name) {
        this.name = name;
        this.client = null;
        this.parts = [];  // each connection's frames (its messages via messageParts())
        this.start = null;  // the position of the first subscribe
        this.resumes = 0;
        this.closes = [];  // close codes and reasons the server sent
    }

    /** The last message seen, over every connection; before any, the first subscribe's position. */
    position() {
        const parts = this.messageParts();
        for (let i = parts.length - 1; i >= 0; --i) {
            const last = parts[i].at(-1);
            if (last) return { epoch: last.epoch, offset: last.offset };
        }
        return this.start;
    }

    lastOffset() {
        return this.position()?.offset ?? 0;
    }

    /** Connect to `hub` and subscribe, resuming from the last position after the first time. */
    async connect(hub) {
        const since = this.start ? this.position() : undefined;
        const client = await StreamClient.open(hub, { timeout: ms(10000) });
        const answer = await client.subscribe(CHANNEL, { since, timeout: ms(15000) });
        assert.equal(answer.type, 'subscribed', `${this.name}: ${JSON.stringify(answer)}`);
        if (since) {
            assert.equal(answer.recovered, true, `${this.name}: resume from ${JSON.stringify(since)}: ${JSON.stringify(answer)}`);
            ++this.resumes;
        } else {
            this.start = { epoch: answer.epoch, offset: answer.offset };
        }
        this.parts.push(client.frames);
        client.closed.then((c) => this.closes.push(c));
        this.client = client;
    }

    messageParts() {
        return this.parts.map((frames) => frames.filter((f) => f.type === 'message' && f.channel === CHANNEL));
    }
}

/**
 * A publisher posting "<label>-<n>" one after the other (each after the previous answered)
 * until stop() or `max` accepted; a refused publish (503 during a restart, a node gone) is
 * retried on the next target. `targets()` gives the hubs to try, in order.
 */
class SteadyPublisher {
    constructor(targets, { label = 'p', max = 400, pauseMs = 2 } = {}) {
        this.targets = targets;
        this.label = label;
        this.max = max;
        this.pauseMs = pauseMs;
        this.accepted = new Map();  // offset -> data
        // Data whose publish failed without an answer (the node died mid-request): it may or
        // may not be in the stream, and the publisher posts it again elsewhere. A publisher
        // without idempotency keys cannot tell, so a subscriber may see it once or twice,
        // each time at its own offset.
        this.inDoubt = new Set();
        this.refused = 0;
        this.epoch = null;
        this.stopping = false;
        this.done = this.run();
    }

    async run() {
        let n = 0;
        const deadline = Date.now() + ms(60000);
        while (!this.stopping && this.accepted.size < this.max && Date.now() < deadline) {
            const data = `${this.label}-${n++}`;
            let ok = false;
            for (const hub of this.targets()) {
                try {
                    const res = await publishStream(hub, CHANNEL, data, { pwd: PWD });
                    if (res.status === 201) {
                        assert.ok(!this.accepted.has(res.json.offset), `offset ${res.json.offset} given twice`);
                        this.accepted.set(res.json.offset, data);
                        this.epoch = res.json.epoch;
                        ok = true;
                        break;
                    }
                } catch {
                    // a node that is gone: try the next (the request may have reached the stream)
                    this.inDoubt.add(data);
                }
                ++this.refused;
            }
            if (!ok) await new Promise((resolve) => setTimeout(resolve, 20));
            else if (this.pauseMs) await new Promise((resolve) => setTimeout(resolve, this.pauseMs));
        }
    }

    async stop() {
        this.stopping = true;
        await this.done;
        return Math.max(0, ...this.accepted.keys());
    }
}

/** Let the publisher get `count` more publishes accepted (after a fault, before stopping). */
async function morePublishes(publisher, count) {
    const target = publisher.accepted.size + count;
    await waitFor(() => publisher.accepted.size >= Math.min(target, publisher.max), { timeout: ms(30000), what: `${count} more publishes` });
}

async function openAll(resumers, hubOf) {
    await mapLimit(resumers, 50, (r, i) => r.connect(hubOf(i)));
}

/**
 * offset -> data for every offset delivered: the accepted ones, plus those whose publish was
 * in doubt but reached the stream. Every subscriber must agree on the latter too (the map is
 * built from all of them, and assertExactlyOnce holds each one to it).
 */
function streamContents(resumers, publisher) {
    const contents = new Map(publisher.accepted);
    for (const r of resumers) {
        for (const m of r.messageParts().flat()) {
            if (contents.has(m.offset)) continue;
            assert.ok(publisher.inDoubt.has(m.data),
                `${r.name}: offset ${m.offset} carries ${JSON.stringify(m.data)}, which was neither accepted nor in doubt`);
            contents.set(m.offset, m.data);
        }
    }
    return contents;
}

/** Every resumer holds every offset after its start up to `last`, once and in order. */
async function assertEveryoneHasEverything(resumers, publisher, last) {
    await waitFor(() => resumers.every((r) => r.lastOffset() >= last), {
        timeout: ms(60000),
        interval: 50,
        what: `every subscriber at offset ${last} (behind: ${resumers.filter((r) => r.lastOffset() < last).length})`,
    });
    const contents = streamContents(resumers, publisher);
    // Only a publish interrupted by a node's death may be in doubt (test c), one at a time.
    assert.ok(contents.size - publisher.accepted.size <= publisher.inDoubt.size);
    for (const r of resumers) {
        const parts = r.messageParts();
        // What came before the first subscribe's position is not this subscriber's business.
        assertExactlyOnce(parts, r.start.offset + 1, last, contents, r.name);
        for (const m of parts.flat()) assert.equal(m.epoch, publisher.epoch, `${r.name}: one epoch throughout`);
    }
}

async function closeAll(resumers) {
    await mapLimit(resumers, 100, async (r) => {
        try {
            await r.client?.close();
        } catch {
            // already gone
        }
    });
}

describe(`${SUBSCRIBERS} resumable subscribers`, { timeout: ms(240000) }, () => {
    test('(a) every connection cut and re-opened while a publisher keeps publishing: every message once, in order', async () => {
        const hub = await startHub([], { env: { HUB_PWD: PWD } });
        const resumers = Array.from({ length: SUBSCRIBERS }, (_, i) => new Resumer(`a${i}`));
        try {
            await openAll(resumers, () => hub);
            const publisher = new SteadyPublisher(() => [hub], { label: 'a', max: 1000 });
            await waitFor(() => publisher.accepted.size >= 50, { timeout: ms(20000), what: '50 publishes' });
            // Cut everyone at once (a lost network: no close handshake), then come back.
            await mapLimit(resumers, 100, (r) => r.client.cut());
            const atCut = publisher.accepted.size;
            await waitFor(() => publisher.accepted.size >= atCut + 20, { timeout: ms(20000), what: 'publishes while everyone is away' });
            await openAll(resumers, () => hub);
            await morePublishes(publisher, 100);
            const last = await publisher.stop();
            await assertEveryoneHasEverything(resumers, publisher, last);
            assert.ok(resumers.every((r) => r.resumes === 1));
        } finally {
            await closeAll(resumers);
            await hub.stop();
        }
    });

    test('(b) a zero-downtime restart (SIGHUP): every message once, in order, and no connection attempt refused', async () => {
        const { dir, cleanup } = tempDir();
        const pidfile = path.join(dir, 'hub.pid');
        const hub = await startHub(['--pidfile', pidfile], { env: { HUB_PWD: PWD } });
        const resumers = Array.from({ length: SUBSCRIBERS }, (_, i) => new Resumer(`b${i}`));
        let newPid = null;
        // Connection attempts all through the restart: each must be accepted (never refused
        // or reset before the server could answer).
        const probe = { attempts: 0, refused: [], stop: false };
        const prober = (async () => {
            while (!probe.stop) {
                ++probe.attempts;
                await new Promise((resolve) => {
                    const socket = net.connect({ host: HOST, port: hub.port });
                    socket.once('connect', () => { socket.destroy(); resolve(); });
                    socket.once('error', (err) => { probe.refused.push(err.code); resolve(); });
                });
            }
        })();
        try {
            await openAll(resumers, () => hub);
            const oldPid = Number(readFileSync(pidfile, 'utf8'));
            assert.equal(oldPid, hub.child.pid);
            const publisher = new SteadyPublisher(() => [hub], { label: 'b', max: 1000 });
            await waitFor(() => publisher.accepted.size >= 50, { timeout: ms(20000), what: '50 publishes' });
            process.kill(oldPid, 'SIGHUP');
            // The old process closes every subscriber with 1012; each resumes on the new one.
            await waitFor(() => resumers.every((r) => r.closes.length >= 1), { timeout: ms(30000), interval: 20, what: 'every subscriber told of the restart' });
            for (const r of resumers) assert.equal(r.closes[0].code, 1012, `${r.name}: ${JSON.stringify(r.closes[0])}`);
            await openAll(resumers, () => hub);
            await waitFor(() => {
                const pid = existsSync(pidfile) ? Number(readFileSync(pidfile, 'utf8')) : 0;
                if (pid && pid !== oldPid) newPid = pid;
                return newPid !== null;
            }, { timeout: ms(20000), what: 'the new pid in the pidfile' });
            await morePublishes(publisher, 100);
            const last = await publisher.stop();
            await assertEveryoneHasEverything(resumers, publisher, last);
            const exit = await withTimeout(hub.exited, ms(30000), 'the old process to exit');
            assert.equal(exit.code, 0, `old process: ${JSON.stringify(exit)}\n${hub.stderrText()}`);
            probe.stop = true;
            await prober;
            assert.ok(probe.attempts > 10, `only ${probe.attempts} probe connections`);
            assert.deepEqual(probe.refused, [], `${probe.refused.length} of ${probe.attempts} connection attempts failed`);
            assert.ok((await metrics(hub)).hub_bus_connected !== undefined, 'the new process answers /metrics');
        } finally {
            probe.stop = true;
            await prober;
            await closeAll(resumers);
            if (newPid) {
                try {
                    process.kill(newPid, 'SIGTERM');
                } catch {
                    // gone
                }
                await waitFor(() => { try { process.kill(newPid, 0); return false; } catch { return true; } }, { timeout: ms(15000), what: 'the new process to exit' });
            }
            if (hub.exit === null) await hub.stop();
            cleanup();
        }
    });

    test('(c) one of two Redis nodes killed: its subscribers resume on the other; every message once, in order', async () => {
        const redis = await startRedis();
        const nodes = [];
        const resumers = Array.from({ length: SUBSCRIBERS }, (_, i) => new Resumer(`c${i}`));
        try {
            for (let i = 0; i < 2; ++i) nodes.push(await startHub(['--redis', redis.url], { env: { HUB_PWD: PWD } }));
            for (const node of nodes) await waitFor(async () => (await metrics(node)).hub_bus_connected === 1, { what: 'the node on Redis' });
            const [a, b] = nodes;
            // Half on each node; the publisher posts to both in turn, and to whichever lives.
            await openAll(resumers, (i) => (i % 2 ? b : a));
            let turn = 0;
            const publisher = new SteadyPublisher(() => (++turn % 2 ? [a, b] : [b, a]).filter((n) => n.exit === null), { label: 'c', max: 1000 });
            await waitFor(() => publisher.accepted.size >= 50, { timeout: ms(20000), what: '50 publishes' });
            a.child.kill('SIGKILL');
            await withTimeout(a.exited, ms(10000), 'node A to die');
            const orphans = resumers.filter((_, i) => i % 2 === 0);
            await waitFor(() => orphans.every((r) => r.closes.length >= 1), { timeout: ms(10000), what: "node A's subscribers to notice" });
            // Messages they miss while away must come from history (Redis), on node B.
            const atKill = publisher.accepted.size;
            await waitFor(() => publisher.accepted.size >= atKill + 20, { timeout: ms(20000), what: 'publishes while they are away' });
            await openAll(orphans, () => b);
            await morePublishes(publisher, 100);
            const last = await publisher.stop();
            await assertEveryoneHasEverything(resumers, publisher, last);
            assert.ok(orphans.every((r) => r.resumes === 1));
        } finally {
            await closeAll(resumers);
            for (const node of nodes) if (node.exit === null) await node.stop();
            await redis.stop();
        }
    });
});
