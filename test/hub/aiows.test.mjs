// websock-hub's aiows API, end to end: every endpoint and answer, each package type, channel
// names, passwords, the URL prefix, the unix socket, fan-out counts and order, a slow
// subscriber, metrics, and aiows' own README examples as a new user would run them.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

import {
    startHub,
    tempDir,
    request,
    publish,
    broadcast,
    metrics,
    subscribe,
    nextMessage,
    waitInbox,
    ms,
    waitFor,
    withTimeout,
    closeWs,
    mapLimit,
    openWs,
    RawClient,
    rawHttp,
    parseClose,
    closeFrame,
    binPath,
    WebSocket,
    HOST,
} from './hub_helpers.mjs';

const PWD = 'Sup3r-Secret-Pwd';

/** Assert that nothing more arrives: publish a marker to the same channel and expect it next. */
async function expectNothingBefore(hub, ws, channel, opts = {}) {
    const marker = `marker-${Math.random()}`;
    const res = await publish(hub, channel, marker, opts);
    assert.equal(res.status, 201);
    const next = await nextMessage(ws, 'the marker');
    assert.equal(next.text, marker, 'the next message is the marker: nothing else arrived before it');
}

describe('aiows API on one hub with a password', () => {
    let hub;
    before(async () => {
        hub = await startHub(['--pwd', PWD]);
    });
    after(async () => {
        await hub.stop();
        assert.ok(!hub.logText().includes(PWD), 'the password never appears in the log');
    });

    test('text (the default), json and bytes packages reach a subscriber as the right frames', async () => {
        const ws = await subscribe(hub, 'types');
        try {
            let res = await publish(hub, 'types', 'hello wörld', { pwd: PWD });
            assert.equal(res.status, 201);
            assert.equal(res.body, '"OK"');
            assert.match(res.headers['content-type'], /^application\/json/);
            let m = await nextMessage(ws);
            assert.deepEqual([m.isBinary, m.text], [false, 'hello wörld']);

            res = await publish(hub, 'types', 'explicit text', { pwd: PWD, type: 'TEXT' });
            assert.equal(res.status, 201);
            m = await nextMessage(ws);
            assert.deepEqual([m.isBinary, m.text], [false, 'explicit text']);

            // json: checked, then sent encoded once (aiows sends a JSON string of the JSON)
            res = await publish(hub, 'types', '{ "a" : [1, 2, {"b": null}], "s": "x\\u00e9" }', { pwd: PWD, type: 'Json' });
            assert.equal(res.status, 201);
            m = await nextMessage(ws);
            assert.equal(m.isBinary, false);
            assert.deepEqual(JSON.parse(m.text), { a: [1, 2, { b: null }], s: 'xé' });
            assert.equal(m.text, '{"a":[1,2,{"b":null}],"s":"xé"}', 'compact, encoded once');

            const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 0x41]);
            res = await publish(hub, 'types', bytes, { pwd: PWD, type: 'bytes' });
            assert.equal(res.status, 201);
            m = await nextMessage(ws);
            assert.equal(m.isBinary, true);
            assert.ok(m.data.equals(bytes), `bytes arrive unchanged: ${m.data.toString('hex')}`);

            res = await publish(hub, 'types', '', { pwd: PWD, type: 'bytes' });
            assert.equal(res.status, 201);
            m = await nextMessage(ws);
            assert.deepEqual([m.isBinary, m.data.length], [true, 0], 'an empty body is an empty message');
        } finally {
            await closeWs(ws);
        }
    });

    test('400 for an unreadable body, an unknown Package-Type or a bad channel name', async () => {
        const ws = await subscribe(hub, 'bad-bodies');
        try {
            let res = await publish(hub, 'bad-bodies', '{"unterminated": ', { pwd: PWD, type: 'json' });
            assert.equal(res.status, 400);
            assert.match(JSON.parse(res.body), /^Bad request/);
            res = await publish(hub, 'bad-bodies', Buffer.from([0x61, 0xff, 0x62]), { pwd: PWD, type: 'text' });
            assert.equal(res.status, 400, 'text must be UTF-8');
            res = await publish(hub, 'bad-bodies', 'x', { pwd: PWD, type: 'video' });
            assert.equal(res.status, 400, 'unknown Package-Type');
            res = await publish(hub, '%20%20', 'x', { pwd: PWD });
            assert.equal(res.status, 400, 'a name that is empty once normalised');
            res = await publish(hub, 'x'.repeat(300), 'x', { pwd: PWD });
            assert.equal(res.status, 400, 'a name over 256 bytes');
            await expectNothingBefore(hub, ws, 'bad-bodies', { pwd: PWD });
        } finally {
            await closeWs(ws);
        }
    });

    test('403 for a missing or wrong password; the password may come as ?pwd=, X-Hub-Password or Bearer', async () => {
        const ws = await subscribe(hub, 'auth');
        try {
            let res = await publish(hub, 'auth', 'no password');
            assert.equal(res.status, 403);
            assert.equal(res.body, '"Not authorized"');
            res = await publish(hub, 'auth', 'wrong', { pwd: PWD + 'x' });
            assert.equal(res.status, 403);
            res = await publish(hub, 'auth', 'wrong header', { headers: { 'X-Hub-Password': 'nope' } });
            assert.equal(res.status, 403);
            res = await broadcast(hub, { auth: [{ text: 'nope' }] }, { pwd: 'nope' });
            assert.equal(res.status, 403);
            res = await broadcast(hub, { auth: [{ text: 'nope' }] });
            assert.equal(res.status, 403);

            res = await publish(hub, 'auth', 'by header', { headers: { 'X-Hub-Password': PWD } });
            assert.equal(res.status, 201);
            assert.equal((await nextMessage(ws)).text, 'by header');
            res = await publish(hub, 'auth', 'by bearer', { headers: { Authorization: `Bearer ${PWD}` } });
            assert.equal(res.status, 201);
            assert.equal((await nextMessage(ws)).text, 'by bearer');
            res = await publish(hub, 'auth', 'by query', { pwd: PWD });
            assert.equal(res.status, 201);
            assert.equal((await nextMessage(ws)).text, 'by query', 'refused publishes were not delivered');

            // A malformed upgrade carrying the password in its URL: logged, but without it.
            const raw = await rawHttp(hub.port, `GET /channel/auth/?pwd=${PWD} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`);
            assert.equal(raw.status, 400);
        } finally {
            await closeWs(ws);
        }
    });

    test('channel names are normalised as aiows does: trimmed, lower-cased, _ becomes :', async () => {
        const ws = await subscribe(hub, 'Room_1');
        try {
            for (const name of ['room:1', 'ROOM_1', '%20Room%3A1%09', 'room%5F1']) {
                const res = await publish(hub, name, `via ${name}`, { pwd: PWD });
                assert.equal(res.status, 201);
                assert.equal((await nextMessage(ws)).text, `via ${name}`);
            }
            const res = await broadcast(hub, { ' ROOM_1 ': [{ text: 'via broadcast' }] }, { pwd: PWD });
            assert.equal(res.status, 201);
            assert.equal((await nextMessage(ws)).text, 'via broadcast');
            // the trailing slash may be left out
            const bare = await request(hub, { method: 'POST', path: `/channel/room:1?pwd=${PWD}`, body: 'no slash' });
            assert.equal(bare.status, 201);
            assert.equal((await nextMessage(ws)).text, 'no slash');
        } finally {
            await closeWs(ws);
        }
    });

    test('201 with nobody subscribed; a subscriber of another channel gets nothing', async () => {
        const other = await subscribe(hub, 'elsewhere');
        try {
            for (let i = 0; i < 20; i++) assert.equal((await publish(hub, 'nobody-here', `m${i}`, { pwd: PWD })).status, 201);
            assert.equal((await broadcast(hub, { 'nobody-here': [{ text: 'b' }] }, { pwd: PWD })).status, 201);
            await expectNothingBefore(hub, other, 'elsewhere', { pwd: PWD });
        } finally {
            await closeWs(other);
        }
    });

    test('POST /broadcast/: every package reaches its channel in order, text/json/bytes', async () => {
        const a = await subscribe(hub, 'room:1');
        const b = await subscribe(hub, 'video:stream');
        try {
            const res = await broadcast(
                hub,
                {
                    'room:1': [{ text: 'Hi all' }, { json: { notification: "You've got new friend" } }, { text: 'third' }],
                    'video:stream': [{ bytes: '\x031\x032\x033...' }, { bytes: [0, 255, 128] }, { bytes: 'ÿ\u0000' }],
                },
                { pwd: PWD },
            );
            assert.equal(res.status, 201, res.body);
            assert.deepEqual(
                [await nextMessage(a), await nextMessage(a), await nextMessage(a)].map((m) => [m.isBinary, m.text]),
                [[false, 'Hi all'], [false, '{"notification":"You\'ve got new friend"}'], [false, 'third']],
            );
            const frames = [await nextMessage(b), await nextMessage(b), await nextMessage(b)];
            assert.ok(frames.every((m) => m.isBinary));
            assert.deepEqual(frames.map((m) => m.data.toString('hex')), ['0331033203332e2e2e', '00ff80', 'ff00']);
        } finally {
            await closeWs(a);
            await closeWs(b);
        }
    });

    test('POST /broadcast/: 400 for what cannot be read, and nothing of it is published', async () => {
        const ws = await subscribe(hub, 'bc-bad');
        try {
            const bad = [
                'not json',
                '[1, 2]',
                '{"bc-bad": {"text": "not a list"}}',
                '{"bc-bad": [{"text": "ok"}, {"text": 5}]}',
                '{"bc-bad": [{"text": "ok"}, {"video": "x"}]}',
                '{"bc-bad": [{"text": "a", "json": 1}]}',
                '{"bc-bad": [{"bytes": "\\u0100"}]}',
                '{"bc-bad": [{"bytes": [256]}]}',
                '{"": [{"text": "empty name"}]}',
            ];
            for (const body of bad) {
                const res = await broadcast(hub, body, { pwd: PWD, headers: { 'Content-Type': 'application/json' } });
                assert.equal(res.status, 400, `${body} -> ${res.status} ${res.body}`);
                assert.match(JSON.parse(res.body), /^Bad request/);
            }
            assert.equal((await broadcast(hub, {}, { pwd: PWD })).status, 201, 'an empty object publishes nothing, fine');
            await expectNothingBefore(hub, ws, 'bc-bad', { pwd: PWD });
        } finally {
            await closeWs(ws);
        }
    });

    test('the text "close" closes a subscription; other subscriber messages are not relayed', async () => {
        const talker = await subscribe(hub, 'chatty');
        const listener = await subscribe(hub, 'chatty');
        try {
            talker.send('hello everybody');
            talker.send(Buffer.from([1, 2, 3]));
            talker.send('CLOSE'); // only the exact text closes
            talker.send('close');
            const closed = await withTimeout(talker.closed, ms(5000), 'the subscription to close');
            assert.equal(closed.code, 1000);
            await expectNothingBefore(hub, listener, 'chatty', { pwd: PWD });
        } finally {
            await closeWs(listener);
        }
    });

    test('other endpoints: 426 for a plain GET of a channel, 405, 404 for HTTP and upgrades elsewhere', async () => {
        let res = await request(hub, { path: '/channel/x/' });
        assert.equal(res.status, 426);
        assert.equal(res.headers.upgrade, 'websocket');
        res = await request(hub, { method: 'PUT', path: `/channel/x/?pwd=${PWD}`, body: 'x' });
        assert.equal(res.status, 405);
        res = await request(hub, { path: '/broadcast/' });
        assert.equal(res.status, 405);
        res = await request(hub, { path: '/nothing/here' });
        assert.equal(res.status, 404);
        res = await request(hub, { path: '/channel//' });
        assert.equal(res.status, 404, 'no name: not a channel path (as aiows)');
        res = await request(hub, { method: 'POST', path: `/channel/a/b/?pwd=${PWD}`, body: 'x' });
        assert.equal(res.status, 404, 'a name is one path segment');
        await assert.rejects(subscribe(hub, 'a/b'), /404/);
        await assert.rejects(openWs(hub.wsUrl('/metrics')), /404/);
        res = await request(hub, { method: 'POST', path: '/metrics' });
        assert.equal(res.status, 405);
    });

    test('100 subscribers x 200 messages: every message to every subscriber, in order, once', async () => {
        const subscribers = await mapLimit(Array.from({ length: 100 }), 25, () => subscribe(hub, 'crowd'));
        const bystander = await subscribe(hub, 'not-the-crowd');
        try {
            for (let i = 0; i < 200; i += 20) {
                // 20 publishes in flight at a time would lose the order; the HTTP answer comes
                // once the message is queued for everybody, so one at a time keeps it.
                for (let j = i; j < i + 20; j++) assert.equal((await publish(hub, 'crowd', `m${j}`, { pwd: PWD })).status, 201);
            }
            await waitInbox(subscribers, 200, { timeout: ms(20000), what: '200 messages each' });
            const expected = Array.from({ length: 200 }, (_, i) => `m${i}`);
            for (const [n, ws] of subscribers.entries()) {
                assert.equal(ws.inbox.length, 200, `subscriber ${n}: exactly 200`);
                assert.deepEqual(ws.inbox.map((m) => m.data.toString()), expected, `subscriber ${n}: in order`);
            }
            await expectNothingBefore(hub, bystander, 'not-the-crowd', { pwd: PWD });
        } finally {
            await Promise.all([...subscribers, bystander].map((ws) => closeWs(ws)));
        }
    });
});

