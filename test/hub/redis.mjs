// A private redis-server for the hub's integration tests: Debian's /usr/bin/redis-server on
// a free loopback port, no persistence, never the system service, never 6379. It can be
// killed and started again on the same port (empty, as after a crash), and is killed when
// the test process exits, whatever happened.
//
//   const redis = await startRedis();       // answers PING
//   startHub(['--redis', redis.url]);
//   await redis.kill();  await redis.start();  // an outage, then the same port again
//   await redis.stop();                       // in after()

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';

import { HOST, ms, withTimeout } from '../integration/helpers.mjs';

export const REDIS_SERVER = '/usr/bin/redis-server';
const SETPRIV = '/usr/bin/setpriv';

const live = new Set();  // children to kill if the test process ends first
process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
});

/** A loopback port that was free a moment ago (the kernel's pick for port 0). */
export function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once('error', reject);
        server.listen(0, HOST, () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

/** Whether `text` holds a whole reply: one line, or a bulk string's header and its bytes. */
function replyComplete(text) {
    const eol = text.indexOf('\r\n');
    if (eol < 0) return false;
    if (text[0] !== '$') return true;  // +status, -error, :integer (arrays are not needed here)
    const length = Number(text.slice(1, eol));
    return length < 0 || Buffer.byteLength(text) >= eol + 2 + length + 2;
}

/**
 * Send one Redis command (an array of strings) on a fresh connection; resolve with the raw
 * reply text (e.g. "+PONG\r\n"; simple replies and bulk strings only). Rejects when nothing answers within `timeout`.
 */
export function redisCommand(port, args, { timeout = ms(2000) } = {}) {
    const wire = `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('');
    return withTimeout(
        new Promise((resolve, reject) => {
            const socket = net.connect({ host: HOST, port });
            let reply = '';
            socket.setEncoding('utf8');
            socket.on('connect', () => socket.write(wire));
            socket.on('data', (chunk) => {
                reply += chunk;
                if (replyComplete(reply)) {
                    socket.destroy();
                    resolve(reply);
                }
            });
            socket.on('error', reject);
            socket.on('close', () => reject(new Error('redis closed the connection without a reply')));
        }),
        timeout,
        `redis ${args[0]}`,
    );
}

export class RedisServer {
    constructor(port) {
        this.port = port;
        this.child = null;
        this.output = [];
    }

    get url() {
        return `redis://${HOST}:${this.port}`;
    }

    get running() {
        return this.child !== null;
    }

    /** Start (again) on this.port, empty; resolve once it answers PING. */
    async start({ timeout = ms(5000) } = {}) {
        if (this.child) return;
        const args = ['--port', String(this.port), '--bind', HOST, '--save', '', '--appendonly', 'no',
            '--daemonize', 'no', '--dir', '/tmp', '--protected-mode', 'yes'];
        // setpriv --pdeathsig: the server dies with this process even if it is SIGKILLed
        // (the 'exit' hook below covers every other ending).
        const child = existsSync(SETPRIV)
            ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', REDIS_SERVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
            : spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        this.child = child;
        live.add(child);
        let exited = false;
        child.on('exit', () => {
            exited = true;
            live.delete(child);
        });
        for (const stream of [child.stdout, child.stderr]) {
            stream.setEncoding('utf8');
            stream.on('data', (chunk) => {
                this.output.push(chunk);
                if (this.output.length > 200) this.output.splice(0, 100);
            });
        }
        const end = Date.now() + timeout;
        for (;;) {
            if (exited) {
                this.child = null;
                throw new Error(`redis-server exited at start on port ${this.port}:\n${this.output.join('')}`);
            }
            try {
                if ((await redisCommand(this.port, ['PING'], { timeout: 500 })).startsWith('+PONG')) return;
            } catch {
                // not listening yet
            }
            if (Date.now() >= end) {
                await this.kill();
                throw new Error(`redis-server on port ${this.port} did not answer PING within ${timeout} ms`);
            }
            await new Promise((resolve) => setTimeout(resolve, 20));  // polling a condition
        }
    }

    /** SIGKILL (a crash, as the hub sees it) and wait for the exit. Idempotent. */
    async kill() {
        const child = this.child;
        if (!child) return;
        this.child = null;
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGCONT');
        child.kill('SIGKILL');
        await withTimeout(exited, ms(5000), 'redis-server to exit');
    }

    /** The end of a test: same as kill (nothing to save). */
    stop() {
        return this.kill();
    }

    /** One command to this server (see redisCommand). */
    command(args, options) {
        return redisCommand(this.port, args, options);
    }
}

/** A redis-server on a free port, answering PING. Retries a few ports if one is taken. */
export async function startRedis({ attempts = 5 } = {}) {
    if (!existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} not found (apt-get install redis-server)`);
    let lastError;
    for (let i = 0; i < attempts; ++i) {
        const server = new RedisServer(await freePort());
        try {
            await server.start();
            return server;
        } catch (err) {
            lastError = err;
        }
    }
    throw lastError;
}
