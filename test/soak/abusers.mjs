// The abusive clients, one function per kind. Each makes one connection, misbehaves in its
// own way for a bounded time and returns a short outcome ("reset", "server closed", "HTTP
// 503", ...) for the report. A wave runs `count` of one kind at once and then destroys every
// socket still open. What the soak checks is the server's side: it must survive, keep serving
// the good clients, and give back every descriptor, thread and byte once the abusers are gone.

import { randomBytes } from 'node:crypto';

import {
    OP,
    ms,
    binaryFrame,
    contFrame,
    frameHeader,
    maskBytes,
    parseHttpHead,
    patternBytes,
    textFrame,
    upgradeRequest,
    withTimeout,
} from '../integration/helpers.mjs';

const hold = (delay) => new Promise((resolve) => setTimeout(resolve, delay));

/** Whether the server ended the connection within `timeout` ms. */
const serverEnds = (client, timeout) => client.waitEnd({ timeout }).then(() => true, () => false);

const endedOutcome = (ended) => (ended ? 'server closed' : 'still open at the deadline');

/** Garbage that no WebSocket or HTTP parser accepts: 0xFF (FIN, RSV1-3, opcode 15), then noise. */
const garbage = (length) => Buffer.concat([Buffer.from([0xff]), randomBytes(length - 1)]);

