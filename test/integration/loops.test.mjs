// Several event loops (ServerOptions::event_loops): connections spread evenly, each client's
// callbacks stay on one loop, messages between loops keep their order, and stop() ends every
// loop. These tests pick the engine themselves (the event loop, 3 loops), so they run in the
// event-loop pass of the integration suite only.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, openWs, wsEcho, closeWs, nextWsMessage, mapLimit, waitFor, withTimeout, once, ms, MiB } from './helpers.mjs';

const LOOPS = 3;
const runs = process.env.WEBSOCK_ENGINE === 'event';

async function withLoops(fn) {
    const fx = await startServer('fixture_server', ['--event-loops', String(LOOPS)], {
        env: { WEBSOCK_ENGINE: 'event' },
    });
    try {
        await fn(fx);
    } finally {
        await fx.stop({ timeout: ms(10000) });
    }
    const line = await withTimeout(fx.waitLine(/^destructed /), ms(2000), 'the destructed line');
    const m = /opens=(\d+) closes=(\d+)/.exec(line);
    assert.ok(m && m[1] === m[2], `on_connection_close once per open: ${line}`);
}

/** Every text message `ws` (from openWs) has received so far, as strings. */
const textsOf = (ws) => ws.inbox.filter((m) => !m.isBinary).map((m) => m.data.toString());

async function ask(ws, command) {
    ws.send(command);
    return (await nextWsMessage(ws, { what: `the answer to ${command}` })).data.toString();
}

describe('event loops: several loops in one server', { skip: !runs && 'event-loop pass only' }, () => {
    it(`spreads connections evenly over ${LOOPS} loops, and a client's callbacks stay on its loop`, () =>
        withLoops(async (fx) => {
            const url = `ws://${fx.host}:${fx.port}/`;
            const clients = await mapLimit(Array.from({ length: 10 * LOOPS }), 10, () => openWs(url));
            const threadOf = await Promise.all(clients.map((ws) => ask(ws, 'thread')));
            const perThread = new Map();
            for (const thread of threadOf) perThread.set(thread, (perThread.get(thread) || 0) + 1);
            assert.equal(perThread.size, LOOPS, `clients ran on ${[...perThread.keys()].join(', ')}`);
            for (const [thread, count] of perThread) assert.equal(count, 10, `${thread} runs ${count} of ${clients.length} clients`);
            // the same client, asked again after other traffic, answers from the same thread
            await Promise.all(clients.map((ws, i) => wsEcho(ws, `traffic ${i}`)));
            const again = await Promise.all(clients.map((ws) => ask(ws, 'thread')));
            assert.deepEqual(again, threadOf);
            await mapLimit(clients, 10, (ws) => closeWs(ws));
        }));

    it('messages from clients on other loops arrive in the order each sender sent them', () =>
        withLoops(async (fx) => {
            const url = `ws://${fx.host}:${fx.port}/`;
            const clients = await mapLimit(Array.from({ length: 4 * LOOPS }), 10, () => openWs(url));
            // one sender on each loop
            const threads = await Promise.all(clients.map((ws) => ask(ws, 'thread')));
            const senderIndex = [...new Set(threads)].map((thread) => threads.indexOf(thread));
            assert.equal(senderIndex.length, LOOPS);
            const senders = senderIndex.map((i) => clients[i]);
            for (const ws of clients) ws.inbox.length = 0;
            const perSender = 200;
            for (const [s, ws] of senders.entries())
                for (let n = 0; n < perSender; ++n) ws.send(`broadcast:${s}:${n}`);
            const expectedAt = (i) => (senderIndex.includes(i) ? LOOPS - 1 : LOOPS) * perSender;
            await waitFor(
                () => clients.every((ws, i) => textsOf(ws).filter((m) => !m.startsWith('broadcast-sent')).length >= expectedAt(i)),
                { timeout: ms(15000), what: 'every broadcast at every client' },
            );
            for (const [i, ws] of clients.entries()) {
                const next = new Array(LOOPS).fill(0);
                for (const message of textsOf(ws)) {
                    if (message.startsWith('broadcast-sent')) continue;
                    const [s, n] = message.split(':').map(Number);
                    assert.notEqual(senderIndex[s], i, `client ${i} got its own broadcast`);
                    assert.equal(n, next[s], `client ${i}: from sender ${s}, ${n} came where ${next[s]} was due`);
                    next[s]++;
                }
            }
            await mapLimit(clients, 10, (ws) => closeWs(ws));
        }));

    it('echoes 1 MiB messages on every loop at once', () =>
        withLoops(async (fx) => {
            const url = `ws://${fx.host}:${fx.port}/`;
            const clients = await mapLimit(Array.from({ length: 2 * LOOPS }), 10, () => openWs(url));
            await Promise.all(
                clients.map((ws, i) => {
                    const payload = Buffer.alloc(MiB, i + 1);
                    return wsEcho(ws, payload, { timeout: ms(15000) });
                }),
            );
            await mapLimit(clients, 10, (ws) => closeWs(ws));
        }));

    it('stop() closes the clients of every loop with 1001 and ends every loop', () =>
        withLoops(async (fx) => {
            const url = `ws://${fx.host}:${fx.port}/`;
            const clients = await mapLimit(Array.from({ length: 3 * LOOPS }), 10, () => openWs(url));
            const closed = clients.map((ws) => once(ws, 'close', { timeout: ms(10000), what: 'the close at stop()' }));
            clients[0].send('stop');
            const codes = (await Promise.all(closed)).map(([code]) => code);
            assert.deepEqual(codes, new Array(clients.length).fill(1001));
            await fx.waitExit(ms(10000));
        }));
});
