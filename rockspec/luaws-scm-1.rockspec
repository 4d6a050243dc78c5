package = "luaws"
version = "scm-1"
source = {
  url = "git+file:///work/main",   -- `luarocks make` builds the checkout it is run in
}
description = {
  summary = "A standards-compliant WebSocket client and server for Lua, with its core in C",
  detailed = [[
luaws speaks RFC 6455 (with permessage-deflate) as a server and as a client, and the
hixie-75/76 drafts as a server, over libuv, with the browser's
WebSocket API (onopen, onmessage, onclose, onerror, send, close), in the manner of
faye-websocket.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
  -- The Redis backplane (WebSocket.backplane); Debian's libhiredis-dev. `make` builds
  -- without it when pkg-config finds none; the rock always has it.
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },
}
build = {
  type = "builtin",
  modules = {
    ["luaws.core"] = {
      sources = {
        "csrc/core/body.c", "csrc/core/close.c", "csrc/core/codec.c", "csrc/core/deflate.c", "csrc/core/errors.c", "csrc/core/ext.c",
        "csrc/core/frame.c", "csrc/core/handshake.c", "csrc/core/hixie.c", "csrc/core/http.c",
        "csrc/core/mask.c", "csrc/core/utf8.c",
        "csrc/io/backplane.c", "csrc/io/client.c", "csrc/io/conn.c", "csrc/io/loop.c", "csrc/io/proxy.c",
        "csrc/io/scripted.c", "csrc/io/server.c", "csrc/io/sock.c",
        "csrc/io/tls.c", "csrc/io/topics.c", "csrc/io/transport.c",
        "csrc/lua/l_backplane.c", "csrc/lua/l_conn.c", "csrc/lua/l_ext.c", "csrc/lua/l_process.c", "csrc/lua/l_server.c", "csrc/lua/l_shared.c", "csrc/lua/l_signal.c", "csrc/lua/l_stdio.c", "csrc/lua/l_tls.c",
        "csrc/lua/l_topics.c", "csrc/lua/l_util.c",
        "csrc/lua/module.c",
      },
      defines = { "LUAWS_HIREDIS" },
      incdirs = { "csrc/core", "csrc/io", "csrc/lua", "$(LIBUV_INCDIR)", "$(OPENSSL_INCDIR)",
                  "$(HIREDIS_INCDIR)" },
      libdirs = { "$(LIBUV_LIBDIR)", "$(OPENSSL_LIBDIR)", "$(HIREDIS_LIBDIR)" },
      libraries = { "uv", "ssl", "crypto", "z", "hiredis" },
    },
    ["luaws"] = "lua/luaws/init.lua",
    ["luaws.options"] = "lua/luaws/options.lua",
    ["luaws.server"] = "lua/luaws/server.lua",
    ["luaws.client"] = "lua/luaws/client.lua",
    ["luaws.deflate"] = "lua/luaws/deflate.lua",
    ["luaws.eventsource"] = "lua/luaws/eventsource.lua",
    ["luaws.coro"] = "lua/luaws/coro.lua",
    ["luaws.cli"] = "lua/luaws/cli.lua",
    ["luaws.supervisor"] = "lua/luaws/supervisor.lua",
  },
  install = {
    bin = { luaws = "bin/luaws" },   -- the luaws command (luaws --help)
  },
}
