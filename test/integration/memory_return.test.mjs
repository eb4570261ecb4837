// Memory goes back after abusers leave: websock-echo's RSS, taken after a warm-up of ordinary
// traffic, must come back near that baseline once heavy abusers (non-readers of 8 MiB echoes,
// a deflate bomb, 1 MiB frames, 12 MiB messages read back) have gone. Without the programs'
// allocator settings (websock/malloc_tuning.hpp) glibc kept 40-90 MB after such a run (its
// dynamic mmap threshold moves big buffers into the heap and its arenas, where they stay).
//
// The engine is the suite's (WEBSOCK_ENGINE: threads, then event). The RSS bound is asserted
// in the release build only: ASan and TSan keep freed memory in quarantine on purpose.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import zlib from 'node:zlib';

import { ms, startServer, openWs, wsEcho, closeWs, waitFor, RawClient, frame, OP, MiB, KiB, patternBytes, HOST } from './helpers.mjs';

const build = process.env.WEBSOCK_BUILD || 'release';
const sanitized = build !== 'release';

function procStats(pid) {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return {
        rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)[1]),
        threads: Number(/Threads:\s+(\d+)/.exec(status)[1]),
        fds: readdirSync(`/proc/${pid}/fd`).length,
    };
}

/** Ordinary traffic: a few clients, small and 64 KiB messages, with and without deflate. */
async function ordinaryTraffic(port) {
    for (const perMessageDeflate of [false, true]) {
        const clients = await Promise.all([0, 1, 2].map(() => openWs(`ws://${HOST}:${port}/`, { options: { perMessageDeflate } })));
        for (let i = 0; i < 10; i++)
            await Promise.all(clients.map((ws, n) => wsEcho(ws, i % 2 ? patternBytes(64 * KiB, n + i) : `hello ${n} ${i} `.repeat(20))));
        await Promise.all(clients.map((ws) => closeWs(ws)));
    }
}

/**
 * Clients that send big messages and never read the echoes; each is cut (RST) once its
 * messages are written or after a deadline, whichever comes first.
 */
async function nonReaders(port, { clients = 3, messages = 3, size = 8 * MiB } = {}) {
    const message = frame({ opcode: OP.BINARY, payload: patternBytes(size, 7) });
    await Promise.all(Array.from({ length: clients }, async () => {
        const client = await RawClient.open(port);
        client.socket.pause();  // read nothing: the echoes pile up in the server
        const written = Promise.all(Array.from({ length: messages }, () => client.write(message)));
        await Promise.race([written, new Promise((resolve) => setTimeout(resolve, ms(5000)))]);
        client.socket.resetAndDestroy();
    }));
}

/** A compressed message that inflates past the 16 MiB limit: refused with 1009. */
async function deflateBomb(port) {
    const compressed = zlib.deflateRawSync(Buffer.alloc(64 * MiB), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const client = await RawClient.open(port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    await client.write(frame({ opcode: OP.BINARY, payload: compressed.subarray(0, compressed.length - 4), rsv: 4 }));
    await client.expectFail(1009, { timeout: ms(10000) });
}

/** Big messages echoed and read: 1 MiB frames, and a few 12 MiB messages. */
async function bigEchoes(port) {
    await Promise.all([0, 1].map(async (n) => {
        const ws = await openWs(`ws://${HOST}:${port}/`, { options: { maxPayload: 64 * MiB, perMessageDeflate: false } });
        for (let i = 0; i < 8; i++) await wsEcho(ws, patternBytes(MiB, n * 10 + i), { timeout: ms(10000) });
        for (let i = 0; i < 2; i++) await wsEcho(ws, patternBytes(12 * MiB, n + i), { timeout: ms(20000) });
        await closeWs(ws);
    }));
}

describe('memory returns to the baseline after abusers leave', () => {
    let echo;
    before(async () => {
        echo = await startServer('websock-echo', ['--quiet']);
    });
    after(async () => {
        if (echo) await echo.stop({ timeout: ms(10000) });
    });

    it('websock-echo: RSS comes back within 25% (or 3 MiB) of the warm baseline after heavy abuse', async (t) => {
        const pid = echo.child.pid;
        await ordinaryTraffic(echo.port);
        const idle = procStats(pid);
        const baseline = await waitFor(() => {  // settled: the warm-up's clients are gone
            const now = procStats(pid);
            return now.fds <= idle.fds && now.threads <= idle.threads ? now : null;
        }, { timeout: ms(5000), what: 'the warm-up clients to go' });

        const phases = [];
        await bigEchoes(echo.port);
        phases.push(procStats(pid).rssKiB);
        await deflateBomb(echo.port);
        phases.push(procStats(pid).rssKiB);
        await nonReaders(echo.port);
        phases.push(procStats(pid).rssKiB);
        await nonReaders(echo.port, { clients: 1, messages: 80, size: MiB });  // past the 64 MiB queue limit
        phases.push(procStats(pid).rssKiB);
        t.diagnostic(`RSS after big echoes, the bomb, 8 MiB non-readers, the 1 MiB non-reader: ${phases.join(", ")} KiB`);
        const peak = procStats(pid);

        // Every abuser has gone: the descriptors and threads are back first.
        await waitFor(() => {
            const now = procStats(pid);
            return now.fds <= baseline.fds && now.threads <= baseline.threads;
        }, { timeout: ms(15000), what: `descriptors and threads back to ${baseline.fds} and ${baseline.threads}` });

        const limitKiB = Math.max(Math.round(baseline.rssKiB * 1.25), baseline.rssKiB + 3 * 1024);
        let last = procStats(pid);
        const returned = await waitFor(() => (last = procStats(pid)).rssKiB <= limitKiB, {
            timeout: ms(10000),
            interval: 100,
            what: `RSS back under ${limitKiB} KiB`,
        }).then(() => true, () => false);
        const summary = `baseline ${baseline.rssKiB} KiB, after the abuse ${peak.rssKiB} KiB, now ${last.rssKiB} KiB (limit ${limitKiB} KiB)`;
        t.diagnostic(summary);
        if (sanitized) {
            t.diagnostic(`${build} build: the sanitizer's allocator quarantines freed memory, so the RSS bound is not asserted`);
        } else {
            assert.ok(returned, `the RSS did not come back: ${summary}`);
        }
        const ws = await openWs(`ws://${HOST}:${echo.port}/`);
        await wsEcho(ws, 'still serving');
        await closeWs(ws);
    });
});
