// The topics test's reference (bench/run.sh, test j): Node's ws has no topics, so this
// is the usual way to make them, a Map from topic to a Set of sockets, and a publish
// iterates the Set and sends to each open socket. Same requests and answers as
// bench/topics_server.lua:
//   node bench/topics_server.js [port]
// GET /subscribe, GET /publish?n=P&size=S, GET /count.
'use strict';
const http = require('http');
const path = require('path');
const { WebSocketServer, WebSocket } =
  require(path.join(__dirname, '..', 'spec', 'peers', 'node_modules', 'ws'));

const port = Number(process.argv[2] || 0);
const topics = new Map();
let open = 0;

function subscribe(ws, topic) {
  let set = topics.get(topic);
  if (!set) topics.set(topic, (set = new Set()));
  set.add(ws);
}

function publish(topic, data) {
  const set = topics.get(topic);
  let delivered = 0, skipped = 0;
  if (!set) return [0, 0];
  for (const ws of set) {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(data);
      delivered++;
    } else {
      skipped++;
    }
  }
  return [delivered, skipped];
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  if (url.pathname === '/subscribe') {
    for (const ws of wss.clients) subscribe(ws, 'bench');
    res.end(`count=${open} subscribed=${topics.get('bench') ? topics.get('bench').size : 0}\n`);
  } else if (url.pathname === '/publish') {
    const p = Number(url.searchParams.get('n') || 100);
    const payload = 'p'.repeat(Number(url.searchParams.get('size') || 64));
    let delivered = 0, skipped = 0;
    const times = [];
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < p; i++) {
      const a = process.hrtime.bigint();
      const [d, k] = publish('bench', payload);
      times.push(Number(process.hrtime.bigint() - a) / 1e3);
      delivered += d;
      skipped += k;
    }
    const us = Number(process.hrtime.bigint() - t0) / 1e3 / p;
    times.sort((x, y) => x - y);
    res.end(`count=${open} publishes=${p} delivered=${delivered} skipped=${skipped} ` +
      `us_per_publish=${us.toFixed(1)} p50_us=${times[Math.ceil(p / 2) - 1].toFixed(1)} ` +
      `min_us=${times[0].toFixed(1)} max_us=${times[p - 1].toFixed(1)} t0_ns=${t0}\n`);
  } else if (url.pathname === '/count') {
    res.end(`count=${open}\n`);
  } else {
    res.end('ws topics server: GET /subscribe, /publish?n=P&size=S, /count\n');
  }
});

const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  open++;
  ws.on('close', () => {
    open--;
    for (const set of topics.values()) set.delete(ws);
  });
  ws.on('error', () => {});
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