export const ABUSE_KINDS = {
    /** A frame header promising 4 KiB, 1,000 bytes of it, then RST (SO_LINGER 0). */
    async 'reset-mid-frame'(ctx, path) {
        const client = await ctx.tracker.openWebSocket(path, ms(5000));
        const key = randomBytes(4);
        await client.write(Buffer.concat([frameHeader({ opcode: OP.BINARY, length: 4096, maskKey: key }), maskBytes(patternBytes(1000), key)]));
        client.socket.resetAndDestroy();
        return 'reset';
    },

    /**
     * Twenty 60,000-byte binary messages whose echoes are never read, the last one with RST
     * right behind it: the server reads that message (one read, under 64 KiB) together with
     * the reset, and writing its echo fails in the middle of reading. Nineteen go first and
     * the server is given a moment to take them, so that the last one arrives alone.
     */
    async 'reset-while-echoing'(ctx, path, index) {
        const client = await ctx.tracker.openWebSocket(path, ms(5000));
        client.pause();
        const payload = patternBytes(60000, 7);
        client.socket.write(Buffer.concat(Array.from({ length: 19 }, () => binaryFrame(payload))), () => {});
        const start = Date.now();
        while (client.socket.writableLength > 0 && Date.now() - start < ctx.holdMs) await hold(5);
        await hold(20 + (index % 5) * 40);  // varied, so that some land between two reads
        if (client.ended) return 'server closed first';
        await new Promise((resolve) => client.socket.write(binaryFrame(payload), () => resolve()));
        client.socket.resetAndDestroy();
        return 'reset';
    },

    /** Half of a fragmented message, then FIN (shutdown(SHUT_WR)) while still reading. */
    async 'half-close'(ctx, path) {
        const client = await ctx.tracker.openWebSocket(path, ms(5000));
        await client.write(textFrame('the first half of a message that never ends', { fin: false }));
        await client.write(contFrame('and a little more', { fin: false }));
        client.socket.end();
        return endedOutcome(await serverEnds(client, ctx.holdMs));
    },

    /** Subscribes (or sends ten 60,000-byte messages) and never reads; leaves after the hold time. */
    async 'slow-reader'(ctx, path) {
        const client = await ctx.tracker.openWebSocket(path, ms(5000));
        client.pause();
        if (ctx.echoes) {
            const payload = patternBytes(60000, 11);
            client.socket.write(Buffer.concat(Array.from({ length: 10 }, () => binaryFrame(payload))), () => {});
        }
        const ended = await serverEnds(client, ctx.holdMs);
        client.destroy();
        return ended ? 'server closed' : 'left unread';
    },

    /** An upgrade request one byte at a time, 200 ms apart: never finishes in time. */
    async slowloris(ctx, path) {
        const client = await ctx.tracker.httpClient(ms(5000));
        const request = Buffer.from(upgradeRequest({ port: ctx.port, path, headers: { 'X-Padding': 'p'.repeat(200) } }));
        const start = Date.now();
        for (let at = 0; at < request.length - 1 && Date.now() - start < ctx.slowlorisHoldMs; ++at) {
            if (client.ended) return `server closed after ${Math.round((Date.now() - start) / 100) / 10} s`;
            await client.write(request.subarray(at, at + 1));
            await hold(200);
        }
        const ended = client.ended;
        client.destroy();
        return ended ? 'server closed' : 'left unfinished';
    },

    /** 2 KiB of garbage, in place of the HTTP request (odd) or after the handshake (even). */
    async garbage(ctx, path, index) {
        if (index % 2 === 1) {
            const client = await ctx.tracker.httpClient(ms(5000));
            await client.write(garbage(2048));
            const ended = await serverEnds(client, ctx.holdMs);
            client.destroy();
            return `before the handshake: ${endedOutcome(ended)}`;
        }
        const client = await ctx.tracker.openWebSocket(path, ms(5000));
        await client.write(garbage(2048));
        const ended = await serverEnds(client, ctx.holdMs);
        client.destroy();
        return `after the handshake: ${endedOutcome(ended)}`;
    },

    /** A frame of 2^40 bytes, a frame one byte over the limit, or a 16 KiB request head. */
    async oversized(ctx, path, index) {
        if (index % 3 === 2) {
            const client = await ctx.tracker.httpClient(ms(5000));
            await client.write(upgradeRequest({ port: ctx.port, path, headers: { 'X-Padding': 'p'.repeat(16 * 1024) } }));
            const ended = await serverEnds(client, ctx.holdMs);
            const status = client.httpHead ? parseHttpHead(client.httpHead)?.status : null;
            client.destroy();
            return `16 KiB request head: ${status ? `HTTP ${status}` : 'no answer'}, ${endedOutcome(ended)}`;
        }
        const client = await ctx.tracker.openWebSocket(path, ms(5000));
        const key = randomBytes(4);
        const length = index % 3 === 0 ? 2 ** 40 : ctx.maxMessageBytes + 1;
        await client.write(Buffer.concat([frameHeader({ opcode: OP.BINARY, length, maskKey: key }), maskBytes(patternBytes(4096), key)]));
        const ended = await serverEnds(client, ctx.holdMs);
        const code = client.closeReceived?.payload?.length >= 2 ? client.closeReceived.payload.readUInt16BE(0) : null;
        client.destroy();
        return `${length === 2 ** 40 ? '2^40-byte' : 'limit+1'} frame: ${code ? `close ${code}` : 'no close frame'}, ${endedOutcome(ended)}`;
    },

    /**
     * One of a burst of connections opened at once, more than the server has descriptors
     * for: each sends an upgrade request and holds its connection until the wave's end.
     */
    async burst(ctx, path) {
        let client;
        try {
            client = await ctx.tracker.httpClient(Math.max(1, ctx.waveEnd - Date.now()));
        } catch {
            return 'connect did not complete';
        }
        client.write(upgradeRequest({ port: ctx.port, path }));
        await client.waitEnd({ timeout: Math.max(1, ctx.waveEnd - Date.now()) }).catch(() => {});
        const status = client.httpHead ? parseHttpHead(client.httpHead)?.status : null;
        const outcome = status ? `HTTP ${status}` : client.ended ? `closed without an answer` : 'no answer';
        client.destroy();
        return outcome;
    },
};

export const ABUSE_ORDER = Object.keys(ABUSE_KINDS);

/**
 * Run `count` abusers of `kind` at once on `paths` (one each); every socket is destroyed by
 * the end. Resolves {made, outcomes: {outcome: count}}.
 */
export async function runWave(kind, ctx, paths) {
    const abuse = ABUSE_KINDS[kind];
    const limit = ctx.waveEnd - Date.now() + ms(5000);
    const outcomes = {};
    const madeBefore = ctx.tracker.made;
    await Promise.all(
        paths.map(async (path, index) => {
            let outcome;
            try {
                outcome = await withTimeout(abuse(ctx, path, index), limit, `${kind} abuser`);
            } catch (err) {
                outcome = `failed: ${String(err.message).split('\n')[0].slice(0, 80)}`;
            }
            outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        }),
    );
    ctx.tracker.destroyAll();
    return { made: ctx.tracker.made - madeBefore, outcomes };
}
