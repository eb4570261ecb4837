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
    launchBrowser,
    ms,
    waitFor,
} from './harness.mjs';
import {
    Crowd,
    actionLine,
    errorLine,
    gapLine,
    messageBox,
    messageLine,
    notice,
    privateLine,
    say,
    waitForUsers,
} from './people.mjs';

const XSS = '<img src=x onerror="window.__xss=1">';
const TIME_OF_DAY = /^\d{1,2}:\d{2}:\d{2}(\s?[AP]M)?$/;

describe('chat room in a browser', { timeout: ms(180000) }, () => {
    let server = null; // null when testing WEBSOCK_CHAT_URL
    let chrome = null;
    let crowd = null;
    const said = []; // public lines as [author, text], in the order sent (what history must hold)

    before(async () => {
        let baseUrl;
        if (EXTERNAL_URL) {
            const url = new URL('/', EXTERNAL_URL);
            assert.ok(['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname), `WEBSOCK_CHAT_URL must be loopback: ${url.href}`);
            baseUrl = url.href;
        } else {
            server = await new ChatServer().start();
            baseUrl = server.url;
        }
        chrome = await launchBrowser();
        crowd = new Crowd(chrome.browser, baseUrl);
    });

    after(async () => {
        if (crowd) await crowd.closeAll();
        if (chrome) await chrome.close().catch(() => {});
        if (server) {
            await server.stop().catch(() => server.kill());
        }
    });

    const everyone = () => crowd.everyone;
    const open = (label, options) => crowd.open(label, options);
    const join = (person, nick) => crowd.join(person, nick);
    const enter = (nick, options) => crowd.enter(nick, options);
    const inRoom = () => crowd.inRoom();
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
        said.push(['ada', text]);
        for (const person of [ada, grace, linus]) {
            const line = messageLine(person.page, 'ada', text);
            await line.waitFor();
            assert.equal(await line.count(), 1, `${person.label} sees the message once`);
            const time = (await line.locator('time').textContent()).trim();
            assert.match(time, TIME_OF_DAY, `${person.label} sees a time of day on the line`);
        }
    });

    test('your own lines are marked as yours, and only on your page', async () => {
        const mine = messageLine(ada.page, 'ada', 'hello from ada');
        assert.match(await mine.getAttribute('class'), /\bmine\b/, 'ada sees her line as hers');
        assert.equal(await mine.locator('span.you').textContent(), '(you)');
        const theirs = messageLine(grace.page, 'ada', 'hello from ada');
        assert.doesNotMatch(await theirs.getAttribute('class'), /\bmine\b/, 'grace sees it as ada\'s');
        assert.equal(await theirs.locator('span.you').count(), 0);
        // Marked for the eye too: grace's own line looks different from ada's on grace's page.
        const text = 'and hello from grace';
        await say(grace, text);
        said.push(['grace', text]);
        const own = messageLine(grace.page, 'grace', text);
        await own.waitFor();
        const look = (line) =>
            line.evaluate((li) => {
                const style = getComputedStyle(li);
                return `${style.backgroundColor} ${style.borderLeftColor}`;
            });
        assert.notEqual(await look(own), await look(theirs), 'own and others\' lines are styled differently');
        await messageLine(ada.page, 'grace', text).waitFor();
        assert.equal(await ada.page.locator('#log li.mine').count(), 1, 'on ada\'s page only her own line is marked');
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
        said.push(['ada', marker]);
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
        const dora = everyone().find((p) => p.nick === 'dora');
        assert.ok(dora, 'dora is in the room (previous test)');
        await dora.leave();
        for (const person of [ada, grace, linus]) {
            await notice(person.page, 'dora left').waitFor();
            await waitForUsers(person, ['ada', 'grace', 'linus']);
        }
    });

    test('/quit leaves the room cleanly: out of every list, no typing into nowhere, and Rejoin', async () => {
        const quinn = await enter('quinn');
        await notice(ada.page, 'quinn joined').waitFor();
        await say(quinn, 'quinn was here');
        said.push(['quinn', 'quinn was here']);
        await say(quinn, '/quit');
        const status = quinn.page.locator('#status.offline');
        await status.waitFor();
        assert.match(await status.textContent(), /you left the room/);
        for (const person of [ada, grace, linus]) {
            await notice(person.page, 'quinn left').waitFor();
            await waitForUsers(person, ['ada', 'grace', 'linus']);
        }
        // Quinn's own page: a clear "you left" state.
        await notice(quinn.page, /^you left the room/).waitFor();
        await waitForUsers(quinn, []);
        assert.equal(await quinn.page.locator('#users-note').isVisible(), true, 'the list says quinn is not in the room');
        const box = messageBox(quinn);
        assert.equal(await box.isDisabled(), true, 'the message box takes no typing');
        assert.equal(await box.getAttribute('placeholder'), 'You left the room');
        assert.equal(await quinn.page.getByRole('button', { name: 'Send' }).count(), 0, 'no Send button while out');
        assert.equal(await messageLine(quinn.page, 'quinn', 'quinn was here').count(), 1, 'the log stays to be read');
        assert.equal(await quinn.page.locator('#status.reconnecting').count(), 0, 'the page does not try to come back');

        // Rejoin brings quinn back under the same name, with a gap line where quinn was out.
        const rejoin = quinn.page.getByRole('button', { name: 'Rejoin as quinn' });
        await rejoin.click();
        await gapLine(quinn.page, /^you left at .*, back at /).waitFor();
        for (const person of [ada, grace, linus, quinn]) await waitForUsers(person, ['ada', 'grace', 'linus', 'quinn']);
        await waitFor(async () => (await notice(ada.page, 'quinn joined').count()) === 2, { what: 'ada to see quinn join again' });
        assert.equal(await box.isDisabled(), false, 'the box takes typing again');
        assert.equal(await rejoin.count(), 0, 'Rejoin is gone once back');
        assert.equal(await messageLine(quinn.page, 'quinn', 'quinn was here').count(), 1, 'history is not shown twice');
        await say(quinn, 'back again');
        said.push(['quinn', 'back again']);
        await messageLine(ada.page, 'quinn', 'back again').waitFor();
        await quinn.leave();
        for (const person of [ada, grace, linus]) await waitForUsers(person, ['ada', 'grace', 'linus']);
    });

    test('an unknown command says that it is unknown, and what the commands are', async () => {
        await say(grace, '/foo bar');
        const line = errorLine(grace.page, /^unknown command \/foo; commands: /);
        await line.waitFor();
        const text = await line.textContent();
        for (const command of ['/msg NICK TEXT', '/nick NEW', '/me ACTION', '/quit', '//']) {
            assert.ok(text.includes(command), `the error names ${command}: ${text}`);
        }
        // Only the one who typed it is told.
        await say(grace, 'sorry, typo');
        said.push(['grace', 'sorry, typo']);
        await messageLine(ada.page, 'grace', 'sorry, typo').waitFor();
        assert.equal(await ada.page.locator('#log li.err').count(), 0);
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
        said.push(['linus_t', text]);
        for (const person of [ada, grace, linus]) await messageLine(person.page, 'linus_t', text).waitFor();
    });

    test('markup in a message is shown as text, never run', async () => {
        await say(grace, XSS);
        said.push(['grace', XSS]);
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
        assert.deepEqual(texts.slice(-said.length), said.map(([, text]) => text), 'history holds the public lines in order');
        const authors = await history.locator('span.author').allTextContents();
        assert.deepEqual(authors.slice(-said.length), said.map(([author]) => author));
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
            // The conversation stays on the page, with one gap line where the page was out;
            // the restarted room has no history, so the line says what may be missing.
            await gapLine(person.page, /^connection lost at .*, back at .*: lines said meanwhile may be missing$/).waitFor();
            assert.equal(await person.page.locator('#log li.gap').count(), 1, `${person.label} sees one gap line`);
            assert.equal(await notice(person.page, /^welcome, /).count(), 1, 'no second welcome');
            assert.equal(await messageLine(person.page, 'ada', 'hello from ada').count(), 1, `${person.label} still has the earlier lines`);
        }
        for (const person of people) await waitForUsers(person, people.map((p) => p.nick));

        const text = 'we are back';
        await say(grace, text);
        for (const person of people) {
            const line = messageLine(person.page, 'grace', text);
            await line.waitFor();
            // After the gap, in order.
            assert.equal(await person.page.locator('#log li.gap ~ li.message').filter({ hasText: text }).count(), 1);
        }
    });

    test('no page threw an uncaught error', () => {
        for (const person of everyone()) assert.deepEqual(person.pageErrors, [], `${person.label}'s page errors`);
    });

    function eve() {
        const person = everyone().find((p) => p.nick === 'eve' && !p.closed);
        assert.ok(person, 'eve is in the room (previous test)');
        return person;
    }
});
