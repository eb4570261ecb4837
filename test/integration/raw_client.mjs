// A TCP client that speaks WebSocket by hand (RawClient), the handshake's pieces (key, accept,
// upgrade request, response head) and raw HTTP exchanges. Imported through helpers.mjs,
// which re-exports everything here.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import assert from 'node:assert/strict';

import { HOST, ms, once, withTimeout } from './harness_basics.mjs';
import { FrameParser, OP, closeFrame, describeFrame, opcodeName, parseClose, toBuffer } from './frames.mjs';

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
