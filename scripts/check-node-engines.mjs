// Fails loudly when Node.js is too old (or too new) for the npm packages the tests use.
//
//   node scripts/check-node-engines.mjs DIR [--node VERSION]
//
// DIR holds package.json, package-lock.json and node_modules (test/). Checks, for every
// package the lock file lists:
//   1. node_modules holds the version the lock pins (a stale install is an error, not a guess);
//   2. its `engines.node` accepts the running Node.js (or --node VERSION);
//   3. its `engines.node` accepts the oldest Node.js DIR/package.json promises to support
//      (its own `engines.node`, which must read ">=X.Y.Z"): Debian 12's nodejs is 18.20, and a
//      machine with a newer Node must not hide a package that would fail there.
// Prints one line per package and exits 1 on the first kind of failure, naming what to do.
// npm only warns about `engines` (EBADENGINE), and a log level of "error" hides even that.
//
// The range grammar is node-semver's (||, hyphen ranges, ^ ~ < <= > >= =, x/X/* and partial
// versions); pre-release tags are ignored, which is enough for Node.js release versions.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

function parseVersion(text) {
    const match = /^v?(\d+)\.(\d+)\.(\d+)/.exec(text.trim());
    if (!match) throw new Error(`not a version: "${text}"`);
    return match.slice(1, 4).map(Number);
}

function compare(a, b) {
    for (let i = 0; i < 3; ++i) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
}

// "1.2" -> { parts: [1, 2, 0], given: 2 }; "*", "x", "" -> given 0.
function parsePartial(text) {
    const cleaned = text.replace(/^[v=]+/, '').replace(/[-+].*$/, '');
    if (cleaned === '' || cleaned === '*') return { parts: [0, 0, 0], given: 0 };
    const fields = cleaned.split('.');
    const parts = [0, 0, 0];
    let given = 0;
    for (let i = 0; i < Math.min(fields.length, 3); ++i) {
        if (/^[xX*]$/.test(fields[i])) break;
        if (!/^\d+$/.test(fields[i])) throw new Error(`not a version: "${text}"`);
        parts[i] = Number(fields[i]);
        given = i + 1;
    }
    return { parts, given };
}

// The first version above everything that matches a partial with `given` fields.
function bumpAt(parts, given) {
    if (given === 0) return null;  // no upper bound
    const next = parts.slice();
    next[given - 1] += 1;
    for (let i = given; i < 3; ++i) next[i] = 0;
    return next;
}

// One comparator token ("^1.2", ">=18", "1.x") -> a list of [operator, version] tests.
function comparators(token) {
    const match = /^(\^|~>?|<=|>=|<|>|=)?\s*(.*)$/.exec(token);
    const operator = match[1] || '';
    const { parts, given } = parsePartial(match[2]);
    const upper = bumpAt(parts, given);
    switch (operator) {
        case '':
        case '=':
            if (given === 3) return [['=', parts]];
            return upper ? [['>=', parts], ['<', upper]] : [];
        case '>=':
            return [['>=', parts]];
        case '>':
            return given === 3 ? [['>', parts]] : upper ? [['>=', upper]] : [['<', [0, 0, 0]]];
        case '<':
            return [['<', parts]];
        case '<=':
            return given === 3 ? [['<=', parts]] : upper ? [['<', upper]] : [];
        case '~':
        case '~>':
            return upper ? [['>=', parts], ['<', bumpAt(parts, Math.min(given, 2))]] : [];
        case '^': {
            if (given === 0) return [];
            // The left-most non-zero field given (or the last field given) may not change.
            let fixed = parts.findIndex((value, i) => i < given && value !== 0);
            if (fixed === -1) fixed = given - 1;
            return [['>=', parts], ['<', bumpAt(parts, fixed + 1)]];
        }
        default:
            throw new Error(`unknown operator in "${token}"`);
    }
}

function comparatorHolds([operator, bound], version) {
    const order = compare(version, bound);
    return { '=': order === 0, '>=': order >= 0, '>': order > 0, '<': order < 0, '<=': order <= 0 }[operator];
}

