// permessage-deflate (RFC 7692) on the echo example (which turns it on): negotiation of
// every parameter with Node's `ws` client and raw offers, round trips with and without
// context takeover, and the hostile cases: a decompression bomb (close 1009 without the
// memory), corrupt data (1007), RSV1 on a continuation (1002).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import zlib from 'node:zlib';

import { WebSocket, ms, startServer, openWs, wsEcho, closeWs, withTimeout, RawClient, frame, OP, HOST, MiB } from './helpers.mjs';

let echo;
before(async () => {
    echo = await startServer('websock-echo');
});
after(async () => {
    if (echo) await echo.stop({ timeout: ms(10000) });
});

/** Open a ws client with these perMessageDeflate options; resolve it and the 101's extension header. */
async function openDeflate(perMessageDeflate) {
    const ws = new WebSocket(`ws://${HOST}:${echo.port}/`, { perMessageDeflate, maxPayload: 64 * MiB });
    ws.inbox = [];
    ws.inboxWaiters = [];
    ws.errors = [];
    ws.on('error', (err) => ws.errors.push(err));
    ws.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data, isBinary) => {
        ws.inbox.push({ data, isBinary });
        for (const waiter of ws.inboxWaiters.splice(0)) waiter();
    });
    let extensions = '';
    ws.on('upgrade', (res) => (extensions = res.headers['sec-websocket-extensions'] ?? ''));
    await withTimeout(new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('close', () => reject(new Error(`closed before opening: ${ws.errors.map((e) => e.message).join('; ')}`)));
    }), ms(5000), 'open');
    return { ws, extensions };
}

/** Compress like a permessage-deflate sender: raw DEFLATE, sync flush, trailer removed. */
function deflateMessage(data) {
    const out = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    assert.deepEqual(out.subarray(out.length - 4), Buffer.from([0, 0, 0xff, 0xff]));
    return out.subarray(0, out.length - 4);
}

