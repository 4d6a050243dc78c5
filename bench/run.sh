#!/usr/bin/env bash
# luaws benchmarks (issue 4).
#   bench/run.sh           `make bench`: tests a-h and p against examples/echo_server.lua on
#                          each Lua in BENCH_LUAS and against Node's ws (when node and
#                          spec/peers/node_modules/ws exist), i against bench/http_server.lua
#                          and Node's http module; a table with luaws/Node ratios
#   bench/run.sh --smoke   `make bench-smoke`: every mode for about a second, luaws on lua5.4
#                          only, the floor where its way differs from a's (d, e a, g, h, i
#                          pipelined, j, k2); exits 1 if a mode reports no messages or any
#                          error
#
# The tests (loopback; server pinned to cpu 0, generator to cpu 1 when there are 2 cores):
#   a  echo, 100 connections, 16-byte text, 1 in flight      BENCH_SECONDS (10)
#      (luaws also with --ondata, as p: ad)
#   b  echo, 10 connections, 64 KiB binary, 1 in flight      BENCH_SECONDS (10)
#   p  a with 16 messages in flight per connection           BENCH_SECONDS (10)
#      (each read brings several messages: the cost per message with the per-read cost
#      shared out), luaws both with onmessage and with --ondata (ws.ondata, no event
#      object)
#   c  BENCH_IDLE_CONNS (10000) idle connections: server RSS growth per connection,
#      read from /proc/PID/status after holding them BENCH_IDLE_SECONDS (3), and the
#      projection for a million idle connections
#   d  connect + handshake + close, 50 at once               BENCH_CONNECT_SECONDS (5)
#   e  a and b over wss://, and c over TLS, against the same servers terminating TLS with
#      a self-signed EC P-256 certificate made for the run with openssl
#   f  as many connections as the fd limit allows (BENCH_MAX_CONNS, default limit - 64),
#      from 2 generator processes over 8 source addresses, then one broadcast to all;
#      BENCH_MAX=0 skips it
#   g  a with permessage-deflate (examples/echo_server.lua --deflate, Node ws with
#      perMessageDeflate): 100 connections, 1 KiB of JSON-like text, compressed both ways
#      with context takeover, each echo inflated and checked by the generator (loadgen -z);
#      both servers' threshold is set to 256 B so both compress every message
#   h  BENCH_DEFLATE_IDLE_CONNS (2000) idle connections as c, with permessage-deflate
#      agreed and one message each way first, so each side's zlib state exists
#   i  plain HTTP/1.1 with keep-alive: "Hello, world!" (13 B, text/plain) from
#      bench/http_server.lua and from Node's http module (spec/peers/http_server.js), the
#      load from wrk (Debian's, 1 thread): BENCH_HTTP_CONNS (50) connections, 1 request in
#      flight each; then the same with BENCH_HTTP_PIPELINE (16; 0 skips it) requests
#      pipelined per connection (bench/wrk_pipeline.lua)
#   j  topics: BENCH_TOPIC_CONNS (10000) connections all subscribed to one topic
#      (bench/topics_server.lua; Node ws, which has no topics, keeps a Set per topic and
#      iterates it, bench/topics_server.js), then BENCH_PUBLISHES (100) publishes of 64 B
#      back to back: the server's time per publish (a monotonic clock around the call),
#      the time until the generator has every message, per publish, the server's CPU per
#      publish, and the server's RSS growth per subscription (next to its growth per idle
#      connection, as c); best of BENCH_REPEAT by the median publish time
#   k  a through `luaws serve` (examples/echo_server.lua --reuseport; luaws only, on the
#      first Lua of BENCH_LUAS): k1p 1 worker pinned as in a; k1 and k2, 1 and 2 workers
#      with nothing pinned (the generator takes whatever core is free); kz1 and kz2, the
#      same with g's load (permessage-deflate, 1 KiB), where the server and not the
#      generator needs the CPU. Server CPU is the sum over the supervisor and its
#      workers; each worker's share is given too
# a, b, p, d, g, i, j and k run BENCH_REPEAT (3) times per peer, the peers taking turns, and the best
# run counts; the table also gives the server's CPU time per message, which other load on
# a shared machine moves much less than throughput.
# The floor: every test but f runs against bench/floor_echo.c too, the thinnest C server
# doing the test's work (one thread, epoll, no libuv, no Lua): this machine's ceiling. The
# report ends with each floor and each peer as a share of it. a b p c d: the echo (d: a
# close frame answered, then TCP closed); e: --tls; g: --deflate (a zlib inflater and
# deflater per connection, luaws's settings), and bench/zlib_floor.c, those zlib calls
# alone; h: --deflate --park (only the windows kept between messages, as luaws parks an
# idle connection; also without --park, for scale); i: its fixed 200 answer; j: its
# /subscribe and /publish; k: --workers N (N processes on one SO_REUSEPORT port).
# The Lua floors (a and p; smoke: a): floor_echo built with each Lua (rows lf:LUA). With
# --lua-event every message goes through an event table and event.target:send(event.data)
# on a socket userdata, at their cheapest, which is what the browser's API costs on that
# Lua (luaws's onmessage is measured against it); with --lua, through one Lua call
# (luaws's ws.ondata against it).
# Other knobs: BENCH_TESTS ("a b c d e f g h i j k p": the tests to run), BENCH_LUAS ("lua5.4 luajit"),
# BENCH_NODE (1; 0 skips Node ws and http), BENCH_FLOOR (1; 0 skips the floors),
# BENCH_DEFLATE_IDLE_CONNS (2000: h), BENCH_TOPIC_CONNS (10000: j), BENCH_PUBLISHES (100: j),
# BENCH_OUT (build/bench: the log and the loadgen binary), CC.
set -u
cd "$(dirname "$0")/.." || exit 1

SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1

OUT=${BENCH_OUT:-build/bench}
mkdir -p "$OUT"
LOADGEN=$OUT/loadgen
LOG=$OUT/bench-$(date +%Y%m%d-%H%M%S).log
if [ $SMOKE = 1 ]; then
  SECS=1; CSECS=1; IDLE=50; ZIDLE=50; IDLE_SECS=1; MAXTEST=1; MAXCONNS=200
  TCONNS=200; PUBS=10
  LUAS=lua5.4; NODE=0
else
  SECS=${BENCH_SECONDS:-10}
  CSECS=${BENCH_CONNECT_SECONDS:-5}
  IDLE=${BENCH_IDLE_CONNS:-10000}
  ZIDLE=${BENCH_DEFLATE_IDLE_CONNS:-2000}
  IDLE_SECS=${BENCH_IDLE_SECONDS:-3}
  TCONNS=${BENCH_TOPIC_CONNS:-10000}
  PUBS=${BENCH_PUBLISHES:-100}
  MAXTEST=${BENCH_MAX:-1}
  MAXCONNS=${BENCH_MAX_CONNS:-$(($(ulimit -n) - 64))}
  LUAS=${BENCH_LUAS:-lua5.4 luajit}
  NODE=${BENCH_NODE:-1}
fi
TESTS=${BENCH_TESTS:-a b c d e f g h i j k p}
[ $SMOKE = 1 ] && TESTS="a b c d e f g h i j k p"
has() { case " $TESTS " in *" $1 "*) return 0 ;; esac; return 1; }
TLS=1; has e || TLS=0
has f || MAXTEST=0
HZ=$(getconf CLK_TCK)

