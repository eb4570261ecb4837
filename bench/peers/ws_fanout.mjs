// Fan-out peer for bench/fanout.cpp: Node.js with `ws`. Clients on /pub publish; every message
// a publisher sends goes to every other client (the subscribers), as ws' own broadcast
// example does (client.send for each). One Node process; permessage-deflate off.
//
// usage: node bench/peers/ws_fanout.mjs [--host 127.0.0.1] [--port] PORT   (0: a free port)
// Prints "listening on 127.0.0.1:PORT"; exits cleanly on SIGTERM/SIGINT.
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
  console.error('usage: node ws_fanout.mjs [--host 127.0.0.1] [--port] PORT');
  process.exit(1);
}

const wss = new WebSocketServer({ host, port, perMessageDeflate: false, clientTracking: true, backlog: 4096 });
const subscribers = new Set();

wss.on('connection', (ws, req) => {
  ws.on('error', () => {});
  if (req.url === '/pub') {
    ws.on('message', (data, isBinary) => {
      for (const sub of subscribers) sub.send(data, { binary: isBinary });
    });
  } else {
    subscribers.add(ws);
    ws.on('close', () => subscribers.delete(ws));
  }
});

wss.on('listening', () => process.stdout.write(`listening on ${host}:${wss.address().port}\n`));
wss.on('error', (err) => {
  console.error(`ws_fanout: ${err.message}`);
  process.exit(1);
});
const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
