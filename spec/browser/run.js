// make browser: the chat example (examples/chat/) in headless Chromium, driven by
// puppeteer-core. Starts the chat server twice (ws:// and, with the test CA's
// certificate, https:// and wss://), opens pages that chat through it, and prints TAP
// ("ok N - ..." / "not ok N - ...") and a last line "# N passed, N failed".
//   LUA=lua5.4 BUILD=build/lua5.4 node spec/browser/run.js
// CHROMIUM (env) names the browser, /usr/bin/chromium by default. Where it or
// puppeteer-core is missing, that is one failure, said plainly. Every wait is bounded;
// all of it runs on 127.0.0.1, on ports the servers choose.
'use strict';
const path = require('path');
const fs = require('fs');
const os = require('os');
const { spawn, execFileSync } = require('child_process');

const ROOT = path.join(__dirname, '..', '..');
const LUA = process.env.LUA || 'lua5.4';
const BUILD = process.env.BUILD || path.join('build', LUA);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 15000;     // one case
const ALL_MS = 240000;     // the whole run

let number = 0, passed = 0, failed = 0;
function ok(name) { number++; passed++; console.log(`ok ${number} - ${name}`); }
function notOk(name, err) {
  number++; failed++;
  console.log(`not ok ${number} - ${name}`);
  for (const line of String(err && err.stack || err).split('\n')) console.log(`  # ${line}`);
}
function finish() {
  console.log(`1..${number}`);
  console.log(`# ${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
}

function withTimeout(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000}s: ${what}`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

// ---- what the run needs ----------------------------------------------------------

const cleanups = [];   // run in reverse at the end, whatever happened

function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// The chat server as a child process; resolves with { port, output() } once it
// prints its port.
function chatServer(extraArgs) {
  const child = spawn(LUA, ['examples/chat/server.lua', '0', ...extraArgs], {
    cwd: ROOT,
    env: { ...process.env, LUA_PATH: 'lua/?.lua;lua/?/init.lua;;', LUA_CPATH: `${BUILD}/?.so;;` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '', err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  cleanups.push(() => { if (child.exitCode === null) child.kill('SIGTERM'); });
  const server = { child, stderr: () => err, output: () => out + err };
  return withTimeout(new Promise((resolve, reject) => {
    const look = () => {
      const m = out.match(/listening on (\d+)/);
      if (m) { server.port = Number(m[1]); resolve(server); }
    };
    child.stdout.on('data', look);
    child.on('exit', (code) => reject(new Error(`chat server exited (${code}):\n${out}${err}`)));
    child.on('error', reject);
  }), 10000, 'the chat server to print its port');
}

// A temporary HOME whose NSS database (where Chromium on Linux looks for locally
// trusted CAs) trusts the test CA for TLS servers.
function homeTrusting(caFile) {
  const home = tempDir('luaws-browser-home-');
  const db = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(db, { recursive: true });
  execFileSync('certutil', ['-N', '-d', `sql:${db}`, '--empty-password'], { timeout: 10000 });
  execFileSync('certutil', ['-A', '-d', `sql:${db}`, '-n', 'luaws test CA', '-t', 'C,,', '-i', caFile],
    { timeout: 10000 });
  return home;
}

async function launch(puppeteer, home) {
  const args = [];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');   // root has none
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,   // puppeteer passes --headless=new
    args,
    env: { ...process.env, HOME: home },
    timeout: 30000,
    protocolTimeout: 30000,
  });
  cleanups.push(() => browser.process() && browser.process().kill('SIGKILL'));
  return browser;
}

// ---- pages -----------------------------------------------------------------------

// Opens the chat page at url in a new page; resolves once its socket is open.
async function chatPage(browser, url) {
  const page = await browser.newPage();
  const handshakes = [];
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => handshakes.push({ request: e.request.headers }));
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
    const h = handshakes[handshakes.length - 1];
    if (h) h.response = e.response;
  });
  page.handshakes = handshakes;
  page.response = await page.goto(url, { timeout: 10000 });
  await waitFor(page, () => chat.events.some((e) => e.type !== 'message'), [], 'the socket to open');
  const first = await page.evaluate(() => chat.events.find((e) => e.type !== 'message'));
  if (first.type !== 'open') throw new Error(`socket did not open: ${JSON.stringify(first)}`);
  return page;
}

