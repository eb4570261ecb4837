// The server's own behaviours, through test/integration/fixture_server (a test program on
// the public API that takes text commands, see its header comment): concurrent sends,
// broadcast, callback exceptions, limits, liveness, timeouts, shutdown, slow clients.
// Every test starts its own fixture process with the options it needs, and ends it checking
// the exit status and that on_connection_close ran once per on_connection_open.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
    OP,
    ms,
    startServer,
    openWs,
    wsEcho,
    closeWs,
    nextWsMessage,
    assertServerServes,
    RawClient,
    rawHttp,
    upgradeRequest,
    textFrame,
    closeFrame,
    frameHeader,
    maskBytes,
    patternBytes,
    mapLimit,
    openFileLimit,
    waitFor,
    withTimeout,
    once,
    describeFrame,
    parseClose,
    HOST,
} from './helpers.mjs';
import net from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';

// The sum of the voluntary context switches of the threads of `pid` (/proc/PID/task/N/status).
function wakeUps(pid) {
    let total = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
        try {
            const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
            total += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)[1]);
        } catch {
            // the thread ended meanwhile
        }
    }
    return total;
}

async function startFixture(args = []) {
    return startServer('fixture_server', args);
}

/** Parse the `destructed opens=.. closes=..` line; assert opens == closes. */
async function assertDestructed(fx, { opens } = {}) {
    const line = await withTimeout(fx.waitLine(/^destructed /), ms(2000), 'the destructed line');
    const m = /opens=(\d+) closes=(\d+)/.exec(line);
    assert.ok(m, `cannot parse '${line}'`);
    const counts = { opens: Number(m[1]), closes: Number(m[2]) };
    assert.equal(counts.closes, counts.opens, `on_connection_close once per open: ${line}`);
    if (opens !== undefined) assert.equal(counts.opens, opens, `opens: ${line}`);
    return counts;
}

/** Stop the fixture with SIGTERM; exit 0, destructed line, opens == closes. */
async function stopFixture(fx, expect = {}) {
    await fx.stop({ timeout: ms(10000) });
    return assertDestructed(fx, expect);
}

/** Run `fn(fx)` against a fresh fixture and always stop it (asserting a clean end). */
async function withFixture(args, fn, expect = {}) {
    const fx = await startFixture(args);
    let failed = false;
    try {
        await fn(fx);
    } catch (err) {
        failed = true;
        throw err;
    } finally {
        if (failed) {
            // report the test's own failure, not a secondary one from stopping
            await fx.stop({ timeout: ms(2000) }).catch(() => fx.kill());
        }
    }
    await stopFixture(fx, expect);
}

/** Send a text command to a ws client and return the text of the next message. */
async function ask(ws, command, opts = {}) {
    ws.send(command);
    const reply = await nextWsMessage(ws, { what: `reply to '${command}'`, ...opts });
    assert.equal(reply.isBinary, false, `reply to '${command}' is text`);
    return reply.data.toString('utf8');
}

const padding = (t, j, size) => String.fromCharCode(97 + ((t * 7 + j) % 26)).repeat(size);

/**
 * Collect the messages of a `threads:<n>:<m>:<pad>` command until threads-done; assert every
 * message is intact, none is lost or duplicated, and each thread's sequence is in order.
 */
async function checkThreads(ws, n, m, pad, { timeout = ms(8000) } = {}) {
    ws.send(`threads:${n}:${m}:${pad}`);
    const next = new Array(n).fill(0);
    let received = 0;
    const deadline = Date.now() + timeout;
    for (;;) {
        const left = deadline - Date.now();
        assert.ok(left > 0, `threads:${n}:${m}: only ${received} of ${n * m} messages within ${timeout} ms`);
        const msg = await nextWsMessage(ws, { timeout: left, what: `message ${received + 1} of ${n * m}` });
        const text = msg.data.toString('utf8');
        if (text.startsWith('threads-done:')) {
            assert.equal(text, `threads-done:${n * m}:0:0`, 'every send was queued');
            break;
        }
        assert.equal(msg.isBinary, false);
        const match = /^t(\d+):(\d+):([a-z]*)$/.exec(text);
        assert.ok(match, `an intact message, got ${JSON.stringify(text.slice(0, 80))}`);
        const t = Number(match[1]);
        const j = Number(match[2]);
        assert.ok(t < n, `thread ${t}`);
        assert.equal(j, next[t], `thread ${t}: message ${j} arrived when ${next[t]} was due (order kept, none lost)`);
        assert.equal(match[3], padding(t, j, pad), `padding of t${t}:${j}`);
        next[t]++;
        received++;
    }
    assert.equal(received, n * m, 'all messages arrived before threads-done');
    assert.deepEqual(next, new Array(n).fill(m));
}