PIDS=""
SRV_WORKERS=""   # start_serve: the workers of a luaws serve
TLSDIR=""
cleanup() {
  local p
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  for p in $PIDS; do wait "$p" 2>/dev/null; done
  [ -n "$TLSDIR" ] && rm -rf "$TLSDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*" | tee -a "$LOG"; }
die() { echo "bench: $*" >&2; exit 1; }

# ---- build ----------------------------------------------------------------------------

build_luas=""
for lua in $LUAS; do
  if ! command -v "$lua" >/dev/null 2>&1; then
    say "skip $lua: not installed"; continue
  fi
  if make --no-print-directory -s LUA="$lua" build >>"$LOG" 2>&1; then
    build_luas="$build_luas $lua"
  else
    [ $SMOKE = 1 ] && die "make LUA=$lua failed (see $LOG)"
    say "skip $lua: make LUA=$lua failed (see $LOG)"
  fi
done
LUAS=$build_luas
[ -n "$LUAS" ] || die "no Lua to run"

FLOOR=$OUT/floor_echo
FLOOR_ON=0
if [ "${BENCH_FLOOR:-1}" = 1 ]; then
  if ${CC:-cc} -O2 -Wall -Wextra -Icsrc/core -o "$FLOOR" bench/floor_echo.c csrc/core/*.c \
       -lssl -lcrypto -lz >>"$LOG" 2>&1; then
    FLOOR_ON=1
  elif [ $SMOKE = 1 ]; then
    die "cannot build bench/floor_echo.c (see $LOG)"
  else
    say "skip the floor: bench/floor_echo.c did not build (see $LOG)"
  fi
fi
# The Lua floors: floor_echo built with each Lua, whose --lua-event and --lua run a's and
# p's load through a Lua handler (test a and p, rows lf:LUA)
LFLOORS=""
if [ "$FLOOR_ON" = 1 ]; then
  for lua in $LUAS; do
    pc=$lua; [ "$lua" = luajit ] && pc=luajit
    if pkg-config --exists "$pc" 2>/dev/null &&
       ${CC:-cc} -O2 -Wall -Wextra -DFLOOR_LUA $(pkg-config --cflags "$pc") -Icsrc/core \
         -o "$OUT/floor_echo_$lua" bench/floor_echo.c csrc/core/*.c -lssl -lcrypto -lz \
         $(pkg-config --libs "$pc") >>"$LOG" 2>&1; then
      LFLOORS="$LFLOORS lf:$lua"
    elif [ $SMOKE = 1 ]; then
      die "cannot build bench/floor_echo.c with $lua (see $LOG)"
    else
      say "skip the $lua floor: bench/floor_echo.c did not build with $lua (see $LOG)"
    fi
  done
fi
ZFLOOR=$OUT/zlib_floor
if [ "${BENCH_FLOOR:-1}" = 1 ] && [ $SMOKE = 0 ] &&
   ${CC:-cc} -O2 -Wall -Wextra -o "$ZFLOOR" bench/zlib_floor.c -lz >>"$LOG" 2>&1; then
  ZFLOOR_ON=1
else
  ZFLOOR_ON=0
fi
${CC:-cc} -O2 -g -Wall -Wextra -Icsrc/core -o "$LOADGEN" bench/loadgen.c csrc/core/*.c \
  -lssl -lcrypto -lz -lpthread || die "cannot build the load generator"

# e: a throwaway self-signed certificate for the TLS servers; its key dies with the run.
if [ "$TLS" = 1 ]; then
  TLSDIR=$(mktemp -d "${TMPDIR:-/tmp}/luaws-bench-tls.XXXXXX")
  if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
       -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
       -keyout "$TLSDIR/key.pem" -out "$TLSDIR/cert.pem" >>"$LOG" 2>&1; then
    [ $SMOKE = 1 ] && die "openssl cannot make the test certificate (see $LOG)"
    say "skip e: openssl cannot make the test certificate (see $LOG)"; TLS=0
  fi
fi

if [ "$NODE" = 1 ]; then
  if ! command -v node >/dev/null 2>&1; then
    NODE=0
  elif [ ! -d spec/peers/node_modules/ws ] && command -v npm >/dev/null 2>&1; then
    (cd spec/peers && npm install --no-audit --no-fund --silent >/dev/null 2>&1)
  fi
  [ -d spec/peers/node_modules/ws ] || NODE=0
fi

# i needs wrk (scripts/deps.sh installs Debian's)
HTTP_ON=0
if has i; then
  if command -v wrk >/dev/null 2>&1; then
    HTTP_ON=1
  elif [ $SMOKE = 1 ]; then
    say "FAIL i: wrk is not installed (make deps)"; FAILED_WRK=1
  else
    say "skip i: wrk is not installed (make deps)"
  fi
fi

PIN_SRV=""; PIN_GEN=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
  PIN_SRV="taskset -c 0"; PIN_GEN="taskset -c 1"
fi

# ---- helpers --------------------------------------------------------------------------

# start_server KIND LUA SCRIPT [ARGS...]: sets SRV_PID and SRV_PORT (from its "listening
# on" line). The script gets port 0 and ARGS.
start_server() {
  local kind=$1 lua=$2 script=$3 out=$OUT/server.out i
  shift 3
  : >"$out"
  if [ "$kind" = luaws ]; then
    LUA_CPATH="build/$lua/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;;" \
      $PIN_SRV "$lua" "$script" 0 "$@" >"$out" 2>&1 &
  elif [ "$kind" = floor ]; then
    $PIN_SRV "$script" "$@" >"$out" 2>&1 &
  else
    $PIN_SRV node "$script" 0 "$@" >"$out" 2>&1 &
  fi
  SRV_PID=$!
  PIDS="$PIDS $SRV_PID"
  SRV_PORT=""
  for i in $(seq 100); do
    SRV_PORT=$(sed -n 's/^listening on \([0-9][0-9]*\).*/\1/p' "$out")
    [ -n "$SRV_PORT" ] && return 0
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$out" >&2
  return 1
}

# start_serve N LUA PIN [FLAGS...]: `luaws serve --workers N` of the echo server with
# reuseport (and FLAGS), on a port found free first; sets SRV_PID (the supervisor),
# SRV_WORKERS and SRV_PORT. LUA floor: `floor_echo --workers N`, which finds its port.
start_serve() {
  local n=$1 lua=$2 pin=$3 out=$OUT/server.out i
  shift 3
  local env=(env "LUA_CPATH=build/$lua/?.so;;" "LUA_PATH=lua/?.lua;lua/?/init.lua;;")
  : >"$out"
  if [ "$lua" = floor ]; then
    $pin "$FLOOR" --workers "$n" "$@" >"$out" 2>&1 &
  else
    SRV_PORT=$("${env[@]}" "$lua" -e 'print(require("luaws").listen({ port = 0 }).port)') || return 1
    $pin "${env[@]}" "$lua" bin/luaws serve --workers "$n" examples/echo_server.lua "$SRV_PORT" \
      --reuseport "$@" >"$out" 2>&1 &
  fi
  SRV_PID=$!
  PIDS="$PIDS $SRV_PID"
  for i in $(seq 100); do
    [ "$(grep -c '^listening on' "$out")" -ge "$n" ] && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  SRV_WORKERS=$(pgrep -P "$SRV_PID" | tr '\n' ' ')
  [ "$lua" = floor ] && SRV_PORT=$(sed -n 's/^listening on \([0-9][0-9]*\).*/\1/p' "$out" | head -1)
  [ "$(grep -c '^listening on' "$out")" -ge "$n" ] && return 0
  cat "$out" >&2
  return 1
}

