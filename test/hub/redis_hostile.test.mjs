// websock-hub against a "Redis" that answers with nonsense: a fake RESP server on a loopback
// port. The hub must refuse publishes (503) at once, stay up, and stop promptly; it never
// trusts a reply's size.
//
// Found by the second red-team round: an array header of 2^31-1 elements made hiredis 0.14
// calloc 16 GB and, dropping the link, walk every slot (8-14 s), so start-up took 3 s, the
// first publish 3-6 s and SIGTERM 8-14 s. Now such a header fails the link at once.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startHub, publish, metrics, ms, HOST } from './hub_helpers.mjs';

const PWD = 'hostile-redis-pwd';

/** A server that answers every chunk it reads with `reply` (never a real Redis reply). */
function fakeRedis(reply) {
    const sockets = new Set();
    const server = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('data', () => socket.write(reply));
        socket.on('error', () => {});
        socket.on('close', () => sockets.delete(socket));
    });
    return new Promise((resolve) => {
        server.listen(0, HOST, () =>
            resolve({
                url: `redis://${HOST}:${server.address().port}`,
                close: () => {
                    for (const socket of sockets) socket.destroy();
                    return new Promise((done) => server.close(done));
                },
            }),
        );
    });
}

for (const [engine, engineArgs] of [['event loops', []], ['thread per client', ['--threads']]]) {
    describe(`websock-hub (${engine}) and a Redis that announces a 2^31-element array`, () => {
        const cleanups = [];
        after(async () => {
            for (const cleanup of cleanups.reverse()) await cleanup();
        });

        test('publishes get 503 at once, the hub stays up and exits promptly on SIGTERM', async () => {
            const fake = await fakeRedis('*2147483647\r\n');
            cleanups.push(() => fake.close());
            const hub = await startHub(['--redis', fake.url, ...engineArgs], { env: { HUB_PWD: PWD } });
            cleanups.push(() => hub.kill());

            for (let i = 0; i < 3; ++i) {
                const begin = Date.now();
                const res = await publish(hub, 'hostile', `m${i}`, { pwd: PWD });
                assert.equal(res.status, 503, `publish ${i}: 503 while the bus is down, not ${res.status} ${res.body}`);
                // Before the fix the first one waited for the reader to give up on the reply (3-6 s).
                assert.ok(Date.now() - begin < ms(1500), `publish ${i} took ${Date.now() - begin} ms`);
            }
            assert.equal((await metrics(hub)).hub_bus_connected, 0);
            hub.assertAlive('after the hostile replies');

            const begin = Date.now();
            await hub.stop({ timeout: ms(4000) });  // asserts exit 0 and no sanitizer report
            assert.ok(Date.now() - begin < ms(4000), `SIGTERM to exit: ${Date.now() - begin} ms`);
        });
    });
}
