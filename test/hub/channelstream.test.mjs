// websock-hub's channelstream API, end to end, as a channelstream 0.7.1 application uses it:
// requests signed by Debian's python3-itsdangerous and by a JavaScript port of the same
// scheme (and by channelstream's own browser signer), every endpoint and message type,
// presence, pm_users and exclude_users, edit/delete reaching clients and history, catch-up
// after a reconnect, long polling and JSONP, the allow-list, the admin side, and two nodes
// sharing presence and history through Redis. The aiows API keeps working beside it.
//
// This file: one hub, and the configuration; two nodes through Redis and a node that starts
// late are in channelstream_nodes.test.mjs, the shared signers and clients in
// channelstream_harness.mjs.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { startHub, tempDir, request, closeWs, ms, waitFor, withTimeout, binPath, subscribe, nextMessage, publish, metrics } from './hub_helpers.mjs';
import {
    PYTHON,
    SECRET,
    ADMIN,
    FAST,
    jsSign,
    browserSign,
    strongSign,
    api,
    connect,
    listenWs,
    nextEvent,
    ofType,
    expectNone,
} from './channelstream_harness.mjs';

test('the signer port gives the known answer, and so does python3-itsdangerous', () => {
    assert.equal(jsSign('secret', 1600000000), 'channelstream.X14QAA.QLT3kgcJYg14C3PAy4wtyg5uGgI');
    const run = spawnSync(PYTHON, ['-c', [
        'import itsdangerous',
        'class S(itsdangerous.TimestampSigner):',
        '    def get_timestamp(self): return 1600000000',
        'print(S("secret").sign("channelstream").decode())'].join('\n')], { encoding: 'utf8' });
    assert.equal(run.stdout.trim(), 'channelstream.X14QAA.QLT3kgcJYg14C3PAy4wtyg5uGgI');
});

