// Zero-downtime restart of websock-hub (hub/restart.hpp, docs/hub.md "Zero-downtime
// restart"): SIGHUP and `--restart PIDFILE`, on both engines, TCP and unix sockets, and
// socket activation (LISTEN_FDS, from restart_launcher.py and from systemd-socket-activate).
//
// Every hub runs under restart_launcher.py, a child subreaper: the old process of a restart
// and the new one it starts (which outlives it) are both reaped there and reported with
// their exit codes ("launcher: reaped PID exit CODE"), so the tests see every exit code and
// no zombie is left, whatever the machine's init does. Loopback only; every loop is bounded
// in count and time; nothing sleeps to synchronise.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
    HOST, HubProcess, TIMEOUT_SCALE, WebSocket, binPath, ms, nextMessage, publish, request, subscribe, tempDir, withTimeout,
} from './hub_helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const LAUNCHER = path.join(here, 'restart_launcher.py');
const RESTART_REASON = 'service restart: reconnect and resume';
const ENGINES = [
    ['event loop', []],
    ['threads', ['--threads']],
];

/** Wait until `condition()` is truthy (polled every 10 ms); its value, or fail at the deadline. */
async function waitFor(condition, what, timeout = ms(15000)) {
    const end = Date.now() + timeout;
    for (;;) {
        const value = await condition();
        if (value) return value;
        if (Date.now() >= end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
    }
}

/** websock-hub under the launcher; resolves once a hub printed its first `listening on`. */
async function launchHub(args, { listen = null, binary = binPath('websock-hub'), env = {} } = {}) {
    const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HUB_')));
    const launcherArgs = [LAUNCHER, ...(listen ? ['--listen', listen] : []), '--', binary, ...args];
    const child = spawn('python3', launcherArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...cleanEnv, ...env } });
    const hub = new HubProcess(child);
    try {
        const line = await withTimeout(hub.waitLine(/^listening on /), ms(10000), "websock-hub: 'listening on' line");
        const unix = /^listening on unix:(.+)$/.exec(line);
        const tcp = /^listening on (.+):(\d+)\s*$/.exec(line);
        if (unix) hub.socketPath = unix[1];
        else {
            hub.host = tcp[1];
            hub.port = Number(tcp[2]);
        }
    } catch (err) {
        child.kill('SIGKILL');
        throw new Error(`${err.message}\n--- stderr:\n${hub.stderrText()}`);
    }
    return hub;
}

const listeningLines = (hub) => hub.stdout.filter((line) => line.startsWith('listening on ')).length;

/** How the launcher saw `pid` end ('exit 0', 'signal 9'), or undefined while it runs. */
function reaped(hub, pid) {
    const prefix = `launcher: reaped ${pid} `;
    const line = hub.stderr.find((l) => l.startsWith(prefix));
    return line?.slice(prefix.length);
}

function readPid(pidfile) {
    try {
        const pid = Number(fs.readFileSync(pidfile, 'utf8').trim());
        return pid > 0 ? pid : null;
    } catch {
        return null;
    }
}

/** The unix-domain sockets process `pid` holds (inodes found in /proc/net/unix), but for
 * its stdio (pipes from node are unix sockets). `unnamed`: only those bound to no path (a
 * socketpair's ends, like the handover channel; a named listener's connections carry its path). */
function unixSocketsOf(pid, { unnamed = false } = {}) {
    const unixInodes = new Set();
    for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
        const fields = line.trim().split(/\s+/);
        if (fields.length >= 7 && (!unnamed || fields.length === 7)) unixInodes.add(fields[6]);
    }
    const held = [];
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        if (Number(fd) <= 2) continue;
        let target;
        try {
            target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
            continue;  // closed meanwhile
        }
        const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
        if (inode && unixInodes.has(inode)) held.push(`fd ${fd}: ${target}`);
    }
    return held;
}

/** SIGTERM the hub that serves now and assert that it, and the launcher, end cleanly. */
async function stopLast(hub, pid) {
    process.kill(pid, 'SIGTERM');
    await waitFor(() => reaped(hub, pid), `pid ${pid} to be reaped`);
    assert.equal(reaped(hub, pid), 'exit 0', hub.stderrText());
    const exit = await withTimeout(hub.exited, ms(10000), 'the launcher to exit');
    assert.deepEqual(exit, { code: 0, signal: null }, `the launcher reaps everything and exits 0\n${hub.stderrText()}`);
    assert.equal(hub.sanitizerReport(), '');
}

