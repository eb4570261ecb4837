// Raw TCP connections for the abusers, every one of them tracked: whatever happens to an
// abuser (a handshake refused, a connect stuck in SYN retries while the server's backlog is
// full, a deadline), `destroyAll()` at the end of a wave closes every socket it opened, so
// that no abusive connection outlives its wave and skews the server's descriptor count.

import net from 'node:net';

import { HOST, RawClient, withTimeout } from '../integration/helpers.mjs';

export class ConnectionTracker {
    constructor(port) {
        this.port = port;
        this.open = new Set();
        this.made = 0;
    }

    track(socket) {
        this.made += 1;
        this.open.add(socket);
        socket.once('close', () => this.open.delete(socket));
        return socket;
    }

    /** A raw socket, connected (rejects after `timeout`; the socket is destroyed then). */
    async connect(timeout) {
        const socket = this.track(net.connect({ host: HOST, port: this.port }));
        socket.on('error', () => {});  // an abuser expects resets; the outcome says what happened
        try {
            await withTimeout(
                new Promise((resolve, reject) => {
                    socket.once('connect', resolve);
                    socket.once('close', () => reject(new Error('closed before connecting')));
                }),
                timeout,
                'connect',
            );
        } catch (err) {
            socket.destroy();
            throw err;
        }
        socket.setNoDelay(true);
        return socket;
    }

    /** A RawClient (test/integration/helpers.mjs) on a connected socket, before any handshake. */
    async rawClient(timeout) {
        return new RawClient(await this.connect(timeout));
    }

    /** A RawClient whose input goes to the HTTP response head first (nothing sent yet). */
    async httpClient(timeout) {
        const client = await this.rawClient(timeout);
        client.handshaking = true;
        return client;
    }

    /** A RawClient that completed the WebSocket handshake on `path` (throws if refused). */
    async openWebSocket(path, timeout) {
        const client = await this.rawClient(timeout);
        try {
            await client.handshake({ port: this.port, path, timeout });
        } catch (err) {
            client.destroy();
            throw err;
        }
        return client;
    }

    destroyAll() {
        for (const socket of this.open) socket.destroy();
    }
}
