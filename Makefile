# luaws build. `make` builds luaws/core.so for Lua 5.4; LUA=luajit builds for LuaJIT.
LUA ?= lua5.4
ifeq ($(LUA),luajit)
  LUA_PC ?= luajit
  LUA_LIBDIR ?= 5.1
else
  LUA_PC ?= $(LUA)
  LUA_LIBDIR ?= $(patsubst lua%,%,$(LUA))
endif

CC ?= cc
OPT ?= -O2
CFLAGS ?= $(OPT) -g
WARN = -Wall -Wextra
VIS = -fvisibility=hidden   # the module exports luaopen_luaws_core alone
LUA_CFLAGS := $(shell pkg-config --cflags $(LUA_PC) 2>/dev/null)
DEP_LIBS := $(shell pkg-config --libs libuv openssl 2>/dev/null || echo -luv -lssl -lcrypto) -lz
# The Redis backplane (csrc/io/backplane.c) needs hiredis; found by pkg-config, or off
# with HIREDIS=no (WebSocket.backplane then raises "built without hiredis").
HIREDIS ?= $(shell pkg-config --exists hiredis 2>/dev/null && echo yes || echo no)
ifeq ($(HIREDIS),yes)
  HIREDIS_DEF = -DLUAWS_HIREDIS
  DEP_LIBS += $(shell pkg-config --libs hiredis 2>/dev/null || echo -lhiredis)
endif
BUILD ?= build/$(LUA)
SANFLAGS =

CORE_SRC := $(wildcard csrc/core/*.c)
IO_SRC := $(wildcard csrc/io/*.c)
LUA_SRC := $(wildcard csrc/lua/*.c)
ALL_SRC := $(CORE_SRC) $(IO_SRC) $(LUA_SRC)
OBJ := $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(ALL_SRC))
HDR := $(wildcard csrc/*/*.h)
SO := $(BUILD)/luaws/core.so

.PHONY: all build test test-c test-io test-embed test-lua example asan valgrind fuzz deps clean bench bench-smoke rock chaos chaos-asan browser

all build: $(SO)

$(BUILD)/obj/%.o: csrc/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANFLAGS) $(WARN) $(VIS) $(HIREDIS_DEF) -fPIC -Icsrc/core -Icsrc/io -Icsrc/lua $(LUA_CFLAGS) -c $< -o $@

$(SO): $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANFLAGS) -shared -Wl,-z,nodelete -o $@ $(OBJ) $(DEP_LIBS)