describe('metrics', () => {
    test('GET /metrics counts connections, channels, publishes, deliveries, refusals and the bus', async () => {
        const hub = await startHub(['--pwd', PWD]);
        try {
            let m = await metrics(hub);
            assert.equal(m['hub_connections{api="aiows"}'], 0);
            assert.equal(m['hub_channels{api="aiows"}'], 0);
            assert.equal(m['hub_published_total{api="aiows"}'], 0);
            assert.equal(m['hub_bus_connected'], 1);
            assert.equal(m['hub_bus_info{kind="local"}'], 1);
            assert.equal(m['hub_slow_subscriber_disconnects_total'], 0);
            assert.equal(m['hub_outbound_backlog_bytes'], 0);
            assert.equal(m['hub_incoming_message_bytes'], 0);

            const subs = [await subscribe(hub, 'm1'), await subscribe(hub, 'm1'), await subscribe(hub, 'm2')];
            m = await metrics(hub);
            assert.equal(m['hub_connections{api="aiows"}'], 3);
            assert.equal(m['hub_channels{api="aiows"}'], 2);
            assert.equal(m['hub_subscriptions{api="aiows"}'], 3);

            for (let i = 0; i < 5; i++) assert.equal((await publish(hub, 'm1', `x${i}`, { pwd: PWD })).status, 201);
            assert.equal((await broadcast(hub, { m2: [{ text: 'a' }, { text: 'b' }], m3: [{ text: 'c' }] }, { pwd: PWD })).status, 201);
            assert.equal((await publish(hub, 'm1', 'refused', { pwd: 'wrong' })).status, 403);
            await waitInbox(subs.slice(0, 2), 5);
            await waitInbox(subs.slice(2), 2);
            m = await metrics(hub);
            assert.equal(m['hub_published_total{api="aiows"}'], 8, 'packages published');
            assert.equal(m['hub_delivered_total{api="aiows"}'], 12, '5 x 2 + 2 x 1 deliveries');
            assert.equal(m['hub_dropped_total{api="aiows"}'], 0);
            assert.equal(m['hub_rejected_requests_total{api="aiows"}'], 1);
            assert.equal(m['hub_bus_published_total'], 6, 'one bus message per request');
            assert.equal(m['hub_bus_received_total'], 6);
            assert.ok(m['hub_http_requests_total'] >= 9);

            await Promise.all(subs.map((ws) => closeWs(ws)));
            await waitFor(async () => (await metrics(hub))['hub_connections{api="aiows"}'] === 0, { what: 'connections back to 0' });
            m = await metrics(hub);
            assert.equal(m['hub_channels{api="aiows"}'], 0, 'empty channels are forgotten');
        } finally {
            await hub.stop();
        }
    });
});