describe('channelstream API on one hub', () => {
    let hub;
    before(async () => {
        hub = await startHub([], { env: FAST });
    });
    after(async () => {
        await hub?.stop();
        assert.ok(!hub.logText().includes(SECRET), 'the secret never reaches the log');
    });

    test('connect, attach a WebSocket, receive a channel message with every field', async () => {
        const c = await connect(hub, 'alice', ['lobby'], { user_state: { color: 'red' }, state_public_keys: ['color'] });
        assert.match(c.conn_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.deepEqual(c.channels, ['lobby']);
        assert.deepEqual(c.state, { color: 'red' });
        assert.deepEqual(c.public_state, { color: 'red' });
        assert.equal(c.username, 'alice');
        assert.deepEqual(c.channels_info.channels.lobby.users, ['alice']);
        const ws = await listenWs(hub, c.conn_id);
        try {
            const sent = await api(hub, '/message', [{ user: 'bob', channel: 'lobby', message: { text: 'hello' } }]);
            assert.equal(sent.status, 200);
            assert.equal(sent.json.length, 1);
            const m = await nextEvent(ws, ofType('message'));
            assert.deepEqual(Object.keys(m).sort(), ['catchup', 'channel', 'edited', 'message', 'timestamp', 'type', 'user', 'uuid']);
            assert.equal(m.uuid, sent.json[0].uuid);
            assert.equal(m.user, 'bob');
            assert.equal(m.channel, 'lobby');
            assert.deepEqual(m.message, { text: 'hello' });
            assert.equal(m.catchup, false);
            assert.equal(m.edited, null);
            assert.match(m.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$/);
        } finally {
            await closeWs(ws);
        }
    });

    test('signatures: python, JS port, browser signer, ?secret=; missing, tampered, expired, future-dated', async () => {
        const body = { username: 'signer-user' };
        assert.equal((await api(hub, '/connect', body, { sign: 'py' })).status, 200);
        assert.equal((await api(hub, '/connect', body, { sign: jsSign() })).status, 200);
        // many seconds, so that some signatures keep a '+', '/' or '=' from the browser signer
        const now = Math.floor(Date.now() / 1000);
        for (let t = now - 20; t <= now; ++t) assert.equal((await api(hub, '/connect', body, { sign: browserSign(SECRET, t) })).status, 200, browserSign(SECRET, t));
        const query = await api(hub, `/connect?secret=${encodeURIComponent(jsSign())}`, body, { sign: 'none' });
        assert.equal(query.status, 200);

        const missing = await api(hub, '/connect', body, { sign: 'none' });
        assert.equal(missing.status, 403);
        const good = jsSign();
        const tampered = good.slice(0, -2) + (good.endsWith('AA') ? 'BB' : 'AA');
        for (const sig of [tampered, jsSign('wrong-secret'), jsSign(SECRET, now - 61), jsSign(SECRET, now + 3600), 'garbage']) {
            const res = await api(hub, '/connect', body, { sign: sig });
            assert.equal(res.status, 401, sig);
            assert.deepEqual(res.json, { request: 'Bad Signature' });
        }
    });

    test('the stronger signature: bound to method, path and body, accepted once', async () => {
        const body = JSON.stringify({ username: 'strong-user' });
        const header = strongSign('POST', '/connect', body);
        const ok = await api(hub, '/connect', body, { sign: 'none', headers: { 'X-Channelstream-Signature': header } });
        assert.equal(ok.status, 200, ok.body);
        const replay = await api(hub, '/connect', body, { sign: 'none', headers: { 'X-Channelstream-Signature': header } });
        assert.equal(replay.status, 401);
        assert.deepEqual(replay.json, { request: 'Replayed Signature' });
        const elsewhere = await api(hub, '/info', body, { sign: 'none', headers: { 'X-Channelstream-Signature': strongSign('POST', '/connect', body) } });
        assert.equal(elsewhere.status, 401);
    });

    test('422 with field errors, 400 for a body that is not JSON', async () => {
        let res = await api(hub, '/connect', {});
        assert.equal(res.status, 422);
        assert.deepEqual(res.json, { username: ['Missing data for required field.'] });
        res = await api(hub, '/subscribe', { conn_id: randomUUID(), channels: [] });
        assert.equal(res.status, 422);
        assert.deepEqual(res.json, { conn_id: ['Unknown connection'], channels: ['Shorter than minimum length 1.'] });
        res = await api(hub, '/message', {});
        assert.deepEqual(res.json, { _schema: ['Invalid input type.'] });
        res = await api(hub, '/connect', '{oops');
        assert.equal(res.status, 400);
    });

    test('presence with user lists: joined and parted, never to oneself', async () => {
        await api(hub, '/channel_config', { room: { notify_presence: true, broadcast_presence_with_user_lists: true } });
        const a = await connect(hub, 'p-alice', ['room'], { user_state: { mood: 'ok', secret: 1 }, state_public_keys: ['mood'] });
        const wsA = await listenWs(hub, a.conn_id);
        try {
            const b = await connect(hub, 'p-bob', ['room'], { user_state: { mood: 'fine' }, state_public_keys: ['mood'] });
            const joined = await nextEvent(wsA, ofType('presence'));
            assert.equal(joined.user, 'p-bob');
            assert.equal(joined.channel, 'room');
            assert.deepEqual(joined.message, { action: 'joined' });
            assert.deepEqual(joined.state, { mood: 'fine' });
            assert.deepEqual(joined.users, [{ user: 'p-alice', state: { mood: 'ok' } }, { user: 'p-bob', state: { mood: 'fine' } }]);
            const wsB = await listenWs(hub, b.conn_id);
            const off = await api(hub, '/disconnect', { conn_id: b.conn_id }, { sign: 'none' });
            assert.equal(off.status, 200);
            assert.equal(off.json, true);
            const parted = await nextEvent(wsA, ofType('presence', (e) => e.message.action === 'parted'));
            assert.equal(parted.user, 'p-bob');
            assert.deepEqual(parted.users, [{ user: 'p-alice', state: { mood: 'ok' } }]);
            assert.equal((await withTimeout(wsB.closed, ms(5000), 'the disconnected socket closes')).code, 1000);
            assert.equal(wsB.events.filter((e) => e.type === 'presence' && e.user === 'p-bob').length, 0, 'no presence about oneself');
        } finally {
            await closeWs(wsA);
        }
    });

    test('pm_users, exclude_users, and private messages without a channel', async () => {
        const users = ['pm-a', 'pm-b', 'pm-c'];
        const socks = {};
        for (const u of users) socks[u] = await listenWs(hub, (await connect(hub, u, ['pm-chan'])).conn_id);
        const lone = await connect(hub, 'pm-d', ['elsewhere']);
        const wsD = await listenWs(hub, lone.conn_id);
        try {
            await api(hub, '/message', [{ user: 's', channel: 'pm-chan', pm_users: ['pm-b'], message: { n: 1 } }]);
            assert.equal((await nextEvent(socks['pm-b'], ofType('message'))).message.n, 1);
            await api(hub, '/message', [{ user: 's', channel: 'pm-chan', exclude_users: ['pm-a'], message: { n: 2 } }]);
            assert.equal((await nextEvent(socks['pm-b'], ofType('message'))).message.n, 2);
            assert.equal((await nextEvent(socks['pm-c'], ofType('message'))).message.n, 2);
            await expectNone(hub, socks['pm-a'], 'pm-chan', (e) => e.type === 'message' && (e.message.n === 1 || e.message.n === 2));
            await expectNone(hub, socks['pm-c'], 'pm-chan', (e) => e.type === 'message' && e.message.n === 1);
            await api(hub, '/message', [{ user: 's', pm_users: ['pm-d'], message: { n: 3 } }]);
            const pm = await nextEvent(wsD, ofType('message'));
            assert.equal(pm.message.n, 3);
            assert.equal(pm.channel, null);
        } finally {
            for (const ws of [...Object.values(socks), wsD]) await closeWs(ws);
        }
    });

    test('user_state: the answer, and user_state_change with public keys only in notify_state channels', async () => {
        await api(hub, '/channel_config', { states: { notify_state: true } });
        const watcher = await listenWs(hub, (await connect(hub, 'us-watcher', ['states'])).conn_id);
        await connect(hub, 'us-user', ['states'], { state_public_keys: ['avatar'] });
        try {
            const res = await api(hub, '/user_state', { user: 'us-user', user_state: { avatar: 'x.png', private: 'p' } });
            assert.equal(res.status, 200);
            assert.deepEqual(res.json.user_state, { avatar: 'x.png', private: 'p' });
            assert.deepEqual(res.json.public_keys, ['avatar']);
            assert.deepEqual(res.json.changed_state.map((c) => c.key).sort(), ['avatar', 'private']);
            const change = await nextEvent(watcher, ofType('user_state_change'));
            assert.equal(change.user, 'us-user');
            assert.deepEqual(change.message.state, { avatar: 'x.png' });
            assert.deepEqual(change.message.changed, [{ key: 'avatar', value: 'x.png' }]);
            // the 2015 API
            const status = await api(hub, '/user_status', { user: 'us-user', status: 3 });
            assert.equal(status.status, 200);
            assert.equal(status.json.user_state.status, 3);
        } finally {
            await closeWs(watcher);
        }
    });

    test('edit and delete reach the clients and the history', async () => {
        await api(hub, '/channel_config', { hist: { store_history: true, history_size: 5 } });
        const ws = await listenWs(hub, (await connect(hub, 'ed-user', ['hist'])).conn_id);
        try {
            const [sent] = (await api(hub, '/message', [{ user: 'ed', channel: 'hist', message: { text: 'v1' } }])).json;
            await nextEvent(ws, ofType('message'));
            const edit = await api(hub, '/message', [{ uuid: sent.uuid, channel: 'hist', message: { text: 'v2' } }], { method: 'PATCH' });
            assert.equal(edit.status, 200);
            const e = await nextEvent(ws, ofType('message:edit'));
            assert.equal(e.uuid, sent.uuid);
            assert.deepEqual(e.message, { text: 'v2' });
            assert.ok(e.edited, 'edited carries the time of the edit');
            let info = await api(hub, '/info', { info: { channels: ['hist'] } });
            assert.deepEqual(info.json.channels.hist.history.map((m) => m.message), [{ text: 'v2' }]);
            const del = await api(hub, '/message', [{ uuid: sent.uuid, channel: 'hist' }], { method: 'DELETE' });
            assert.equal(del.status, 200);
            const d = await nextEvent(ws, ofType('message:delete'));
            assert.equal(d.uuid, sent.uuid);
            info = await api(hub, '/info', { info: { channels: ['hist'] } });
            assert.deepEqual(info.json.channels.hist.history, []);
        } finally {
            await closeWs(ws);
        }
    });

    test('catch-up: before the first attach, and after a reconnect with the same conn_id (edits and deletes too)', async () => {
        await api(hub, '/channel_config', { cu: { store_history: true } });
        const c = await connect(hub, 'cu-user', ['cu']);
        const [early] = (await api(hub, '/message', [{ user: 's', channel: 'cu', message: { n: 'early' } }])).json;
        let ws = await listenWs(hub, c.conn_id);
        const first = await nextEvent(ws, ofType('message'));
        assert.equal(first.uuid, early.uuid);
        assert.equal(first.catchup, true);

        await closeWs(ws);
        const [missed] = (await api(hub, '/message', [{ user: 's', channel: 'cu', message: { n: 'missed' } }])).json;
        await api(hub, '/message', [{ uuid: early.uuid, channel: 'cu', message: { n: 'early-edited' } }], { method: 'PATCH' });
        await api(hub, '/message', [{ uuid: missed.uuid, channel: 'cu' }], { method: 'DELETE' });
        ws = await listenWs(hub, c.conn_id);
        try {
            const m = await nextEvent(ws, ofType('message'));
            assert.equal(m.uuid, missed.uuid);
            assert.equal(m.catchup, true);
            const e = await nextEvent(ws, ofType('message:edit'));
            assert.equal(e.uuid, early.uuid);
            assert.equal(e.catchup, true);
            const d = await nextEvent(ws, ofType('message:delete'));
            assert.equal(d.uuid, missed.uuid);
            // live again
            await api(hub, '/message', [{ user: 's', channel: 'cu', message: { n: 'live' } }]);
            const live = await nextEvent(ws, ofType('message'));
            assert.equal(live.catchup, false);
        } finally {
            await closeWs(ws);
        }
    });

    test('heartbeat: [] every heartbeat_interval on an idle WebSocket', async () => {
        const ws = await listenWs(hub, (await connect(hub, 'hb-user', ['hb'])).conn_id);
        try {
            await waitFor(() => ws.heartbeats >= 2, { timeout: ms(5000), what: 'two heartbeats' });
        } finally {
            await closeWs(ws);
        }
    });

    test('long polling and JSONP', async () => {
        const c = await connect(hub, 'lp-user', ['lp']);
        // a poll gets the next message (live if it is already waiting, else from the queue)
        const poll = request(hub, { path: `/listen?conn_id=${c.conn_id}`, timeout: ms(8000) });
        await api(hub, '/message', [{ user: 's', channel: 'lp', message: { n: 1 } }]);
        const res = await poll;
        assert.equal(res.status, 200);
        assert.match(res.headers['content-type'], /^application\/json/);
        const got = JSON.parse(res.body);
        assert.equal(got.length, 1);
        assert.equal(got[0].message.n, 1);
        // what arrives between two polls waits for the next one (JSONP this time)
        await api(hub, '/message', [{ user: 's', channel: 'lp', message: { n: 2 } }]);
        const jsonp = await request(hub, { path: `/listen?conn_id=${c.conn_id}&callback=handle_1`, timeout: ms(8000) });
        assert.match(jsonp.headers['content-type'], /^application\/javascript/);
        const m = /^handle_1\((.*)\)$/s.exec(jsonp.body);
        assert.ok(m, jsonp.body);
        const list = JSON.parse(m[1]);
        assert.equal(list.length, 1);
        assert.equal(list[0].message.n, 2);
        assert.equal(list[0].catchup, false, 'between polls is not catch-up');
        // nothing to say: [] after wake_connections_after (1 s here)
        const started = Date.now();
        const empty = await request(hub, { path: `/listen?conn_id=${c.conn_id}`, timeout: ms(8000) });
        assert.equal(empty.body, '[]');
        assert.ok(Date.now() - started >= 900, 'the poll waited');
        // unknown connection, bad id, bad callback
        assert.equal((await request(hub, { path: `/listen?conn_id=${randomUUID()}` })).status, 401);
        assert.equal((await request(hub, { path: '/listen?conn_id=nope' })).status, 422);
        assert.equal((await request(hub, { path: `/listen?conn_id=${c.conn_id}&callback=alert(1)` })).status, 400);
    });

    test('subscribe, unsubscribe, channel_config, info, disconnect by GET', async () => {
        const c = await connect(hub, 'sub-user', ['s1']);
        let res = await api(hub, '/subscribe', { conn_id: c.conn_id, channels: ['s2', 's3'], channel_configs: { s2: { store_history: true } } });
        assert.equal(res.status, 200);
        assert.deepEqual(res.json.channels, ['s1', 's2', 's3']);
        assert.deepEqual(res.json.subscribed_to, ['s2', 's3']);
        assert.equal(res.json.channels_info.channels.s2.settings.store_history, true);
        res = await api(hub, '/unsubscribe', { conn_id: c.conn_id, channels: ['s1', 'nope'] });
        assert.deepEqual(res.json.channels, ['s2', 's3']);
        assert.deepEqual(res.json.unsubscribed_from, ['s1']);
        res = await api(hub, '/channel_config', { s3: { notify_presence: true, history_size: 3 } });
        assert.equal(res.json.channels.s3.settings.history_size, 3);
        res = await api(hub, '/info', '');
        assert.equal(res.status, 200);
        assert.ok(res.json.channels.s2 && res.json.channels.s3);
        res = await api(hub, '/info', { info: { channels: ['s2'], include_history: false } });
        assert.deepEqual(Object.keys(res.json.channels), ['s2']);
        res = await request(hub, { path: `/disconnect?conn_id=${c.conn_id}` });
        assert.equal(res.status, 200);
        assert.equal(res.body, 'true');
        assert.equal((await request(hub, { path: `/listen?conn_id=${c.conn_id}` })).status, 401);
        // as channelstream 0.7.1: an unknown (or already gone) UUID is 200 false; no UUID is 422
        for (const conn_id of [c.conn_id, randomUUID()]) {
            res = await api(hub, '/disconnect', { conn_id }, { sign: 'none' });
            assert.equal(res.status, 200, conn_id);
            assert.equal(res.json, false, conn_id);
        }
        assert.equal((await request(hub, { path: `/disconnect?conn_id=${randomUUID()}` })).body, 'false');
        assert.equal((await api(hub, '/disconnect', { conn_id: 'nope' }, { sign: 'none' })).status, 422);
    });

    test('garbage collection: a connection never attached goes after gc_conns_after, with parted', async () => {
        await api(hub, '/channel_config', { gc: { notify_presence: true } });
        const watcher = await listenWs(hub, (await connect(hub, 'gc-watcher', ['gc'])).conn_id);
        try {
            const idle = await connect(hub, 'gc-idle', ['gc']);
            await nextEvent(watcher, ofType('presence', (e) => e.user === 'gc-idle' && e.message.action === 'joined'));
            const parted = await nextEvent(watcher, ofType('presence', (e) => e.user === 'gc-idle' && e.message.action === 'parted'), 'parted after gc');
            assert.equal(parted.channel, 'gc');
            assert.equal((await request(hub, { path: `/listen?conn_id=${idle.conn_id}` })).status, 401);
            // the attached watcher is kept alive by its node
            const info = await api(hub, '/info', { info: { channels: ['gc'] } });
            assert.deepEqual(info.json.channels.gc.users, ['gc-watcher']);
        } finally {
            await closeWs(watcher);
        }
    });

    test('admin: admin.json and the page behind Basic auth, openapi.json, CORS', async () => {
        const basic = 'Basic ' + Buffer.from(`admin:${ADMIN}`).toString('base64');
        assert.equal((await request(hub, { path: '/admin/admin.json' })).status, 401);
        assert.equal((await request(hub, { path: '/admin/admin.json', headers: { Authorization: 'Basic ' + Buffer.from('admin:no').toString('base64') } })).status, 401);
        const res = await request(hub, { path: '/admin/admin.json', headers: { Authorization: basic } });
        assert.equal(res.status, 200);
        const info = JSON.parse(res.body);
        for (const key of ['remembered_user_count', 'unique_user_count', 'total_connections', 'total_channels', 'total_messages', 'total_unique_messages', 'channels', 'users', 'uptime', 'version'])
            assert.ok(key in info, key);
        assert.ok(info.total_unique_messages > 0);
        const page = await request(hub, { path: '/admin', headers: { Authorization: basic } });
        assert.equal(page.status, 200);
        assert.match(page.headers['content-type'], /^text\/html/);
        assert.ok(!/(src|href)=["']?https?:/.test(page.body), 'no external resources');
        const spec = await request(hub, { path: '/openapi.json' });
        assert.equal(JSON.parse(spec.body).swagger, '2.0');
        const pre = await request(hub, { method: 'OPTIONS', path: '/message', headers: { Origin: 'https://app.test', 'Access-Control-Request-Method': 'PATCH' } });
        assert.equal(pre.status, 200);
        assert.equal(pre.headers['access-control-allow-origin'], '*');
        assert.match(pre.headers['access-control-allow-methods'], /PATCH/);
        const m = await metrics(hub);
        assert.ok(Number.isFinite(m.hub_channelstream_connections), 'the module reports its connections');
        assert.ok(m.hub_channelstream_unique_messages_total >= info.total_unique_messages);
    });

    test("a Python application as channelstream's README writes it (itsdangerous, signing the endpoint path)", async () => {
        // channelstream's README: signer.sign('/connect'), header x-channelstream-secret, JSON body.
        const app = (endpoint, payload) => {
            const script = [
                'import json, sys, urllib.request',
                'from itsdangerous import TimestampSigner',
                'base, secret, endpoint, payload = sys.argv[1:5]',
                'signer = TimestampSigner(secret)',
                "sig_for_server = signer.sign(endpoint).decode()",
                "secret_headers = {'x-channelstream-secret': sig_for_server, 'Content-Type': 'application/json'}",
                "req = urllib.request.Request(base + endpoint, data=payload.encode(), headers=secret_headers, method='POST')",
                'print(json.dumps(json.loads(urllib.request.urlopen(req, timeout=10).read())))',
            ].join('\n');
            // spawned, not spawnSync: the test's own WebSocket keeps being read meanwhile
            return new Promise((resolve, reject) => {
                const child = spawn(PYTHON, ['-c', script, `http://${hub.host}:${hub.port}`, SECRET, endpoint, JSON.stringify(payload)]);
                let out = '';
                let err = '';
                child.stdout.on('data', (d) => (out += d));
                child.stderr.on('data', (d) => (err += d));
                child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(err))));
            });
        };
        const conn = await app('/connect', { username: 'py-user', channels: ['py-chan'], fresh_user_state: { avatar: 'a.png' }, state_public_keys: ['avatar'] });
        assert.equal(conn.username, 'py-user');
        const ws = await listenWs(hub, conn.conn_id);
        try {
            const sent = await app('/message', [{ channel: 'py-chan', user: 'py-user', message: { text: 'from python' } }]);
            const m = await nextEvent(ws, ofType('message', (e) => e.uuid === sent[0].uuid));
            assert.deepEqual(m.message, { text: 'from python' });
            const info = await app('/info', { info: { channels: ['py-chan'] } });
            assert.deepEqual(info.users, [{ user: 'py-user', state: { avatar: 'a.png' } }]);
        } finally {
            await closeWs(ws);
        }
    });

    test('the aiows API still works in the same process', async () => {
        const ws = await subscribe(hub, 'aiows-side');
        try {
            assert.equal((await publish(hub, 'aiows-side', 'plain text')).status, 201);
            assert.equal((await nextMessage(ws)).text, 'plain text');
        } finally {
            await closeWs(ws);
        }
    });
});

