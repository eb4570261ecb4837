// One target's soak, start to finish:
//   start the server (lowered descriptor limit) -> connect the good clients -> warm up ->
//   baseline (fds, threads, RSS) -> every abuse kind in turn, `rounds` times, while the good
//   clients keep going -> wait (deadline) for the server to come back to its baseline ->
//   stop the good clients (every message accounted for) -> SIGTERM, expect exit 0.
// Returns a result for the report: the figures, and `problems` (empty when it passed).

import { ms, waitFor } from '../integration/helpers.mjs';
import { ABUSE_ORDER, runWave } from './abusers.mjs';
import { openFileLimitOf, PeakSampler, readStats, setOpenFileLimit, takeBaseline, waitForBaseline, waitForSteadyRss } from './proc_stats.mjs';
import { ConnectionTracker } from './raw_connections.mjs';

/** Stderr lines one abuse wave (or any other phase) may make the server write. */
export const LOG_LINES_PER_PHASE = 300;

const firstLine = (err) => String(err?.message ?? err).split('\n')[0];

export async function soakTarget(target, profile) {
    const result = { name: target.name, problems: [], abuse: {}, afterWaves: [], good: null, figures: null, log: [], exit: null };
    const started = Date.now();
    let phaseStart = started;
    result.timings = [];  // [phase, seconds]: where the time goes
    const mark = (phase) => {
        const now = Date.now();
        result.timings.push([phase, (now - phaseStart) / 1000]);
        phaseStart = now;
    };
    let launched;
    try {
        launched = await target.start(profile);
    } catch (err) {
        result.problems.push(`did not start: ${firstLine(err)}`);
        return result;
    }
    const { server } = launched;
    mark('start');
    result.fdLimit = openFileLimitOf(server.pid);
    const fleet = target.fleet(server, profile);
    const tracker = new ConnectionTracker(server.port);
    // A backstop: every wait below has its own deadline, but the target as a whole has one too.
    const watchdog = setTimeout(() => {
        result.problems.push(`took longer than ${profile.targetTimeoutMs} ms: killed`);
        tracker.destroyAll();
        server.kill();
    }, ms(profile.targetTimeoutMs));
    let sampler = null;
    try {
        server.phase = 'connect';
        await fleet.connect();
        fleet.start();
        mark('connect');
        server.phase = 'warm-up';
        // Warm: every client went through its warm-up messages and RSS stopped climbing (the
        // baseline is the process under good load, so that growth afterwards is the abusers').
        await waitFor(() => fleet.warm || !server.alive, { timeout: ms(20000), interval: 20, what: 'the good clients to warm up' });
        const steady = await waitForSteadyRss(server.pid, { timeout: ms(profile.warmupMaxMs) });
        result.warmupRss = steady;
        if (!steady.steady) result.notes = [`RSS still growing when the warm-up deadline (${profile.warmupMaxMs} ms) passed`];
        const baseline = await takeBaseline(server.pid);
        if (!baseline || !server.alive) throw new Error('the server died during warm-up');
        sampler = new PeakSampler(server.pid);
        mark('warm-up');

        const runKind = async (kind, count, holdMs) => {
            const paths = await target.abuse.paths(server, kind, count);
            const ctx = {
                tracker,
                port: server.port,
                echoes: target.abuse.echoes,
                maxMessageBytes: target.abuse.maxMessageBytes,
                holdMs: ms(holdMs),
                slowlorisHoldMs: ms(holdMs),
                waveEnd: Date.now() + ms(holdMs),
            };
            const wave = await runWave(kind, ctx, paths);
            const total = (result.abuse[kind] ??= { made: 0, outcomes: {} });
            total.made += wave.made;
            for (const [outcome, n] of Object.entries(wave.outcomes)) total.outcomes[outcome] = (total.outcomes[outcome] ?? 0) + n;
        };
        for (let round = 1; round <= profile.rounds && server.alive; ++round) {
            for (const kind of ABUSE_ORDER) {
                if (!server.alive) break;
                server.phase = `${kind} #${round}`;
                if (kind === 'burst') {
                    // Each connection costs the server two descriptors, so whether accept()
                    // itself ever fails (EMFILE) or only the eventfd after it depends on the
                    // parity of what is left: leave room for a few connections, even, then odd.
                    const hard = target.fdLimit(profile);
                    for (const parity of [0, 1]) {
                        const held = readStats(server.pid)?.fds;
                        if (!held || !server.alive) break;
                        setOpenFileLimit(server.pid, Math.min(hard, held + 2 * profile.burstRoom + parity), hard);
                        await runKind(kind, Math.ceil(profile.burst / 2), profile.burstHoldMs);
                    }
                    if (server.alive) setOpenFileLimit(server.pid, hard, hard);
                } else {
                    const holdMs = kind === 'slowloris' ? profile.slowlorisHoldMs : profile.holdMs;
                    await runKind(kind, profile.wave, holdMs);
                }
                result.afterWaves.push({ phase: server.phase, ...readStats(server.pid) });  // where growth starts
            }
        }

        mark('abuse');
        server.phase = 'recovery';
        let settle = { settled: false, waitedMs: 0, last: null };
        if (server.alive) settle = await waitForBaseline(server.pid, baseline, { timeout: ms(profile.settleTimeoutMs), rssTolerance: 0.1 });
        const peak = sampler.stop();
        result.figures = { baseline, peak, end: settle.last, settleMs: settle.waitedMs, settled: settle.settled };
        if (server.alive && !settle.settled) {
            const end = settle.last;
            result.problems.push(
                `not back to the baseline within ${ms(profile.settleTimeoutMs)} ms: fds ${end?.fds} (baseline ${baseline.fds}), ` +
                    `threads ${end?.threads} (${baseline.threads}), RSS ${end?.rssKiB} KiB (${baseline.rssKiB} KiB + 10%)`,
            );
        }
        mark('recovery');
        server.phase = 'finish';
        await fleet.stop({ drain: server.alive });
        mark('good clients done');
    } catch (err) {
        result.problems.push(firstLine(err));
        sampler?.stop();
        tracker.destroyAll();
        await fleet.stop({ drain: false }).catch(() => {});
    } finally {
        clearTimeout(watchdog);
    }

    const died = server.exit ? { ...server.exit } : null;  // ended before we asked it to
    result.exit = await server.stop();
    mark('stop');
    await launched.cleanup().catch((err) => result.problems.push(`cleanup: ${firstLine(err)}`));
    result.good = fleet.summary();
    result.log = server.lineCounts();
    result.logExamples = result.log.map(([phase]) => [phase, server.commonLines(phase)]);
    result.seconds = Math.round((Date.now() - started) / 100) / 10;

    if (died) {
        const how = died.signal ? `killed by ${died.signal}` : `exit status ${died.code}`;
        result.problems.unshift(`the server DIED (${how}) while "${died.phase}" ran`);
        result.lastLines = server.sanitizerLines.length ? server.sanitizerLines : server.lastLines(30);
    } else if (result.exit.timedOut || result.exit.code !== 0) {
        result.problems.push(`after SIGTERM: ${result.exit.timedOut ? 'did not exit in time' : `exit ${result.exit.code} ${result.exit.signal ?? ''}`}`);
        result.lastLines = server.lastLines(30);
    }
    if (server.sanitizerLines.length && !died) {
        result.problems.push('a sanitizer report on stderr');
        result.lastLines = server.sanitizerLines;
    }
    if (result.good.failures > 0) result.problems.push(`good clients: ${result.good.failures} failures, e.g. ${result.good.examples.slice(0, 3).join(' | ')}`);
    for (const [phase, count] of result.log) {
        if (count > LOG_LINES_PER_PHASE) {
            const [line, n] = server.commonLines(phase, 1)[0] ?? ['?', 0];
            result.problems.push(`the server wrote ${count} log lines during "${phase}" (limit ${LOG_LINES_PER_PHASE}), ${n} of them "${line}"`);
        }
    }
    return result;
}
