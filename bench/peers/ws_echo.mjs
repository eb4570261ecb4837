// Peer echo server for the benchmarks: Node.js with the `ws` npm package (bench/package.json).
//
// One Node process (its event loop is one thread); permessage-deflate off; every message is
// echoed with its type (text stays text, binary stays binary). ws sets TCP_NODELAY itself.
// The optional native add-ons (bufferutil, utf-8-validate) are not installed: ws's default.
//
// usage: node bench/peers/ws_echo.mjs [--host 127.0.0.1] [--port] PORT   (PORT 0: a free port)
// Prints "listening on 127.0.0.1:PORT" once accepting; exits cleanly on SIGTERM/SIGINT.
import { WebSocketServer } from 'ws';

let host = '127.0.0.1';
let port = -1;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--host' && i + 1 < args.length) host = args[++i];
  else if (args[i] === '--port' && i + 1 < args.length) port = Number(args[++i]);
  else port = Number(args[i]);
}
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('usage: node ws_echo.mjs [--host 127.0.0.1] [--port] PORT');
  process.exit(1);
}

const wss = new WebSocketServer({ host, port, perMessageDeflate: false, clientTracking: true, backlog: 4096 });

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});

wss.on('listening', () => {
  process.stdout.write(`listening on ${host}:${wss.address().port}\n`);
});

wss.on('error', (err) => {
  console.error(`ws_echo: ${err.message}`);
  process.exit(1);
});

const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