/** Kill whatever is left of a failed test: the pids a pidfile named, then the launcher. */
function killAll(hub, pids) {
    for (const pid of pids) {
        try {
            if (pid) process.kill(pid, 'SIGKILL');
        } catch {
            // gone already
        }
    }
    hub?.kill();
}

/** One connection attempt: opened (then closed by us), or how it failed. */
function attemptConnection(url) {
    return new Promise((resolve) => {
        const ws = new WebSocket(url);
        const timer = setTimeout(() => {
            ws.terminate();
            resolve('no answer within the deadline');
        }, ms(10000));
        ws.on('error', (err) => {
            clearTimeout(timer);
            resolve(`error: ${err.message}`);  // a second resolve after 'open' is ignored
        });
        ws.once('unexpected-response', (req, res) => {
            clearTimeout(timer);
            resolve(`refused with HTTP ${res.statusCode}`);
            ws.terminate();
        });
        ws.once('open', () => {
            clearTimeout(timer);
            resolve(null);
            ws.close();
        });
    });
}

/** Connection attempts back to back (bounded in count) until `stats.stop`; failures kept. */
async function connectLoop(url, stats, maxAttempts = 4000) {
    for (let i = 0; i < maxAttempts && !stats.stop; i++) {
        const failure = await attemptConnection(url);
        if (failure === null) stats.opened++;
        else stats.failures.push(failure);
    }
}

/** A keep-alive HTTP connection on which requests can be sent later (raw, to see its end). */
async function keepAliveConnection(hub) {
    const socket = net.connect(hub.socketPath ? { path: hub.socketPath } : { host: hub.host, port: hub.port });
    await withTimeout(new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject)), ms(5000), 'connect');
    socket.received = '';
    socket.on('data', (chunk) => (socket.received += chunk.toString('latin1')));
    socket.ended = new Promise((resolve) => socket.on('close', resolve));
    socket.on('error', () => {});
    return socket;
}

for (const [engineName, engineArgs] of ENGINES) {
    test(`SIGHUP (${engineName}): not one connection attempt refused, 1012 for the old subscribers, the new process serves`, async () => {
        const { dir, cleanup } = tempDir();
        const pidfile = path.join(dir, 'hub.pid');
        let hub;
        const pids = [];
        try {
            hub = await launchHub(['--host', HOST, '--port', '0', '--pidfile', pidfile, '--drain-timeout', '5', ...engineArgs]);
            const oldPid = readPid(pidfile);
            assert.ok(oldPid, 'the pidfile names the hub once it serves');
            pids.push(oldPid);
            const subscribers = await Promise.all(Array.from({ length: 20 }, () => subscribe(hub, 'news')));
            assert.equal((await publish(hub, 'news', 'before')).status, 201);
            for (const ws of subscribers) assert.equal((await nextMessage(ws)).text, 'before');
            const publisher = await keepAliveConnection(hub);

            const stats = { opened: 0, failures: [], stop: false };
            const loops = Array.from({ length: 4 }, () => connectLoop(hub.wsUrl('/channel/loop/'), stats));
            await waitFor(() => stats.opened >= 40, 'connections before the restart');
            process.kill(oldPid, 'SIGHUP');

            // Once the old process froze, a publish on its keep-alive connection is told to go
            // elsewhere: 503, Retry-After, Connection: close, and the connection ends.
            await waitFor(() => hub.stderr.some((l) => /publishes frozen; handing the state over/.test(l)), 'the freeze');
            publisher.write(`POST /channel/news/ HTTP/1.1\r\nHost: hub\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nlate`);
            await withTimeout(publisher.ended, ms(10000), 'the old process to answer and close');
            assert.match(publisher.received, /^HTTP\/1\.1 503 /);
            assert.match(publisher.received, /\r\nRetry-After: 1\r\n/);
            assert.match(publisher.received, /\r\nConnection: close\r\n/);

            const closes = await withTimeout(Promise.all(subscribers.map((ws) => ws.closed)), ms(15000), 'the 1012 closes');
            for (const close of closes) assert.deepEqual(close, { code: 1012, reason: RESTART_REASON });
            const newPid = await waitFor(() => {
                const pid = readPid(pidfile);
                return pid !== oldPid && pid;
            }, 'the pidfile to name the new process');
            pids.push(newPid);
            assert.equal(listeningLines(hub), 2, 'the new process said where it listens');
            await waitFor(() => reaped(hub, oldPid), 'the old process to exit');
            assert.equal(reaped(hub, oldPid), 'exit 0', hub.stderrText());

            // The loop goes on against the new process for a while, then stops.
            const openedAtExit = stats.opened;
            await waitFor(() => stats.opened >= openedAtExit + 100 || stats.failures.length > 0, 'connections after the restart');
            stats.stop = true;
            await Promise.all(loops);
            assert.deepEqual(stats.failures, [], `connection attempts failed during the restart (${stats.opened} opened)`);

            // The new process serves the aiows API, and holds no unix socket: the handover
            // channel did not outlive the handover.
            const subscriber = await subscribe(hub, 'news');
            assert.equal((await publish(hub, 'news', 'after')).status, 201);
            assert.equal((await nextMessage(subscriber)).text, 'after');
            assert.deepEqual(unixSocketsOf(newPid), []);
            await stopLast(hub, newPid);
            assert.equal(readPid(pidfile), null, 'the last process removes its pidfile');
        } catch (err) {
            killAll(hub, pids);
            throw new Error(`${err.message}\n--- stderr:\n${hub?.stderrText() ?? ''}`);
        } finally {
            cleanup();
        }
    });
}

