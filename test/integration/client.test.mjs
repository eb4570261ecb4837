// The WebSocket client (websock/client.hpp) end to end, through client_probe (a WebSocketClient
// driven through stdin, reporting every callback as a JSON line). This file: against
// websock's own echo server (the example program websock-client gets one run too), opening
// errors, wss:// and permessage-deflate. Against a Node `ws` server: client_ws_server.test.mjs;
// against raw sockets that give the answers a correct server never gives:
// client_raw_server.test.mjs. Their shared harness: client_harness.mjs.
//
// Loopback only; every wait has a deadline (ms() stretches them under the sanitizers).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';

import { WebSocketServer } from 'ws';

import {
    HOST,
    MiB,
    ms,
    binPath,
    startServer,
    withTimeout,
    patternBytes,
    utf8Text,
} from './helpers.mjs';
import {
    sha256,
    hex,
    SANITIZER,
    withProbe,
    startWsServer,
    closedPort,
} from './client_harness.mjs';

// ---------------------------------------------------------------------------------------
// against websock's echo server

describe('client against websock-echo', () => {
    let echo;
    before(async () => {
        echo = await startServer('websock-echo');
    });
    after(async () => {
        if (echo) await echo.stop();
    });

    it('round-trips text and binary messages, keeping the type', async () => {
        await withProbe(`${echo.url}/echo`, [], async (probe) => {
            await probe.connected();
            await probe.next('open');
            probe.send('Hello, wörld! κόσμε 😀');
            await probe.expectMessage('Hello, wörld! κόσμε 😀');
            const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
            probe.send(every);
            await probe.expectMessage(every);
            probe.send('');
            await probe.expectMessage('');
            probe.send(Buffer.alloc(0));
            await probe.expectMessage(Buffer.alloc(0));
            await probe.finish();
            const close = await probe.next('close');
            assert.equal(close.code, 1000, 'the destructor closes with 1000 and the server echoes it');
        });
    });

    it('round-trips 1 MiB text and 1 MiB binary messages', async () => {
        await withProbe(echo.url, [], async (probe) => {
            await probe.connected();
            const text = utf8Text(MiB);
            const bytes = patternBytes(MiB, 7);
            probe.send(text);
            probe.send(bytes);
            await probe.expectMessage(text, { timeout: ms(10000) });
            await probe.expectMessage(bytes, { timeout: ms(10000) });
            await probe.finish();
        });
    });

    it('keeps the order of 200 pipelined messages of both types', async () => {
        await withProbe(echo.url, [], async (probe) => {
            await probe.connected();
            const sent = [];
            for (let i = 0; i < 200; i++) {
                const data = i % 3 === 0 ? patternBytes(1 + ((i * 37) % 3000), i) : `message ${i} ${'x'.repeat(i)}`;
                sent.push(data);
                probe.send(data);
            }
            for (const data of sent) await probe.expectMessage(data);
            await probe.finish();
        });
    });

    it('takes sends from several threads at once, each thread\'s messages in order', async () => {
        await withProbe(echo.url, [], async (probe) => {
            await probe.connected();
            probe.command('burst 4 250');
            assert.equal((await probe.next('burst', { timeout: ms(10000) })).queued, 1000);
            const next = [0, 0, 0, 0];
            for (let n = 0; n < 1000; n++) {
                const event = await probe.next('message', { timeout: ms(10000) });
                const [thread, index] = Buffer.from(event.hex, 'hex').toString().slice(1).split(' ').map(Number);
                assert.equal(index, next[thread], `thread ${thread}: message ${index} after ${next[thread] - 1}`);
                next[thread]++;
            }
            assert.deepEqual(next, [250, 250, 250, 250]);
            await probe.finish();
        });
    });

    it('pings and gets the pong with the same payload', async () => {
        await withProbe(echo.url, [], async (probe) => {
            await probe.connected();
            probe.command(`ping ${hex('are you there?')}`);
            assert.equal((await probe.next('result')).result, 'Queued');
            const pong = await probe.next('pong');
            assert.equal(pong.hex, hex('are you there?'));
            probe.command(`ping ${hex(Buffer.alloc(126))}`);
            assert.equal((await probe.next('result')).result, 'Dropped', 'a ping payload over 125 bytes is refused');
            await probe.finish();
        });
    });

    it('closes first: the server answers, on_close reports our code and reason, later sends are refused', async () => {
        await withProbe(echo.url, [], async (probe) => {
            await probe.connected();
            probe.command(`close 1000 ${hex('bye now')}`);
            assert.equal((await probe.next('result')).result, 'Queued');
            const close = await probe.next('close');
            assert.deepEqual([close.code, close.reason], [1000, 'bye now']);
            probe.command('wait-closed 5000');
            assert.equal((await probe.next('wait-closed')).closed, true);
            probe.send('too late');
            assert.equal((await probe.next('result')).result, 'Closed');
            probe.command('status');
            const status = await probe.next('status');
            assert.equal(status.open, false);
            assert.equal(status.close_code, 1000);
            assert.equal(status.initiator, 'local');
            await probe.finish();
        });
    });

    it('refuses close codes that may not be sent', async () => {
        await withProbe(echo.url, [], async (probe) => {
            await probe.connected();
            for (const code of [1005, 1006, 1015, 999, 2000]) {
                probe.command(`close ${code} `);
                assert.equal((await probe.next('result')).result, 'Dropped', `close ${code}`);
            }
            probe.send('still open');
            await probe.expectMessage('still open');
            await probe.finish();
        });
    });

    it('receive_for(): blocks for a message, says Timeout while open, and Closed at once after the end', async () => {
        await withProbe(echo.url, ['--receive-mode'], async (probe) => {
            await probe.connected();
            const started = Date.now();
            probe.command('receive 100');
            const timeout = await probe.next('receive-timeout');
            assert.equal(timeout.open, true);
            assert.ok(Date.now() - started < ms(3000), 'the timeout is honoured');
            probe.send('queued for receive');
            probe.send(patternBytes(70000, 3));
            probe.command('receive 5000');
            probe.command('receive 5000');
            const first = await probe.next('received');
            assert.deepEqual([first.type, first.sha256], ['text', sha256('queued for receive')]);
            const second = await probe.next('received');
            assert.deepEqual([second.type, second.sha256], ['binary', sha256(patternBytes(70000, 3))]);
            probe.command(`close 1000 `);
            await probe.next('close');
            const closedAt = Date.now();
            probe.command('receive 5000');
            const after = await probe.next('receive-closed');
            assert.equal(after.open, false);
            assert.ok(Date.now() - closedAt < ms(3000), 'receive_for() returns at once after the end');
            await probe.finish();
        });
    });

    it('websock-client (the example) sends stdin lines and prints the echoes', async () => {
        const file = binPath('websock-client');
        assert.ok(existsSync(file), `${file} not built`);
        const child = spawn(file, [`${echo.url}/example`], { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c) => (stdout += c));
        child.stderr.on('data', (c) => (stderr += c));
        const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
        child.stdin.end('first line\nsecond, wörld\r\nno newline at the end');
        let result;
        try {
            result = await withTimeout(exited, ms(10000), 'websock-client to exit');
        } finally {
            child.kill('SIGKILL');
        }
        assert.ok(!SANITIZER.test(stderr), stderr);
        assert.deepEqual(result, { code: 0, signal: null }, stderr);
        assert.equal(stdout, 'first line\nsecond, wörld\nno newline at the end\n');
        assert.match(stderr, /closed \(1000\)/);
    });
});

