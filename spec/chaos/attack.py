#!/usr/bin/env python3
"""The attacker of `make chaos`: hostile peers against a running spec/chaos/server.lua,
and hostile servers against spec/chaos/client.lua. Python 3 standard library only.

    attack.py --pid PID --port PORT --lua LUA [--only SUBSTRING]

Every case has a hard time bound (SIGALRM) and talks only to 127.0.0.1. After each case,
from outside the server process:
  * its open descriptors (/proc/PID/fd) are back at the baseline (polled, up to 5 s);
  * its RSS (/proc/PID/status VmRSS) is under baseline + RSS_CEILING (64 MiB; 32 MiB
    after the churn), and its peak during the case under baseline + PEAK_CEILING
    (192 MiB: the stalled-message case legitimately holds 10 x 8 MiB of frames);
  * the canary, a well-behaved client on /echo sending a message every 100 ms since the
    start, got every echo (none late by more than ECHO_TIMEOUT) and gets the next one.
Prints TAP ("ok N - name" / "not ok N - name" and "# " diagnostics) and a last line
"N passed, N failed"; exits 1 on any failure.

CHAOS_SCALE (default 1; run.sh sets 3 under ASan) stretches the timing bounds;
CHAOS_CHURN (default 20000; 2000 under ASan) is the number of churned connections;
CHAOS_RSS_SCALE (default 1; 2 under ASan, for its shadow memory, redzones and
quarantine) multiplies the RSS ceilings.
"""
import base64
import hashlib
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

MiB = 1 << 20
KiB = 1 << 10
HOST = "127.0.0.1"
SCALE = float(os.environ.get("CHAOS_SCALE", "1"))
CHURN = int(os.environ.get("CHAOS_CHURN", "20000"))
RSS_SCALE = float(os.environ.get("CHAOS_RSS_SCALE", "1"))
RSS_CEILING = int(64 * MiB * RSS_SCALE)
CHURN_RSS_CEILING = int(32 * MiB * RSS_SCALE)
PEAK_CEILING = int(192 * MiB * RSS_SCALE)
ECHO_TIMEOUT = 3.0 * SCALE
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# The chaos server's limits (spec/chaos/server.lua).
HANDSHAKE_TIMEOUT = 2.0
IDLE_TIMEOUT = 1.0
PONG_TIMEOUT = 1.0
MESSAGE_TIMEOUT = 2.0
SEND_TIMEOUT = 2.0
MAX_LENGTH = 16 * MiB
BIG_MAX_LENGTH = (1 << 26) - 1   # /big keeps the default maxLength
MAX_BUFFERED = 8 * MiB

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
RSV1, RSV2, RSV3 = 0x40, 0x20, 0x10


class Fail(Exception):
    pass


