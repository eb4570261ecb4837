// websock-hub's resumable streams with acknowledged delivery: what is not acked comes again
// on resume (at least once); history is pulled as the window opens; a subscriber past its
// window (in messages or in bytes) is told so and closed with 1008, never silently skipped.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startHub, request, ms, mapLimit } from './hub_helpers.mjs';
import { StreamClient, publishStream, publishMany, assertExactlyOnce } from './streams_harness.mjs';

// The module's defaults (hub/streams/module.hpp): 1000 messages or 4 MiB unacked.
const WINDOW = 1000;
const WINDOW_BYTES = 4 * 1024 * 1024;

describe('streams: acknowledged delivery', () => {
    let hub;
    before(async () => {
        hub = await startHub([]);
    });
    after(async () => {
        await hub.stop();
    });

    test('what was not acked comes again on resume; the client dedupes nothing it acked', async () => {
        const channel = 'ack-redeliver';
        const first = await StreamClient.open(hub);
        const answer = await first.subscribe(channel, { ack: true });
        assert.equal(answer.ack, true);
        await publishMany(hub, channel, 5);
        await first.waitOffset(channel, 5);
        first.send({ op: 'ack', channel, offset: 3 });
        // An ack is not answered; an ack beyond what was delivered is an error.
        const error = await first.expectError({ op: 'ack', channel, offset: 6 });
        assert.equal(error.error, 'bad_ack');
        assert.equal(error.message, 'offset 6 was not delivered yet (last delivered is 5)');
        await first.cut();
        await publishMany(hub, channel, 2, { label: 'away' });

        const epoch = first.messages(channel)[0].epoch;
        const second = await StreamClient.open(hub);
        try {
            const resumed = await second.subscribe(channel, { since: { epoch, offset: 3 }, ack: true });
            assert.equal(resumed.recovered, true);
            await second.waitOffset(channel, 7);
            assert.deepEqual(second.messages(channel).map((m) => m.offset), [4, 5, 6, 7], '4 and 5 again: they were never acked');
            assert.deepEqual(second.messages(channel).slice(0, 2), first.messages(channel).slice(3, 5), 'the same messages');
        } finally {
            await second.close();
        }
    });

    test(`past the window of ${WINDOW} unacked messages: a notice, then 1008`, async () => {
        const channel = 'ack-window';
        const client = await StreamClient.open(hub);
        await client.subscribe(channel, { ack: true });
        await mapLimit(Array.from({ length: WINDOW + 1 }, (_, i) => i), 8, async (i) => {
            const res = await publishStream(hub, channel, `w-${i}`);
            assert.equal(res.status, 201);
        });
        const closed = await client.closed;
        assert.equal(closed.code, 1008);
        assert.equal(closed.reason, `ack window full on channel ${channel}`);
        assert.equal(client.messages(channel).length, WINDOW, 'every message in the window was delivered, none after');
        const notice = client.frames.at(-1);
        assert.deepEqual(notice, {
            type: 'notice',
            notice: 'ack_window_full',
            channel,
            message: `${WINDOW} messages (${client.messages(channel).reduce((n, m) => n + Buffer.byteLength(m.data), 0)} bytes) are not acknowledged; the window is ${WINDOW} messages or ${WINDOW_BYTES} bytes`,
        });
        const metrics = (await request(hub, { path: '/metrics' })).body;
        assert.match(metrics, /hub_stream_ack_window_cuts_total\{api="streams"\} [1-9]/);
    });

    test('past the window in bytes: a notice, then 1008; a prompt acker is never cut', async () => {
        const channel = 'ack-bytes';
        const slow = await StreamClient.open(hub);
        const prompt = await StreamClient.open(hub);
        await slow.subscribe(channel, { ack: true });
        await prompt.subscribe(channel, { ack: true });
        prompt.ws.on('message', (data) => {
            const frame = JSON.parse(data.toString());
            if (frame.type === 'message') prompt.send({ op: 'ack', channel, offset: frame.offset });
        });
        const big = 'b'.repeat(1_000_000);
        for (let i = 0; i < 5; i++) {
            assert.equal((await publishStream(hub, channel, big)).status, 201);
            await prompt.waitOffset(channel, i + 1);
        }
        const closed = await slow.closed;
        assert.equal(closed.code, 1008);
        assert.equal(slow.messages(channel).length, 4, '4 MB fit in 4 MiB; the fifth does not');
        assert.equal(slow.frames.at(-1).notice, 'ack_window_full');
        assert.equal(prompt.ws.readyState, 1, 'the subscriber that acks stays');
        await prompt.close();
    });

    test('a resume with more unacked messages than the window gets them all, as it acks', { timeout: ms(60000) }, async () => {
        const channel = 'ack-pull';
        const total = 2500;  // 2.5 windows
        await mapLimit(Array.from({ length: total }, (_, i) => i), 8, async (i) => {
            assert.equal((await publishStream(hub, channel, `p-${i}`)).status, 201);
        });
        const { epoch } = JSON.parse((await request(hub, { path: `/streams/${channel}` })).body);
        const client = await StreamClient.open(hub);
        try {
            // Ack in batches of 100, as a client that processes messages in batches would.
            let acked = 0;
            client.ws.on('message', (data) => {
                const frame = JSON.parse(data.toString());
                if (frame.type === 'message' && frame.offset - acked >= 100) {
                    acked = frame.offset;
                    client.send({ op: 'ack', channel, offset: frame.offset });
                }
            });
            const answer = await client.subscribe(channel, { since: { epoch, offset: 0 }, ack: true });
            assert.equal(answer.recovered, true);
            await client.waitOffset(channel, total, { timeout: ms(30000) });
            assertExactlyOnce([client.messages(channel)], 1, total);
            assert.equal(client.ws.readyState, 1, 'never cut: history waited for the acks');
        } finally {
            await client.close();
        }
    });
});
