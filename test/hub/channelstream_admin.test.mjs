// websock-hub's channelstream admin sign-in, end to end, as channelstream 0.7.1 has it:
// POST /admin/sign_in with the form fields username and password sets a cookie that /admin
// and /admin/admin.json take; a wrong password gets none and is answered 0.5 s late (held back
// without a thread; a burst past 64 held answers gets 429); sign_out clears the cookie. Also
// driven from Python's urllib with a cookie jar, which follows the redirect as a browser does.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

import { startHub, request } from './hub_helpers.mjs';

const PYTHON = '/usr/bin/python3';
const SECRET = 'cs-admin-Secret-42';
const ADMIN = 'cs-Admin-Pw&=+ x';  // characters a form must encode

describe('channelstream admin sign-in', () => {
    let hub;
    before(async () => {
        hub = await startHub([], { env: { CHANNELSTREAM_SECRET: SECRET, CHANNELSTREAM_ADMIN_SECRET: ADMIN } });
    });
    after(async () => {
        await hub?.stop();
        assert.ok(!hub.logText().includes(ADMIN), 'the admin password never reaches the log');
    });

    test('admin sign-in as 0.7.1: the form sets a cookie that admin.json takes; a wrong password gets none, 0.5 s late', async () => {
        const form = (username, password) => `username=${encodeURIComponent(username)}&password=${encodeURIComponent(password)}`;
        const signIn = (body) =>
            request(hub, { method: 'POST', path: '/admin/sign_in', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body });
        const unsigned = await request(hub, { path: '/admin' });
        assert.equal(unsigned.status, 302);
        assert.equal(unsigned.headers.location, '/admin/sign_in');
        const page = await request(hub, { path: '/admin/sign_in' });
        assert.equal(page.status, 200);
        assert.match(page.body, /name="username"/);
        assert.match(page.body, /name="password"/);

        const started = Date.now();
        const wrong = await signIn(form('admin', 'not-it'));
        const waited = Date.now() - started;
        assert.equal(wrong.status, 200);
        assert.equal(wrong.headers['set-cookie'], undefined);
        assert.match(wrong.body, /Wrong user name or password/);
        assert.ok(waited >= 490, `a wrong password is answered after channelstream's 0.5 s, not ${waited} ms`);

        const right = await signIn(form(' admin ', ADMIN));  // channelstream strips both fields
        assert.equal(right.status, 302);
        assert.equal(right.headers.location, '/admin');
        assert.equal(right.headers['set-cookie']?.length, 1);
        const cookie = right.headers['set-cookie'][0].split(';')[0];
        assert.match(cookie, /^auth_tkt=\d+\.[0-9a-f]{64}$/);
        assert.match(right.headers['set-cookie'][0], /; HttpOnly; SameSite=Lax$/);
        const info = await request(hub, { path: '/admin/admin.json', headers: { Cookie: cookie } });
        assert.equal(info.status, 200);
        assert.equal(JSON.parse(info.body).version, '0.7.1');
        assert.equal((await request(hub, { path: '/admin', headers: { Cookie: cookie } })).status, 200);
        assert.equal((await request(hub, { path: '/admin/admin.json', headers: { Cookie: cookie.slice(0, -1) + (cookie.endsWith('0') ? '1' : '0') } })).status, 401);

        const out = await request(hub, { path: '/admin/sign_out', headers: { Cookie: cookie } });
        assert.equal(out.status, 302);
        assert.equal(out.headers.location, '/admin/sign_in');
        assert.match(out.headers['set-cookie'][0], /^auth_tkt=; Path=\/admin; Max-Age=0;/);
    });

    test('admin sign-in: a burst of wrong passwords holds at most 64 answers back, the rest get 429; the right one does not wait', async () => {
        const tries = 70;
        const wrong = Array.from({ length: tries }, () =>
            request(hub, { method: 'POST', path: '/admin/sign_in', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'username=admin&password=guess' }),
        );
        // while those wait: the right password is answered at once
        const started = Date.now();
        const right = await request(hub, { method: 'POST', path: '/admin/sign_in', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: `username=admin&password=${encodeURIComponent(ADMIN)}` });
        assert.equal(right.status, 302);
        assert.ok(Date.now() - started < 450, 'a right sign-in is not held back');
        const answers = await Promise.all(wrong);
        const held = answers.filter((r) => r.status === 200).length;
        const refused = answers.filter((r) => r.status === 429).length;
        assert.equal(held + refused, tries, `statuses: ${answers.map((r) => r.status)}`);
        assert.ok(held <= 64 && refused >= tries - 64, `held ${held}, refused ${refused}`);
        assert.ok(answers.every((r) => r.headers['set-cookie'] === undefined), 'no wrong try gets a cookie');
    });

    test('admin sign-in from Python with a cookie jar, as a browser does: sign in, follow to /admin, read admin.json', async () => {
        // urllib follows the 302 and sends the cookie back only where its Path says, as a browser.
        const script = [
            'import http.cookiejar, json, sys, urllib.parse, urllib.request',
            'base, user, password = sys.argv[1:4]',
            'jar = http.cookiejar.CookieJar()',
            'opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))',
            "def sign_in(pw):",
            "    data = urllib.parse.urlencode({'username': user, 'password': pw}).encode()",
            "    with opener.open(base + '/admin/sign_in', data=data, timeout=10) as r: return r.geturl(), len(jar)",
            "wrong = sign_in('wrong')",
            'right = sign_in(password)',
            "with opener.open(base + '/admin/admin.json', timeout=10) as r: info = json.load(r)",
            "print(json.dumps({'wrong': wrong, 'right': right, 'version': info['version']}))",
        ].join('\n');
        const out = await new Promise((resolve, reject) => {
            const child = spawn(PYTHON, ['-c', script, `http://${hub.host}:${hub.port}`, 'admin', ADMIN]);
            let text = '';
            let err = '';
            child.stdout.on('data', (d) => (text += d));
            child.stderr.on('data', (d) => (err += d));
            child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(text)) : reject(new Error(err))));
        });
        const base = `http://${hub.host}:${hub.port}`;
        assert.deepEqual(out.wrong, [`${base}/admin/sign_in`, 0], 'a wrong password: the form again, no cookie');
        assert.deepEqual(out.right, [`${base}/admin`, 1], 'the right one: on to /admin with the cookie');
        assert.equal(out.version, '0.7.1');
    });
});
