// Per-channel payload rules (hub/payload_rules.hpp) through every API: a refused publish gets
// its 4xx with the rule it broke, and no subscriber ever sees it; the rules come from flags,
// HUB_CHANNEL_RULES and the INI file, in that order of precedence.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { startHub, tempDir, publish, broadcast, subscribe, nextMessage, closeWs, binPath, HUB } from './hub_helpers.mjs';
import { FAST, api, connect, listenWs, nextEvent } from './channelstream_harness.mjs';

const CHAT_RULE = 'chat.*; types=json; max_bytes=80; required=user:string,text:string; max_depth=2';

describe('payload rules', () => {
    let hub;
    before(async () => {
        hub = await startHub(['--channel-rule', CHAT_RULE, '--channel-rule=raw; types=binary; max_bytes=4'], { env: FAST });
    });
    after(async () => {
        await hub?.stop();
    });

    test('aiows: each broken rule gets its status and reason; only the good publish is delivered', async () => {
        const ws = await subscribe(hub, 'chat.room');
        const cases = [
            { data: 'hello', type: 'text', status: 415, rule: 'types' },
            { data: '{"user":"ann"}', type: 'json', status: 422, rule: 'required', says: 'key "text" is missing' },
            { data: '{"user":"ann","text":5}', type: 'json', status: 422, rule: 'required', says: 'must be string' },
            { data: '{"user":"ann","text":"x","deep":[[1]]}', type: 'json', status: 422, rule: 'max_depth' },
            { data: JSON.stringify({ user: 'ann', text: 'x'.repeat(100) }), type: 'json', status: 413, rule: 'max_bytes' },
        ];
        for (const c of cases) {
            const res = await publish(hub, 'chat.room', c.data, { type: c.type });
            assert.equal(res.status, c.status, `${c.data}: ${res.body}`);
            const text = JSON.parse(res.body);
            assert.match(text, new RegExp(`payload rule '${c.rule}'`), res.body);
            assert.match(text, /chat\.room/);
            if (c.says) assert.ok(text.includes(c.says), res.body);
        }
        const good = '{"user":"ann","text":"hi"}';
        assert.equal((await publish(hub, 'chat.room', good, { type: 'json' })).status, 201);
        // The first message the subscriber gets is the good one: nothing refused reached it.
        assert.equal((await nextMessage(ws)).text, good);
        // Channels no rule matches take anything.
        assert.equal((await publish(hub, 'news', 'plain words')).status, 201);
        await closeWs(ws);
    });

    test('aiows: a channel whose percent-decoded name is not UTF-8 gets its rule\'s 4xx, not 500', async () => {
        // The refusal quotes the channel; nlohmann's strict dump() threw on the 0xFF byte.
        const res = await publish(hub, 'chat.%FF%FE', 'hello', { type: 'text' });
        assert.equal(res.status, 415, res.body);
        const text = JSON.parse(res.body);
        assert.match(text, /payload rule 'types'/);
        assert.ok(text.includes('chat.\ufffd'), res.body);  // the bytes that are not UTF-8 shown as U+FFFD
    });

    test('aiows: a broadcast with one refused package is refused whole', async () => {
        const ws = await subscribe(hub, 'chat.a');
        const res = await broadcast(hub, { 'chat.a': [{ json: { user: 'u', text: 'ok' } }], raw: [{ bytes: 'toolong' }] });
        assert.equal(res.status, 413, res.body);
        assert.match(JSON.parse(res.body), /raw/);
        const ok = await broadcast(hub, { 'chat.a': [{ json: { user: 'u', text: 'second' } }], raw: [{ bytes: 'ab' }] });
        assert.equal(ok.status, 201, ok.body);
        assert.deepEqual(JSON.parse((await nextMessage(ws)).text), { user: 'u', text: 'second' });
        await closeWs(ws);
    });

    test('channelstream: POST /message is checked per channel message, refused whole; private messages pass', async () => {
        const { conn_id: connId } = await connect(hub, 'reader', ['chat.lobby']);
        const ws = await listenWs(hub, connId);
        const refused = await api(hub, '/message', [
            { user: 'w', channel: 'chat.lobby', message: { user: 'w', text: 'fine' } },
            { user: 'w', channel: 'chat.lobby', message: { user: 'w' } },
        ]);
        assert.equal(refused.status, 422, refused.body);
        assert.equal(refused.json.rule, 'required');
        assert.match(refused.json.message[0], /key "text" is missing/);
        const tooBig = await api(hub, '/message', [{ user: 'w', channel: 'chat.lobby', message: { user: 'w', text: 'x'.repeat(90) } }]);
        assert.equal(tooBig.status, 413, tooBig.body);
        const pm = await api(hub, '/message', [{ user: 'w', pm_users: ['reader'], message: { note: 'no rule for private messages' } }]);
        assert.equal(pm.status, 200, pm.body);
        const ok = await api(hub, '/message', [{ user: 'w', channel: 'chat.lobby', message: { user: 'w', text: 'hello' } }]);
        assert.equal(ok.status, 200, ok.body);
        // The first channel message the reader gets is the accepted one: the refused request's
        // valid half ('fine') was never published.
        const event = await nextEvent(ws, (e) => e.channel === 'chat.lobby' && e.type === 'message', 'the accepted message');
        assert.deepEqual(event.message, { user: 'w', text: 'hello' });
        await closeWs(ws);
    });
});

describe('payload rules: where they come from', () => {
    test('flags, then HUB_CHANNEL_RULES, then the INI file: the first match decides', async () => {
        const { dir, cleanup } = tempDir();
        try {
            const ini = path.join(dir, 'hub.ini');
            writeFileSync(ini, '[channel:news]\nmax_bytes = 3\n[channel:sports]\nmax_bytes = 3\n[channel:weather]\ntypes = binary\n');
            const hub = await startHub(['-i', ini, '--channel-rule', 'weather; types=text'], {
                env: { ...FAST, HUB_CHANNEL_RULES: 'news; max_bytes=100\nweather; types=json' },
            });
            try {
                assert.equal((await publish(hub, 'news', 'longer than three')).status, 201);  // the variable's rule
                assert.equal((await publish(hub, 'sports', 'longer than three')).status, 413);  // the INI file's
                assert.equal((await publish(hub, 'weather', 'sunny')).status, 201);  // the flag's: text
                assert.equal((await publish(hub, 'weather', '"sunny"', { type: 'json' })).status, 415);
            } finally {
                await hub.stop();
            }
        } finally {
            cleanup();
        }
    });

    test('a rule that cannot be read stops start-up with the reason', () => {
        for (const [args, env, says] of [
            [['--channel-rule', 'x; colour=red'], {}, /unknown setting "colour"/],
            [[], { HUB_CHANNEL_RULES: 'x; types=xml' }, /HUB_CHANNEL_RULES: types/],
        ]) {
            const run = spawnSync(binPath(HUB), ['--port', '0', ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 10000 });
            assert.equal(run.status, 2, run.stderr);
            assert.match(run.stderr, says);
        }
    });
});
