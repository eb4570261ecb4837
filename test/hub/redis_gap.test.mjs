// Two websock-hub nodes through one Redis, and Redis losing entries that one node had not read
// yet: node B stalls (SIGSTOP, as a swapped or frozen node would), node A's publishes are
// accepted (201: A delivered them), Redis restarts empty, B goes on. The rule: an accepted
// publish reaches every live subscriber, or that subscriber is told. B's aiows subscriber must
// either get every accepted message or be closed with 1012 saying messages were lost.
//
// Found by the second red-team round: B's subscriber silently missed 19 of 20 accepted
// messages (it stayed open and got the later ones). Now B notices the hole in A's sequence
// numbers when A's next entry arrives, and closes its aiows subscribers first.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';

import { startHub, publish, metrics, subscribe, ms, waitFor, closeWs } from './hub_helpers.mjs';
import { startRedis } from './redis.mjs';

const PWD = 'redis-gap-pwd';
const texts = (ws) => ws.inbox.map((m) => m.data.toString());

for (const [engine, engineArgs] of [['event loops', []], ['thread per client', ['--threads']]]) {
    describe(`websock-hub (${engine}): Redis loses what a stalled node had not read`, () => {
        const cleanups = [];
        after(async () => {
            for (const cleanup of cleanups.reverse()) await cleanup();
        });

        test("the stalled node's subscriber gets every accepted message or a 1012 saying they were lost", async () => {
            const redis = await startRedis();
            cleanups.push(() => redis.stop());
            const a = await startHub(['--redis', redis.url, ...engineArgs], { env: { HUB_PWD: PWD } });
            cleanups.push(() => a.kill());
            const b = await startHub(['--redis', redis.url, ...engineArgs], { env: { HUB_PWD: PWD } });
            cleanups.push(() => b.kill());
            for (const node of [a, b]) await waitFor(async () => (await metrics(node)).hub_bus_connected === 1, { what: 'the node on Redis' });

            const onB = await subscribe(b, 'gap');
            const accepted = [];
            const publishFromA = async (text) => {
                const res = await publish(a, 'gap', text, { pwd: PWD });
                if (res.status === 201) accepted.push(text);
                return res.status;
            };
            assert.equal(await publishFromA('before'), 201);
            await waitFor(() => texts(onB).includes('before'), { what: "B's subscriber to get the first message" });

            b.child.kill('SIGSTOP');
            try {
                for (let i = 0; i < 10; ++i) assert.equal(await publishFromA(`stalled${i}`), 201, 'A accepts while B is stalled');
                await redis.kill();
                await redis.start();  // empty: what B had not read is gone
            } finally {
                b.child.kill('SIGCONT');
            }
            for (const node of [a, b]) {
                await waitFor(async () => (await metrics(node)).hub_bus_connected === 1, { timeout: ms(15000), what: 'the node back on Redis' });
            }
            assert.equal(await publishFromA('after'), 201);

            // Either everything accepted arrives, or the subscriber is closed and told why.
            const outcome = await Promise.race([
                onB.closed.then((close) => ({ close })),
                waitFor(() => accepted.every((text) => texts(onB).includes(text)), { timeout: ms(10000), what: 'every accepted message on B' }).then(() => ({ all: true })),
            ]);
            if (outcome.close) {
                assert.equal(outcome.close.code, 1012, `closed with ${outcome.close.code} ${outcome.close.reason}`);
                assert.match(outcome.close.reason, /lost/);
                await b.waitStderr(/were lost here/);
            } else {
                assert.deepEqual(texts(onB), accepted, 'every accepted message, in order, once');
            }
            await closeWs(onB);
            for (const node of [a, b]) node.assertAlive('after the gap');
            await a.stop();
            await b.stop();
        });
    });
}
