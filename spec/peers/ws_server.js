// An independent echo peer for the interop specs: Node's `ws` package as a server.
//   node spec/peers/ws_server.js
// Listens on 127.0.0.1, port 0, and prints "listening on PORT".
// Subprotocol rule: "b" when the client offers it, otherwise the first one offered
// (so an offer of "a, b" gets "b", which a server that took the first would not pick).
// Echoes text as text and binary as binary. Two text commands:
//   "close-me CODE REASON"  closes with that code and reason;
//   "fragments"             sends "Hello, world" as three frames: "Hel", "lo, ", "world".
// PEER_DEFLATE (env): ws's perMessageDeflate options as JSON (`true`: its defaults); the
// connection event then says which extension parameters were agreed.
'use strict';
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, 'node_modules', 'ws'));
const { format } = require(path.join(__dirname, 'node_modules', 'ws', 'lib', 'extension.js'));

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 16 * 1024 * 1024 + 64 * 1024,   // the 16 MiB message, plus slack
  perMessageDeflate: process.env.PEER_DEFLATE ? JSON.parse(process.env.PEER_DEFLATE) : false,
  handleProtocols(offered) {
    if (offered.has('b')) return 'b';
    for (const p of offered) return p;
    return false;
  },
});

wss.on('listening', () => {
  console.log(`listening on ${wss.address().port}`);
});

wss.on('connection', (ws, req) => {
  const pmd = ws._extensions['permessage-deflate'];
  const extensions = pmd ? format({ 'permessage-deflate': pmd.params }) : '';
  console.log(JSON.stringify({ event: 'connection', protocol: ws.protocol, extensions }));
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString('utf8');
      const m = /^close-me (\d+) ([\s\S]*)$/.exec(text);
      if (m) {
        ws.close(Number(m[1]), m[2]);
        return;
      }
      if (text === 'fragments') {
        ws.send('Hel', { fin: false });
        ws.send('lo, ', { fin: false });
        ws.send('world', { fin: true });
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('ping', (data) => {
    console.log(JSON.stringify({ event: 'ping', data: data.toString('latin1') }));
  });
  ws.on('close', (code, reason) => {
    console.log(JSON.stringify({ event: 'close', code, reason: reason.toString('utf8') }));
  });
  ws.on('error', (err) => {
    console.log(JSON.stringify({ event: 'error', message: err.message }));
  });
});

// The spec kills this process when the test ends; SIGTERM exits at once.
process.on('SIGTERM', () => process.exit(0));
