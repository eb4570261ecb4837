// Shared harness of the integration tests: start a server binary and stop it cleanly,
// wait on conditions with deadlines, and speak RFC 6455 byte by byte over raw TCP sockets.
//
// Conventions:
//  - Every wait has a deadline, scaled by WEBSOCK_TIMEOUT_SCALE (tests.mk sets 4 for the
//    ASan and TSan builds). Nothing sleeps to synchronise: waits poll a condition or
//    resolve on an event.
//  - Binaries are found in WEBSOCK_BIN_DIR (default: ../build/release/bin from test/).
//  - Loopback only.
//
// This file: server processes, `ws` clients and small data helpers. It re-exports the rest of
// the harness, so every test imports from here alone: harness_basics.mjs (binaries, loopback,
// deadlines), frames.mjs (frames by hand), raw_client.mjs (RawClient, raw HTTP).
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

import WebSocket from 'ws';

import { HOST, MiB, binPath, ms, once, withTimeout } from './harness_basics.mjs';

export { WebSocket };
export * from './harness_basics.mjs';
export * from './frames.mjs';
export * from './raw_client.mjs';

// ---------------------------------------------------------------------------------------
// TLS

/**
 * A self-signed certificate for localhost and 127.0.0.1 (Debian's openssl) in a new
 * temporary directory: { dir, cert, key, ca } (the paths, and the certificate's bytes for a
 * client's `ca`). The caller removes `dir`.
 */
export function selfSignedCertificate(prefix = 'websock-tls-') {
    const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert,
    ], { stdio: 'ignore' });
    return { dir, cert, key, ca: readFileSync(cert) };
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
