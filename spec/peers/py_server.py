"""An independent echo peer for the interop specs: Python's websockets (10.x) as a server.

    /usr/bin/python3 spec/peers/py_server.py

Listens on 127.0.0.1, port 0, and prints "listening on PORT".
Subprotocol rule: "b" when the client offers it, otherwise the first one offered (so an
offer of "a, b" gets "b", which a server that took the first would not pick).
Echoes text as text and binary as binary. Two text commands:
  "close-me CODE REASON"  closes with that code and reason;
  "fragments"             sends "Hello, world" as three frames: "Hel", "lo, ", "world".
PEER_DEFLATE (env): JSON; `true` for websockets' own permessage-deflate settings, or the
keyword arguments of ServerPerMessageDeflateFactory. The connection event then says
which extension parameters were agreed.
"""
import asyncio
import json
import re

import websockets
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from py_deflate import compression_options

MAX_SIZE = 16 * 1024 * 1024 + 64 * 1024   # the 16 MiB message, plus slack
CLOSE_ME = re.compile(r"close-me (\d+) (.*)\Z", re.S)


def log(**event):
    print(json.dumps(event), flush=True)


def select_subprotocol(offered, _supported):
    if "b" in offered:
        return "b"
    return offered[0] if offered else None


async def echo(ws, _path=None):
    log(event="connection", protocol=ws.subprotocol,
        extensions=ws.response_headers.get("Sec-WebSocket-Extensions", ""))
    try:
        async for msg in ws:
            if isinstance(msg, str):
                m = CLOSE_ME.match(msg)
                if m:
                    await ws.close(int(m.group(1)), m.group(2))
                    break
                if msg == "fragments":
                    await ws.send(["Hel", "lo, ", "world"])
                    continue
            await ws.send(msg)
    except ConnectionClosed:
        pass
    await ws.wait_closed()
    log(event="close", code=ws.close_code, reason=ws.close_reason)


async def main():
    # select_subprotocol is only consulted when the server lists protocols of its own.
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=MAX_SIZE,
                                subprotocols=["a", "b"],
                                select_subprotocol=select_subprotocol,
                                ping_interval=None,
                                **compression_options(ServerPerMessageDeflateFactory)) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
