// A publisher or subscriber sending JSON nested a million levels deep: parsing it is fine,
// but re-serialising it recursed once per level and overflowed the stack, ending the hub
// with one request. Every API now refuses JSON deeper than 128 levels up front (400, or
// the protocol's error), and the hub serves on.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startHub, publish, broadcast, subscribe, nextMessage, closeWs } from './hub_helpers.mjs';
import { FAST, api } from './channelstream_harness.mjs';
import { StreamClient, publishStream } from './streams_harness.mjs';

const DEEP = '['.repeat(500000) + ']'.repeat(500000);
const DEEP_OBJECT = '{"a":'.repeat(200) + '1' + '}'.repeat(200);

describe('JSON nested too deep', () => {
    let hub;
    before(async () => {
        hub = await startHub([], { env: FAST });
    });
    after(async () => {
        await hub?.stop();  // asserts a clean exit: the hub lived through all of it
    });

    test('aiows: a json package and a broadcast are refused with 400', async () => {
        for (const body of [DEEP, DEEP_OBJECT]) {
            const res = await publish(hub, 'deep', body, { type: 'json' });
            assert.equal(res.status, 400, res.body);
            assert.match(JSON.parse(res.body), /nests deeper than 128 levels/);
        }
        const res = await broadcast(hub, `{"deep":[{"json":${DEEP}}]}`);
        assert.equal(res.status, 400, res.body);
        // 128 levels is still fine, and the hub still delivers.
        const ws = await subscribe(hub, 'deep');
        const ok = '['.repeat(127) + ']'.repeat(127);
        assert.equal((await publish(hub, 'deep', ok, { type: 'json' })).status, 201);
        assert.equal((await nextMessage(ws)).text, ok);
        await closeWs(ws);
    });

    test('channelstream: a deep /message body is refused as not JSON', async () => {
        const res = await api(hub, '/message', `[{"user":"u","channel":"c","message":${DEEP}}]`);
        assert.equal(res.status, 400, res.body);
        assert.equal((await api(hub, '/message', [{ user: 'u', channel: 'c', message: { text: 'fine' } }])).status, 200);
    });

    test('streams: a deep publish gets 400; a deep frame gets an error and the connection stays', async () => {
        const res = await publishStream(hub, 'deep', DEEP, { contentType: 'application/json' });
        assert.equal(res.status, 400, res.body);
        assert.match(res.body, /nests deeper than 128 levels/);
        const client = await StreamClient.open(hub);
        const error = await client.expectError(`{"op":"subscribe","channel":"deep","since":${DEEP_OBJECT}}`);
        assert.equal(error.error, 'bad_json');
        assert.match(error.message, /nests deeper/);
        const answer = await client.subscribe('deep');
        assert.equal(answer.type, 'subscribed');
        await client.close();
    });
});
