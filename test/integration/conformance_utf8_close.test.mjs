// The conformance run (see conformance.test.mjs), continued: Autobahn's groups 6 (UTF-8),
// 7 (close) and 9 (big messages, bounded), over raw sockets against websock-echo. Strict as
// Autobahn is: a failing case must get a close frame with the right code and nothing before
// it that was not expected, then the server must close the TCP connection by itself within a
// deadline. The shared harness is in conformance_harness.mjs.

import { describe, it } from 'node:test';

import {
    MiB,
    KiB,
    OP,
    ms,
    frame,
    textFrame,
    binaryFrame,
    pingFrame,
    contFrame,
    closeFrame,
    patternBytes,
    utf8Text,
} from './helpers.mjs';
import { useEchoServer, withClient, send } from './conformance_harness.mjs';

useEchoServer();

// ---------------------------------------------------------------------------------------
const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Valid UTF-8 (Markus Kuhn's test file, as Autobahn uses): boundaries, noncharacters, BMP edges.
const VALID_UTF8 = [
    ['κόσμε', hex('ceba e1bdb9 cf83 cebc ceb5')],
    ['first 1-byte (U+0000)', hex('00')],
    ['first 2-byte (U+0080)', hex('c280')],
    ['first 3-byte (U+0800)', hex('e0a080')],
    ['first 4-byte (U+10000)', hex('f0908080')],
    ['last 1-byte (U+007F)', hex('7f')],
    ['last 2-byte (U+07FF)', hex('dfbf')],
    ['last 3-byte (U+FFFF)', hex('efbfbf')],
    ['last code point (U+10FFFF)', hex('f48fbfbf')],
    ['U+D7FF', hex('ed9fbf')],
    ['U+E000', hex('ee8080')],
    ['U+FFFD', hex('efbfbd')],
    ['noncharacter U+FFFE', hex('efbfbe')],
    ['noncharacter U+FDD0', hex('efb790')],
    ['noncharacters U+1FFFE U+1FFFF', hex('f09fbfbe f09fbfbf')],
    ['noncharacter U+10FFFE', hex('f48fbfbe')],
    ['mixed text', Buffer.from('Hello-µ@ßöäüàá-UTF-8!!')],
];

const INVALID_UTF8 = [
    ['above U+10FFFF (f4 90 80 80)', hex('f4908080')],
    ['f7 bf bf bf', hex('f7bfbfbf')],
    ['5-byte sequence', hex('f888808080')],
    ['6-byte sequence', hex('fc8480808080')],
    ['lone continuation 80', hex('80')],
    ['lone continuation bf', hex('bf')],
    ['continuations 80 bf 80 bf', hex('80bf80bf')],
    ['lone start c0 followed by a space', hex('c020')],
    ['lone start e0 followed by a space', hex('e020')],
    ['2-byte sequence without its last byte', hex('c2')],
    ['3-byte sequence without its last byte', hex('e080')],
    ['4-byte sequence without its last byte', hex('f09080')],
    ['κόσμε cut in the last character', hex('ceba e1bdb9 cf83 cebc ce')],
    ['fe', hex('fe')],
    ['ff', hex('ff')],
    ['fe fe ff ff', hex('fefeffff')],
    ['overlong / (c0 af)', hex('c0af')],
    ['overlong / (e0 80 af)', hex('e080af')],
    ['overlong / (f0 80 80 af)', hex('f08080af')],
    ['overlong U+007F (c1 bf)', hex('c1bf')],
    ['overlong U+07FF (e0 9f bf)', hex('e09fbf')],
    ['overlong U+FFFF (f0 8f bf bf)', hex('f08fbfbf')],
    ['overlong NUL (c0 80)', hex('c080')],
    ['surrogate U+D800', hex('eda080')],
    ['surrogate U+DB7F', hex('edadbf')],
    ['surrogate U+DBFF', hex('edafbf')],
    ['surrogate U+DC00', hex('edb080')],
    ['surrogate U+DFFF', hex('edbfbf')],
    ['surrogate pair U+D800 U+DC00', hex('eda080 edb080')],
    ['κόσμε + surrogate + text', Buffer.concat([hex('ceba e1bdb9 cf83 cebc ceb5'), hex('eda080'), Buffer.from('edited')])],
];

/** Frames carrying `payload` as a text message: one frame, or one fragment per byte. */
function textFragments(payload, perByte) {
    if (!perByte || payload.length <= 1) return [textFrame(payload)];
    return [...payload].map((b, i) => frame({ opcode: i === 0 ? OP.TEXT : OP.CONTINUATION, fin: i === payload.length - 1, payload: Buffer.from([b]) }));
}

describe('6.x UTF-8 handling', () => {
    it('6.1.1 empty text message', () =>
        withClient(async (c) => {
            await send(c, textFrame(''));
            await c.expectMessage(OP.TEXT, '');
            await c.closeHandshake(1000);
        }));

    it('6.1.2 text message of 3 empty fragments', () =>
        withClient(async (c) => {
            await send(c, [frame({ opcode: OP.TEXT, fin: false, payload: '' }), contFrame('', { fin: false }), contFrame('', { fin: true })]);
            await c.expectMessage(OP.TEXT, '');
            await c.closeHandshake(1000);
        }));

    it('6.1.3 text message of empty, non-empty, empty fragments', () =>
        withClient(async (c) => {
            await send(c, [frame({ opcode: OP.TEXT, fin: false, payload: '' }), contFrame('middle frame payload', { fin: false }), contFrame('', { fin: true })]);
            await c.expectMessage(OP.TEXT, 'middle frame payload');
            await c.closeHandshake(1000);
        }));

    it('6.2.2 valid text split between two fragments at every possible byte position', () =>
        withClient(async (c) => {
            const payload = Buffer.from('Hello-µ@ßöäüàá-UTF-8!! κόσμε 😀');
            for (let cut = 0; cut <= payload.length; cut++) {
                await send(c, [frame({ opcode: OP.TEXT, fin: false, payload: payload.subarray(0, cut) }), contFrame(payload.subarray(cut))]);
                await c.expectMessage(OP.TEXT, payload, { what: `echo with a cut at byte ${cut}` });
            }
            await c.closeHandshake(1000);
        }));

    VALID_UTF8.forEach(([name, bytes], i) => {
        for (const perByte of [false, true]) {
            it(`6.5.${i + 1}${perByte ? 'b' : 'a'} valid: ${name}${perByte ? ', one fragment per byte' : ''}`, () =>
                withClient(async (c) => {
                    await send(c, textFragments(bytes, perByte), perByte ? 'framewise' : 'joined');
                    await c.expectMessage(OP.TEXT, bytes);
                    await c.closeHandshake(1000);
                }));
        }
    });

    INVALID_UTF8.forEach(([name, bytes], i) => {
        for (const perByte of [false, true]) {
            it(`6.8.${i + 1}${perByte ? 'b' : 'a'} invalid: ${name}${perByte ? ', one fragment per byte' : ''} -> 1007`, () =>
                withClient(async (c) => {
                    // surrounded by valid text, as in a real message
                    const payload = Buffer.concat([Buffer.from('ab'), bytes, Buffer.from('cd')]);
                    await send(c, textFragments(payload, perByte), perByte ? 'framewise' : 'joined');
                    await c.expectFail(1007);
                }));
        }
    });

    it('6.3.1 invalid UTF-8 in a binary message is fine (binary is not text)', () =>
        withClient(async (c) => {
            await send(c, binaryFrame(hex('eda080 fe ff c0af')));
            await c.expectMessage(OP.BINARY, hex('eda080 fe ff c0af'));
            await c.closeHandshake(1000);
        }));

    it('6.4.1 fail fast: invalid code point in the first fragment -> 1007 before the final fragment is sent', () =>
        withClient(async (c) => {
            await send(c, frame({ opcode: OP.TEXT, fin: false, payload: Buffer.concat([hex('ceba e1bdb9 cf83 cebc ceb5'), hex('f4908080')]) }));
            // the message is still open: the server must not wait for its end to judge it
            await c.expectFail(1007, { timeout: ms(3000) });
            await send(c, contFrame('edited', { fin: true }), 'framewise');
        }));

    it('6.4.2 fail fast: a sequence that turns invalid in the second fragment -> 1007 before the third', () =>
        withClient(async (c) => {
            await send(c, frame({ opcode: OP.TEXT, fin: false, payload: Buffer.concat([hex('ceba e1bdb9 cf83 cebc ceb5'), hex('f4')]) }));
            await send(c, contFrame(hex('90'), { fin: false }));
            await c.expectFail(1007, { timeout: ms(3000) });
            await send(c, contFrame(Buffer.concat([hex('8080'), Buffer.from('edited')]), { fin: true }), 'framewise');
        }));

    it('6.4.5 fail fast: a surrogate at the start of a long first fragment -> 1007 before the rest', () =>
        withClient(async (c) => {
            await send(c, frame({ opcode: OP.TEXT, fin: false, payload: Buffer.concat([hex('eda080'), Buffer.alloc(1000, 0x61)]) }));
            await c.expectFail(1007, { timeout: ms(3000) });
        }));

    it('6.6 κόσμε fragmented at every byte boundary, fragments valid only together', () =>
        withClient(async (c) => {
            const bytes = hex('ceba e1bdb9 cf83 cebc ceb5');
            await send(c, textFragments(bytes, true), 'joined');
            await c.expectMessage(OP.TEXT, bytes);
            await c.closeHandshake(1000);
        }));

    it('6.7 a message truncated mid-character at its end -> 1007 (the message boundary counts)', () =>
        withClient(async (c) => {
            await send(c, [frame({ opcode: OP.TEXT, fin: false, payload: Buffer.from('ok') }), contFrame(hex('e282'), { fin: true })]);
            await c.expectFail(1007);
        }));
});

// ---------------------------------------------------------------------------------------
describe('7.x close handling', () => {
    it('7.1.1 text then close: echo, then close 1000 echoed', () =>
        withClient(async (c) => {
            await send(c, textFrame('Hello World!'));
            await c.expectMessage(OP.TEXT, 'Hello World!');
            await c.closeHandshake(1000);
        }));

    it('7.1.2 two close frames: one close back, the second ignored', () =>
        withClient(async (c) => {
            await send(c, [closeFrame(1000), closeFrame(1000)]);
            await c.expectCloseFrame(1000);
            await c.expectEndWithoutFrames();
        }));

    it('7.1.3 close then ping: the ping is ignored (no pong)', () =>
        withClient(async (c) => {
            await send(c, [closeFrame(1000), pingFrame('Hello World!')]);
            await c.expectCloseFrame(1000);
            await c.expectEndWithoutFrames();
        }));

    it('7.1.4 close then text: the text is ignored (no echo)', () =>
        withClient(async (c) => {
            await send(c, [closeFrame(1000), textFrame('Hello World!')]);
            await c.expectCloseFrame(1000);
            await c.expectEndWithoutFrames();
        }));

    it('7.1.5 first fragment, close, final fragment: close echoed, no message', () =>
        withClient(async (c) => {
            await send(c, [frame({ opcode: OP.TEXT, fin: false, payload: 'fragment1' }), closeFrame(1000), contFrame('fragment2', { fin: true })]);
            await c.expectCloseFrame(1000);
            await c.expectEndWithoutFrames();
        }));

    it('7.1.6 a 256 KiB text, then close, then ping: echo, close, no pong', () =>
        withClient(async (c) => {
            const big = Buffer.from(utf8Text(256 * KiB));
            await send(c, [textFrame(big), closeFrame(1000), pingFrame('Hello World!')]);
            await c.expectMessage(OP.TEXT, big);
            await c.expectCloseFrame(1000);
            await c.expectEndWithoutFrames();
        }));

    it('7.1.7 close, then data sent separately after the server answered: nothing more comes back', () =>
        withClient(async (c) => {
            await send(c, closeFrame(1000));
            await c.expectCloseFrame(1000);
            await send(c, [textFrame('too late'), pingFrame('too late')]);
            await c.expectEndWithoutFrames();
        }));

    it('7.3.1 close with an empty payload: answered with an empty close (or 1000)', () =>
        withClient(async (c) => {
            await send(c, frame({ opcode: OP.CLOSE, payload: Buffer.alloc(0) }));
            await c.expectCloseFrame([null, 1000]);
            await c.expectEndWithoutFrames();
        }));

    it('7.3.2 close with a 1-byte payload fails with 1002', () =>
        withClient(async (c) => {
            await send(c, frame({ opcode: OP.CLOSE, payload: Buffer.from([0x03]) }));
            await c.expectFail(1002);
        }));

    it('7.3.3 close 1000 without reason', () =>
        withClient(async (c) => {
            await c.closeHandshake(1000, '');
        }));

    it('7.3.4 close 1000 with a reason', () =>
        withClient(async (c) => {
            await c.closeHandshake(1000, 'Hello World!');
        }));

    it('7.3.5 close 1000 with a 123-byte reason (the largest that fits)', () =>
        withClient(async (c) => {
            await c.closeHandshake(1000, '*'.repeat(123));
        }));

    it('7.3.6 close 1000 with a 124-byte reason (payload 126 bytes) fails with 1002', () =>
        withClient(async (c) => {
            await send(c, closeFrame(1000, '*'.repeat(124)));
            await c.expectFail(1002);
        }));

    it('7.5.1 close reason with invalid UTF-8 fails with 1007', () =>
        withClient(async (c) => {
            await send(c, closeFrame(1000, Buffer.concat([hex('ceba e1bdb9 cf83 cebc ceb5'), hex('eda080'), Buffer.from('edited')])));
            await c.expectFail(1007);
        }));

    it('7.5.2 close reason cut in the middle of a character fails with 1007', () =>
        withClient(async (c) => {
            await send(c, closeFrame(1000, hex('ceba e1bd')));
            await c.expectFail(1007);
        }));

    // 1012-1014 were registered with IANA after RFC 6455; the codec accepts them too.
    const validCodes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
    validCodes.forEach((code, i) => {
        it(`7.7.${i + 1} valid close code ${code} is echoed`, () =>
            withClient(async (c) => {
                await c.closeHandshake(code, 'echo my code', { expectCode: code });
            }));
    });

    const invalidCodes = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];
    invalidCodes.forEach((code, i) => {
        it(`7.9.${i + 1} invalid close code ${code} fails with 1002`, () =>
            withClient(async (c) => {
                await send(c, closeFrame(code, 'invalid code'));
                await c.expectFail(1002);
            }));
    });
});