class Timeout(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def deadline(seconds):
    return time.monotonic() + seconds * SCALE


def left(dl):
    return dl - time.monotonic()


# ---- the server process, seen from outside ---------------------------------------

class Proc:
    def __init__(self, pid):
        self.pid = pid

    def alive(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            return state not in ("Z", "X")
        except OSError:
            return False

    def rss(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * KiB
        return 0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_fds(self, target, seconds):
        """Polls until the fd count is <= target; returns (ok, count, seconds waited)."""
        t0 = time.monotonic()
        dl = t0 + seconds
        while True:
            n = self.fds()
            if n <= target:
                return True, n, time.monotonic() - t0
            if time.monotonic() > dl:
                return False, n, time.monotonic() - t0
            time.sleep(0.02)


# ---- frames --------------------------------------------------------------------------

def mask(key, data):
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def header(op, n, fin=True, rsv=0, masked=True):
    b0 = (0x80 if fin else 0) | rsv | op
    m = 0x80 if masked else 0
    if n < 126:
        return struct.pack("!BB", b0, m | n)
    if n < 65536:
        return struct.pack("!BBH", b0, m | 126, n)
    return struct.pack("!BBQ", b0, m | 127, n)


def frame(op, payload=b"", fin=True, rsv=0, masked=True, key=None, length=None):
    """A client frame (masked with a fresh key unless told) as bytes."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    h = header(op, n, fin, rsv, masked)
    if not masked:
        return h + payload
    key = key or os.urandom(4)
    return h + key + mask(key, payload)


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


def parse_close(payload):
    if len(payload) < 2:
        return 1005, b""
    return struct.unpack("!H", payload[:2])[0], payload[2:]


# ---- raw peers --------------------------------------------------------------------------

def tcp(rcvbuf=None, sndbuf=None, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    s.settimeout(timeout * SCALE)
    s.connect((HOST, PORT))
    return s


def reset(s):
    """Closes with an RST (SO_LINGER {1, 0})."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def new_key():
    return base64.b64encode(os.urandom(16))


def upgrade_head(path, key=None, extra=b"", version=b"13", method=b"GET", proto=b"HTTP/1.1"):
    key = key or new_key()
    return (method + b" " + path.encode() + b" " + proto + b"\r\n"
            b"Host: 127.0.0.1:" + str(PORT).encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n")


class Peer:
    """A socket with a read buffer: HTTP heads and frames, each read with a deadline."""

    def __init__(self, sock, buf=b""):
        self.sock = sock
        self.buf = bytearray(buf)
        self.eof = None   # None, "eof" or "reset"

    def fill(self, dl):
        """Reads more; False at EOF or reset (self.eof says which). Fail at the deadline."""
        if self.eof:
            return False
        t = left(dl)
        if t <= 0:
            raise Fail("timed out waiting for data")
        r, _, _ = select.select([self.sock], [], [], t)
        if not r:
            raise Fail("timed out waiting for data")
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            self.eof = "reset"
            return False
        if not data:
            self.eof = "eof"
            return False
        self.buf += data
        return True

    def read_head(self, dl):
        while b"\r\n\r\n" not in self.buf:
            if not self.fill(dl):
                return None
        i = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:i])
        del self.buf[:i]
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers.setdefault(k.strip().lower(), []).append(v.strip())
        return status, headers, head

    def read_frame(self, dl):
        """(opcode, fin, rsv, payload) or None at EOF/reset."""
        while True:
            b = self.buf
            if len(b) >= 2:
                n = b[1] & 0x7F
                hl = 2
                if n == 126:
                    hl = 4
                elif n == 127:
                    hl = 10
                if b[1] & 0x80:
                    hl += 4
                if len(b) >= hl:
                    if n == 126:
                        n = struct.unpack("!H", b[2:4])[0]
                    elif n == 127:
                        n = struct.unpack("!Q", b[2:10])[0]
                    if len(b) >= hl + n:
                        payload = bytes(b[hl:hl + n])
                        if b[1] & 0x80:
                            payload = mask(bytes(b[hl - 4:hl]), payload)
                        op, fin, rsv = b[0] & 0x0F, bool(b[0] & 0x80), b[0] & 0x70
                        del b[:hl + n]
                        return op, fin, rsv, payload
            if not self.fill(dl):
                return None

    def read_message(self, dl, pong=True):
        """A whole data message (op, payload), answering pings; ("close", payload) or None."""
        parts, first = [], None
        while True:
            f = self.read_frame(dl)
            if f is None:
                return None
            op, fin, _, payload = f
            if op == OP_PING:
                if pong:
                    self.send(frame(OP_PONG, payload))
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                return "close", payload
            if first is None:
                first = op
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

    def send(self, data):
        self.sock.sendall(data)

    def expect_close(self, seconds=3.0, reply=True):
        """What the peer ends with: ("close", code, reason), ("eof",) or ("reset",).
        Data frames before it are skipped. Replies to a close frame, then closes."""
        dl = deadline(seconds)
        try:
            while True:
                f = self.read_frame(dl)
                if f is None:
                    return (self.eof,)
                if f[0] == OP_CLOSE:
                    code, reason = parse_close(f[3])
                    if reply:
                        try:
                            self.send(frame(OP_CLOSE, f[3][:2]))
                        except OSError:
                            pass
                    return ("close", code, reason)
        finally:
            self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def connect_ws(path, extra=b"", rcvbuf=None, sndbuf=None, seconds=5.0):
    s = tcp(rcvbuf, sndbuf)
    key = new_key()
    s.sendall(upgrade_head(path, key, extra))
    p = Peer(s)
    r = p.read_head(deadline(seconds))
    check(r is not None, "connection closed before the 101 (%s)" % p.eof)
    status, headers, head = r
    check(status == 101, "upgrade to %s: status %s, not 101" % (path, status))
    want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    check(headers.get("sec-websocket-accept") == [want], "bad Sec-WebSocket-Accept")
    return p


def close_cleanly(p, code=1000, seconds=3.0):
    p.send(frame(OP_CLOSE, close_payload(code)))
    r = p.expect_close(seconds, reply=False)
    check(r[0] == "close" and r[1] == code, "clean close: got %r, not close %d echoed" % (r, code))


def http_exchange(raw, seconds=3.0):
    """Sends raw bytes; returns (status, headers, body) or ("eof"|"reset", None, b"")."""
    s = tcp()
    p = Peer(s)
    try:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        dl = deadline(seconds)
        r = p.read_head(dl)
        if r is None:
            return p.eof, None, b""
        status, headers, _ = r
        if "content-length" in headers:
            n = int(headers["content-length"][0])
            while len(p.buf) < n and p.fill(dl):
                pass
            body = bytes(p.buf[:n])
        else:
            while p.fill(dl):
                pass
            body = bytes(p.buf)
        return status, headers, body
    finally:
        p.close()


# ---- the canary ----------------------------------------------------------------------

class Canary(threading.Thread):
    """A well-behaved client on /echo for the whole run: one message every 100 ms, each
    echo checked. Samples the server's RSS (peak) on the way."""

    def __init__(self, proc):
        super().__init__(daemon=True)
        self.proc = proc
        self.lock = threading.Lock()
        self.failures = []
        self.echoes = 0
        self.peak = 0
        self.stopping = False
        self.peer = connect_ws("/echo")
        self.peer.sock.setblocking(True)

    def reset_peak(self):
        with self.lock:
            self.peak = self.proc.rss()

    def fail(self, msg):
        with self.lock:
            self.failures.append(msg)

    def run(self):
        seq = 0
        p = self.peer
        try:
            while not self.stopping:
                seq += 1
                text = "canary %d %s" % (seq, "x" * (seq % 50))
                sent = time.monotonic()
                p.send(frame(OP_TEXT, text))
                r = p.read_message(sent + ECHO_TIMEOUT)
                if r is None or r[0] == "close":
                    self.fail("canary: connection closed by the server (%r)" % (r,))
                    return
                if r != (OP_TEXT, text.encode()):
                    self.fail("canary: echo %d wrong: %r" % (seq, r[1][:40]))
                    return
                with self.lock:
                    self.echoes += 1
                    try:
                        self.peak = max(self.peak, self.proc.rss())
                    except OSError:
                        pass
                time.sleep(max(0.0, 0.1 - (time.monotonic() - sent)))
        except Fail as e:
            self.fail("canary: echo %d not back within %.1fs (%s)" % (seq, ECHO_TIMEOUT, e))
        except OSError as e:
            self.fail("canary: %s" % e)

    def next_echo(self, seconds=5.0):
        """Waits for one more echo than now; False if none comes."""
        with self.lock:
            n = self.echoes
        dl = deadline(seconds)
        while time.monotonic() < dl:
            with self.lock:
                if self.echoes > n or self.failures:
                    return not self.failures
            time.sleep(0.02)
        return False


# ---- cases --------------------------------------------------------------------------

CASES = []


def case(name, bound=30, server=True):
    """Registers a case; server=False: it does not use the server (runs even if it died)."""
    def register(fn):
        CASES.append((name, fn, bound, server))
        return fn
    return register


def note(msg):
    print("# " + msg, flush=True)


# 1. slowloris ------------------------------------------------------------------------

@case("slowloris: 200 heads at 1 byte / 200 ms are closed at the handshake timeout", 30)
def slowloris():
    n = 200
    head = upgrade_head("/echo")
    socks = []
    for _ in range(n):
        s = tcp()
        s.setblocking(False)
        socks.append(s)
    t0 = time.monotonic()
    closed = {}
    sent = 0
    dl = t0 + (HANDSHAKE_TIMEOUT + 4) * SCALE
    next_byte = t0
    try:
        while len(closed) < n and time.monotonic() < dl:
            now = time.monotonic()
            if now >= next_byte and sent < len(head):
                for s in socks:
                    if s.fileno() not in closed:
                        try:
                            s.send(head[sent:sent + 1])
                        except (BrokenPipeError, ConnectionResetError):
                            closed[s.fileno()] = now - t0
                        except BlockingIOError:
                            pass
                sent += 1
                next_byte = now + 0.2
            live = [s for s in socks if s.fileno() not in closed]
            r, _, _ = select.select(live, [], [], 0.05)
            for s in r:
                try:
                    data = s.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                if not data:
                    closed[s.fileno()] = time.monotonic() - t0
        check(len(closed) == n, "%d of %d slow heads still open after %.1fs" %
              (n - len(closed), n, time.monotonic() - t0))
        times = sorted(closed.values())
        note("closed between %.2fs and %.2fs (handshake_timeout %gs); %d bytes of the head sent"
             % (times[0], times[-1], HANDSHAKE_TIMEOUT, sent))
        check(times[0] >= HANDSHAKE_TIMEOUT * 0.5, "a slow head was closed after only %.2fs" % times[0])
        check(times[-1] <= HANDSHAKE_TIMEOUT + 2 * SCALE, "closed late: %.2fs" % times[-1])
    finally:
        for s in socks:
            s.close()


@case("slowloris: a 16 KiB head one byte per write completes, at little CPU", 30)
def head_byte_by_byte():
    pad = 16000 - len(upgrade_head("/echo", extra=b"X-Pad: \r\n"))
    key = new_key()
    head = upgrade_head("/echo", key, extra=b"X-Pad: " + b"a" * pad + b"\r\n")
    s = tcp()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cpu0 = PROC.cpu_seconds()
    t0 = time.monotonic()
    for i in range(len(head)):
        s.send(head[i:i + 1])
    p = Peer(s)
    r = p.read_head(deadline(5))
    elapsed = time.monotonic() - t0
    cpu = PROC.cpu_seconds() - cpu0
    check(r is not None, "closed before an answer (%s)" % p.eof)
    note("%d-byte head in %d writes: status %s after %.2fs; server CPU %.0f ms"
         % (len(head), len(head), r[0], elapsed, cpu * 1000))
    check(r[0] in (101, 431), "status %s, not 101 or 431" % r[0])
    limit = 0.1 * (5 if SCALE > 1 else 1)
    check(cpu <= limit, "server spent %.0f ms of CPU on one slow head (limit %.0f ms)"
          % (cpu * 1000, limit * 1000))
    if r[0] == 101:
        close_cleanly(p)
    else:
        p.close()


# 2. idle peers ------------------------------------------------------------------------

@case("idle peer: pinged after idle_timeout, dropped after pong_timeout", 20)
def idle_peer():
    p = connect_ws("/echo")
    t0 = time.monotonic()
    f = p.read_frame(deadline(IDLE_TIMEOUT + 3))
    t_ping = time.monotonic() - t0
    check(f is not None, "closed (%s) without a ping after %.2fs" % (p.eof, t_ping))
    check(f[0] == OP_PING, "got opcode %d, not a ping" % f[0])
    r = p.expect_close(PONG_TIMEOUT + 3, reply=False)
    t_end = time.monotonic() - t0
    note("ping after %.2fs, then %r after %.2fs" % (t_ping, r[:2], t_end))
    check(t_ping >= IDLE_TIMEOUT * 0.8, "pinged too early: %.2fs" % t_ping)


@case("idle peer that answers pings stays open, then closes cleanly", 20)
def ponging_peer():
    p = connect_ws("/echo")
    dl = time.monotonic() + 4.0
    pings = 0
    while time.monotonic() < dl:
        try:
            f = p.read_frame(dl)
        except Fail:
            break
        check(f is not None, "dropped (%s) though it answered %d pings" % (p.eof, pings))
        if f[0] == OP_PING:
            pings += 1
            p.send(frame(OP_PONG, f[3]))
        elif f[0] == OP_CLOSE:
            raise Fail("server closed with %r though the peer answered its pings" % (parse_close(f[3]),))
    note("%d pings answered in 4s" % pings)
    check(pings >= 1, "no ping in 4s (idle_timeout %gs)" % IDLE_TIMEOUT)
    close_cleanly(p)


# 3. stalled messages ----------------------------------------------------------------------

def stalled_frame(sent_bytes=8 * MiB):
    p = connect_ws("/big")
    key = os.urandom(4)
    p.send(header(OP_BIN, BIG_MAX_LENGTH) + key)
    chunk = mask(key, b"s" * MiB)   # 1 MiB is a multiple of 4: every chunk masks alike
    for _ in range(sent_bytes // MiB):
        p.send(chunk)
    return p


def expect_stall_end(p, t0, seconds):
    r = p.expect_close(seconds, reply=False)
    check(r[0] != "close" or r[1] == 1008, "closed with %d, not 1008" % (r[1] if r[0] == "close" else 0))
    return r, time.monotonic() - t0


@case("stalled message: 64 MiB-1 frame, 8 MiB sent, closed after message_timeout", 30)
def stalled_one():
    p = stalled_frame()
    t0 = time.monotonic()
    r, t = expect_stall_end(p, t0, MESSAGE_TIMEOUT + 4)
    note("ended with %r %.2fs after the last byte" % (r[:2], t))


@case("stalled message: 10 at once, RSS back down", 60)
def stalled_ten():
    peers = [stalled_frame() for _ in range(10)]
    t0 = time.monotonic()
    note("RSS with 10 x 8 MiB pending: %.1f MiB" % (PROC.rss() / MiB))
    for p in peers:
        expect_stall_end(p, t0, MESSAGE_TIMEOUT + 6)
    note("all ended after %.2fs" % (time.monotonic() - t0))


# 4. slow readers ------------------------------------------------------------------------

@case("slow reader on /echo: back-pressure, then every echo arrives in order", 60)
def slow_reader_echo():
    n, size = 200, 64 * KiB
    p = connect_ws("/echo", rcvbuf=64 * KiB, sndbuf=256 * KiB)
    out = bytearray()
    for i in range(n):
        out += frame(OP_BIN, bytes([i % 256]) * size)
    s = p.sock
    s.setblocking(False)
    pos, last_progress = 0, time.monotonic()
    while pos < len(out) and time.monotonic() - last_progress < 0.5:
        try:
            k = s.send(out[pos:pos + 256 * KiB])
            pos += k
            last_progress = time.monotonic()
        except BlockingIOError:
            select.select([], [s], [], 0.05)
    blocked = pos < len(out)
    rss = PROC.rss()
    note("sent %.1f of %.1f MiB before the peer stopped reading%s; RSS %.1f MiB"
         % (pos / MiB, len(out) / MiB, " (sends blocked: back-pressure)" if blocked else "",
            rss / MiB))
    got = 0
    dl = deadline(30)
    progress = time.monotonic()
    while got < n:
        check(time.monotonic() < dl, "only %d of %d echoes after 30s" % (got, n))
        check(time.monotonic() - progress < 5 * SCALE,
              "only %d of %d echoes, and nothing more for %gs: echoes lost" % (got, n, 5 * SCALE))
        w = [s] if pos < len(out) else []
        r, wr, _ = select.select([s], w, [], 0.2)
        if wr:
            try:
                pos += s.send(out[pos:pos + 256 * KiB])
            except BlockingIOError:
                pass
        if r:
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            check(data, "connection ended after %d of %d echoes" % (got, n))
            progress = time.monotonic()
            p.buf += data
            while True:
                f = parse_one(p.buf)
                if f is None:
                    break
                op, payload = f
                if op == OP_PING:
                    # Our own stream may be in the middle of a frame: the pong goes after
                    # the frames still queued, never inside one.
                    out += frame(OP_PONG, payload)
                    continue
                check(op == OP_BIN, "got opcode %d (%r) after %d echoes"
                      % (op, parse_close(payload) if op == OP_CLOSE else "", got))
                check(payload == bytes([got % 256]) * size, "echo %d is wrong or out of order" % got)
                got += 1
    s.setblocking(True)
    close_cleanly(p)


def parse_one(buf):
    """Takes one whole unmasked frame off buf: (opcode, payload), or None."""
    if len(buf) < 2:
        return None
    n, hl = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, hl = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, hl = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < hl + n:
        return None
    op = buf[0] & 0x0F
    payload = bytes(buf[hl:hl + n])
    del buf[:hl + n]
    return op, payload


def drain_to_end(s, seconds):
    """Reads and discards until EOF or reset: ("eof"|"reset", bytes)."""
    s.setblocking(True)
    s.settimeout(seconds * SCALE)
    total = 0
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                return "eof", total
            total += len(d)
    except ConnectionResetError:
        return "reset", total
    except socket.timeout:
        return "open", total
    finally:
        s.close()


@case("slow reader: /flood of 100 x 1 MiB to a peer that never reads is cut at max_buffered", 30)
def flood_non_reader():
    base = PROC.fds()
    p = connect_ws("/flood?bytes=1048576&count=100", rcvbuf=64 * KiB)
    t0 = time.monotonic()
    ok, n, t = PROC.wait_fds(base, 1.9 * SCALE)
    rss = PROC.rss()
    end, total = drain_to_end(p.sock, 5)
    note("server closed it after %.2fs; the peer then read %.1f MiB and %s; RSS %.1f MiB"
         % (t, total / MiB, end, rss / MiB))
    check(ok, "the server still holds the connection after %.2fs (fds %d)" % (t, n))
    check(end in ("eof", "reset"), "connection still open after draining")
    check(total < 100 * MiB, "the whole flood got through a peer that never read")


@case("slow readers: 20 non-readers on /broadcast are cut, the sender stays", 60)
def broadcast_non_readers():
    base = PROC.fds()
    lurkers = [connect_ws("/broadcast", rcvbuf=64 * KiB) for _ in range(20)]
    sender = connect_ws("/broadcast")
    s = sender.sock
    s.setblocking(False)
    key = os.urandom(4)
    msg = header(OP_BIN, MiB) + key + mask(key, b"b" * MiB)
    out = bytearray()
    sent_msgs, got_msgs, got_bytes = 0, 0, 0
    inbuf = bytearray()
    remaining = 0   # payload bytes of the current incoming frame still to skip
    t0 = time.monotonic()
    next_send = t0
    while time.monotonic() - t0 < 3.0:
        now = time.monotonic()
        if now >= next_send:
            out += msg
            sent_msgs += 1
            next_send += 0.02
        r, w, _ = select.select([s], [s] if out else [], [], max(0.0, min(0.01, next_send - now)))
        if w:
            try:
                k = s.send(out[:4 * MiB])
                del out[:k]
            except BlockingIOError:
                pass
        if r:
            try:
                d = s.recv(4 * MiB)
            except BlockingIOError:
                continue
            check(d, "the sender was disconnected after %.2fs" % (time.monotonic() - t0))
            got_bytes += len(d)
            inbuf += d
            while True:
                if remaining:
                    k = min(remaining, len(inbuf))
                    del inbuf[:k]
                    remaining -= k
                    if remaining:
                        break
                    continue
                if len(inbuf) < 10:
                    break
                n, hl = inbuf[1] & 0x7F, 2
                if n == 126:
                    n, hl = struct.unpack("!H", inbuf[2:4])[0], 4
                elif n == 127:
                    n, hl = struct.unpack("!Q", inbuf[2:10])[0], 10
                op = inbuf[0] & 0x0F
                check(op != OP_CLOSE, "the sender got a close frame: %r" % bytes(inbuf[hl:hl + n]))
                if op == OP_BIN:
                    got_msgs += 1
                del inbuf[:hl]
                remaining = n
    rss = PROC.rss()
    ok, n, t = PROC.wait_fds(base + 1, 5 * SCALE)
    note("%d MiB messages sent, %d broadcasts back to the sender; RSS %.1f MiB; "
         "non-readers gone %.2fs after the sending stopped (fds %d, want %d)"
         % (sent_msgs, got_msgs, rss / MiB, t, n, base + 1))
    if not ok:
        for p in lurkers:
            reset(p.sock)
        reset(s)
        raise Fail("%d non-readers still connected" % (n - base - 1))
    ends = [drain_to_end(p.sock, 2)[0] for p in lurkers]
    check(all(e in ("eof", "reset") for e in ends), "non-readers not closed: %r" % ends)
    # The sender reads what is still coming, then closes cleanly.
    s.setblocking(True)
    if out:
        s.sendall(bytes(out))
    sender.buf = bytearray(inbuf)
    if remaining:
        dl = deadline(10)
        while remaining:
            check(sender.fill(dl), "sender lost after the run")
            k = min(remaining, len(sender.buf))
            del sender.buf[:k]
            remaining -= k
    close_cleanly(sender, seconds=15)


@case("slow reader: a peer that neither reads nor sends is dropped after send_timeout", 30)
def stalled_reader():
    base = PROC.fds()
    p = connect_ws("/flood?bytes=1048576&count=6", rcvbuf=32 * KiB)
    t0 = time.monotonic()
    ok, n, t = PROC.wait_fds(base, SEND_TIMEOUT + 3 * SCALE)
    end, total = drain_to_end(p.sock, 5)
    note("dropped after %.2fs (send_timeout %gs; idle_timeout + pong_timeout also end it "
         "then); the peer read %.1f MiB and %s" % (t, SEND_TIMEOUT, total / MiB, end))
    check(ok, "still connected after %.2fs" % t)
    check(end in ("eof", "reset"), "still open")


# 5. oversized and fragmented ------------------------------------------------------------

@case("oversized: a header announcing maxLength+1 gets 1009 at once", 15)
def oversized():
    p = connect_ws("/echo")
    p.send(header(OP_BIN, MAX_LENGTH + 1) + os.urandom(4))
    r = p.expect_close(2)
    check(r[:2] == ("close", 1009), "got %r, not close 1009" % (r,))


def fragmented(op, payload, size=64):
    key = os.urandom(4)
    masked = mask(key, payload)     # size is a multiple of 4: each piece masks alike
    out = bytearray()
    n = len(payload)
    for i in range(0, n, size):
        out += header(op if i == 0 else OP_CONT, min(size, n - i), fin=i + size >= n) + key
        out += masked[i:i + size]
    return bytes(out), n // size + (1 if n % size else 0)


def echo_fragmented(op, payload):
    p = connect_ws("/echo")
    data, frames = fragmented(op, payload)
    t0 = time.monotonic()
    p.send(data)
    r = p.read_message(deadline(20))
    check(r is not None and r[0] != "close", "no echo: %r" % (r if r is None else r[:1],))
    check(r[0] == op, "echo has opcode %d" % r[0])
    check(r[1] == payload, "echo differs (%d bytes back)" % len(r[1]))
    note("%d frames, %d bytes echoed whole in %.2fs" % (frames, len(payload), time.monotonic() - t0))
    close_cleanly(p)


@case("fragmented: 4 MiB text in 64-byte fragments is echoed whole", 40)
def frag_text():
    text = ("\u20ac" * ((4 * MiB) // 3) + "a").encode()   # 3-byte characters cut by fragments
    check(len(text) == 4 * MiB, "test text is %d bytes" % len(text))
    echo_fragmented(OP_TEXT, text)


@case("fragmented: 4 MiB binary in 64-byte fragments is echoed whole", 40)
def frag_binary():
    echo_fragmented(OP_BIN, os.urandom(4 * MiB))


# 6. protocol violations -------------------------------------------------------------------

def violation(data, want, path="/echo"):
    p = connect_ws(path)
    try:
        p.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = p.expect_close(3)
    want = want if isinstance(want, tuple) else (want,)
    return r[0] == "close" and r[1] in want, r


def violations(table):
    bad = []
    for label, data, want in table:
        ok, r = violation(data, want)
        if not ok:
            bad.append("%s: got %r, want %r" % (label, r[:2], want))
    check(not bad, "; ".join(bad))


def proto_case(name, data, want):
    @case("protocol: %s -> %s" % (name, want), 15)
    def run():
        ok, r = violation(data, want)
        check(ok, "got %r" % (r[:2],))


proto_case("RSV1 set", frame(OP_TEXT, "x", rsv=RSV1), 1002)
proto_case("RSV2 set", frame(OP_TEXT, "x", rsv=RSV2), 1002)
proto_case("RSV3 set", frame(OP_TEXT, "x", rsv=RSV3), 1002)


@case("protocol: opcodes 3-7 and 0xB-0xF -> 1002", 30)
def reserved_opcodes():
    violations([("opcode %d" % op, frame(op, "x"), 1002)
                for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)])


proto_case("fragmented ping", frame(OP_PING, "x", fin=False), 1002)
proto_case("ping of 126 bytes", frame(OP_PING, b"p" * 126), 1002)
proto_case("unmasked client frame", frame(OP_TEXT, "hello", masked=False), 1002)
proto_case("continuation with no message", frame(OP_CONT, "x"), 1002)
proto_case("text frame inside a fragmented message",
           frame(OP_TEXT, "a", fin=False) + frame(OP_TEXT, "b"), 1002)
proto_case("binary frame inside a fragmented message",
           frame(OP_BIN, "a", fin=False) + frame(OP_BIN, "b"), 1002)
proto_case("invalid UTF-8 in a whole text message", frame(OP_TEXT, b"abc\xc0\xafdef"), 1007)
proto_case("invalid UTF-8 split across fragments",
           frame(OP_TEXT, b"ab\xe2\x82", fin=False) + frame(OP_CONT, b"\x28cd"), 1007)
proto_case("text message truncated mid-character",
           frame(OP_TEXT, b"ab\xe2", fin=False) + frame(OP_CONT, b"\x82"), 1007)
proto_case("invalid UTF-8 in a close reason", frame(OP_CLOSE, close_payload(1000, b"\xff\xfe")), 1007)
proto_case("close payload of 1 byte", frame(OP_CLOSE, b"\x03"), 1002)
proto_case("64-bit length with the top bit set",
           struct.pack("!BBQ", 0x82, 0xFF, (1 << 63) + 5) + os.urandom(4), (1002, 1009))


@case("protocol: close codes 0 999 1004 1005 1006 1015 1016 2999 5000 65535 -> 1002", 40)
def bad_close_codes():
    violations([("close %d" % c, frame(OP_CLOSE, close_payload(c)), 1002)
                for c in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535)])


@case("protocol: valid close codes 1000-1003 1007-1014 3000 4999 are echoed", 60)
def good_close_codes():
    bad = []
    for c in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999):
        ok, r = violation(frame(OP_CLOSE, close_payload(c, b"bye")), c)
        if not ok:
            bad.append("close %d: got %r" % (c, r[:2]))
    check(not bad, "; ".join(bad))


@case("protocol: a ping after the close frame is ignored", 15)
def ping_after_close():
    p = connect_ws("/echo")
    p.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_PING, "late"))
    dl = deadline(3)
    seen = []
    try:
        while True:
            f = p.read_frame(dl)
            if f is None:
                break
            seen.append(f[0])
    finally:
        p.close()
    check(OP_CLOSE in seen, "no close frame back: %r" % seen)
    check(OP_PONG not in seen, "the ping after the close was answered: %r" % seen)


