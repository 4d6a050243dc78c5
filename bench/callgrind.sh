#!/usr/bin/env bash
# Instructions per message of the luaws echo server, counted by callgrind: deterministic,
# so a change to the message path shows even on a busy shared machine, where times do not.
#
#   bench/callgrind.sh [LUA] [onmessage|ondata|floor|lua-floor|event-floor] [IN_FLIGHT] [SECONDS]
#       defaults: lua5.4 onmessage 16 15
#
# Runs examples/echo_server.lua (with --ondata for ondata) under callgrind, loads it with
# build/bench/loadgen (made by bench/run.sh or `make bench-smoke`): 100 connections, 16 B
# text, IN_FLIGHT messages in flight each; then prints the process's instructions per
# message (all of them: loop, parsing, Lua, the send) and those of the message dispatch
# (ev_message, inclusive). The profile stays in build/bench/callgrind.out for
# callgrind_annotate. With LUAWS_HOST=path, that program runs the script instead of the
# interpreter (an interpreter linked with the Lua static library, whose functions
# callgrind can then name). floor, lua-floor and event-floor count bench/floor_echo.c
# instead: alone, with --lua and with --lua-event (build/bench/floor_echo and
# floor_echo_LUA, which bench/run.sh builds).
set -eu
cd "$(dirname "$0")/.."
LUA=${1:-lua5.4}; MODE=${2:-onmessage}; M=${3:-16}; SECS=${4:-15}
OUT=build/bench
LOADGEN=$OUT/loadgen
[ -x "$LOADGEN" ] || { echo "no $LOADGEN: run make bench-smoke first" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
cmd=("${LUAWS_HOST:-$LUA}" examples/echo_server.lua 0)
case $MODE in
  ondata) cmd+=(--ondata) ;;
  floor) cmd=("$OUT/floor_echo") ;;
  lua-floor) cmd=("$OUT/floor_echo_$LUA" --lua) ;;
  event-floor) cmd=("$OUT/floor_echo_$LUA" --lua-event) ;;
esac
[ -x "${cmd[0]}" ] || command -v "${cmd[0]}" >/dev/null ||
  { echo "no ${cmd[0]}: run bench/run.sh --smoke first" >&2; exit 1; }
rm -f "$OUT/callgrind.out" "$OUT/callgrind.srv"
LUA_CPATH="build/$LUA/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;;" \
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
  "${cmd[@]}" >"$OUT/callgrind.srv" 2>&1 &
srv=$!
port=""
for _ in $(seq 300); do   # callgrind starts slowly: up to 30 s
  port=$(sed -n 's/^listening on \([0-9][0-9]*\).*/\1/p' "$OUT/callgrind.srv")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { kill "$srv"; echo "the server did not start" >&2; exit 1; }
line=$("$LOADGEN" echo -p "$port" -c 100 -s 16 -m "$M" -d "$SECS")
kill -TERM "$srv"
wait "$srv" || true
msgs=$(echo "$line" | sed -n 's/.* msgs=\([0-9][0-9]*\).*/\1/p')
total=$(callgrind_annotate "$OUT/callgrind.out" 2>/dev/null |
  awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
dispatch=$(callgrind_annotate --inclusive=yes "$OUT/callgrind.out" 2>/dev/null |
  awk '/:ev_message / { gsub(",", "", $1); print $1; exit }')
[ -n "$msgs" ] && [ "$msgs" -gt 0 ] || { echo "no messages: $line" >&2; exit 1; }
awk -v t="$total" -v d="${dispatch:-0}" -v m="$msgs" -v lua="$LUA" -v mode="$MODE" -v k="$M" \
  'BEGIN { printf "%s %s, %d in flight: %d messages; instructions per message: %.0f in all, %.0f in ev_message\n", lua, mode, k, m, t / m, d / m }'