describe('channelstream configuration', () => {
    test('allow_posting_from refuses other addresses with 403', async () => {
        const hub = await startHub([], { env: { ...FAST, CHANNELSTREAM_ALLOW_POSTING_FROM: '10.9.9.9' } });
        try {
            const res = await api(hub, '/connect', { username: 'x' });
            assert.equal(res.status, 403);
        } finally {
            await hub.stop();
        }
    });

    test("channelstream's own ini file loads (-i), with continuation lines; a flag beats the environment", async () => {
        const temp = tempDir();
        const file = path.join(temp.dir, 'channelstream.ini');
        writeFileSync(file, '[channelstream]\nadmin_secret = from-ini\nsecret = ini-secret\nallow_posting_from = 10.0.0.1,\n                     127.0.0.1\n');
        const hub = await startHub(['-i', file, '--admin-secret', 'from-flag'], { env: { CHANNELSTREAM_ADMIN_SECRET: 'from-env' } });
        try {
            const ok = await api(hub, '/connect', { username: 'x' }, { sign: jsSign('ini-secret') });
            assert.equal(ok.status, 200, ok.body);
            assert.equal((await api(hub, '/connect', { username: 'x' }, { sign: jsSign(SECRET) })).status, 401);
            const admin = (pw) => request(hub, { path: '/admin/admin.json', headers: { Authorization: 'Basic ' + Buffer.from(`admin:${pw}`).toString('base64') } });
            assert.equal((await admin('from-flag')).status, 200);
            assert.equal((await admin('from-env')).status, 401);
        } finally {
            await hub.stop();
            temp.cleanup();
        }
    });

    test('make-config prints a commented example config', () => {
        const run = spawnSync(binPath('websock-hub'), ['make-config'], { encoding: 'utf8' });
        assert.equal(run.status, 0);
        for (const key of ['secret', 'admin_secret', 'allow_posting_from', 'validate_requests', 'gc_conns_after']) assert.match(run.stdout, new RegExp(`^${key} = `, 'm'));
    });
});
