// on_http_request_async: plain HTTP requests answered later, from another thread (long polls),
// pipelined requests kept in order behind a waiting one, the server's own 503 when a handler
// never answers, and a responder that learns its client went away.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';

import { startServer, rawHttp, waitFor, withTimeout, ms, HOST, RawClient } from './helpers.mjs';

const sanitized = (process.env.WEBSOCK_BUILD || 'release') !== 'release';
const engineEnv = { WEBSOCK_ENGINE: process.env.WEBSOCK_ENGINE || 'threads' };

function rssKiB(pid) {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

function get(target, extra = '') {
    return `GET ${target} HTTP/1.1\r\nHost: ${HOST}\r\n${extra}\r\n`;
}

/** Read from a socket until `count` complete responses (by Content-Length) have arrived. */
function readResponses(socket, count, timeout) {
    let received = Buffer.alloc(0);
    return withTimeout(
        new Promise((resolve, reject) => {
            const bodies = [];
            const check = () => {
                for (;;) {
                    const end = received.indexOf('\r\n\r\n');
                    if (end < 0) return;
                    const head = received.subarray(0, end).toString('latin1');
                    const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
                    if (received.length < end + 4 + length) return;
                    bodies.push({ status: Number(head.split(' ')[1]), body: received.subarray(end + 4, end + 4 + length).toString() });
                    received = received.subarray(end + 4 + length);
                    if (bodies.length === count) return resolve(bodies);
                }
            };
            socket.on('data', (chunk) => {
                received = Buffer.concat([received, chunk]);
                check();
            });
            socket.on('error', reject);
            socket.on('close', () => reject(new Error(`closed after ${bodies.length} of ${count} responses`)));
        }),
        timeout,
        `${count} HTTP responses`,
    );
}

describe('async HTTP handler', () => {
    let server;
    before(async () => {
        server = await startServer('fixture_server', ['--async-http', 'yes', '--http-response-timeout-ms', String(ms(400))], { env: engineEnv });
    });
    after(async () => server?.stop());

    it('answers inside the handler, with the peer address on the request', async () => {
        const response = await rawHttp(server.port, get('/now'));
        assert.equal(response.status, 200);
        assert.match(response.body, /^now:127\.0\.0\.1:\d+$/);
    });

    it('answers later from another thread; HEAD gets the length and no body', async () => {
        const response = await rawHttp(server.port, get('/later?ms=50'));
        assert.equal(response.status, 200);
        assert.equal(response.body, 'later:GET');
        const head = await rawHttp(server.port, `HEAD /later?ms=5 HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
        assert.equal(head.status, 200);
        assert.equal(head.headers['content-length'][0], String('later:HEAD'.length));
        assert.equal(head.body, '');
    });

    it('keeps pipelined requests in order behind one that waits', async () => {
        const socket = net.connect({ host: HOST, port: server.port });
        await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
        const done = readResponses(socket, 3, ms(5000));
        socket.write(get('/later?ms=80') + get('/now') + get('/later?ms=1'));
        const responses = await done;
        socket.destroy();
        assert.deepEqual(responses.map((r) => r.body.replace(/:\d+$/, '')), ['later:GET', 'now:127.0.0.1', 'later:GET']);
    });

    it('answers 20,000 pipelined requests on one connection without going deeper per request', async () => {
        // Each request answered inside the handler used to resume the parsing of the ones
        // behind it one call deeper: a single client's burst overflowed a client thread's
        // 256 KiB stack (SIGSEGV, every client gone).
        const count = 20000;
        const socket = net.connect({ host: HOST, port: server.port });
        await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
        const done = readResponses(socket, count, ms(20000));
        socket.write(get('/now').repeat(count));
        const responses = await done;
        socket.destroy();
        assert.equal(responses.length, count);
        assert.ok(responses.every((r) => r.status === 200 && r.body.startsWith('now:')));
        assert.equal((await rawHttp(server.port, get('/now'))).status, 200);
    });

    it('a client that pipelines and does not read gets no more than ~1 MiB of answers held for it; all come, in order, once it reads', async () => {
        // 400 requests of 40-odd bytes ask for 26 MB of answers. The server stops parsing
        // while 1 MiB of answers waits to be written, and goes on as the client reads.
        const count = 400;
        const size = 65536;
        const socket = net.connect({ host: HOST, port: server.port });
        await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
        socket.pause();
        const before = rssKiB(server.child.pid);
        let requests = '';
        for (let i = 0; i < count; i++) requests += get(`/big?bytes=${size}&n=${i}`);
        socket.write(requests);
        // While the client reads nothing, watch the server's memory for 2 s: it must not
        // grow by the answers it could not write (measured: ~4 MB with the limit, the socket
        // buffers' share included; ~16 MB without it).
        let grown = 0;
        const overgrown = await waitFor(() => (grown = rssKiB(server.child.pid) - before) > 10 * 1024, {
            timeout: ms(2000),
            what: 'the RSS to grow by 10 MiB',
        }).then(() => true, () => false);
        // (Release only: the sanitizers' allocators keep freed memory in quarantine.)
        if (!sanitized) assert.ok(!overgrown, `the server's RSS grew by ${grown} KiB while the client read nothing`);
        const done = readResponses(socket, count, ms(20000));
        socket.resume();
        const responses = await done;
        socket.destroy();
        assert.ok(responses.every((r) => r.status === 200 && r.body.length === size));
        assert.equal((await rawHttp(server.port, get('/now'))).status, 200);
    });

    it('a handler that never answers gets the server 503 after http_response_timeout; the server goes on', async () => {
        const started = Date.now();
        const response = await rawHttp(server.port, get('/never'), { timeout: ms(5000) });
        assert.equal(response.status, 503);
        assert.ok(Date.now() - started >= ms(400) - 50, 'not before the timeout');
        assert.equal((await rawHttp(server.port, get('/now'))).status, 200);
        await waitFor(() => server.stderr.some((l) => /no answer within http_response_timeout/.test(l)), { what: 'the timeout reported to on_error' });
    });

    it('a handler that throws gives 500 and goes to on_error', async () => {
        const response = await rawHttp(server.port, get('/throw'));
        assert.equal(response.status, 500);
        await waitFor(() => server.stderr.some((l) => /on_http_request_async threw: async handler failure/.test(l)), { what: 'the exception on stderr' });
    });

    it('a responder learns that its client went away, and a late answer is refused', async () => {
        const client = await RawClient.connect(server.port);
        client.socket.write(get('/watch'));
        // The request is parsed once /watched sees a responder: poll until it does.
        await waitFor(async () => /answered:false/.test((await rawHttp(server.port, get('/watched'))).body), { what: '/watch registered' });
        client.socket.resetAndDestroy();
        const report = await waitFor(async () => {
            const body = (await rawHttp(server.port, get('/watched'))).body;
            return /answered:true/.test(body) ? body : null;
        }, { what: 'the responder to see its client gone' });
        assert.equal(report, 'answered:true refused:true');
    });

    it('WebSocket upgrades still work beside the async handler', async () => {
        const client = await RawClient.open(server.port);
        client.destroy();
    });
});
