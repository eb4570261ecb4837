// The WebSocket client (websock/client.hpp) through client_probe against raw node:net servers
// that give the answers a correct server never gives (a wrong accept key, an extension not
// offered, silence, a masked frame, no close answer), and that read the client's own bytes
// (request, masking, the outbound queue's limit). The harness is in client_harness.mjs; the
// other client tests are in client.test.mjs and client_ws_server.test.mjs.
//
// Loopback only; every wait has a deadline (ms() stretches them under the sanitizers).

import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';

import {
    HOST,
    MiB,
    OP,
    ms,
    waitFor,
    frame,
    closeFrame,
    parseClose,
    patternBytes,
} from './helpers.mjs';
import {
    hex,
    withProbe,
    startRawServer,
    switching,
    collectFrames,
} from './client_harness.mjs';

// ---------------------------------------------------------------------------------------
// against raw sockets: answers a correct server never gives

describe('client against raw sockets', () => {
    it('fails the connect on a wrong Sec-WebSocket-Accept, saying so', async () => {
        const server = await startRawServer((socket) => socket.write(switching('AAAAAAAAAAAAAAAAAAAAAA==')));
        try {
            await withProbe(server.url, [], async (probe) => {
                const connect = await probe.connectFailed();
                assert.equal(connect.kind, 'handshake');
                assert.match(connect.error, /wrong Sec-WebSocket-Accept/);
                assert.ok(connect.ms < ms(2000), `failed promptly (${connect.ms} ms)`);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('fails the connect on a non-101 status, naming it', async () => {
        const server = await startRawServer((socket) => socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found'));
        try {
            await withProbe(server.url, [], async (probe) => {
                const connect = await probe.connectFailed();
                assert.match(connect.error, /404 Not Found/);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('fails the connect on an extension it did not offer', async () => {
        const server = await startRawServer((socket, head, key) => socket.write(switching(key, 'Sec-WebSocket-Extensions: permessage-deflate\r\n')));
        try {
            await withProbe(server.url, [], async (probe) => {
                const connect = await probe.connectFailed();
                assert.match(connect.error, /extension 'permessage-deflate'/);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('fails the connect on a 101 that announces a body, naming the header', async () => {
        // Before: the connect succeeded, the body's bytes were read as a frame, and the client
        // closed with 1002 "reserved bits set" (second red-team round).
        for (const [header, body] of [['Content-Length: 5', 'hello'], ['Transfer-Encoding: chunked', '5\r\nhello\r\n0\r\n\r\n']]) {
            const server = await startRawServer((socket, head, key) => socket.write(switching(key, `${header}\r\n`) + body));
            try {
                await withProbe(server.url, [], async (probe) => {
                    const connect = await probe.connectFailed();
                    assert.equal(connect.kind, 'handshake');
                    assert.match(connect.error, new RegExp(`announces a body \\(${header.split(':')[0]}\\)`));
                    await probe.finish();
                });
            } finally {
                await server.close();
            }
        }
    });

    it('fails the connect when the server closes without answering', async () => {
        const server = await startRawServer((socket) => socket.end());
        try {
            await withProbe(server.url, [], async (probe) => {
                const connect = await probe.connectFailed();
                assert.match(connect.error, /closed the connection without answering/);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('gives up on a silent server after handshake_timeout', async () => {
        const server = await startRawServer(() => {}); // reads the request, never answers
        try {
            await withProbe(server.url, ['--handshake-timeout', '300'], async (probe) => {
                const connect = await probe.connectFailed();
                assert.equal(connect.kind, 'timeout');
                assert.match(connect.error, /no answer to the upgrade request/);
                assert.ok(connect.ms >= 250 && connect.ms < ms(3000), `gave up after ${connect.ms} ms`);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('delivers frames that arrive in the same packet as the 101', async () => {
        const server = await startRawServer((socket, head, key) =>
            socket.write(Buffer.concat([Buffer.from(switching(key)), frame({ opcode: OP.TEXT, payload: 'early bird', mask: false })])),
        );
        try {
            await withProbe(server.url, ['--close-timeout', '200'], async (probe) => {
                await probe.connected();
                await probe.expectMessage('early bird');
                await probe.finish(); // this server never answers the close: close_timeout ends it
            });
        } finally {
            await server.close();
        }
    });

    it('sends a valid request and masks every frame with a fresh key', async () => {
        let state;
        let request;
        const server = await startRawServer((socket, head, key) => {
            request = head;
            state = collectFrames(socket);
            socket.write(switching(key));
        });
        try {
            await withProbe(`${server.url}/raw?q=1`, ['--close-timeout', '200'], async (probe) => {
                await probe.connected();
                for (let i = 0; i < 8; i++) probe.send(`frame ${i}`);
                probe.send(patternBytes(70000, 2)); // a 64-bit length
                await waitFor(() => state && state.frames.length >= 9, { what: 'nine client frames' });
                const lines = request.split('\r\n');
                assert.equal(lines[0], 'GET /raw?q=1 HTTP/1.1');
                assert.ok(lines.includes(`Host: ${HOST}:${server.port}`), request);
                assert.ok(lines.includes('Upgrade: websocket'), request);
                assert.ok(lines.includes('Connection: Upgrade'), request);
                assert.ok(lines.includes('Sec-WebSocket-Version: 13'), request);
                assert.match(request, /\r\nSec-WebSocket-Key: [A-Za-z0-9+/]{22}==(\r\n|$)/);
                for (const f of state.frames) assert.equal(f.masked, true, 'every client frame is masked');
                const keys = new Set(state.frames.map((f) => f.key.toString('hex')));
                assert.equal(keys.size, state.frames.length, 'a fresh masking key for every frame');
                for (let i = 0; i < 8; i++) {
                    assert.equal(state.frames[i].opcode, OP.TEXT);
                    assert.equal(state.frames[i].payload.toString(), `frame ${i}`);
                }
                assert.equal(state.frames[8].opcode, OP.BINARY);
                assert.ok(state.frames[8].payload.equals(patternBytes(70000, 2)));
                await probe.finish(); // this server never answers the close: close_timeout ends it
            });
        } finally {
            await server.close();
        }
    });

    it('drops sends past max_outbound_queue_bytes with the Drop policy, and stays open', async () => {
        let state;
        let socketRef;
        const server = await startRawServer((socket, head, key) => {
            socketRef = socket;
            socket.write(switching(key));
            socket.pause(); // a server that does not read: the kernel buffers fill, then the queue
        });
        try {
            const args = ['--max-outbound-queue-bytes', String(MiB), '--queue-policy', 'drop'];
            await withProbe(server.url, args, async (probe) => {
                await probe.connected();
                probe.command(`flood ${256 * 1024} 200`);
                const flood = await probe.next('flood', { timeout: ms(10000) });
                assert.ok(flood.dropped > 0, `some were dropped: ${JSON.stringify(flood)}`);
                assert.equal(flood.closed, 0);
                const error = await probe.next('error');
                assert.equal(error.kind, 'queue full');
                assert.match(error.message, /message dropped/);
                state = collectFrames(socketRef);
                socketRef.resume();
                await waitFor(() => state.frames.length >= flood.queued, { timeout: ms(10000), what: 'every queued message' });
                assert.ok(state.frames.every((f) => f.opcode === OP.BINARY && f.payload.length === 256 * 1024));
                probe.command(`close 1000 `);
                await waitFor(() => state.frames.some((f) => f.opcode === OP.CLOSE), { what: 'the close frame' });
                socketRef.end(closeFrame(1000, '', { mask: false }));
                assert.equal((await probe.next('close')).code, 1000);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('closes with 1008 past max_outbound_queue_bytes with the Close policy', async () => {
        let state;
        let socketRef;
        const server = await startRawServer((socket, head, key) => {
            socketRef = socket;
            socket.write(switching(key));
            socket.pause();
        });
        try {
            await withProbe(server.url, ['--max-outbound-queue-bytes', String(MiB)], async (probe) => {
                await probe.connected();
                probe.command(`flood ${256 * 1024} 200`);
                const flood = await probe.next('flood', { timeout: ms(10000) });
                assert.ok(flood.closed > 0 && flood.dropped === 0, JSON.stringify(flood));
                assert.match((await probe.next('error')).message, /closing with 1008/);
                state = collectFrames(socketRef);
                socketRef.resume();
                await waitFor(() => state.frames.some((f) => f.opcode === OP.CLOSE), { timeout: ms(10000), what: 'the close frame' });
                const close = parseClose(state.frames.find((f) => f.opcode === OP.CLOSE).payload);
                assert.deepEqual([close.code, close.reason], [1008, 'outbound queue full']);
                socketRef.end(closeFrame(1008, '', { mask: false }));
                assert.equal((await probe.next('close')).code, 1008);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('fails the connection with 1002 when the server masks a frame', async () => {
        let state;
        let socketRef;
        const server = await startRawServer((socket, head, key) => {
            socketRef = socket;
            state = collectFrames(socket);
            socket.write(Buffer.concat([Buffer.from(switching(key)), frame({ opcode: OP.TEXT, payload: 'masked!', mask: true })]));
        });
        try {
            await withProbe(server.url, [], async (probe) => {
                await probe.connected();
                const error = await probe.next('error');
                assert.equal(error.kind, 'protocol');
                await waitFor(() => state?.frames.some((f) => f.opcode === OP.CLOSE), { what: 'the client\'s close frame' });
                const closeFrameSent = state.frames.find((f) => f.opcode === OP.CLOSE);
                assert.equal(parseClose(closeFrameSent.payload).code, 1002);
                socketRef.end(); // the server closes TCP; the client then ends
                const close = await probe.next('close');
                assert.equal(close.code, 1002);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('ends with 1006 after close_timeout when the server never answers its close', async () => {
        let state;
        const server = await startRawServer((socket, head, key) => {
            state = collectFrames(socket);
            socket.write(switching(key));
        });
        try {
            await withProbe(server.url, ['--close-timeout', '300'], async (probe) => {
                await probe.connected();
                const started = Date.now();
                probe.command(`close 1000 ${hex('please')}`);
                const close = await probe.next('close', { timeout: ms(5000) });
                assert.equal(close.code, 1006);
                assert.match(close.reason, /close handshake timed out/);
                assert.ok(Date.now() - started >= 250, 'waited for close_timeout');
                assert.ok(state.frames.some((f) => f.opcode === OP.CLOSE && parseClose(f.payload).code === 1000));
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('waits for the server to close TCP after the close handshake (section 7.1.1)', async () => {
        let state;
        let socketRef;
        const server = await startRawServer((socket, head, key) => {
            socketRef = socket;
            state = collectFrames(socket);
            socket.write(switching(key));
        });
        try {
            await withProbe(server.url, ['--close-timeout', String(ms(5000))], async (probe) => {
                await probe.connected();
                probe.command(`close 1000 `);
                await waitFor(() => state.frames.some((f) => f.opcode === OP.CLOSE), { what: 'the client\'s close frame' });
                socketRef.write(closeFrame(1000, '', { mask: false }));
                // The handshake is done, but the client keeps TCP open for the server to close first.
                probe.command('wait-closed 200');
                assert.equal((await probe.next('wait-closed')).closed, false);
                assert.equal(state.ended, false, 'the client has not closed TCP first');
                socketRef.end();
                const close = await probe.next('close');
                assert.equal(close.code, 1000);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });
});
