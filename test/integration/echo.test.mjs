// The echo example end to end: `ws` clients for the happy paths, raw sockets for the bytes a
// well-behaved client never sends, raw HTTP for handshake errors. One websock-echo process
// serves the whole file; after every bad input a fresh client must still be served.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
    MiB,
    KiB,
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
    frame,
    frameHeader,
    maskBytes,
    textFrame,
    binaryFrame,
    pingFrame,
    contFrame,
    closeFrame,
    patternBytes,
    mapLimit,
    openFileLimit,
    waitFor,
    withTimeout,
    once,
} from './helpers.mjs';

let server;

before(async () => {
    server = await startServer('websock-echo');
});

after(async () => {
    if (server) await server.stop();
});

describe('echo: messages (ws client)', () => {
    it('echoes a text message as text', async () => {
        const ws = await openWs(server.url);
        await wsEcho(ws, 'Hello, wörld! κόσμε 😀');
        await closeWs(ws);
    });

    it('echoes a binary message as binary, every byte value', async () => {
        const ws = await openWs(server.url);
        const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        await wsEcho(ws, bytes, { binary: true });
        // binary that happens to be valid UTF-8 stays binary; text stays text
        await wsEcho(ws, Buffer.from('plain ascii'), { binary: true });
        await wsEcho(ws, 'plain ascii', { binary: false });
        await closeWs(ws);
    });

    it('echoes empty text and empty binary messages, keeping the type', async () => {
        const ws = await openWs(server.url);
        await wsEcho(ws, '', { binary: false });
        await wsEcho(ws, Buffer.alloc(0), { binary: true });
        await closeWs(ws);
    });

    it('keeps the order of 200 pipelined messages of both types', async () => {
        const ws = await openWs(server.url);
        const sent = [];
        for (let i = 0; i < 200; i++) {
            const binary = i % 3 === 0;
            const data = binary ? patternBytes(1 + ((i * 37) % 3000), i) : `message ${i} ${'x'.repeat(i)}`;
            sent.push({ data, binary });
            ws.send(data, { binary });
        }
        for (const [i, s] of sent.entries()) {
            const reply = await nextWsMessage(ws, { what: `echo ${i}` });
            assert.equal(reply.isBinary, s.binary, `type of message ${i}`);
            assert.ok(reply.data.equals(Buffer.isBuffer(s.data) ? s.data : Buffer.from(s.data)), `content of message ${i}`);
        }
        await closeWs(ws);
    });

    it('round-trips a 16 MiB binary message (the default limit)', { timeout: ms(60000) }, async () => {
        const ws = await openWs(server.url);
        const big = patternBytes(16 * MiB, 16);
        await wsEcho(ws, big, { binary: true, timeout: ms(30000) });
        await closeWs(ws);
    });

    it('refuses a 16 MiB + 1 binary message with close 1009', { timeout: ms(60000) }, async () => {
        const ws = await openWs(server.url);
        ws.send(patternBytes(16 * MiB + 1, 17), { binary: true });
        const closed = await withTimeout(ws.closed, ms(20000), 'close after an oversized message');
        assert.equal(closed.code, 1009, `close code (ws errors: ${ws.errors.map((e) => e.message).join('; ')})`);
        assert.equal(ws.inbox.length, 0, 'nothing echoed');
        await assertServerServes(server, 'after a too-big message');
    });

    it('refuses an oversized frame from its header alone (raw: 1009 before the payload is sent)', { timeout: ms(30000) }, async () => {
        const c = await RawClient.open(server.port);
        const key = Buffer.from([1, 2, 3, 4]);
        await c.write(frameHeader({ opcode: OP.BINARY, length: 16 * MiB + 1, maskKey: key }));
        // send only the first MiB of the payload: the length alone already breaks the limit
        await c.write(maskBytes(patternBytes(MiB, 3), key));
        await c.expectFail(1009, { timeout: ms(10000) });
        c.destroy();
        await assertServerServes(server, 'after an oversized frame header');
    });
});

