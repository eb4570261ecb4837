// RFC 6455 frames by hand, for the raw TCP clients: building frames (masked or not, any RSV
// bits, any opcode), and parsing what a server sends, in any split. Imported through
// helpers.mjs, which re-exports everything here.
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';

// ---------------------------------------------------------------------------------------
// frames

export const OP = Object.freeze({
    CONTINUATION: 0x0,
    TEXT: 0x1,
    BINARY: 0x2,
    CLOSE: 0x8,
    PING: 0x9,
    PONG: 0xa,
});

export function toBuffer(data) {
    if (data === undefined || data === null) return Buffer.alloc(0);
    if (Buffer.isBuffer(data)) return data;
    if (typeof data === 'string') return Buffer.from(data, 'utf8');
    if (Array.isArray(data)) return Buffer.from(data);
    if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    throw new TypeError('payload must be a Buffer, string or byte array');
}

/**
 * Build one frame byte by byte (RFC 6455 section 5.2). A client frame is masked unless
 * `mask: false`. `rsv` is the 3 RSV bits as a number 0..7 (RSV1 = 4).
 */
export function frame({ opcode, payload, fin = true, rsv = 0, mask = true, maskKey } = {}) {
    const data = toBuffer(payload);
    const length = data.length;
    let header;
    if (length < 126) header = 2;
    else if (length < 65536) header = 4;
    else header = 10;
    const key = mask ? (maskKey ? toBuffer(maskKey) : randomBytes(4)) : null;
    const out = Buffer.alloc(header + (mask ? 4 : 0) + length);
    out[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
    const maskBit = mask ? 0x80 : 0;
    if (length < 126) {
        out[1] = maskBit | length;
    } else if (length < 65536) {
        out[1] = maskBit | 126;
        out[2] = length >> 8;
        out[3] = length & 0xff;
    } else {
        out[1] = maskBit | 127;
        // 64-bit big-endian length, most significant bit 0
        const high = Math.floor(length / 2 ** 32);
        const low = length >>> 0;
        out.writeUInt32BE(high, 2);
        out.writeUInt32BE(low, 6);
    }
    let at = header;
    if (mask) {
        key.copy(out, at);
        at += 4;
        for (let i = 0; i < length; i++) out[at + i] = data[i] ^ key[i & 3];
    } else {
        data.copy(out, at);
    }
    return out;
}

/** Just a frame header, for a frame whose payload is sent separately (masked with `maskKey`). */
export function frameHeader({ opcode, length, fin = true, rsv = 0, maskKey }) {
    const parts = [(fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    if (length < 126) parts.push(0x80 | length);
    else if (length < 65536) parts.push(0x80 | 126, length >> 8, length & 0xff);
    else {
        const b = Buffer.alloc(8);
        b.writeUInt32BE(Math.floor(length / 2 ** 32), 0);
        b.writeUInt32BE(length >>> 0, 4);
        parts.push(0x80 | 127, ...b);
    }
    return Buffer.concat([Buffer.from(parts), toBuffer(maskKey)]);
}

/** XOR `data` with the 4-byte `key` starting at mask offset `offset` (a copy). */
export function maskBytes(data, key, offset = 0) {
    const out = Buffer.from(data);
    for (let i = 0; i < out.length; i++) out[i] ^= key[(offset + i) & 3];
    return out;
}

/** A close frame payload: 2-byte code (if given) and a reason (string or bytes). */
export function closePayload(code, reason = '') {
    if (code === undefined || code === null) return Buffer.alloc(0);
    const head = Buffer.alloc(2);
    head.writeUInt16BE(code);
    return Buffer.concat([head, toBuffer(reason)]);
}

export const closeFrame = (code, reason = '', opts = {}) => frame({ opcode: OP.CLOSE, payload: closePayload(code, reason), ...opts });
export const textFrame = (payload, opts = {}) => frame({ opcode: OP.TEXT, payload, ...opts });
export const binaryFrame = (payload, opts = {}) => frame({ opcode: OP.BINARY, payload, ...opts });
export const pingFrame = (payload, opts = {}) => frame({ opcode: OP.PING, payload, ...opts });
export const pongFrame = (payload, opts = {}) => frame({ opcode: OP.PONG, payload, ...opts });
export const contFrame = (payload, opts = {}) => frame({ opcode: OP.CONTINUATION, payload, ...opts });

/** A FIFO of received chunks that hands out exact byte counts without quadratic copying. */
class ByteQueue {
    constructor() {
        this.chunks = [];
        this.length = 0;
    }
    push(chunk) {
        if (chunk.length === 0) return;
        this.chunks.push(chunk);
        this.length += chunk.length;
    }
    /** The first n bytes (n <= length), without consuming them. */
    peek(n) {
        if (this.chunks.length && this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
        const parts = [];
        let need = n;
        for (const c of this.chunks) {
            if (need <= 0) break;
            const part = c.length <= need ? c : c.subarray(0, need);
            parts.push(part);
            need -= part.length;
        }
        return Buffer.concat(parts, n);
    }
    take(n) {
        const out = this.peek(n);
        const copy = this.chunks.length && this.chunks[0].length >= n ? Buffer.from(out) : out;
        let left = n;
        while (left > 0) {
            const c = this.chunks[0];
            if (c.length <= left) {
                this.chunks.shift();
                left -= c.length;
            } else {
                this.chunks[0] = c.subarray(left);
                left = 0;
            }
        }
        this.length -= n;
        return copy;
    }
}

/**
 * Incremental parser of frames as a server sends them. push() bytes, then call next()
 * until it returns null. Each frame: {fin, rsv, opcode, masked, payload: Buffer}.
 * A server frame must be unmasked; `masked` is reported so tests can assert that.
 */
export class FrameParser {
    constructor() {
        this.queue = new ByteQueue();
    }
    push(chunk) {
        this.queue.push(chunk);
    }
    get buffered() {
        return this.queue.length;
    }
    next() {
        const q = this.queue;
        if (q.length < 2) return null;
        const head = q.peek(Math.min(q.length, 14));
        const b0 = head[0];
        const b1 = head[1];
        const masked = (b1 & 0x80) !== 0;
        let length = b1 & 0x7f;
        let at = 2;
        if (length === 126) {
            if (head.length < 4) return null;
            length = head.readUInt16BE(2);
            at = 4;
        } else if (length === 127) {
            if (head.length < 10) return null;
            const high = head.readUInt32BE(2);
            const low = head.readUInt32BE(6);
            length = high * 2 ** 32 + low;
            at = 10;
        }
        let key = null;
        if (masked) {
            if (head.length < at + 4) return null;
            key = Buffer.from(head.subarray(at, at + 4));
            at += 4;
        }
        if (q.length < at + length) return null;
        q.take(at);
        let payload = length ? q.take(length) : Buffer.alloc(0);
        if (key) payload = maskBytes(payload, key);
        return {
            fin: (b0 & 0x80) !== 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0x0f,
            masked,
            payload,
        };
    }
}

/** Decode a close frame payload: {code, reason (string), reasonBytes}; code null if empty. */
export function parseClose(payload) {
    if (payload.length === 0) return { code: null, reason: '', reasonBytes: Buffer.alloc(0) };
    if (payload.length === 1) return { code: NaN, reason: '', reasonBytes: payload };
    const reasonBytes = payload.subarray(2);
    return { code: payload.readUInt16BE(0), reason: reasonBytes.toString('utf8'), reasonBytes };
}

export const opcodeName = (op) => ({ 0: 'continuation', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' })[op] ?? `opcode ${op}`;

export function describeFrame(f) {
    if (!f) return 'nothing';
    let text = `${opcodeName(f.opcode)}${f.fin ? '' : ' (not fin)'}${f.rsv ? ` rsv=${f.rsv}` : ''} len=${f.payload.length}`;
    if (f.opcode === OP.CLOSE) {
        const c = parseClose(f.payload);
        text += ` code=${c.code} reason=${JSON.stringify(c.reason)}`;
    } else if (f.payload.length <= 40) {
        text += ` payload=${f.payload.toString('hex')}`;
    }
    return text;
}