// ---------------------------------------------------------------------------------------
describe('server: sending from many threads', () => {
    it('32 threads send to one client at once: all arrive, intact, each thread in order', { timeout: ms(60000) }, () =>
        withFixture([], async (fx) => {
            const ws = await openWs(fx.url);
            await checkThreads(ws, 32, 200, 16);
            // and the connection still works both ways
            await wsEcho(ws, 'after the threads');
            await closeWs(ws);
        }));

    it('32 threads sending 4 KiB messages (writes that do not fit the socket at once)', { timeout: ms(60000) }, () =>
        withFixture([], async (fx) => {
            const ws = await openWs(fx.url);
            await checkThreads(ws, 32, 40, 4000);
            await closeWs(ws);
        }));

    it('4 clients each receive from 8 threads at the same time', { timeout: ms(60000) }, () =>
        withFixture([], async (fx) => {
            const clients = await Promise.all(Array.from({ length: 4 }, () => openWs(fx.url)));
            await Promise.all(clients.map((ws) => checkThreads(ws, 8, 300, 50)));
            await Promise.all(clients.map((ws) => closeWs(ws)));
        }));
});

// ---------------------------------------------------------------------------------------
describe('server: broadcast, commands from callbacks', () => {
    it('broadcast reaches every other client once, and not the sender', () =>
        withFixture([], async (fx) => {
            const clients = await Promise.all(Array.from({ length: 10 }, () => openWs(fx.url)));
            // the sender's next message is the broadcast's result: had the broadcast been sent
            // to it too, it would have been queued before that reply
            assert.equal(await ask(clients[0], 'broadcast:hello, everyone'), 'broadcast-sent:9');
            for (const [i, ws] of clients.slice(1).entries()) {
                const msg = await nextWsMessage(ws, { what: `broadcast at client ${i + 1}` });
                assert.equal(msg.data.toString(), 'hello, everyone');
                assert.equal(msg.isBinary, false);
            }
            // nothing else arrived anywhere: each client's next reply is its own echo
            await Promise.all(clients.map((ws, i) => wsEcho(ws, `after broadcast ${i}`)));
            await Promise.all(clients.map((ws) => closeWs(ws)));
        }));

    it('count answers client_count()', () =>
        withFixture([], async (fx) => {
            const clients = await Promise.all(Array.from({ length: 5 }, () => openWs(fx.url)));
            assert.equal(await ask(clients[0], 'count'), 'count:5');
            await closeWs(clients[4]);
            await waitFor(async () => (await ask(clients[0], 'count')) === 'count:4', { what: 'count:4 after a close' });
            await Promise.all(clients.slice(0, 4).map((ws) => closeWs(ws)));
        }));

    it('client.close(code, reason) from inside the callback reaches the client', () =>
        withFixture([], async (fx) => {
            const ws = await openWs(fx.url);
            ws.send('close:4001:bye from the server');
            const closed = await withTimeout(ws.closed, ms(5000), 'close 4001');
            assert.deepEqual(closed, { code: 4001, reason: 'bye from the server' });

            // a raw client sees the close frame and then the server closing TCP after our answer
            const c = await RawClient.open(fx.port);
            await c.write(textFrame('close:1000:done'));
            await c.expectCloseFrame(1000);
            await c.write(closeFrame(1000));
            await c.expectEndWithoutFrames();
        }));

    it('client.ping() from the server reaches a ws client', () =>
        withFixture([], async (fx) => {
            const ws = await openWs(fx.url);
            const ping = once(ws, 'ping');
            ws.send('ping:are you there');
            const [payload] = await ping;
            assert.equal(payload.toString(), 'are you there');
            await wsEcho(ws, 'yes');
            await closeWs(ws);
        }));

    it('an exception in a callback goes to on_error; the client and server keep working', () =>
        withFixture([], async (fx) => {
            const ws = await openWs(fx.url);
            assert.equal(await ask(ws, 'stats'), 'errors:0');
            ws.send('throw');
            assert.equal(await ask(ws, 'stats'), 'errors:1', 'on_error saw the exception before the next message');
            assert.equal(ws.readyState, 1, 'the client that threw is still open');
            await wsEcho(ws, 'still here');
            ws.send('throw');
            ws.send('throw');
            assert.equal(await ask(ws, 'stats'), 'errors:3');
            const other = await openWs(fx.url);
            await wsEcho(other, 'another client');
            assert.equal(await ask(other, 'stats'), 'errors:3');
            await closeWs(other);
            await closeWs(ws);
        }));
});

