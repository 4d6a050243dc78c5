"""An independent client peer for the interop specs: Python's websockets (10.x).

    /usr/bin/python3 spec/peers/py_client.py URL [PROTOCOL...]

Connects offering the given subprotocols, then, each step waiting for its echo: text
"hello", binary bytes 0..255, a 16 MiB binary message (byte i is i % 251), the text
"Hello, world" sent as three frames ("Hel", "lo, ", "world"), a ping b"p1" (waits for its
pong), and close(4000, "bye"), all within PEER_TIMEOUT seconds (env, default 120).
Prints one JSON line per event it receives and a last line {"event": "summary", ...};
exits 0 when every step passed, 1 otherwise.

PEER_DEFLATE (env): JSON; `true` for websockets' own permessage-deflate offer, or the
keyword arguments of ClientPerMessageDeflateFactory. Then the script also echoes
messages of many sizes before the ping, and the summary says which extension
parameters were agreed.
"""
import asyncio
import hashlib
import json
import os
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from py_deflate import compression_options

BIG = 16 * 1024 * 1024
MAX_SIZE = BIG + 64 * 1024
TIMEOUT = float(os.environ.get("PEER_TIMEOUT", "120"))   # seconds for the whole script


def log(**event):
    print(json.dumps(event), flush=True)


def sized_messages():
    """The same list as spec/peers/sized_messages.js: (data, is_binary) pairs."""
    sizes = [0, 1, 125, 126, 1023, 1024, 1025, 4096, 65535, 65536, 300000, 1048579]
    out = []
    for i, n in enumerate(sizes):
        if i % 2 == 0:
            parts, k, total = [], 0, 0
            while total < n:
                part = f"permessage-deflate {k} window {k % 7} "
                parts.append(part)
                total += len(part)
                k += 1
            out.append(("".join(parts)[:n], False))
        else:
            b, x = bytearray(n), n
            for j in range(n):
                x = (x * 69069 + 1) % 4294967296
                b[j] = x >> 24 if j % 512 < 256 else j % 251
            out.append((bytes(b), True))
    return out


def big_message():
    period = bytes(range(251))
    return (period * (BIG // 251 + 1))[:BIG]


async def receive(ws):
    msg = await ws.recv()
    binary = isinstance(msg, bytes)
    event = {"event": "message", "binary": binary, "length": len(msg)}
    if len(msg) <= 256:
        if binary:
            event["hex"] = msg.hex()
        else:
            event["text"] = msg
    else:
        data = msg if binary else msg.encode()
        event["sha256"] = hashlib.sha256(data).hexdigest()
    log(**event)
    return msg


async def run(url, protocols, summary, conn):
    # No keepalive pings of our own: the script's ping is the only one.
    options = compression_options(ClientPerMessageDeflateFactory)
    async with websockets.connect(url, subprotocols=protocols or None, max_size=MAX_SIZE,
                                  ping_interval=None, **options) as ws:
        conn.append(ws)
        summary["protocol"] = ws.subprotocol
        summary["extensions"] = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        log(event="open", protocol=ws.subprotocol, extensions=summary["extensions"])

        await ws.send("hello")
        summary["text"] = await receive(ws) == "hello"

        data = bytes(range(256))
        await ws.send(data)
        summary["binary"] = await receive(ws) == data

        big = big_message()
        await ws.send(big)
        echo = await receive(ws)
        summary["big"] = echo == big
        summary["big_length"] = len(echo)
        summary["big_sha256"] = hashlib.sha256(
            echo if isinstance(echo, bytes) else echo.encode()).hexdigest()

        await ws.send(["Hel", "lo, ", "world"])   # an iterable: one message, three frames
        summary["fragmented"] = await receive(ws) == "Hello, world"

        if options["compression"] or options.get("extensions"):
            summary["sizes"] = True
            for data, _ in sized_messages():
                await ws.send(data)
                if await receive(ws) != data:
                    summary["sizes"] = False
                    summary["error"] = f"echo of {len(data)} bytes differs"

        pong = await ws.ping(b"p1")
        await pong
        log(event="pong", data="p1")
        summary["pong"] = True

        await ws.close(4000, "bye")
        await ws.wait_closed()


def main():
    url, protocols = sys.argv[1], sys.argv[2:]
    summary, conn = {"event": "summary"}, []
    try:
        asyncio.run(asyncio.wait_for(run(url, protocols, summary, conn), TIMEOUT))
    except Exception as err:   # reported in the summary; the spec shows it
        summary["error"] = f"{type(err).__name__}: {err}"
    # The close code and reason the other side sent are in the summary however we end.
    if conn and conn[0].closed:
        ws = conn[0]
        log(event="close", code=ws.close_code, reason=ws.close_reason)
        summary["close_code"] = ws.close_code
        summary["close_reason"] = ws.close_reason
    summary["ok"] = "error" not in summary \
        and all(summary.get(k) for k in ("text", "binary", "big", "fragmented", "pong")) \
        and summary.get("sizes", True) \
        and summary.get("close_code") == 4000 and summary.get("close_reason") == "bye"
    log(**summary)
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
