"""Python's websockets (10.x) over wss:// for the TLS interop specs: an echo server.

    /usr/bin/python3 spec/peers/py_tls_server.py CERT KEY

Listens on 127.0.0.1, port 0, and prints "listening on PORT". Echoes text as text and
binary as binary; the text "close-me CODE REASON" closes with that code and reason.
"""
import asyncio
import json
import re
import ssl
import sys

import websockets
from websockets.exceptions import ConnectionClosed

CLOSE_ME = re.compile(r"close-me (\d+) (.*)\Z", re.S)


def log(**event):
    print(json.dumps(event), flush=True)


async def echo(ws, _path=None):
    log(event="connection", tls=ws.transport.get_extra_info("ssl_object").version())
    try:
        async for msg in ws:
            m = isinstance(msg, str) and CLOSE_ME.match(msg)
            if m:
                await ws.close(int(m.group(1)), m.group(2))
                break
            await ws.send(msg)
    except ConnectionClosed:
        pass
    await ws.wait_closed()
    log(event="close", code=ws.close_code, reason=ws.close_reason)


async def main(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=ctx, max_size=17 * 1024 * 1024,
                                compression=None) as server:
        print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
