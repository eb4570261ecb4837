// An Autobahn-testsuite-like conformance run of our own, over raw sockets, against
// websock-echo. Case numbers follow Autobahn's groups (1 framing, 2 pings, 3 reserved bits,
// 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close, 9 big messages); every case opens its own
// connection. Strict everywhere Autobahn is strict: a failing case must get a close frame
// with the right code and nothing before it that was not expected, then the server must
// close the TCP connection by itself within a deadline (we do not answer its close).
//
// This file: groups 1 to 5; groups 6, 7 and 9 are in conformance_utf8_close.test.mjs, the
// shared harness in conformance_harness.mjs.

import { describe, it } from 'node:test';

import {
    OP,
    frame,
    textFrame,
    binaryFrame,
    pingFrame,
    pongFrame,
    contFrame,
    closePayload,
    patternBytes,
} from './helpers.mjs';
import { useEchoServer, withClient, send, MODES } from './conformance_harness.mjs';

useEchoServer();

// ---------------------------------------------------------------------------------------
describe('1.x framing', () => {
    const lengths = [0, 125, 126, 127, 128, 65535, 65536];
    for (const [kind, opcode, make] of [
        ['text', OP.TEXT, (n) => Buffer.from('*'.repeat(n))],
        ['binary', OP.BINARY, (n) => Buffer.alloc(n, 0xfe)],
    ]) {
        const group = kind === 'text' ? '1.1' : '1.2';
        lengths.forEach((n, i) => {
            it(`${group}.${i + 1} ${kind} message of ${n} bytes`, () =>
                withClient(async (c) => {
                    const payload = make(n);
                    await send(c, frame({ opcode, payload }));
                    await c.expectMessage(opcode, payload);
                    await c.closeHandshake(1000);
                }));
        });
        it(`${group}.8 ${kind} message of 65536 bytes sent in chops of 997 bytes`, () =>
            withClient(async (c) => {
                const payload = make(65536);
                await send(c, frame({ opcode, payload }), 997);
                await c.expectMessage(opcode, payload);
                await c.closeHandshake(1000);
            }));
    }
});

// ---------------------------------------------------------------------------------------
describe('2.x pings and pongs', () => {
    it('2.1 ping without payload', () =>
        withClient(async (c) => {
            await send(c, pingFrame(Buffer.alloc(0)));
            await c.expectPong(Buffer.alloc(0));
            await c.closeHandshake(1000);
        }));

    it('2.2 ping with a small text payload', () =>
        withClient(async (c) => {
            await send(c, pingFrame('Hello, world!'));
            await c.expectPong('Hello, world!');
            await c.closeHandshake(1000);
        }));

    it('2.3 ping with a small binary (non UTF-8) payload', () =>
        withClient(async (c) => {
            const p = Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]);
            await send(c, pingFrame(p));
            await c.expectPong(p);
            await c.closeHandshake(1000);
        }));

    it('2.4 ping with a 125-byte payload', () =>
        withClient(async (c) => {
            const p = Buffer.alloc(125, 0xfe);
            await send(c, pingFrame(p));
            await c.expectPong(p);
            await c.closeHandshake(1000);
        }));

    it('2.4b pings with every payload length 0..125 each answered with the same payload', () =>
        withClient(async (c) => {
            for (let n = 0; n <= 125; n++) {
                const p = patternBytes(n, n + 1);
                await send(c, pingFrame(p));
                await c.expectPong(p);
            }
            await c.closeHandshake(1000);
        }));

    it('2.5 ping with a 126-byte payload fails with 1002', () =>
        withClient(async (c) => {
            await send(c, pingFrame(Buffer.alloc(126, 0xfe)));
            await c.expectFail(1002);
        }));

    it('2.6 ping with a 125-byte payload sent in 1-byte chops', () =>
        withClient(async (c) => {
            const p = patternBytes(125, 26);
            await send(c, pingFrame(p), 'chopped');
            await c.expectPong(p);
            await c.closeHandshake(1000);
        }));

    it('2.7 an unsolicited pong without payload is ignored', () =>
        withClient(async (c) => {
            await send(c, pongFrame(Buffer.alloc(0)));
            await c.closeHandshake(1000);
        }));

    it('2.8 an unsolicited pong with payload is ignored', () =>
        withClient(async (c) => {
            await send(c, pongFrame('unsolicited pong payload'));
            await c.closeHandshake(1000);
        }));

    it('2.9 an unsolicited pong then a ping: exactly one pong, for the ping', () =>
        withClient(async (c) => {
            await send(c, [pongFrame('unsolicited pong payload'), pingFrame('ping payload')]);
            await c.expectPong('ping payload');
            await c.closeHandshake(1000);
        }));

    it('2.10 ten pings in a row, each answered in order', () =>
        withClient(async (c) => {
            const pings = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
            await send(c, pings.map((p) => pingFrame(p)));
            for (const p of pings) await c.expectPong(p);
            await c.closeHandshake(1000);
        }));

    it('2.11 ten pings in a row sent in 1-byte chops, each answered in order', () =>
        withClient(async (c) => {
            const pings = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
            await send(c, pings.map((p) => pingFrame(p)), 'chopped');
            for (const p of pings) await c.expectPong(p);
            await c.closeHandshake(1000);
        }));

    it('2.12 a binary ping payload with every byte value (two pings)', () =>
        withClient(async (c) => {
            const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
            await send(c, [pingFrame(all.subarray(0, 125)), pingFrame(all.subarray(125, 250))]);
            await c.expectPong(all.subarray(0, 125));
            await c.expectPong(all.subarray(125, 250));
            await c.closeHandshake(1000);
        }));
});

