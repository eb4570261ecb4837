// The well-behaved clients of websock-hub: half of them aiows subscribers (WebSocket on
// /channel/soak:K/), half channelstream connections (signed /connect, then /ws?conn_id=),
// spread over a few channels each, and one publisher per API that publishes to its channels
// in turn at a steady bounded rate, one request at a time. Every message carries its
// channel, a sequence number per channel and a padding derived from both; each subscriber
// checks that it gets every message of its channel exactly once, in order, byte for byte.
// At the end the fleet waits (with a deadline) until every subscriber has the last message.

import { ms, openWs, mapLimit, withTimeout, waitFor } from '../integration/helpers.mjs';
import { metrics } from '../hub/hub_helpers.mjs';
import { callApi, connectUser } from './channelstream_api.mjs';
import { KeepAliveHttp } from './keep_alive_http.mjs';

const AIOWS_CHANNELS = 10;
const CHANNELSTREAM_CHANNELS = 5;
const MAX_FAILURES_KEPT = 10;

/** The padding of message `seq` on `channel`: printable ASCII, 20 to 1,200 bytes. */
function padFor(channel, seq) {
    let x = (seq * 2654435761 + channel.length * 40503) >>> 0 || 1;
    const length = 20 + (x % 1181);
    let out = '';
    for (let i = 0; i < length; i++) {
        x ^= x << 13;
        x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5;
        x >>>= 0;
        out += String.fromCharCode(0x21 + (x % 0x5e));
    }
    return out;
}

const aiowsText = (channel, seq) => `${channel}|${seq}|${padFor(channel, seq)}`;

export class HubFleet {
    constructor(server, count, { intervalMs = 40 } = {}) {
        this.server = server;
        this.count = count;
        this.intervalMs = intervalMs;  // per publisher: one publish every intervalMs
        this.aiowsChannels = Array.from({ length: AIOWS_CHANNELS }, (_, k) => `soak:${k}`);
        this.csChannels = Array.from({ length: CHANNELSTREAM_CHANNELS }, (_, k) => `cs:${k}`);
        this.published = new Map();  // channel -> messages published (answered 201/200)
        this.subscribers = [];
        this.checked = 0;
        this.failures = [];
        this.failureCount = 0;
        this.running = false;
    }

    /** With --redis a starting node syncs first (503 meanwhile, about 3 s when it is alone). */
    static async waitSynced(server) {
        await waitFor(async () => (await metrics(server))['hub_channelstream_synced'] === 1, {
            timeout: ms(15000),
            interval: 100,
            what: 'the channelstream state to be synced (hub_channelstream_synced 1)',
        });
    }

    /** Every subscriber has checked a message. */
    get warm() {
        return this.subscribers.every((s) => s.next > 0);
    }

    fail(what) {
        this.failureCount += 1;
        if (this.failures.length < MAX_FAILURES_KEPT) this.failures.push(what);
    }

    /** A subscriber's check of message `seq` on `channel`; `text` is what it received. */
    receive(sub, channel, seq, ok) {
        if (channel !== sub.channel) return this.fail(`${sub.name}: a message of ${channel} on a subscription to ${sub.channel}`);
        if (seq !== sub.next) return this.fail(`${sub.name}: message ${seq} of ${channel} where ${sub.next} was due (lost, repeated or out of order)`);
        if (!ok) return this.fail(`${sub.name}: message ${seq} of ${channel} differs from what was published`);
        sub.next += 1;
        this.checked += 1;
    }

    watch(ws, sub) {
        sub.ws = ws;
        ws.closed.then(({ code }) => {
            if (!sub.expectedClose) this.fail(`${sub.name}: closed by the hub (${code})`);
        });
        ws.on('error', (err) => this.fail(`${sub.name}: ${err.message}`));
        this.subscribers.push(sub);
    }