describe('echo: fragmentation and control frames (raw socket)', () => {
    it('answers pings between the 3 fragments of a text message, then echoes the whole text', async () => {
        const c = await RawClient.open(server.port);
        await c.write(frame({ opcode: OP.TEXT, fin: false, payload: 'Hello, ' }));
        await c.write(pingFrame('ping one'));
        await c.expectPong('ping one');
        await c.write(contFrame('fragmented ', { fin: false }));
        await c.write(pingFrame(Buffer.from([0, 1, 2, 0xff])));
        await c.expectPong(Buffer.from([0, 1, 2, 0xff]));
        await c.write(contFrame('wörld', { fin: true }));
        await c.expectMessage(OP.TEXT, 'Hello, fragmented wörld');
        await c.closeHandshake(1000);
    });

    it('reassembles a binary message in many fragments, including empty ones', async () => {
        const c = await RawClient.open(server.port);
        const data = patternBytes(10000, 9);
        const cuts = [0, 0, 1, 125, 126, 1000, 1000, 5000, 10000];
        let opcode = OP.BINARY;
        for (let i = 1; i < cuts.length; i++) {
            await c.write(frame({ opcode, fin: i === cuts.length - 1, payload: data.subarray(cuts[i - 1], cuts[i]) }));
            opcode = OP.CONTINUATION;
        }
        await c.expectMessage(OP.BINARY, data);
        await c.closeHandshake(1000);
    });

    it('answers a ping with the same payload (ws client)', async () => {
        const ws = await openWs(server.url);
        const payloads = [Buffer.alloc(0), Buffer.from('hello'), patternBytes(125, 5)];
        for (const p of payloads) {
            const pong = once(ws, 'pong');
            ws.ping(p);
            const [data] = await pong;
            assert.ok(data.equals(p), `pong payload for a ${p.length}-byte ping`);
        }
        await wsEcho(ws, 'after pings');
        await closeWs(ws);
    });

    it('ignores an unsolicited pong', async () => {
        const c = await RawClient.open(server.port);
        await c.write(frame({ opcode: OP.PONG, payload: 'unsolicited' }));
        await c.write(textFrame('after the pong'));
        await c.expectMessage(OP.TEXT, 'after the pong');
        await c.closeHandshake(1000);
    });
});

describe('echo: close paths', () => {
    it('echoes a client close 1000 with a reason (ws client)', async () => {
        const ws = await openWs(server.url);
        await wsEcho(ws, 'before closing');
        const closed = await closeWs(ws, 1000, 'bye now');
        assert.equal(closed.code, 1000);
    });

    it('echoes a client close 3001 (raw) and closes TCP', async () => {
        const c = await RawClient.open(server.port);
        await c.closeHandshake(3001, 'app code');
    });

    it('echoes a close with no status code with an empty close (or 1000)', async () => {
        const c = await RawClient.open(server.port);
        await c.write(frame({ opcode: OP.CLOSE, payload: Buffer.alloc(0) }));
        await c.expectCloseFrame([null, 1000]);
        await c.expectEndWithoutFrames();
    });

    for (const code of [1005, 999, 1016]) {
        it(`answers close code ${code} in a close frame with 1002`, async () => {
            const c = await RawClient.open(server.port);
            await c.write(closeFrame(code, 'bad code'));
            await c.expectFail(1002);
            await assertServerServes(server, `after close code ${code}`);
        });
    }

    it('answers a 1-byte close payload with 1002', async () => {
        const c = await RawClient.open(server.port);
        await c.write(frame({ opcode: OP.CLOSE, payload: Buffer.from([0x03]) }));
        await c.expectFail(1002);
        await assertServerServes(server, 'after a 1-byte close');
    });

    it('answers invalid UTF-8 in a text message with 1007', async () => {
        const c = await RawClient.open(server.port);
        await c.write(textFrame(Buffer.from([0x48, 0x69, 0xc0, 0xaf, 0x21])));
        await c.expectFail(1007);
        await assertServerServes(server, 'after invalid UTF-8');
    });

    it('answers invalid UTF-8 in a close reason with 1007', async () => {
        const c = await RawClient.open(server.port);
        await c.write(closeFrame(1000, Buffer.from([0x6f, 0x6b, 0xed, 0xa0, 0x80])));
        await c.expectFail(1007);
        await assertServerServes(server, 'after an invalid close reason');
    });

    it('answers an unmasked client frame with 1002', async () => {
        const c = await RawClient.open(server.port);
        await c.write(textFrame('not masked', { mask: false }));
        await c.expectFail(1002);
        await assertServerServes(server, 'after an unmasked frame');
    });

    for (const opcode of [0x3, 0x7, 0xb, 0xf]) {
        it(`answers reserved opcode 0x${opcode.toString(16)} with 1002`, async () => {
            const c = await RawClient.open(server.port);
            await c.write(frame({ opcode, payload: 'reserved' }));
            await c.expectFail(1002);
            await assertServerServes(server, `after opcode ${opcode}`);
        });
    }

    for (const rsv of [4, 2, 1]) {
        it(`answers RSV bits ${rsv.toString(2).padStart(3, '0')} (no extension negotiated) with 1002`, async () => {
            const c = await RawClient.open(server.port);
            await c.write(textFrame('rsv', { rsv }));
            await c.expectFail(1002);
            await assertServerServes(server, `after rsv ${rsv}`);
        });
    }

    it('answers a ping with a 126-byte payload with 1002', async () => {
        const c = await RawClient.open(server.port);
        await c.write(pingFrame(patternBytes(126, 1)));
        await c.expectFail(1002);
        await assertServerServes(server, 'after a 126-byte ping');
    });

    it('answers a continuation frame with no message started with 1002', async () => {
        const c = await RawClient.open(server.port);
        await c.write(contFrame('orphan', { fin: true }));
        await c.expectFail(1002);
        await assertServerServes(server, 'after an orphan continuation');
    });
});