/** `websock-hub --restart PIDFILE`: {code, stdout, stderr}. */
function runRestart(pidfile) {
    const child = spawn(binPath('websock-hub'), ['--restart', pidfile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    return withTimeout(new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr }))), ms(90000), '--restart');
}

/** Put `content` at `file` by renaming a new file over it (as a package upgrade does). */
function replaceFile(file, content, mode) {
    const temporary = `${file}.new`;
    if (Buffer.isBuffer(content) || typeof content === 'string') fs.writeFileSync(temporary, content);
    else fs.copyFileSync(content.copyOf, temporary);
    fs.chmodSync(temporary, mode);
    fs.renameSync(temporary, file);
}

test('--restart PIDFILE: 1 while the new binary cannot start, is not ready in time, or rejects its config (the old one serves on); then 0', async () => {
    const { dir, cleanup } = tempDir();
    const pidfile = path.join(dir, 'hub.pid');
    const binary = path.join(dir, 'websock-hub');  // a copy we can break, as a bad upgrade would
    const config = path.join(dir, 'hub.ini');
    replaceFile(binary, { copyOf: binPath('websock-hub') }, 0o755);
    fs.writeFileSync(config, '[channelstream]\n');
    let hub;
    const pids = [];
    try {
        const readySeconds = Math.ceil(3 * TIMEOUT_SCALE);  // a sanitized hub starts slower
        hub = await launchHub(['--host', HOST, '--port', '0', '--pidfile', pidfile, '-i', config, '--ready-timeout', String(readySeconds)], { binary });
        const oldPid = readPid(pidfile);
        pids.push(oldPid);
        const subscriber = await subscribe(hub, 'news');
        let sent = 0;
        // The old process reaps a successor that failed: no zombie is left (/proc/PID is gone).
        const failedSuccessorsReaped = () => {
            const failed = [...hub.stderrText(1e6).matchAll(/\(pid (\d+) (?:exited with status \d+|was killed \(SIGKILL\))\)/g)];
            for (const [, pid] of failed) assert.ok(!fs.existsSync(`/proc/${pid}`), `failed successor ${pid} was reaped`);
            return failed.length;
        };
        const stillServes = async (context) => {
            assert.equal(readPid(pidfile), oldPid, `${context}: the pidfile still names the old process`);
            const text = `still here ${++sent}`;
            assert.equal((await publish(hub, 'news', text)).status, 201, context);
            assert.equal((await nextMessage(subscriber, context)).text, text, `${context}: its subscriber was not disturbed`);
        };

        // 1. The configuration was edited into one the new binary refuses.
        fs.writeFileSync(config, '[channelstream]\nno_such_key = 1\n');
        let result = await runRestart(pidfile);
        assert.equal(result.code, 1, result.stderr);
        assert.match(result.stderr, /the restart failed; pid \d+ serves on/);
        assert.ok(hub.stderr.some((l) => /unknown key 'no_such_key'/.test(l)), 'the new process said why');
        assert.ok(hub.stderr.some((l) => /restart failed: the new process ended before it was ready \(pid \d+ exited with status 2\)/.test(l)));
        await stillServes('after a refused config');
        assert.equal(failedSuccessorsReaped(), 1);
        fs.writeFileSync(config, '[channelstream]\n');

        // 2. The binary on disk cannot be run.
        fs.chmodSync(binary, 0o644);
        result = await runRestart(pidfile);
        assert.equal(result.code, 1, result.stderr);
        assert.ok(hub.stderr.some((l) => /restart failed: cannot run .*websock-hub: Permission denied \(it exited with status 127\)/.test(l)), hub.stderrText());
        await stillServes('after a binary that cannot run');

        // 3. A binary that starts but never gets ready: killed at --ready-timeout.
        replaceFile(binary, `#!/bin/sh\nexec sleep ${readySeconds + 60}\n`, 0o755);
        const started = Date.now();
        result = await runRestart(pidfile);
        assert.equal(result.code, 1, result.stderr);
        assert.ok(Date.now() - started >= readySeconds * 1000 - 100, 'it was given its ready timeout');
        assert.ok(hub.stderr.some((l) => /restart failed: the new process was not ready: timed out \(pid \d+ was killed \(SIGKILL\)\)/.test(l)), hub.stderrText());
        await stillServes('after a binary that never got ready');
        assert.equal(failedSuccessorsReaped(), 2);

        // 4. The binary is fixed: the restart goes through.
        replaceFile(binary, { copyOf: binPath('websock-hub') }, 0o755);
        result = await runRestart(pidfile);
        assert.equal(result.code, 0, result.stderr);
        const newPid = readPid(pidfile);
        pids.push(newPid);
        assert.notEqual(newPid, oldPid);
        assert.match(result.stdout, new RegExp(`restarted: pid ${newPid} serves`));
        assert.deepEqual(await withTimeout(subscriber.closed, ms(10000), '1012'), { code: 1012, reason: RESTART_REASON });
        await waitFor(() => reaped(hub, oldPid), 'the old process to exit');
        assert.equal(reaped(hub, oldPid), 'exit 0');
        const after = await subscribe(hub, 'news');
        assert.equal((await publish(hub, 'news', 'from the new one')).status, 201);
        assert.equal((await nextMessage(after)).text, 'from the new one');
        await stopLast(hub, newPid);
    } catch (err) {
        killAll(hub, pids);
        throw new Error(`${err.message}\n--- stderr:\n${hub?.stderrText() ?? ''}`);
    } finally {
        cleanup();
    }
});

