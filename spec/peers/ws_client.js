// An independent client peer for the interop specs: Node's `ws` package.
//   node spec/peers/ws_client.js URL [PROTOCOL...]
// Connects offering the given subprotocols, then, each step waiting for its echo:
// text "hello", binary bytes 0..255, a 16 MiB binary message (byte i is i % 251), the
// text "Hello, world" sent as three frames ("Hel", "lo, ", "world"), a ping "p1" (waits
// for its pong), and close(4000, "bye"), all within PEER_TIMEOUT seconds (env, default
// 120). Prints one JSON line per event it receives and a last line
// {"event":"summary", ...}; exits 0 when every step passed, 1 otherwise.
// PEER_DEFLATE (env): ws's perMessageDeflate options as JSON (`true`: its defaults).
// Then the script also echoes messages of many sizes before the ping, and the summary
// says which extension parameters were agreed.
'use strict';
const path = require('path');
const crypto = require('crypto');
const WebSocket = require(path.join(__dirname, 'node_modules', 'ws'));
const { format } = require(path.join(__dirname, 'node_modules', 'ws', 'lib', 'extension.js'));
const sizedMessages = require(path.join(__dirname, 'sized_messages.js'));

const [url, ...protocols] = process.argv.slice(2);
const BIG = 16 * 1024 * 1024;

function print(obj) { console.log(JSON.stringify(obj)); }

function bigMessage() {
  const b = Buffer.alloc(BIG);
  for (let i = 0; i < BIG; i++) b[i] = i % 251;
  return b;
}

const summary = { event: 'summary' };
const deflate = process.env.PEER_DEFLATE ? JSON.parse(process.env.PEER_DEFLATE) : false;
const ws = new WebSocket(url, protocols, { maxPayload: BIG + 64 * 1024, perMessageDeflate: deflate });

// The agreed Sec-WebSocket-Extensions value ("" for none): ws.extensions has only names.
function agreedExtensions(socket) {
  const pmd = socket._extensions['permessage-deflate'];
  return pmd ? format({ 'permessage-deflate': pmd.params }) : '';
}

// Received messages are queued; each step takes the next one (or fails once closed).
const inbox = [];
let waiter = null;
let isClosed = false;
function nextMessage() {
  if (inbox.length) return Promise.resolve(inbox.shift());
  if (isClosed) return Promise.reject(new Error('closed before the script ended'));
  return new Promise((resolve, reject) => { waiter = { resolve, reject }; });
}

ws.on('message', (data, isBinary) => {
  const ev = { event: 'message', binary: isBinary, length: data.length };
  if (data.length <= 256) ev[isBinary ? 'hex' : 'text'] = isBinary ? data.toString('hex') : data.toString('utf8');
  else ev.sha256 = crypto.createHash('sha256').update(data).digest('hex');
  print(ev);
  const msg = { data, isBinary };
  if (waiter) { const w = waiter; waiter = null; w.resolve(msg); } else inbox.push(msg);
});
ws.on('pong', (data) => print({ event: 'pong', data: data.toString('latin1') }));
ws.on('error', (err) => { print({ event: 'error', message: err.message }); summary.error = err.message; });

// The close code and reason the other side sent are in the summary however we end.
const closed = new Promise((resolve) => {
  ws.on('close', (code, reason) => {
    reason = reason.toString('utf8');
    print({ event: 'close', code, reason });
    summary.close_code = code;
    summary.close_reason = reason;
    isClosed = true;
    if (waiter) { const w = waiter; waiter = null; w.reject(new Error('closed before the script ended')); }
    resolve({ code, reason });
  });
});

async function run() {
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('close', reject); });
  summary.protocol = ws.protocol;
  summary.extensions = agreedExtensions(ws);
  print({ event: 'open', protocol: ws.protocol, extensions: summary.extensions });

  ws.send('hello');
  let m = await nextMessage();
  summary.text = !m.isBinary && m.data.toString('utf8') === 'hello';

  const bytes = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) bytes[i] = i;
  ws.send(bytes, { binary: true });
  m = await nextMessage();
  summary.binary = m.isBinary && bytes.equals(m.data);

  const big = bigMessage();
  ws.send(big, { binary: true });
  m = await nextMessage();
  summary.big = m.isBinary && big.equals(m.data);
  summary.big_length = m.data.length;
  summary.big_sha256 = crypto.createHash('sha256').update(m.data).digest('hex');

  ws.send('Hel', { fin: false });
  ws.send('lo, ', { fin: false });
  ws.send('world', { fin: true });
  m = await nextMessage();
  summary.fragmented = !m.isBinary && m.data.toString('utf8') === 'Hello, world';

  if (deflate) {
    summary.sizes = true;
    for (const [data, isBinary] of sizedMessages()) {
      ws.send(data, { binary: isBinary });
      m = await nextMessage();
      if (m.isBinary !== isBinary || !data.equals(m.data)) {
        summary.sizes = false;
        summary.error = `echo of ${data.length} bytes (binary ${isBinary}) differs`;
      }
    }
  }

  const pong = new Promise((resolve, reject) => {
    ws.once('pong', (data) => resolve(data.toString('latin1')));
    closed.then(() => reject(new Error('closed before the pong')));
  });
  ws.ping('p1');
  summary.pong = (await pong) === 'p1';

  ws.close(4000, 'bye');
  const c = await closed;
  summary.ok = summary.text && summary.binary && summary.big && summary.fragmented &&
    summary.pong && c.code === 4000 && c.reason === 'bye' && !summary.error &&
    (!deflate || summary.sizes);
}

const guard = setTimeout(() => {
  summary.error = summary.error || 'timed out';
  summary.ok = false;
  print(summary);
  process.exit(1);
}, 1000 * Number(process.env.PEER_TIMEOUT || 120));

run().then(() => {
  clearTimeout(guard);
  print(summary);
  process.exit(summary.ok ? 0 : 1);
}, (err) => {
  clearTimeout(guard);
  summary.error = summary.error || String(err && err.message || err);
  summary.ok = false;
  print(summary);
  process.exit(1);
});
