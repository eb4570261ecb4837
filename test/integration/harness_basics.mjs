// The integration harness's basics: where the binaries are, loopback, and deadlines (every
// wait has one, scaled by WEBSOCK_TIMEOUT_SCALE). Imported through helpers.mjs, which
// re-exports everything here.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export const HOST = '127.0.0.1';
export const TIMEOUT_SCALE = Math.max(1, Number(process.env.WEBSOCK_TIMEOUT_SCALE || 1) || 1);
export const BIN_DIR = path.resolve(process.env.WEBSOCK_BIN_DIR || path.join(here, '..', '..', 'build', 'release', 'bin'));

/** A duration in milliseconds, stretched for the slower sanitizer builds. */
export function ms(value) {
    return Math.round(value * TIMEOUT_SCALE);
}

export function binPath(name) {
    return path.join(BIN_DIR, name);
}

export const MiB = 1024 * 1024;
export const KiB = 1024;

// ---------------------------------------------------------------------------------------
// deadlines

export class TimeoutError extends Error {}

/** Resolve with `promise`, or reject with a TimeoutError after `timeout` ms. */
export function withTimeout(promise, timeout, what = 'operation') {
    let timer;
    const deadline = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`${what}: no result within ${timeout} ms`)), timeout);
    });
    return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Wait until `condition()` (sync or async) returns a truthy value, polling every `interval`
 * ms; return that value. Throws a TimeoutError naming `what` once `timeout` ms have passed.
 */
export async function waitFor(condition, { timeout = ms(5000), interval = 5, what = 'condition' } = {}) {
    const end = Date.now() + timeout;
    for (;;) {
        const value = await condition();
        if (value) return value;
        if (Date.now() >= end) throw new TimeoutError(`waited ${timeout} ms for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, interval));
    }
}

/** A promise that resolves the first time `emitter` emits `event` (rejects on 'error' if asked). */
export function once(emitter, event, { timeout = ms(5000), what = event, rejectOnError = false } = {}) {
    return withTimeout(
        new Promise((resolve, reject) => {
            const onEvent = (...args) => {
                cleanup();
                resolve(args);
            };
            const onError = (err) => {
                cleanup();
                reject(err);
            };
            const cleanup = () => {
                emitter.off(event, onEvent);
                if (rejectOnError) emitter.off('error', onError);
            };
            emitter.on(event, onEvent);
            if (rejectOnError) emitter.on('error', onError);
        }),
        timeout,
        what,
    );
}
