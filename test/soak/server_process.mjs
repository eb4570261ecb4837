// One server under soak: started through `sh -c 'ulimit -n N; exec ...'` so that it runs with
// a lowered descriptor limit (soft and hard: websock-hub raises its soft limit to the hard one,
// and must not escape), on 127.0.0.1 port 0. It counts the lines the server writes to stderr
// per phase (the abuse kind running when the line arrived), keeps the last ones for the
// report, and records how and during which phase the process ended.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

import { HOST, ms, binPath, withTimeout } from '../integration/helpers.mjs';

const KEPT_LINES = 60;

export class ServerUnderSoak {
    /**
     * `name`: the binary in WEBSOCK_BIN_DIR; `args` after --host/--port; `fdLimit`: the
     * process's RLIMIT_NOFILE (soft and hard); `env`: added to the environment.
     */
    static async start(name, args, { fdLimit, env = {}, timeout = ms(10000) }) {
        const file = binPath(name);
        if (!existsSync(file)) throw new Error(`server binary not found: ${file} (build it, or set WEBSOCK_BIN_DIR)`);
        const script = 'ulimit -n "$1" || exit 97; shift; exec "$@"';
        const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HUB_') && !k.startsWith('CHANNELSTREAM_') && k !== 'WEBSOCK_ENGINE'));
        const child = spawn('/bin/sh', ['-c', script, 'sh', String(fdLimit), file, '--host', HOST, '--port', '0', ...args], {
            stdio: ['ignore', 'pipe', 'pipe'],
            env: { ...cleanEnv, ...env },
        });
        const server = new ServerUnderSoak(name, child);
        try {
            const line = await withTimeout(server.listening, timeout, `${name}: 'listening on' line`);
            const match = /^listening on (.+):(\d+)\s*$/.exec(line);
            if (!match) throw new Error(`${name}: cannot parse '${line}'`);
            server.port = Number(match[2]);
        } catch (err) {
            server.kill();
            throw new Error(`${err.message}\n--- stderr:\n${server.lastLines().join('\n')}`);
        }
        return server;
    }

    constructor(name, child) {
        this.name = name;
        this.child = child;
        this.pid = child.pid;  // sh execs the server: the same process
        this.host = HOST;
        this.port = 0;
        this.socketPath = null;  // for hub_helpers.request()
        this.phase = 'start';
        this.linesByPhase = new Map();
        this.firstLineByPhase = new Map();
        this.shapesByPhase = new Map();  // phase -> Map(line with numbers as N -> count)
        this.recent = [];
        this.sanitizerLines = [];
        this.exit = null;  // {code, signal, phase} once it ended
        this.exited = new Promise((resolve) => {
            child.on('exit', (code, signal) => {
                this.exit = { code, signal, phase: this.phase };
                resolve(this.exit);
            });
        });
        let announce;
        this.listening = new Promise((resolve) => (announce = resolve));
        splitLines(child.stdout, (line) => {
            if (/^listening on /.test(line)) announce(line);
        });
        splitLines(child.stderr, (line) => this.onStderr(line));
    }

    onStderr(line) {
        this.linesByPhase.set(this.phase, (this.linesByPhase.get(this.phase) ?? 0) + 1);
        if (!this.firstLineByPhase.has(this.phase)) this.firstLineByPhase.set(this.phase, line);
        if (!this.shapesByPhase.has(this.phase)) this.shapesByPhase.set(this.phase, new Map());
        const shapes = this.shapesByPhase.get(this.phase);
        const shape = line.slice(0, 200).replace(/\d+/g, 'N');
        if (shapes.has(shape) || shapes.size < 20) shapes.set(shape, (shapes.get(shape) ?? 0) + 1);
        this.recent.push(line);
        if (this.recent.length > KEPT_LINES) this.recent.shift();
        // A sanitizer report is what matters most after a crash: keep it whole (bounded).
        if (this.sanitizerLines.length > 0 || /ERROR: \w+Sanitizer|runtime error:|WARNING: ThreadSanitizer/.test(line)) {
            if (this.sanitizerLines.length < 200) this.sanitizerLines.push(line);
        }
    }

    get url() {
        return `ws://${this.host}:${this.port}`;
    }

    get alive() {
        return this.exit === null;
    }

    /** Lines written while each phase ran: [[phase, count], ...] in order of first line. */
    lineCounts() {
        return [...this.linesByPhase.entries()];
    }

    /** The most frequent kinds of line written during `phase`: [[line with numbers as N, count], ...]. */
    commonLines(phase, top = 3) {
        return [...(this.shapesByPhase.get(phase) ?? new Map()).entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
    }

    lastLines(count = KEPT_LINES) {
        return this.recent.slice(-count);
    }

    /** SIGTERM, then wait for the exit (SIGKILL after the deadline). Resolves the exit. */
    async stop({ timeout = ms(10000) } = {}) {
        this.phase = 'shutdown';
        if (this.exit === null) this.child.kill('SIGTERM');
        try {
            await withTimeout(this.exited, timeout, `${this.name} to exit after SIGTERM`);
        } catch {
            this.kill();
            await this.exited;
            this.exit.timedOut = true;
        }
        return this.exit;
    }

    kill() {
        if (this.exit === null) this.child.kill('SIGKILL');
    }
}

function splitLines(stream, onLine) {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
        partial += chunk;
        let nl;
        while ((nl = partial.indexOf('\n')) >= 0) {
            onLine(partial.slice(0, nl).replace(/\r$/, ''));
            partial = partial.slice(nl + 1);
        }
        // A line that never ends (binary garbage echoed into a log) is still a bounded line.
        if (partial.length > 64 * 1024) {
            onLine(partial);
            partial = '';
        }
    });
    stream.on('end', () => partial && onLine(partial));
}