// ---------------------------------------------------------------------------------------
describe('3.x reserved bits', () => {
    it('3.1 text with RSV = 1 fails with 1002', () =>
        withClient(async (c) => {
            await send(c, textFrame('Hello, world!', { rsv: 1 }));
            await c.expectFail(1002);
        }));

    it('3.2 text, then text with RSV = 2, then ping: echo, then 1002 and no pong', () =>
        withClient(async (c) => {
            await send(c, [textFrame('small'), textFrame('Hello, world!', { rsv: 2 }), pingFrame('')]);
            await c.expectMessage(OP.TEXT, 'small');
            await c.expectFail(1002);
        }));

    it('3.3 the same with RSV = 3, sent frame-wise', () =>
        withClient(async (c) => {
            await send(c, [textFrame('small'), textFrame('Hello, world!', { rsv: 3 }), pingFrame('')], 'framewise');
            await c.expectMessage(OP.TEXT, 'small');
            await c.expectFail(1002);
        }));

    it('3.4 the same with RSV = 4, sent in 1-byte chops', () =>
        withClient(async (c) => {
            await send(c, [textFrame('small'), textFrame('Hello, world!', { rsv: 4 }), pingFrame('')], 'chopped');
            await c.expectMessage(OP.TEXT, 'small');
            await c.expectFail(1002);
        }));

    it('3.5 binary with RSV = 5 fails with 1002', () =>
        withClient(async (c) => {
            await send(c, binaryFrame(Buffer.from([0, 0xff, 0xfe, 0xfd]), { rsv: 5 }));
            await c.expectFail(1002);
        }));

    it('3.6 ping with RSV = 6 fails with 1002 (no pong)', () =>
        withClient(async (c) => {
            await send(c, pingFrame('Hello, world!', { rsv: 6 }));
            await c.expectFail(1002);
        }));

    it('3.7 close with RSV = 7 fails with 1002', () =>
        withClient(async (c) => {
            await send(c, frame({ opcode: OP.CLOSE, payload: closePayload(1000), rsv: 7 }));
            await c.expectFail(1002);
        }));

    it('3.8 continuation with RSV = 1 inside a fragmented message fails with 1002', () =>
        withClient(async (c) => {
            await send(c, [frame({ opcode: OP.TEXT, fin: false, payload: 'frag1' }), contFrame('frag2', { rsv: 1 })]);
            await c.expectFail(1002);
        }));
});

