// Handshake policy (ServerOptions::policy and on_handshake) through the fixture server and
// Node's `ws` client: allowed paths, allowed Origins, subprotocol choice, HTTP Basic auth and
// the user's hook. A refused upgrade must get its HTTP status and never reach on_open.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { WebSocket, ms, startServer, closeWs, withTimeout, rawHttp, upgradeRequest, HOST } from './helpers.mjs';

/** Try to open a WebSocket; resolve {ok, ws} or {ok: false, status, headers, body}. */
function tryOpen(url, options = {}) {
    return withTimeout(
        new Promise((resolve, reject) => {
            const ws = new WebSocket(url, options.protocols ?? [], { headers: options.headers ?? {}, origin: options.origin });
            ws.closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
            ws.on('upgrade', (res) => (ws.upgradeHeaders = res.headers));
            ws.on('open', () => resolve({ ok: true, ws }));
            ws.on('unexpected-response', (req, res) => {
                let body = '';
                res.on('data', (c) => (body += c));
                res.on('end', () => resolve({ ok: false, status: res.statusCode, headers: res.headers, body }));
                res.on('error', () => resolve({ ok: false, status: res.statusCode, headers: res.headers, body }));
            });
            ws.on('error', (err) => {
                if (!/Unexpected server response/.test(err.message)) reject(err);
            });
        }),
        ms(5000),
        `open ${url}`,
    );
}

async function withFixture(args, fn) {
    const fx = await startServer('fixture_server', args);
    try {
        await fn(`ws://${HOST}:${fx.port}`, fx);
    } finally {
        await fx.stop({ timeout: ms(10000) });
    }
    const line = await withTimeout(fx.waitLine(/^destructed /), ms(2000), 'destructed line');
    const m = /opens=(\d+) closes=(\d+)/.exec(line);
    assert.equal(m[1], m[2], `opens == closes: ${line}`);
    return Number(m[1]);
}

async function subprotocolOf(ws) {
    const reply = withTimeout(new Promise((resolve) => ws.once('message', (data) => resolve(data.toString()))), ms(5000), 'reply');
    ws.send('subprotocol');
    return reply;
}

describe('handshake policy', () => {
    it('allowed paths: others get 404 and never open', async () => {
        const opens = await withFixture(['--allowed-path', '/chat', '--allowed-path', '/feed'], async (base) => {
            const ok = await tryOpen(`${base}/chat`);
            assert.ok(ok.ok);
            await closeWs(ok.ws);
            const refused = await tryOpen(`${base}/admin`);
            assert.equal(refused.ok, false);
            assert.equal(refused.status, 404);
            const query = await tryOpen(`${base}/feed?x=1`);
            assert.ok(query.ok, 'the query string is not part of the path');
            await closeWs(query.ws);
        });
        assert.equal(opens, 2);
    });

    it('allowed Origins: a foreign Origin gets 403; no Origin is allowed unless required', async () => {
        await withFixture(['--allowed-origin', 'https://good.example'], async (base) => {
            const good = await tryOpen(`${base}/`, { origin: 'https://GOOD.example' });
            assert.ok(good.ok, 'Origins compare without regard to case');
            await closeWs(good.ws);
            const evil = await tryOpen(`${base}/`, { origin: 'https://evil.example' });
            assert.equal(evil.status, 403);
            assert.match(evil.body, /origin https:\/\/evil\.example is not allowed/);
            const none = await tryOpen(`${base}/`);
            assert.ok(none.ok);
            await closeWs(none.ws);
        });
        await withFixture(['--allowed-origin', 'https://good.example', '--require-origin', 'yes'], async (base) => {
            const none = await tryOpen(`${base}/`);
            assert.equal(none.status, 403);
        });
    });

    it('subprotocols: the server picks by its own preference among the offered ones', async () => {
        await withFixture(['--subprotocol', 'v2.chat', '--subprotocol', 'v1.chat'], async (base) => {
            const both = await tryOpen(`${base}/`, { protocols: ['v1.chat', 'v2.chat'] });
            assert.ok(both.ok);
            assert.equal(both.ws.protocol, 'v2.chat', 'ws checks the 101 names one it offered');
            assert.equal(await subprotocolOf(both.ws), 'subprotocol:v2.chat');
            await closeWs(both.ws);
            const old = await tryOpen(`${base}/`, { protocols: ['v1.chat'] });
            assert.equal(old.ws.protocol, 'v1.chat');
            await closeWs(old.ws);
            // Only unknown ones offered: accepted without a subprotocol (section 4.2.2). The
            // `ws` client refuses such an answer, browsers take it; check the 101 itself.
            const port = Number(new URL(base).port);
            const unknown = await rawHttp(port, upgradeRequest({ port, headers: { 'Sec-WebSocket-Protocol': 'mqtt, stomp' } }));
            assert.equal(unknown.status, 101);
            assert.equal(unknown.headers['sec-websocket-protocol'], undefined);
        });
        await withFixture(['--subprotocol', 'v2.chat', '--require-subprotocol', 'yes'], async (base) => {
            const unknown = await tryOpen(`${base}/`, { protocols: ['mqtt'] });
            assert.equal(unknown.status, 400);
        });
    });

    it('Basic auth: 401 with WWW-Authenticate without or with wrong credentials; the right ones open', async () => {
        const opens = await withFixture(['--basic-auth', 'ada:s3cret:with:colons'], async (base) => {
            const none = await tryOpen(`${base}/`);
            assert.equal(none.status, 401);
            assert.match(none.headers['www-authenticate'], /^Basic realm="websock"/);
            const basic = (user, password) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
            for (const [user, password] of [['ada', 'wrong'], ['eve', 's3cret:with:colons'], ['ada', 's3cret:with:colon'], ['', '']]) {
                const refused = await tryOpen(`${base}/`, { headers: basic(user, password) });
                assert.equal(refused.status, 401, `${user}:${password}`);
            }
            const garbage = await tryOpen(`${base}/`, { headers: { Authorization: 'Basic !!!notbase64' } });
            assert.equal(garbage.status, 401);
            const right = await tryOpen(`${base}/`, { headers: basic('ada', 's3cret:with:colons') });
            assert.ok(right.ok);
            await closeWs(right.ws);
            const url = new URL(`${base}/`);
            url.username = 'ada';
            url.password = 's3cret:with:colons';
            const viaUrl = await tryOpen(url.toString());
            assert.ok(viaUrl.ok, 'ws sends URL credentials as Basic auth');
            await closeWs(viaUrl.ws);
        });
        assert.equal(opens, 2);
    });

    it("the user's hook: rejects with its status, adds headers, and a throwing hook gives 500", async () => {
        const opens = await withFixture(['--hook', 'yes', '--subprotocol', 'v1'], async (base) => {
            const denied = await tryOpen(`${base}/deny/this`);
            assert.equal(denied.status, 451);
            assert.match(denied.body, /denied by the hook/);
            const thrown = await tryOpen(`${base}/throw`);
            assert.equal(thrown.status, 500);
            const bad = await tryOpen(`${base}/badproto`, { protocols: ['v1'] });
            assert.equal(bad.status, 500, 'a subprotocol the client never offered is refused');
            const fine = await tryOpen(`${base}/ok`, { protocols: ['v1'] });
            assert.ok(fine.ok);
            assert.equal(fine.ws.upgradeHeaders['x-hook'], 'yes');
            assert.equal(fine.ws.protocol, 'v1', "the hook keeps the policy's choice");
            await closeWs(fine.ws);
        });
        assert.equal(opens, 1);
    });
});