stop_server() {   # a supervisor stops its workers first
  kill "$SRV_PID" 2>/dev/null
  wait "$SRV_PID" 2>/dev/null
  PIDS=$(echo " $PIDS " | sed "s/ $SRV_PID / /")
  SRV_WORKERS=""
}

# user and kernel (system) ticks apart, "U S": on loopback the kernel's TCP work is most of
# a small message's cost, and no change to our code can take it below that part
# (summed over the processes given: a supervisor and its workers)
cpu_split() {
  local p
  for p in "$@"; do sed 's/.*) //' "/proc/$p/stat" 2>/dev/null; done |
    awk '{ u += $12; k += $13 } END { print u + 0, k + 0 }'
}
cpu_each() {   # each process's user + kernel ticks, "A B ..."
  local p
  for p in "$@"; do sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ printf "%d ", $12 + $13 }'; done
}
vmrss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
field() { echo "$1" | tr ' ' '\n' | sed -n "s|^$2=||p" | head -1; }

# wrk_summary URL WRK-ARGS...: one wrk run (with --latency), its figures as the load
# generator's summary line gives them: msgs (answers), msgs/s, p50_us and p99_us, errors
# (socket errors, wrk's timeouts and answers other than 2xx/3xx) and cpu (wrk's own CPU,
# user and kernel, as a share of the wall time).
wrk_summary() {
  local t rc
  t=$( { TIMEFORMAT='%U %S %R'; time $PIN_GEN wrk --latency "$@" >"$OUT/wrk.out" 2>>"$LOG"; } 2>&1 )
  rc=$?
  cat "$OUT/wrk.out" >>"$LOG"
  awk -v t="$t" '
    function us(v) {   # wrk writes 594.00us, 1.23ms, 2.00s, 1.00m
      if (v ~ /us$/) return v + 0
      if (v ~ /ms$/) return v * 1e3
      if (v ~ /s$/) return v * 1e6
      if (v ~ /m$/) return v * 6e7
      return v + 0
    }
    / requests in / { msgs = $1 }
    /^Requests\/sec:/ { rate = $2 }
    /^ +50% / { p50 = us($2) }
    /^ +99% / { p99 = us($2) }
    /Socket errors:/ { for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) errors += $i + 0 }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    END { split(t, c, " "); cpu = c[3] ? 100 * (c[1] + c[2]) / c[3] : 0
          printf "mode=http secs=%.2f msgs=%d msgs/s=%.0f p50_us=%.0f p99_us=%.0f errors=%d cpu=%.1f%%\n",
            c[3], msgs, rate, p50, p99, errors, cpu }' "$OUT/wrk.out"
  return $rc
}

# gen ARGS...: runs the load generator against the server (wrk when ARGS start with wrk);
# LINE is its summary line plus the server's CPU use over the same time, as a share of
# the wall time and per message (or connection, or request). Other work on a shared
# machine takes CPU away from the server but hardly changes what each message costs it,
# so the cost is the steadier figure.
gen() {
  local c0 c1 t0 t1 rc
  local s0 s1 e0 e1
  # shellcheck disable=SC2086
  s0=$(cpu_split "$SRV_PID" $SRV_WORKERS); e0=$(cpu_each $SRV_WORKERS); t0=$(date +%s%N)
  if [ "$1" = wrk ]; then
    LINE=$(wrk_summary "http://127.0.0.1:$SRV_PORT/" "${@:2}"); rc=$?
  else
    LINE=$($PIN_GEN "$LOADGEN" "$@" -p "$SRV_PORT" 2>>"$LOG"); rc=$?
  fi
  # shellcheck disable=SC2086
  t1=$(date +%s%N); s1=$(cpu_split "$SRV_PID" $SRV_WORKERS); e1=$(cpu_each $SRV_WORKERS)
  if [ -n "$SRV_WORKERS" ]; then   # each worker's CPU as a share of the wall time
    LINE="$LINE worker_cpu=$(awk -v a="$e0" -v b="$e1" -v hz="$HZ" -v ns="$((t1 - t0))" \
      'BEGIN { n = split(a, x, " "); split(b, y, " ")
               for (i = 1; i <= n; i++) {
                 sep = (i > 1) ? "/" : ""
                 printf "%s%.1f%%", sep, 100 * (y[i] - x[i]) / hz / (ns / 1e9) } }')"
  fi
  LINE="$LINE $(awk -v a="$s0" -v b="$s1" -v hz="$HZ" -v ns="$((t1 - t0))" -v m="$(field "$LINE" msgs)" \
    'BEGIN { split(a, x, " "); split(b, y, " "); u = y[1] - x[1]; k = y[2] - x[2]; c = u + k
             per = (m > 0 ? 1e6 / hz / m : 0)
             printf "server_cpu=%.1f%% server_us_per_msg=%.2f server_user_us=%.2f server_sys_us=%.2f",
               100 * c / hz / (ns / 1e9), c * per, u * per, k * per }') rc=$rc"
  say "  $LINE"
  return $rc
}

http_get() {   # PORT PATH: the "count=..." line of the response
  timeout 60 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1
    printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$1" >&3
    cat <&3' "$1" "$2" 2>/dev/null | tr -d '\r' | grep '^count=' | tail -1
}

declare -A R   # R[peer,test] = value; peer is lua5.4, luajit or ws
FAILED=0
check() {   # smoke: the run just made must have worked
  local what=$1 rc=$2 need_msgs=$3
  [ $SMOKE = 1 ] || return 0
  local hs_fail
  hs_fail=$(field "$LINE" hs_fail)   # (wrk's line has none)
  if [ "$rc" != 0 ] || [ "$(field "$LINE" errors)" != 0 ] || [ "${hs_fail:-0}" != 0 ] ||
     { [ "$need_msgs" = 1 ] && [ "$(field "$LINE" msgs)" = 0 ]; }; then
    say "FAIL $what"; FAILED=1
  else
    say "ok   $what"
  fi
}

# ---- the tests ------------------------------------------------------------------------

# A peer is lua5.4 or luajit (luaws on that Lua), ws (Node) or floor (bench/floor_echo.c,
# the thinnest C server, what this machine and generator allow; it answers HTTP and the
# topics requests itself).
# start_peer PEER [broadcast | tls | deflate | park | ondata | http | topics]; tls: the
# echo server on wss:// (test e); deflate: with permessage-deflate (tests g and h); park:
# the floor with deflate that parks its zlib streams between messages (h); ondata: with
# ws.ondata instead of onmessage (test p's pd rows); http: the plain HTTP servers of i,
# bench/http_server.lua and Node's http module (spec/peers/http_server.js) for ws
start_peer() {
  local flags=()
  [ "${2:-}" = tls ] && flags=(--tls "$TLSDIR/cert.pem" "$TLSDIR/key.pem")
  [ "${2:-}" = deflate ] && flags=(--deflate)
  [ "${2:-}" = park ] && flags=(--deflate --park)
  [ "${2:-}" = ondata ] && flags=(--ondata)
  case $1,${2:-} in
    ws,http) start_server ws node spec/peers/http_server.js ;;
    ws,topics) start_server ws node bench/topics_server.js ;;
    ws,*) start_server ws node spec/peers/ws_echo_server.js "${flags[@]}" ;;
    lf:*,ondata) start_server floor - "$OUT/floor_echo_${1#lf:}" --lua ;;
    lf:*,*) start_server floor - "$OUT/floor_echo_${1#lf:}" --lua-event ;;
    floor,*) start_server floor - "$FLOOR" "${flags[@]}" ;;
    *,broadcast) start_server luaws "$1" bench/broadcast_server.lua ;;
    *,http) start_server luaws "$1" bench/http_server.lua ;;
    *,topics) start_server luaws "$1" bench/topics_server.lua ;;
    *) start_server luaws "$1" examples/echo_server.lua "${flags[@]}" ;;
  esac || die "the $1 server did not start"
}

