// The well-behaved clients of an echo server: `count` ws clients, each sending one message
// at a time (text or binary, 16 B to 9 KB, every 5th client with permessage-deflate) with its
// client number and a sequence number in it, and checking that the echo is that message,
// byte for byte and of the same type, before the next. Each client waits `intervalMs`
// between messages so the load stays bounded. Anything else — a mismatch, an echo that does
// not come within the deadline, an error, a close the fleet did not ask for — is a failure.

import { ms, openWs, mapLimit, patternBytes, withTimeout } from '../integration/helpers.mjs';

const SIZES = [16, 200, 1500, 9000];
// The first messages of each client are the largest and go back to back: a server's
// per-client buffers reach their working size, and permessage-deflate's zlib state (about
// 300 KiB, whose pages are touched as 64 KiB of history pass through) is all in use before
// the baseline is taken. Otherwise RSS would climb for many seconds under good load alone.
const WARMUP_MESSAGES = 2;
const WARMUP_MESSAGES_DEFLATE = 12;
const MAX_FAILURES_KEPT = 10;

/** The message client `id` sends as number `seq`: deterministic, so the echo can be checked. */
function messageFor(id, seq, warmup) {
    const size = seq < warmup ? SIZES[SIZES.length - 1] : SIZES[(id + seq) % SIZES.length];
    const binary = (id + seq) % 2 === 1;
    const head = Buffer.from(`c${id}s${seq}:`, 'latin1');
    const body = patternBytes(Math.max(0, size - head.length), id * 100003 + seq + 1);
    // Text must be UTF-8: keep the pattern's bytes within printable ASCII.
    if (!binary) for (let i = 0; i < body.length; i++) body[i] = 0x20 + (body[i] % 0x5f);
    return { data: Buffer.concat([head, body]), binary };
}

export class EchoFleet {
    constructor(url, count, { intervalMs = 200, deflateEvery = 5 } = {}) {
        this.url = url;
        this.deflateEvery = deflateEvery;
        this.count = count;
        this.intervalMs = intervalMs;
        this.clients = [];
        this.checked = 0;
        this.checkedBytes = 0;
        this.failures = [];
        this.failureCount = 0;
        this.running = false;
        this.loops = [];
        this.warmClients = 0;
    }

    /** Every client has sent and checked its warm-up messages. */
    get warm() {
        return this.warmClients === this.clients.length;
    }

    fail(what) {
        this.failureCount += 1;
        if (this.failures.length < MAX_FAILURES_KEPT) this.failures.push(what);
    }

    /** Open every client (at most 50 handshakes at once); throws if one cannot open. */
    async connect() {
        this.clients = await mapLimit([...Array(this.count).keys()], 50, async (id) => {
            const ws = await openWs(this.url, { options: { perMessageDeflate: this.deflateEvery > 0 && id % this.deflateEvery === 0 } });
            ws.soakId = id;
            ws.warmupMessages = ws.extensions.includes('permessage-deflate') ? WARMUP_MESSAGES_DEFLATE : WARMUP_MESSAGES;
            ws.expectedClose = false;
            ws.closed.then(({ code }) => {
                if (!ws.expectedClose) this.fail(`client ${id}: closed by the server (${code})`);
                ws.waitingForEcho?.(new Error(`client ${id}: connection closed (${code}) while waiting for an echo`));
            });
            ws.on('error', (err) => this.fail(`client ${id}: ${err.message}`));
            return ws;
        });
    }

    start() {
        this.running = true;
        this.loops = this.clients.map((ws) => this.run(ws));
    }

    async run(ws) {
        for (let seq = 0; this.running; ++seq) {
            const sent = messageFor(ws.soakId, seq, ws.warmupMessages);
            if (ws.readyState !== ws.OPEN) return;  // the close was counted as a failure already
            try {
                ws.send(sent.data, { binary: sent.binary });
                const echo = await withTimeout(nextMessage(ws), ms(10000), `client ${ws.soakId}: the echo of message ${seq}`);
                if (echo.isBinary !== sent.binary) throw new Error(`client ${ws.soakId}: message ${seq} came back as ${echo.isBinary ? 'binary' : 'text'}`);
                if (!echo.data.equals(sent.data))
                    throw new Error(`client ${ws.soakId}: message ${seq} came back different (${echo.data.length} bytes, sent ${sent.data.length})`);
                this.checked += 1;
                this.checkedBytes += sent.data.length;
            } catch (err) {
                this.fail(err.message);
                return;
            }
            if (seq + 1 < ws.warmupMessages) continue;
            if (seq + 1 === ws.warmupMessages) this.warmClients += 1;
            await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
        }
    }

    /** Stop sending, let every client finish its message, then close all with 1000. */
    async stop() {  // no drain step: each client checks its echo before the next message
        this.running = false;
        await withTimeout(Promise.all(this.loops), ms(15000), 'the echo clients to finish their last message').catch((err) => this.fail(err.message));
        await mapLimit(this.clients, 100, async (ws) => {
            ws.expectedClose = true;
            if (ws.readyState === ws.OPEN) ws.close(1000);
            await withTimeout(ws.closed, ms(5000), 'close').catch(() => ws.terminate());
        });
    }

    summary() {
        return { checked: this.checked, checkedBytes: this.checkedBytes, failures: this.failureCount, examples: this.failures };
    }
}

/** The next message from openWs's inbox, or a rejection when the connection closes first. */
function nextMessage(ws) {
    if (ws.inbox.length) return Promise.resolve(ws.inbox.shift());
    return new Promise((resolve, reject) => {
        ws.waitingForEcho = reject;
        ws.inboxWaiters.push(() => {
            ws.waitingForEcho = null;
            resolve(ws.inbox.shift());
        });
    });
}