describe('a slow subscriber', () => {
    test('one that stops reading is cut with 1008 while the others get every message', async () => {
        const hub = await startHub(['--max-queue-bytes', String(256 * 1024)]);
        const readers = [];
        let stuck;
        try {
            for (let i = 0; i < 3; i++) readers.push(await subscribe(hub, 'firehose'));
            stuck = await RawClient.open(hub.port, { path: '/channel/firehose/' });
            stuck.pause(); // never reads again: the kernel buffers fill, then its queue
            const body = (i) => `${String(i).padStart(6, '0')}:${'x'.repeat(64 * 1024 - 7)}`;
            let sent = 0;
            const deadline = Date.now() + ms(30000);
            // Bounded: 600 x 64 KiB is far more than loopback's socket buffers plus the queue.
            while (sent < 600 && Date.now() < deadline) {
                assert.equal((await publish(hub, 'firehose', body(sent))).status, 201);
                sent++;
                if (sent % 10 === 0 && (await metrics(hub))['hub_slow_subscriber_disconnects_total'] >= 1) break;
            }
            assert.equal((await metrics(hub))['hub_slow_subscriber_disconnects_total'], 1, `cut after ${sent} messages`);
            for (let i = 0; i < 10; i++) assert.equal((await publish(hub, 'firehose', body(sent++))).status, 201);

            await waitInbox(readers, sent, { timeout: ms(20000), what: `all ${sent} messages` });
            for (const ws of readers) {
                assert.equal(ws.inbox.length, sent);
                ws.inbox.forEach((m, i) => assert.equal(m.data.subarray(0, 6).toString(), String(i).padStart(6, '0')));
            }
            // Reading again, the stuck client finds the close frame after what was in flight.
            stuck.resume();
            await waitFor(() => stuck.closeReceived || stuck.ended, { timeout: ms(10000), what: 'the close frame' });
            assert.ok(stuck.closeReceived, `a close frame, not just a cut connection (${stuck.endReason})`);
            const close = parseClose(stuck.closeReceived.payload);
            assert.equal(close.code, 1008);
            assert.match(close.reason, /queue/);
            await stuck.write(closeFrame(1008)); // answer it, as a client that reads would
            await hub.waitStderr(/slow subscriber closed with 1008/);
            await waitFor(async () => (await metrics(hub))['hub_connections{api="aiows"}'] === 3, { what: 'the stuck one gone' });
            // Nothing stays counted against the server's outbound budget once it is gone.
            assert.equal((await metrics(hub))['hub_outbound_backlog_bytes'], 0);
        } finally {
            stuck?.destroy();
            await Promise.all(readers.map((ws) => closeWs(ws)));
            await hub.stop();
        }
    });
});

