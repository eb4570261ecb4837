// Resumable streams on two websock-hub nodes sharing one redis-server (./redis.mjs): offsets
// come from Redis, so a subscriber cut off one node resumes on the other with every message
// once and in order, while publishes keep arriving on both nodes; a Redis that lost its data
// means a new epoch: a live subscriber gets a reset, and a resume from the old one is told.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startHub, metrics, request, ms, waitFor, mapLimit } from './hub_helpers.mjs';
import { startRedis } from './redis.mjs';
import { StreamClient, publishStream, assertExactlyOnce } from './streams_harness.mjs';

const PWD = 'streams-redis-pwd';

describe('streams on two nodes through Redis', () => {
    let redis;
    let nodes = [];
    let skip = '';
    before(async () => {
        redis = await startRedis();
        for (let i = 0; i < 2; ++i) nodes.push(await startHub(['--redis', redis.url], { env: { HUB_PWD: PWD } }));
        for (const node of nodes) await waitFor(async () => (await metrics(node)).hub_bus_connected === 1, { what: 'the node on Redis' });
        const probe = await publishStream(nodes[0], 'probe', 'x', { pwd: PWD });
        if (probe.status === 503 && /no stream history/.test(probe.body)) skip = 'this RedisBus keeps no stream history yet';
        else assert.equal(probe.status, 201, probe.body);
    });
    after(async () => {
        for (const node of nodes) await node.stop();
        await redis?.stop();
    });

    test('a subscriber cut off node A resumes on node B: every message once, in order, with publishes on both', { timeout: ms(60000) }, async (t) => {
        if (skip) return t.skip(skip);
        const channel = 'two-nodes';
        const total = 300;
        const onA = await StreamClient.open(nodes[0]);
        assert.equal((await onA.subscribe(channel)).type, 'subscribed');
        let failure;
        // Publishers on both nodes at once: one order for all, from Redis.
        const publishers = nodes.map((node, p) =>
            (async () => {
                for (let i = 0; i < total / 2; i++) {
                    const res = await publishStream(node, channel, `p${p}-${i}`, { pwd: PWD });
                    if (res.status !== 201) failure ??= `node ${p} publish ${i}: ${res.status} ${res.body}`;
                }
            })(),
        );
        await onA.waitOffset(channel, 60, { timeout: ms(20000) });
        await onA.cut();
        const last = onA.messages(channel).at(-1);
        const onB = await StreamClient.open(nodes[1]);
        try {
            const answer = await onB.subscribe(channel, { since: { epoch: last.epoch, offset: last.offset } });
            assert.equal(answer.recovered, true, JSON.stringify(answer));
            assert.equal(answer.epoch, last.epoch, 'both nodes share the epoch');
            await Promise.all(publishers);
            assert.equal(failure, undefined);
            await onB.waitOffset(channel, total, { timeout: ms(20000) });
            assertExactlyOnce([onA.messages(channel), onB.messages(channel)], 1, total);
            // Each publisher's messages in its own order.
            for (const p of [0, 1]) {
                const mine = [...onA.messages(channel), ...onB.messages(channel)].map((m) => m.data).filter((d) => d.startsWith(`p${p}-`));
                assert.deepEqual(mine, Array.from({ length: total / 2 }, (_, i) => `p${p}-${i}`));
            }
        } finally {
            await onB.close();
        }
    });

    test('both nodes give the same position, and 50 subscribers resume across nodes at once', { timeout: ms(60000) }, async (t) => {
        if (skip) return t.skip(skip);
        const channel = 'crowd-two-nodes';
        const clients = await mapLimit(Array.from({ length: 50 }, (_, i) => i), 25, async (i) => {
            const c = await StreamClient.open(nodes[i % 2]);
            await c.subscribe(channel);
            return c;
        });
        for (let i = 0; i < 10; i++) assert.equal((await publishStream(nodes[i % 2], channel, `a-${i}`, { pwd: PWD })).status, 201);
        await Promise.all(clients.map((c) => c.waitOffset(channel, 10)));
        await Promise.all(clients.map((c) => c.cut()));
        for (let i = 0; i < 10; i++) assert.equal((await publishStream(nodes[i % 2], channel, `b-${i}`, { pwd: PWD })).status, 201);
        const positions = await Promise.all(nodes.map(async (n) => JSON.parse((await request(n, { path: `/streams/${channel}` })).body)));
        assert.deepEqual(positions[0], positions[1]);
        assert.equal(positions[0].offset, 20);
        const resumed = await mapLimit(clients, 25, async (first, i) => {
            const last = first.messages(channel).at(-1);
            const c = await StreamClient.open(nodes[(i + 1) % 2]);  // the other node
            assert.equal((await c.subscribe(channel, { since: { epoch: last.epoch, offset: last.offset } })).recovered, true);
            return c;
        });
        try {
            await Promise.all(resumed.map((c) => c.waitOffset(channel, 20)));
            clients.forEach((first, i) => assertExactlyOnce([first.messages(channel), resumed[i].messages(channel)], 1, 20, undefined, `subscriber ${i}`));
        } finally {
            await Promise.all(resumed.map((c) => c.close()));
        }
    });

    test('Redis lost its data: a live subscriber gets a reset, a resume from the old epoch is told', { timeout: ms(30000) }, async (t) => {
        if (skip) return t.skip(skip);
        const channel = 'flushed';
        const live = await StreamClient.open(nodes[0]);
        try {
            await live.subscribe(channel);
            for (let i = 0; i < 3; i++) assert.equal((await publishStream(nodes[1], channel, `old-${i}`, { pwd: PWD })).status, 201);
            await live.waitOffset(channel, 3);
            const oldEpoch = live.messages(channel)[0].epoch;
            assert.match(await redis.command(['FLUSHALL']), /^\+OK/);
            let first;
            await waitFor(async () => {
                first = await publishStream(nodes[1], channel, 'new-0', { pwd: PWD });
                return first.status === 201;
            }, { what: 'a publish after the flush' });
            assert.notEqual(first.json.epoch, oldEpoch, 'a new epoch');
            assert.ok(first.json.offset >= 1, 'offsets start again in the new epoch');
            await live.waitFrame((f) => f.type === 'message' && f.channel === channel && f.epoch === first.json.epoch, { what: 'the new epoch live' });
            const reset = live.frames.find((f) => f.type === 'reset');
            assert.deepEqual(reset, {
                type: 'reset', channel, epoch: first.json.epoch, offset: 0,
                reason: `epoch changed (was "${oldEpoch}", now "${first.json.epoch}"): history was lost`,
            });
            assert.ok(live.frames.indexOf(reset) < live.frames.findIndex((f) => f.epoch === first.json.epoch && f.type === 'message'), 'the reset comes first');

            const resumed = await StreamClient.open(nodes[1]);
            try {
                const answer = await resumed.subscribe(channel, { since: { epoch: oldEpoch, offset: 3 } });
                assert.equal(answer.recovered, false);
                assert.equal(answer.reason, `epoch changed (was "${oldEpoch}", now "${first.json.epoch}"): history was lost`);
            } finally {
                await resumed.close();
            }
        } finally {
            await live.close();
        }
    });

    // Last: it takes Redis away.
    test('Redis down: a publish is refused with 503, a subscribe is refused with history_unavailable', { timeout: ms(30000) }, async (t) => {
        if (skip) return t.skip(skip);
        await redis.kill();
        await waitFor(async () => (await metrics(nodes[0])).hub_bus_connected === 0, { what: 'the node to notice' });
        const res = await publishStream(nodes[0], 'down', 'x', { pwd: PWD });
        assert.equal(res.status, 503);
        assert.equal(res.json.error, 'unavailable');
        assert.equal(res.headers['retry-after'], '1');
        const client = await StreamClient.open(nodes[0]);
        try {
            const answer = await client.subscribe('down', { timeout: ms(15000) });
            assert.equal(answer.type, 'error');
            assert.equal(answer.error, 'history_unavailable');
            assert.equal(answer.op, 'subscribe');
            assert.equal(client.ws.readyState, 1, 'the connection stays');
        } finally {
            await client.close();
        }
    });
});