describe('echo: many clients and a client that stops reading', () => {
    it('serves 1,000 concurrent clients, each echoing its own message', { timeout: ms(120000) }, async (t) => {
        const CLIENTS = 1000;
        const limit = openFileLimit();
        if (limit < 4096) t.diagnostic(`note: ulimit -n is ${limit}; 4096 or more is recommended (server and test each hold ${CLIENTS} sockets)`);
        if (limit < CLIENTS + 200) {
            t.skip(`ulimit -n is ${limit}, too low for ${CLIENTS} clients; run with ulimit -n 4096`);
            return;
        }
        const clients = [];
        try {
            await mapLimit(Array.from({ length: CLIENTS }, (_, i) => i), 200, async (i) => {
                clients[i] = await openWs(server.url, { timeout: ms(20000) });
            });
            assert.equal(clients.filter((c) => c.readyState === 1).length, CLIENTS, 'all open at once');
            await Promise.all(
                clients.map((ws, i) => wsEcho(ws, i % 2 ? `client ${i} says hi` : Buffer.from(`binary ${i}`), { timeout: ms(30000) })),
            );
            const results = await Promise.all(clients.map((ws) => closeWs(ws, 1000, '', { timeout: ms(30000) })));
            const codes = {};
            for (const r of results) codes[r.code] = (codes[r.code] ?? 0) + 1;
            assert.deepEqual(codes, { 1000: CLIENTS }, 'every close handshake answered with 1000');
        } finally {
            for (const ws of clients) if (ws && ws.readyState !== 3) ws.terminate();
        }
        await assertServerServes(server, 'after 1,000 clients');
    });

    it('keeps serving 20 clients while one raw client floods it and never reads', { timeout: ms(60000) }, async (t) => {
        const flooder = await RawClient.open(server.port);
        flooder.pause(); // never read what the server echoes back
        const payload = patternBytes(256 * KiB, 42);
        const maskKey = Buffer.from([9, 8, 7, 6]);
        const oneFrame = Buffer.concat([frameHeader({ opcode: OP.BINARY, length: payload.length, maskKey }), maskBytes(payload, maskKey)]);
        const CAP = 64 * MiB; // bounded flood
        let sent = 0;
        let stuck = false;
        const pump = () => {
            while (sent < CAP && !flooder.ended) {
                sent += oneFrame.length;
                if (!flooder.socket.write(oneFrame, () => {})) {
                    stuck = true;
                    return; // wait for 'drain' (it never comes while the server is blocked on us)
                }
            }
        };
        flooder.socket.on('drain', pump);
        pump();
        // the flood reaches the point where the server no longer takes our bytes, or the cap
        await waitFor(() => stuck && flooder.socket.writableLength > 0, { timeout: ms(20000), what: 'the flooder to be blocked' });
        t.diagnostic(`flooder queued ${(sent / MiB).toFixed(1)} MiB; ${(flooder.socket.writableLength / MiB).toFixed(1)} MiB waiting in the test`);

        const started = Date.now();
        const clients = await Promise.all(Array.from({ length: 20 }, () => openWs(server.url)));
        await Promise.all(clients.map((ws, i) => wsEcho(ws, `client ${i} during the flood`, { timeout: ms(5000) })));
        await Promise.all(clients.map((ws, i) => wsEcho(ws, patternBytes(100 * KiB, i), { binary: true, timeout: ms(5000) })));
        t.diagnostic(`20 clients served in ${Date.now() - started} ms during the flood`);
        await Promise.all(clients.map((ws) => closeWs(ws)));
        flooder.destroy();
        await assertServerServes(server, 'after the flood');
    });
});

