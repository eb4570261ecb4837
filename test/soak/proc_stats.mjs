// What a server process holds, read from /proc: open descriptors, threads, resident memory.
// The soak takes a baseline once the good clients are warm, samples the peak while the
// abusers run, and then waits (with a deadline) for the process to come back to the baseline.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** {fds, threads, rssKiB} of `pid` now, or null once the process is gone. */
export function readStats(pid) {
    try {
        const fds = readdirSync(`/proc/${pid}/fd`).length;
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        const threads = Number(/^Threads:\s+(\d+)/m.exec(status)?.[1]);
        const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
        if (!Number.isFinite(rssKiB) || !Number.isFinite(threads)) return null;  // a zombie: it has died
        return { fds, threads, rssKiB };
    } catch {
        return null;
    }
}

/** The soft limit of open files of `pid` (to show that the lowered limit took effect). */
export function openFileLimitOf(pid) {
    try {
        const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
        const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
        return match ? match[1] : 'unknown';
    } catch {
        return 'gone';
    }
}

/**
 * Set the soft RLIMIT_NOFILE of a running process with util-linux's prlimit(1), keeping its
 * hard limit (raising a hard limit needs CAP_SYS_RESOURCE; moving the soft one below it does
 * not). The soak moves it just above what the server holds before a burst. Throws if it cannot.
 */
export function setOpenFileLimit(pid, soft, hard) {
    const run = spawnSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`], { encoding: 'utf8', timeout: 5000 });
    if (run.status !== 0) throw new Error(`prlimit --pid ${pid} --nofile=${soft}:${hard}: ${run.error?.message ?? run.stderr.trim()}`);
}

const tick = (delay) => new Promise((resolve) => setTimeout(resolve, delay));

/**
 * The baseline: the smallest descriptor and thread counts over `samples` samples taken
 * `interval` ms apart (a publisher's request in flight adds a descriptor for a moment), and
 * the largest RSS among them (the allowance is measured from the warm process).
 */
export async function takeBaseline(pid, { samples = 5, interval = 100 } = {}) {
    let baseline = null;
    for (let i = 0; i < samples; ++i) {
        if (i > 0) await tick(interval);
        const now = readStats(pid);
        if (!now) return null;
        baseline = baseline
            ? { fds: Math.min(baseline.fds, now.fds), threads: Math.min(baseline.threads, now.threads), rssKiB: Math.max(baseline.rssKiB, now.rssKiB) }
            : now;
    }
    return baseline;
}

/**
 * Wait until RSS stops growing: the last `samples` samples, `interval` ms apart, lie within
 * `tolerance` of each other. Resolves {steady, waitedMs}; gives up at `timeout`.
 */
export async function waitForSteadyRss(pid, { samples = 5, interval = 250, tolerance = 0.02, timeout }) {
    const start = Date.now();
    const window = [];
    for (;;) {
        const now = readStats(pid);
        if (!now) return { steady: false, waitedMs: Date.now() - start };
        window.push(now.rssKiB);
        if (window.length > samples) window.shift();
        if (window.length === samples && Math.max(...window) <= Math.min(...window) * (1 + tolerance)) return { steady: true, waitedMs: Date.now() - start };
        if (Date.now() - start >= timeout) return { steady: false, waitedMs: Date.now() - start };
        await tick(interval);
    }
}

/** Samples a process every `interval` ms and keeps the peak of each figure. */
export class PeakSampler {
    constructor(pid, interval = 50) {
        this.pid = pid;
        this.peak = { fds: 0, threads: 0, rssKiB: 0 };
        this.samples = 0;
        this.timer = setInterval(() => this.sample(), interval);
        this.timer.unref();
        this.sample();
    }

    sample() {
        const now = readStats(this.pid);
        if (!now) return;
        this.samples += 1;
        for (const key of Object.keys(this.peak)) this.peak[key] = Math.max(this.peak[key], now[key]);
    }

    stop() {
        clearInterval(this.timer);
        this.sample();
        return this.peak;
    }
}

/**
 * Wait until one sample shows descriptors and threads at (or below) the baseline and RSS
 * within `rssTolerance` of it, polling every `interval` ms until `timeout` ms have passed.
 * Resolves {settled, waitedMs, last}; `last` is the settling sample, or the last one seen.
 */
export async function waitForBaseline(pid, baseline, { timeout, rssTolerance = 0.1, interval = 50, onSample = () => {} } = {}) {
    const start = Date.now();
    const fits = (s) => s.fds <= baseline.fds && s.threads <= baseline.threads && s.rssKiB <= baseline.rssKiB * (1 + rssTolerance);
    let last = null;
    for (;;) {
        const now = readStats(pid);
        if (!now) return { settled: false, waitedMs: Date.now() - start, last, gone: true };
        onSample(now);
        last = now;
        if (fits(now)) return { settled: true, waitedMs: Date.now() - start, last };
        if (Date.now() - start >= timeout) return { settled: false, waitedMs: Date.now() - start, last };
        await tick(interval);
    }
}
