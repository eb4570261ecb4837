// Signed calls to websock-hub's channelstream server API, for the soak's clients and abusers.
// The signature is channelstream's own (itsdangerous TimestampSigner over "channelstream"),
// the same JavaScript port test/hub/channelstream.test.mjs checks against python3-itsdangerous
// (copied here because that file is a test file, not a module to import).

import { createHash, createHmac } from 'node:crypto';

import { request } from '../hub/hub_helpers.mjs';

export const SECRET = 'soak-Secret-0123';
export const ADMIN_SECRET = 'soak-Admin-Pw';

/** The hub's environment for the channelstream API under soak. */
export const CHANNELSTREAM_ENV = {
    CHANNELSTREAM_SECRET: SECRET,
    CHANNELSTREAM_ADMIN_SECRET: ADMIN_SECRET,
    // Abusers' connections that never attach, or drop, are collected after 2 s rather than 15,
    // so that the hub is back to its baseline soon after they leave.
    CHANNELSTREAM_GC_CONNS_AFTER: '2',
};

const b64url = (buf) => buf.toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');

function intToBytes(n) {
    const bytes = [];
    for (let x = n; x > 0; x = Math.floor(x / 256)) bytes.unshift(x % 256);
    return Buffer.from(bytes);
}

/** itsdangerous TimestampSigner(secret).sign(value), ported. */
export function sign(secret = SECRET, time = Math.floor(Date.now() / 1000), value = 'channelstream') {
    const key = createHash('sha1').update('itsdangerous.Signer' + 'signer' + secret).digest();
    const signed = `${value}.${b64url(intToBytes(time))}`;
    return `${signed}.${b64url(createHmac('sha1', key).update(signed).digest())}`;
}

/** A signed JSON call (on `http`, a KeepAliveHttp, if given); resolves {status, json, body}. */
export async function callApi(hub, target, body, { method = 'POST', http = null } = {}) {
    const res = await (http ? http.request.bind(http) : (options) => request(hub, options))({
        method,
        path: target,
        headers: { 'X-Channelstream-Secret': sign(), 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
    });
    let json;
    try {
        json = JSON.parse(res.body);
    } catch {
        json = undefined;
    }
    return { status: res.status, json, body: res.body };
}

/** POST /connect for `username` in `channels`; resolves the new conn_id (throws unless 200). */
export async function connectUser(hub, username, channels) {
    const res = await callApi(hub, '/connect', { username, channels });
    if (res.status !== 200 || !res.json?.conn_id) throw new Error(`channelstream /connect ${username}: ${res.status} ${res.body.slice(0, 200)}`);
    return res.json.conn_id;
}