// ---------------------------------------------------------------------------------------
describe('server: limits and timeouts', () => {
    it('max clients: the one past the limit gets HTTP 503; a place frees up after a close', () =>
        withFixture(['--max-clients', '3'], async (fx) => {
            const clients = await Promise.all(Array.from({ length: 3 }, () => openWs(fx.url)));
            const res = await rawHttp(fx.port, upgradeRequest({ port: fx.port }));
            assert.equal(res.status, 503, res.head);
            // the refused one did not disturb the others
            await Promise.all(clients.map((ws, i) => wsEcho(ws, `client ${i}`)));
            await closeWs(clients[2]);
            await waitFor(async () => (await ask(clients[0], 'count')) === 'count:2', { what: 'count:2 after a close' });
            const again = await openWs(fx.url);
            await wsEcho(again, 'got the free place');
            await Promise.all([again, clients[0], clients[1]].map((ws) => closeWs(ws)));
        }));

    it('idle ping: a raw client that never answers pings is dropped; a ws client (auto pong) stays', { timeout: ms(30000) }, () =>
        withFixture(['--idle-ping-ms', '300', '--pong-timeout-ms', '300'], async (fx) => {
            const ws = await openWs(fx.url);
            let wsPings = 0;
            ws.on('ping', () => wsPings++);
            const raw = await RawClient.open(fx.port);
            const started = Date.now();
            await waitFor(() => raw.frames.some((f) => f.opcode === OP.PING), { timeout: ms(3000), what: 'a ping to the silent raw client' });
            await raw.waitEnd({ timeout: ms(3000), what: 'the silent client to be dropped' });
            const elapsed = Date.now() - started;
            assert.ok(elapsed >= 500, `dropped after ${elapsed} ms: not before idle (300) + pong timeout (300)`);
            const unexpected = raw.frames.filter((f) => f.opcode !== OP.PING && f.opcode !== OP.CLOSE);
            assert.deepEqual(unexpected.map(describeFrame), [], 'only pings (and maybe a close) to the silent client');
            // the ws client has answered several pings meanwhile and is still served
            await waitFor(() => wsPings >= 3, { timeout: ms(5000), what: 'the ws client to get 3 pings' });
            assert.equal(ws.readyState, 1, 'the ws client that answers pings stays open');
            await wsEcho(ws, 'still alive');
            await closeWs(ws);
        }));

    it('descriptors per connection: one on the event loop (no eventfd per client), at most two per client thread', () =>
        withFixture([], async (fx) => {
            const descriptors = () => readdirSync(`/proc/${fx.child.pid}/fd`).length;
            // A first client served: the engine runs, with whatever descriptors it keeps for
            // itself (the event loop's epoll set and waker are made when serving starts).
            const first = await openWs(fx.url);
            await wsEcho(first, 'first');
            const before = descriptors();
            const clients = await mapLimit(Array.from({ length: 100 }), 50, () => openWs(fx.url));
            await Promise.all(clients.map((ws, i) => wsEcho(ws, `client ${i}`)));
            const each = (descriptors() - before) / clients.length;
            const limit = process.env.WEBSOCK_ENGINE === 'event' ? 1 : 2;
            assert.ok(each >= 1 && each <= limit, `${each} descriptors per connection (at most ${limit})`);
            await mapLimit(clients, 50, (ws) => closeWs(ws));
            await waitFor(() => descriptors() === before, { what: 'the descriptors to return to the baseline' });
            await closeWs(first);
        }));

    it('idle clients cost no wake-ups: with 200 open connections and no deadline near, the server sleeps', () =>
        withFixture([], async (fx) => {
            // The voluntary context switches of the server's threads: each is one return from
            // a sleep. The default idle ping is 30 s away, so nothing is due in these windows;
            // a loop that visited its clients on a periodic tick would wake 20 times a second.
            // The first window, before any client, measures what is not ours. Under TSan its
            // background thread, started with the first thread the program makes, wakes every
            // 100 ms (10 a second) once there are client threads: allowed for, since a tick
            // would still show.
            const pid = fx.child.pid;
            const window = 1000;
            const runtimeWakeUps = process.env.WEBSOCK_BUILD === 'tsan' ? 11 : 0;
            const wakeUpsIn = async () => {
                const before = wakeUps(pid);
                await new Promise((resolve) => setTimeout(resolve, window));  // a measuring window, not a wait
                return wakeUps(pid) - before;
            };
            const baseline = await wakeUpsIn();
            const clients = await mapLimit(Array.from({ length: 200 }), 50, () => openWs(fx.url));
            await Promise.all(clients.slice(0, 5).map((ws, i) => wsEcho(ws, `awake ${i}`)));
            // Once quiet for 500 ms, clients give back the buffers they grew: one sweep for all
            // (event loop), one wake-up for each thread that holds large ones (thread per
            // client), once. Let that pass.
            const settling = await wakeUpsIn();
            assert.ok(settling <= 2 * 200 + 20 + runtimeWakeUps, `${settling} wake-ups while the clients went quiet (a tick would make thousands)`);
            const woke = await wakeUpsIn();
            assert.ok(woke - baseline <= 4 + runtimeWakeUps,
                      `the server woke ${woke} times in ${window} ms with 200 idle clients, ${baseline} with none`);
            await Promise.all(clients.slice(0, 5).map((ws, i) => wsEcho(ws, `still served ${i}`)));
            await mapLimit(clients, 50, (ws) => closeWs(ws));
        }));

    it('handshake timeout: half a request, a trickle and silence are all dropped by the deadline', { timeout: ms(30000) }, () =>
        withFixture(['--handshake-timeout-ms', '500'], async (fx) => {
            const timeout = 500;
            const open = (fn) =>
                new Promise((resolve, reject) => {
                    const socket = net.connect({ host: HOST, port: fx.port });
                    const started = Date.now();
                    let timer = null;
                    socket.on('connect', () => {
                        timer = fn(socket);
                    });
                    socket.on('data', () => {}); // a 408 is fine
                    socket.on('error', () => {});
                    socket.on('close', () => {
                        if (timer) clearInterval(timer);
                        resolve(Date.now() - started);
                    });
                    setTimeout(() => {
                        socket.destroy();
                        reject(new Error(`not dropped within ${ms(timeout + 3000)} ms`));
                    }, ms(timeout + 3000)).unref();
                });
            const request = upgradeRequest({ port: fx.port });
            const [half, trickle, silent] = await Promise.all([
                open((s) => {
                    s.write(request.slice(0, request.length / 2));
                    return null;
                }),
                open((s) => {
                    // one byte every 50 ms: each read is quick, the whole request would take seconds
                    let at = 0;
                    return setInterval(() => {
                        if (at < request.length) s.write(request[at++]);
                    }, 50);
                }),
                open(() => null),
            ]);
            for (const [name, elapsed] of Object.entries({ half, trickle, silent }))
                assert.ok(elapsed >= timeout * 0.8, `${name}: dropped after ${elapsed} ms, before the ${timeout} ms deadline`);
            await assertServerServes(fx, 'after handshake timeouts');
        }));

    it('a slow client (stops reading) is cut with 1008 when its queue overflows; another client is still served', { timeout: ms(60000) }, () =>
        withFixture(['--max-queue-bytes', '65536', '--close-timeout-ms', '20000'], async (fx) => {
            const other = await openWs(fx.url);
            const slow = await RawClient.open(fx.port);
            slow.pause();
            await slow.write(textFrame('threads:1:100000:1000'));
            // the server notices the overflow (on_error, QueueFull) ...
            await waitFor(() => fx.stderr.some((l) => /queue/i.test(l)), { timeout: ms(20000), what: 'the queue-full error on stderr' });
            // ... while the other client is served as usual
            await wsEcho(other, 'served while the slow client is stuck', { timeout: ms(5000) });
            // now read: a gap-free prefix of the messages, then close 1008, then the TCP end
            slow.resume();
            let expected = 0;
            for (;;) {
                const f = await slow.nextFrame({ timeout: ms(5000), what: `message t0:${expected} or the close` });
                if (f.opcode === OP.CLOSE) {
                    const c = parseClose(f.payload);
                    assert.equal(c.code, 1008, `close code (reason ${JSON.stringify(c.reason)})`);
                    break;
                }
                assert.equal(f.opcode, OP.TEXT, describeFrame(f));
                const text = f.payload.toString();
                assert.ok(text.startsWith(`t0:${expected}:`), `message ${expected} in order, got ${JSON.stringify(text.slice(0, 30))}`);
                expected++;
            }
            assert.ok(expected < 100000, `cut before all 100000 messages (${expected} arrived)`);
            await slow.write(closeFrame(1008));
            await slow.expectEndWithoutFrames({ timeout: ms(5000) });
            await wsEcho(other, 'served after the slow client was cut');
            await closeWs(other);
        }));

    it("clients that stop reading are cut with 1008 once together they pass the server's outbound budget; one that keeps up is not", { timeout: ms(90000) }, () =>
        // Each queue may hold 64 MiB, far more than the 30 MB each slow client asks for: only
        // the server-wide budget (1 MiB here) can cut them.
        withFixture(['--max-queue-bytes', String(64 << 20), '--max-total-outbound-bytes', String(1 << 20),
                     '--close-timeout-ms', '20000'], async (fx) => {
            const MESSAGES = 30000;
            const other = await openWs(fx.url);
            const slow = [];
            for (let i = 0; i < 3; i++) {
                const c = await RawClient.open(fx.port);
                c.pause();
                await c.write(textFrame(`threads:1:${MESSAGES}:1000`));
                slow.push(c);
            }
            await waitFor(() => fx.stderr.filter((l) => /outbound budget/.test(l)).length >= 3,
                          { timeout: ms(30000), what: 'three budget reports on stderr' });
            // a client that keeps up is served while the slow ones are over the budget
            for (let i = 0; i < 20; i++) await wsEcho(other, `served while others are behind (${i})`, { timeout: ms(5000) });
            for (const [i, c] of slow.entries()) {
                c.resume();
                let expected = 0;
                for (;;) {
                    const f = await c.nextFrame({ timeout: ms(10000), what: `slow client ${i}: message ${expected} or the close` });
                    if (f.opcode === OP.CLOSE) {
                        assert.equal(parseClose(f.payload).code, 1008, `slow client ${i}: close code`);
                        break;
                    }
                    assert.equal(f.opcode, OP.TEXT, describeFrame(f));
                    assert.ok(f.payload.toString().startsWith(`t0:${expected}:`), `slow client ${i}: message ${expected} in order`);
                    expected++;
                }
                assert.ok(expected < MESSAGES, `slow client ${i} cut before all ${MESSAGES} messages (${expected} arrived)`);
                await c.write(closeFrame(1008));
                await c.expectEndWithoutFrames({ timeout: ms(5000) });
            }
            // The budget's count comes back to nothing once they are gone (no bytes leak into it).
            await waitFor(async () => (await ask(other, 'backlog')) === 'backlog:0',
                          { timeout: ms(10000), what: 'the outbound backlog back to 0' });
            await closeWs(other);
        }));

    it("a client whose large message would pass the server's budget for messages in progress gets 1013; the others' messages go through", { timeout: ms(60000) }, () =>
        // Each message may be 16 MiB; the server-wide budget (1 MiB here) is what cuts.
        withFixture(['--max-total-incoming-message-bytes', String(1 << 20)], async (fx) => {
            const KiB = 1024;
            const other = await openWs(fx.url);
            const incoming = async () => Number((await ask(other, 'incoming')).slice('incoming:'.length));
            // A: 600 KiB of a 700 KiB message, then a pause (536 KiB of it count).
            const a = await RawClient.open(fx.port);
            const keyA = Buffer.from([1, 2, 3, 4]);
            const messageA = patternBytes(700 * KiB, 7);
            await a.write(Buffer.concat([frameHeader({ opcode: OP.BINARY, length: messageA.length, maskKey: keyA }),
                                         maskBytes(messageA.subarray(0, 600 * KiB), keyA)]));
            await waitFor(async () => (await incoming()) >= 500 * KiB, { what: "A's message counted" });
            // B: 600 KiB more of an 8 MiB message pass the budget: B is told to try again later.
            const b = await RawClient.open(fx.port);
            const keyB = Buffer.from([5, 6, 7, 8]);
            await b.write(Buffer.concat([frameHeader({ opcode: OP.BINARY, length: 8 << 20, maskKey: keyB }),
                                         maskBytes(Buffer.alloc(600 * KiB, 0x42), keyB)]));
            const closeB = await b.expectFail(1013, { timeout: ms(10000) });
            assert.match(closeB.reason, /busy/, 'the reason says why');
            // A, under the budget on its own, finishes its message and gets it back whole.
            await a.write(maskBytes(messageA.subarray(600 * KiB), keyA, 600 * KiB));
            await a.expectMessage(OP.BINARY, messageA, { timeout: ms(10000) });
            // Nothing stays counted once the messages are done or abandoned.
            await waitFor(async () => (await incoming()) === 0, { what: 'messages in progress back to 0' });
            await wsEcho(other, Buffer.alloc(300 * KiB, 1), { timeout: ms(10000) });
            await a.closeHandshake(1000);
            await closeWs(other);
        }));
});

