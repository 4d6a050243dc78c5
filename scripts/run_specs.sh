#!/bin/sh
# Runs the busted specs with one Lua against one build folder, as TAP.
#   sh scripts/run_specs.sh LUA BUILD [spec files...]
# Under LUAWS_SANITIZE the interpreter preloads clang's ASan runtime; under
# LUAWS_VALGRIND it runs inside valgrind. Prints TAP; exit status is busted's.
set -e
cd "$(dirname "$0")/.."
LUA=${1:-lua5.4}; BUILD=${2:-build/$LUA}
shift 2 2>/dev/null || shift $#
SPECS=${*:-spec}
LPATH="lua/?.lua;lua/?/init.lua;spec/?.lua"
CPATH="$BUILD/?.so"
RUN="$LUA"
# For specs that start Lua programs of their own (spec/embed): the same interpreter and
# build, and (under LUAWS_SANITIZE) the runtime to preload into them.
export LUAWS_LUA="$LUA" LUAWS_CPATH="$CPATH;;" LUAWS_LPATH="$LPATH;;" LUAWS_PRELOAD=""
if [ -n "$LUAWS_SANITIZE" ]; then
  ASAN_RT=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
  export LD_PRELOAD="$ASAN_RT" LUAWS_PRELOAD="$ASAN_RT"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
  export LSAN_OPTIONS="suppressions=$(pwd)/spec/lsan.supp:${LSAN_OPTIONS:-}"
fi
if [ -n "$LUAWS_VALGRIND" ]; then
  RUN="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --suppressions=spec/valgrind.supp $LUA"
fi
exec $RUN /usr/bin/busted --lpath="$LPATH" --cpath="$CPATH" -o TAP $SPECS
