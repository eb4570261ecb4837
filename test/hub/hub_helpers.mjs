// Shared harness of the hub's integration tests: start websock-hub (TCP or unix socket) and
// stop it cleanly, speak HTTP to it (publish, metrics), open subscribers, read /metrics.
// Builds on ../integration/helpers.mjs (deadlines scaled by WEBSOCK_TIMEOUT_SCALE, ws clients,
// raw sockets). Loopback only; nothing sleeps to synchronise.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

import { HOST, ms, binPath, withTimeout, openWs, nextWsMessage } from '../integration/helpers.mjs';

export * from '../integration/helpers.mjs';

export const HUB = 'websock-hub';

/**
 * Start websock-hub with `args` (on 127.0.0.1, port 0, unless `usock` is given); resolve once
 * it printed its `listening on` line. `env` adds environment variables; `noDefaults` leaves
 * out --host/--port (for tests of the environment variables).
 */
export async function startHub(args = [], { env = {}, usock = null, noDefaults = false, timeout = ms(10000) } = {}) {
    const file = binPath(HUB);
    if (!existsSync(file)) throw new Error(`hub binary not found: ${file} (build it, or set WEBSOCK_BIN_DIR)`);
    const base = noDefaults ? [] : usock ? ['--usock', usock] : ['--host', HOST, '--port', '0'];
    // Keep the hub's HUB_* variables out unless the test sets them.
    const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HUB_')));
    const child = spawn(file, [...base, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...cleanEnv, ...env } });
    const hub = new HubProcess(child);
    try {
        const line = await withTimeout(hub.waitLine(/^listening on /), timeout, "websock-hub: 'listening on' line");
        const unix = /^listening on unix:(.+)$/.exec(line);
        const tcp = /^listening on (.+):(\d+)\s*$/.exec(line);
        if (unix) hub.socketPath = unix[1];
        else if (tcp) {
            hub.host = tcp[1];
            hub.port = Number(tcp[2]);
        } else throw new Error(`cannot parse '${line}'`);
    } catch (err) {
        child.kill('SIGKILL');
        throw new Error(`${err.message}\n--- stdout:\n${hub.stdout.join('\n')}\n--- stderr:\n${hub.stderrText()}`);
    }
    return hub;
}

/** A fresh directory for unix sockets, removed by the returned cleanup function. */
export function tempDir() {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'websock-hub-'));
    return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export class HubProcess {
    constructor(child) {
        this.child = child;
        this.host = HOST;
        this.port = 0;
        this.socketPath = null;
        this.stdout = [];
        this.stderr = [];
        this.exit = null;
        this.lineWaiters = [];
        this.exited = new Promise((resolve) => {
            child.on('exit', (code, signal) => {
                this.exit = { code, signal };
                resolve(this.exit);
            });
        });
        const lines = (stream, sink, onLine) => {
            let partial = '';
            stream.setEncoding('utf8');
            stream.on('data', (chunk) => {
                partial += chunk;
                let nl;
                while ((nl = partial.indexOf('\n')) >= 0) {
                    const line = partial.slice(0, nl).replace(/\r$/, '');
                    partial = partial.slice(nl + 1);
                    sink.push(line);
                    if (sink.length > 20000) sink.splice(0, 10000);
                    onLine?.(line);
                }
            });
            stream.on('end', () => partial && sink.push(partial));
        };
        lines(child.stdout, this.stdout, (line) => {
            this.lineWaiters = this.lineWaiters.filter((w) => (w.pattern.test(line) ? (w.resolve(line), false) : true));
        });
        lines(child.stderr, this.stderr);
    }

    /** ws:// base URL (or ws+unix:// for a unix socket) for `path`. */
    wsUrl(target) {
        return this.socketPath ? `ws+unix://${this.socketPath}:${target}` : `ws://${this.host}:${this.port}${target}`;
    }

    stderrText(max = 8000) {
        const text = this.stderr.join('\n');
        return text.length > max ? '...' + text.slice(-max) : text;
    }

    /** Everything the process printed so far (stdout and stderr). */
    logText() {
        return this.stdout.join('\n') + '\n' + this.stderr.join('\n');
    }

    waitLine(pattern) {
        const seen = this.stdout.find((line) => pattern.test(line));
        if (seen !== undefined) return Promise.resolve(seen);
        return new Promise((resolve) => this.lineWaiters.push({ pattern, resolve }));
    }

    /** Wait until stderr has a line matching `pattern`. */
    async waitStderr(pattern, timeout = ms(5000)) {
        const end = Date.now() + timeout;
        for (;;) {
            const line = this.stderr.find((l) => pattern.test(l));
            if (line !== undefined) return line;
            if (Date.now() >= end) throw new Error(`no stderr line matching ${pattern} within ${timeout} ms\n${this.stderrText()}`);
            await new Promise((r) => setTimeout(r, 10));
        }
    }

    assertAlive(context = '') {
        if (this.exit !== null) assert.fail(`websock-hub exited early (${JSON.stringify(this.exit)}) ${context}\n${this.stderrText()}`);
    }

    sanitizerReport() {
        const text = this.stderr.join('\n');
        const at = text.search(/ERROR: (Address|Thread|Memory|Leak|UndefinedBehavior)Sanitizer|WARNING: ThreadSanitizer|runtime error:/);
        return at >= 0 ? text.slice(at, at + 6000) : '';
    }

    /** SIGTERM (or `signal`), then assert a clean exit: code 0, no sanitizer report. */
    async stop({ signal = 'SIGTERM', timeout = ms(10000) } = {}) {
        if (this.exit === null) this.child.kill(signal);
        let result;
        try {
            result = await withTimeout(this.exited, timeout, 'websock-hub to exit');
        } catch {
            this.child.kill('SIGKILL');
            await this.exited;
            assert.fail(`websock-hub did not exit within ${timeout} ms of ${signal}\n${this.stderrText()}`);
        }
        const report = this.sanitizerReport();
        assert.ok(!report, `sanitizer report on stderr:\n${report}`);
        assert.deepEqual(result, { code: 0, signal: null }, `websock-hub should exit 0\n${this.stderrText()}`);
        return result;
    }

    kill() {
        if (this.exit === null) this.child.kill('SIGKILL');
    }
}