// ---------------------------------------------------------------------------------------
describe('server: stop', () => {
    it('stop() from a callback with 500 clients: all get 1001, exit 0, opens == closes', { timeout: ms(120000) }, async (t) => {
        const CLIENTS = 500;
        const limit = openFileLimit();
        if (limit < CLIENTS + 200) {
            t.skip(`ulimit -n is ${limit}, too low for ${CLIENTS} clients`);
            return;
        }
        const fx = await startFixture();
        const clients = [];
        try {
            await mapLimit(Array.from({ length: CLIENTS }, (_, i) => i), 100, async (i) => {
                clients[i] = await openWs(fx.url, { timeout: ms(20000) });
            });
            assert.equal(await ask(clients[0], 'count'), `count:${CLIENTS}`);
            const started = Date.now();
            clients[1].send('stop');
            const exit = await fx.waitExit(ms(15000));
            t.diagnostic(`exited ${Date.now() - started} ms after stop`);
            fx.assertCleanExit(exit);
            const closes = await Promise.all(clients.map((ws) => withTimeout(ws.closed, ms(5000), 'ws close')));
            const codes = {};
            for (const c of closes) codes[c.code] = (codes[c.code] ?? 0) + 1;
            assert.deepEqual(codes, { 1001: CLIENTS }, 'every client got close 1001');
            await assertDestructed(fx, { opens: CLIENTS });
        } finally {
            fx.kill();
            for (const ws of clients) ws?.terminate();
        }
    });

    it('SIGTERM with a raw client that never answers the close: cut after the shutdown timeout, exit 0', { timeout: ms(30000) }, async () => {
        const fx = await startFixture(['--shutdown-timeout-ms', '500']);
        const raw = await RawClient.open(fx.port);
        const ws = await openWs(fx.url);
        const started = Date.now();
        await fx.stop({ timeout: ms(5000) });
        const elapsed = Date.now() - started;
        await raw.expectCloseFrame(1001);
        await raw.waitEnd();
        assert.equal((await withTimeout(ws.closed, ms(5000), 'ws close')).code, 1001);
        assert.ok(elapsed < ms(3000), `exited ${elapsed} ms after SIGTERM (shutdown timeout 500 ms)`);
        await assertDestructed(fx, { opens: 2 });
    });
});
