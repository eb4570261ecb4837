// The resumable streams clients of docs/hub.md, run as the docs print them: the Python one
// (Debian's python3 with python3-websockets) resumes from its state file after it stopped;
// the browser one (Debian's Chromium through playwright-core) resumes after the page was
// left and opened again, from localStorage. Each is skipped, saying why, when its runtime
// is missing; the browser one runs on the release build only.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startHub, tempDir, request, ms, waitFor, withTimeout, HOST } from './hub_helpers.mjs';
import { publishMany } from './streams_harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const DOCS = path.join(here, '..', '..', 'docs', 'hub.md');
const PYTHON = '/usr/bin/python3';  // Debian's, where python3-websockets installs
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** The fenced code block right after `<!-- marker... -->` in docs/hub.md. */
function docsBlock(marker) {
    const text = readFileSync(DOCS, 'utf8');
    const at = text.indexOf(`<!-- ${marker}`);
    assert.ok(at >= 0, `docs/hub.md has the marker ${marker}`);
    const block = /```[a-z]*\n([\s\S]*?)```/.exec(text.slice(at));
    assert.ok(block, `a code block follows ${marker}`);
    return block[1];
}

async function subscriptions(hub) {
    const body = (await request(hub, { path: '/metrics' })).body;
    const match = /^hub_subscriptions\{api="streams"\} (\d+)/m.exec(body);
    return match ? Number(match[1]) : 0;
}

function pythonSkipReason() {
    if (!existsSync(PYTHON)) return `${PYTHON} is missing`;
    const probe = spawnSync(PYTHON, ['-c', 'import websockets'], { encoding: 'utf8' });
    return probe.status === 0 ? '' : 'python3-websockets is not installed (apt-get install python3-websockets)';
}

/** Run the docs' Python client; resolves {lines, exit} once it exits (it stops after `count`). */
function runPython(script, url, channel, stateFile, count) {
    const child = spawn(PYTHON, [script, url, channel, stateFile, '--count', String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const run = { lines: [], stderr: '', child };
    child.stdout.setEncoding('utf8');
    let partial = '';
    child.stdout.on('data', (chunk) => {
        partial += chunk;
        const parts = partial.split('\n');
        partial = parts.pop();
        run.lines.push(...parts);
    });
    child.stderr.on('data', (chunk) => (run.stderr += chunk));
    run.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    return run;
}

describe('the docs clients of resumable streams', () => {
    let hub;
    let tmp;
    before(async () => {
        hub = await startHub([]);
        tmp = tempDir();
    });
    after(async () => {
        await hub.stop();
        tmp.cleanup();
    });

    test('Python: handles, acks and stores its position; resumes after its own restart', { timeout: ms(60000) }, async (t) => {
        const reason = pythonSkipReason();
        if (reason) return t.skip(reason);
        const script = path.join(tmp.dir, 'follow_stream.py');
        writeFileSync(script, docsBlock('streams-python-example'));
        const stateFile = path.join(tmp.dir, 'py-state.json');
        const url = hub.wsUrl('/streams');

        let run = runPython(script, url, 'py', stateFile, 3);
        try {
            await waitFor(async () => (await subscriptions(hub)) === 1, { what: 'the Python client subscribed', timeout: ms(15000) });
            await publishMany(hub, 'py', 3, { label: 'py' });
            assert.deepEqual(await withTimeout(run.exited, ms(15000), 'the Python client to exit'), { code: 0, signal: null }, run.stderr);
        } finally {
            run.child.kill('SIGKILL');
        }
        assert.deepEqual(run.lines, ['1 py-0', '2 py-1', '3 py-2']);
        const saved = JSON.parse(readFileSync(stateFile, 'utf8'));
        assert.equal(saved.offset, 3);

        await publishMany(hub, 'py', 2, { label: 'away' });  // while it is not running
        await waitFor(async () => (await subscriptions(hub)) === 0, { what: 'the first run gone' });
        run = runPython(script, url, 'py', stateFile, 3);
        try {
            await waitFor(() => run.lines.length === 2, { what: 'the two missed messages', timeout: ms(15000) });
            await publishMany(hub, 'py', 1, { label: 'live' });
            assert.deepEqual(await withTimeout(run.exited, ms(15000), 'the Python client to exit'), { code: 0, signal: null }, run.stderr);
        } finally {
            run.child.kill('SIGKILL');
        }
        assert.deepEqual(run.lines, ['4 away-0', '5 away-1', '6 live-0']);
    });

    test('browser: follows a channel, and after the page is left and opened again gets what it missed, once', { timeout: ms(90000) }, async (t) => {
        if (process.env.WEBSOCK_BUILD && process.env.WEBSOCK_BUILD !== 'release') return t.skip('the browser runs on the release build only');
        if (!existsSync(CHROMIUM)) return t.skip(`${CHROMIUM} is missing`);
        const { launchBrowser } = await import('../e2e/harness.mjs');
        const page = `<!doctype html><meta charset="utf-8"><title>streams</title><script>
${docsBlock('streams-browser-example')}
window.got = [];
followStream('${hub.wsUrl('/streams')}', 'browser', (m) => window.got.push([m.offset, m.data]));
</script>`;
        // The page needs an origin of its own for localStorage: a tiny server on a free port.
        const server = http.createServer((req, res) => {
            res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
            res.end(page);
        });
        await new Promise((resolve) => server.listen(0, HOST, resolve));
        const origin = `http://${HOST}:${server.address().port}/`;
        const browser = await launchBrowser();
        try {
            const tab = await browser.browser.newPage();
            await tab.goto(origin);
            await waitFor(async () => (await subscriptions(hub)) === 1, { what: 'the page subscribed', timeout: ms(15000) });
            await publishMany(hub, 'browser', 3, { label: 'b' });
            await waitFor(async () => (await tab.evaluate(() => window.got.length)) === 3, { what: 'three messages in the page' });

            await tab.goto('about:blank');  // the connection goes with the page
            await waitFor(async () => (await subscriptions(hub)) === 0, { what: 'the page gone' });
            await publishMany(hub, 'browser', 2, { label: 'away' });
            await tab.goto(origin);
            await waitFor(async () => (await tab.evaluate(() => window.got.length)) === 2, { what: 'the two missed messages' });
            await publishMany(hub, 'browser', 1, { label: 'live' });
            await waitFor(async () => (await tab.evaluate(() => window.got.length)) === 3, { what: 'the live one' });
            assert.deepEqual(await tab.evaluate(() => window.got), [[4, 'away-0'], [5, 'away-1'], [6, 'live-0']]);
            const stored = JSON.parse(await tab.evaluate(() => localStorage.getItem('websock-hub:browser')));
            assert.equal(stored.offset, 6);
        } finally {
            await browser.close();
            await new Promise((resolve) => server.close(resolve));
        }
    });
});
