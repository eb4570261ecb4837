// A deliberately awkward WebSocket echo server, written on raw TCP, for testing the loadgen
// itself (bench/selftest.sh). Loopback only. Modes:
//
//   dribble    echo every message as one frame, written a few bytes at a time with a pause
//              between writes, so frame headers and payloads arrive split across reads
//   fragment   echo every message as three frames (first + 2 continuations) with a ping
//              between the fragments; checks that each pong carries the ping's payload
//   coalesce   collect echoes and write them in big batches (many frames per read)
//   corrupt    flip one payload byte of every 50th message          (loadgen must fail)
//   drop       drop every 50th message                              (loadgen must fail)
//   close      send Close 1001 after 100 messages on a connection   (loadgen must fail)
//   badaccept  answer the handshake with a wrong Sec-WebSocket-Accept (loadgen must fail)
//   binaryflip echo text messages as binary frames                   (loadgen must fail)
//
// usage: node faulty_echo.mjs MODE   -> prints "listening on 127.0.0.1:PORT"; SIGTERM prints
// "pongs ok=N bad=M" and exits.
import net from 'node:net';
import crypto from 'node:crypto';

const mode = process.argv[2] || 'dribble';
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
let pongsOk = 0;
let pongsBad = 0;

function frame(opcode, payload, fin = true) {
  const n = payload.length;
  let head;
  if (n < 126) head = Buffer.from([(fin ? 0x80 : 0) | opcode, n]);
  else if (n < 65536) { head = Buffer.alloc(4); head[0] = (fin ? 0x80 : 0) | opcode; head[1] = 126; head.writeUInt16BE(n, 2); }
  else { head = Buffer.alloc(10); head[0] = (fin ? 0x80 : 0) | opcode; head[1] = 127; head.writeBigUInt64BE(BigInt(n), 2); }
  return Buffer.concat([head, payload]);
}

const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  let buf = Buffer.alloc(0);
  let open = false;
  let count = 0;
  let pingSeq = 0;
  const pendingPings = new Map();
  // Writes go through one queue so that dribbling never reorders bytes.
  const queue = [];
  let draining = false;
  let closing = false;
  function out(data) {
    if (mode !== 'dribble') { sock.write(data); return; }
    queue.push(data);
    if (!draining) drain();
  }
  function drain() {
    draining = true;
    if (queue.length === 0) {
      draining = false;
      if (closing) sock.end();
      return;
    }
    const data = queue.shift();
    const steps = [1, 1, 2, 3, 5, 100, 4096];
    const step = steps[Math.floor(Math.random() * steps.length)];
    const piece = data.subarray(0, step);
    if (data.length > step) queue.unshift(data.subarray(step));
    sock.write(piece);
    if (Math.random() < 0.01) setTimeout(drain, 1);
    else setImmediate(drain);
  }
  let batch = [];
  let batchTimer = null;

  function echo(opcode, payload) {
    count++;
    if (mode === 'drop' && count % 50 === 0) return;
    if (mode === 'close' && count === 100) {
      const body = Buffer.from([0x03, 0xe9]);
      sock.write(frame(0x8, body));
      return;
    }
    if (mode === 'corrupt' && count % 50 === 0) { payload = Buffer.from(payload); payload[payload.length - 1] ^= 1; }
    if (mode === 'binaryflip' && opcode === 1) opcode = 2;
    if (mode === 'fragment' && payload.length >= 3) {
      const a = Math.floor(payload.length / 3);
      const b = Math.floor((2 * payload.length) / 3);
      const pingBody = Buffer.from(`ping-${++pingSeq}`);
      pendingPings.set(pingBody.toString(), true);
      out(Buffer.concat([
        frame(opcode, payload.subarray(0, a), false),
        frame(0x9, pingBody),
        frame(0x0, payload.subarray(a, b), false),
        frame(0x0, payload.subarray(b), true),
      ]));
      return;
    }
    if (mode === 'coalesce') {
      batch.push(frame(opcode, payload));
      if (!batchTimer) batchTimer = setTimeout(() => { batchTimer = null; out(Buffer.concat(batch)); batch = []; }, 2);
      return;
    }
    out(frame(opcode, payload));
  }

  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (!open) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString();
      buf = buf.subarray(end + 4);
      const m = /sec-websocket-key:\s*(\S+)/i.exec(head);
      if (!m) { sock.destroy(); return; }
      let accept = crypto.createHash('sha1').update(m[1] + GUID).digest('base64');
      if (mode === 'badaccept') accept = crypto.createHash('sha1').update(m[1]).digest('base64');
      sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      open = true;
    }
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let h = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); h = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); h = 10; }
      if (!(buf[1] & 0x80)) { console.error('faulty_echo: unmasked client frame'); sock.destroy(); return; }
      if (buf.length < h + 4 + len) return;
      const mask = buf.subarray(h, h + 4);
      const payload = Buffer.alloc(len);
      for (let i = 0; i < len; i++) payload[i] = buf[h + 4 + i] ^ mask[i & 3];
      buf = buf.subarray(h + 4 + len);
      if (op === 0x1 || op === 0x2) echo(op, payload);
      else if (op === 0x8) {
        out(frame(0x8, payload.subarray(0, 2)));
        closing = true;
        if (!draining) sock.end();
        return;
      }
      else if (op === 0x9) out(frame(0xA, payload));
      else if (op === 0xA) {
        if (pendingPings.delete(payload.toString())) pongsOk++; else pongsBad++;
      }
    }
  });
  sock.on('error', () => {});
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening on 127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => {
  process.stdout.write(`pongs ok=${pongsOk} bad=${pongsBad}\n`);
  process.exit(0);
});
