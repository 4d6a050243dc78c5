// The benchmarks' reference peer (bench/run.sh): Node's `ws` package as a plain echo
// server, the counterpart of examples/echo_server.lua.
//   node spec/peers/ws_echo_server.js [port]    (port 0, the default: any free port)
//   node spec/peers/ws_echo_server.js PORT --tls CERT KEY    the same on https (wss://)
//   node spec/peers/ws_echo_server.js PORT --deflate     with permessage-deflate
// Prints "listening on PORT". Echoes text as text and binary as binary. Without --deflate
// there is no compression; with it, ws's defaults (context takeover both ways, windows
// of 15 bits, zlib level 6 and memLevel 8, as luaws's) except for the threshold, set to
// 256 bytes here and in examples/echo_server.lua, so that both servers compress every
// message of the benchmark (ws's default, 1024, is one the 1 KiB message only just meets). GET /broadcast sends "broadcast" to every open socket and answers
// "count=N ms=T", as bench/broadcast_server.lua does, for the broadcast test.
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');
const { WebSocketServer, WebSocket } = require(path.join(__dirname, 'node_modules', 'ws'));

const port = Number(process.argv[2] || 0);
const flag = process.argv.indexOf('--tls');
const tls = flag > 0
  ? { cert: fs.readFileSync(process.argv[flag + 1]), key: fs.readFileSync(process.argv[flag + 2]) }
  : null;
const perMessageDeflate = process.argv.includes('--deflate') ? { threshold: 256 } : false;

const onrequest = (req, res) => {
  if (req.url === '/broadcast') {
    const t0 = process.hrtime.bigint();
    let count = 0;
    for (const ws of wss.clients) {
      if (ws.readyState === WebSocket.OPEN) {
        ws.send('broadcast');
        count++;
      }
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`count=${count} ms=${ms.toFixed(3)}\n`);
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('ws echo server: connect with a WebSocket client\n');
};
const server = tls ? https.createServer(tls, onrequest) : http.createServer(onrequest);

const wss = new WebSocketServer({ server, perMessageDeflate });

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});   // a client that vanishes mid-run is not a crash
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