# 7. HTTP junk ----------------------------------------------------------------------

def http_case(name, raw, want, extra_check=None):
    @case("http: %s -> %s" % (name, "/".join(str(w) for w in want)), 15)
    def run():
        status, headers, body = http_exchange(raw)
        check(status in want, "got %r, want %r" % (status, want))
        check(status != 101, "upgraded")
        if extra_check:
            extra_check(status, headers, body)


def plain_head(lines):
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


WS_LINES = ["Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]

http_case("GET /", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", (200,))
http_case("4 KiB of random bytes", random.Random(6455).randbytes(4096), (400, "eof", "reset"))
http_case("request line without a version", plain_head(["GET /echo"] + WS_LINES), (400,))
http_case("HTTP/1.0 upgrade", plain_head(["GET /echo HTTP/1.0"] + WS_LINES), (400,))


def _v13(status, headers, body):
    check(headers and headers.get("sec-websocket-version") == ["13"],
          "no Sec-WebSocket-Version: 13 in the 426")


http_case("Sec-WebSocket-Version 12",
          plain_head(["GET /echo HTTP/1.1"] + WS_LINES[:4] + ["Sec-WebSocket-Version: 12"]),
          (426,), _v13)
http_case("missing Sec-WebSocket-Key",
          plain_head(["GET /echo HTTP/1.1"] + WS_LINES[:3] + WS_LINES[4:]), (400,))
http_case("a 17 KiB header", plain_head(["GET /echo HTTP/1.1"] + WS_LINES + ["X-Big: " + "b" * 17 * 1024]),
          (431,))
http_case("65 headers", plain_head(["GET /echo HTTP/1.1"] + WS_LINES +
                                   ["X-H%d: v" % i for i in range(65 - len(WS_LINES))]), (431,))
http_case("upgrade with Content-Length and a body",
          plain_head(["GET /echo HTTP/1.1"] + WS_LINES + ["Content-Length: 5"]) + b"hello", (400,))
http_case("upgrade with two Content-Length headers",
          plain_head(["GET /echo HTTP/1.1"] + WS_LINES + ["Content-Length: 0", "Content-Length: 5"]),
          (400,))
http_case("upgrade with Transfer-Encoding: chunked",
          plain_head(["GET /echo HTTP/1.1"] + WS_LINES + ["Transfer-Encoding: chunked"]) + b"0\r\n\r\n",
          (400,))
http_case("POST with Upgrade", plain_head(["POST /echo HTTP/1.1"] + WS_LINES + ["Content-Length: 0"]),
          (400,))
http_case("a NUL byte in a header", plain_head(["GET /echo HTTP/1.1"] + WS_LINES + ["X-Nul: a\0b"]),
          (400,))


# 8. churn -----------------------------------------------------------------------------

@case("churn: %d connections (upgrade, echo, close), fds and RSS flat" % CHURN, 240)
def churn():
    total, width = CHURN, 50
    rss0 = PROC.rss()
    poller = select.poll()
    conns = {}   # fd -> [sock, state, buffer, payload]
    started = done = 0
    errors = []
    t0 = time.monotonic()
    dl = deadline(max(60, total / 200))

    def start():
        nonlocal started
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((HOST, PORT))
        payload = b"churn %d" % started
        conns[s.fileno()] = [s, "connect", bytearray(), payload]
        poller.register(s.fileno(), select.POLLOUT)
        started += 1

    def finish(fd, err=None):
        nonlocal done
        c = conns.pop(fd)
        poller.unregister(fd)
        c[0].close()
        done += 1
        if err and len(errors) < 5:
            errors.append(err)

    while done < total:
        check(time.monotonic() < dl, "churn: %d of %d done after %.0fs (%d errors: %s)"
              % (done, total, time.monotonic() - t0, len(errors), errors))
        while started < total and len(conns) < width:
            start()
        for fd, ev in poller.poll(1000):
            c = conns.get(fd)
            if c is None:
                continue
            s, state, buf, payload = c
            try:
                if state == "connect":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        finish(fd, "connect: %s" % os.strerror(err))
                        continue
                    s.send(upgrade_head("/echo"))   # small: fits the empty send buffer
                    c[1] = "head"
                    poller.modify(fd, select.POLLIN)
                    continue
                d = s.recv(65536)
                if not d:
                    finish(fd, None if state == "closed" else "EOF in state " + state)
                    continue
                buf += d
                if state == "head" and b"\r\n\r\n" in buf:
                    i = buf.index(b"\r\n\r\n") + 4
                    if not buf.startswith(b"HTTP/1.1 101"):
                        finish(fd, "status: %r" % bytes(buf[:20]))
                        continue
                    del buf[:i]
                    s.send(frame(OP_TEXT, payload))
                    c[1] = state = "echo"
                if state == "echo":
                    f = parse_one(buf)
                    if f is not None:
                        if f != (OP_TEXT, payload):
                            finish(fd, "bad echo %r" % (f,))
                            continue
                        s.send(frame(OP_CLOSE, close_payload(1000)))
                        c[1] = state = "closing"
                if state == "closing":
                    f = parse_one(buf)
                    if f is not None and f[0] == OP_CLOSE:
                        c[1] = "closed"   # the server closes TCP first; wait for its EOF
            except (ConnectionResetError, BrokenPipeError) as e:
                finish(fd, "%s in state %s" % (e.__class__.__name__, state))
    elapsed = time.monotonic() - t0
    note("%d connections in %.1fs (%.0f/s), %d errors%s" % (total, elapsed, total / elapsed,
         len(errors), (": " + "; ".join(errors)) if errors else ""))
    check(not errors, "errors: " + "; ".join(errors))
    ok, n, _ = PROC.wait_fds(BASE_FDS, 10 * SCALE)
    check(ok, "fds %d after the churn, baseline %d" % (n, BASE_FDS))
    rss = PROC.rss()
    note("RSS %.1f MiB before, %.1f MiB after (baseline %.1f MiB)" % (rss0 / MiB, rss / MiB, BASE_RSS / MiB))
    check(rss <= BASE_RSS + CHURN_RSS_CEILING, "RSS %.1f MiB > baseline + %d MiB"
          % (rss / MiB, CHURN_RSS_CEILING // MiB))


# 9. resets ---------------------------------------------------------------------------

@case("reset: RST while the server sends an 8 MiB message", 20)
def reset_mid_send():
    p = connect_ws("/flood?bytes=8388608&count=1", rcvbuf=64 * KiB)
    got = len(p.buf)
    dl = deadline(5)
    while got < MiB:
        check(p.fill(dl), "closed before 1 MiB arrived")
        got += len(p.buf)
        p.buf.clear()
    reset(p.sock)
    note("RST after %.1f MiB of the 8 MiB message" % (got / MiB))


@case("reset: RST half way through sending a 4 MiB frame", 20)
def reset_mid_receive():
    p = connect_ws("/echo")
    key = os.urandom(4)
    p.send(header(OP_BIN, 4 * MiB) + key + mask(key, os.urandom(2 * MiB)))
    time.sleep(0.1)   # let the server read part of it: there is no event to wait for
    reset(p.sock)


# 10. handlers ----------------------------------------------------------------------------

@case("handlers: onmessage raising -> 1011", 15)
def raise_onmessage():
    p = connect_ws("/raise-onmessage")
    p.send(frame(OP_TEXT, "boom"))
    r = p.expect_close(3)
    check(r[:2] == ("close", 1011), "got %r, not close 1011" % (r,))


@case("handlers: onopen raising -> 1011", 15)
def raise_onopen():
    p = connect_ws("/raise-onopen")
    r = p.expect_close(3)
    check(r[:2] == ("close", 1011), "got %r, not close 1011" % (r,))


@case("handlers: onerror raising after an RSV1 frame -> still 1002", 15)
def raise_onerror():
    ok, r = violation(frame(OP_TEXT, "x", rsv=RSV1), 1002, "/raise-onerror")
    check(ok, "got %r, not close 1002" % (r[:2],))


@case("handlers: onclose raising: the close is still echoed", 15)
def raise_onclose():
    p = connect_ws("/raise-onclose")
    p.send(frame(OP_TEXT, "hi"))
    r = p.read_message(deadline(3))
    check(r == (OP_TEXT, b"hi"), "no echo: %r" % (r,))
    close_cleanly(p)


@case("handlers: onupgrade raising -> HTTP 500 with an exact Content-Length", 15)
def raise_onupgrade():
    s = tcp()
    s.sendall(upgrade_head("/raise-onupgrade"))
    p = Peer(s)
    dl = deadline(3)
    r = p.read_head(dl)
    check(r is not None, "closed without an answer (%s)" % p.eof)
    status, headers, _ = r
    while p.fill(dl):
        pass
    p.close()
    check(status == 500, "status %s, not 500" % status)
    cl = headers.get("content-length")
    check(cl is not None, "no Content-Length")
    check(int(cl[0]) == len(p.buf), "Content-Length %s, body %d bytes" % (cl[0], len(p.buf)))


@case("handlers: pause/resume in onmessage: 5 messages in one write come back in order", 15)
def pause_resume():
    p = connect_ws("/pause-resume")
    msgs = [os.urandom(100 + i) for i in range(5)]
    p.send(b"".join(frame(OP_BIN, m) for m in msgs))
    dl = deadline(5)
    for i, m in enumerate(msgs):
        r = p.read_message(dl)
        check(r is not None and r[0] != "close", "message %d: got %r" % (i + 1, r and r[0]))
        check(r == (OP_BIN, m), "message %d is wrong or out of order" % (i + 1))
    close_cleanly(p)


@case("handlers: pause() and resume() inside onopen: the socket reads on", 15)
def pause_onopen():
    p = connect_ws("/pause-onopen")
    p.send(frame(OP_TEXT, "hi"))
    r = p.read_message(deadline(1.5))
    check(r == (OP_TEXT, b"hi"), "no echo: %r" % (r,))
    close_cleanly(p)


@case("handlers: /misuse (close twice, send after close, 200-byte ping) does not crash", 15)
def misuse():
    p = connect_ws("/misuse")
    p.send(frame(OP_TEXT, "hi"))
    r = p.read_message(deadline(3))
    check(r == (OP_TEXT, b"hi"), "no echo: %r" % (r,))
    r = p.expect_close(3)
    check(r[:2] == ("close", 1000), "got %r, not close 1000" % (r,))


# 11. hostile servers against the luaws client --------------------------------------------

class Hostile(threading.Thread):
    """A one-connection server on 127.0.0.1, port 0: behave(conn, request_head)."""

    def __init__(self, behave):
        super().__init__(daemon=True)
        self.behave = behave
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.bind((HOST, 0))
        self.ls.listen(4)
        self.ls.settimeout(15 * SCALE)
        self.port = self.ls.getsockname()[1]
        self.error = None
        self.result = None

    def run(self):
        try:
            conn, _ = self.ls.accept()
            conn.settimeout(10 * SCALE)
            p = Peer(conn)
            r = p.read_head(deadline(5))
            if r is None:
                self.error = "client closed before its head"
                return
            key = r[1].get("sec-websocket-key", [""])[0].encode()
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            self.result = self.behave(p, accept)
        except Exception as e:   # reported by the case
            self.error = "%s: %s" % (e.__class__.__name__, e)
        finally:
            self.ls.close()


def ok101(accept, extra=b""):
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n" + extra + b"\r\n")


def run_client(behave, *opts, bound=8):
    h = Hostile(behave)
    h.start()
    args = [LUA, "spec/chaos/client.lua", "ws://127.0.0.1:%d/" % h.port, "bound=%g" % (bound * SCALE)]
    try:
        env = dict(os.environ)
        if os.environ.get("CHAOS_CLIENT_PRELOAD"):
            env["LD_PRELOAD"] = os.environ["CHAOS_CLIENT_PRELOAD"]
        t0 = time.monotonic()
        out = subprocess.run(args + list(opts), capture_output=True, text=True, env=env,
                             timeout=(bound + 5) * SCALE)
        h.client_seconds = time.monotonic() - t0
    except subprocess.TimeoutExpired:
        raise Fail("the client did not exit by itself within %gs" % ((bound + 5) * SCALE))
    h.join(5 * SCALE)
    lines = out.stdout.splitlines()
    err = out.stderr.strip()
    if "Sanitizer" in err or "runtime error" in err:
        raise Fail("client sanitizer report: " + err[:500])
    if out.returncode != 0:
        raise Fail("client exit status %d; stdout %r; stderr %r" % (out.returncode, lines[-5:], err[-300:]))
    events = [l.split(" ", 1)[0] for l in lines]
    closes = [l for l in lines if l.startswith("close ")]
    check(len(closes) == 1, "onclose fired %d times: %r" % (len(closes), lines))
    return lines, events, int(closes[0].split()[1]), h


def failed_handshake(behave, *opts, bound=8):
    lines, events, code, h = run_client(behave, *opts, bound=bound)
    check("open" not in events, "onopen fired: %r" % lines)
    check("error" in events, "no onerror: %r" % lines)
    check(code == 1006, "close %d, not 1006: %r" % (code, lines))
    check(events.index("error") < events.index("close"), "onerror after onclose: %r" % lines)
    note(" | ".join(l for l in lines if l.startswith("error"))[:200])
    return h


@case("hostile server: bad Sec-WebSocket-Accept -> onerror, close 1006", 20, server=False)
def hostile_bad_accept():
    failed_handshake(lambda p, a: p.send(ok101(base64.b64encode(b"x" * 20))) or time.sleep(1))


@case("hostile server: status 200 -> onerror, close 1006", 20, server=False)
def hostile_200():
    failed_handshake(lambda p, a: p.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi") or time.sleep(1))


@case("hostile server: response head over the client's max_head -> onerror, close 1006", 20, server=False)
def hostile_big_head():
    def behave(p, a):
        p.send(b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Junk: " + b"j" * 20000 + b"\r\n")
        time.sleep(2)
    failed_handshake(behave, "max_head=4096")


@case("hostile server: never answers -> handshake_timeout, onerror, close 1006", 20, server=False)
def hostile_silent():
    h = failed_handshake(lambda p, a: time.sleep(4 * SCALE), "handshake_timeout=1")
    note("the client process ran %.2fs (handshake_timeout 1s)" % h.client_seconds)
    check(h.client_seconds < 3 * SCALE, "the client waited %.2fs" % h.client_seconds)


@case("hostile server: 101 with permessage-deflate not offered -> onerror, close 1006", 20, server=False)
def hostile_extension():
    failed_handshake(lambda p, a: p.send(ok101(a, b"Sec-WebSocket-Extensions: permessage-deflate\r\n"))
                     or time.sleep(1))


def read_client_close(p, seconds=3):
    """The close frame a client sends (masked): its code, or None."""
    dl = deadline(seconds)
    while True:
        f = p.read_frame(dl)
        if f is None:
            return None
        if f[0] == OP_CLOSE:
            return parse_close(f[3])[0]


@case("hostile server: masked frames from the server -> client closes 1002", 20, server=False)
def hostile_masked():
    def behave(p, a):
        p.send(ok101(a) + frame(OP_TEXT, "masked"))
        code = read_client_close(p)
        p.close()
        return code
    lines, events, code, h = run_client(behave)
    check("open" in events and "message" not in events, "events: %r" % lines)
    check(code == 1002, "client onclose %d, not 1002: %r" % (code, lines))
    check(h.result == 1002, "the client sent close %r, not 1002" % (h.result,))


@case("hostile server: garbage after the 101 -> client fails the connection", 20, server=False)
def hostile_garbage():
    def behave(p, a):
        p.send(ok101(a) + b"\xff" * 64 + random.Random(7).randbytes(1024))
        code = read_client_close(p)
        p.close()
        return code
    lines, events, code, h = run_client(behave)
    check("message" not in events, "garbage made a message: %r" % lines)
    check(code in (1002, 1006), "client onclose %d: %r" % (code, lines))
    note("client closed with %d, sent close %r" % (code, h.result))


@case("hostile server: reset mid-message -> onclose 1006, no message", 20, server=False)
def hostile_reset():
    def behave(p, a):
        p.send(ok101(a) + header(OP_BIN, MiB, masked=False) + b"r" * (512 * KiB))
        time.sleep(0.2)
        reset(p.sock)
    lines, events, code, h = run_client(behave)
    check("message" not in events, "a message from a cut frame: %r" % lines)
    check(code == 1006, "client onclose %d, not 1006: %r" % (code, lines))


@case("hostile server: a flood of 200 x 1 MiB, then close 1000: all received", 40, server=False)
def hostile_flood():
    def behave(p, a):
        p.send(ok101(a))
        chunk = header(OP_BIN, MiB, masked=False) + b"f" * MiB
        for _ in range(200):
            p.send(chunk)
        p.send(header(OP_CLOSE, 2, masked=False) + close_payload(1000))
        code = read_client_close(p, 20)
        p.close()
        return code
    t0 = time.monotonic()
    lines, events, code, h = run_client(behave, "quiet=1", bound=30)
    note("%s in %.2fs" % (" | ".join(lines), time.monotonic() - t0))
    check("messages 200 %d" % (200 * MiB) in lines, "not all 200 messages: %r" % lines)
    check(code == 1000, "client onclose %d: %r" % (code, lines))


# ---- the run -----------------------------------------------------------------------

def on_alarm(signum, frame_):
    raise Timeout()


def main():
    global PORT, PROC, LUA, BASE_FDS, BASE_RSS
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    PORT = int(args["--port"])
    PROC = Proc(int(args["--pid"]))
    LUA = args.get("--lua", "lua5.4")
    only = args.get("--only")
    signal.signal(signal.SIGALRM, on_alarm)

    canary = Canary(PROC)
    canary.start()
    check(canary.next_echo(5), "the canary got no echo at the start")
    BASE_FDS = PROC.fds()
    BASE_RSS = PROC.rss()
    note("server pid %d port %d: %d fds, RSS %.1f MiB at the start (canary connected); "
         "scale %g, churn %d" % (PROC.pid, PORT, BASE_FDS, BASE_RSS / MiB, SCALE, CHURN))

    passed = failed = 0
    t_all = time.monotonic()
    dead = False
    for i, (name, fn, bound, uses_server) in enumerate(CASES, 1):
        if only and only not in name:
            continue
        if dead and uses_server:
            continue
        problems = []
        canary.reset_peak()
        failures_before = len(canary.failures)
        t0 = time.monotonic()
        signal.alarm(int(bound * SCALE) + 1)
        try:
            fn()
        except Fail as e:
            problems.append(str(e))
        except Timeout:
            problems.append("case took longer than its bound of %ds" % int(bound * SCALE))
        except Exception as e:
            problems.append("%s: %s" % (e.__class__.__name__, e))
            problems.append(traceback.format_exc().strip().replace("\n", "\n# "))
        finally:
            signal.alarm(0)
        took = time.monotonic() - t0
        if dead or not PROC.alive():
            if uses_server:
                problems.append("the server process died; the cases that need it are skipped")
                dead = True
            print("%s %d - %s" % ("not ok" if problems else "ok", i, name))
            for m in problems:
                print("# " + m)
            if problems:
                failed += 1
            else:
                passed += 1
            continue
        ok_fds, n, _ = PROC.wait_fds(BASE_FDS, (5 if uses_server else 0) * SCALE)
        if not ok_fds:
            # Blamed on this case only: later cases are measured against the new count.
            problems.append("server fds %d, baseline %d, 5s after the case (the baseline is "
                            "now %d)" % (n, BASE_FDS, n))
            BASE_FDS = n
        rss = PROC.rss()
        if uses_server and rss > BASE_RSS + RSS_CEILING:
            problems.append("server RSS %.1f MiB > baseline %.1f + %d MiB"
                            % (rss / MiB, BASE_RSS / MiB, RSS_CEILING // MiB))
        if canary.peak > BASE_RSS + PEAK_CEILING:
            problems.append("server RSS peaked at %.1f MiB > baseline + %d MiB"
                            % (canary.peak / MiB, PEAK_CEILING // MiB))
        if not canary.next_echo(5):
            problems.append("the canary got no echo after the case")
        if len(canary.failures) > failures_before:
            problems += canary.failures[failures_before:]
        status = "ok" if not problems else "not ok"
        print("%s %d - %s" % (status, i, name))
        print("# %.2fs; server RSS %.1f MiB (peak %.1f), fds %d" % (took, rss / MiB, canary.peak / MiB, n))
        for m in problems:
            print("# " + m)
        sys.stdout.flush()
        if problems:
            failed += 1
        else:
            passed += 1
        if canary.failures and not canary.is_alive():
            note("the canary is dead; restarting it")
            canary.stopping = True
            canary = Canary(PROC)
            canary.start()
    canary.stopping = True
    note("all cases in %.1fs; canary echoes %d; attack: %d passed, %d failed"
         % (time.monotonic() - t_all, canary.echoes, passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