test('socket activation on a unix socket (LISTEN_FDS from a launcher): adopted, served, restarted, and its file left in place', async () => {
    const { dir, cleanup } = tempDir();
    const socketPath = path.join(dir, 'hub.sock');
    const pidfile = path.join(dir, 'hub.pid');
    let hub;
    const pids = [];
    try {
        // The flags ask for TCP; the inherited socket wins.
        hub = await launchHub(['--host', HOST, '--port', '0', '--pidfile', pidfile], { listen: `unix:${socketPath}` });
        assert.equal(hub.socketPath, socketPath);
        const oldPid = readPid(pidfile);
        pids.push(oldPid);
        const subscriber = await subscribe(hub, 'news');
        assert.equal((await publish(hub, 'news', 'over unix')).status, 201);
        assert.equal((await nextMessage(subscriber)).text, 'over unix');

        process.kill(oldPid, 'SIGHUP');
        assert.deepEqual(await withTimeout(subscriber.closed, ms(15000), '1012'), { code: 1012, reason: RESTART_REASON });
        const newPid = await waitFor(() => {
            const pid = readPid(pidfile);
            return pid !== oldPid && pid;
        }, 'the new process');
        pids.push(newPid);
        await waitFor(() => reaped(hub, oldPid), 'the old process to exit');
        assert.equal(reaped(hub, oldPid), 'exit 0');
        assert.ok(fs.existsSync(socketPath), 'the old process left the socket file to its successor');
        assert.equal(hub.stdout.filter((l) => l === `listening on unix:${socketPath}`).length, 2);
        const resumed = await subscribe(hub, 'news');
        assert.equal((await publish(hub, 'news', 'still over unix')).status, 201);
        assert.equal((await nextMessage(resumed)).text, 'still over unix');
        // The new one holds the listening socket, and no handover channel (no unnamed socket).
        assert.ok(unixSocketsOf(newPid).length >= 1);
        assert.deepEqual(unixSocketsOf(newPid, { unnamed: true }), []);
        await stopLast(hub, newPid);
    } catch (err) {
        killAll(hub, pids);
        throw new Error(`${err.message}\n--- stderr:\n${hub?.stderrText() ?? ''}`);
    } finally {
        cleanup();
    }
});

