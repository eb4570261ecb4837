// The WebSocket client (websock/client.hpp) through client_probe against a Node `ws`
// WebSocketServer started here: messages, closes and pings both ways, subprotocols, auth and
// extra headers, IPv6 and names, the receive queue's limit, a dropped TCP connection. The
// harness is in client_harness.mjs; the other client tests are in client.test.mjs and
// client_raw_server.test.mjs.
//
// Loopback only; every wait has a deadline (ms() stretches them under the sanitizers).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
    HOST,
    MiB,
    ms,
    withTimeout,
    waitFor,
    patternBytes,
} from './helpers.mjs';
import {
    sha256,
    hex,
    withProbe,
    startWsServer,
} from './client_harness.mjs';

// ---------------------------------------------------------------------------------------
// against Node's ws server

describe('client against a Node ws server', () => {
    it('round-trips messages; ws accepts every frame (it fails unmasked client frames)', async () => {
        const server = await startWsServer();
        try {
            await withProbe(`${server.url}/room/1?x=y`, [], async (probe) => {
                await probe.connected();
                probe.send('text from websock');
                await probe.expectMessage('text from websock');
                const bytes = patternBytes(5000, 11);
                probe.send(bytes);
                await probe.expectMessage(bytes);
                const big = patternBytes(MiB, 5);
                probe.send(big);
                await probe.expectMessage(big, { timeout: ms(10000) });
                const connection = await server.connection();
                assert.equal(connection.request.url, '/room/1?x=y');
                assert.equal(connection.request.headers.host, `${HOST}:${server.port}`);
                assert.equal(connection.messages.length, 3);
                assert.equal(connection.messages[0].isBinary, false);
                assert.equal(connection.messages[0].data.toString(), 'text from websock');
                assert.ok(connection.messages[2].data.equals(big));
                await probe.finish();
                assert.deepEqual(await withTimeout(connection.closed, ms(5000), 'ws close'), { code: 1000, reason: '' });
                assert.deepEqual(connection.errors, [], 'ws saw no protocol error (masking included)');
            });
        } finally {
            await server.close();
        }
    });

    it('reports the server-initiated close code and reason to on_close', async () => {
        const server = await startWsServer({}, { echo: false });
        try {
            await withProbe(server.url, [], async (probe) => {
                await probe.connected();
                const connection = await server.connection();
                connection.ws.close(4001, 'server says bye');
                const close = await probe.next('close');
                assert.deepEqual([close.code, close.reason], [4001, 'server says bye']);
                const seen = await withTimeout(connection.closed, ms(5000), 'ws close');
                assert.equal(seen.code, 4001, 'the client echoes the code (section 5.5.1)');
                probe.command('status');
                const status = await probe.next('status');
                assert.deepEqual([status.close_code, status.initiator], [4001, 'remote']);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('answers the server\'s ping and reports it; its own ping gets the pong', async () => {
        const server = await startWsServer({}, { echo: false });
        try {
            await withProbe(server.url, [], async (probe) => {
                await probe.connected();
                const connection = await server.connection();
                connection.ws.ping(Buffer.from('from server'));
                assert.equal((await probe.next('ping')).hex, hex('from server'));
                await waitFor(() => connection.pongs.length > 0, { what: 'the pong at the ws server' });
                assert.equal(connection.pongs[0].toString(), 'from server');
                probe.command(`ping ${hex('from client')}`);
                assert.equal((await probe.next('pong')).hex, hex('from client'));
                await waitFor(() => connection.pings.length > 0, { what: 'the ping at the ws server' });
                assert.equal(connection.pings[0].toString(), 'from client');
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('sends and closes from inside on_message', async () => {
        const server = await startWsServer({}, { echo: false });
        try {
            await withProbe(server.url, [], async (probe) => {
                await probe.connected();
                const connection = await server.connection();
                connection.ws.send('reply:answered from the callback');
                await waitFor(() => connection.messages.length > 0, { what: 'the reply at the ws server' });
                assert.equal(connection.messages[0].data.toString(), 'answered from the callback');
                connection.ws.send('close:closed from the callback');
                const seen = await withTimeout(connection.closed, ms(5000), 'ws close');
                assert.deepEqual(seen, { code: 1000, reason: 'closed from the callback' });
                const close = await probe.next('close');
                assert.deepEqual([close.code, close.reason], [1000, 'closed from the callback']);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('connects to an IPv6 literal and to a name (localhost)', async (t) => {
        let server6;
        try {
            server6 = await startWsServer({ host: '::1' });
        } catch (err) {
            t.skip(`no IPv6 loopback: ${err.message}`);
            return;
        }
        try {
            await withProbe(`ws://[::1]:${server6.port}/six`, [], async (probe) => {
                await probe.connected();
                probe.send('over IPv6');
                await probe.expectMessage('over IPv6');
                assert.equal((await server6.connection()).request.headers.host, `[::1]:${server6.port}`);
                await probe.finish();
            });
        } finally {
            await server6.close();
        }
        // localhost may resolve to ::1 first: the client tries each address in turn.
        const server4 = await startWsServer();
        try {
            await withProbe(`ws://localhost:${server4.port}/name`, [], async (probe) => {
                await probe.connected();
                probe.send('by name');
                await probe.expectMessage('by name');
                assert.equal((await server4.connection()).request.headers.host, `localhost:${server4.port}`);
                await probe.finish();
            });
        } finally {
            await server4.close();
        }
    });

    it('pings an idle server every ping_interval', async () => {
        const server = await startWsServer({}, { echo: false });
        try {
            await withProbe(server.url, ['--ping-interval', String(ms(100))], async (probe) => {
                await probe.connected();
                const connection = await server.connection();
                await waitFor(() => connection.pings.length >= 2, { timeout: ms(5000), what: 'two keep-alive pings' });
                await probe.next('pong');
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('negotiates a subprotocol', async () => {
        const server = await startWsServer({ handleProtocols: (protocols) => (protocols.has('superchat') ? 'superchat' : false) });
        try {
            await withProbe(server.url, ['--protocol', 'chat', '--protocol', 'superchat'], async (probe) => {
                const connect = await probe.connected();
                assert.equal(connect.subprotocol, 'superchat');
                const connection = await server.connection();
                assert.equal(connection.request.headers['sec-websocket-protocol'], 'chat, superchat');
                assert.equal(connection.ws.protocol, 'superchat');
                probe.send('hi');
                await probe.expectMessage('hi');
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('fails when the server picks none of its subprotocols, unless told not to require one', async () => {
        const server = await startWsServer({ handleProtocols: () => false });
        try {
            await withProbe(server.url, ['--protocol', 'chat'], async (probe) => {
                const connect = await probe.connectFailed();
                assert.equal(connect.kind, 'handshake');
                assert.match(connect.error, /none of our subprotocols \(chat\)/);
                await probe.finish();
            });
            await withProbe(server.url, ['--protocol', 'chat', '--no-require-subprotocol'], async (probe) => {
                const connect = await probe.connected();
                assert.equal(connect.subprotocol, '');
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('sends Basic auth, Origin and extra headers', async () => {
        const server = await startWsServer();
        try {
            const args = ['--user', 'alice', '--password', 'pa:ss wörd', '--origin', 'http://app.example', '--header', 'X-Custom: 42'];
            await withProbe(server.url, args, async (probe) => {
                await probe.connected();
                const { headers } = (await server.connection()).request;
                assert.equal(headers.authorization, 'Basic ' + Buffer.from('alice:pa:ss wörd').toString('base64'));
                assert.equal(headers.origin, 'http://app.example');
                assert.equal(headers['x-custom'], '42');
                assert.equal(headers['sec-websocket-version'], '13');
                assert.equal(headers['sec-websocket-extensions'], undefined, 'no extension offered');
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('turns user:password@ in the URL into Basic auth', async () => {
        const server = await startWsServer();
        try {
            await withProbe(`ws://bob:s%40cret@${HOST}:${server.port}/`, [], async (probe) => {
                await probe.connected();
                const { headers } = (await server.connection()).request;
                assert.equal(headers.authorization, 'Basic ' + Buffer.from('bob:s@cret').toString('base64'));
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('fails the connect with the status when the server refuses (401)', async () => {
        const server = await startWsServer({ verifyClient: (info, done) => done(false, 401, 'Unauthorized') });
        try {
            await withProbe(server.url, [], async (probe) => {
                const connect = await probe.connectFailed();
                assert.equal(connect.kind, 'handshake');
                assert.match(connect.error, /401 Unauthorized/);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });

    it('receive(): past max_receive_queue_bytes it stops reading, and goes on as messages are taken', async () => {
        const server = await startWsServer({}, { echo: false });
        try {
            await withProbe(server.url, ['--receive-mode', '--max-receive-queue-bytes', String(64 * 1024)], async (probe) => {
                await probe.connected();
                const connection = await server.connection();
                const sent = Array.from({ length: 40 }, (_, i) => patternBytes(256 * 1024, 100 + i));
                for (const data of sent) connection.ws.send(data, { binary: true });
                for (const data of sent) {
                    probe.command('receive 5000');
                    const event = await probe.next('received', { timeout: ms(10000) });
                    assert.equal(event.sha256, sha256(data), 'in order and intact');
                }
                probe.command('receive 50');
                assert.equal((await probe.next('receive-timeout')).open, true);
                await probe.finish();
                assert.equal((await withTimeout(connection.closed, ms(5000), 'ws close')).code, 1000);
            });
        } finally {
            await server.close();
        }
    });

    it('reports 1006 when the server drops TCP without a close frame', async () => {
        const server = await startWsServer({}, { echo: false });
        try {
            await withProbe(server.url, [], async (probe) => {
                await probe.connected();
                (await server.connection()).ws.terminate();
                const close = await probe.next('close');
                assert.equal(close.code, 1006);
                assert.match(close.reason, /closed the TCP connection|connection lost|read/);
                probe.command('status');
                const status = await probe.next('status');
                assert.deepEqual([status.close_code, status.initiator], [1006, 'abnormal']);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });
});
