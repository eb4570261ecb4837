// Tests of scripts/check-node-engines.mjs: the range grammar, and that a pinned package whose
// engines exclude the oldest supported Node.js (playwright-core 1.65 needs Node 20; Debian 12
// has 18.20) fails the check with exit code 1 even when the running Node is new enough.
//
//   node --test scripts/check-node-engines.test.mjs        (make check-node-engines)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { satisfies } from './check-node-engines.mjs';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'check-node-engines.mjs');

test('ranges as npm reads them', () => {
    const cases = [
        ['18.20.4', '>=18', true],
        ['18.20.4', '>=20', false],
        ['20.0.0', '>=20', true],
        ['18.20.4', '>= 18.19.0', true],
        ['18.20.4', '^18.17.0 || >=20.5.0', true],
        ['19.9.0', '^18.17.0 || >=20.5.0', false],
        ['18.20.4', '^16.14.0 || ^18.0.0 || >=20', true],
        ['18.20.4', '>=14.17 <19', true],
        ['19.0.0', '>=14.17 <19', false],
        ['18.20.4', '~18.20.1', true],
        ['18.21.0', '~18.20.1', false],
        ['18.20.4', '18.x', true],
        ['20.1.0', '18.x', false],
        ['18.20.4', '16 - 18', true],
        ['19.0.0', '16 - 18', false],
        ['18.20.4', '*', true],
        ['18.20.4', '', true],
        ['0.2.5', '^0.2.3', true],
        ['0.3.0', '^0.2.3', false],
        ['18.20.4', '>18.20', false],
        ['18.21.0', '>18.20', true],
        ['18.20.4', '<=18.20', true],
        ['v18.20.4', '>=10.0.0', true],
    ];
    for (const [version, range, expected] of cases)
        assert.equal(satisfies(version, range), expected, `${version} in "${range}"`);
});

// A test/ look-alike: package.json, package-lock.json and node_modules with one package.
function fixture({ ownEngines = '>=18.20.0', installed = '1.65.1', pinned = '1.65.1', engines = '>=20' } = {}) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'engines-'));
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 't', engines: { node: ownEngines } }));
    writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify({
        lockfileVersion: 3,
        packages: { '': { name: 't' }, 'node_modules/playwright-core': { version: pinned } },
    }));
    mkdirSync(path.join(dir, 'node_modules', 'playwright-core'), { recursive: true });
    writeFileSync(path.join(dir, 'node_modules', 'playwright-core', 'package.json'),
        JSON.stringify({ name: 'playwright-core', version: installed, engines: { node: engines } }));
    return dir;
}

function check(dir, node) {
    const result = spawnSync(process.execPath, [script, dir, '--node', node], { encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
    return result;
}

test('playwright-core 1.65 (node >=20) fails on Node 18.20.4, loudly', () => {
    const result = check(fixture(), '18.20.4');
    assert.equal(result.status, 1);
    assert.match(result.stderr, /FAILED/);
    assert.match(result.stderr, /playwright-core@1\.65\.1 needs Node\.js >=20; this is 18\.20\.4/);
});

test('a package that excludes the oldest supported Node fails even on a newer Node', () => {
    const result = check(fixture(), '20.20.2');
    assert.equal(result.status, 1);
    assert.match(result.stderr, /promises >=18\.20\.0 \(Debian 12 has 18\.20\): pin an older playwright-core/);
});

test('playwright-core 1.61 (node >=18) passes on 18.20.4', () => {
    const result = check(fixture({ installed: '1.61.1', pinned: '1.61.1', engines: '>=18' }), '18.20.4');
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /1 packages accept Node\.js 18\.20\.4/);
});

test('an installed version other than the pinned one is an error', () => {
    const result = check(fixture({ installed: '1.65.1', pinned: '1.61.1', engines: '>=18' }), '20.20.2');
    assert.equal(result.status, 1);
    assert.match(result.stderr, /1\.65\.1 is installed, the lock file pins 1\.61\.1/);
});

test('a Node older than package.json promises is an error', () => {
    const result = check(fixture({ installed: '1.61.1', pinned: '1.61.1', engines: '>=18' }), '16.20.0');
    assert.equal(result.status, 1);
    assert.match(result.stderr, /Node\.js 16\.20\.0 is older than >=18\.20\.0/);
});
