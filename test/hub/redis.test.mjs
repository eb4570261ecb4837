// Several websock-hub nodes sharing one redis-server of the test's own (./redis.mjs): every
// subscriber on every node gets every message published on any node, in order, none lost,
// none doubled; with Redis gone, publishes answer 503 and /metrics says so; with Redis back
// on the same port, delivery resumes.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startHub, publish, metrics, subscribe, nextMessage, waitInbox, ms, waitFor, closeWs } from './hub_helpers.mjs';
import { startRedis } from './redis.mjs';

const PWD = 'redis-test-pwd';

async function startNodes(redis, count) {
    const nodes = [];
    for (let i = 0; i < count; ++i) nodes.push(await startHub(['--redis', redis.url], { env: { HUB_PWD: PWD } }));
    // A node reads the stream from when its bus connected: make sure every one is on it.
    for (const node of nodes) await waitFor(async () => (await metrics(node)).hub_bus_connected === 1, { what: 'the node on Redis' });
    return nodes;
}

async function stopNodes(nodes) {
    for (const node of nodes) await node.stop();
}

/** Subscribers on every node, `perNode` each, on `channel`. */
async function subscribeAll(nodes, channel, perNode) {
    const clients = [];
    for (const node of nodes) for (let i = 0; i < perNode; ++i) clients.push(await subscribe(node, channel));
    return clients;
}

/**
 * Publishers, one per node, each posting `count` messages "<name>:<n>" one after the other
 * (the next after the previous answered), all publishers at once. Resolves their statuses.
 */
async function publishFromEach(nodes, channel, count, { names = nodes.map((_, i) => `P${i}`), from = 0 } = {}) {
    return Promise.all(
        nodes.map(async (node, p) => {
            const statuses = [];
            for (let n = from; n < from + count; ++n) {
                const res = await publish(node, channel, `${names[p]}:${n}`, { pwd: PWD });
                statuses.push(res.status);
            }
            return statuses;
        }),
    );
}

/** Every "<publisher>:<n>" exactly once, each publisher's n ascending from `from`. */
function assertExactlyOnceInOrder(texts, publishers, count, from = 0, who = 'subscriber') {
    const next = Object.fromEntries(publishers.map((p) => [p, from]));
    for (const text of texts) {
        const [publisher, n] = text.split(':');
        assert.ok(publisher in next, `${who}: unexpected message ${text}`);
        assert.equal(Number(n), next[publisher], `${who}: ${publisher}'s messages out of order, lost or doubled at ${text}`);
        ++next[publisher];
    }
    for (const p of publishers) assert.equal(next[p], from + count, `${who}: ${p} delivered ${next[p] - from} of ${count}`);
}

const inboxTexts = (ws) => ws.inbox.map((m) => m.data.toString('utf8'));