# C unit tests of the protocol core: no Lua, no libuv.
IO_TEST_SRC := spec/c/test_conn.c spec/c/test_topics.c spec/c/test_backplane.c
CORE_TEST_SRC := $(filter-out $(IO_TEST_SRC),$(wildcard spec/c/*.c))
$(BUILD)/test_core: $(CORE_SRC) $(CORE_TEST_SRC) $(wildcard spec/c/*.h) csrc/core/ws.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANFLAGS) $(WARN) -Icsrc/core -Ispec/c -o $@ $(CORE_SRC) $(CORE_TEST_SRC) -lcrypto -lz

# C unit tests of the I/O layer over scripted sockets (csrc/io/scripted.h): no Lua, no
# sockets; a real libuv loop for the timers.
$(BUILD)/test_io: $(CORE_SRC) $(IO_SRC) $(IO_TEST_SRC) spec/c/test.c $(HDR) spec/c/test.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANFLAGS) $(WARN) $(HIREDIS_DEF) -Icsrc/core -Icsrc/io -Ispec/c -o $@ $(CORE_SRC) $(IO_SRC) $(IO_TEST_SRC) spec/c/test.c $(DEP_LIBS)

# Two Lua states in one process, each with its own luaws (no process-wide state).
$(BUILD)/two_states: spec/embed/two_states.c $(SO)
	$(CC) $(CFLAGS) $(SANFLAGS) $(WARN) $(LUA_CFLAGS) -o $@ spec/embed/two_states.c \
	  $(shell pkg-config --libs $(LUA_PC) 2>/dev/null || echo -l$(LUA)) -lm -ldl

test-embed: $(BUILD)/two_states
	$(BUILD)/two_states "$(BUILD)/?.so" "lua/?.lua;lua/?/init.lua"

deps:
	@sh scripts/deps.sh

test-c: $(BUILD)/test_core
	$(BUILD)/test_core

test-io: $(BUILD)/test_io
	$(BUILD)/test_io

test-lua: $(SO)
	sh scripts/run_specs.sh $(LUA) $(BUILD)

# The README's test command: installs what is missing, then runs every suite.
test: deps
	@sh scripts/test_all.sh

example: deps
	@$(MAKE) --no-print-directory build
	LUA_CPATH="$(BUILD)/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;;" $(LUA) examples/echo_demo.lua

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan-$(LUA) CC=clang \
	  SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  OPT=-O1 build build/asan-$(LUA)/test_core build/asan-$(LUA)/test_io
	build/asan-$(LUA)/test_core
	build/asan-$(LUA)/test_io
	LUAWS_SANITIZE=1 sh scripts/run_specs.sh $(LUA) build/asan-$(LUA)

valgrind:
	@$(MAKE) --no-print-directory BUILD=build/vg-$(LUA) OPT=-O1 build build/vg-$(LUA)/test_core build/vg-$(LUA)/test_io
	valgrind -q --error-exitcode=99 --leak-check=full build/vg-$(LUA)/test_core
	valgrind -q --error-exitcode=99 --leak-check=full build/vg-$(LUA)/test_io
	LUAWS_VALGRIND=1 sh scripts/run_specs.sh $(LUA) build/vg-$(LUA)

# The chat example (examples/chat/) in headless Chromium, driven by puppeteer-core
# (spec/browser/run.js). Where Chromium cannot be installed, the run says so and fails.
browser:
	@sh scripts/deps.sh chromium libnss3-tools || echo "browser: could not install what the browser run needs"
	@$(MAKE) --no-print-directory build
	LUA=$(LUA) BUILD=$(BUILD) node spec/browser/run.js

# The attacker's toolkit (spec/chaos/): a luaws server attacked from outside its process,
# and the luaws client against hostile servers. chaos-asan: the same on the ASan build.
chaos:
	@$(MAKE) --no-print-directory build
	sh spec/chaos/run.sh $(BUILD) $(LUA)

chaos-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan-$(LUA) CC=clang \
	  SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  OPT=-O1 build
	sh spec/chaos/run.sh build/asan-$(LUA) $(LUA)

FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= frame http body hixie inflate conn proxy
# Targets that drive the I/O layer (scripted sockets) link it and libuv too.
FUZZ_IO_TARGETS = conn proxy
fuzz:
	@mkdir -p build/fuzz
	@for t in $(FUZZ_TARGETS); do \
	  case " $(FUZZ_IO_TARGETS) " in *" $$t "*) io="-Icsrc/io $(IO_SRC) $(DEP_LIBS)" ;; *) io= ;; esac; \
	  clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc/core -o build/fuzz/$$t spec/fuzz/fuzz_$$t.c $(CORE_SRC) $$io -lcrypto -lz || exit 1; \
	  mkdir -p build/fuzz/$$t-corpus; \
	  build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) build/fuzz/$$t-corpus spec/fuzz/corpus/$$t || exit 1; \
	done

# Benchmarks (bench/run.sh): luaws vs Node ws, tests a-f of issue 4 (e: over wss://) and
# g-h (permessage-deflate), and vs Node's http module, i (HTTP keep-alive, under wrk), j
# (topics), for lua5.4 and luajit; k: a and g through luaws serve with 1 and 2 workers
# (reuseport); p: a with 16 messages in flight per connection, onmessage and ondata. Every
# test but f also runs against the floor, bench/floor_echo.c, and the report gives each
# server's share of it. BENCH_TESTS, BENCH_SECONDS, BENCH_LUAS, ... as the script says.
# bench-smoke: a few seconds, luaws on lua5.4 only; fails when a mode reports no messages
# or an error (CI runs it).
bench:
	bash bench/run.sh

bench-smoke:
	bash bench/run.sh --smoke

clean:
	rm -rf build