test('socket activation on TCP: a launcher socket, and systemd-socket-activate when installed', async (t) => {
    const { dir, cleanup } = tempDir();
    let hub;
    try {
        hub = await launchHub(['--port', '1'], { listen: `${HOST}:0` });  // port 1 is never bound: the socket is adopted
        const announced = hub.stderr.find((l) => l.startsWith('launcher: socket '));
        assert.equal(announced, `launcher: socket ${HOST}:${hub.port}`, 'the hub names the socket it was given');
        const subscriber = await subscribe(hub, 'news');
        assert.equal((await publish(hub, 'news', 'activated')).status, 201);
        assert.equal((await nextMessage(subscriber)).text, 'activated');
        const exit = await hub.stop();  // SIGTERM to the launcher goes to the hub
        assert.deepEqual(exit, { code: 0, signal: null });
        assert.ok(hub.stderr.some((l) => /^launcher: reaped \d+ exit 0$/.test(l)));
        hub = null;
    } finally {
        hub?.kill();
        cleanup();
    }

    const activate = ['/usr/bin/systemd-socket-activate', '/bin/systemd-socket-activate'].find((f) => fs.existsSync(f));
    if (!activate) {
        t.diagnostic('systemd-socket-activate is not installed (Debian: systemd); its part is skipped');
        return;
    }
    // It needs a port number: take a free one, then give it back to the activator.
    const probe = net.createServer();
    await new Promise((resolve) => probe.listen(0, HOST, resolve));
    const port = probe.address().port;
    await new Promise((resolve) => probe.close(resolve));
    const child = spawn(activate, ['-l', `${HOST}:${port}`, binPath('websock-hub')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const activated = new HubProcess(child);
    try {
        await waitFor(() => activated.stderr.some((l) => l.startsWith('Listening on ')), 'systemd-socket-activate to listen', ms(10000));
        activated.port = port;
        // The first connection starts the hub, which serves it from the inherited socket.
        const response = await request(activated, { path: '/metrics' });
        assert.equal(response.status, 200);
        assert.equal(await withTimeout(activated.waitLine(/^listening on /), ms(10000), 'listening line'), `listening on ${HOST}:${port}`);
        const subscriber = await subscribe(activated, 'news');
        assert.equal((await publish(activated, 'news', 'from systemd')).status, 201);
        assert.equal((await nextMessage(subscriber)).text, 'from systemd');
        await activated.stop();
    } finally {
        activated.kill();
    }
});

test('SIGTERM during a restart: the new process, not ready yet, is killed; the old one exits 0 without waiting for it', async () => {
    const { dir, cleanup } = tempDir();
    const pidfile = path.join(dir, 'hub.pid');
    const binary = path.join(dir, 'websock-hub');
    replaceFile(binary, { copyOf: binPath('websock-hub') }, 0o755);
    let hub;
    const pids = [];
    try {
        hub = await launchHub(['--host', HOST, '--port', '0', '--pidfile', pidfile, '--ready-timeout', '120'], { binary });
        const oldPid = readPid(pidfile);
        pids.push(oldPid);
        replaceFile(binary, '#!/bin/sh\nexec sleep 180\n', 0o755);  // never ready
        process.kill(oldPid, 'SIGHUP');
        await waitFor(() => hub.stderr.some((l) => /restart: starting /.test(l)), 'the restart to start');
        const stopped = Date.now();
        process.kill(oldPid, 'SIGTERM');
        const exit = await withTimeout(hub.exited, ms(20000), 'everything to exit');
        assert.ok(Date.now() - stopped < ms(20000));
        assert.deepEqual(exit, { code: 0, signal: null }, 'the launcher saw every descendant go');
        assert.equal(reaped(hub, oldPid), 'exit 0', hub.stderrText());
        assert.ok(hub.stderr.some((l) => /restart failed: .*was killed/.test(l)), hub.stderrText());
        assert.equal(readPid(pidfile), null, 'the old process removed its pidfile');
    } catch (err) {
        killAll(hub, pids);
        throw new Error(`${err.message}\n--- stderr:\n${hub?.stderrText() ?? ''}`);
    } finally {
        cleanup();
    }
});
