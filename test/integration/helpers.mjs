// Shared harness of the integration tests: start a server binary and stop it cleanly,
// wait on conditions with deadlines, and speak RFC 6455 byte by byte over raw TCP sockets.
//
// Conventions:
//  - Every wait has a deadline, scaled by WEBSOCK_TIMEOUT_SCALE (tests.mk sets 4 for the
//    ASan and TSan builds). Nothing sleeps to synchronise: waits poll a condition or
//    resolve on an event.
//  - Binaries are found in WEBSOCK_BIN_DIR (default: ../build/release/bin from test/).
//  - Loopback only.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

import WebSocket from 'ws';

export { WebSocket };

const here = path.dirname(fileURLToPath(import.meta.url));

export const HOST = '127.0.0.1';
export const TIMEOUT_SCALE = Math.max(1, Number(process.env.WEBSOCK_TIMEOUT_SCALE || 1) || 1);
export const BIN_DIR = path.resolve(process.env.WEBSOCK_BIN_DIR || path.join(here, '..', '..', 'build', 'release', 'bin'));

/** A duration in milliseconds, stretched for the slower sanitizer builds. */
export function ms(value) {
    return Math.round(value * TIMEOUT_SCALE);
}

export function binPath(name) {
    return path.join(BIN_DIR, name);
}

export const MiB = 1024 * 1024;
export const KiB = 1024;

// ---------------------------------------------------------------------------------------
// deadlines

export class TimeoutError extends Error {}

/** Resolve with `promise`, or reject with a TimeoutError after `timeout` ms. */
export function withTimeout(promise, timeout, what = 'operation') {
    let timer;
    const deadline = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`${what}: no result within ${timeout} ms`)), timeout);
    });
    return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Wait until `condition()` (sync or async) returns a truthy value, polling every `interval`
 * ms; return that value. Throws a TimeoutError naming `what` once `timeout` ms have passed.
 */
