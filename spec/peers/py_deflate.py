"""permessage-deflate for the Python peers, from the PEER_DEFLATE environment variable
(JSON): `true` for websockets' own settings (compression="deflate"), an object for the
keyword arguments of its Client/ServerPerMessageDeflateFactory, absent for none."""
import json
import os


def compression_options(factory):
    """websockets.connect's or serve's arguments; factory is the role's extension class."""
    setting = json.loads(os.environ.get("PEER_DEFLATE", "false"))
    if setting is True:
        return {"compression": "deflate"}
    if setting:
        return {"compression": None, "extensions": [factory(**setting)]}
    return {"compression": None}
