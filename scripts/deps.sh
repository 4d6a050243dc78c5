#!/bin/sh
# Installs what luaws needs to build and test, only when it is missing: Debian packages
# (Lua 5.1 to 5.4, LuaJIT, libuv, OpenSSL, zlib, busted, LuaRocks, Python websockets, curl,
# luv, cqueues and lua-http for spec/embed_spec.lua, tinyproxy for spec/proxy_spec.lua:
# the executable alone, without the service that would start one, nginx as a reverse
# proxy for spec/nginx_spec.lua, wrk for bench/run.sh's test i, hiredis for the Redis
# backplane and redis-server for spec/backplane_spec.lua) and the npm packages of
# spec/peers/package.json (into spec/peers/node_modules): `ws`, an interop peer, and `puppeteer-core`, which drives
# Chromium for make browser.
# Arguments name more Debian packages, for one target:
#   sh scripts/deps.sh chromium libnss3-tools      (make browser)
set -e
cd "$(dirname "$0")/.."

PKGS="build-essential pkg-config clang libclang-rt-dev valgrind lua5.4 liblua5.4-dev luajit libluajit-5.1-dev
lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev
libuv1-dev libssl-dev openssl zlib1g-dev lua-busted lua-dkjson luarocks python3 python3-websockets
tinyproxy-bin nodejs npm curl lua-luv lua-cqueues lua-http lua-basexx nginx wrk
libhiredis-dev redis-server redis-tools $*"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# nodejs/npm may come from outside Debian's packages (as on these machines): a working
# node and npm on PATH is enough.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  missing=$(echo "$missing" | tr ' ' '\n' | grep -v -x -e nodejs -e npm | tr '\n' ' ')
fi
missing=$(echo $missing)
if [ -n "$missing" ]; then
  echo "deps: installing $missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ ! -d spec/peers/node_modules/ws ] || [ ! -d spec/peers/node_modules/puppeteer-core ]; then
  echo "deps: npm install (spec/peers)"
  (cd spec/peers && npm install --no-audit --no-fund --silent >/dev/null)
fi
