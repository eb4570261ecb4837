// websock-hub's resumable streams, end to end with Node's `ws`: subscribe and publish in
// every format; a subscriber cut off and resuming gets every message once and in order (also
// while a publisher keeps going, and 200 at once); the answers when history cannot fill the
// gap (another epoch, too old, ahead); every refusal of publish and of the protocol.
// Acknowledged delivery is in streams_ack.test.mjs; Redis, the docs' clients in the others.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

import { startHub, request, ms, mapLimit, waitFor, binPath } from './hub_helpers.mjs';
import { StreamClient, SUBPROTOCOL, publishStream, publishMany, assertExactlyOnce } from './streams_harness.mjs';

const PWD = 'streams-Pwd-1';

for (const [engine, args] of [['event loops', ['--event-loops', '2']], ['threads', ['--threads']]]) {
    describe(`streams on ${engine}`, () => {
        let hub;
        before(async () => {
            hub = await startHub([...args, '--pwd', PWD]);
        });
        after(async () => {
            await hub.stop();
        });

        test('subscribe, then text, JSON and binary messages with their offsets', async () => {
            const client = await StreamClient.open(hub, { protocols: [SUBPROTOCOL] });
            try {
                assert.equal(client.ws.protocol, SUBPROTOCOL, 'the subprotocol is chosen when offered');
                const answer = await client.subscribe('formats');
                assert.deepEqual(answer, { type: 'subscribed', channel: 'formats', epoch: '', offset: 0, ack: false });
                const text = await publishStream(hub, 'formats', 'hé, world', { pwd: PWD });
                assert.equal(text.status, 201, text.body);
                assert.equal(text.json.offset, 1);
                assert.match(text.json.epoch, /^[!-~]{1,64}$/);
                const epoch = text.json.epoch;
                const json = await publishStream(hub, 'formats', '{ "b": [1, 2], "a": null }', { pwd: PWD, contentType: 'application/json' });
                assert.deepEqual(json.json, { channel: 'formats', epoch, offset: 2 });
                const binary = await publishStream(hub, 'formats', Buffer.from([0, 1, 254, 255]), {
                    pwd: PWD,
                    contentType: 'application/octet-stream',
                });
                assert.equal(binary.json.offset, 3);
                await client.waitOffset('formats', 3);
                assert.deepEqual(client.messages('formats'), [
                    { type: 'message', channel: 'formats', epoch, offset: 1, format: 'text', data: 'hé, world' },
                    { type: 'message', channel: 'formats', epoch, offset: 2, format: 'json', data: { b: [1, 2], a: null } },
                    { type: 'message', channel: 'formats', epoch, offset: 3, format: 'binary', data: 'AAH+/w==', encoding: 'base64' },
                ]);
                const position = await request(hub, { path: '/streams/formats' });
                assert.equal(position.status, 200);
                assert.deepEqual(JSON.parse(position.body), { channel: 'formats', epoch, offset: 3, oldest: 1 });
            } finally {
                await client.close();
            }
        });

        test('cut, publish while away, resume: every message once and in order, then live ones', async () => {
            const channel = 'cut-resume';
            const expected = new Map();
            const first = await StreamClient.open(hub);
            await first.subscribe(channel);
            for (const offset of await publishMany(hub, channel, 5, { label: 'before', pwd: PWD })) expected.set(offset, `before-${offset - 1}`);
            await first.waitOffset(channel, 5);
            await first.cut();
            for (const offset of await publishMany(hub, channel, 20, { label: 'away', pwd: PWD })) expected.set(offset, `away-${offset - 6}`);

            const last = first.messages(channel).at(-1);
            const second = await StreamClient.open(hub);
            try {
                const answer = await second.subscribe(channel, { since: { epoch: last.epoch, offset: last.offset } });
                assert.deepEqual(answer, { type: 'subscribed', channel, epoch: last.epoch, offset: 25, recovered: true, ack: false });
                await second.waitOffset(channel, 25);
                for (const offset of await publishMany(hub, channel, 3, { label: 'live', pwd: PWD })) expected.set(offset, `live-${offset - 26}`);
                await second.waitOffset(channel, 28);
                assertExactlyOnce([first.messages(channel), second.messages(channel)], 1, 28, expected);
            } finally {
                await second.close();
            }
        });

        test('resume while a publisher keeps publishing: no gap, no duplicate', async () => {
            const channel = 'resume-under-load';
            const total = 400;
            const first = await StreamClient.open(hub);
            await first.subscribe(channel);
            let published = 0;
            let failure;
            const publisher = (async () => {
                // Four publishers at once: offsets follow the bus's order, not the requests'.
                await mapLimit(Array.from({ length: total }, (_, i) => i), 4, async (i) => {
                    const res = await publishStream(hub, channel, `load-${i}`, { pwd: PWD });
                    if (res.status !== 201) failure ??= `publish ${i}: ${res.status} ${res.body}`;
                    published++;
                });
            })();
            await first.waitOffset(channel, 50);
            await first.cut();
            const last = first.messages(channel).at(-1);
            const second = await StreamClient.open(hub);
            try {
                const answer = await second.subscribe(channel, { since: { epoch: last.epoch, offset: last.offset } });
                assert.equal(answer.recovered, true, JSON.stringify(answer));
                assert.ok(published < total, `the resume happened while publishing (${published} of ${total} done)`);
                await publisher;
                assert.equal(failure, undefined);
                await second.waitOffset(channel, total);
                assertExactlyOnce([first.messages(channel), second.messages(channel)], 1, total);
                const data = new Set([...first.messages(channel), ...second.messages(channel)].map((m) => m.data));
                assert.equal(data.size, total, 'every published body arrived');
            } finally {
                await second.close();
            }
        });
    });
}

