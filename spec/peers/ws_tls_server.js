// Node's `ws` over wss:// for the TLS interop specs: an echo server on Node's https.
//   node spec/peers/ws_tls_server.js CERT KEY [CA]
// Listens on 127.0.0.1, port 0, and prints "listening on PORT". With CA, asks clients
// for a certificate from that CA and prints its subject's CN on connection. Echoes text
// as text and binary as binary; the text "close-me CODE REASON" closes with that code.
'use strict';
const fs = require('fs');
const https = require('https');
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, 'node_modules', 'ws'));

const [cert, key, ca] = process.argv.slice(2);
const server = https.createServer({
  cert: fs.readFileSync(cert),
  key: fs.readFileSync(key),
  ca: ca ? fs.readFileSync(ca) : undefined,
  requestCert: !!ca,
  rejectUnauthorized: !!ca,
});
const wss = new WebSocketServer({ server, maxPayload: 17 * 1024 * 1024, perMessageDeflate: false });

function print(obj) { console.log(JSON.stringify(obj)); }

wss.on('connection', (ws, req) => {
  const peer = req.socket.getPeerCertificate();
  print({ event: 'connection', alpn: req.socket.alpnProtocol || null,
          client_cn: peer && peer.subject ? peer.subject.CN : null });
  ws.on('message', (data, isBinary) => {
    const m = !isBinary && /^close-me (\d+) ([\s\S]*)$/.exec(data.toString('utf8'));
    if (m) ws.close(Number(m[1]), m[2]);
    else ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => print({ event: 'close', code, reason: reason.toString('utf8') }));
  ws.on('error', (err) => print({ event: 'error', message: err.message }));
});

server.listen(0, '127.0.0.1', () => console.log(`listening on ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
