#!/bin/sh
# Builds and installs luaws with `luarocks make` into a local tree (offline), checks that
# the installed luaws command runs, then runs spec/installed_smoke.lua against that
# installed copy only. Also checks that the rockspec names every C source and Lua module
# of the checkout.
set -e
cd "$(dirname "$0")/.."
SPEC=rockspec/luaws-scm-1.rockspec
missing=0
for f in csrc/*/*.c lua/luaws/*.lua; do
  if ! grep -q "\"$f\"" "$SPEC"; then echo "not ok 1 - $SPEC lacks $f"; missing=1; fi
done
[ "$missing" -eq 0 ] && echo "ok 1 - $SPEC lists every source file"
TREE=$(pwd)/build/rocktree
rm -rf "$TREE"
luarocks --lua-version=5.4 make --tree "$TREE" "$SPEC" >build/rock.log 2>&1 || { cat build/rock.log; echo "not ok 2 - luarocks make"; exit 1; }
echo "ok 2 - luarocks make --tree build/rocktree"
if "$TREE/bin/luaws" --help >build/rock-help.log 2>&1 && grep -q "luaws connect" build/rock-help.log; then
  echo "ok 3 - the installed luaws command runs (luaws --help)"
else
  cat build/rock-help.log; echo "not ok 3 - the installed luaws command runs (luaws --help)"; exit 1
fi
LUAWS_BIN="$TREE/bin/luaws" LUA_PATH="$TREE/share/lua/5.4/?.lua;$TREE/share/lua/5.4/?/init.lua;spec/?.lua;/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua" \
LUA_CPATH="$TREE/lib/lua/5.4/?.so;/usr/lib/x86_64-linux-gnu/lua/5.4/?.so" \
  lua5.4 /usr/bin/busted -o TAP --pattern=installed_smoke spec/installed_smoke.lua | awk '/^(not )?ok [0-9]+/ { sub(/ok [0-9]+/, "ok " NR + 3) } { print }'