describe('streams: answers when history cannot fill the gap, and every refusal', () => {
    let hub;
    before(async () => {
        hub = await startHub(['--pwd', PWD, '--channel-rule', 'ruled.*; types=json; max_bytes=64; required=user:string']);
    });
    after(async () => {
        await hub.stop();
    });

    test('another epoch, an offset ahead of the stream, an offset no longer in history', async () => {
        const client = await StreamClient.open(hub);
        try {
            const [offset] = await publishMany(hub, 'epochs', 3, { pwd: PWD }).then((o) => o.slice(-1));
            const { epoch } = JSON.parse((await request(hub, { path: '/streams/epochs' })).body);
            let answer = await client.subscribe('epochs', { since: { epoch: 'not-this-one', offset: 2 } });
            assert.deepEqual(answer, {
                type: 'subscribed', channel: 'epochs', epoch, offset, recovered: false, ack: false,
                reason: `epoch changed (was "not-this-one", now "${epoch}"): history was lost`,
            });
            await publishMany(hub, 'epochs', 1, { label: 'after', pwd: PWD });
            await client.waitOffset('epochs', 4);
            assert.deepEqual(client.messages('epochs').map((m) => m.offset), [4], 'live from the current position only');

            answer = await client.subscribe('ahead', { since: { epoch, offset: 7 } });
            assert.equal(answer.recovered, false);
            assert.match(answer.reason, /epoch changed \(was "[^"]+", now none\)/, 'a stream never published to has no epoch');

            // History keeps 16 MiB per stream: 18 messages of 1,000,000 bytes push the first ones out.
            const big = 'x'.repeat(1_000_000);
            for (let i = 0; i < 18; i++) assert.equal((await publishStream(hub, 'old', big, { pwd: PWD })).status, 201);
            const position = JSON.parse((await request(hub, { path: '/streams/old' })).body);
            assert.equal(position.offset, 18);
            assert.ok(position.oldest > 2, `history was cut: ${JSON.stringify(position)}`);
            answer = await client.subscribe('old', { since: { epoch: position.epoch, offset: 1 } });
            assert.equal(answer.recovered, false);
            assert.equal(answer.reason, `offset 1 is no longer in history (oldest kept is ${position.oldest})`);
            answer = await client.subscribe('old2', { since: { epoch: position.epoch, offset: 0 } });
            assert.equal(answer.recovered, false, 'another stream, another epoch');

            answer = await client.subscribe('epochs-ahead', {});
            await publishStream(hub, 'epochs-ahead', 'one', { pwd: PWD });
            const second = await StreamClient.open(hub);
            try {
                const e = (await client.waitFrame((f) => f.channel === 'epochs-ahead' && f.type === 'message')).epoch;
                answer = await second.subscribe('epochs-ahead', { since: { epoch: e, offset: 9 } });
                assert.equal(answer.recovered, false);
                assert.equal(answer.reason, 'offset 9 is ahead of the stream (newest is 1)');
                answer = await second.subscribe('old', { since: { epoch: position.epoch, offset: position.oldest - 1 } });
                assert.equal(answer.recovered, true, 'the message right before the oldest kept one is fine');
                await second.waitOffset('old', 18);
                assert.equal(second.messages('old').length, 18 - position.oldest + 1);
            } finally {
                await second.close();
            }
        } finally {
            await client.close();
        }
    });

    test('publish refusals: password, Content-Type, body, channel name, method', async () => {
        let res = await publishStream(hub, 'refused', 'x');
        assert.equal(res.status, 403);
        assert.equal(res.json.error, 'not_authorized');
        res = await publishStream(hub, 'refused', 'x', { pwd: 'wrong' });
        assert.equal(res.status, 403);
        res = await request(hub, { method: 'POST', path: `/streams/refused?pwd=${PWD}`, body: 'via the query, as aiows' });
        assert.equal(res.status, 201);
        res = await publishStream(hub, 'refused', 'x', { pwd: PWD, contentType: 'image/png' });
        assert.equal(res.status, 415);
        assert.equal(res.json.error, 'bad_content_type');
        res = await publishStream(hub, 'refused', '{"a":', { pwd: PWD, contentType: 'application/json' });
        assert.equal(res.status, 400);
        assert.deepEqual(res.json, { error: 'bad_body', message: 'the body is not valid JSON' });
        res = await publishStream(hub, 'refused', Buffer.from([0xff, 0xfe]), { pwd: PWD, contentType: 'text/plain' });
        assert.equal(res.status, 400);
        res = await publishStream(hub, 'a%20b', 'x', { pwd: PWD });
        assert.equal(res.status, 400);
        assert.equal(res.json.error, 'bad_channel');
        res = await publishStream(hub, 'x'.repeat(201), 'x', { pwd: PWD });
        assert.equal(res.status, 400);
        res = await request(hub, { method: 'PUT', path: '/streams/refused', body: 'x' });
        assert.equal(res.status, 405);
        assert.equal(res.headers.allow, 'GET, POST');
        res = await request(hub, { path: '/streams' });
        assert.equal(res.status, 426);
        const position = JSON.parse((await request(hub, { path: '/streams/never-published' })).body);
        assert.deepEqual(position, { channel: 'never-published', epoch: '', offset: 0, oldest: 0 });
        const refused = JSON.parse((await request(hub, { path: '/streams/refused' })).body);
        assert.equal(refused.offset, 1, 'only the accepted publish took an offset');
    });

    test('payload rules: a refused publish gets the rule and takes no offset', async () => {
        const client = await StreamClient.open(hub);
        try {
            await client.subscribe('ruled.a');
            let res = await publishStream(hub, 'ruled.a', 'plain text', { pwd: PWD });
            assert.equal(res.status, 415);
            assert.equal(res.json.error, 'payload_rule');
            assert.equal(res.json.rule, 'types');
            assert.ok(res.json.message.length > 0);
            res = await publishStream(hub, 'ruled.a', JSON.stringify({ user: 'u', pad: 'x'.repeat(80) }), { pwd: PWD, contentType: 'application/json' });
            assert.equal(res.status, 413);
            assert.equal(res.json.rule, 'max_bytes');
            res = await publishStream(hub, 'ruled.a', '{"name": "no user"}', { pwd: PWD, contentType: 'application/json' });
            assert.equal(res.status, 422);
            assert.equal(res.json.rule, 'required');
            res = await publishStream(hub, 'ruled.a', '{ "user" : "ann" }', { pwd: PWD, contentType: 'application/json' });
            assert.equal(res.status, 201, res.body);
            assert.equal(res.json.offset, 1, 'the refused ones took no offset');
            await client.waitOffset('ruled.a', 1);
            assert.deepEqual(client.messages('ruled.a').map((m) => m.data), [{ user: 'ann' }]);
            assert.equal((await publishStream(hub, 'other', 'plain text', { pwd: PWD })).status, 201, 'no rule: anything goes');
        } finally {
            await client.close();
        }
    });

    test('protocol errors: each says what was wrong, and the connection stays usable', async () => {
        const client = await StreamClient.open(hub);
        try {
            const cases = [
                ['not json', 'bad_json'],
                [{ op: 'publish', channel: 'x' }, 'bad_op'],
                [{ op: 'subscribe', channel: 'has space' }, 'bad_channel'],
                [{ op: 'subscribe', channel: 'x', snce: { epoch: 'e', offset: 1 } }, 'bad_field'],
                [{ op: 'subscribe', channel: 'x', since: { epoch: 'e', offset: -1 } }, 'bad_since'],
                [{ op: 'ack', channel: 'x', offset: 1.5 }, 'bad_offset'],
                [{ op: 'ack', channel: 'not-mine', offset: 1 }, 'not_subscribed'],
                [{ op: 'unsubscribe', channel: 'not-mine' }, 'not_subscribed'],
            ];
            for (const [op, code] of cases) {
                const error = await client.expectError(op, { what: code });
                assert.equal(error.error, code, JSON.stringify(op));
                assert.ok(error.message.length > 0);
            }
            client.ws.send(Buffer.from('{}'), { binary: true });
            assert.equal((await client.waitFrame((f) => f.type === 'error' && /binary/.test(f.message))).error, 'bad_json');

            await client.subscribe('twice');
            assert.equal((await client.subscribe('twice')).error, 'already_subscribed');
            assert.equal((await client.expectError({ op: 'ack', channel: 'twice', offset: 0 })).error, 'bad_ack', 'no ack without ack: true');

            // At most 100 subscriptions per connection.
            for (let i = 0; i < 99; i++) client.send({ op: 'subscribe', channel: `many-${i}` });
            await client.waitFrame((f) => f.type === 'subscribed' && f.channel === 'many-98', { what: 'the 100th subscription' });
            assert.equal((await client.subscribe('one-too-many')).error, 'too_many_subscriptions');

            // Unsubscribe: answered, nothing more comes for that channel.
            const from = client.frames.length;
            client.send({ op: 'unsubscribe', channel: 'twice' });
            await client.waitFrame((f) => f.type === 'unsubscribed' && f.channel === 'twice', { from });
            await publishStream(hub, 'twice', 'after unsubscribe', { pwd: PWD });
            await publishStream(hub, 'many-0', 'marker', { pwd: PWD });
            await client.waitOffset('many-0', 1);
            assert.equal(client.messages('twice').length, 0);
            assert.equal((await client.subscribe('one-too-many')).type, 'subscribed', 'the freed place can be taken');
        } finally {
            await client.close();
        }
    });

    test('/metrics counts the streams API', async () => {
        const res = await request(hub, { path: '/metrics' });
        assert.match(res.body, /hub_published_total\{api="streams"\} \d+/);
        assert.match(res.body, /hub_stream_resumes_total\{api="streams",recovered="false"\} [1-9]/);
        assert.match(res.body, /hub_rejected_requests_total\{api="streams"\} [1-9]/);
    });
});

describe('streams: the --stream-... flags and HUB_STREAM_* variables', () => {
    test('history and ack window bounds take effect; --help lists them; a bad value exits 2', async () => {
        const hub = await startHub(['--stream-history-messages', '5', '--stream-ack-window=3'], {
            env: { HUB_STREAM_HISTORY_SECONDS: '60', HUB_STREAM_ACK_WINDOW: '100' },
        });
        try {
            const acked = await StreamClient.open(hub);
            await acked.subscribe('small', { ack: true });
            await publishMany(hub, 'small', 8);
            const position = JSON.parse((await request(hub, { path: '/streams/small' })).body);
            assert.deepEqual([position.offset, position.oldest], [8, 4], 'five messages kept');
            assert.equal((await acked.closed).code, 1008, 'the flag (3) won over the variable (100)');
            assert.equal(acked.messages('small').length, 3);

            const client = await StreamClient.open(hub);
            try {
                let answer = await client.subscribe('small', { since: { epoch: position.epoch, offset: 2 } });
                assert.equal(answer.reason, 'offset 2 is no longer in history (oldest kept is 4)');
                const again = await StreamClient.open(hub);
                answer = await again.subscribe('small', { since: { epoch: position.epoch, offset: 3 } });
                assert.equal(answer.recovered, true);
                await again.waitOffset('small', 8);
                await again.close();
            } finally {
                await client.close();
            }
        } finally {
            await hub.stop();
        }
        const help = spawnSync(binPath('websock-hub'), ['--help'], { encoding: 'utf8', timeout: ms(5000) });
        assert.equal(help.status, 0);
        for (const flag of ['--stream-history-messages', '--stream-history-bytes', '--stream-history-seconds', '--stream-ack-window', '--stream-ack-window-bytes'])
            assert.ok(help.stdout.includes(flag), `--help mentions ${flag}`);
        const bad = spawnSync(binPath('websock-hub'), ['--port', '0', '--stream-ack-window', '0'], { encoding: 'utf8', timeout: ms(5000) });
        assert.equal(bad.status, 2);
        assert.match(bad.stderr, /--stream-ack-window: must be a number from 1/);
    });
});

describe('streams: a stopping hub', () => {
    test('tells each subscriber (a going_away notice) before it closes them with 1001', async () => {
        const hub = await startHub(['--pwd', PWD]);
        const client = await StreamClient.open(hub);
        await client.subscribe('bye');
        await publishStream(hub, 'bye', 'one', { pwd: PWD });
        await client.waitOffset('bye', 1);
        await hub.stop();
        const closed = await client.closed;
        assert.equal(closed.code, 1001);
        const notice = client.frames.at(-1);
        assert.equal(notice.type, 'notice');
        assert.equal(notice.notice, 'going_away');
        assert.match(notice.message, /since/);
    });
});

describe('streams: 200 subscribers cut at once and resumed while publishing', () => {
    let hub;
    before(async () => {
        hub = await startHub(['--pwd', PWD, '--event-loops', '2']);
    });
    after(async () => {
        await hub.stop();
    });

    test('each of 200 gets every message exactly once and in order', { timeout: ms(60000) }, async () => {
        const channel = 'crowd';
        const count = 200;
        const firsts = await mapLimit(Array.from({ length: count }, (_, i) => i), 50, async () => {
            const client = await StreamClient.open(hub);
            assert.equal((await client.subscribe(channel)).type, 'subscribed');
            return client;
        });
        await publishMany(hub, channel, 10, { label: 'before', pwd: PWD });
        await Promise.all(firsts.map((c) => c.waitOffset(channel, 10)));
        await Promise.all(firsts.map((c) => c.cut()));
        await publishMany(hub, channel, 20, { label: 'away', pwd: PWD });
        const publisher = publishMany(hub, channel, 40, { label: 'during', pwd: PWD });
        const seconds = await mapLimit(firsts, 50, async (first) => {
            const last = first.messages(channel).at(-1);
            const client = await StreamClient.open(hub);
            const answer = await client.subscribe(channel, { since: { epoch: last.epoch, offset: last.offset } });
            assert.equal(answer.recovered, true);
            return client;
        });
        await publisher;
        try {
            await Promise.all(seconds.map((c) => c.waitOffset(channel, 70, { timeout: ms(20000) })));
            for (let i = 0; i < count; i++)
                assertExactlyOnce([firsts[i].messages(channel), seconds[i].messages(channel)], 1, 70, undefined, `subscriber ${i}`);
        } finally {
            await Promise.all(seconds.map((c) => c.close()));
        }
        await waitFor(async () => /hub_subscriptions\{api="streams"\} 0\b/.test((await request(hub, { path: '/metrics' })).body), {
            what: 'every subscription gone from /metrics',
        });
    });
});