# one PEER TEST KEY LOADGEN-ARGS...: runs a test once on a fresh server; keeps the run with
# the highest KEY (msgs/s or MB/s) in R[PEER,TEST...]: a busy shared machine only ever
# makes a run slower, so the best of BENCH_REPEAT is the closest to the real figure.
# A test whose name starts with e runs over TLS; g, with permessage-deflate; i, over HTTP;
# pd and ad, on the echo server with --ondata.
one() {
  local peer=$1 t=$2 key=$3 rc v
  shift 3
  local PIN_GEN=$PIN_GEN   # k1 and k2 leave the generator unpinned (for gen)
  case $t in
    e*) start_peer "$peer" tls; set -- "$1" -S "${@:2}" ;;
    g) start_peer "$peer" deflate; set -- "$1" -z "${@:2}" ;;
    i*) start_peer "$peer" http ;;
    pd|ad) start_peer "$peer" ondata ;;
    k1p) start_serve 1 "$peer" "$PIN_SRV" || die "the $peer workers did not start" ;;
    k1|k2) PIN_GEN=""; start_serve "${t#k}" "$peer" "" || die "the $peer workers did not start" ;;
    kz1|kz2) PIN_GEN=""; start_serve "${t#kz}" "$peer" "" --deflate || die "the $peer workers did not start"
       set -- "$1" -z "${@:2}" ;;
    *) start_peer "$peer" ;;
  esac
  gen "$@"; rc=$?
  check "$t $peer" $rc 1
  stop_server
  v=$(field "$LINE" "$key")
  if [ -z "${R[$peer,$t]:-}" ] || awk -v a="$v" -v b="${R[$peer,$t]}" 'BEGIN { exit !(a > b) }'; then
    R[$peer,$t]=$v
    R[$peer,${t}_lat]="$(field "$LINE" p50_us) / $(field "$LINE" p99_us)"
    R[$peer,${t}_cpu]="$(field "$LINE" server_cpu) / $(field "$LINE" cpu)"
    R[$peer,${t}_cost]=$(field "$LINE" server_us_per_msg)
    R[$peer,${t}_split]="$(field "$LINE" server_user_us) / $(field "$LINE" server_sys_us)"
    R[$peer,${t}_z]="$(field "$LINE" tx_payload_B) / $(field "$LINE" rx_payload_B)"
    R[$peer,${t}_gen]=$(field "$LINE" cpu)
    R[$peer,${t}_workers]=$(field "$LINE" worker_cpu)
  fi
}

# c: RSS growth of a fresh server per idle connection (once: contention does not move it).
# idle_test PEER [tls | deflate | kept]: over TLS, the result goes to R[PEER,ec] (test e);
# with permessage-deflate and one message each way first, to R[PEER,h] (test h; the floor
# parks its zlib streams, as luaws does); kept: the floor keeping them, to R[floor,h_kept].
idle_test() {
  local peer=$1 t=c rc n=$IDLE kind=${2:-} args
  case $kind in
    tls) t=ec; args=(-S -c "$IDLE") ;;
    deflate) t=h; n=$ZIDLE; args=(-z -c "$ZIDLE"); [ "$peer" = floor ] && kind=park ;;
    kept) t=h_kept; n=$ZIDLE; args=(-z -c "$ZIDLE"); kind=deflate ;;
    *) args=(-c "$IDLE") ;;
  esac
  start_peer "$peer" "$kind"
  gen idle "${args[@]}" -d "$IDLE_SECS" -r "$SRV_PID"; rc=$?
  R[$peer,$t]=$(field "$LINE" rss_per_conn_B)
  check "$t $peer" $rc 0
  if [ $SMOKE = 1 ] && [ "$(field "$LINE" open)" != "$n" ]; then
    say "FAIL $t: not all connections open"; FAILED=1
  fi
  if [ $SMOKE = 1 ] && [ "${t#h}" != "$t" ] && [ "$(field "$LINE" msgs)" != "$n" ]; then
    say "FAIL $t: not every connection had its message echoed"; FAILED=1
  fi
  stop_server
}

# f: MAXCONNS connections from 2 generator processes, each over 4 source addresses, then
# GET /broadcast; every generator exits once each of its connections got the message.
max_test() {
  local peer=$1 nproc=2 per i rss0 rss1 resp g
  local pids="" opened=0 got=0 first="" last="" f l
  per=$((MAXCONNS / nproc))
  say "f: $((per * nproc)) conns from $nproc generators, then one broadcast"
  start_peer "$peer" broadcast
  rss0=$(vmrss_kb "$SRV_PID")
  rm -f "$OUT"/max*.out "$OUT"/max*.err
  for i in $(seq $nproc); do
    $PIN_GEN "$LOADGEN" idle -p "$SRV_PORT" -c $per -d 600 -x $per -o 128 -F 100 -R 2 \
      -a "127.0.0.$((4 * i - 3))-$((4 * i))" >"$OUT/max$i.out" 2>"$OUT/max$i.err" &
    pids="$pids $!"
  done
  PIDS="$PIDS $pids"
  for i in $(seq 1800); do   # at most 180 s to open them all
    [ "$(cat "$OUT"/max*.err 2>/dev/null | grep -c '^ready')" -ge $nproc ] && break
    sleep 0.1
  done
  opened=$(cat "$OUT"/max*.err | sed -n 's/^ready //p' | awk '{ s += $1 } END { print s + 0 }')
  sleep 1
  rss1=$(vmrss_kb "$SRV_PID")
  resp=$(http_get "$SRV_PORT" /broadcast)
  for g in $pids; do
    for i in $(seq 600); do kill -0 "$g" 2>/dev/null || break; sleep 0.1; done   # 60 s each
    kill "$g" 2>/dev/null
    wait "$g" 2>/dev/null
    PIDS=$(echo " $PIDS " | sed "s/ $g / /")
  done
  for i in $(seq $nproc); do
    LINE=$(cat "$OUT/max$i.out")
    say "  $LINE"
    got=$((got + $(field "$LINE" msgs)))
    f=$(field "$LINE" first_rx_ns); l=$(field "$LINE" last_rx_ns)
    [ -n "$f" ] && { [ -z "$first" ] || [ "$f" -lt "$first" ]; } && first=$f
    [ -n "$l" ] && { [ -z "$last" ] || [ "$l" -gt "$last" ]; } && last=$l
  done
  local per_conn proj spread
  per_conn=$(awk -v a="$rss0" -v b="$rss1" -v n="$opened" 'BEGIN { printf "%.0f", n ? (b - a) * 1024 / n : 0 }')
  proj=$(awk -v a="$rss0" -v p="$per_conn" 'BEGIN { printf "%.2f", (a * 1024 + p * 1e6) / 1e9 }')
  spread=$(awk -v f="${first:-0}" -v l="${last:-0}" 'BEGIN { printf "%.1f", (l - f) / 1e6 }')
  LINE="max peer=$peer conns=$opened rss_before_kb=$rss0 rss_kb=$rss1 rss_per_conn_B=$per_conn proj_1M_GB=$proj broadcast=[$resp] delivered=$got spread_ms=$spread"
  say "  $LINE"
  R[$peer,f_conns]=$opened; R[$peer,f_rss]=$(awk -v k="$rss1" 'BEGIN { printf "%.1f", k / 1024 }')
  R[$peer,f_per]=$per_conn; R[$peer,f_proj]=$proj
  R[$peer,f_ms]=$(echo "$resp" | sed -n 's/.*ms=\([0-9.]*\).*/\1/p'); R[$peer,f_spread]=$spread
  R[$peer,f_got]=$got
  if [ $SMOKE = 1 ]; then
    if [ "$opened" = "$((per * nproc))" ] && [ "$got" = "$opened" ]; then say "ok   f broadcast"
    else say "FAIL f broadcast: opened $opened, delivered $got"; FAILED=1; fi
  fi
  stop_server
}