// ---------------------------------------------------------------------------------------
describe('9.x big messages (bounded)', () => {
    /** Valid UTF-8 of `size` bytes (a multiple of 64 KiB): one block repeated. */
    const bigText = (size) => Buffer.alloc(size, Buffer.from(utf8Text(64 * KiB)));

    it('9.1.1 a 1 MiB text message', { timeout: ms(60000) }, () =>
        withClient(async (c) => {
            const payload = bigText(MiB);
            await send(c, textFrame(payload));
            await c.expectMessage(OP.TEXT, payload, { timeout: ms(10000) });
            await c.closeHandshake(1000);
        }));

    it('9.1.2 an 8 MiB text message', { timeout: ms(60000) }, () =>
        withClient(async (c) => {
            const payload = bigText(8 * MiB);
            await send(c, textFrame(payload));
            await c.expectMessage(OP.TEXT, payload, { timeout: ms(20000) });
            await c.closeHandshake(1000);
        }));

    it('9.1.3 a 1 MiB text message sent in 1 KiB TCP chunks', { timeout: ms(60000) }, () =>
        withClient(async (c) => {
            const payload = bigText(MiB);
            await send(c, textFrame(payload), KiB);
            await c.expectMessage(OP.TEXT, payload, { timeout: ms(20000) });
            await c.closeHandshake(1000);
        }));

    it('9.2.1 a 4 MiB binary message in 64 KiB fragments', { timeout: ms(60000) }, () =>
        withClient(async (c) => {
            const payload = patternBytes(4 * MiB, 92);
            const frames = [];
            for (let at = 0; at < payload.length; at += 64 * KiB)
                frames.push(frame({ opcode: at === 0 ? OP.BINARY : OP.CONTINUATION, fin: at + 64 * KiB >= payload.length, payload: payload.subarray(at, at + 64 * KiB) }));
            await send(c, frames, 'framewise');
            await c.expectMessage(OP.BINARY, payload, { timeout: ms(20000) });
            await c.closeHandshake(1000);
        }));

    it('9.3.1 a 4 MiB text message in 64 KiB fragments cut inside characters', { timeout: ms(60000) }, () =>
        withClient(async (c) => {
            const payload = bigText(4 * MiB);
            const step = 64 * KiB + 1; // never on a character boundary for long
            const frames = [];
            for (let at = 0; at < payload.length; at += step)
                frames.push(frame({ opcode: at === 0 ? OP.TEXT : OP.CONTINUATION, fin: at + step >= payload.length, payload: payload.subarray(at, at + step) }));
            await send(c, frames, 'framewise');
            await c.expectMessage(OP.TEXT, payload, { timeout: ms(20000) });
            await c.closeHandshake(1000);
        }));

    it('9.4.1 100 binary messages of 64 KiB pipelined, echoed in order', { timeout: ms(60000) }, () =>
        withClient(async (c) => {
            const payloads = Array.from({ length: 100 }, (_, i) => patternBytes(64 * KiB, i + 1));
            await send(c, payloads.map((p) => binaryFrame(p)));
            for (const p of payloads) await c.expectMessage(OP.BINARY, p, { timeout: ms(10000) });
            await c.closeHandshake(1000);
        }));
});