    async connect() {
        const half = Math.floor(this.count / 2);
        await mapLimit([...Array(half).keys()], 50, async (i) => {
            const channel = this.aiowsChannels[i % AIOWS_CHANNELS];
            const ws = await openWs(`${this.server.url}/channel/${channel}/`);
            const sub = { name: `aiows subscriber ${i}`, channel, next: 0 };
            this.watch(ws, sub);
            ws.on('message', () => {
                for (const { data } of ws.inbox.splice(0)) {
                    const text = data.toString('utf8');
                    const [ch, seq] = text.split('|', 2);
                    this.receive(sub, ch, Number(seq), text === aiowsText(ch, Number(seq)));
                }
            });
        });
        await mapLimit([...Array(this.count - half).keys()], 20, async (i) => {
            const channel = this.csChannels[i % CHANNELSTREAM_CHANNELS];
            const connId = await connectUser(this.server, `soak-user-${i}`, [channel]);
            const ws = await openWs(`${this.server.url}/ws?conn_id=${connId}`);
            const sub = { name: `channelstream connection ${i}`, channel, next: 0 };
            this.watch(ws, sub);
            const ingest = () => {
                for (const { data } of ws.inbox.splice(0)) {
                    let list;
                    try {
                        list = JSON.parse(data.toString('utf8'));
                    } catch {
                        this.fail(`${sub.name}: a frame that is not JSON`);
                        continue;
                    }
                    for (const event of Array.isArray(list) ? list : []) {
                        if (event.type !== 'message') continue;  // heartbeats are [], presence is off
                        const seq = event.message?.seq;
                        this.receive(sub, event.channel, seq, event.message?.pad === padFor(event.channel, seq));
                    }
                }
            };
            ingest();
            ws.on('message', ingest);
        });
    }

    start() {
        this.running = true;
        this.connections = [new KeepAliveHttp(this.server), new KeepAliveHttp(this.server)];
        const [aiowsHttp, channelstreamHttp] = this.connections;
        this.publishers = [
            this.publishLoop(this.aiowsChannels, async (channel, seq) => {
                const res = await aiowsHttp.request({
                    method: 'POST',
                    path: `/channel/${channel}/`,
                    headers: { 'Package-Type': 'text' },
                    body: aiowsText(channel, seq),
                });
                return res.status === 201 ? null : `aiows publish to ${channel}: ${res.status} ${res.body.slice(0, 200)}`;
            }),
            this.publishLoop(this.csChannels, async (channel, seq) => {
                const res = await callApi(this.server, '/message', [
                    { channel, user: 'soak-publisher', message: { seq, pad: padFor(channel, seq) }, no_history: true },
                ], { http: channelstreamHttp });
                return res.status === 200 ? null : `channelstream /message to ${channel}: ${res.status} ${res.body.slice(0, 200)}`;
            }),
        ];
    }

    async publishLoop(channels, publishOne) {
        for (let turn = 0; this.running; ++turn) {
            const channel = channels[turn % channels.length];
            const seq = this.published.get(channel) ?? 0;
            const started = Date.now();
            let problem;
            try {
                problem = await publishOne(channel, seq);
            } catch (err) {
                problem = `publish to ${channel}: ${err.message}`;
            }
            if (problem) {
                // A refused or failed publish may or may not have reached the subscribers: the
                // count can no longer be checked, so this publisher stops here.
                this.fail(problem);
                return;
            }
            this.published.set(channel, seq + 1);
            await new Promise((resolve) => setTimeout(resolve, Math.max(0, this.intervalMs - (Date.now() - started))));
        }
    }

    /**
     * Stop publishing, wait until every subscriber has every message (unless the hub is gone
     * already: `drain` false), close them all.
     */
    async stop({ drain = true } = {}) {
        this.running = false;
        await withTimeout(Promise.all(this.publishers ?? []), ms(10000), 'the publishers to finish').catch((err) => this.fail(err.message));
        for (const connection of this.connections ?? []) connection.close();
        if (!drain) return this.closeAll();
        const behind = () => this.subscribers.filter((s) => s.next < (this.published.get(s.channel) ?? 0));
        await waitFor(() => behind().length === 0, { timeout: ms(10000), interval: 20, what: 'every subscriber to get the last message' }).catch(() => {
            const late = behind();
            this.fail(`${late.length} subscribers missed messages, e.g. ${late[0].name}: has ${late[0].next} of ${this.published.get(late[0].channel)}`);
        });
        return this.closeAll();
    }

    async closeAll() {
        await mapLimit(this.subscribers, 100, async (sub) => {
            sub.expectedClose = true;
            if (sub.ws.readyState === sub.ws.OPEN) sub.ws.close(1000);
            await withTimeout(sub.ws.closed, ms(5000), 'close').catch(() => sub.ws.terminate());
        });
    }

    summary() {
        const publishedTotal = [...this.published.values()].reduce((a, b) => a + b, 0);
        return { checked: this.checked, published: publishedTotal, failures: this.failureCount, examples: this.failures };
    }
}
