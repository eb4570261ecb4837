// One kept-alive HTTP connection to a server, for a publisher: it is opened once, before the
// abusers come, so that a burst that takes every descriptor of the server does not stop the
// publisher (a new connection could not be accepted then, and that is the server being right).

import http from 'node:http';

import { ms, withTimeout } from '../integration/helpers.mjs';

export class KeepAliveHttp {
    constructor(server) {
        this.server = server;
        this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    }

    /** One request; resolves {status, body}. `body` is a string. */
    request({ method = 'GET', path, headers = {}, body, timeout = ms(10000) }) {
        const allHeaders = { ...headers };
        if (body !== undefined) allHeaders['Content-Length'] = Buffer.byteLength(body);
        return withTimeout(
            new Promise((resolve, reject) => {
                const req = http.request({ host: this.server.host, port: this.server.port, method, path, headers: allHeaders, agent: this.agent }, (res) => {
                    const chunks = [];
                    res.on('data', (c) => chunks.push(c));
                    res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
                    res.on('error', reject);
                });
                req.on('error', reject);
                if (body !== undefined) req.write(body);
                req.end();
            }),
            timeout,
            `${method} ${path}`,
        );
    }

    close() {
        this.agent.destroy();
    }
}
