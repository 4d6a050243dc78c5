#!/bin/sh
# make chaos: starts spec/chaos/server.lua with one build, attacks it from outside with
# spec/chaos/attack.py, stops it, and fails on any failed case, on the server's death,
# or on a sanitizer report from it.
#   sh spec/chaos/run.sh BUILD_DIR [LUA]      e.g. build/lua5.4, build/asan-lua5.4
# A BUILD_DIR whose name contains "asan" runs under ASan+UBSan (the runtime preloaded, as
# scripts/run_specs.sh does; a 16 MiB quarantine so that freed memory shows in RSS), with
# longer bounds (CHAOS_SCALE=3), RSS ceilings doubled (CHAOS_RSS_SCALE=2) and 2,000
# churned connections instead of 20,000. Extra arguments for attack.py: CHAOS_ARGS="--only churn".
# Prints TAP and a last line "chaos: N passed, N failed" (the TAP lines are what scripts/suite.sh counts).
cd "$(dirname "$0")/../.."
BUILD=${1:-build/lua5.4}
LUA=${2:-lua5.4}
if [ ! -f "$BUILD/luaws/core.so" ]; then
  echo "not ok 1 - no build in $BUILD (make build first)"; echo "chaos: 0 passed, 1 failed"; exit 1
fi
export LUA_PATH="lua/?.lua;lua/?/init.lua;;"
export LUA_CPATH="$BUILD/?.so;;"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case $BUILD in
  *asan*)
    ASAN_RT=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86:quarantine_size_mb=16:${ASAN_OPTIONS:-}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
    export LSAN_OPTIONS="suppressions=$(pwd)/spec/lsan.supp:${LSAN_OPTIONS:-}"
    export CHAOS_SCALE=${CHAOS_SCALE:-3}
    export CHAOS_CHURN=${CHAOS_CHURN:-2000}
    export CHAOS_RSS_SCALE=${CHAOS_RSS_SCALE:-2}
    ;;
esac

# The server: its port on the first line of its output. Only the server and the luaws
# client (CHAOS_CLIENT_PRELOAD, read by attack.py) get the sanitizer runtime preloaded.
if [ -n "$ASAN_RT" ]; then
  LD_PRELOAD="$ASAN_RT" nice -n 5 "$LUA" spec/chaos/server.lua >"$tmp/out" 2>"$tmp/err" &
  export CHAOS_CLIENT_PRELOAD="$ASAN_RT"
else
  nice -n 5 "$LUA" spec/chaos/server.lua >"$tmp/out" 2>"$tmp/err" &
fi
pid=$!
port=
i=0
while [ $i -lt 100 ] && [ -z "$port" ]; do
  port=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$tmp/out")
  [ -n "$port" ] || sleep 0.1
  i=$((i + 1))
done
if [ -z "$port" ]; then
  echo "not ok 1 - the chaos server did not start"
  sed 's/^/# /' "$tmp/err"
  kill "$pid" 2>/dev/null
  echo "chaos: 0 passed, 1 failed"; exit 1
fi
missing=$(sed -n 's/^missing //p' "$tmp/out")
[ "$missing" = "-" ] || echo "# this luaws does not take the options: $missing (cases that need them fail)"

start=$(date +%s)
{ python3 spec/chaos/attack.py --pid "$pid" --port "$port" --lua "$LUA" $CHAOS_ARGS 2>&1
  echo $? >"$tmp/rc"; } | tee "$tmp/tap"
attack=$(cat "$tmp/rc")

# Stop the server the polite way, so that the sanitizers' exit checks run; then bound it.
alive=1
if kill -0 "$pid" 2>/dev/null; then
  python3 - "$port" <<'EOF' >/dev/null 2>&1
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /shutdown HTTP/1.1\r\nHost: x\r\n\r\n")
s.recv(100)
EOF
  i=0
  while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null
    echo "# the server did not stop on GET /shutdown"
  fi
else
  alive=0
fi
wait "$pid"
server_status=$?
passed=$(grep -cE '^ok [0-9]+' "$tmp/tap")
failed=$(grep -cE '^not ok [0-9]+' "$tmp/tap")
n=$((passed + failed))
extra=0
if [ "$alive" -eq 0 ]; then
  n=$((n + 1)); extra=$((extra + 1))
  echo "not ok $n - the server process died during the run (status $server_status)"
  if grep -qE 'Sanitizer|runtime error:' "$tmp/err"; then
    grep -A 30 -E 'Sanitizer|runtime error:' "$tmp/err" | head -n 40 | sed 's/^/# /'
  else
    tail -n 20 "$tmp/err" | sed 's/^/# /'
  fi
elif grep -qE 'Sanitizer|runtime error:' "$tmp/err"; then
  n=$((n + 1)); extra=$((extra + 1))
  echo "not ok $n - sanitizer report from the server"
  grep -A 30 -E 'Sanitizer|runtime error:' "$tmp/err" | head -n 60 | sed 's/^/# /'
elif [ "$server_status" -ne 0 ]; then
  n=$((n + 1)); extra=$((extra + 1))
  echo "not ok $n - the server exited with status $server_status"
  tail -n 20 "$tmp/err" | sed 's/^/# /'
else
  n=$((n + 1)); passed=$((passed + 1))
  echo "ok $n - the server stopped cleanly, no sanitizer report"
fi
echo "# handler errors logged by the server: $(grep -c 'handler error' "$tmp/err")"
echo "# run time: $(( $(date +%s) - start ))s"
failed=$((failed + extra))
echo "chaos: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$attack" -eq 0 ]