# j: TCONNS connections from one generator, held; the server's RSS per connection; then
# GET /subscribe (all of them to one topic) and its RSS per subscription; then GET
# /publish: PUBS publishes of 64 B, back to back. The generator stops once it has every
# message; its last receive time (CLOCK_MONOTONIC, as the server's t0) ends the run.
topics_test() {
  local peer=$1 g rss0 rss1 rss2 sub pub i t0 last c0 c1
  say "j: $TCONNS conns subscribed to one topic, $PUBS publishes of 64 B: $peer (run $2)"
  start_peer "$peer" topics
  rss0=$(vmrss_kb "$SRV_PID")
  rm -f "$OUT"/topics.out "$OUT"/topics.err
  $PIN_GEN "$LOADGEN" idle -p "$SRV_PORT" -c "$TCONNS" -d 600 -x $((TCONNS * PUBS)) -o 128 -R 2 \
    >"$OUT/topics.out" 2>"$OUT/topics.err" &
  g=$!
  PIDS="$PIDS $g"
  for i in $(seq 1200); do   # at most 120 s to open them all
    grep -q '^ready' "$OUT/topics.err" 2>/dev/null && break
    kill -0 "$g" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1
  rss1=$(vmrss_kb "$SRV_PID")
  sub=$(http_get "$SRV_PORT" /subscribe)
  sleep 1
  rss2=$(vmrss_kb "$SRV_PID")
  c0=$(cpu_split "$SRV_PID")
  pub=$(http_get "$SRV_PORT" "/publish?n=$PUBS&size=64")
  for i in $(seq 600); do kill -0 "$g" 2>/dev/null || break; sleep 0.1; done   # 60 s
  c1=$(cpu_split "$SRV_PID")
  kill "$g" 2>/dev/null
  wait "$g" 2>/dev/null
  PIDS=$(echo " $PIDS " | sed "s/ $g / /")
  LINE=$(cat "$OUT/topics.out")
  say "  $LINE"
  local opened got
  opened=$(field "$LINE" hs_ok); got=$(field "$LINE" msgs)
  t0=$(echo "$pub" | sed -n 's/.*t0_ns=\([0-9]*\).*/\1/p')
  last=$(field "$LINE" last_rx_ns)
  LINE="topics peer=$peer conns=$opened rss_start_kb=$rss0 rss_open_kb=$rss1 rss_subscribed_kb=$rss2 subscribe=[$sub] publish=[$pub] received=$got"
  # the server's CPU from the publish request until the generator had everything: what
  # the publishes cost it, sends that completed later included (other load on a shared
  # machine moves the wall times, much less this)
  LINE="$LINE $(awk -v a="$rss0" -v b="$rss1" -v c="$rss2" -v n="$opened" -v t0="${t0:-0}" -v l="${last:-0}" -v p="$PUBS" \
    -v x="$c0" -v y="$c1" -v hz="$HZ" \
    'BEGIN { split(x, u, " "); split(y, v, " ");
             printf "rss_per_conn_B=%.0f rss_per_sub_B=%.0f e2e_ms_per_publish=%.2f server_cpu_ms_per_publish=%.2f server_user_ms=%.2f server_sys_ms=%.2f",
             n ? (b - a) * 1024 / n : 0, n ? (c - b) * 1024 / n : 0,
             (t0 > 0 && l > t0) ? (l - t0) / 1e6 / p : 0,
             (v[1] + v[2] - u[1] - u[2]) * 1000 / hz / p, (v[1] - u[1]) * 1000 / hz / p,
             (v[2] - u[2]) * 1000 / hz / p }')"
  say "  $LINE"
  # the run with the lowest median publish time counts (BENCH_REPEAT runs, interleaved)
  local p50
  p50=$(echo "$pub" | sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p')
  if [ -z "${R[$peer,j_p50]:-}" ] || awk -v a="$p50" -v b="${R[$peer,j_p50]}" 'BEGIN { exit !(a < b) }'; then
    R[$peer,j_p50]=$p50
    R[$peer,j_us]=$(echo "$pub" | sed -n 's/.*us_per_publish=\([0-9.]*\).*/\1/p')
    R[$peer,j_cpu]=$(field "$LINE" server_cpu_ms_per_publish)
    R[$peer,j_split]="$(field "$LINE" server_user_ms) / $(field "$LINE" server_sys_ms)"
    R[$peer,j_e2e]=$(field "$LINE" e2e_ms_per_publish)
    R[$peer,j_sub]=$(field "$LINE" rss_per_sub_B)
    R[$peer,j_conn]=$(field "$LINE" rss_per_conn_B)
    R[$peer,j_mem]=$(awk -v m="$(echo "$sub" | sed -n 's/.*topic_memory=\([0-9]*\).*/\1/p')" -v n="$opened" \
      'BEGIN { if (m != "" && n) printf "%.1f", m / n }')
    R[$peer,j_got]=$got
  fi
  if [ $SMOKE = 1 ]; then
    if [ "$opened" = "$TCONNS" ] && [ "$got" = "$((TCONNS * PUBS))" ]; then say "ok   j $peer"
    else say "FAIL j $peer: opened $opened, received $got of $((TCONNS * PUBS))"; FAILED=1; fi
  fi
  stop_server
}

# ---- run --------------------------------------------------------------------------------

PEERS=$LUAS
[ "$NODE" = 1 ] && PEERS="$PEERS ws"
REPEAT=${BENCH_REPEAT:-3}
a_c=100; b_c=10; d_c=50; g_c=100; p_c=100; p_m=16
i_c=${BENCH_HTTP_CONNS:-50}; i_depth=${BENCH_HTTP_PIPELINE:-16}
[ $SMOKE = 1 ] && { a_c=10; b_c=2; d_c=4; g_c=10; p_c=10; i_c=4; i_depth=16; REPEAT=1; }

say "luaws bench: $(nproc) cpus, server: ${PIN_SRV:-unpinned}, generator: ${PIN_GEN:-unpinned}, $(uname -sr), $(date -u +%FT%TZ)"
say "peers:$(for p in $PEERS; do case $p in ws) printf ' node %s ws %s' "$(node --version)" \
  "$(node -p 'require("./spec/peers/node_modules/ws/package.json").version')" ;; *) printf ' luaws/%s' "$p" ;; esac; done)"
say "best of $REPEAT runs per peer, peers interleaved"

