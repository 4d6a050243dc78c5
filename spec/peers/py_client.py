"""An independent client peer for the interop specs: Python's websockets (10.x).

    /usr/bin/python3 spec/peers/py_client.py URL [PROTOCOL...]

Connects offering the given subprotocols, then, each step waiting for its echo: text
"hello", binary bytes 0..255, a 16 MiB binary message (byte i is i % 251), the text
"Hello, world" sent as three frames ("Hel", "lo, ", "world"), a ping b"p1" (waits for its
pong), and close(4000, "bye"), all within PEER_TIMEOUT seconds (env, default 120).
Prints one JSON line per event it receives and a last line {"event": "summary", ...};
exits 0 when every step passed, 1 otherwise.
"""
import asyncio
import hashlib
import json
import os
import sys

import websockets

BIG = 16 * 1024 * 1024
MAX_SIZE = BIG + 64 * 1024
TIMEOUT = float(os.environ.get("PEER_TIMEOUT", "120"))   # seconds for the whole script


def log(**event):
    print(json.dumps(event), flush=True)


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
    async with websockets.connect(url, subprotocols=protocols or None, max_size=MAX_SIZE,
                                  compression=None, ping_interval=None) as ws:
        conn.append(ws)
        summary["protocol"] = ws.subprotocol
        log(event="open", protocol=ws.subprotocol)

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
        and summary.get("close_code") == 4000 and summary.get("close_reason") == "bye"
    log(**summary)
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
