// The WebSocket client (websock/client.hpp) end to end. client_probe (a WebSocketClient
// driven through stdin, reporting every callback as a JSON line) talks to websock's own echo
// server, to a Node `ws` WebSocketServer started here, and to raw node:net servers for the
// answers a correct server never gives. The example program websock-client gets one run too.
//
// Loopback only; every wait has a deadline (ms() stretches them under the sanitizers).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';

import { WebSocketServer } from 'ws';

import {
    HOST,
    MiB,
    OP,
    ms,
    binPath,
    startServer,
    withTimeout,
    waitFor,
    once,
    acceptFor,
    frame,
    closeFrame,
    parseClose,
    patternBytes,
    utf8Text,
} from './helpers.mjs';

// ---------------------------------------------------------------------------------------
// the probe

const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const hex = (data) => Buffer.from(data).toString('hex');

const SANITIZER = /ERROR: (Address|Thread|Memory|Leak|UndefinedBehavior)Sanitizer|WARNING: ThreadSanitizer|runtime error:/;

/** A running client_probe: its events (JSON lines), taken in order by next(). */
class Probe {
    static start(url, args = []) {
        const file = binPath('client_probe');
        if (!existsSync(file)) throw new Error(`client_probe not found: ${file} (make test-client builds it)`);
        return new Probe(spawn(file, [url, ...args], { stdio: ['pipe', 'pipe', 'pipe'] }));
    }

    constructor(child) {
        this.child = child;
        this.events = [];
        this.taken = new Set();
        this.waiters = new Set();
        this.stderr = '';
        this.exit = null;
        this.exited = new Promise((resolve) => {
            child.on('exit', (code, signal) => {
                this.exit = { code, signal };
                for (const waiter of [...this.waiters]) waiter();
                resolve(this.exit);
            });
        });
        child.stdin.on('error', () => {}); // the probe may exit first (after a failed connect)
        let partial = '';
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk) => {
            partial += chunk;
            let nl;
            while ((nl = partial.indexOf('\n')) >= 0) {
                const line = partial.slice(0, nl);
                partial = partial.slice(nl + 1);
                let event;
                try {
                    event = JSON.parse(line);
                } catch {
                    event = { event: 'unparsable', line };
                }
                this.events.push(event);
                for (const waiter of [...this.waiters]) waiter();
            }
        });
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (chunk) => {
            this.stderr += chunk;
            if (this.stderr.length > 200000) this.stderr = this.stderr.slice(-100000);
        });
    }

    /** The first event not taken yet that matches (a type name or a predicate); waits for it. */
    async next(match, { timeout = ms(5000), what } = {}) {
        const predicate = typeof match === 'string' ? (e) => e.event === match : match;
        const label = what ?? (typeof match === 'string' ? `a '${match}' event` : 'a matching event');
        const find = () => {
            for (let i = 0; i < this.events.length; i++) {
                if (!this.taken.has(i) && predicate(this.events[i])) {
                    this.taken.add(i);
                    return this.events[i];
                }
            }
            return null;
        };
        const found = find();
        if (found) return found;
        let waiter;
        try {
            return await withTimeout(
                new Promise((resolve, reject) => {
                    waiter = () => {
                        const event = find();
                        if (event) {
                            this.waiters.delete(waiter); // take one event only
                            resolve(event);
                        } else if (this.exit) {
                            reject(new Error(`client_probe exited (${JSON.stringify(this.exit)}) before ${label}${this.context()}`));
                        }
                    };
                    this.waiters.add(waiter);
                }),
                timeout,
                `${label}${this.context()}`,
            );
        } finally {
            this.waiters.delete(waiter);
        }
    }

    context() {
        return `\n--- events: ${JSON.stringify(this.events.slice(-20)).slice(0, 3000)}\n--- stderr: ${this.stderr.slice(-3000)}`;
    }

    command(line) {
        this.child.stdin.write(line + '\n');
    }

    send(data, { binary = typeof data !== 'string' } = {}) {
        this.command(`send ${binary ? 'binary' : 'text'} ${hex(data)}`);
    }

    /** Wait for the connect event and assert it succeeded. */
    async connected() {
        const event = await this.next('connect', { timeout: ms(10000) });
        assert.equal(event.ok, true, `connect failed: ${event.error}`);
        return event;
    }

    /** Wait for the connect event and assert it failed; returns it. */
    async connectFailed() {
        const event = await this.next('connect', { timeout: ms(10000) });
        assert.equal(event.ok, false, 'connect should have failed');
        return event;
    }

    /** The next message event; asserts its type and bytes. */
    async expectMessage(data, { binary = typeof data !== 'string', timeout = ms(5000) } = {}) {
        const event = await this.next('message', { timeout });
        const bytes = Buffer.from(data);
        assert.equal(event.type, binary ? 'binary' : 'text', 'message type');
        assert.equal(event.size, bytes.length, 'message size');
        assert.equal(event.sha256, sha256(bytes), 'message bytes');
        return event;
    }

    /** End stdin (the probe destroys its client, which closes and joins), assert a clean exit. */
    async finish({ timeout = ms(10000) } = {}) {
        this.child.stdin.end();
        try {
            await withTimeout(this.exited, timeout, 'client_probe to exit');
        } catch (err) {
            this.kill();
            throw new Error(`${err.message}${this.context()}`);
        }
        this.assertClean();
    }

    assertClean() {
        const at = this.stderr.search(SANITIZER);
        assert.ok(at < 0, `sanitizer report:\n${this.stderr.slice(at, at + 6000)}`);
        assert.deepEqual(this.exit, { code: 0, signal: null }, `client_probe should exit 0${this.context()}`);
        assert.ok(!this.events.some((e) => e.event === 'unparsable' || e.event === 'bad-command'), `bad probe output${this.context()}`);
    }

    kill() {
        if (this.exit === null) this.child.kill('SIGKILL');
    }
}