# The tests that run the floor too; smoke runs it where its way differs from a's
FLOOR_TESTS="a b p c d ea eb ec g h h_kept i ip j k1p k1 k2 kz1 kz2"
[ $SMOKE = 1 ] && FLOOR_TESTS="d ea g h ip j k2"
floor_runs() {   # TEST
  [ "$FLOOR_ON" = 1 ] || return 1
  case " $FLOOR_TESTS " in *" $1 "*) return 0 ;; esac
  return 1
}
peers_of() {   # TEST: PEERS, and the floor when it runs TEST
  if floor_runs "$1"; then echo "$PEERS floor"; else echo "$PEERS"; fi
}
lpeers_of() {   # TEST: peers_of, and the Lua floors for a and p (smoke: a's only)
  case $1 in
    a) echo "$(peers_of a)$LFLOORS" ;;
    p) if [ $SMOKE = 1 ]; then peers_of p; else echo "$(peers_of p)$LFLOORS"; fi ;;
  esac
}
has a && for r in $(seq "$REPEAT"); do
  for p in $(lpeers_of a); do
    say "a: echo $a_c conns, 16 B text, 1 in flight, ${SECS}s: $p (run $r)"
    one "$p" a msgs/s echo -c $a_c -s 16 -m 1 -d "$SECS"
    case $p in ws|floor) continue ;; esac
    [ $SMOKE = 1 ] && case $p in lf:*) ;; *) continue ;; esac   # (p's pd runs the same way)
    say "a: echo $a_c conns, 16 B text, 1 in flight, ${SECS}s, --ondata: $p (run $r)"
    one "$p" ad msgs/s echo -c $a_c -s 16 -m 1 -d "$SECS"
  done
done
has b && for r in $(seq "$REPEAT"); do
  for p in $(peers_of b); do
    say "b: echo $b_c conns, 64 KiB binary, 1 in flight, ${SECS}s: $p (run $r)"
    one "$p" b MB/s echo -c $b_c -s 65536 -b -m 1 -d "$SECS"
  done
done
# p: a's load with p_m messages in flight; luaws runs twice, onmessage (p) and ondata (pd)
has p && for r in $(seq "$REPEAT"); do
  for p in $(lpeers_of p); do
    say "p: echo $p_c conns, 16 B text, $p_m in flight, ${SECS}s: $p (run $r)"
    one "$p" p msgs/s echo -c $p_c -s 16 -m $p_m -d "$SECS"
    case $p in ws|floor) continue ;; esac
    say "p: echo $p_c conns, 16 B text, $p_m in flight, ${SECS}s, --ondata: $p (run $r)"
    one "$p" pd msgs/s echo -c $p_c -s 16 -m $p_m -d "$SECS"
  done
done
has c && for p in $(peers_of c); do
  say "c: $IDLE idle conns, held ${IDLE_SECS}s: $p"
  idle_test "$p"
done
has d && for r in $(seq "$REPEAT"); do
  for p in $(peers_of d); do
    say "d: connect + handshake + close, $d_c at once, ${CSECS}s: $p (run $r)"
    one "$p" d msgs/s connect -c $d_c -d "$CSECS"
  done
done
if [ "$TLS" = 1 ]; then
  for r in $(seq "$REPEAT"); do
    for p in $(peers_of ea); do
      say "e a: wss echo $a_c conns, 16 B text, 1 in flight, ${SECS}s: $p (run $r)"
      one "$p" ea msgs/s echo -c $a_c -s 16 -m 1 -d "$SECS"
    done
  done
  for r in $(seq "$REPEAT"); do
    for p in $(peers_of eb); do
      say "e b: wss echo $b_c conns, 64 KiB binary, 1 in flight, ${SECS}s: $p (run $r)"
      one "$p" eb MB/s echo -c $b_c -s 65536 -b -m 1 -d "$SECS"
    done
  done
  for p in $(peers_of ec); do
    say "e c: $IDLE idle TLS conns, held ${IDLE_SECS}s: $p"
    idle_test "$p" tls
  done
fi
if [ "$MAXTEST" = 1 ]; then
  for p in $PEERS; do max_test "$p"; done
fi
has g && for r in $(seq "$REPEAT"); do
  for p in $(peers_of g); do
    say "g: deflate echo $g_c conns, 1 KiB JSON-like text, 1 in flight, ${SECS}s: $p (run $r)"
    one "$p" g msgs/s echo -c $g_c -s 1024 -m 1 -d "$SECS"
  done
done
# g's floor: the zlib calls of a deflate echo server alone, on the server's core, with as
# many contexts taking turns as g has connections (once: it shares the machine with nothing
# of ours)
if has g && [ "$ZFLOOR_ON" = 1 ]; then
  say "g floor: bench/zlib_floor.c, $g_c contexts, ${SECS}s"
  LINE=$($PIN_SRV "$ZFLOOR" -c $g_c -s 1024 -d "$SECS" 2>>"$LOG")
  say "  $LINE"
  R[zfloor,g_cost]=$(field "$LINE" us_per_msg)
  R[zfloor,g_steps]="$(field "$LINE" inflate_us) / $(field "$LINE" deflate_us)"
fi
has h && for p in $(peers_of h); do
  say "h: $ZIDLE idle deflate conns after one message each way, held ${IDLE_SECS}s: $p"
  idle_test "$p" deflate
done
if has h && floor_runs h_kept; then
  say "h: the same, the floor keeping its zlib streams"
  idle_test floor kept
fi
# i: wrk's keep-alive connections, then pipelined; Node's peer here is its http module
[ "$HTTP_ON" = 1 ] && for r in $(seq "$REPEAT"); do
  for p in $(peers_of i); do
    say "i: HTTP keep-alive $i_c conns, 13 B answer, 1 in flight, ${SECS}s: $p (run $r)"
    one "$p" i msgs/s wrk -t1 -c "$i_c" -d "${SECS}s"
  done
done
[ "$HTTP_ON" = 1 ] && [ "$i_depth" -gt 0 ] && for r in $(seq "$REPEAT"); do
  for p in $(peers_of ip); do
    say "i: HTTP keep-alive $i_c conns, $i_depth pipelined, ${SECS}s: $p (run $r)"
    one "$p" ip msgs/s wrk -t1 -c "$i_c" -d "${SECS}s" -s bench/wrk_pipeline.lua -- "$i_depth"
  done
done
[ "${FAILED_WRK:-0}" = 1 ] && FAILED=1

has j && for r in $(seq "$REPEAT"); do
  for p in $(peers_of j); do topics_test "$p" "$r"; done
done
KLUA=$(echo $LUAS | cut -d' ' -f1)
# k: luaws serve on the first Lua; the floor as floor_echo --workers N
has k && for r in $(seq "$REPEAT"); do
  for t in k1p k1 k2; do
    for p in $(PEERS=$KLUA peers_of $t); do
      say "k: echo $a_c conns, 16 B text, 1 in flight, ${SECS}s, $t: $p (run $r)"
      one "$p" $t msgs/s echo -c $a_c -s 16 -m 1 -d "$SECS"
    done
  done
  for t in kz1 kz2; do
    for p in $(PEERS=$KLUA peers_of $t); do
      say "k: deflate echo $g_c conns, 1 KiB JSON-like text, 1 in flight, ${SECS}s, $t: $p (run $r)"
      one "$p" $t msgs/s echo -c $g_c -s 1024 -m 1 -d "$SECS"
    done
  done
done

if [ $SMOKE = 1 ]; then
  [ $FAILED = 0 ] && say "bench-smoke: ok (log: $LOG)" || say "bench-smoke: FAILED (log: $LOG)"
  exit $FAILED
fi

# ---- the table ----------------------------------------------------------------------------

