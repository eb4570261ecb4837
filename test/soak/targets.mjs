// The servers under soak and what differs between them: how each starts, which good clients
// it gets, and where its abusers connect.
//
// Descriptor budget: a connection costs the thread engine two descriptors (its socket and its
// eventfd waker) and the event loop one; every server gets 2 per good client, 2 per abuser of the largest ordinary
// wave, and BASE_FDS for its own (listening socket, epoll, wakers, stdio, Redis). A burst then
// overruns that by far; the good clients still fit.

import { mapLimit } from '../integration/helpers.mjs';
import { startRedis } from '../hub/redis.mjs';
import { ServerUnderSoak } from './server_process.mjs';
import { EchoFleet } from './echo_fleet.mjs';
import { HubFleet } from './hub_fleet.mjs';
import { CHANNELSTREAM_ENV, connectUser } from './channelstream_api.mjs';

const BASE_FDS = 64;

export function fdLimitFor(profile) {
    return BASE_FDS + 2 * profile.goodClients + 2 * profile.wave;
}

function echoTarget(engine, loops = 1) {
    const args = ['--engine', engine, ...(loops > 1 ? ['--event-loops', String(loops)] : [])];
    return {
        name: `websock-echo ${args.join(' ')}`,
        fdLimit: fdLimitFor,
        async start(profile) {
            const server = await ServerUnderSoak.start('websock-echo', args, { fdLimit: fdLimitFor(profile) });
            return { server, cleanup: async () => {} };
        },
        fleet: (server, profile) => new EchoFleet(server.url, profile.goodClients, { intervalMs: profile.echoIntervalMs }),
        abuse: {
            echoes: true,
            maxMessageBytes: 16 << 20,  // websock-echo's default --max-message-bytes
            async paths(server, kind, count) {
                return Array(count).fill('/');
            },
        },
    };
}

function hubTarget({ redis, loops = 1 }) {
    const loopArgs = loops > 1 ? ['--event-loops', String(loops)] : [];
    return {
        name: `websock-hub aiows + channelstream${redis ? ' --redis' : ''}${loops > 1 ? ` --event-loops ${loops}` : ''}`,
        fdLimit: fdLimitFor,
        async start(profile) {
            const redisServer = redis ? await startRedis() : null;
            let server;
            try {
                server = await ServerUnderSoak.start('websock-hub', [...(redisServer ? ['--redis', redisServer.url] : []), ...loopArgs], {
                    fdLimit: fdLimitFor(profile),
                    env: CHANNELSTREAM_ENV,
                });
            } catch (err) {
                await redisServer?.stop();
                throw err;
            }
            if (redisServer) await HubFleet.waitSynced(server);
            return { server, cleanup: async () => redisServer?.stop() };
        },
        fleet: (server, profile) => new HubFleet(server, profile.goodClients, { intervalMs: profile.publishIntervalMs }),
        abuse: {
            echoes: false,
            maxMessageBytes: 64 << 10,  // the hub's limit on what a subscriber sends
            // Half the abusers on a busy aiows channel, half on channelstream connections of a
            // busy channel (each a fresh signed /connect). The burst stays on aiows: it must
            // arrive all at once, without a request each first.
            async paths(server, kind, count) {
                if (kind === 'burst') return Array(count).fill('/channel/burst/');
                const channelstream = await mapLimit([...Array(Math.floor(count / 2)).keys()], 10, async () => {
                    const connId = await connectUser(server, 'soak-abuser', ['cs:0']);
                    return `/ws?conn_id=${connId}`;
                });
                return Array.from({ length: count }, (_, i) => (i % 2 === 0 ? '/channel/soak:0/' : channelstream[(i - 1) / 2]));
            },
        },
    };
}

// The event loop also with two loops: loop 0 hands connections to loop 1 while the abusers
// come and go, and the hub's callbacks run on two threads at once.
export const TARGETS = [
    echoTarget('threads'),
    echoTarget('event'),
    echoTarget('event', 2),
    hubTarget({ redis: false }),
    hubTarget({ redis: false, loops: 2 }),
    hubTarget({ redis: true }),
];