export async function waitFor(condition, { timeout = ms(5000), interval = 5, what = 'condition' } = {}) {
    const end = Date.now() + timeout;
    for (;;) {
        const value = await condition();
        if (value) return value;
        if (Date.now() >= end) throw new TimeoutError(`waited ${timeout} ms for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, interval));
    }
}

/** A promise that resolves the first time `emitter` emits `event` (rejects on 'error' if asked). */
export function once(emitter, event, { timeout = ms(5000), what = event, rejectOnError = false } = {}) {
    return withTimeout(
        new Promise((resolve, reject) => {
            const onEvent = (...args) => {
                cleanup();
                resolve(args);
            };
            const onError = (err) => {
                cleanup();
                reject(err);
            };
            const cleanup = () => {
                emitter.off(event, onEvent);
                if (rejectOnError) emitter.off('error', onError);
            };
            emitter.on(event, onEvent);
            if (rejectOnError) emitter.on('error', onError);
        }),
        timeout,
        what,
    );
}

// ---------------------------------------------------------------------------------------
// server processes

/**
 * Start a server binary; resolve once it printed `listening on HOST:PORT`.
 * The returned object keeps every stdout/stderr line, and `stop()` ends it with a signal and
 * asserts a clean exit (code 0, no signal).
 */
export async function startServer(name, args = [], { timeout = ms(10000), env = {} } = {}) {
    const file = binPath(name);
    if (!existsSync(file)) throw new Error(`server binary not found: ${file} (build it, or set WEBSOCK_BIN_DIR)`);
    const child = spawn(file, ['--host', HOST, '--port', '0', ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...env },
    });
    const server = new ServerProcess(name, child);
    try {
        const line = await withTimeout(server.waitLine(/^listening on /), timeout, `${name}: 'listening on' line`);
        const match = /^listening on (.+):(\d+)\s*$/.exec(line);
        if (!match) throw new Error(`${name}: cannot parse '${line}'`);
        server.host = match[1];
        server.port = Number(match[2]);
        assert.ok(server.port > 0 && server.port < 65536, `port from '${line}'`);
    } catch (err) {
        child.kill('SIGKILL');
        throw new Error(`${err.message}\n--- stdout:\n${server.stdout.join('\n')}\n--- stderr:\n${server.stderrText()}`);
    }
    return server;
}

class ServerProcess {
    constructor(name, child) {
        this.name = name;
        this.child = child;
        this.host = HOST;
        this.port = 0;
        this.stdout = [];
        this.stderr = [];
        this.exit = null; // {code, signal} once exited
        this.lineWaiters = [];
        this.exited = new Promise((resolve) => {
            child.on('exit', (code, signal) => {
                this.exit = { code, signal };
                resolve(this.exit);
            });
        });
        let partial = '';
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk) => {
            partial += chunk;
            let nl;
            while ((nl = partial.indexOf('\n')) >= 0) {
                const line = partial.slice(0, nl).replace(/\r$/, '');
                partial = partial.slice(nl + 1);
                this.stdout.push(line);
                this.lineWaiters = this.lineWaiters.filter((w) => {
                    if (w.pattern.test(line)) {
                        w.resolve(line);
                        return false;
                    }
                    return true;
                });
            }
        });
        child.stderr.setEncoding('utf8');
        let errPartial = '';
        child.stderr.on('data', (chunk) => {
            errPartial += chunk;
            let nl;
            while ((nl = errPartial.indexOf('\n')) >= 0) {
                this.stderr.push(errPartial.slice(0, nl));
                errPartial = errPartial.slice(nl + 1);
            }
            if (this.stderr.length > 20000) this.stderr.splice(0, 10000);
        });
        child.stderr.on('end', () => {
            if (errPartial) this.stderr.push(errPartial);
        });
    }

    get url() {
        return `ws://${this.host}:${this.port}`;
    }

    stderrText(max = 8000) {
        const text = this.stderr.join('\n');
        return text.length > max ? '...' + text.slice(-max) : text;
    }

    /** Resolve with the first stdout line (seen already or later) matching `pattern`. */
    waitLine(pattern) {
        const seen = this.stdout.find((line) => pattern.test(line));
        if (seen !== undefined) return Promise.resolve(seen);
        return new Promise((resolve) => this.lineWaiters.push({ pattern, resolve }));
    }

    get running() {
        return this.exit === null;
    }

    /** Assert the process has not died (a crash under a bad input shows up here). */
    assertAlive(context = '') {
        if (this.exit !== null)
            assert.fail(`${this.name} exited early (${JSON.stringify(this.exit)}) ${context}\n--- stderr:\n${this.stderrText()}`);
    }

    /** Wait for the process to exit by itself; returns {code, signal}. */
    async waitExit(timeout = ms(10000)) {
        return withTimeout(this.exited, timeout, `${this.name} to exit`);
    }

    /**
     * Send `signal`, wait for the exit, and assert it was clean (exit code 0, and no
     * sanitizer report on stderr). If it does not exit in time it is killed and the
     * assertion fails.
     */
    async stop({ signal = 'SIGTERM', timeout = ms(10000) } = {}) {
        if (this.exit === null) this.child.kill(signal);
        let result;
        try {
            result = await this.waitExit(timeout);
        } catch (err) {
            this.child.kill('SIGKILL');
            await this.exited;
            assert.fail(`${this.name} did not exit within ${timeout} ms of ${signal}\n--- stderr:\n${this.stderrText()}`);
        }
        this.assertCleanExit(result);
        return result;
    }

    assertCleanExit(result = this.exit) {
        const report = this.sanitizerReport();
        assert.ok(!report, `${this.name}: sanitizer report on stderr:\n${report}`);
        assert.deepEqual(result, { code: 0, signal: null }, `${this.name} should exit 0\n--- stderr:\n${this.stderrText()}`);
    }

    /** Sanitizer output, if any, in stderr. */
    sanitizerReport() {
        const text = this.stderr.join('\n');
        const at = text.search(/ERROR: (Address|Thread|Memory|Leak|UndefinedBehavior)Sanitizer|WARNING: ThreadSanitizer|runtime error:/);
        return at >= 0 ? text.slice(at, at + 6000) : '';
    }

    /** Kill without asserting anything (for cleanup after a failure). */
    kill() {
        if (this.exit === null) this.child.kill('SIGKILL');
    }
}

/** The soft limit of open files of this process (read from /proc). */
export function openFileLimit() {
    try {
        const limits = readFileSync('/proc/self/limits', 'utf8');
        const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
        if (match) return match[1] === 'unlimited' ? Infinity : Number(match[1]);
    } catch {
        // not Linux
    }
    return Infinity;
}

// ---------------------------------------------------------------------------------------
// ws clients

/** Open a `ws` client and wait until it is open. Errors are collected, never thrown. */
export async function openWs(url, { timeout = ms(5000), options = {} } = {}) {
    const ws = new WebSocket(url, { maxPayload: 64 * MiB, ...options });
    ws.errors = [];
    ws.on('error', (err) => ws.errors.push(err));
    ws.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.inbox = [];
    ws.inboxWaiters = [];
    ws.on('message', (data, isBinary) => {
        ws.inbox.push({ data, isBinary });
        for (const waiter of ws.inboxWaiters.splice(0)) waiter();
    });
    await withTimeout(
        new Promise((resolve, reject) => {
            ws.once('open', resolve);
            ws.once('close', (code) => reject(new Error(`ws closed (${code}) before opening: ${ws.errors.map((e) => e.message).join('; ')}`)));
            ws.once('unexpected-response', (req, res) => reject(new Error(`ws handshake refused with HTTP ${res.statusCode}`)));
        }),
        timeout,
        `ws open ${url}`,
    );
    return ws;
}

/** The next message a `ws` client (from openWs) receives: {data: Buffer, isBinary}. */
export async function nextWsMessage(ws, { timeout = ms(5000), what = 'ws message' } = {}) {
    if (ws.inbox.length === 0) {
        await withTimeout(
            new Promise((resolve, reject) => {
                ws.inboxWaiters.push(resolve);
                ws.closed.then((c) => reject(new Error(`${what}: connection closed (${c.code} ${c.reason}) instead`)));
            }),
            timeout,
            what,
        );
    }
    return ws.inbox.shift();
}

/** Send and wait for the echo; assert it matches (data and type). */
export async function wsEcho(ws, data, { binary = typeof data !== 'string', timeout = ms(5000) } = {}) {
    ws.send(data, { binary });
    const reply = await nextWsMessage(ws, { timeout, what: 'echo' });
    assert.equal(reply.isBinary, binary, 'echo keeps the message type');
    const expected = Buffer.isBuffer(data) ? data : Buffer.from(data);
    assert.ok(reply.data.equals(expected), `echo differs: sent ${expected.length} bytes, got ${reply.data.length}`);
    return reply;
}

/** Close a ws client and wait for the close event; returns {code, reason}. */
export async function closeWs(ws, code = 1000, reason = '', { timeout = ms(5000) } = {}) {
    if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
    return withTimeout(ws.closed, timeout, 'ws close');
}

/** A fresh ws client can still echo: the server keeps serving. */
export async function assertServerServes(server, context = '') {
    server.assertAlive(context);
    const ws = await openWs(server.url);
    try {
        await wsEcho(ws, `still serving ${context}`);
    } finally {
        await closeWs(ws);
    }
}

// ---------------------------------------------------------------------------------------
// frames

export const OP = Object.freeze({
    CONTINUATION: 0x0,
    TEXT: 0x1,
    BINARY: 0x2,
    CLOSE: 0x8,
    PING: 0x9,
    PONG: 0xa,
});

function toBuffer(data) {
    if (data === undefined || data === null) return Buffer.alloc(0);
    if (Buffer.isBuffer(data)) return data;
    if (typeof data === 'string') return Buffer.from(data, 'utf8');
    if (Array.isArray(data)) return Buffer.from(data);
    if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    throw new TypeError('payload must be a Buffer, string or byte array');
}

/**
 * Build one frame byte by byte (RFC 6455 section 5.2). A client frame is masked unless
 * `mask: false`. `rsv` is the 3 RSV bits as a number 0..7 (RSV1 = 4).
 */
export function frame({ opcode, payload, fin = true, rsv = 0, mask = true, maskKey } = {}) {
    const data = toBuffer(payload);
    const length = data.length;
    let header;
    if (length < 126) header = 2;
    else if (length < 65536) header = 4;
    else header = 10;
    const key = mask ? (maskKey ? toBuffer(maskKey) : randomBytes(4)) : null;
    const out = Buffer.alloc(header + (mask ? 4 : 0) + length);
    out[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
    const maskBit = mask ? 0x80 : 0;
    if (length < 126) {
        out[1] = maskBit | length;
    } else if (length < 65536) {
        out[1] = maskBit | 126;
        out[2] = length >> 8;
        out[3] = length & 0xff;
    } else {
        out[1] = maskBit | 127;
        // 64-bit big-endian length, most significant bit 0
        const high = Math.floor(length / 2 ** 32);
        const low = length >>> 0;
        out.writeUInt32BE(high, 2);
        out.writeUInt32BE(low, 6);
    }
    let at = header;
    if (mask) {
        key.copy(out, at);
        at += 4;
        for (let i = 0; i < length; i++) out[at + i] = data[i] ^ key[i & 3];
    } else {
        data.copy(out, at);
    }
    return out;
}

/** Just a frame header, for a frame whose payload is sent separately (masked with `maskKey`). */
export function frameHeader({ opcode, length, fin = true, rsv = 0, maskKey }) {
    const parts = [(fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    if (length < 126) parts.push(0x80 | length);
    else if (length < 65536) parts.push(0x80 | 126, length >> 8, length & 0xff);
    else {
        const b = Buffer.alloc(8);
        b.writeUInt32BE(Math.floor(length / 2 ** 32), 0);
        b.writeUInt32BE(length >>> 0, 4);
        parts.push(0x80 | 127, ...b);
    }
    return Buffer.concat([Buffer.from(parts), toBuffer(maskKey)]);
}

/** XOR `data` with the 4-byte `key` starting at mask offset `offset` (a copy). */
export function maskBytes(data, key, offset = 0) {
    const out = Buffer.from(data);
    for (let i = 0; i < out.length; i++) out[i] ^= key[(offset + i) & 3];
    return out;
}

/** A close frame payload: 2-byte code (if given) and a reason (string or bytes). */
export function closePayload(code, reason = '') {
    if (code === undefined || code === null) return Buffer.alloc(0);
    const head = Buffer.alloc(2);
    head.writeUInt16BE(code);
    return Buffer.concat([head, toBuffer(reason)]);
}

export const closeFrame = (code, reason = '', opts = {}) => frame({ opcode: OP.CLOSE, payload: closePayload(code, reason), ...opts });
export const textFrame = (payload, opts = {}) => frame({ opcode: OP.TEXT, payload, ...opts });
export const binaryFrame = (payload, opts = {}) => frame({ opcode: OP.BINARY, payload, ...opts });
export const pingFrame = (payload, opts = {}) => frame({ opcode: OP.PING, payload, ...opts });
export const pongFrame = (payload, opts = {}) => frame({ opcode: OP.PONG, payload, ...opts });
export const contFrame = (payload, opts = {}) => frame({ opcode: OP.CONTINUATION, payload, ...opts });

/** A FIFO of received chunks that hands out exact byte counts without quadratic copying. */
class ByteQueue {
    constructor() {
        this.chunks = [];
        this.length = 0;
    }
    push(chunk) {
        if (chunk.length === 0) return;
        this.chunks.push(chunk);
        this.length += chunk.length;
    }
    /** The first n bytes (n <= length), without consuming them. */
    peek(n) {
        if (this.chunks.length && this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
        const parts = [];
        let need = n;
        for (const c of this.chunks) {
            if (need <= 0) break;
            const part = c.length <= need ? c : c.subarray(0, need);
            parts.push(part);
            need -= part.length;
        }
        return Buffer.concat(parts, n);
    }
    take(n) {
        const out = this.peek(n);
        const copy = this.chunks.length && this.chunks[0].length >= n ? Buffer.from(out) : out;
        let left = n;
        while (left > 0) {
            const c = this.chunks[0];
            if (c.length <= left) {
                this.chunks.shift();
                left -= c.length;
            } else {
                this.chunks[0] = c.subarray(left);
                left = 0;
            }
        }
        this.length -= n;
        return copy;
    }
}

/**
 * Incremental parser of frames as a server sends them. push() bytes, then call next()
 * until it returns null. Each frame: {fin, rsv, opcode, masked, payload: Buffer}.
 * A server frame must be unmasked; `masked` is reported so tests can assert that.
 */
export class FrameParser {
    constructor() {
        this.queue = new ByteQueue();
    }
    push(chunk) {
        this.queue.push(chunk);
    }
    get buffered() {
        return this.queue.length;
    }
    next() {
        const q = this.queue;
        if (q.length < 2) return null;
        const head = q.peek(Math.min(q.length, 14));
        const b0 = head[0];
        const b1 = head[1];
        const masked = (b1 & 0x80) !== 0;
        let length = b1 & 0x7f;
        let at = 2;
        if (length === 126) {
            if (head.length < 4) return null;
            length = head.readUInt16BE(2);
            at = 4;
        } else if (length === 127) {
            if (head.length < 10) return null;
            const high = head.readUInt32BE(2);
            const low = head.readUInt32BE(6);
            length = high * 2 ** 32 + low;
            at = 10;
        }
        let key = null;
        if (masked) {
            if (head.length < at + 4) return null;
            key = Buffer.from(head.subarray(at, at + 4));
            at += 4;
        }
        if (q.length < at + length) return null;
        q.take(at);
        let payload = length ? q.take(length) : Buffer.alloc(0);
        if (key) payload = maskBytes(payload, key);
        return {
            fin: (b0 & 0x80) !== 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0x0f,
            masked,
            payload,
        };
    }
}

/** Decode a close frame payload: {code, reason (string), reasonBytes}; code null if empty. */
export function parseClose(payload) {
    if (payload.length === 0) return { code: null, reason: '', reasonBytes: Buffer.alloc(0) };
    if (payload.length === 1) return { code: NaN, reason: '', reasonBytes: payload };
    const reasonBytes = payload.subarray(2);
    return { code: payload.readUInt16BE(0), reason: reasonBytes.toString('utf8'), reasonBytes };
}

const opcodeName = (op) => ({ 0: 'continuation', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' })[op] ?? `opcode ${op}`;

export function describeFrame(f) {
    if (!f) return 'nothing';
    let text = `${opcodeName(f.opcode)}${f.fin ? '' : ' (not fin)'}${f.rsv ? ` rsv=${f.rsv}` : ''} len=${f.payload.length}`;
    if (f.opcode === OP.CLOSE) {
        const c = parseClose(f.payload);
        text += ` code=${c.code} reason=${JSON.stringify(c.reason)}`;
    } else if (f.payload.length <= 40) {
        text += ` payload=${f.payload.toString('hex')}`;
    }
    return text;
}

// ---------------------------------------------------------------------------------------
// raw TCP clients

export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function acceptFor(key) {
    return createHash('sha1').update(key + WS_GUID).digest('base64');
}

export function newKey() {
    return randomBytes(16).toString('base64');
}

/** An upgrade request; `headers` entries override or (with value null) remove the defaults. */
export function upgradeRequest({ port, path: target = '/', key = newKey(), headers = {} } = {}) {
    const base = {
        Host: `${HOST}:${port}`,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Version': '13',
    };
    const all = { ...base, ...headers };
    let text = `GET ${target} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(all)) {
        if (value === null || value === undefined) continue;
        text += `${name}: ${value}\r\n`;
    }
    return text + '\r\n';
}

/** Parse an HTTP response head: {status, reason, headers (lowercased names -> array of values), head}. */
export function parseHttpHead(text) {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) return null;
    const headers = {};
    for (const line of lines.slice(1)) {
        if (!line) continue;
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim().toLowerCase();
        (headers[name] ??= []).push(line.slice(colon + 1).trim());
    }
    return { status: Number(m[1]), reason: m[2] ?? '', headers, head: text };
}

/**
 * A TCP client that speaks WebSocket by hand. Received bytes go through the HTTP head (during
 * the handshake) and then the FrameParser; frames queue up in order.
 */
export class RawClient {
    constructor(socket) {
        this.socket = socket;
        this.parser = new FrameParser();
        this.frames = [];
        this.handshaking = false; // bytes go to the HTTP head until its blank line
        this.httpHead = null;
        this.httpBuffer = Buffer.alloc(0);
        this.ended = false; // the peer closed (FIN or RST) or the socket was destroyed
        this.endReason = null;
        this.error = null;
        this.receivedBytes = 0;
        this.closeReceived = null; // the server's close frame, once seen
        this.waiters = new Set();
        socket.setNoDelay(true);
        socket.on('data', (chunk) => this._onData(chunk));
        socket.on('end', () => this._onEnd('end'));
        socket.on('error', (err) => {
            this.error = err;
            this._onEnd(`error ${err.code || err.message}`);
        });
        socket.on('close', () => this._onEnd('close'));
    }

    static connect(port, { timeout = ms(5000), host = HOST } = {}) {
        return withTimeout(
            new Promise((resolve, reject) => {
                const socket = net.connect({ host, port });
                socket.once('connect', () => {
                    socket.off('error', reject);
                    resolve(new RawClient(socket));
                });
                socket.once('error', reject);
            }),
            timeout,
            `connect to ${host}:${port}`,
        );
    }

    /** Connect and complete the opening handshake; asserts 101 and the accept key. */
    static async open(port, { timeout = ms(5000), path: target = '/', headers = {} } = {}) {
        const client = await RawClient.connect(port, { timeout });
        try {
            await client.handshake({ port, timeout, path: target, headers });
        } catch (err) {
            client.destroy();
            throw err;
        }
        return client;
    }

    _wake() {
        for (const w of this.waiters) w();
    }

    _onData(chunk) {
        this.receivedBytes += chunk.length;
        if (this.handshaking) {
            this.httpBuffer = Buffer.concat([this.httpBuffer, chunk]);
            const end = this.httpBuffer.indexOf('\r\n\r\n');
            if (end < 0) return this._wake();
            this.httpHead = this.httpBuffer.subarray(0, end + 4).toString('latin1');
            chunk = this.httpBuffer.subarray(end + 4);
            this.httpBuffer = Buffer.alloc(0);
            this.handshaking = false;
        }
        this.parser.push(chunk);
        for (let f = this.parser.next(); f; f = this.parser.next()) {
            this.frames.push(f);
            if (f.opcode === OP.CLOSE && !this.closeReceived) this.closeReceived = f;
        }
        this._wake();
    }

    _onEnd(reason) {
        if (!this.ended) {
            this.ended = true;
            this.endReason = reason;
        }
        this._wake();
    }

    /** Wait until `check()` returns something truthy (re-checked on every socket event). */
    _until(check, timeout, what) {
        const first = check();
        if (first) return Promise.resolve(first);
        let waiter;
        const p = new Promise((resolve, reject) => {
            waiter = () => {
                try {
                    const v = check();
                    if (v) resolve(v);
                } catch (err) {
                    reject(err);
                }
            };
            this.waiters.add(waiter);
        });
        return withTimeout(p, timeout, what).finally(() => this.waiters.delete(waiter));
    }

    async handshake({ port, timeout = ms(5000), path: target = '/', headers = {}, key = newKey() } = {}) {
        this.handshaking = true;
        this.httpHead = null;
        await this.write(upgradeRequest({ port, path: target, key, headers }));
        await this._until(
            () => {
                if (this.httpHead !== null) return true;
                if (this.ended) throw new Error(`connection ended during the handshake (${this.endReason})`);
                return false;
            },
            timeout,
            'handshake response',
        );
        const res = parseHttpHead(this.httpHead);
        assert.ok(res, `a parseable HTTP response, got ${JSON.stringify(this.httpHead)}`);
        assert.equal(res.status, 101, `upgrade answered ${res.status}:\n${res.head}`);
        assert.equal(res.headers['upgrade']?.[0]?.toLowerCase(), 'websocket', 'Upgrade: websocket');
        assert.ok(res.headers['connection']?.some((v) => v.toLowerCase().split(/\s*,\s*/).includes('upgrade')), 'Connection: Upgrade');
        assert.equal(res.headers['sec-websocket-accept']?.[0], acceptFor(key), 'Sec-WebSocket-Accept');
        this.response = res;
        return res;
    }

    /** Write bytes; resolves when handed to the kernel. Never throws (errors are recorded). */
    write(data) {
        const buf = toBuffer(data);
        if (this.socket.destroyed || this.socket.writableEnded) return Promise.resolve(false);
        return new Promise((resolve) => {
            this.socket.write(buf, (err) => resolve(!err));
        });
    }

    /**
     * Write `data` in separate TCP writes of `size` bytes (Nagle is off, each write is waited
     * for). Stops early once the server closed or sent its close frame, as a real client
     * would stop sending. Returns whether everything was written.
     */
    async writeChunked(data, size = 1) {
        const buf = toBuffer(data);
        for (let at = 0; at < buf.length; at += size) {
            if (this.ended || this.closeReceived) return false;
            const ok = await this.write(buf.subarray(at, at + size));
            if (!ok) return false;
        }
        return true;
    }

    /** The next frame, or throw if the connection ends or the deadline passes first. */
    async nextFrame({ timeout = ms(5000), what = 'a frame' } = {}) {
        await this._until(
            () => {
                if (this.frames.length) return true;
                if (this.ended) throw new Error(`connection ended (${this.endReason}) while waiting for ${what}`);
                return false;
            },
            timeout,
            what,
        );
        return this.frames.shift();
    }

    /** Assert the next frame is a data message frame of this type and content. */
    async expectMessage(opcode, payload, { timeout = ms(5000), what } = {}) {
        const expected = toBuffer(payload);
        const f = await this.nextFrame({ timeout, what: what ?? `${opcodeName(opcode)} echo of ${expected.length} bytes` });
        assert.equal(f.masked, false, 'server frames are not masked');
        assert.equal(f.rsv, 0, 'no RSV bits');
        assert.equal(f.opcode, opcode, `expected ${opcodeName(opcode)}, got ${describeFrame(f)}`);
        if (!f.fin) {
            // a server may fragment; reassemble
            const parts = [f.payload];
            for (;;) {
                const c = await this.nextFrame({ timeout, what: 'a continuation frame' });
                if (c.opcode === OP.PING || c.opcode === OP.PONG) assert.fail(`unexpected ${describeFrame(c)} inside a message`);
                assert.equal(c.opcode, OP.CONTINUATION, `expected continuation, got ${describeFrame(c)}`);
                parts.push(c.payload);
                if (c.fin) break;
            }
            f.payload = Buffer.concat(parts);
        }
        assert.ok(f.payload.equals(expected), `${opcodeName(opcode)} payload differs: expected ${expected.length} bytes` +
            (expected.length <= 64 ? ` ${expected.toString('hex')}` : '') + `, got ${f.payload.length}` +
            (f.payload.length <= 64 ? ` ${f.payload.toString('hex')}` : ''));
        return f;
    }

    async expectPong(payload, opts = {}) {
        const f = await this.nextFrame({ what: 'a pong', ...opts });
        assert.equal(f.opcode, OP.PONG, `expected pong, got ${describeFrame(f)}`);
        assert.equal(f.fin, true, 'pong is final');
        assert.ok(f.payload.equals(toBuffer(payload)), `pong payload: expected ${toBuffer(payload).toString('hex')}, got ${f.payload.toString('hex')}`);
        return f;
    }

    /**
     * Assert the next frame is a close frame with `code` (an array allows several; null means
     * an empty payload). Returns the parsed close.
     */
    async expectCloseFrame(code, { timeout = ms(5000) } = {}) {
        const f = await this.nextFrame({ timeout, what: `a close frame (${code})` });
        assert.equal(f.opcode, OP.CLOSE, `expected close ${code}, got ${describeFrame(f)}`);
        assert.equal(f.fin, true, 'close frame is final');
        assert.equal(f.masked, false, 'server frames are not masked');
        assert.ok(f.payload.length !== 1 && f.payload.length <= 125, `close payload length ${f.payload.length}`);
        const c = parseClose(f.payload);
        const allowed = Array.isArray(code) ? code : [code];
        assert.ok(allowed.includes(c.code), `close code: expected ${allowed.join(' or ')}, got ${c.code} (${JSON.stringify(c.reason)})`);
        assert.ok(Buffer.from(c.reason, 'utf8').equals(c.reasonBytes), 'close reason is UTF-8');
        return c;
    }

    /** Wait for the TCP connection to end (FIN or RST from the server). */
    async waitEnd({ timeout = ms(3000), what = 'the server to close the TCP connection' } = {}) {
        await this._until(() => this.ended, timeout, what);
    }

    /** Assert no frame is left unread, then wait for the TCP end with no frame arriving. */
    async expectEndWithoutFrames(opts = {}) {
        await this.waitEnd(opts);
        assert.equal(this.frames.length, 0, `no frames after the close, got: ${this.frames.map(describeFrame).join(', ')}`);
    }

    /**
     * The server failed the connection: the next frame is a close with `code`, then the
     * server closes TCP on its own (we do not answer the close) within the deadline.
     */
    async expectFail(code, { timeout = ms(5000), endTimeout = ms(3000) } = {}) {
        const c = await this.expectCloseFrame(code, { timeout });
        await this.expectEndWithoutFrames({ timeout: endTimeout });
        return c;
    }

    /** Client-initiated clean close: send close(code, reason), expect the echo and the TCP end. */
    async closeHandshake(code = 1000, reason = '', { expectCode = code, timeout = ms(5000) } = {}) {
        await this.write(closeFrame(code, reason));
        const c = await this.expectCloseFrame(expectCode, { timeout });
        await this.expectEndWithoutFrames();
        return c;
    }

    pause() {
        this.socket.pause();
    }
    resume() {
        this.socket.resume();
    }

    destroy() {
        this.socket.destroy();
    }
}

/**
 * Send raw bytes over a fresh TCP connection and collect the whole HTTP response: the head,
 * then the body by Content-Length (or until the server closes). Resolves
 * {status, headers, body, head, ended}.
 */
export async function rawHttp(port, bytes, { timeout = ms(5000), chunked = false } = {}) {
    const socket = net.connect({ host: HOST, port });
    let received = Buffer.alloc(0);
    let ended = false;
    let error = null;
    let wake = () => {};
    socket.on('data', (c) => {
        received = Buffer.concat([received, c]);
        wake();
    });
    socket.on('end', () => {
        ended = true;
        wake();
    });
    socket.on('close', () => {
        ended = true;
        wake();
    });
    socket.on('error', (err) => {
        error = err;
        ended = true;
        wake();
    });
    try {
        await once(socket, 'connect', { timeout, rejectOnError: true });
        socket.setNoDelay(true);
        const data = toBuffer(bytes);
        if (chunked) {
            for (let at = 0; at < data.length && !ended; at += 1024)
                await new Promise((r) => socket.write(data.subarray(at, at + 1024), r));
        } else {
            socket.write(data, () => {});
        }
        const result = await withTimeout(
            new Promise((resolve, reject) => {
                const check = () => {
                    const end = received.indexOf('\r\n\r\n');
                    if (end >= 0) {
                        const head = received.subarray(0, end + 4).toString('latin1');
                        const res = parseHttpHead(head);
                        if (!res) return reject(new Error(`not an HTTP response: ${JSON.stringify(head.slice(0, 200))}`));
                        const len = res.headers['content-length'] ? Number(res.headers['content-length'][0]) : null;
                        const body = received.subarray(end + 4);
                        if ((len !== null && body.length >= len) || ended || res.status === 101) {
                            res.body = body.toString('utf8');
                            res.ended = ended;
                            return resolve(res);
                        }
                    } else if (ended) {
                        return reject(new Error(`connection ended (${error?.code ?? 'eof'}) before a complete HTTP response; got ${JSON.stringify(received.toString('latin1').slice(0, 200))}`));
                    }
                };
                wake = check;
                check();
            }),
            timeout,
            'HTTP response',
        );
        return result;
    } finally {
        socket.destroy();
    }
}

// ---------------------------------------------------------------------------------------
// misc

/** Deterministic pseudo-random bytes (fast, for big payloads). */
export function patternBytes(length, seed = 1) {
    const out = Buffer.alloc(length);
    let x = seed >>> 0 || 1;
    let i = 0;
    for (; i + 4 <= length; i += 4) {
        x ^= x << 13;
        x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5;
        x >>>= 0;
        out.writeUInt32LE(x, i);
    }
    for (; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
    return out;
}

/** Deterministic valid-UTF-8 text of exactly `bytes` bytes (mixing 1-, 2-, 3- and 4-byte characters). */
export function utf8Text(bytes) {
    const pieces = ['a', 'µ', 'κ', '€', '😀', 'z', 'ö'];
    const parts = [];
    let size = 0;
    let i = 0;
    while (size < bytes) {
        let p = pieces[i++ % pieces.length];
        if (size + Buffer.byteLength(p) > bytes) p = 'x';
        parts.push(p);
        size += Buffer.byteLength(p);
    }
    const text = parts.join('');
    assert.equal(Buffer.byteLength(text), bytes);
    return text;
}

/** Run `fn` over `items` with at most `limit` in flight; returns the results in order. */
export async function mapLimit(items, limit, fn) {
    const results = new Array(items.length);
    let next = 0;
    const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
        while (next < items.length) {
            const i = next++;
            results[i] = await fn(items[i], i);
        }
    });
    await Promise.all(workers);
    return results;
}