ratio() {   # A B [inverse]: A/B, or B/A when a lower figure is better
  awk -v a="${1:-}" -v b="${2:-}" -v inv="${3:-}" 'BEGIN {
    if (a == "" || b == "" || a + 0 == 0 || b + 0 == 0) { print "-"; exit }
    printf "%.2f", inv ? b / a : a / b }'
}
row() {   # LABEL KEY [ratio|inverse [WS-KEY]]; no row for a test that did not run
  local line p any=""
  for p in $PEERS; do [ -n "${R[$p,$2]:-}" ] && any=1; done
  [ -n "$any" ] || return 0
  line=$(printf "%-42s" "$1")
  for p in $PEERS; do line="$line$(printf " %17s" "${R[$p,$2]:--}")"; done
  if [ -n "${3:-}" ] && [ "$NODE" = 1 ]; then
    for p in $LUAS; do
      line="$line$(printf " %10s" "$(ratio "${R[$p,$2]:-}" "${R[ws,${4:-$2}]:-}" "$([ "$3" = inverse ] && echo 1)")")"
    done
  fi
  say "$line"
}
say ""
head=$(printf "%-42s" "test")
for p in $PEERS; do
  case $p in ws) head="$head$(printf " %17s" "node ws")" ;; *) head="$head$(printf " %17s" "luaws $p")" ;; esac
done
if [ "$NODE" = 1 ]; then for p in $LUAS; do head="$head$(printf " %10s" "$p/ws")"; done; fi
say "$head"
row "a echo ${a_c}x16 B text: msg/s" a ratio
row "a latency p50 / p99 us" a_lat
row "a server CPU us/msg (ratio: ws/luaws)" a_cost inverse
row "a  of which user / kernel us" a_split
row "a cpu% server / generator" a_cpu
row "a --ondata: msg/s (ratio: over ws's a)" ad ratio a
row "a --ondata server CPU us/msg" ad_cost inverse a_cost
row "a --ondata  of which user / kernel us" ad_split
row "b echo ${b_c}x64 KiB binary: MB/s" b ratio
row "b latency p50 / p99 us" b_lat
row "b server CPU us/msg (ratio: ws/luaws)" b_cost inverse
row "b  of which user / kernel us" b_split
row "b cpu% server / generator" b_cpu
row "p echo ${p_c}x16 B text, ${p_m} in flight: msg/s" p ratio
row "p latency p50 / p99 us" p_lat
row "p server CPU us/msg (ratio: ws/luaws)" p_cost inverse
row "p  of which user / kernel us" p_split
row "p cpu% server / generator" p_cpu
row "p --ondata: msg/s (ratio: over ws's p)" pd ratio p
row "p --ondata latency p50 / p99 us" pd_lat
row "p --ondata server CPU us/msg" pd_cost inverse p_cost
row "p --ondata  of which user / kernel us" pd_split
row "p --ondata cpu% server / generator" pd_cpu
row "c $IDLE idle: server RSS B/conn" c ratio
row "d connect+handshake+close: conn/s" d ratio
row "d latency p50 / p99 us" d_lat
row "d server CPU us/conn (ratio: ws/luaws)" d_cost inverse
row "d  of which user / kernel us" d_split
row "d cpu% server / generator" d_cpu
if [ "$TLS" = 1 ]; then
  row "e a wss echo ${a_c}x16 B text: msg/s" ea ratio
  row "e a latency p50 / p99 us" ea_lat
  row "e a server CPU us/msg (ratio: ws/luaws)" ea_cost inverse
  row "e a  of which user / kernel us" ea_split
  row "e a cpu% server / generator" ea_cpu
  row "e b wss echo ${b_c}x64 KiB binary: MB/s" eb ratio
  row "e b latency p50 / p99 us" eb_lat
  row "e b server CPU us/msg (ratio: ws/luaws)" eb_cost inverse
  row "e b  of which user / kernel us" eb_split
  row "e b cpu% server / generator" eb_cpu
  row "e c $IDLE idle TLS: server RSS B/conn" ec ratio
fi
if [ "$MAXTEST" = 1 ]; then
  row "f connections held" f_conns
  row "f server RSS MB" f_rss
  row "f RSS growth B/conn" f_per ratio
  row "f projected RSS for 1M conns, GB" f_proj
  row "f broadcast call ms (server side)" f_ms
  row "f broadcast delivery spread ms" f_spread
  row "f broadcast messages delivered" f_got
fi
row "g deflate echo ${g_c}x1 KiB JSON text: msg/s" g ratio
row "g latency p50 / p99 us" g_lat
row "g server CPU us/msg (ratio: ws/luaws)" g_cost inverse
row "g  of which user / kernel us" g_split
row "g cpu% server / generator" g_cpu
row "g compressed B sent / echoed" g_z
row "h $ZIDLE idle deflate: server RSS B/conn" h ratio
row "i HTTP keep-alive ${i_c} conns: req/s" i ratio
row "i latency p50 / p99 us" i_lat
row "i server CPU us/req (ratio: node/luaws)" i_cost inverse
row "i  of which user / kernel us" i_split
row "i cpu% server / generator" i_cpu
row "i ${i_depth} pipelined x ${i_c} conns: req/s" ip ratio
row "i pipelined server CPU us/req" ip_cost inverse
row "i pipelined  of which user / kernel us" ip_split
row "i pipelined cpu% server / generator" ip_cpu
[ -n "${R[ws,i]:-}${R[ws,ip]:-}" ] &&
  say "(i: the node column is Node's http module, spec/peers/http_server.js)"
row "j publish to $TCONNS subs: us/publish, mean (ws/luaws)" j_us inverse
row "j  median us/publish (ws/luaws)" j_p50 inverse
row "j until the generator has all: ms/publish (ws/luaws)" j_e2e inverse
row "j server CPU ms/publish (ws/luaws)" j_cpu inverse
row "j  of which user / kernel ms" j_split
row "j server RSS B/subscription" j_sub ratio
row "j  (B/idle conn, as c)" j_conn
row "j  topic registry B/subscription (stats)" j_mem
row "j messages received" j_got
if has k && [ -n "${R[$KLUA,k1p]:-}" ]; then
  # One row per configuration: on 2 cores, 2 workers and the generator share them.
  say ""
  say "k: luaws serve, $KLUA, $(nproc) cpus: a's echo (${a_c}x16 B text), and g's (deflate, ${g_c}x1 KiB)"
  say "$(printf "%-36s %10s %14s %17s %12s %15s" workers msg/s "server us/msg" "user / kernel us" "generator" "each worker")"
  for t in k1p k1 k2 kz1 kz2; do
    case $t in
      k1p) label="a, 1, pinned (server 0, gen 1)" ;; k1) label="a, 1, unpinned" ;; k2) label="a, 2, unpinned" ;;
      kz1) label="g, 1, unpinned" ;; kz2) label="g, 2, unpinned" ;;
    esac
    say "$(printf "%-36s %10s %14s %17s %12s %15s" "$label" "${R[$KLUA,$t]:--}" "${R[$KLUA,${t}_cost]:--}" \
      "${R[$KLUA,${t}_split]:--}" "${R[$KLUA,${t}_gen]:--}" "${R[$KLUA,${t}_workers]:--}")"
  done
