// What permessage-deflate costs per connection: websock-echo (event loop) with each
// compressor setting; N clients (Node's ws, deflate on, every message compressed) each send
// one 1 KiB compressible message and read its echo, then stay open. Reports the server's RSS
// per connection above its warm baseline, and the bytes one chat-like stream of 100 messages
// takes on the wire with and without context takeover (zlib in this process, the same
// DEFLATE settings), which is what sharing a compressor gives up.
//
//   node bench/deflate_memory.mjs [--clients 2000] [--bin build/release/bin]
//
// Loopback only; bounded: every wait has a deadline.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import WebSocket from 'ws';

const args = process.argv.slice(2);
const option = (name, fallback) => {
    const at = args.indexOf(name);
    return at >= 0 ? args[at + 1] : fallback;
};
const CLIENTS = Number(option('--clients', 2000));
const BIN = path.resolve(option('--bin', 'build/release/bin'));

const rssKiB = (pid) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

function chatLine(i) {
    return JSON.stringify({ user: `user${i % 17}`, channel: 'lobby', text: `message number ${i}: hello, world, again and again`, at: 1765100000000 + i });
}

function message1k(i) {
    let text = '';
    for (let n = 0; text.length < 1024; ++n) text += chatLine(i * 100 + n);
    return text.slice(0, 1024);
}

function withDeadline(promise, ms, what) {
    let timer;
    return Promise.race([
        promise.finally(() => clearTimeout(timer)),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); }),
    ]);
}

async function startEcho(extra) {
    const child = spawn(path.join(BIN, 'websock-echo'), ['--engine', 'event', '--port', '0', '--quiet', ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await withDeadline(new Promise((resolve, reject) => {
        let text = '';
        child.stdout.on('data', (chunk) => {
            text += chunk;
            const m = /listening on .*:(\d+)/.exec(text);
            if (m) resolve(Number(m[1]));
        });
        child.on('exit', (code) => reject(new Error(`websock-echo exited (${code})`)));
    }), 10000, 'websock-echo to listen');
    return { child, port };
}

async function openAndEcho(port, i) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: { threshold: 0 } });
    await withDeadline(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 10000, 'open');
    const message = message1k(i);
    const echo = new Promise((resolve) => ws.once('message', (data) => resolve(data.toString())));
    ws.send(message);
    if ((await withDeadline(echo, 10000, 'echo')) !== message) throw new Error('echo differs');
    return ws;
}

async function measure(label, extra) {
    const { child, port } = await startEcho(extra);
    // warm: the allocator's arenas and the loop's buffers, before the baseline
    const warm = await Promise.all(Array.from({ length: 20 }, (_, i) => openAndEcho(port, i)));
    for (const ws of warm) ws.terminate();
    await new Promise((resolve) => setTimeout(resolve, 300));  // let the server take the resets
    const base = rssKiB(child.pid);
    const clients = [];
    for (let i = 0; i < CLIENTS; i += 100)
        clients.push(...(await Promise.all(Array.from({ length: Math.min(100, CLIENTS - i) }, (_, j) => openAndEcho(port, i + j)))));
    const rss = rssKiB(child.pid);
    for (const ws of clients) ws.terminate();
    child.kill('SIGTERM');
    await withDeadline(new Promise((resolve) => child.on('exit', resolve)), 10000, 'websock-echo to exit');
    const perConnection = ((rss - base) * 1024) / CLIENTS;
    console.log(`${label.padEnd(44)} ${String(Math.round(perConnection)).padStart(8)} bytes of RSS per connection (${CLIENTS} clients)`);
}

function wireBytes() {
    const lines = Array.from({ length: 100 }, (_, i) => chatLine(i));
    const raw = lines.reduce((n, l) => n + l.length, 0);
    // A context-takeover stream may refer back to everything before the message (up to the
    // 32 KiB window): the same as compressing the message with that history as dictionary.
    let takeover = 0;
    let history = '';
    for (const line of lines) {
        const whole = zlib.deflateRawSync(Buffer.from(line), { dictionary: Buffer.from(history.slice(-32768)), level: 6 });
        takeover += whole.length;
        history += line;
    }
    const fresh = lines.reduce((n, l) => n + zlib.deflateRawSync(Buffer.from(l), { level: 6 }).length, 0);
    console.log(`100 chat lines, ${raw} bytes: ${takeover} bytes compressed with context takeover (own compressor), ${fresh} without (shared)`);
}

await measure('deflate off', ['--no-deflate']);
await measure('deflate, own compressor per connection', ['--deflate-compressor', 'own']);
await measure('deflate, shared compressor per thread', ['--deflate-compressor', 'shared']);
await measure('deflate, shared, client no context takeover', ['--deflate-compressor', 'shared', '--deflate-client-no-context-takeover']);
wireBytes();