function rssKiB(pid) {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

describe('permessage-deflate: negotiation', () => {
    it('ws offers it, the server accepts, and messages of every size round-trip (threshold 0)', async () => {
        const { ws, extensions } = await openDeflate({ threshold: 0 });
        assert.match(extensions, /^permessage-deflate/);
        for (const size of [0, 1, 100, 4096, 65536, MiB]) {
            await wsEcho(ws, 'a'.repeat(size));
            const random = Buffer.alloc(size);
            for (let i = 0; i < size; i++) random[i] = (i * 7919 + (i >> 3)) & 0xff;
            await wsEcho(ws, random, { binary: true, timeout: ms(10000) });
        }
        await closeWs(ws);
    });

    it('honours no_context_takeover and window bits asked for by the client', async () => {
        const { ws, extensions } = await openDeflate({
            threshold: 0,
            serverNoContextTakeover: true,
            clientNoContextTakeover: true,
            serverMaxWindowBits: 9,
            clientMaxWindowBits: 10,
        });
        assert.match(extensions, /server_no_context_takeover/);
        assert.match(extensions, /client_no_context_takeover/);
        assert.match(extensions, /server_max_window_bits=9/);
        assert.match(extensions, /client_max_window_bits=10/);
        for (let i = 0; i < 20; i++) await wsEcho(ws, `message ${i} `.repeat(50));
        await closeWs(ws);
    });

    for (const bits of [9, 10, 12, 15]) {
        it(`server_max_window_bits=${bits}: compressed echoes still inflate`, async () => {
            const { ws, extensions } = await openDeflate({ threshold: 0, serverMaxWindowBits: bits });
            assert.match(extensions, new RegExp(`server_max_window_bits=${bits}`));
            const text = Array.from({ length: 3000 }, (_, i) => `line ${i % 97} of the story`).join('\n');
            await wsEcho(ws, text);
            await wsEcho(ws, text);
            await closeWs(ws);
        });
    }

    it('several offers: a bad first offer is declined and the next one taken', async () => {
        const client = await RawClient.open(echo.port, {
            headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; bogus_param, permessage-deflate; server_max_window_bits=10' },
        });
        assert.deepEqual(client.response.headers['sec-websocket-extensions'], ['permessage-deflate; server_max_window_bits=10']);
        await client.closeHandshake(1000);
    });

    it('only bad offers (or an unparsable header): the upgrade goes on without the extension', async () => {
        for (const offer of ['permessage-deflate; server_max_window_bits', 'permessage-deflate; client_max_window_bits=16',
                             'permessage-deflate; server_no_context_takeover=1', 'permessage-deflate;;', 'x-unknown-ext']) {
            const client = await RawClient.open(echo.port, { headers: { 'Sec-WebSocket-Extensions': offer } });
            assert.equal(client.response.headers['sec-websocket-extensions'], undefined, offer);
            await client.closeHandshake(1000);
        }
    });

    it('--no-deflate: the extension is never agreed', async () => {
        const plain = await startServer('websock-echo', ['--no-deflate']);
        try {
            const ws = await openWs(`ws://${HOST}:${plain.port}/`, { options: { perMessageDeflate: true } });
            assert.equal(ws.extensions, '');
            await wsEcho(ws, 'plain');
            await closeWs(ws);
        } finally {
            await plain.stop();
        }
    });
});

describe('permessage-deflate: frames on the wire', () => {
    it('the server compresses its echo (RSV1) of a compressible message, and it inflates to the original', async () => {
        const client = await RawClient.open(echo.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
        const text = 'compress me please '.repeat(500);
        await client.write(frame({ opcode: OP.TEXT, payload: deflateMessage(Buffer.from(text)), rsv: 4 }));
        const f = await client.nextFrame();
        assert.equal(f.rsv & 4, 4, 'RSV1 on the echo');
        assert.ok(f.payload.length < text.length / 10, 'actually compressed');
        const inflated = zlib.inflateRawSync(Buffer.concat([f.payload, Buffer.from([0, 0, 0xff, 0xff])]), {
            finishFlush: zlib.constants.Z_SYNC_FLUSH,
        });
        assert.equal(inflated.toString(), text);
        await client.closeHandshake(1000);
    });

    it('a decompression bomb is refused with 1009, without the memory', async (t) => {
        const before = rssKiB(echo.child.pid);
        const bomb = deflateMessage(Buffer.alloc(200 * MiB));  // about 200 KiB on the wire
        assert.ok(bomb.length < MiB);
        const client = await RawClient.open(echo.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
        await client.write(frame({ opcode: OP.BINARY, payload: bomb, rsv: 4 }));
        await client.expectFail(1009, { timeout: ms(10000) });
        const grown = rssKiB(echo.child.pid) - before;
        // Sanitizer builds shadow every allocation (TSan several times over): their RSS says
        // nothing about ours, so the memory bound is checked in the release build only.
        const build = process.env.WEBSOCK_BUILD || 'release';
        if (build === 'release') assert.ok(grown < 40 * 1024, `server RSS grew by ${grown} KiB; the message limit is 16 MiB`);
        else t.diagnostic(`${build} build: server RSS grew by ${grown} KiB (not asserted under a sanitizer)`);
        const ws = await openWs(`ws://${HOST}:${echo.port}/`);
        await wsEcho(ws, 'still serving');
        await closeWs(ws);
    });

    it('corrupt compressed data is refused with 1007', async () => {
        const client = await RawClient.open(echo.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
        await client.write(frame({ opcode: OP.TEXT, payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), rsv: 4 }));
        await client.expectFail(1007);
    });

    it('compressed text that inflates to bad UTF-8 is refused with 1007', async () => {
        const client = await RawClient.open(echo.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
        await client.write(frame({ opcode: OP.TEXT, payload: deflateMessage(Buffer.from([0x61, 0xff, 0x62])), rsv: 4 }));
        await client.expectFail(1007);
    });

    it('RSV1 on a continuation frame is refused with 1002', async () => {
        const client = await RawClient.open(echo.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
        const payload = deflateMessage(Buffer.from('hello hello hello'));
        await client.write(frame({ opcode: OP.TEXT, payload: payload.subarray(0, 3), rsv: 4, fin: false }));
        await client.write(frame({ opcode: OP.CONTINUATION, payload: payload.subarray(3), rsv: 4, fin: true }));
        await client.expectFail(1002);
    });

    it('a compressed message in fragments, with a ping between them, inflates whole', async () => {
        const client = await RawClient.open(echo.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
        const text = 'fragmented and compressed '.repeat(40);
        const payload = deflateMessage(Buffer.from(text));
        await client.write(frame({ opcode: OP.TEXT, payload: payload.subarray(0, 10), rsv: 4, fin: false }));
        await client.write(frame({ opcode: OP.PING, payload: 'between' }));
        await client.write(frame({ opcode: OP.CONTINUATION, payload: payload.subarray(10), fin: true }));
        const pong = await client.nextFrame();
        assert.equal(pong.opcode, OP.PONG);
        const echoed = await client.nextFrame();
        const inflated = zlib.inflateRawSync(Buffer.concat([echoed.payload, Buffer.from([0, 0, 0xff, 0xff])]), {
            finishFlush: zlib.constants.Z_SYNC_FLUSH,
        });
        assert.equal(inflated.toString(), text);
        await client.closeHandshake(1000);
    });
});
