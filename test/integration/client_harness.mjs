// The client tests' harness (client.test.mjs, client_ws_server.test.mjs,
// client_raw_server.test.mjs): client_probe, a WebSocketClient driven through stdin that
// reports every callback as a JSON line; a Node `ws` server and raw node:net servers started
// in the test; the client's frames parsed with their masking keys.
//
// Loopback only; every wait has a deadline (ms() stretches them under the sanitizers).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';

import { WebSocketServer } from 'ws';

import {
    HOST,
    MiB,
    ms,
    binPath,
    withTimeout,
    waitFor,
    once,
    acceptFor,
} from './helpers.mjs';

// ---------------------------------------------------------------------------------------
// the probe

export const sha256 = (data) => createHash('sha256').update(data).digest('hex');
export const hex = (data) => Buffer.from(data).toString('hex');

export const SANITIZER = /ERROR: (Address|Thread|Memory|Leak|UndefinedBehavior)Sanitizer|WARNING: ThreadSanitizer|runtime error:/;

/** A running client_probe: its events (JSON lines), taken in order by next(). */
export class Probe {
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
export async function withProbe(url, args, fn) {
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
export async function startWsServer(options = {}, { echo = true } = {}) {
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
export async function startRawServer(respond) {
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

export const switching = (key, extra = '') =>
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n${extra}\r\n`;

/** Client frames, parsed with their masking keys: [{fin, opcode, masked, key, payload}]. */
export function parseClientFrames(buffer) {
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
export function collectFrames(socket) {
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
export async function closedPort() {
    const server = net.createServer();
    await new Promise((resolve) => server.listen(0, HOST, resolve));
    const { port } = server.address();
    await new Promise((resolve) => server.close(resolve));
    return port;
}
