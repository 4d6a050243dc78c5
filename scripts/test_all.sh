#!/bin/sh
# The README's test command (make test): runs the C unit tests of the protocol core and
# of the I/O layer, builds for Lua 5.4, LuaJIT, 5.3, 5.2 and 5.1 and runs the busted specs
# on each, and a smoke spec against a copy installed with `luarocks make`.
# Extra suites: LUAWS_SUITES="asan valgrind fuzz bench chaos chaos-asan big browser".
# Last line: "N passed, N failed"; exit status non-zero on any failure.
cd "$(dirname "$0")/.."
TALLY=$(mktemp); export TALLY
suite() { sh scripts/suite.sh "$@" || failed=1; }
failed=0

suite "core unit tests (C)" make -s test-c
suite "io unit tests (C)" make -s test-io
suite "two Lua states in one process (C)" make -s test-embed
for lua in lua5.4 luajit lua5.3 lua5.2 lua5.1; do
  suite "build $lua" make -s build LUA=$lua
  suite "specs $lua" sh scripts/run_specs.sh $lua build/$lua
done
suite "luarocks make + installed smoke" sh scripts/rock_smoke.sh
for s in $LUAWS_SUITES; do
  case $s in
    asan) suite "ASan+UBSan" make -s asan ;;
    valgrind) suite "valgrind" make -s valgrind ;;
    bench) suite "bench smoke" make -s bench-smoke ;;
    fuzz) suite "fuzz" make -s fuzz FUZZ_SECONDS=${FUZZ_SECONDS:-20} ;;
    chaos) suite "chaos (attacks from outside the process)" make -s chaos ;;
    chaos-asan) suite "chaos on the ASan+UBSan build" make -s chaos-asan ;;
    browser) suite "Chromium: the chat example (make browser)" make -s browser ;;
    big) suite "a 4 GiB message (lua5.4)" env LUAWS_BIG=1 sh scripts/run_specs.sh lua5.4 build/lua5.4 spec/big_spec.lua ;;
  esac
done

pass=$(awk '{p += $1} END {print p + 0}' "$TALLY")
fail=$(awk '{f += $2} END {print f + 0}' "$TALLY")
rm -f "$TALLY"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$failed" -eq 0 ]