// ---------------------------------------------------------------------------------------
describe('4.x reserved opcodes', () => {
    for (const [group, base] of [
        ['4.1', 3],
        ['4.2', 11],
    ]) {
        const kind = group === '4.1' ? 'non-control' : 'control';
        it(`${group}.1 reserved ${kind} opcode ${base} without payload fails with 1002`, () =>
            withClient(async (c) => {
                await send(c, frame({ opcode: base, payload: Buffer.alloc(0) }));
                await c.expectFail(1002);
            }));
        it(`${group}.2 reserved ${kind} opcode ${base + 1} with payload fails with 1002`, () =>
            withClient(async (c) => {
                await send(c, frame({ opcode: base + 1, payload: 'reserved opcode payload' }));
                await c.expectFail(1002);
            }));
        it(`${group}.3 text, reserved opcode ${base + 2}, ping: echo, then 1002 and no pong`, () =>
            withClient(async (c) => {
                await send(c, [textFrame('Hello, world!'), frame({ opcode: base + 2, payload: Buffer.alloc(0) }), pingFrame('')]);
                await c.expectMessage(OP.TEXT, 'Hello, world!');
                await c.expectFail(1002);
            }));
        it(`${group}.4 text, reserved opcode ${base + 3} with payload, ping (frame-wise)`, () =>
            withClient(async (c) => {
                await send(c, [textFrame('Hello, world!'), frame({ opcode: base + 3, payload: 'reserved' }), pingFrame('')], 'framewise');
                await c.expectMessage(OP.TEXT, 'Hello, world!');
                await c.expectFail(1002);
            }));
        it(`${group}.5 text, reserved opcode ${base + 4} with payload, ping (1-byte chops)`, () =>
            withClient(async (c) => {
                await send(c, [textFrame('Hello, world!'), frame({ opcode: base + 4, payload: 'reserved' }), pingFrame('')], 'chopped');
                await c.expectMessage(OP.TEXT, 'Hello, world!');
                await c.expectFail(1002);
            }));
    }
});