/** Run a probe test and kill the probe if the test failed midway. */
async function withProbe(url, args, fn) {
    const probe = Probe.start(url, args);
    try {
        await fn(probe);
    } finally {
        probe.kill();
    }
}

// ---------------------------------------------------------------------------------------
// servers made here

/** A Node `ws` server on a free loopback port; records every connection and its request. */
async function startWsServer(options = {}, { echo = true } = {}) {
    const wss = new WebSocketServer({ host: HOST, port: 0, maxPayload: 64 * MiB, ...options });
    await once(wss, 'listening');
    const server = {
        wss,
        port: wss.address().port,
        connections: [],
        get url() {
            return `ws://${HOST}:${this.port}`;
        },
        async connection(timeout = ms(5000)) {
            await waitFor(() => this.connections.length > 0, { timeout, what: 'a connection to the ws server' });
            return this.connections[0];
        },
        async close() {
            for (const client of wss.clients) client.terminate();
            await new Promise((resolve) => wss.close(resolve));
        },
    };
    wss.on('connection', (ws, request) => {
        const connection = { ws, request, messages: [], errors: [], pings: [], pongs: [] };
        connection.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
        ws.on('error', (err) => connection.errors.push(err));
        ws.on('ping', (data) => connection.pings.push(data));
        ws.on('pong', (data) => connection.pongs.push(data));
        ws.on('message', (data, isBinary) => {
            connection.messages.push({ data, isBinary });
            if (echo) ws.send(data, { binary: isBinary });
        });
        server.connections.push(connection);
    });
    return server;
}

/**
 * A raw TCP server: reads each connection's request head, then hands the socket, the head and
 * the request's Sec-WebSocket-Key to `respond`. Bytes after the head stay readable on `socket.rest`.
 */
async function startRawServer(respond) {
    const sockets = new Set();
    const server = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => {});
        let received = Buffer.alloc(0);
        const onData = (chunk) => {
            received = Buffer.concat([received, chunk]);
            const end = received.indexOf('\r\n\r\n');
            if (end < 0) return;
            socket.off('data', onData);
            const head = received.subarray(0, end).toString('latin1');
            const key = /^sec-websocket-key:\s*(\S+)/im.exec(head)?.[1] ?? '';
            socket.rest = received.subarray(end + 4);
            respond(socket, head, key);
        };
        socket.on('data', onData);
    });
    await new Promise((resolve) => server.listen(0, HOST, resolve));
    return {
        port: server.address().port,
        get url() {
            return `ws://${HOST}:${this.port}`;
        },
        async close() {
            for (const socket of sockets) socket.destroy();
            await new Promise((resolve) => server.close(resolve));
        },
    };
}

const switching = (key, extra = '') =>
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n${extra}\r\n`;

/** Client frames, parsed with their masking keys: [{fin, opcode, masked, key, payload}]. */
function parseClientFrames(buffer) {
    const frames = [];
    let at = 0;
    while (buffer.length - at >= 2) {
        const b0 = buffer[at];
        const b1 = buffer[at + 1];
        let length = b1 & 0x7f;
        let pos = at + 2;
        if (length === 126) {
            if (buffer.length < pos + 2) break;
            length = buffer.readUInt16BE(pos);
            pos += 2;
        } else if (length === 127) {
            if (buffer.length < pos + 8) break;
            length = Number(buffer.readBigUInt64BE(pos));
            pos += 8;
        }
        const masked = (b1 & 0x80) !== 0;
        let key = null;
        if (masked) {
            if (buffer.length < pos + 4) break;
            key = Buffer.from(buffer.subarray(pos, pos + 4));
            pos += 4;
        }
        if (buffer.length < pos + length) break;
        const payload = Buffer.from(buffer.subarray(pos, pos + length));
        if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
        frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, key, payload });
        at = pos + length;
    }
    return { frames, used: at };
}

/** Collect the client's frames on a raw socket (after its request head). */
function collectFrames(socket) {
    const state = { frames: [], ended: false };
    let buffer = Buffer.alloc(0);
    const take = (chunk) => {
        buffer = Buffer.concat([buffer, chunk]);
        const { frames, used } = parseClientFrames(buffer);
        state.frames.push(...frames);
        buffer = buffer.subarray(used);
    };
    if (socket.rest?.length) take(socket.rest);
    socket.on('data', take);
    socket.on('end', () => (state.ended = true));
    socket.on('close', () => (state.ended = true));
    return state;
}

/** A loopback port nobody listens on (bound, then released). */
async function closedPort() {
    const server = net.createServer();
    await new Promise((resolve) => server.listen(0, HOST, resolve));
    const { port } = server.address();
    await new Promise((resolve) => server.close(resolve));
    return port;
}

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
