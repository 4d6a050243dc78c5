#!/bin/sh
# The README's test command (make test): builds for Lua 5.4 and LuaJIT, runs the C unit
# tests of the protocol core, the busted specs on both Luas, and a smoke spec against a
# copy installed with `luarocks make`. Extra suites: LUAWS_SUITES="asan valgrind bench".
# Last line: "N passed, N failed"; exit status non-zero on any failure.
cd "$(dirname "$0")/.."
TALLY=$(mktemp); export TALLY
suite() { sh scripts/suite.sh "$@" || failed=1; }
failed=0

suite "build lua5.4" make -s build LUA=lua5.4
suite "build luajit" make -s build LUA=luajit
suite "core unit tests (C)" make -s test-c
suite "specs lua5.4" sh scripts/run_specs.sh lua5.4 build/lua5.4
suite "specs luajit" sh scripts/run_specs.sh luajit build/luajit
suite "luarocks make + installed smoke" sh scripts/rock_smoke.sh
for s in $LUAWS_SUITES; do
  case $s in
    asan) suite "ASan+UBSan" make -s asan ;;
    valgrind) suite "valgrind" make -s valgrind ;;
    bench) suite "bench smoke" make -s bench-smoke ;;
    fuzz) suite "fuzz" make -s fuzz FUZZ_SECONDS=${FUZZ_SECONDS:-20} ;;
  esac
done

pass=$(awk '{p += $1} END {print p + 0}' "$TALLY")
fail=$(awk '{f += $2} END {print f + 0}' "$TALLY")
rm -f "$TALLY"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$failed" -eq 0 ]