describe('echo: handshake errors (raw HTTP)', () => {
    it('answers a request without Sec-WebSocket-Key with 400', async () => {
        const res = await rawHttp(server.port, upgradeRequest({ port: server.port, headers: { 'Sec-WebSocket-Key': null } }));
        assert.equal(res.status, 400, res.head);
        await assertServerServes(server, 'after a missing key');
    });

    it('answers Sec-WebSocket-Version: 8 with 426 and Sec-WebSocket-Version: 13', async () => {
        const res = await rawHttp(server.port, upgradeRequest({ port: server.port, headers: { 'Sec-WebSocket-Version': '8' } }));
        assert.equal(res.status, 426, res.head);
        assert.match(res.head, /\r\nSec-WebSocket-Version: *13\r\n/i, 'names the supported version');
        await assertServerServes(server, 'after version 8');
    });

    it('answers 9 KiB of headers with 431', async () => {
        const headers = {};
        for (let i = 0; i < 92; i++) headers[`X-Filler-${String(i).padStart(3, '0')}`] = 'f'.repeat(88);
        const request = upgradeRequest({ port: server.port, headers });
        assert.ok(request.length > 9 * KiB, `request is ${request.length} bytes`);
        const res = await rawHttp(server.port, request);
        assert.equal(res.status, 431, res.head);
        await assertServerServes(server, 'after 9 KiB of headers');
    });

    it('answers a plain GET without an upgrade with 426', async () => {
        const res = await rawHttp(server.port, `GET / HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\n\r\n`);
        assert.equal(res.status, 426, res.head);
        await assertServerServes(server, 'after a plain GET');
    });

    it('answers garbage bytes with 400', async () => {
        const garbage = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), patternBytes(200, 77), Buffer.from('\r\n\r\n')]);
        const res = await rawHttp(server.port, garbage);
        assert.equal(res.status, 400, res.head);
        await assertServerServes(server, 'after garbage');
    });

    it('answers a text line that is not HTTP with 400', async () => {
        const res = await rawHttp(server.port, 'HELLO THERE\r\n\r\n');
        assert.equal(res.status, 400, res.head);
        await assertServerServes(server, 'after a non-HTTP line');
    });
});

describe('echo: options and shutdown (own processes)', () => {
    it('--max-message-bytes 1000: 1000 bytes echo, 1001 get close 1009', async () => {
        const small = await startServer('websock-echo', ['--max-message-bytes', '1000']);
        try {
            const ws = await openWs(small.url);
            await wsEcho(ws, patternBytes(1000, 1), { binary: true });
            await wsEcho(ws, 'a'.repeat(1000));
            ws.send('b'.repeat(1001));
            const closed = await withTimeout(ws.closed, ms(5000), 'close 1009');
            assert.equal(closed.code, 1009);
            // a fragmented message whose total passes the limit, each fragment below it
            const c = await RawClient.open(small.port);
            await c.write(frame({ opcode: OP.TEXT, fin: false, payload: 'c'.repeat(600) }));
            await c.write(contFrame('c'.repeat(600), { fin: true }));
            await c.expectFail(1009);
            await assertServerServes(small, 'after 1009');
        } finally {
            await small.stop();
        }
    });

    for (const signal of ['SIGTERM', 'SIGINT']) {
        it(`${signal}: every client gets close 1001 and the process exits 0`, { timeout: ms(30000) }, async () => {
            const own = await startServer('websock-echo');
            const clients = await Promise.all(Array.from({ length: 10 }, () => openWs(own.url)));
            await Promise.all(clients.map((ws, i) => wsEcho(ws, `hi ${i}`)));
            const raw = await RawClient.open(own.port);
            await raw.write(textFrame('raw hi'));
            await raw.expectMessage(OP.TEXT, 'raw hi');
            // the raw client answers the server's close like a well-behaved client
            const rawClose = raw.expectCloseFrame(1001, { timeout: ms(10000) }).then(async (c) => {
                await raw.write(closeFrame(1001));
                return c;
            });
            rawClose.catch(() => {});
            const result = await own.stop({ signal, timeout: ms(10000) });
            assert.deepEqual(result, { code: 0, signal: null });
            const closes = await Promise.all(clients.map((ws) => withTimeout(ws.closed, ms(5000), 'ws close')));
            for (const c of closes) assert.equal(c.code, 1001, 'going away');
            await rawClose;
            await raw.waitEnd();
        });
    }
});

describe('echo: the event loop with busy polling', () => {
    it('serves 20 clients in order and stops cleanly while it spins', async () => {
        const spinning = await startServer('websock-echo', ['--engine', 'event', '--busy-poll-us', '500']);
        try {
            const clients = await Promise.all(Array.from({ length: 20 }, () => openWs(spinning.url)));
            await Promise.all(clients.map(async (ws, i) => {
                for (let k = 0; k < 25; k++) await wsEcho(ws, `client ${i} message ${k}`);
            }));
            await Promise.all(clients.map((ws) => closeWs(ws)));
        } finally {
            await spinning.stop();  // asserts exit code 0
        }
    });
});
