// Harness of the browser tests: start and stop the chat server, launch Debian's Chromium
// through playwright-core, and wait on conditions with deadlines.
//
// Conventions (the same as test/integration):
//  - Every wait has a deadline, stretched by WEBSOCK_TIMEOUT_SCALE. Nothing sleeps to
//    synchronise: waits poll a condition or use Playwright's auto-waiting locators.
//  - The server binary comes from WEBSOCK_BIN_DIR (default: build/release/bin).
//  - Loopback only: the server listens on 127.0.0.1, port 0 (the kernel picks one).
//  - WEBSOCK_CHAT_URL=http://127.0.0.1:PORT/ points the tests at a server that is already
//    running (the container test); the tests that restart the server are then skipped.
//  - CHROMIUM (default /usr/bin/chromium) is the browser; playwright's own browser
//    downloads are never used.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

export const REPO_ROOT = path.resolve(here, '..', '..');
export const HOST = '127.0.0.1';
export const TIMEOUT_SCALE = Math.max(1, Number(process.env.WEBSOCK_TIMEOUT_SCALE || 1) || 1);
export const BIN_DIR = path.resolve(process.env.WEBSOCK_BIN_DIR || path.join(REPO_ROOT, 'build', 'release', 'bin'));
export const EXTERNAL_URL = process.env.WEBSOCK_CHAT_URL || '';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS_DIR = path.join(REPO_ROOT, 'build', 'artifacts');

/** A duration in milliseconds, stretched for slow machines and sanitizer builds. */
export function ms(value) {
    return Math.round(value * TIMEOUT_SCALE);
}

export class TimeoutError extends Error {}

/**
 * Poll `condition()` (sync or async) until it returns a truthy value and return that value;
 * throw a TimeoutError naming `what` after `timeout` ms. `interval` is only the polling
 * period, never a synchronisation delay.
 */
export async function waitFor(condition, { timeout = ms(10000), interval = 20, what = 'condition' } = {}) {
    const end = Date.now() + timeout;
    let lastError;
    for (;;) {
        try {
            const value = await condition();
            if (value) return value;
        } catch (error) {
            lastError = error;
        }
        if (Date.now() >= end) {
            const detail = lastError ? ` (last error: ${lastError.message})` : '';
            throw new TimeoutError(`timed out after ${timeout} ms waiting for ${what}${detail}`);
        }
        await new Promise((resolve) => setTimeout(resolve, interval));
    }
}

/** Resolve with `promise`, or reject with a TimeoutError after `timeout` ms. */
export function withTimeout(promise, timeout, what = 'operation') {
    let timer;
    const deadline = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`${what}: no result within ${timeout} ms`)), timeout);
    });
    return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------
// the server

/**
 * A running websock-chat process. `start()` launches it (on `port`, 0 for any) and resolves
 * once it printed "listening on HOST:PORT"; `stop()` sends SIGTERM and resolves with the
 * exit code (SIGKILL after the deadline, which fails the caller's assertion on the code).
 */
export class ChatServer {
    constructor({ port = 0, args = [] } = {}) {
        this.requestedPort = port;
        this.extraArgs = args;
        this.port = 0;
        this.child = null;
        this.stderr = '';
        this.exit = null; // {code, signal} once it ended
    }

    get binary() {
        return path.join(BIN_DIR, 'websock-chat');
    }

    get url() {
        return `http://${HOST}:${this.port}/`;
    }

    async start({ timeout = ms(10000) } = {}) {
        if (!existsSync(this.binary)) throw new Error(`${this.binary} is missing: run make BUILD=release examples`);
        const child = spawn(this.binary, ['--host', HOST, '--port', String(this.requestedPort), ...this.extraArgs], {
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        this.child = child;
        this.exit = null;
        this.exited = new Promise((resolve) => {
            child.once('exit', (code, signal) => {
                this.exit = { code, signal };
                resolve(this.exit);
            });
        });
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (chunk) => {
            this.stderr += chunk;
        });
        let stdout = '';
        const listening = new Promise((resolve, reject) => {
            child.stdout.setEncoding('utf8');
            child.stdout.on('data', (chunk) => {
                stdout += chunk;
                const match = /listening on [^\s:]+:(\d+)/.exec(stdout);
                if (match) resolve(Number(match[1]));
            });
            child.once('error', reject);
            child.once('exit', (code, signal) =>
                reject(new Error(`websock-chat exited before listening (code ${code}, signal ${signal}): ${this.stderr}`)),
            );
        });
        this.port = await withTimeout(listening, timeout, 'websock-chat to print "listening on"');
        return this;
    }

    /** SIGTERM, then wait for the exit; returns {code, signal, elapsed}. */
    async stop({ timeout = ms(10000) } = {}) {
        if (!this.child) return null;
        if (this.exit) return { ...this.exit, elapsed: 0 };
        const begin = Date.now();
        this.child.kill('SIGTERM');
        try {
            await withTimeout(this.exited, timeout, 'websock-chat to exit after SIGTERM');
        } catch (error) {
            this.child.kill('SIGKILL');
            await this.exited;
            throw error;
        }
        return { ...this.exit, elapsed: Date.now() - begin };
    }

    /** Last resort in after(): no waiting on a graceful close. */
    kill() {
        if (this.child && !this.exit) this.child.kill('SIGKILL');
    }
}

// ---------------------------------------------------------------------------------------
// the browser

export const CHROMIUM_ARGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
];

/**
 * Launch headless Chromium. Playwright gives it a fresh temporary user-data directory and
 * removes it on close; on top of that each person in a test gets a browser context of
 * their own (no shared cookies or storage, like separate browsers): see `newPerson`.
 */
export async function launchBrowser() {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
    const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        timeout: ms(30000),
    });
    return {
        browser,
        async close() {
            await withTimeout(browser.close(), ms(15000), 'chromium to close');
        },
    };
}

export function ensureArtifactsDir() {
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    return ARTIFACTS_DIR;
}

/** A RegExp matching exactly `text` (Playwright normalises whitespace of hasText). */
export function exactly(text) {
    return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}
