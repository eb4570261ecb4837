// The chaos soak: each server in turn (websock-echo on both engines, websock-hub with and
// without Redis) carries 500 well-behaved clients that check every byte they get back, while
// abusive clients cycle through resets, half-closes, slow readers, slowloris handshakes,
// garbage, oversized frames and a burst past the descriptor limit. Pass: the server never
// dies, the good clients lose nothing, the log stays bounded, and descriptors, threads and RSS
// come back to their baseline once the abusers have left. Loopback only.
//
//   node soak/soak.mjs [--profile short|full] [--only SUBSTRING]     (from test/; `make soak`)
//
// Binaries come from WEBSOCK_BIN_DIR; deadlines stretch by WEBSOCK_TIMEOUT_SCALE (sanitizer
// builds). Exit status 0 when every target passed, 1 otherwise.

import { openFileLimit } from '../integration/helpers.mjs';
import { soakTarget } from './run_target.mjs';
import { fdLimitFor, TARGETS } from './targets.mjs';
import { formatSummary, formatTarget } from './report.mjs';

// Times in ms. `wave`: abusers of one kind at once; `burst`: connections of the burst (far past
// the descriptor limit, see targets.mjs); `holdMs`: how long an abuser keeps misbehaving;
// slowloris holds past the servers' 5 s handshake_timeout in the full run, so that the server
// is the one to drop it.
const PROFILES = {
    short: {
        goodClients: 500, echoIntervalMs: 250, publishIntervalMs: 50, warmupMaxMs: 4000,
        rounds: 1, wave: 10, burst: 150, burstRoom: 10, holdMs: 300, slowlorisHoldMs: 800, burstHoldMs: 800,
        settleTimeoutMs: 10000, targetTimeoutMs: 60000,
    },
    full: {
        goodClients: 500, echoIntervalMs: 200, publishIntervalMs: 40, warmupMaxMs: 10000,
        rounds: 3, wave: 20, burst: 150, burstRoom: 10, holdMs: 1000, slowlorisHoldMs: 5600, burstHoldMs: 1500,
        settleTimeoutMs: 20000, targetTimeoutMs: 120000,
    },
};

function parseArgs(argv) {
    const args = { profile: 'full', only: null };
    for (let i = 0; i < argv.length; ++i) {
        if (argv[i] === '--profile' && argv[i + 1] in PROFILES) args.profile = argv[++i];
        else if (argv[i] === '--only' && argv[i + 1]) args.only = argv[++i];
        else {
            console.error('usage: node soak/soak.mjs [--profile short|full] [--only SUBSTRING]');
            process.exit(2);
        }
    }
    return args;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const profile = PROFILES[args.profile];
    const targets = TARGETS.filter((t) => !args.only || t.name.includes(args.only));
    // This process holds the good clients, a wave and the whole burst at once.
    const needed = profile.goodClients + profile.burst + profile.wave + 256;
    if (openFileLimit() < needed) {
        console.error(`soak: this process may open ${openFileLimit()} files and needs ${needed}: raise ulimit -n`);
        process.exit(1);
    }
    console.log(`soak (${args.profile}): ${targets.length} targets, ${profile.goodClients} good clients each, ` +
        `server open-file limit ${fdLimitFor(profile)}, ${profile.rounds} round(s) of every abuse kind`);
    const results = [];
    for (const target of targets) {
        const result = await soakTarget(target, profile);
        console.log(formatTarget(result));
        results.push(result);
    }
    console.log(formatSummary(results));
    process.exitCode = results.every((r) => r.problems.length === 0) ? 0 : 1;
}

main().catch((err) => {
    console.error(`soak: ${err.stack ?? err}`);
    process.exitCode = 1;
});
