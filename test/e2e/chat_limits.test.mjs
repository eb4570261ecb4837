// The chat room against members that never read (no browser: Node's ws clients whose sockets
// are paused). Every member is sent a copy of every line, so what the server may hold for a
// member that does not read, times the room, is what such members can make it hold. Found by
// the second red-team round: 300 of them and one talker took websock-chat to 1.7 GB (4 MiB
// queued each); the bound is 1 MiB now.
//
//   cd test && WEBSOCK_BIN_DIR=../build/release/bin node --test e2e/chat_limits.test.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

import { ChatServer, EXTERNAL_URL, HOST, ms, waitFor, withTimeout } from './harness.mjs';

const SILENT_MEMBERS = 40;
const LINES = 1200;                    // 8 KB each (1,990 four-byte characters): 9.6 MB per member
const LINE = '\u{1F600}'.repeat(1990);  // with the line's number: under the 2,000-character limit

function rssKiB(pid) {
    const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(match[1]);
}

/** A member that has joined as `nick`; events are collected in `events` (unless paused). */
async function member(port, nick) {
    const ws = new WebSocket(`ws://${HOST}:${port}/chat`);
    const events = [];
    ws.on('message', (data) => events.push(JSON.parse(data.toString())));
    await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), ms(5000), `${nick} to connect`);
    ws.send(JSON.stringify({ type: 'join', nick }));
    await waitFor(() => events.some((e) => e.type === 'welcome'), { timeout: ms(10000), what: `${nick}'s welcome` });
    return { ws, events };
}

describe('websock-chat: members that never read', { skip: EXTERNAL_URL ? 'needs its own server (reads its RSS)' : false }, () => {
    const server = new ChatServer();
    const sockets = [];
    before(async () => {
        await server.start();
    });
    after(async () => {
        for (const ws of sockets) ws.terminate();
        server.kill();
    });

    test(`${SILENT_MEMBERS} silent members and a talker: memory stays near the per-member bound, the others are served`, async () => {
        const baseline = rssKiB(server.child.pid);
        for (let i = 0; i < SILENT_MEMBERS; i++) {
            const { ws } = await member(server.port, `silent${i}`);
            ws._socket.pause();  // reads nothing more: its backlog grows on the server
            sockets.push(ws);
        }
        const talker = await member(server.port, 'talker');
        const reader = await member(server.port, 'reader');
        sockets.push(talker.ws, reader.ws);
        let peak = 0;
        for (let i = 0; i < LINES; i++) {
            talker.ws.send(JSON.stringify({ type: 'say', text: `${i} ${LINE}` }));
            if (i % 100 === 0) {
                // the talker's own socket must drain, or it becomes a non-reader itself
                await waitFor(() => talker.ws.bufferedAmount < 1 << 20, { timeout: ms(10000), what: 'the talker to get its lines out' });
                peak = Math.max(peak, rssKiB(server.child.pid));
            }
        }
        // The one that reads gets every line, in order, while the others are silent.
        await waitFor(() => reader.events.filter((e) => e.type === 'message').length === LINES, {
            timeout: ms(60000),
            what: `the reader to get all ${LINES} lines`,
        });
        peak = Math.max(peak, rssKiB(server.child.pid));
        const texts = reader.events.filter((e) => e.type === 'message').map((e) => Number(e.text.split(' ')[0]));
        assert.deepEqual(texts, Array.from({ length: LINES }, (_, i) => i));
        // Before: about 5.5 MB per silent member (a 4 MiB queue and its allocations); now the
        // 1 MiB queue and its overhead. Kernel socket buffers are not in the RSS.
        const grownMiB = (peak - baseline) / 1024;
        assert.ok(grownMiB < SILENT_MEMBERS * 2.5, `websock-chat grew by ${grownMiB.toFixed(1)} MiB for ${SILENT_MEMBERS} silent members (bound ${SILENT_MEMBERS * 2.5})`);
        assert.equal(server.exit, null, 'websock-chat is still running');
    });
});
