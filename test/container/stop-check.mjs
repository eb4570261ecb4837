// Graceful stop of a running chat room, seen from a client: connect a `ws` client to
// URL/chat and join, run COMMAND (e.g. `podman stop -t 10 NAME`), and check that the client
// is sent close 1001 (going away) and that COMMAND succeeds, both within the deadline.
//
//   node test/container/stop-check.mjs http://127.0.0.1:PORT/ [--deadline-ms 8000] -- COMMAND...
//
// Exit 0 when all holds; 1 with the reason on stderr otherwise. Loopback URLs only.
import { spawn } from 'node:child_process';

import WebSocket from 'ws';

const args = process.argv.slice(2);
const dash = args.indexOf('--');
if (dash < 1 || dash === args.length - 1) {
    console.error('usage: stop-check.mjs URL [--deadline-ms N] -- COMMAND...');
    process.exit(2);
}
const options = args.slice(0, dash);
const command = args.slice(dash + 1);
const url = new URL('/chat', options[0]);
url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
const deadlineIndex = options.indexOf('--deadline-ms');
const deadline = deadlineIndex > 0 ? Number(options[deadlineIndex + 1]) : 8000;

if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    console.error(`stop-check: ${url.hostname} is not loopback`);
    process.exit(2);
}

function fail(message) {
    console.error(`stop-check: FAIL: ${message}`);
    process.exit(1);
}

const overall = setTimeout(() => fail(`no result within ${deadline} ms`), deadline);

// 1. connect and join, so that the server counts us as a member of the room
const socket = new WebSocket(url.href);
const closed = new Promise((resolve) => {
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
});
socket.on('error', (error) => console.error(`stop-check: socket error: ${error.message}`));
await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
}).catch((error) => fail(`cannot connect to ${url.href}: ${error.message}`));
socket.send(JSON.stringify({ type: 'join', nick: 'stop-watcher' }));
await new Promise((resolve) => {
    socket.on('message', (data) => {
        const event = JSON.parse(data.toString());
        if (event.type === 'welcome') resolve();
        if (event.type === 'error') fail(`join refused: ${event.message}`);
    });
});
console.log(`stop-check: joined at ${url.href}; running: ${command.join(' ')}`);

// 2. stop the server
const begin = Date.now();
const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'inherit', 'pipe'] });
let stderr = '';
child.stderr.setEncoding('utf8');
child.stderr.on('data', (chunk) => {
    stderr += chunk;
});
const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
child.on('error', (error) => fail(`cannot run ${command[0]}: ${error.message}`));

// 3. what the client and the command saw
const close = await closed;
const closeMs = Date.now() - begin;
const status = await exited;
const commandMs = Date.now() - begin;
clearTimeout(overall);
// podman without systemd complains that it cannot remove the health-check timer: noise.
const noise = /unable to get systemd connection/;
const errors = stderr.split('\n').filter((line) => line.trim() && !noise.test(line));
if (errors.length) console.error(errors.join('\n'));

console.log(`stop-check: close ${close.code} "${close.reason}" after ${closeMs} ms; command exit ${status.code} after ${commandMs} ms`);
if (close.code !== 1001) fail(`expected close 1001 (going away), got ${close.code}`);
if (status.code !== 0) fail(`${command.join(' ')} exited with ${status.code ?? status.signal}`);
console.log('stop-check: ok');
process.exit(0);
