// People at browsers in the chat room, for the browser tests: open the page, join, say a
// line, and find lines of the log and names of the user list the way a reader finds them.
// Every wait is an auto-waiting locator or a polled condition with a deadline.

import assert from 'node:assert/strict';

import { exactly, ms, waitFor } from './harness.mjs';

export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1000, height: 640 };

// Lines of the log.
export const messageLine = (page, from, text) =>
    page
        .locator('#log li.message')
        .filter({ has: page.locator('span.author', { hasText: exactly(from) }) })
        .filter({ has: page.locator('span.text', { hasText: exactly(text) }) });
export const privateLine = (page, from, to, text) =>
    page
        .locator('#log li.private')
        .filter({ has: page.locator('span.author', { hasText: exactly(`${from} → ${to}`) }) })
        .filter({ has: page.locator('span.text', { hasText: exactly(text) }) });
const lineOf = (kind) => (page, text) =>
    page.locator(`#log li.${kind}`).filter({ has: page.locator('span', { hasText: text instanceof RegExp ? text : exactly(text) }) });
export const notice = lineOf('notice');
export const actionLine = lineOf('action');
export const errorLine = lineOf('err');
export const gapLine = lineOf('gap');

export const usersOf = async (page) => (await page.locator('#users li').allTextContents()).sort();

/**
 * The people of one test file: `open(label)` gives a person at a fresh browser context on
 * `baseUrl` (no shared cookies or storage, like separate browsers); `closeAll()` closes
 * every one of them.
 */
export class Crowd {
    constructor(browser, baseUrl) {
        this.browser = browser;
        this.baseUrl = baseUrl;
        this.everyone = [];
    }

    /**
     * Open the page and wait for it to say "connected". `viewport` and `query` (appended to
     * the URL, e.g. "?retry_ms=3000") are optional; `keepSockets` records the page's
     * WebSockets in window.__sockets so a test can send what the page itself never would.
     */
    async open(label, { viewport = DESKTOP, query = '', keepSockets = false } = {}) {
        const context = await this.browser.newContext({ locale: 'en-US', viewport });
        const page = await context.newPage();
        page.setDefaultTimeout(ms(10000));
        if (keepSockets) {
            await page.addInitScript(() => {
                const Native = window.WebSocket;
                window.__sockets = [];
                window.WebSocket = class extends Native {
                    constructor(...args) {
                        super(...args);
                        window.__sockets.push(this);
                    }
                };
            });
        }
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
        this.everyone.push(person);
        await page.goto(new URL(query, this.baseUrl).href);
        await page.locator('#status.online').waitFor();
        // Before joining only the nickname form shows: no log, user list or message box.
        await page.getByLabel('Choose a nickname').waitFor();
        assert.equal(await page.locator('#room').isVisible(), false, 'the room is hidden until one joins');
        return person;
    }

    /** Type a nickname and press Join; wait for the room to welcome them. */
    async join(person, nick) {
        const { page } = person;
        await page.getByLabel('Choose a nickname').fill(nick);
        await page.getByRole('button', { name: 'Join' }).click();
        await page.locator('#room').waitFor({ state: 'visible' });
        await notice(page, `welcome, ${nick}`).waitFor();
        assert.equal(await page.locator('#join').isVisible(), false, 'the join panel is hidden once in the room');
        person.nick = nick;
        return person;
    }

    async enter(nick, options) {
        return this.join(await this.open(nick, options), nick);
    }

    inRoom() {
        return this.everyone.filter((p) => !p.closed && p.nick);
    }

    async closeAll() {
        for (const person of this.everyone) await person.leave().catch(() => {});
    }
}

export const messageBox = (person) => person.page.getByRole('textbox', { name: 'message' });

/** Type a line into the message box and press Enter; wait for the page to clear the box. */
export async function say(person, text) {
    const box = messageBox(person);
    await box.fill(text);
    await box.press('Enter');
    await waitFor(async () => (await box.inputValue()) === '', { what: `${person.label}'s message box to clear` });
}

/** Wait until `person`'s user list is exactly `nicks` (any order) and the count agrees. */
export async function waitForUsers(person, nicks) {
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