// ---------------------------------------------------------------------------------------
describe('5.x fragmentation', () => {
    it('5.1 ping in 2 fragments fails with 1002', () =>
        withClient(async (c) => {
            await send(c, [frame({ opcode: OP.PING, fin: false, payload: 'fragment1' }), contFrame('fragment2')]);
            await c.expectFail(1002);
        }));

    it('5.2 pong in 2 fragments fails with 1002', () =>
        withClient(async (c) => {
            await send(c, [frame({ opcode: OP.PONG, fin: false, payload: 'fragment1' }), contFrame('fragment2')]);
            await c.expectFail(1002);
        }));

    it('5.2b close with FIN clear fails with 1002', () =>
        withClient(async (c) => {
            await send(c, [frame({ opcode: OP.CLOSE, fin: false, payload: closePayload(1000) }), contFrame('')]);
            await c.expectFail(1002);
        }));

    MODES.forEach((mode, i) => {
        it(`5.${3 + i} text in 2 fragments (${mode})`, () =>
            withClient(async (c) => {
                await send(c, [frame({ opcode: OP.TEXT, fin: false, payload: 'fragment1' }), contFrame('fragment2')], mode);
                await c.expectMessage(OP.TEXT, 'fragment1fragment2');
                await c.closeHandshake(1000);
            }));
    });

    MODES.forEach((mode, i) => {
        it(`5.${6 + i} text in 2 fragments with a ping in between (${mode})`, () =>
            withClient(async (c) => {
                await send(c, [frame({ opcode: OP.TEXT, fin: false, payload: 'fragment1' }), pingFrame('ping payload'), contFrame('fragment2')], mode);
                await c.expectPong('ping payload');
                await c.expectMessage(OP.TEXT, 'fragment1fragment2');
                await c.closeHandshake(1000);
            }));
    });

    MODES.forEach((mode, i) => {
        it(`5.${9 + i} continuation (FIN set) with no message started fails with 1002 (${mode})`, () =>
            withClient(async (c) => {
                await send(c, [contFrame('non-continuation payload', { fin: true }), textFrame('Hello, world!')], mode);
                await c.expectFail(1002);
            }));
    });

    MODES.forEach((mode, i) => {
        it(`5.${12 + i} continuation (FIN clear) with no message started fails with 1002 (${mode})`, () =>
            withClient(async (c) => {
                await send(c, [contFrame('non-continuation payload', { fin: false }), textFrame('Hello, world!')], mode);
                await c.expectFail(1002);
            }));
    });

    it('5.15 a message, then a continuation after the final fragment: echo, then 1002', () =>
        withClient(async (c) => {
            await send(c, [
                frame({ opcode: OP.TEXT, fin: false, payload: 'fragment1' }),
                contFrame('fragment2', { fin: true }),
                contFrame('fragment3', { fin: false }),
                textFrame('fragment4'),
            ]);
            await c.expectMessage(OP.TEXT, 'fragment1fragment2');
            await c.expectFail(1002);
        }));

    it('5.16 (continuation, text, text) x2 fails with 1002 at the first continuation', () =>
        withClient(async (c) => {
            const round = [contFrame('fragment1', { fin: false }), frame({ opcode: OP.TEXT, fin: false, payload: 'fragment2' }), textFrame('fragment3')];
            await send(c, [...round, ...round]);
            await c.expectFail(1002);
        }));

    it('5.17 (continuation FIN, text, text) x2 fails with 1002 at the first continuation', () =>
        withClient(async (c) => {
            const round = [contFrame('fragment1', { fin: true }), frame({ opcode: OP.TEXT, fin: false, payload: 'fragment2' }), textFrame('fragment3')];
            await send(c, [...round, ...round]);
            await c.expectFail(1002);
        }));

    it('5.18 a new text message inside a fragmented one fails with 1002', () =>
        withClient(async (c) => {
            await send(c, [frame({ opcode: OP.TEXT, fin: false, payload: 'fragment1' }), textFrame('fragment2')]);
            await c.expectFail(1002);
        }));

    it('5.18b a binary message inside a fragmented text fails with 1002', () =>
        withClient(async (c) => {
            await send(c, [frame({ opcode: OP.TEXT, fin: false, payload: 'fragment1' }), frame({ opcode: OP.BINARY, fin: false, payload: 'x' })]);
            await c.expectFail(1002);
        }));

    for (const [id, mode] of [
        ['5.19', 'framewise'],
        ['5.20', 'chopped'],
    ]) {
        it(`${id} text in 5 fragments with 2 pings interleaved, each pong awaited mid-message (${mode})`, () =>
            withClient(async (c) => {
                await send(c, [frame({ opcode: OP.TEXT, fin: false, payload: 'fragment1' }), contFrame('fragment2', { fin: false }), pingFrame('pongme 1!')], mode);
                await c.expectPong('pongme 1!');
                await send(c, [contFrame('fragment3', { fin: false }), contFrame('fragment4', { fin: false }), pingFrame('pongme 2!')], mode);
                await c.expectPong('pongme 2!');
                await send(c, [contFrame('fragment5', { fin: true })], mode);
                await c.expectMessage(OP.TEXT, 'fragment1fragment2fragment3fragment4fragment5');
                await c.closeHandshake(1000);
            }));
    }

    it('5.21 binary in fragments of 1 byte each (frame-wise)', () =>
        withClient(async (c) => {
            const data = patternBytes(64, 21);
            const frames = [...data].map((b, i) =>
                frame({ opcode: i === 0 ? OP.BINARY : OP.CONTINUATION, fin: i === data.length - 1, payload: Buffer.from([b]) }));
            await send(c, frames, 'framewise');
            await c.expectMessage(OP.BINARY, data);
            await c.closeHandshake(1000);
        }));

    it('5.22 two fragmented messages back to back with empty fragments', () =>
        withClient(async (c) => {
            await send(c, [
                frame({ opcode: OP.TEXT, fin: false, payload: '' }),
                contFrame('abc', { fin: false }),
                contFrame('', { fin: true }),
                frame({ opcode: OP.BINARY, fin: false, payload: Buffer.from([1]) }),
                contFrame(Buffer.from([2]), { fin: true }),
            ]);
            await c.expectMessage(OP.TEXT, 'abc');
            await c.expectMessage(OP.BINARY, Buffer.from([1, 2]));
            await c.closeHandshake(1000);
        }));
});