describe('where the hub listens', () => {
    test('--url-prefix puts every endpoint under the prefix', async () => {
        const hub = await startHub(['--url-prefix', '/api/v1']);
        try {
            const ws = await subscribe(hub, 'pre', { prefix: '/api/v1' });
            assert.equal((await publish(hub, 'pre', 'prefixed', { prefix: '/api/v1' })).status, 201);
            assert.equal((await nextMessage(ws)).text, 'prefixed');
            assert.equal((await broadcast(hub, { pre: [{ text: 'bc' }] }, { prefix: '/api/v1' })).status, 201);
            assert.equal((await nextMessage(ws)).text, 'bc');
            assert.equal((await publish(hub, 'pre', 'unprefixed')).status, 404);
            assert.equal((await request(hub, { path: '/metrics' })).status, 404);
            assert.equal((await metrics(hub, '/api/v1'))['hub_connections{api="aiows"}'], 1);
            await assert.rejects(subscribe(hub, 'pre'), /404/);
            await expectNothingBefore(hub, ws, 'pre', { prefix: '/api/v1' });
            await closeWs(ws);
        } finally {
            await hub.stop();
        }
    });

    test('--usock: HTTP and WebSocket over a unix socket; the file is removed at exit', async () => {
        const { dir, cleanup } = tempDir();
        const socket = path.join(dir, 'hub.sock');
        try {
            const hub = await startHub([], { usock: socket });
            assert.equal(hub.socketPath, socket);
            assert.ok(existsSync(socket));
            const ws = await subscribe(hub, 'unix');
            assert.equal((await publish(hub, 'unix', 'over a unix socket')).status, 201);
            assert.equal((await nextMessage(ws)).text, 'over a unix socket');
            assert.equal((await metrics(hub))['hub_connections{api="aiows"}'], 1);
            await closeWs(ws);
            await hub.stop();
            assert.ok(!existsSync(socket), 'the socket file is removed');
        } finally {
            cleanup();
        }
    });

    test('settings from the environment (HUB_*); a flag wins over its variable', async () => {
        const hub = await startHub(['--port', '0'], {
            noDefaults: true,
            env: { HUB_HOST: '127.0.0.1', HUB_PORT: '1', HUB_PWD: 'from-env', HUB_URL_PREFIX: 'env', HUB_MAX_QUEUE_BYTES: '65536' },
        });
        try {
            assert.equal(hub.host, '127.0.0.1');
            assert.notEqual(hub.port, 1, '--port wins over HUB_PORT');
            const ws = await subscribe(hub, 'e', { prefix: '/env' });
            assert.equal((await publish(hub, 'e', 'x', { prefix: '/env' })).status, 403);
            assert.equal((await publish(hub, 'e', 'from env', { prefix: '/env', pwd: 'from-env' })).status, 201);
            assert.equal((await nextMessage(ws)).text, 'from env');
            await closeWs(ws);
        } finally {
            await hub.stop();
        }
        assert.ok(!hub.logText().includes('from-env'), 'HUB_PWD is not logged either');
    });

    test('no password: a loud warning, and publishing is open', async () => {
        const hub = await startHub([]);
        try {
            await hub.waitStderr(/WARNING: no publish password/);
            assert.equal((await publish(hub, 'open', 'x')).status, 201);
        } finally {
            await hub.stop();
        }
    });

    test('--help lists the flags and exits 0; a bad flag exits 2', () => {
        const help = spawnSync(binPath('websock-hub'), ['--help'], { encoding: 'utf8', timeout: ms(5000) });
        assert.equal(help.status, 0);
        for (const flag of ['--pwd', '--usock', '--host', '--port', '--reuse-addr', '--reuse-port', '--url-prefix', '--redis', 'HUB_PWD'])
            assert.ok(help.stdout.includes(flag), `--help mentions ${flag}`);
        const bad = spawnSync(binPath('websock-hub'), ['--port', 'eighty'], { encoding: 'utf8', timeout: ms(5000) });
        assert.equal(bad.status, 2);
        const aiowsStyle = spawnSync(binPath('websock-hub'), ['--reuse-addr', 'maybe'], { encoding: 'utf8', timeout: ms(5000) });
        assert.equal(aiowsStyle.status, 2);
    });

    test('SIGINT stops it cleanly too', async () => {
        const hub = await startHub([]);
        const ws = await subscribe(hub, 'bye');
        await hub.stop({ signal: 'SIGINT' });
        const closed = await withTimeout(ws.closed, ms(5000), 'the subscriber to be closed');
        assert.equal(closed.code, 1001, 'clients are told the server is going away');
    });
});