// ---------------------------------------------------------------------------------------
// opening errors

describe('client: opening errors', () => {
    it('fails promptly on a closed port', async () => {
        const port = await closedPort();
        await withProbe(`ws://${HOST}:${port}/`, [], async (probe) => {
            const connect = await probe.connectFailed();
            assert.equal(connect.kind, 'io');
            assert.match(connect.error, /refused/i);
            assert.ok(connect.ms < ms(1000), `failed in ${connect.ms} ms`);
            await probe.finish();
        });
    });

    it('refuses bad URLs before connecting', async () => {
        for (const [url, pattern] of [
            ['http://127.0.0.1/', /scheme/],
            [`ws://${HOST}:99999/`, /port/],
            [`ws://${HOST}:1/#fragment`, /fragment/],
        ]) {
            await withProbe(url, [], async (probe) => {
                const connect = await probe.connectFailed();
                assert.equal(connect.kind, 'handshake');
                assert.match(connect.error, pattern);
                await probe.finish();
            });
        }
    });
});

describe('client over wss://', () => {
    let dir;
    let certFile;
    let echo;
    before(async () => {
        dir = mkdtempSync(path.join(os.tmpdir(), 'websock-client-tls-'));
        certFile = path.join(dir, 'cert.pem');
        execFileSync('openssl', [
            'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
            '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
            '-keyout', path.join(dir, 'key.pem'), '-out', certFile,
        ], { stdio: 'ignore' });
        echo = await startServer('websock-echo', ['--tls-cert', certFile, '--tls-key', path.join(dir, 'key.pem')]);
    });
    after(async () => {
        if (echo) await echo.stop();
        if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('round-trips against websock-echo, trusting the test CA', async () => {
        await withProbe(`wss://${HOST}:${echo.port}/`, ['--ca-file', certFile], async (probe) => {
            await probe.connected();
            await probe.next('open');
            probe.send('over tls');
            await probe.expectMessage('over tls');
            const big = Buffer.alloc(MiB, 7);
            probe.send(big);
            await probe.expectMessage(big, { timeout: ms(10000) });
            await probe.finish();
            assert.equal((await probe.next('close')).code, 1000);
        });
    });

    it('refuses a certificate it cannot verify, or one for another host', async () => {
        await withProbe(`wss://${HOST}:${echo.port}/`, [], async (probe) => {
            const failed = await probe.connectFailed();
            assert.match(JSON.stringify(failed), /certificate/i);
            await probe.finish();
        });
        await withProbe(`wss://localhost:${echo.port}/`, ['--ca-file', certFile], async (probe) => {
            await probe.connected();  // the certificate names localhost too
            await probe.finish();
        });
    });

    it('connects with verification off (--insecure), and to a Node ws server over https', async () => {
        await withProbe(`wss://${HOST}:${echo.port}/`, ['--insecure'], async (probe) => {
            await probe.connected();
            await probe.next('open');
            probe.send('insecure but encrypted');
            await probe.expectMessage('insecure but encrypted');
            await probe.finish();
        });
        const httpsServer = https.createServer({ cert: readFileSync(certFile), key: readFileSync(path.join(dir, 'key.pem')) });
        const wss = new WebSocketServer({ server: httpsServer });
        wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
        await new Promise((resolve) => httpsServer.listen(0, HOST, resolve));
        try {
            await withProbe(`wss://${HOST}:${httpsServer.address().port}/`, ['--ca-file', certFile], async (probe) => {
                await probe.connected();
                await probe.next('open');
                probe.send('to node over tls');
                await probe.expectMessage('to node over tls');
                await probe.finish();
            });
        } finally {
            for (const client of wss.clients) client.terminate();
            await new Promise((resolve) => httpsServer.close(resolve));
        }
    });
});

describe('client with permessage-deflate', () => {
    it('offers it when asked, and round-trips compressed messages with websock-echo', async () => {
        const echo = await startServer('websock-echo');
        try {
            await withProbe(`ws://${HOST}:${echo.port}/`, ['--deflate'], async (probe) => {
                await probe.connected();
                await probe.next('open');
                for (const text of ['short', 'compressible '.repeat(2000), 'x'.repeat(100000)]) {
                    probe.send(text);
                    await probe.expectMessage(text);
                }
                await probe.finish();
            });
        } finally {
            await echo.stop();
        }
    });

    it('a Node ws server with perMessageDeflate agrees, and reads what the client compressed', async () => {
        const server = await startWsServer({ perMessageDeflate: { threshold: 0 } });
        try {
            await withProbe(server.url, ['--deflate'], async (probe) => {
                await probe.connected();
                await probe.next('open');
                const text = 'the same words again and again '.repeat(300);
                probe.send(text);
                await probe.expectMessage(text);
                const connection = await server.connection();
                assert.match(connection.request.headers['sec-websocket-extensions'], /permessage-deflate/);
                assert.equal(connection.messages[0].data.toString(), text);
                await probe.finish();
            });
        } finally {
            await server.close();
        }
    });
});