// Waits until fn(...args) is true in the page; on timeout, says what the page saw.
async function waitFor(page, fn, args, what, ms = 10000) {
  try {
    await page.waitForFunction(fn, { timeout: ms, polling: 50 }, ...args);
  } catch (e) {
    const seen = await page.evaluate(() => JSON.stringify((window.chat || window.watch || {}).events,
      (k, v) => (v instanceof ArrayBuffer ? `<ArrayBuffer ${v.byteLength}>` : v)))
      .catch(() => '(page gone)');
    throw new Error(`waiting for ${what}: ${e.message}\n  the page saw: ${String(seen).slice(0, 2000)}`);
  }
}

const hasMessage = (text) => chat.events.some((e) => e.type === 'message' && e.data === text);
const closeEvent = () => chat.events.find((e) => e.type === 'close');

function assertEqual(expected, actual, what) {
  const a = JSON.stringify(actual), b = JSON.stringify(expected);
  if (a !== b) throw new Error(`${what}: expected ${b}, got ${a}`);
}

// ---- the cases -------------------------------------------------------------------

async function cases(puppeteer) {
  const certs = tempDir('luaws-browser-certs-');
  execFileSync('sh', ['scripts/make_certs.sh', certs], { cwd: ROOT, stdio: 'ignore', timeout: 30000 });
  const plain = await chatServer([]);
  const secure = await chatServer(['--tls', path.join(certs, 'server.pem'), path.join(certs, 'server.key')]);
  const base = `http://127.0.0.1:${plain.port}`;
  const browser = await launch(puppeteer, homeTrusting(path.join(certs, 'ca.pem')));
  let alice, bob;

  const run = async (name, fn) => {
    try {
      await withTimeout(fn(), STEP_MS, name);
      ok(name);
    } catch (e) {
      notOk(name, e);
    }
  };

  await run('GET / serves the chat page (server.onrequest)', async () => {
    alice = await chatPage(browser, `${base}/`);
    assertEqual(200, alice.response.status(), 'status');
    assertEqual('text/html; charset=utf-8', alice.response.headers()['content-type'], 'Content-Type');
    assertEqual('luaws chat', await alice.title(), 'title');
  });

  await run('a second page joins; both hear of it', async () => {
    bob = await chatPage(browser, `${base}/`);
    for (const p of [alice, bob]) {
      await waitFor(p, hasMessage, ['* someone joined (2 here)'], 'the join notice');
    }
  });

  await run('permessage-deflate as Chromium offers it: agreed, ws.extensions says so', async () => {
    for (const p of [alice, bob]) {
      const ext = await p.evaluate(() => chat.ws.extensions);
      if (!/^permessage-deflate\b/.test(ext)) throw new Error(`ws.extensions is "${ext}"`);
      const h = p.handshakes[0];
      const offer = h && h.request['Sec-WebSocket-Extensions'];
      if (!/permessage-deflate/.test(offer || '')) throw new Error(`Chromium offered "${offer}"`);
      const answer = h.response && h.response.headers['Sec-WebSocket-Extensions'];
      assertEqual(ext, answer, "the server's answer");
    }
  });

  await run('text typed into one page reaches both, UTF-8 intact', async () => {
    const line = 'hello ¡olé! 你好 🦊';
    await alice.bringToFront();   // input goes to the page in front
    await alice.$eval('#name', (el) => { el.value = 'alice'; });
    await alice.type('#text', line);
    await alice.click('#say button');
    for (const p of [alice, bob]) await waitFor(p, hasMessage, [`alice: ${line}`], 'the message');
    const shown = await bob.$$eval('#log li', (lis) => lis.map((li) => li.textContent));
    if (!shown.includes(`alice: ${line}`)) throw new Error(`bob's page shows ${JSON.stringify(shown)}`);
  });

  await run('binary ArrayBuffers (empty, 256 byte values, 300 KB) arrive byte for byte', async () => {
    await alice.evaluate(() => {
      chat.ws.send(new ArrayBuffer(0));
      const all = new Uint8Array(256).map((_, i) => i);
      chat.ws.send(all.buffer);
      const big = new Uint8Array(300 * 1024).map((_, i) => (i * 7919) % 251);
      chat.ws.send(big.buffer);
    });
    await waitFor(bob, () => chat.events.filter((e) => e.data instanceof ArrayBuffer).length >= 3, [],
      'three binary messages');
    const check = await bob.evaluate(() => {
      const bins = chat.events.filter((e) => e.data instanceof ArrayBuffer).map((e) => new Uint8Array(e.data));
      const same = (b, f) => b.every((x, i) => x === f(i));
      return [bins[0].length, bins[1].length, same(bins[1], (i) => i),
              bins[2].length, same(bins[2], (i) => (i * 7919) % 251)];
    });
    assertEqual([0, 256, true, 300 * 1024, true], check, 'lengths and bytes');
  });

  await run('a 200 KB compressible text passes through deflate both ways intact', async () => {
    const n = await bob.evaluate(() => {
      const text = 'bob: ' + 'the quick brown fox jumps over the lazy dog; '.repeat(4600) + 'end';
      chat.ws.send(text);
      return text.length;
    });
    await waitFor(alice, (len) => chat.events.some((e) => typeof e.data === 'string' &&
      e.data.length === len && e.data.startsWith('bob: the quick') && e.data.endsWith('dog; end')),
    [n], 'the long text');
  });

  // A page of its own joins, does action(arg), and is closed; its close event.
  const closeAfter = async (action, arg) => {
    const page = await chatPage(browser, `${base}/`);
    await page.evaluate(action, arg);
    await waitFor(page, closeEvent, [], 'onclose');
    const event = await page.evaluate(closeEvent);
    await page.close();
    return event;
  };

  await run('the page closes with 4001 "page says bye": clean, and the server saw code and reason', async () => {
    assertEqual({ type: 'close', code: 4001, reason: 'page says bye', wasClean: true },
      await closeAfter(() => chat.ws.close(4001, 'page says bye')), 'the close event');
    await waitFor(alice, hasMessage, ['* someone left (4001 page says bye)'], 'the leave notice');
  });

  await run('the server closes with 4000 and the reason the page asked for (/quit)', async () => {
    assertEqual({ type: 'close', code: 4000, reason: 'see you later', wasClean: true },
      await closeAfter(() => chat.ws.send('/quit see you later')), 'the close event');
    await waitFor(bob, hasMessage, ['* someone left (4000 see you later)'], 'the leave notice');
  });

  await run('a message past maxLength (1 MiB, inflated) closes that page with 1009', async () => {
    // luaws sends a failure's close code without a reason
    assertEqual({ type: 'close', code: 1009, reason: '', wasClean: true },
      await closeAfter((n) => chat.ws.send('x'.repeat(n)), 1024 * 1024 + 1), 'the close event');
    await waitFor(alice, hasMessage, ['* someone left (1009)'], 'the leave notice');
  });

  await run('an upgrade the server refuses (404) is an error and close 1006 in the page', async () => {
    const code = await alice.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      let error = false;
      ws.onerror = () => { error = true; };
      ws.onclose = (e) => resolve({ error, code: e.code, wasClean: e.wasClean });
    }), `ws://127.0.0.1:${plain.port}/elsewhere`);
    assertEqual({ error: true, code: 1006, wasClean: false }, code, 'events');
  });

  await run('EventSource: /watch follows the room as server-sent events', async () => {
    const watcher = await browser.newPage();
    await watcher.goto(`${base}/watch`, { timeout: 10000 });
    await waitFor(watcher, () => watch.events.some((e) => e.type === 'hello'), [], 'the hello event');
    assertEqual({ type: 'hello', data: '2 in the room' },
      await watcher.evaluate(() => watch.events.find((e) => e.type === 'hello')), 'hello');
    await alice.evaluate(() => chat.ws.send('alice: anyone watching?\nsecond line'));
    await waitFor(watcher, () => watch.events.some((e) => e.type === 'message' &&
      e.data === 'alice: anyone watching?\nsecond line'), [], 'the message as an event');
    await watcher.close();
  });

  await run('wss:// from an https:// page, the test CA trusted through an NSS database', async () => {
    const url = `https://localhost:${secure.port}/`;
    const p1 = await chatPage(browser, url);
    const p2 = await chatPage(browser, url);
    const state = await p1.evaluate(() => [location.protocol, chat.ws.url, chat.ws.extensions]);
    assertEqual(['https:', `wss://localhost:${secure.port}/chat`], state.slice(0, 2), 'page and socket');
    if (!/^permessage-deflate\b/.test(state[2])) throw new Error(`ws.extensions "${state[2]}"`);
    await p1.evaluate(() => { chat.ws.send('over TLS'); chat.ws.send(new Uint8Array([0, 255, 1]).buffer); });
    await waitFor(p2, hasMessage, ['over TLS'], 'the text');
    await waitFor(p2, () => chat.events.some((e) => e.data instanceof ArrayBuffer &&
      new Uint8Array(e.data).join() === '0,255,1'), [], 'the binary message');
    await p2.evaluate(() => chat.ws.close(4002, 'tls bye'));
    await waitFor(p2, closeEvent, [], 'onclose');
    assertEqual({ type: 'close', code: 4002, reason: 'tls bye', wasClean: true },
      await p2.evaluate(closeEvent), 'the close event');
    await waitFor(p1, hasMessage, ['* someone left (4002 tls bye)'], 'the leave notice');
    await p1.close();
    await p2.close();
  });

  await run('without the CA in its NSS database, Chromium refuses the same server', async () => {
    const other = await launch(puppeteer, tempDir('luaws-browser-bare-home-'));
    const page = await other.newPage();
    let error = null;
    try {
      await page.goto(`https://localhost:${secure.port}/`, { timeout: 10000 });
    } catch (e) {
      error = e;
    }
    await other.close();
    if (!error || !/ERR_CERT_AUTHORITY_INVALID/.test(error.message)) {
      throw new Error(`expected net::ERR_CERT_AUTHORITY_INVALID, got ${error ? error.message : 'a page'}`);
    }
  });

  await run('the chat servers are still up and wrote nothing to stderr', async () => {
    for (const s of [plain, secure]) {
      if (s.child.exitCode !== null) throw new Error(`a chat server exited: ${s.output()}`);
      if (s.stderr() !== '') throw new Error(`stderr of a chat server:\n${s.stderr()}`);
    }
  });

  await browser.close();
}

async function main() {
  let puppeteer;
  if (!fs.existsSync(CHROMIUM)) {
    notOk(`Chromium is not installed (${CHROMIUM} is missing; scripts/deps.sh chromium libnss3-tools installs ` +
      "Debian's chromium): the browser suite could not run", 'no browser');
    return;
  }
  try {
    puppeteer = require(path.join(ROOT, 'spec', 'peers', 'node_modules', 'puppeteer-core'));
  } catch (e) {
    notOk('puppeteer-core is not installed in spec/peers (`sh scripts/deps.sh chromium libnss3-tools` installs it)', e);
    return;
  }
  try {
    await cases(puppeteer);
  } catch (e) {
    notOk('setting up the browser run', e);
  }
}

const watchdog = setTimeout(() => {
  notOk('the whole browser run', new Error(`still running after ${ALL_MS / 1000}s`));
  for (const f of cleanups.reverse()) { try { f(); } catch (e) { /* going anyway */ } }
  finish();
  process.exit(1);
}, ALL_MS);

main().finally(() => {
  clearTimeout(watchdog);
  for (const f of cleanups.reverse()) { try { f(); } catch (e) { /* going anyway */ } }
  finish();
});