for (const nodeCount of [2, 3]) {
    describe(`${nodeCount} hub nodes through one Redis`, () => {
        let redis;
        let nodes = [];
        before(async () => {
            redis = await startRedis();
            nodes = await startNodes(redis, nodeCount);
        });
        after(async () => {
            try {
                await stopNodes(nodes);
            } finally {
                await redis.stop();
            }
        });

        test('every subscriber on every node gets every message of every node, in order, exactly once', async () => {
            const perPublisher = 150;
            const clients = await subscribeAll(nodes, 'room', 3);
            const other = await subscribe(nodes[nodes.length - 1], 'another-room');
            try {
                const statuses = await publishFromEach(nodes, 'room', perPublisher);
                for (const s of statuses) assert.deepEqual(s, new Array(perPublisher).fill(201));
                const total = perPublisher * nodeCount;
                await waitInbox(clients, total, { what: 'messages from every node' });
                const publishers = nodes.map((_, i) => `P${i}`);
                const first = inboxTexts(clients[0]);
                clients.forEach((ws, i) => {
                    const texts = inboxTexts(ws);
                    assert.equal(texts.length, total, `subscriber ${i}: no extra messages`);
                    assertExactlyOnceInOrder(texts, publishers, perPublisher, 0, `subscriber ${i}`);
                    // One stream, one order: every subscriber on every node saw the same sequence.
                    assert.deepEqual(texts, first, `subscriber ${i} saw the same order as subscriber 0`);
                });
                // A subscriber of another channel got none of it: the next thing it sees is its own marker.
                assert.equal((await publish(nodes[0], 'another-room', 'marker', { pwd: PWD })).status, 201);
                assert.equal((await nextMessage(other, 'the marker')).text, 'marker');
                assert.equal(other.inbox.length, 0);
            } finally {
                await Promise.all([...clients, other].map((ws) => closeWs(ws)));
            }
        });

        test('a bytes package published on one node reaches the other nodes unchanged', async () => {
            const clients = await subscribeAll(nodes.slice(1), 'binary', 1);
            try {
                const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
                const res = await publish(nodes[0], 'binary', bytes, { pwd: PWD, type: 'bytes' });
                assert.equal(res.status, 201);
                for (const ws of clients) {
                    const message = await nextMessage(ws, 'the bytes package');
                    assert.equal(message.isBinary, true);
                    assert.ok(message.data.equals(bytes), 'the same 256 bytes');
                }
            } finally {
                await Promise.all(clients.map((ws) => closeWs(ws)));
            }
        });

        test('/metrics on each node shows the Redis bus connected', async () => {
            for (const node of nodes) {
                const values = await metrics(node);
                assert.equal(values['hub_bus_info{kind="redis"}'], 1);
                assert.equal(values.hub_bus_connected, 1);
                assert.ok(values.hub_bus_published_total > 0 || node !== nodes[0], 'node 0 published');
                assert.ok(values.hub_bus_received_total >= nodeCount * 150, 'each node received every message');
            }
        });
    });
}

describe('Redis stopped and started again in the middle of a run', () => {
    let redis;
    let nodes = [];
    before(async () => {
        redis = await startRedis();
        nodes = await startNodes(redis, 2);
    });
    after(async () => {
        try {
            await stopNodes(nodes);
        } finally {
            await redis.stop();
        }
    });

    test('503 while Redis is away, /metrics and the log say so, delivery resumes when it is back', async () => {
        const clients = await subscribeAll(nodes, 'outage', 2);
        try {
            const statusesBefore = await publishFromEach(nodes, 'outage', 20, { names: ['A', 'B'] });
            for (const s of statusesBefore) assert.deepEqual(s, new Array(20).fill(201));
            await waitInbox(clients, 40, { what: 'messages before the outage' });

            await redis.kill();
            for (const node of nodes) {
                await waitFor(async () => (await metrics(node)).hub_bus_connected === 0, { timeout: ms(5000), what: '/metrics to show Redis down' });
            }
            for (const node of nodes) {
                const res = await publish(node, 'outage', 'lost', { pwd: PWD });
                assert.equal(res.status, 503, `a publish while Redis is down: 503, not ${res.status} ${res.body}`);
                assert.match(res.body, /redis unavailable/i);
                assert.ok((await metrics(node)).hub_bus_failed_total >= 1);
                await node.waitStderr(/redis/i);
            }
            for (const node of nodes) node.assertAlive('while Redis is down');

            await redis.start();
            for (const node of nodes) {
                await waitFor(async () => (await metrics(node)).hub_bus_connected === 1, { timeout: ms(10000), what: '/metrics to show Redis back' });
                assert.ok((await metrics(node)).hub_bus_reconnects_total >= 1);
            }
            const statusesAfter = await publishFromEach(nodes, 'outage', 20, { names: ['A', 'B'], from: 20 });
            for (const s of statusesAfter) assert.deepEqual(s, new Array(20).fill(201));
            await waitInbox(clients, 80, { what: 'messages after Redis came back' });
            clients.forEach((ws, i) => {
                const texts = inboxTexts(ws);
                assert.equal(texts.length, 80, `subscriber ${i}: nothing extra (no 'lost', nothing twice)`);
                assertExactlyOnceInOrder(texts, ['A', 'B'], 40, 0, `subscriber ${i}`);
            });
        } finally {
            await Promise.all(clients.map((ws) => closeWs(ws)));
        }
    });
});
