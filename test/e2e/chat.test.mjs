// The chat room in a real browser (Debian's Chromium through playwright-core), used the way
// people use it: type a nickname, press Join, type lines, read the log and the user list.
//
// The tests of this file run in order and share one room: ada, grace and linus join first;
// later tests build on who is in the room and what was said. Each person has a browser
// context of their own. Every wait is an auto-waiting locator or a polled condition with a
// deadline; nothing sleeps.
//
//   cd test && node --test e2e/                            own server on a free port
//   WEBSOCK_CHAT_URL=http://127.0.0.1:PORT/ node --test e2e/chat.test.mjs
//                                                          a server already running (the
//                                                          container test); no restart case
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import {
    ChatServer,
    EXTERNAL_URL,
    ensureArtifactsDir,
    exactly,
    launchBrowser,
    ms,
    waitFor,
} from './harness.mjs';

const XSS = '<img src=x onerror="window.__xss=1">';
const TIME_OF_DAY = /^\d{1,2}:\d{2}:\d{2}(\s?[AP]M)?$/;

describe('chat room in a browser', { timeout: ms(180000) }, () => {
    let server = null; // null when testing WEBSOCK_CHAT_URL
    let chrome = null;
    let baseUrl = '';
    const everyone = []; // every person ever opened, closed in after()
    const said = []; // public message texts, in the order sent (what history must hold)

    before(async () => {
        if (EXTERNAL_URL) {
            const url = new URL('/', EXTERNAL_URL);
            assert.ok(['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname), `WEBSOCK_CHAT_URL must be loopback: ${url.href}`);
            baseUrl = url.href;
        } else {
            server = await new ChatServer().start();
            baseUrl = server.url;
        }
        chrome = await launchBrowser();
    });

    after(async () => {
        for (const person of everyone) await person.leave().catch(() => {});
        if (chrome) await chrome.close().catch(() => {});
        if (server) {
            await server.stop().catch(() => server.kill());
        }
    });

    // -----------------------------------------------------------------------------------
    // a person at a browser

    /** Open the page in a new browser context and wait for it to say "connected". */
    async function open(label) {
        const context = await chrome.browser.newContext({
            locale: 'en-US',
            viewport: { width: 1000, height: 640 },
        });
        const page = await context.newPage();
        page.setDefaultTimeout(ms(10000));
        const person = {
            label,
            nick: null,
            page,
            context,
            pageErrors: [],
            closed: false,
            async leave() {
                if (this.closed) return;
                this.closed = true;
                await context.close();
            },
        };
        page.on('pageerror', (error) => person.pageErrors.push(error.message));
        everyone.push(person);
        await page.goto(baseUrl);
        await page.locator('#status.online').waitFor();
        // Before joining only the nickname form shows: no log, user list or message box.
        await page.getByLabel('Choose a nickname').waitFor();
        assert.equal(await page.locator('#room').isVisible(), false, 'the room is hidden until one joins');
        return person;
    }

    /** Type a nickname and press Join; wait for the room to welcome them. */
    async function join(person, nick) {
        const { page } = person;
        await page.getByLabel('Choose a nickname').fill(nick);
        await page.getByRole('button', { name: 'Join' }).click();
        await page.locator('#room').waitFor({ state: 'visible' });
        await notice(page, `welcome, ${nick}`).waitFor();
        assert.equal(await page.locator('#join').isVisible(), false, 'the join panel is hidden once in the room');
        person.nick = nick;
        return person;
    }

    async function enter(nick) {
        return join(await open(nick), nick);
    }

    /** Type a line into the message box and press Enter. */
    async function say(person, text) {
        const box = person.page.getByRole('textbox', { name: 'message' });
        await box.fill(text);
        await box.press('Enter');
        // The page clears the box once the line went out.
        await waitFor(async () => (await box.inputValue()) === '', { what: `${person.label}'s message box to clear` });
    }

    // Lines of the log, found as a reader finds them.
    const messageLine = (page, from, text) =>
        page
            .locator('#log li.message')
            .filter({ has: page.locator('span.author', { hasText: exactly(from) }) })
            .filter({ has: page.locator('span.text', { hasText: exactly(text) }) });
    const privateLine = (page, from, to, text) =>
        page
            .locator('#log li.private')
            .filter({ has: page.locator('span.author', { hasText: exactly(`${from} → ${to}`) }) })
            .filter({ has: page.locator('span.text', { hasText: exactly(text) }) });
    const lineOf = (kind) => (page, text) =>
        page.locator(`#log li.${kind}`).filter({ has: page.locator('span', { hasText: exactly(text) }) });
    const notice = lineOf('notice');
    const actionLine = lineOf('action');
    const errorLine = lineOf('err');

    const usersOf = async (page) => (await page.locator('#users li').allTextContents()).sort();

    /** Wait until `person`'s user list is exactly `nicks` (any order) and the count agrees. */
    async function waitForUsers(person, nicks) {
        const wanted = [...nicks].sort();
        let seen = [];
        await waitFor(
            async () => {
                seen = await usersOf(person.page);
                const count = await person.page.locator('#user-count').textContent();
                return JSON.stringify(seen) === JSON.stringify(wanted) && count === String(wanted.length);
            },
            { what: `${person.label}'s user list to be [${wanted}]` },
        ).catch((error) => {
            throw new Error(`${error.message}; it shows [${seen}]`);
        });
    }

    const inRoom = () => everyone.filter((p) => !p.closed && p.nick);
    const nicksInRoom = () => inRoom().map((p) => p.nick);

    // -----------------------------------------------------------------------------------

    let ada, grace, linus;

    test('three people join with different nicknames and see each other', async () => {
        ada = await enter('ada');
        grace = await enter('grace');
        linus = await enter('linus');
        for (const person of [ada, grace, linus]) await waitForUsers(person, ['ada', 'grace', 'linus']);
        // Earlier arrivals are told about later ones.
        await notice(ada.page, 'grace joined').waitFor();
        await notice(ada.page, 'linus joined').waitFor();
        await notice(grace.page, 'linus joined').waitFor();
        // Each page marks its own nickname in the list.
        for (const person of [ada, grace, linus]) {
            assert.equal(await person.page.locator('#users li.me').textContent(), person.nick);
        }
    });

    test('a message from one appears for the others with author and time', async () => {
        const text = 'hello from ada';
        await say(ada, text);
        said.push(text);
        for (const person of [ada, grace, linus]) {
            const line = messageLine(person.page, 'ada', text);
            await line.waitFor();
            assert.equal(await line.count(), 1, `${person.label} sees the message once`);
            const time = (await line.locator('time').textContent()).trim();
            assert.match(time, TIME_OF_DAY, `${person.label} sees a time of day on the line`);
        }
    });

    test('/me shows as an action', async () => {
        await say(ada, '/me waves at everyone');
        for (const person of [ada, grace, linus]) await actionLine(person.page, '* ada waves at everyone').waitFor();
        assert.equal(await messageLine(grace.page, 'ada', '/me waves at everyone').count(), 0, 'not shown as a plain line');
    });

    test('a private message reaches only its target and its sender', async () => {
        await say(ada, '/msg grace psst, the cake is a lie');
        await privateLine(grace.page, 'ada', 'grace', 'psst, the cake is a lie').waitFor();
        await privateLine(ada.page, 'ada', 'grace', 'psst, the cake is a lie').waitFor();
        // The room delivers events in one order to everyone: once linus has ada's next
        // public line, he would have had the private one before it.
        const marker = 'anyone up for lunch?';
        await say(ada, marker);
        said.push(marker);
        await messageLine(linus.page, 'ada', marker).waitFor();
        assert.equal(await linus.page.locator('#log li.private').count(), 0, 'linus got no private line');
        assert.doesNotMatch(await linus.page.locator('#log').textContent(), /cake/, 'nothing of it reached linus');
    });

    test('a taken nickname gets a clear error, and another one works', async () => {
        const dora = await open('dora');
        const joinError = dora.page.locator('#join-error');
        // Nicknames are compared without case, as people read them.
        for (const taken of ['ada', 'ADA']) {
            await dora.page.getByLabel('Choose a nickname').fill(taken);
            await dora.page.getByRole('button', { name: 'Join' }).click(); // clears the old error
            await joinError.filter({ hasText: /taken/ }).waitFor();
            assert.equal((await joinError.textContent()).trim(), 'that nickname is taken');
            assert.equal(await dora.page.locator('#room').isVisible(), false, 'still outside the room');
            assert.equal(await dora.page.locator('#join').isVisible(), true, 'the join form is still there');
        }

        await join(dora, 'dora');
        for (const person of inRoom()) await waitForUsers(person, nicksInRoom());
        await notice(ada.page, 'dora joined').waitFor();

        // Inside the room, /nick to a taken name is refused too, and only its asker hears it.
        await say(dora, '/nick Grace');
        await errorLine(dora.page, 'that nickname is taken').waitFor();
        await waitForUsers(dora, ['ada', 'grace', 'linus', 'dora']);
    });

    test('a closed page shows as "left" and leaves the user list', async () => {
        const dora = everyone.find((p) => p.nick === 'dora');
        assert.ok(dora, 'dora is in the room (previous test)');
        await dora.leave();
        for (const person of [ada, grace, linus]) {
            await notice(person.page, 'dora left').waitFor();
            await waitForUsers(person, ['ada', 'grace', 'linus']);
        }
    });

    test('/quit leaves the room and the page says so', async () => {
        const quinn = await enter('quinn');
        await notice(ada.page, 'quinn joined').waitFor();
        await say(quinn, '/quit');
        const status = quinn.page.locator('#status.offline');
        await status.waitFor();
        assert.match(await status.textContent(), /you left the room/);
        for (const person of [ada, grace, linus]) {
            await notice(person.page, 'quinn left').waitFor();
            await waitForUsers(person, ['ada', 'grace', 'linus']);
        }
        quinn.nick = null; // the page is still open, but out of the room
        assert.equal(await quinn.page.locator('#status.reconnecting').count(), 0, 'the page does not try to come back');
        await quinn.leave();
    });

    test('/nick renames: everyone is told and the user list follows', async () => {
        await say(linus, '/nick linus_t');
        linus.nick = 'linus_t';
        for (const person of [ada, grace, linus]) {
            await notice(person.page, 'linus is now known as linus_t').waitFor();
            await waitForUsers(person, ['ada', 'grace', 'linus_t']);
        }
        assert.equal(await linus.page.locator('#users li.me').textContent(), 'linus_t');
        // Lines are signed with the new name from now on.
        const text = 'new name, same penguin';
        await say(linus, text);
        said.push(text);
        for (const person of [ada, grace, linus]) await messageLine(person.page, 'linus_t', text).waitFor();
    });

    test('markup in a message is shown as text, never run', async () => {
        await say(grace, XSS);
        said.push(XSS);
        for (const person of [ada, grace, linus]) {
            const line = messageLine(person.page, 'grace', XSS);
            await line.waitFor();
            assert.equal(await line.locator('span.text').textContent(), XSS, `${person.label} sees the literal text`);
            assert.equal(await person.page.locator('#log img').count(), 0, `no <img> in ${person.label}'s log`);
            assert.equal(await person.page.locator('img').count(), 0, `no <img> anywhere on ${person.label}'s page`);
            assert.equal(await person.page.evaluate(() => typeof window.__xss), 'undefined', `nothing ran on ${person.label}'s page`);
        }
    });

    test('a newcomer sees the earlier messages', async () => {
        const eve = await enter('eve');
        const history = eve.page.locator('#log li.message.history');
        await history.first().waitFor();
        const texts = await history.locator('span.text').allTextContents();
        // The room keeps the last 50 public lines; ours are the most recent ones.
        assert.deepEqual(texts.slice(-said.length), said, 'history holds the public lines in order');
        const authors = await history.locator('span.author').allTextContents();
        assert.deepEqual(authors.slice(-said.length), ['ada', 'ada', 'linus_t', 'grace']);
        await actionLine(eve.page, '* ada waves at everyone').waitFor();
        assert.equal(await eve.page.locator('#log li.private').count(), 0, 'private lines are not history');
        assert.equal(await eve.page.locator('#log img').count(), 0);
        assert.equal(await eve.page.evaluate(() => typeof window.__xss), 'undefined');
        for (const person of inRoom()) await waitForUsers(person, ['ada', 'grace', 'linus_t', 'eve']);
    });

    test('a screenshot of the room is saved', async () => {
        await say(eve(), 'hi all, just arrived');
        await messageLine(ada.page, 'eve', 'hi all, just arrived').waitFor();
        const file = path.join(ensureArtifactsDir(), EXTERNAL_URL ? 'chat-room-container.png' : 'chat-room.png');
        await ada.page.screenshot({ path: file });
    });

    test('after a server restart the pages reconnect by themselves', { skip: EXTERNAL_URL ? 'WEBSOCK_CHAT_URL: the server is not ours to restart' : false }, async () => {
        const port = server.port;
        const people = inRoom();
        const stopped = await server.stop();
        assert.deepEqual([stopped.code, stopped.signal], [0, null], `SIGTERM ends the server cleanly: ${server.stderr}`);

        for (const person of people) {
            const status = person.page.locator('#status.reconnecting');
            await status.waitFor();
            assert.match(await status.textContent(), /reconnecting|connecting/);
            assert.equal(await person.page.locator('#room').isVisible(), true, 'the room stays on screen');
        }

        server = await new ChatServer({ port }).start();
        assert.equal(server.port, port, 'the server is back on the same port');

        // The back-off grows to several seconds while the server was down: allow for it.
        for (const person of people) {
            await person.page.locator('#status.online').waitFor({ timeout: ms(30000) });
            await notice(person.page, `welcome, ${person.nick}`).waitFor();
        }
        for (const person of people) await waitForUsers(person, people.map((p) => p.nick));

        const text = 'we are back';
        await say(grace, text);
        for (const person of people) await messageLine(person.page, 'grace', text).waitFor();
    });

    test('no page threw an uncaught error', () => {
        for (const person of everyone) assert.deepEqual(person.pageErrors, [], `${person.label}'s page errors`);
    });

    function eve() {
        const person = everyone.find((p) => p.nick === 'eve' && !p.closed);
        assert.ok(person, 'eve is in the room (previous test)');
        return person;
    }
});