/** Does `version` ("18.20.4" or "v18.20.4") satisfy the npm range `range`? */
export function satisfies(version, range) {
    const v = parseVersion(version);
    return range.split('||').some((alternative) => {
        const text = alternative.trim().replace(/(\^|~>?|<=|>=|<|>|=)\s+/g, '$1');
        let tests;
        const hyphen = /^(\S+)\s+-\s+(\S+)$/.exec(text);
        if (hyphen) {
            const low = parsePartial(hyphen[1]);
            const high = parsePartial(hyphen[2]);
            tests = [['>=', low.parts]];
            if (high.given === 3) tests.push(['<=', high.parts]);
            else if (high.given > 0) tests.push(['<', bumpAt(high.parts, high.given)]);
        } else {
            tests = text === '' ? [] : text.split(/\s+/).flatMap(comparators);
        }
        return tests.every((test) => comparatorHolds(test, v));
    });
}

function readJson(file) {
    return JSON.parse(readFileSync(file, 'utf8'));
}

function main(argv) {
    const dir = argv[0];
    const nodeFlag = argv.indexOf('--node');
    const running = nodeFlag >= 0 ? argv[nodeFlag + 1] : process.versions.node;
    if (!dir || !existsSync(path.join(dir, 'package.json'))) {
        console.error('usage: node scripts/check-node-engines.mjs DIR [--node VERSION]   (DIR holds package.json)');
        return 2;
    }
    const own = readJson(path.join(dir, 'package.json'));
    const floorMatch = /^>=\s*(\d+\.\d+\.\d+)$/.exec((own.engines && own.engines.node) || '');
    if (!floorMatch) {
        console.error(`check-node-engines: ${dir}/package.json needs "engines": {"node": ">=X.Y.Z"}, the oldest Node.js it supports`);
        return 1;
    }
    const floor = floorMatch[1];
    const lockFile = path.join(dir, 'package-lock.json');
    if (!existsSync(lockFile)) {
        console.error(`check-node-engines: ${lockFile} is missing: the versions must be pinned (npm install, then commit it)`);
        return 1;
    }
    const lock = readJson(lockFile);
    const problems = [];
    if (!satisfies(running, own.engines.node))
        problems.push(`Node.js ${running} is older than ${own.engines.node}, what ${dir}/package.json supports`);
    let checked = 0;
    for (const [where, pinned] of Object.entries(lock.packages || {})) {
        if (where === '' || pinned.link || pinned.optional) continue;
        const name = where.replace(/^.*node_modules\//, '');
        const manifestFile = path.join(dir, where, 'package.json');
        if (!existsSync(manifestFile)) {
            problems.push(`${name}@${pinned.version} is not installed in ${path.join(dir, where)}: run make deps`);
            continue;
        }
        const installed = readJson(manifestFile);
        if (installed.version !== pinned.version) {
            problems.push(`${name}: ${installed.version} is installed, the lock file pins ${pinned.version}: run make deps`);
            continue;
        }
        const range = (installed.engines && installed.engines.node) || '*';
        const forRunning = satisfies(running, range);
        const forFloor = satisfies(floor, range);
        console.log(`check-node-engines: ${name}@${installed.version} needs node ${range}: ` +
            `${running} ${forRunning ? 'ok' : 'NO'}, ${floor} (oldest supported) ${forFloor ? 'ok' : 'NO'}`);
        if (!forRunning) problems.push(`${name}@${installed.version} needs Node.js ${range}; this is ${running}`);
        if (!forFloor)
            problems.push(`${name}@${installed.version} needs Node.js ${range}, but ${dir}/package.json promises ` +
                `${own.engines.node} (Debian 12 has 18.20): pin an older ${name}`);
        ++checked;
    }
    if (problems.length > 0) {
        console.error('\ncheck-node-engines: FAILED');
        for (const problem of problems) console.error(`  - ${problem}`);
        console.error('');
        return 1;
    }
    console.log(`check-node-engines: ${checked} packages accept Node.js ${running} and ${floor}`);
    return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname))
    process.exitCode = main(process.argv.slice(2));
