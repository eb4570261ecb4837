// Two hub nodes share one set of channels through Redis, seen from outside: a `ws`
// subscriber of node B gets what is published to node A, and A refuses a publish without the
// password. Used by test/container/hub.sh against the hub's container image; works against
// any two nodes.
//
//   node test/container/hub-check.mjs --a http://127.0.0.1:PORT_A --b http://127.0.0.1:PORT_B \
//        --password PWD [--deadline-ms 10000]
//
// Exit 0 when all holds; 1 with the reason on stderr otherwise. Loopback URLs only.
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import WebSocket from 'ws';

const { values } = parseArgs({
    options: {
        a: { type: 'string' },
        b: { type: 'string' },
        password: { type: 'string' },
        'deadline-ms': { type: 'string', default: '10000' },
    },
});
const deadlineMs = Number(values['deadline-ms']);
if (!values.a || !values.b || !values.password || !(deadlineMs > 0)) {
    console.error('usage: hub-check.mjs --a URL --b URL --password PWD [--deadline-ms N]');
    process.exit(2);
}
for (const url of [values.a, values.b]) {
    if (!['127.0.0.1', '[::1]'].includes(new URL(url).hostname)) {
        console.error(`hub-check: ${url} is not loopback`);
        process.exit(2);
    }
}

function fail(message) {
    console.error(`hub-check: FAIL: ${message}`);
    process.exit(1);
}

function withDeadline(promise, what) {
    let timer;
    const deadline = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: nothing within ${deadlineMs} ms`)), deadlineMs);
    });
    return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

async function publish(base, channel, body, headers) {
    const response = await fetch(new URL(`/channel/${channel}/`, base), { method: 'POST', body, headers });
    return { status: response.status, text: await response.text() };
}

async function metric(base, name) {
    const text = await (await fetch(new URL('/metrics', base))).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.split(' ')[1]) : undefined;
}

// Both nodes read the Redis stream before anything is published.
async function busConnected(base) {
    const end = Date.now() + deadlineMs;
    while (Date.now() < end) {
        if ((await metric(base, 'hub_bus_connected')) === 1) return;
        await new Promise((resolve) => setTimeout(resolve, 50));  // polling period
    }
    fail(`${base}: hub_bus_connected did not become 1 within ${deadlineMs} ms`);
}

await busConnected(values.a);
await busConnected(values.b);

const channel = `room-${randomUUID()}`;
const subscriberUrl = new URL(`/channel/${channel}/`, values.b);
subscriberUrl.protocol = 'ws:';
const subscriber = new WebSocket(subscriberUrl);
const received = [];
let notify = () => {};
subscriber.on('message', (data, isBinary) => {
    received.push({ text: data.toString(), isBinary });
    notify();
});
await withDeadline(new Promise((resolve, reject) => {
    subscriber.once('open', resolve);
    subscriber.once('error', reject);
}), `subscribe to ${subscriberUrl}`);

const refused = await publish(values.a, channel, 'no password', { 'Package-Type': 'text' });
if (refused.status !== 403) fail(`a publish without the password got ${refused.status} ${refused.text}, not 403`);

const message = `hello from node A ${randomUUID()}`;
const accepted = await publish(values.a, channel, message, { 'Package-Type': 'text', 'X-Hub-Password': values.password });
if (accepted.status !== 201) fail(`the publish to node A got ${accepted.status} ${accepted.text}, not 201`);

await withDeadline(new Promise((resolve) => {
    notify = () => received.length > 0 && resolve();
    notify();
}), 'the message at node B').catch((error) => fail(error.message));
if (received.length !== 1 || received[0].text !== message || received[0].isBinary)
    fail(`node B's subscriber got ${JSON.stringify(received)}, expected exactly the text "${message}"`);
if (received.some((m) => m.text === 'no password')) fail('the refused publish was delivered');

subscriber.close(1000);
console.log(`hub-check: published to ${values.a}, received at ${values.b}: "${message}"; 403 without the password`);
