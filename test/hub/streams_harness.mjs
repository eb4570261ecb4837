// Harness of the resumable streams tests: a subscriber client of {prefix}/streams that keeps
// every frame it got (parsed), waits on frames with deadlines, and can be cut like a dropped
// network; publishing to a stream; and the check that a subscriber's messages, over all its
// connections, are every offset exactly once and in order.

import assert from 'node:assert/strict';

import { WebSocket, ms, withTimeout, waitFor, request, withJson } from './hub_helpers.mjs';

export const SUBPROTOCOL = 'websock-hub.streams.v1';

export class StreamClient {
    /** Open a connection to `hub`'s /streams (resolves once open). */
    static async open(hub, { prefix = '', protocols = undefined, timeout = ms(5000) } = {}) {
        const client = new StreamClient(hub.wsUrl(`${prefix}/streams`), protocols);
        await withTimeout(client.opened, timeout, 'streams client open');
        return client;
    }

    constructor(url, protocols) {
        this.ws = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
        this.frames = [];
        this.errors = [];
        this.ws.on('error', (err) => this.errors.push(err));
        this.ws.on('message', (data, isBinary) => {
            assert.ok(!isBinary, 'the streams protocol sends text frames only');
            this.frames.push(JSON.parse(data.toString('utf8')));
        });
        this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
        this.opened = new Promise((resolve, reject) => {
            this.ws.once('open', resolve);
            this.ws.once('unexpected-response', (req, res) => reject(new Error(`handshake refused with HTTP ${res.statusCode}`)));
            this.ws.once('close', (code) => reject(new Error(`closed (${code}) before opening`)));
        });
    }

    send(op) {
        this.ws.send(typeof op === 'string' ? op : JSON.stringify(op));
    }

    /** The first frame at index >= `from` matching `predicate`, waiting for it. */
    async waitFrame(predicate, { what = 'a frame', from = 0, timeout = ms(5000) } = {}) {
        let found;
        await waitFor(
            () => {
                for (let i = from; i < this.frames.length; i++)
                    if (predicate(this.frames[i])) {
                        found = this.frames[i];
                        return true;
                    }
                return false;
            },
            { what: `${what} (got ${this.frames.length} frames, the last: ${JSON.stringify(this.frames.at(-1))})`, timeout },
        );
        return found;
    }

    /** Send subscribe and resolve its answer (subscribed or error). */
    async subscribe(channel, { since, ack, timeout } = {}) {
        const from = this.frames.length;
        const op = { op: 'subscribe', channel };
        if (since !== undefined) op.since = since;
        if (ack !== undefined) op.ack = ack;
        this.send(op);
        return this.waitFrame((f) => f.channel === channel && (f.type === 'subscribed' || f.type === 'error'), {
            what: `the answer to subscribe ${channel}`,
            from,
            timeout,
        });
    }

    /** Send one request and resolve the next error frame. */
    async expectError(op, { what = 'an error' } = {}) {
        const from = this.frames.length;
        this.send(op);
        return this.waitFrame((f) => f.type === 'error', { what, from });
    }

    messages(channel) {
        return this.frames.filter((f) => f.type === 'message' && f.channel === channel);
    }

    lastOffset(channel) {
        const all = this.messages(channel);
        return all.length ? all.at(-1).offset : undefined;
    }

    /** Wait until this client holds a message of `channel` with offset >= `offset`. */
    async waitOffset(channel, offset, { timeout = ms(10000) } = {}) {
        await waitFor(() => (this.lastOffset(channel) ?? -1) >= offset, {
            what: `${channel}: offset ${offset} (have ${this.lastOffset(channel)})`,
            timeout,
        });
    }

    /** Drop the connection without a close handshake (a lost network). */
    async cut() {
        this.ws.terminate();
        await withTimeout(this.closed, ms(5000), 'terminate');
    }

    async close() {
        if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
        else if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
        return withTimeout(this.closed, ms(5000), 'streams client close');
    }
}

/** POST a message to a stream; resolves {status, body, json}. */
export async function publishStream(hub, channel, body, { contentType, pwd, prefix = '', headers = {} } = {}) {
    const h = { ...headers };
    if (contentType !== undefined) h['Content-Type'] = contentType;
    if (pwd !== undefined) h['X-Hub-Password'] = pwd;
    const res = await request(hub, { method: 'POST', path: `${prefix}/streams/${channel}`, headers: h, body });
    return withJson(res);
}

/** Publish `count` text messages "<label>-<i>" one after another; resolves their offsets. */
export async function publishMany(hub, channel, count, { label = 'm', pwd } = {}) {
    const offsets = [];
    for (let i = 0; i < count; i++) {
        const res = await publishStream(hub, channel, `${label}-${i}`, { pwd });
        assert.equal(res.status, 201, `publish ${i}: ${res.status} ${res.body}`);
        offsets.push(res.json.offset);
    }
    return offsets;
}

/**
 * Every offset from `from` to `to` exactly once and in order, over `parts` (the message frames
 * of one subscriber's successive connections, each in arrival order); and each offset's data
 * the same as `expected` (offset -> data) says, when given.
 */
export function assertExactlyOnce(parts, from, to, expected = undefined, who = 'subscriber') {
    const offsets = parts.flat().map((m) => m.offset);
    const wanted = Array.from({ length: to - from + 1 }, (_, i) => from + i);
    if (offsets.length !== wanted.length || offsets.some((o, i) => o !== wanted[i])) {
        const dups = offsets.filter((o, i) => offsets.indexOf(o) !== i);
        const missing = wanted.filter((o) => !offsets.includes(o));
        assert.fail(`${who}: offsets ${from}..${to} once each and in order; got ${offsets.length} ` +
            `(duplicates: ${dups.slice(0, 10)}; missing: ${missing.slice(0, 10)}; first: ${offsets.slice(0, 10)})`);
    }
    if (expected) for (const m of parts.flat()) assert.equal(m.data, expected.get(m.offset), `${who}: data of offset ${m.offset}`);
}