describe("aiows' README, as a new user would try it", () => {
    test('the publish and broadcast examples and a browser-style subscriber work unchanged', async () => {
        // The README's examples use the password "some-secure-pwd" and these channels.
        const hub = await startHub(['--pwd', 'some-secure-pwd']);
        const received = { 'test-channel': [], 'call:stream-channel': [] };
        const sockets = [];
        try {
            // A page's subscriber, written the way the README's demo is: the browser WebSocket
            // API (onopen/onmessage, msg.data), here provided by `ws`.
            for (const channel of Object.keys(received)) {
                const socket = new WebSocket(`ws://${HOST}:${hub.port}/channel/${channel}/`);
                socket.binaryType = 'arraybuffer';
                sockets.push(socket);
                await withTimeout(new Promise((resolve, reject) => {
                    socket.onopen = resolve;
                    socket.onerror = reject;
                }), ms(5000), 'subscriber open');
                socket.onmessage = (msg) => received[channel].push(msg.data);
            }

            // requests.post(url='http://127.0.0.1/channel/test-channel/?pwd=some-secure-pwd',
            //               headers={'package-type': 'text'}, data='Hello world')
            let res = await request(hub, {
                method: 'POST',
                path: '/channel/test-channel/?pwd=some-secure-pwd',
                headers: { 'package-type': 'text' },
                body: 'Hello world',
            });
            assert.equal(res.status, 201);

            // requests.post(url='http://127.0.0.1/broadcast/?pwd=some-secure-pwd', json={...}):
            // requests serialises the Python str "\x031\x032\x033..." as "\u00031\u00032\u00033...".
            const chunk = '\x031\x032\x033...';
            res = await request(hub, {
                method: 'POST',
                path: '/broadcast/?pwd=some-secure-pwd',
                headers: { 'Content-Type': 'application/json' },
                body: JSON.stringify({
                    'test-channel': [{ text: 'Hello world' }],
                    'call:stream-channel': Array.from({ length: 6 }, () => ({ bytes: chunk })),
                }),
            });
            assert.equal(res.status, 201, res.body);

            await waitFor(() => received['test-channel'].length >= 2 && received['call:stream-channel'].length >= 6, {
                what: 'every example message',
            });
            assert.deepEqual(received['test-channel'], ['Hello world', 'Hello world']);
            for (const data of received['call:stream-channel'])
                assert.equal(Buffer.from(data).toString('hex'), Buffer.from(chunk, 'latin1').toString('hex'));

            // The README's other broadcast body (room:1 / user:22 / video:stream) is accepted too.
            res = await request(hub, {
                method: 'POST',
                path: '/broadcast/?pwd=some-secure-pwd',
                body: {
                    'room:1': [{ text: 'Hi all' }],
                    'user:22': [{ json: { notification: "You've got new friend" } }],
                    'video:stream': [{ bytes: chunk }, { bytes: chunk }],
                },
            });
            assert.equal(res.status, 201, res.body);
            // A wrong password is refused as the README says.
            res = await request(hub, { method: 'POST', path: '/channel/test-channel/?pwd=guess', body: 'x' });
            assert.equal(res.status, 403);
        } finally {
            for (const socket of sockets) socket.close();
            await hub.stop();
        }
    });
});
