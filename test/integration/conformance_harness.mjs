// The conformance run's harness (conformance.test.mjs, conformance_utf8_close.test.mjs): one
// websock-echo per file, a raw client per case, and sending frames joined, frame by frame or
// byte by byte.
import { before, after, afterEach } from 'node:test';

import { startServer, assertServerServes, RawClient } from './helpers.mjs';

let server;

/**
 * One websock-echo for the whole file: started before its first case, checked alive after
 * every case and still serving at the end. Call once, at the top of a test file.
 */
export function useEchoServer() {
    before(async () => {
        server = await startServer('websock-echo');
    });

    after(async () => {
        if (server) {
            await assertServerServes(server, 'at the end of the conformance run');
            await server.stop();
        }
    });

    afterEach(() => {
        server?.assertAlive();
    });
}

/** Open a connection for one case, run it, and always release the socket. */
export async function withClient(fn) {
    const c = await RawClient.open(server.port);
    try {
        await fn(c);
    } finally {
        c.destroy();
    }
}

/**
 * Send frames: 'joined' (one TCP write), 'framewise' (one write per frame) or 'chopped'
 * (1-byte writes). Framewise and chopped stop once the server has closed.
 */
export async function send(c, frames, mode = 'joined') {
    const list = Array.isArray(frames) ? frames : [frames];
    if (mode === 'joined') return c.write(Buffer.concat(list));
    for (const f of list) {
        if (c.ended || c.closeReceived) return false;
        if (mode === 'framewise') await c.write(f);
        else if (mode === 'chopped') await c.writeChunked(f, 1);
        else if (typeof mode === 'number') await c.writeChunked(f, mode);
        else throw new Error(`unknown mode ${mode}`);
    }
    return true;
}

export const MODES = ['joined', 'framewise', 'chopped'];