/**
 * One HTTP request to the hub; resolves {status, headers, body (string), bodyBytes}.
 * `body` may be a string, a Buffer or an object (sent as JSON).
 */
export function request(hub, { method = 'GET', path: target = '/', headers = {}, body, timeout = ms(5000) } = {}) {
    let payload = body;
    const allHeaders = { ...headers };
    if (payload !== undefined && !Buffer.isBuffer(payload) && typeof payload !== 'string') {
        payload = JSON.stringify(payload);
        if (!Object.keys(allHeaders).some((k) => k.toLowerCase() === 'content-type')) allHeaders['Content-Type'] = 'application/json';
    }
    if (payload !== undefined) allHeaders['Content-Length'] = Buffer.byteLength(payload);
    const where = hub.socketPath ? { socketPath: hub.socketPath } : { host: hub.host, port: hub.port };
    return withTimeout(
        new Promise((resolve, reject) => {
            const req = http.request({ ...where, method, path: target, headers: allHeaders, agent: false }, (res) => {
                const chunks = [];
                res.on('data', (c) => chunks.push(c));
                res.on('end', () => {
                    const bodyBytes = Buffer.concat(chunks);
                    resolve({ status: res.statusCode, headers: res.headers, body: bodyBytes.toString('utf8'), bodyBytes });
                });
                res.on('error', reject);
            });
            req.on('error', reject);
            if (payload !== undefined) req.write(payload);
            req.end();
        }),
        timeout,
        `${method} ${target}`,
    );
}

/** A response from request() with its body parsed as JSON too (`json`: undefined when it is not JSON). */
export function withJson(res) {
    let json;
    try {
        json = JSON.parse(res.body);
    } catch {
        json = undefined;
    }
    return { ...res, json };
}

/** POST a package to a channel (aiows' endpoint); resolves the response. */
export function publish(hub, channel, data, { type, pwd, headers = {}, prefix = '' } = {}) {
    const query = pwd === undefined ? '' : `?pwd=${encodeURIComponent(pwd)}`;
    const h = { ...headers };
    if (type !== undefined) h['Package-Type'] = type;
    return request(hub, { method: 'POST', path: `${prefix}/channel/${channel}/${query}`, headers: h, body: data });
}

/** POST /broadcast/ with a JSON body (object or string). */
export function broadcast(hub, body, { pwd, headers = {}, prefix = '' } = {}) {
    const query = pwd === undefined ? '' : `?pwd=${encodeURIComponent(pwd)}`;
    return request(hub, { method: 'POST', path: `${prefix}/broadcast/${query}`, headers, body });
}

/** GET /metrics, parsed: { 'name{labels}': value }. */
export async function metrics(hub, prefix = '') {
    const res = await request(hub, { path: `${prefix}/metrics` });
    assert.equal(res.status, 200, `metrics: ${res.status} ${res.body}`);
    assert.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    const values = {};
    for (const line of res.body.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const at = line.lastIndexOf(' ');
        values[line.slice(0, at)] = Number(line.slice(at + 1));
    }
    return values;
}

/** Subscribe to a channel: an open `ws` client (openWs) on {prefix}/channel/{name}/. */
export function subscribe(hub, channel, { prefix = '', timeout = ms(5000) } = {}) {
    return openWs(hub.wsUrl(`${prefix}/channel/${channel}/`), { timeout });
}

/** The next message of a subscriber, as {text, isBinary, data}. */
export async function nextMessage(ws, what = 'a published message', timeout = ms(5000)) {
    const m = await nextWsMessage(ws, { what, timeout });
    return { data: m.data, isBinary: m.isBinary, text: m.data.toString('utf8') };
}

/** Wait until every subscriber's inbox holds `count` messages (or fail at the deadline). */
export async function waitInbox(clients, count, { timeout = ms(10000), what = 'messages' } = {}) {
    const end = Date.now() + timeout;
    for (;;) {
        const short = clients.filter((c) => c.inbox.length < count);
        if (short.length === 0) return;
        if (Date.now() >= end)
            throw new Error(`${what}: ${short.length} of ${clients.length} subscribers have fewer than ${count} (e.g. ${short[0].inbox.length})`);
        await new Promise((r) => setTimeout(r, 10));
    }
}

