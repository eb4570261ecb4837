// The chat page where it used to surprise its user: what the join form says about a bad
// nickname, long nicknames in the user list, a long paste, a message the server refuses
// for size, a phone-sized screen, and the reconnect countdown. Debian's Chromium through
// playwright-core, against a websock-chat of this file's own on a free loopback port.
//
// The tests run in order and share one room. Every wait is an auto-waiting locator or a
// polled condition with a deadline; nothing sleeps.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { ChatServer, EXTERNAL_URL, ensureArtifactsDir, launchBrowser, ms, waitFor } from './harness.mjs';
import { Crowd, PHONE, errorLine, gapLine, messageBox, messageLine, say, waitForUsers } from './people.mjs';

const LONG_NICK = 'WWWWWWWWWWWWWWWWWWWWWWWW'; // 24 of the widest letter: the most a name can take

describe('the chat page at its edges', { timeout: ms(180000), skip: EXTERNAL_URL ? 'runs against its own server only' : false }, () => {
    let server = null;
    let chrome = null;
    let crowd = null;
    let ada = null;
    let wide = null; // the one with LONG_NICK

    before(async () => {
        server = await new ChatServer().start();
        chrome = await launchBrowser();
        crowd = new Crowd(chrome.browser, server.url);
    });

    after(async () => {
        if (crowd) await crowd.closeAll();
        if (chrome) await chrome.close().catch(() => {});
        if (server) await server.stop().catch(() => server.kill());
    });

    test('the join form says exactly what a nickname may hold', async () => {
        const person = await crowd.open('newcomer');
        const { page } = person;
        const field = page.getByLabel('Choose a nickname');
        const joinError = page.locator('#join-error');
        assert.match(await page.locator('#nick-hint').textContent(), /1 to 24 characters: letters A–Z or a–z, digits 0–9, _ - \./);

        const refusals = [
            ['ada lovelace', 'A nickname can hold only letters A–Z or a–z, digits 0–9, "_", "-" and "." — not spaces.'],
            ['ada!<3', 'A nickname can hold only letters A–Z or a–z, digits 0–9, "_", "-" and "." — not "!", "<".'],
            ['x'.repeat(25), 'That nickname is 25 characters long; the limit is 24.'],
            ['', 'Type a nickname: 1 to 24 characters, letters A–Z or a–z, digits 0–9, "_", "-" or ".".'],
        ];
        for (const [nick, said] of refusals) {
            await field.fill(nick);
            await page.getByRole('button', { name: 'Join' }).click();
            await joinError.filter({ hasText: said }).waitFor();
            assert.equal((await joinError.textContent()).trim(), said);
            assert.equal(await field.inputValue(), nick, 'the field keeps what was typed, uncut');
            assert.equal(await field.getAttribute('aria-invalid'), 'true');
            // The browser's own "Please match the requested format" never shows.
            assert.equal(await field.evaluate((input) => input.validationMessage), '');
            assert.equal(await page.locator('#room').isVisible(), false, 'still outside the room');
        }

        await crowd.join(person, LONG_NICK);
        assert.equal(await joinError.textContent(), '', 'the error is gone once a good name is given');
        wide = person;
    });

    test('a 24-character nickname is cut with an ellipsis in the user list, whole in its tooltip', async () => {
        ada = await crowd.enter('ada');
        for (const person of [ada, wide]) {
            await waitForUsers(person, ['ada', LONG_NICK]);
            const item = person.page.locator('#users li', { hasText: LONG_NICK });
            const fit = await item.evaluate((li) => {
                const list = li.closest('aside').getBoundingClientRect();
                const box = li.getBoundingClientRect();
                return {
                    overflow: getComputedStyle(li).textOverflow,
                    cut: li.scrollWidth > li.clientWidth,
                    inside: box.right <= list.right,
                    title: li.title,
                    text: li.textContent,
                };
            });
            assert.deepEqual(fit, { overflow: 'ellipsis', cut: true, inside: true, title: LONG_NICK, text: LONG_NICK }, person.label);
        }
    });

    test('a long paste is not cut: the counter shows it past the limit and the page refuses it with the reason', async () => {
        const box = messageBox(ada);
        const count = ada.page.locator('#say-count');
        const sayError = ada.page.locator('#say-error');
        assert.equal(await count.textContent(), '0 / 2000', 'the limit shows before anything is typed');

        await box.click();
        await ada.page.keyboard.insertText('y'.repeat(2500)); // what a paste does to the box
        assert.equal((await box.inputValue()).length, 2500, 'nothing was cut');
        await count.filter({ hasText: '2500 / 2000' }).waitFor();
        assert.match(await count.getAttribute('class'), /\bover\b/);
        await box.press('Enter');
        await sayError.filter({ hasText: 'Not sent: the line is 2500 characters; the limit is 2000.' }).waitFor();
        assert.equal((await box.inputValue()).length, 2500, 'the line stays in the box to be shortened');

        // Exactly at the limit, in characters: 2000 "é" are 4000 bytes, and go through whole.
        const atLimit = 'é'.repeat(2000);
        await box.fill(atLimit);
        await count.filter({ hasText: '2000 / 2000' }).waitFor();
        assert.doesNotMatch(await count.getAttribute('class'), /\bover\b/);
        assert.equal(await sayError.textContent(), '', 'the refusal goes once the line fits');
        await box.press('Enter');
        await waitFor(async () => (await box.inputValue()) === '', { what: 'the box to clear' });
        const line = messageLine(wide.page, 'ada', atLimit);
        await line.waitFor();
        assert.equal((await line.locator('span.text').textContent()).length, 2000);
        // The refused line never reached anyone.
        assert.equal(await wide.page.locator('#log li.message').filter({ hasText: 'yyyy' }).count(), 0);
    });

    test('a message the server refuses for size shows an error line, and the page comes back with the gap filled', async () => {
        // retry_ms: a long first retry, so that a line is said while this page is away.
        const bea = await crowd.open('bea', { query: '?retry_ms=5000', keepSockets: true });
        await crowd.join(bea, 'bea');
        await waitForUsers(ada, ['ada', 'bea', LONG_NICK]);
        // The page itself never sends this much (it refuses past 2000 characters); an older
        // page or another client could. The server's cap (16 KiB) closes the connection.
        await bea.page.evaluate(() => window.__sockets.at(-1).send(JSON.stringify({ type: 'say', text: 'z'.repeat(20000) })));
        await errorLine(bea.page, 'the server refused a message as too large and closed the connection; it was not sent').waitFor();
        await bea.page.locator('#status.reconnecting').waitFor();

        // While the page is out, typing is kept in the box with a reason, not lost.
        const box = messageBox(bea);
        await box.fill('anyone there?');
        await box.press('Enter');
        await bea.page.locator('#say-error', { hasText: /^Not sent: not connected/ }).waitFor();
        assert.equal(await box.inputValue(), 'anyone there?');

        await say(ada, 'said while bea was away');
        await messageLine(ada.page, 'ada', 'said while bea was away').waitFor();
        assert.equal(await bea.page.locator('#status.reconnecting').count(), 1, 'bea is still away (retry_ms=5000)');

        await bea.page.locator('#status.online').waitFor({ timeout: ms(20000) });
        await gapLine(bea.page, /^connection lost at .*, back at .*: the 1 line below was said meanwhile$/).waitFor();
        const recovered = bea.page.locator('#log li.gap ~ li.message.history');
        await recovered.filter({ hasText: 'said while bea was away' }).waitFor();
        assert.equal(await recovered.count(), 1, 'only the missed line is added, nothing twice');

        await box.press('Enter'); // the kept line goes now
        await messageLine(ada.page, 'bea', 'anyone there?').waitFor();
        assert.equal(await bea.page.locator('#say-error').textContent(), '');
        await bea.leave();
        await waitForUsers(ada, ['ada', LONG_NICK]);
    });

    test('on a 390 px wide screen the room fits and the user list is a tap away', async () => {
        const phone = await crowd.enter('phone', { viewport: PHONE });
        const { page } = phone;
        const fits = async (locator, what) => {
            const box = await locator.boundingBox();
            assert.ok(box, `${what} is on screen`);
            assert.ok(box.x >= 0 && box.x + box.width <= PHONE.width, `${what} fits across: ${JSON.stringify(box)}`);
            assert.ok(box.y >= 0 && box.y + box.height <= PHONE.height, `${what} fits down: ${JSON.stringify(box)}`);
        };
        assert.equal(await page.evaluate(() => document.documentElement.scrollWidth), PHONE.width, 'no sideways scrolling');
        await fits(messageBox(phone), 'the message box');
        await fits(page.getByRole('button', { name: 'Send' }), 'Send');
        await fits(page.locator('#log'), 'the log');
        await fits(page.locator('#status'), 'the status');
        await page.getByRole('heading', { name: 'In the room (3)' }).waitFor();

        const toggle = page.getByRole('button', { name: 'Show people' });
        await fits(toggle, 'Show people');
        assert.equal(await page.locator('#users').isVisible(), false, 'folded away at first, leaving room for the log');
        await toggle.click();
        await page.locator('#users').waitFor({ state: 'visible' });
        assert.equal(await page.locator('#people-toggle').getAttribute('aria-expanded'), 'true');
        await waitForUsers(phone, ['ada', 'phone', LONG_NICK]);
        // Every name fits across (the list is as wide as the screen here; a longer one would be cut).
        for (const nick of ['ada', 'phone', LONG_NICK]) await fits(page.locator('#users li', { hasText: nick }), nick);
        await fits(messageBox(phone), 'the message box, with the list open');
        await page.screenshot({ path: path.join(ensureArtifactsDir(), 'chat-room-phone.png') });

        await page.getByRole('button', { name: 'Hide people' }).click();
        await page.locator('#users').waitFor({ state: 'hidden' });
        await say(phone, 'typed on a phone');
        await messageLine(ada.page, 'phone', 'typed on a phone').waitFor();
        await fits(messageLine(page, 'phone', 'typed on a phone'), 'the sent line');
        assert.equal(await page.evaluate(() => document.documentElement.scrollWidth), PHONE.width, 'still no sideways scrolling');
    });

    test('the reconnect countdown counts down', async () => {
        const cleo = await crowd.open('cleo', { query: '?retry_ms=3000' });
        await crowd.join(cleo, 'cleo');
        const stopped = await server.stop();
        assert.deepEqual([stopped.code, stopped.signal], [0, null], `SIGTERM ends the server cleanly: ${server.stderr}`);
        // Read the status as it changes; the seconds it shows, each value once, in order.
        const seen = [];
        await waitFor(
            async () => {
                const text = await cleo.page.locator('#status').textContent();
                const match = /^connection lost — reconnecting in (\d+) s$/.exec(text);
                const value = match ? Number(match[1]) : text;
                if (seen.at(-1) !== value) seen.push(value);
                return seen.join(',').includes('3,2,1');
            },
            { timeout: ms(15000), interval: 50, what: 'the status to count 3, 2, 1' },
        ).catch((error) => {
            throw new Error(`${error.message}; it showed [${seen}]`);
        });
        for (const person of crowd.inRoom()) assert.deepEqual(person.pageErrors, [], `${person.label}'s page errors`);
    });
});
