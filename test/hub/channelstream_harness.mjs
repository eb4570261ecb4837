// The channelstream tests' harness (channelstream.test.mjs, channelstream_nodes.test.mjs):
// the request signers (a JavaScript port of itsdangerous' TimestampSigner, channelstream's
// browser signer, Debian's python3-itsdangerous, the strong signature), API calls, WebSocket
// listeners and waiting for events or for a node to sync.
import assert from 'node:assert/strict';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { request, openWs, ms, waitFor, withJson } from './hub_helpers.mjs';

export const PYTHON = '/usr/bin/python3';
export const SECRET = 'cs-Secret-0123';
export const ADMIN = 'cs-Admin-Pw';

// Short timings so that garbage collection, long polls and heartbeats show within a test.
export const FAST = {
    CHANNELSTREAM_SECRET: SECRET,
    CHANNELSTREAM_ADMIN_SECRET: ADMIN,
    CHANNELSTREAM_GC_CONNS_AFTER: '2',
    CHANNELSTREAM_WAKE_CONNECTIONS_AFTER: '1',
    CHANNELSTREAM_HEARTBEAT_INTERVAL: '1',
};

// Everything here is installed by `make deps` (python3-itsdangerous, libinih, redis-server):
// a missing piece fails the test rather than skipping it.

// ---------------------------------------------------------------------------------------
// signers

export const b64url = (buf) => buf.toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');

export function intToBytes(n) {
    const bytes = [];
    for (let x = n; x > 0; x = Math.floor(x / 256)) bytes.unshift(x % 256);
    return Buffer.from(bytes);
}

/** itsdangerous TimestampSigner(secret).sign(value), ported. */
export function jsSign(secret = SECRET, time = Math.floor(Date.now() / 1000), value = 'channelstream') {
    const key = createHash('sha1').update('itsdangerous.Signer' + 'signer' + secret).digest();
    const signed = `${value}.${b64url(intToBytes(time))}`;
    return `${signed}.${b64url(createHmac('sha1', key).update(signed).digest())}`;
}

/** channelstream's bundled browser signer (signer.js): String.replace swaps only the first match. */
export function browserSign(secret = SECRET, time = Math.floor(Date.now() / 1000)) {
    const strip = (s) => s.replace('=', '').replace('+', '-').replace('/', '_');
    const key = createHash('sha1').update('itsdangerous.Signer' + 'signer' + secret).digest();
    const value = 'channelstream.' + strip(intToBytes(time).toString('base64'));
    return `${value}.${strip(createHmac('sha1', key).update(value).digest('base64'))}`;
}

/** Debian's python3-itsdangerous signs (an independent implementation). */
export function pySign(secret = SECRET, value = 'channelstream') {
    const run = spawnSync(PYTHON, ['-c', 'import sys, itsdangerous; print(itsdangerous.TimestampSigner(sys.argv[1]).sign(sys.argv[2]).decode())', secret, value],
        { encoding: 'utf8', timeout: 10000 });
    assert.equal(run.status, 0, run.stderr);
    return run.stdout.trim();
}

/** The stronger scheme: X-Channelstream-Signature: t=TIME,v2=hex HMAC-SHA256. */
export function strongSign(method, target, body, secret = SECRET, time = Math.floor(Date.now() / 1000)) {
    const digest = createHash('sha256').update(body).digest('hex');
    const mac = createHmac('sha256', secret).update(`v2\n${time}\n${method}\n${target}\n${digest}`).digest('hex');
    return `t=${time},v2=${mac}`;
}

// ---------------------------------------------------------------------------------------
// clients

/** A signed server API call; resolves {status, json, headers, body}. */
export async function api(hub, target, body, { method = 'POST', sign = 'js', headers = {} } = {}) {
    const h = { ...headers };
    if (sign === 'js') h['X-Channelstream-Secret'] = jsSign();
    else if (sign === 'py') h['X-Channelstream-Secret'] = pySign();
    else if (typeof sign === 'string' && sign !== 'none') h['X-Channelstream-Secret'] = sign;
    const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    if (text !== undefined) h['Content-Type'] = 'application/json';
    const res = await request(hub, { method, path: target, headers: h, body: text });
    return withJson(res);
}

export async function connect(hub, username, channels = [], extra = {}) {
    const res = await api(hub, '/connect', { username, channels, ...extra });
    assert.equal(res.status, 200, `connect ${username}: ${res.body}`);
    return res.json;
}

/** A WebSocket on /ws for a connection; its inbox collects channelstream's message objects. */
export async function listenWs(hub, connId) {
    const ws = await openWs(hub.wsUrl(`/ws?conn_id=${connId}`));
    ws.events = [];
    ws.heartbeats = 0;
    // openWs's inbox holds what came with the handshake (catch-up often does); take frames
    // from there, then as they come.
    const ingest = () => {
        for (const { data } of ws.inbox.splice(0)) {
            const list = JSON.parse(data.toString());
            assert.ok(Array.isArray(list), 'every frame is a JSON list');
            if (list.length === 0) ws.heartbeats += 1;
            ws.events.push(...list);
        }
    };
    ingest();
    ws.on('message', ingest);
    return ws;
}

/** Wait for (and take) the first event matching `match`, skipping the others before it. */
export async function nextEvent(ws, match = () => true, what = 'an event') {
    const found = await waitFor(() => {
        const at = ws.events.findIndex(match);
        if (at < 0) return null;
        const [event] = ws.events.splice(0, at + 1).slice(-1);
        return { event };
    }, { timeout: ms(5000), what });
    return found.event;
}

export const ofType = (type, extra = () => true) => (e) => e.type === type && extra(e);

/** Prove that nothing matching `match` arrived: send a marker to `channel` and see it first. */
export async function expectNone(hub, ws, channel, match) {
    const marker = `marker-${randomUUID()}`;
    await api(hub, '/message', [{ user: 'system', channel, message: { marker } }]);
    await nextEvent(ws, (e) => e.message && e.message.marker === marker, 'the marker');
    assert.equal(ws.events.filter(match).length, 0);
}

/** Wait until a node started with --redis has the state (it answers 503 while syncing). */
export async function waitSynced(hub) {
    let seen;
    await waitFor(async () => { seen = await api(hub, '/info', { info: {} }); return seen.status === 200; }, { timeout: ms(20000), interval: 50, what: 'the node to sync' }).catch((e) => { throw new Error(`${e.message}: last answer ${seen?.status} ${seen?.body}\n${hub.stderrText()}`); });
}
