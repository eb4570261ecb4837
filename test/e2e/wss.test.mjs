// wss:// in a real browser: the chat room served over https with a certificate made at test
// time (self-signed; this browser context is told to accept it), two people chatting over a
// TLS WebSocket.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ChatServer, HOST, EXTERNAL_URL, launchBrowser, ms, exactly } from './harness.mjs';

describe('the chat room over https and wss', { skip: EXTERNAL_URL ? 'runs against its own server only' : false }, () => {
    let dir;
    let server;
    let chrome;
    before(async () => {
        dir = mkdtempSync(path.join(os.tmpdir(), 'websock-chat-tls-'));
        execFileSync('openssl', [
            'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
            '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
            '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
        ], { stdio: 'ignore' });
        server = await new ChatServer({ args: ['--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem')] }).start();
        chrome = await launchBrowser();
    });
    after(async () => {
        if (chrome) await chrome.close().catch(() => {});
        if (server) await server.stop().catch(() => server.kill());
        if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('two pages on https chat over wss', async () => {
        const url = `https://${HOST}:${server.port}/`;
        const people = [];
        for (const nick of ['alice', 'bob']) {
            const context = await chrome.browser.newContext({ ignoreHTTPSErrors: true });
            const page = await context.newPage();
            page.setDefaultTimeout(ms(10000));
            await page.goto(url);
            assert.equal(await page.evaluate(() => location.protocol), 'https:');
            await page.locator('#status.online').waitFor();
            await page.getByLabel('Choose a nickname').fill(nick);
            await page.getByRole('button', { name: 'Join' }).click();
            await page.locator('#room').waitFor({ state: 'visible' });
            people.push({ nick, page, context });
        }
        const [alice, bob] = people;
        const box = alice.page.getByRole('textbox', { name: 'message' });
        await box.fill('hello over wss');
        await box.press('Enter');
        await bob.page
            .locator('#log li.message')
            .filter({ has: bob.page.locator('span.author', { hasText: exactly('alice') }) })
            .filter({ has: bob.page.locator('span.text', { hasText: exactly('hello over wss') }) })
            .waitFor();
        for (const person of people) await person.context.close();
    });
});