fi
# ---- the floor ------------------------------------------------------------------------
# The ceiling: the same generator against the thinnest server doing each test's work.
# Rates as luaws/floor, the floor's CPU and memory over luaws's: 1 at best, and near 1
# means what is left is the kernel's and the generator's.
CMP=$LUAS
[ "$NODE" = 1 ] && CMP="$CMP ws"
floor_rate() {   # TEST UNIT NOUN PEERS...: sets line; 1 when the floor did not run TEST
  local t=$1 unit=$2 noun=$3 p
  shift 3
  [ -n "${R[floor,$t]:-}" ] || return 1
  line="$t: ${R[floor,$t]} $unit; server us/$noun ${R[floor,${t}_cost]} (user / kernel"
  line="$line ${R[floor,${t}_split]}); cpu% server / generator ${R[floor,${t}_cpu]}; luaws/floor:"
  for p; do line="$line $p $(ratio "${R[$p,$t]:-}" "${R[floor,$t]}")"; done
  line="$line; floor/luaws us/$noun:"
  for p; do line="$line $p $(ratio "${R[$p,${t}_cost]:-}" "${R[floor,${t}_cost]}" 1)"; done
}
floor_mem() {   # TEST WHAT PEERS...: RSS per connection, as floor_rate
  local t=$1 what=$2 p
  shift 2
  [ -n "${R[floor,$t]:-}" ] || return 1
  line="$t: ${R[floor,$t]} B per $what; floor/luaws:"
  for p; do line="$line $p $(ratio "${R[$p,$t]:-}" "${R[floor,$t]}" 1)"; done
}
# The Lua floors of test T (a or p): what each Lua allows a server that calls it for every
# message, as shares of the floor, and luaws as a share of them (onmessage of the
# --lua-event floor, ws.ondata of the --lua floor)
lfloor_lines() {   # T
  local t=$1 d lf lua
  d=${t}d; [ "$t" = a ] && d=ad
  for lf in $LFLOORS; do
    lua=${lf#lf:}
    [ -n "${R[$lf,$t]:-}${R[$lf,$d]:-}" ] || continue
    line="$t, the $lua floor (floor_echo --lua-event, an event table and ws:send at their cheapest):"
    line="$line ${R[$lf,$t]:--} msg/s; server us/msg ${R[$lf,${t}_cost]:--} (user / kernel"
    line="$line ${R[$lf,${t}_split]:--}); of the floor $(ratio "${R[$lf,$t]:-}" "${R[floor,$t]:-}");"
    line="$line luaws onmessage of it $(ratio "${R[$lua,$t]:-}" "${R[$lf,$t]:-}")"
    line="$line | --lua, one Lua call per message: ${R[$lf,$d]:--} msg/s; server us/msg"
    line="$line ${R[$lf,${d}_cost]:--} (user / kernel ${R[$lf,${d}_split]:--}); of the floor"
    line="$line $(ratio "${R[$lf,$d]:-}" "${R[floor,$t]:-}"); luaws ondata of it"
    line="$line $(ratio "${R[$lua,$d]:-}" "${R[$lf,$d]:-}")"
    say "  $line"
  done
}
floor_any=""
for k in "${!R[@]}"; do case $k in floor,*|zfloor,*) floor_any=1 ;; esac; done
if [ -n "$floor_any" ]; then
  say ""
  say "floor: bench/floor_echo.c (C, epoll, no libuv, no Lua), same generator; luaws/floor for rates, floor/luaws for CPU and memory"
  if floor_rate a msg/s msg $CMP; then
    line="$line; with --ondata, luaws/floor:"
    for p in $LUAS; do line="$line $p $(ratio "${R[$p,ad]:-}" "${R[floor,a]}")"; done
    say "  $line"
  fi
  lfloor_lines a
  floor_rate b MB/s msg $CMP && say "  $line"
  if [ -n "${R[floor,p]:-}" ]; then
    line="p: ${R[floor,p]} msg/s; server us/msg ${R[floor,p_cost]} (user / kernel ${R[floor,p_split]});"
    line="$line cpu% server / generator ${R[floor,p_cpu]}; luaws/floor:"
    for p in $LUAS; do
      line="$line $p $(ratio "${R[$p,p]:-}" "${R[floor,p]}") (ondata $(ratio "${R[$p,pd]:-}" "${R[floor,p]}"))"
    done
    [ "$NODE" = 1 ] && line="$line ws $(ratio "${R[ws,p]:-}" "${R[floor,p]}")"
    line="$line; floor/luaws us/msg:"
    for p in $LUAS; do
      line="$line $p $(ratio "${R[$p,p_cost]:-}" "${R[floor,p_cost]}" 1) (ondata $(ratio "${R[$p,pd_cost]:-}" "${R[floor,p_cost]}" 1))"
    done
    [ "$NODE" = 1 ] && line="$line ws $(ratio "${R[ws,p_cost]:-}" "${R[floor,p_cost]}" 1)"
    say "  $line"
  fi
  lfloor_lines p
  if floor_mem c "idle conn" $CMP; then
    line="$line; projected for 1M idle conns, GB:"
    for p in $LUAS floor; do
      line="$line $p $(awk -v b="${R[$p,c]:-0}" 'BEGIN { printf "%.2f", b * 1e6 / 1e9 }')"
    done
    say "  $line"
  fi
  floor_rate d conn/s conn $CMP && say "  $line"
  floor_rate ea msg/s msg $CMP && say "  $line"
  floor_rate eb MB/s msg $CMP && say "  $line"
  floor_mem ec "idle TLS conn" $CMP && say "  $line"
  floor_rate g msg/s msg $CMP && say "  $line"
  if [ -n "${R[zfloor,g_cost]:-}" ]; then
    # server CPU per message over zlib's: 1 would be a server that costs nothing but its
    # zlib calls
    line="g: bench/zlib_floor.c, zlib alone: ${R[zfloor,g_cost]} us/msg (inflate / deflate"
    line="$line ${R[zfloor,g_steps]}); server CPU per message over it:"
    for p in $CMP floor; do line="$line $p $(ratio "${R[$p,g_cost]:-}" "${R[zfloor,g_cost]}")"; done
    say "  $line"
  fi
  # h: the floor parks as luaws does; with its zlib streams kept, what parking saves
  if floor_mem h "idle deflate conn, windows only" $CMP; then
    [ -n "${R[floor,h_kept]:-}" ] && line="$line; with both zlib streams kept: ${R[floor,h_kept]} B"
    say "  $line"
  fi
  floor_rate i req/s req $CMP && say "  $line"
  floor_rate ip req/s req $CMP && say "  $line"
  [ "$NODE" = 1 ] && [ -n "${R[floor,i]:-}${R[floor,ip]:-}" ] && say "  (i: ws is Node's http module)"
  if [ -n "${R[floor,j_p50]:-}" ]; then
    line="j: median ${R[floor,j_p50]} us/publish (mean ${R[floor,j_us]}); until the generator has"
    line="$line all ${R[floor,j_e2e]} ms/publish; server CPU ${R[floor,j_cpu]} ms/publish (user / kernel"
    line="$line ${R[floor,j_split]}); RSS ${R[floor,j_sub]} B/subscription; floor/luaws median:"
    for p in $CMP; do line="$line $p $(ratio "${R[$p,j_p50]:-}" "${R[floor,j_p50]}" 1)"; done
    line="$line; server CPU:"
    for p in $CMP; do line="$line $p $(ratio "${R[$p,j_cpu]:-}" "${R[floor,j_cpu]}" 1)"; done
    say "  $line"
  fi
  for t in k1p k1 k2 kz1 kz2; do floor_rate $t msg/s msg $KLUA && say "  $line"; done
fi
say ""
say "log: $LOG"
