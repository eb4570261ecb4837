// wss://: the echo example with a self-signed certificate made at test time (openssl CLI),
// against Node's `ws` client over TLS 1.2 and 1.3; a failed TLS handshake costs nothing else.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { WebSocket, selfSignedCertificate, ms, waitFor, startServer, openWs, wsEcho, closeWs, nextWsMessage, withTimeout, once, HOST, MiB } from './helpers.mjs';

let dir;
let ca;
let server;

before(async () => {
    ({ dir, ca } = selfSignedCertificate('websock-tls-'));
    server = await startServer('websock-echo', ['--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem')]);
});

after(async () => {
    if (server) await server.stop({ timeout: ms(10000) });
    if (dir) rmSync(dir, { recursive: true, force: true });
});

const url = () => `wss://${HOST}:${server.port}/`;

describe('wss echo', () => {
    for (const version of ['TLSv1.3', 'TLSv1.2']) {
        it(`text, binary, 1 MiB and ping over ${version}`, async () => {
            const ws = await openWs(url(), { options: { ca, minVersion: version, maxVersion: version } });
            assert.equal(ws._socket.getProtocol(), version);
            await wsEcho(ws, 'hello over tls');
            await wsEcho(ws, Buffer.from([0, 1, 2, 255]), { binary: true });
            const big = Buffer.alloc(MiB);
            for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
            await wsEcho(ws, big, { binary: true, timeout: ms(10000) });
            const pong = once(ws, 'pong');
            ws.ping('tls-ping');
            assert.equal((await pong)[0].toString(), 'tls-ping');
            const closed = await closeWs(ws, 1000, 'done');
            assert.equal(closed.code, 1000);
        });
    }

    it('the certificate is checked by the client: an unknown CA is refused', async () => {
        const ws = new WebSocket(url());
        const error = await withTimeout(new Promise((resolve) => ws.on('error', resolve)), ms(5000), 'tls error');
        assert.match(error.message, /self[- ]signed|certificate/i);
    });

    it('50 concurrent wss clients each get their echo', async () => {
        const clients = await Promise.all(Array.from({ length: 50 }, () => openWs(url(), { options: { ca }, timeout: ms(15000) })));
        await Promise.all(clients.map((ws, i) => wsEcho(ws, `client ${i}`, { timeout: ms(10000) })));
        await Promise.all(clients.map((ws) => closeWs(ws)));
    });

    it('a failed TLS handshake (plain HTTP, garbage) is dropped and the server keeps serving', async () => {
        for (const bytes of [`GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, Buffer.alloc(16, 0xff)]) {
            const socket = net.connect({ host: HOST, port: server.port });
            await once(socket, 'connect', { rejectOnError: true });
            socket.on('error', () => {});
            socket.write(bytes);
            await withTimeout(new Promise((resolve) => socket.on('close', resolve)), ms(5000), 'server drops the socket');
        }
        const plainWs = new WebSocket(`ws://${HOST}:${server.port}/`);
        await withTimeout(new Promise((resolve) => plainWs.on('error', resolve)), ms(5000), 'plain ws refused');
        const ws = await openWs(url(), { options: { ca } });
        await wsEcho(ws, 'still serving');
        await closeWs(ws);
    });

    it('a client that hangs up in the middle of the TLS handshake is let go at once, not at the deadline', async () => {
        // Its FIN must end the handshake with an error at once: an EOF taken for "wait for
        // more" would leave the socket readable and the engine spinning until the deadline.
        const fx = await startServer('fixture_server', [
            '--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem'), '--handshake-timeout-ms', String(ms(20000)),
        ]);
        try {
            const socket = net.connect({ host: HOST, port: fx.port });
            socket.on('error', () => {});
            await once(socket, 'connect', { rejectOnError: true });
            socket.end();
            const line = await waitFor(() => fx.stderr.find((l) => /TLS handshake failed/.test(l)), {
                timeout: ms(5000), what: 'the failure reported long before the 20 s deadline',
            });
            assert.match(line, /eof|closed the connection/i);
            const ws = await openWs(`wss://${HOST}:${fx.port}/`, { options: { ca } });
            await wsEcho(ws, 'after a client that hung up');
            await closeWs(ws);
        } finally {
            await fx.stop({ timeout: ms(10000) });
        }
    });

    it('a client that never finishes its TLS handshake is dropped at the handshake deadline', async () => {
        const fx = await startServer('fixture_server', [
            '--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem'), '--handshake-timeout-ms', '300',
        ]);
        try {
            const socket = net.connect({ host: HOST, port: fx.port });
            socket.on('error', () => {});
            await once(socket, 'connect', { rejectOnError: true });
            const started = Date.now();
            await withTimeout(new Promise((resolve) => socket.on('close', resolve)), ms(5000), 'dropped at the deadline');
            assert.ok(Date.now() - started >= 250, 'not before the deadline');
            const ws = await openWs(`wss://${HOST}:${fx.port}/`, { options: { ca } });
            await wsEcho(ws, 'after a stalled TLS client');
            await closeWs(ws);
        } finally {
            await fx.stop({ timeout: ms(10000) });
        }
    });
});
