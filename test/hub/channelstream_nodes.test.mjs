// websock-hub's channelstream API on several nodes through Redis: presence and history
// shared between two nodes, and a node that starts late, or restarts, getting the state from
// the others. One hub's API is tested in channelstream.test.mjs; the shared signers and
// clients are in channelstream_harness.mjs.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startHub, closeWs, ms, waitFor } from './hub_helpers.mjs';
import { startRedis } from './redis.mjs';
import {
    FAST,
    api,
    connect,
    listenWs,
    nextEvent,
    ofType,
    waitSynced,
} from './channelstream_harness.mjs';

describe('channelstream on two nodes through Redis', () => {
    let redis, a, b;
    before(async () => {
        redis = await startRedis();
        a = await startHub(['--redis', redis.url], { env: FAST });
        b = await startHub(['--redis', redis.url], { env: FAST });
        await Promise.all([waitSynced(a), waitSynced(b)]);
    });
    after(async () => {
        await a?.stop();
        await b?.stop();
        await redis?.stop();
    });

    test('presence, history and messages are shared; catch-up works on the other node', async () => {
        await api(a, '/channel_config', { shared: { notify_presence: true, store_history: true } });
        const alice = await connect(a, 'r-alice', ['shared']);
        const wsAlice = await listenWs(b, alice.conn_id);  // connected through a, attached on b
        try {
            const bob = await connect(b, 'r-bob', ['shared']);
            const joined = await nextEvent(wsAlice, ofType('presence'));
            assert.equal(joined.user, 'r-bob');
            const [sent] = (await api(a, '/message', [{ user: 'r-bob', channel: 'shared', message: { text: 'via a' } }])).json;
            assert.equal((await nextEvent(wsAlice, ofType('message'))).uuid, sent.uuid);
            const infoB = await api(b, '/info', { info: { channels: ['shared'] } });
            assert.deepEqual(infoB.json.channels.shared.history.map((m) => m.uuid), [sent.uuid]);
            assert.deepEqual(infoB.json.channels.shared.users, ['r-alice', 'r-bob']);

            // bob attaches on a, drops, misses a message, comes back on b
            let wsBob = await listenWs(a, bob.conn_id);
            await closeWs(wsBob);
            const [missed] = (await api(a, '/message', [{ user: 'r-alice', channel: 'shared', message: { text: 'missed' } }])).json;
            wsBob = await listenWs(b, bob.conn_id);
            // (bob's first socket may have closed before "via a" reached it: then that comes again first)
            const caught = await nextEvent(wsBob, ofType('message', (e) => e.uuid === missed.uuid), 'the missed message');
            assert.equal(caught.catchup, true);
            await closeWs(wsBob);
        } finally {
            await closeWs(wsAlice);
        }
    });
});

describe('channelstream: a node that starts late, or restarts, gets the state from the others', () => {
    // Connections stay long enough here for a joiner's sync (a few seconds) to see them.
    const ENV = { ...FAST, CHANNELSTREAM_GC_CONNS_AFTER: '60' };
    let redis, a, b, c;
    before(async () => {
        redis = await startRedis();
        a = await startHub(['--redis', redis.url], { env: ENV });
        // Nobody holds a state yet: the first node waits for an answer (3 s), so it is syncing now.
        const early = await api(a, '/info', { info: {} });
        assert.equal(early.status, 503, early.body);
        assert.equal(early.headers['retry-after'], '1');
        assert.match(early.json.request, /node is syncing/);
        b = await startHub(['--redis', redis.url], { env: ENV });
        await Promise.all([waitSynced(a), waitSynced(b)]);
    });
    after(async () => {
        await a?.stop();
        await b?.stop();
        await c?.stop();
        await redis?.stop();
    });

    /** The signed /info of every channel, once both nodes agree (operations may be in flight). */
    async function sameInfo(x, y) {
        let last;
        await waitFor(async () => {
            const [ix, iy] = await Promise.all([api(x, '/info', { info: {} }), api(y, '/info', { info: {} })]);
            last = [ix, iy];
            return ix.status === 200 && iy.status === 200 && JSON.stringify(ix.json) === JSON.stringify(iy.json);
        }, { timeout: ms(10000), interval: 50, what: 'the same /info on both nodes' }).catch(() => {});
        assert.equal(last[1].status, 200, last[1].body);
        assert.deepEqual(last[1].json, last[0].json);
        return last[0].json;
    }

    test('a late node, then the same node restarted, hold the state; catch-up and messages work across', async () => {
        await api(a, '/channel_config', { late: { notify_presence: true, store_history: true, history_size: 20 } });
        const alice = await connect(a, 'l-alice', ['late'], { fresh_user_state: { mood: 'calm' }, state_public_keys: ['mood'] });
        const bob = await connect(b, 'l-bob', ['late']);
        const wsAlice = await listenWs(a, alice.conn_id);
        try {
            const history = [];  // every message of the channel, in order
            let missed = [];  // what bob has not seen
            const say = async (node, user, text) => {
                const [message] = (await api(node, '/message', [{ user, channel: 'late', message: { text } }])).json;
                history.push(message.uuid);
                return message.uuid;
            };
            for (let i = 0; i < 3; i += 1) missed.push(await say(a, 'l-alice', `before ${i}`));
            // bob was never attached: everything so far waits for him (catch-up)

            for (const round of ['late start', 'restart']) {
                if (c) {
                    await c.stop();
                    // what comes while it is down reaches it through the others' state
                    missed.push(await say(a, 'l-alice', 'while down'));
                }
                c = await startHub(['--redis', redis.url], { env: ENV });
                await waitSynced(c);
                const info = await sameInfo(a, c);
                assert.deepEqual(info.channels.late.history.map((m) => m.uuid), history, round);
                assert.deepEqual(info.channels.late.users, ['l-alice', 'l-bob'], round);
                assert.deepEqual(info.users.find((u) => u.user === 'l-alice').state, { mood: 'calm' }, round);

                // bob attaches on c to the connection made on b: he gets what he missed
                const wsBob = await listenWs(c, bob.conn_id);
                for (const uuid of missed) {
                    const caught = await nextEvent(wsBob, ofType('message', (e) => e.uuid === uuid), `${round}: missed message ${uuid}`);
                    assert.equal(caught.catchup, true);
                }
                // a message through c reaches alice on a (and bob on c, live)
                const viaC = await say(c, 'l-bob', `via c, ${round}`);
                assert.equal((await nextEvent(wsAlice, ofType('message', (e) => e.uuid === viaC), `${round}: the message via c`)).catchup, false);
                assert.equal((await nextEvent(wsBob, ofType('message', (e) => e.uuid === viaC))).catchup, false);
                missed = [];
                await closeWs(wsBob);
                await sameInfo(a, c);
                await sameInfo(b, c);
            }
        } finally {
            await closeWs(wsAlice);
        }
    });
});
