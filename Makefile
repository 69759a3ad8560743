# meshtest - plain Makefile.
#
#   make            build build/meshtest
#   make run        install what is missing, build, start one node on 127.0.0.1:7000
#   make check      install what is missing, build, run every test (also under ASan/UBSan)
#   make asan       build build-asan/meshtest with AddressSanitizer + UBSan
#   make unit       cmocka unit tests (normal build)
#   make e2e        end-to-end pytest suite against build/meshtest
#   make e2e-module the runner's end-to-end tests again, every evaluation isolation "module"
#   make fuzz       libFuzzer targets, FUZZ_SECONDS each (CI: 10 s)
#   make lint       clang-tidy and cppcheck
#   make install    copy build/meshtest to $(PREFIX)/bin (default /usr/local)
#   make clean

SHELL   := /bin/bash
CC      ?= cc
# gnutls: libmicrohttpd's TLS library, for checking a peer's client certificate
PKGS    := libmicrohttpd libcurl jansson libarchive sqlite3 libcrypto gnutls
# Asked once per make, when the Makefile is read. On a fresh machine the
# libraries arrive only with `deps`, so every target that installs them first
# (run, check) builds in a second make, which reads pkg-config afterwards.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# What `deps` runs and what `run` passes to `meshtest serve` (tests override both).
DEPS_CMD ?= sh scripts/install-deps.sh
DEPS_TEST_CMD ?= sh scripts/install-deps.sh --test
RUN_ARGS ?=

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral -Werror
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c17 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Isrc -I$(BUILD)/gen $(PKG_CFLAGS)
LDLIBS  = $(PKG_LIBS) -lpthread -lm

ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined

BUILD   ?= build
PYTHON  ?= /usr/bin/python3

LIB_SRC := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
LIB_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/gen/embedded.o
EMBED   := $(sort $(wildcard src/runner/py/*.py)) $(sort $(wildcard src/web/*.html src/web/*.js src/web/*.css src/web/*.svg))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))

.PHONY: all run check deps deps-test pkgcheck install asan unit unit-asan e2e e2e-module e2e-asan lint fuzz fuzz-build clean bench

all: $(BUILD)/meshtest

# A build without the libraries stops here with what to do, not in the linker.
pkgcheck:
	@pkg-config --exists $(PKGS) 2>/dev/null || { \
	  echo "make: the libraries $(PKGS) are not all installed (pkg-config does not know them):" \
	    "run 'make deps' (or 'make run' / 'make check', which install them first)" >&2; exit 1; }

$(BUILD)/meshtest: $(BUILD)/obj/main.o $(BUILD)/libmeshtest.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libmeshtest.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/%.o: src/%.c $(BUILD)/gen/embedded.h | pkgcheck
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# The Python files the node hands to pytest, and the dashboard's files, are
# compiled into the binary. embed.sh leaves a generated file that would not
# change untouched (every object depends on embedded.h); the stamp says when
# it last ran.
$(BUILD)/gen/embedded.stamp: $(EMBED) scripts/embed.sh
	@mkdir -p $(BUILD)/gen
	sh scripts/embed.sh $(BUILD)/gen $(EMBED)
	@touch $@

$(BUILD)/gen/embedded.h $(BUILD)/gen/embedded.c: $(BUILD)/gen/embedded.stamp ;

$(BUILD)/obj/gen/embedded.o: $(BUILD)/gen/embedded.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/unit/%: tests/unit/%.c $(BUILD)/libmeshtest.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -Itests/unit -o $@ $< $(BUILD)/libmeshtest.a $(LDLIBS) -lcmocka

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

deps:
	@$(DEPS_CMD)

# what the tests need beside: cmocka, pytest plugins, clang, wrk, chromium
deps-test:
	@$(DEPS_TEST_CMD)

# deps first, then a new make that sees the installed libraries (also with -j).
run: deps
	$(MAKE) all
	./$(BUILD)/meshtest serve $(RUN_ARGS)

asan:
	$(MAKE) BUILD=build-asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" all

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; ./$$t; done

unit-asan:
	$(MAKE) BUILD=build-asan CFLAGS="$(ASAN_FLAGS)" unit

E2E_ARGS ?=
e2e: all
	PYTHON=$(PYTHON) sh scripts/run-e2e.sh $(CURDIR)/$(BUILD)/meshtest "" tests/e2e $(E2E_ARGS)

# The tests of how projects run, with each module alone (the default shares
# sessions); test_isolation.py covers both settings on its own.
E2E_MODULE_TESTS := tests/e2e/test_zip.py tests/e2e/test_real.py tests/e2e/test_cli.py \
	tests/e2e/test_concurrency.py
e2e-module: all
	MESHTEST_E2E_ISOLATION=module PYTHON=$(PYTHON) sh scripts/run-e2e.sh \
	  $(CURDIR)/$(BUILD)/meshtest "" $(E2E_MODULE_TESTS) $(E2E_ARGS)

e2e-asan: asan
	MESHTEST_ASAN=1 PYTHON=$(PYTHON) sh scripts/run-e2e.sh $(CURDIR)/build-asan/meshtest asan \
	  tests/e2e $(E2E_ARGS)

check: deps-test
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) e2e
	$(MAKE) e2e-module
	$(MAKE) e2e-asan
	$(MAKE) fuzz FUZZ_SECONDS=5

# libFuzzer targets (clang): one per decoder of outside input. Each runs
# FUZZ_SECONDS from its committed seed corpus; new inputs go to a scratch dir.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_FLAGS := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer

fuzz-build:
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="$(FUZZ_FLAGS)" build-fuzz/libmeshtest.a
	@set -e; for t in $(FUZZ_TARGETS); do \
	  clang -std=c17 -D_GNU_SOURCE $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined \
	    -Isrc -Ibuild-fuzz/gen $(PKG_CFLAGS) -o build-fuzz/$$t fuzz/$$t.c \
	    build-fuzz/libmeshtest.a $(LDLIBS); done

fuzz: fuzz-build
	@set -eo pipefail; for t in $(FUZZ_TARGETS); do \
	  c=$${t#fuzz_}; mkdir -p build-fuzz/corpus-run/$$c; \
	  echo "== $$t for $(FUZZ_SECONDS) s"; \
	  ./build-fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
	    -print_final_stats=1 -artifact_prefix=build-fuzz/ build-fuzz/corpus-run/$$c fuzz/corpus/$$c 2>&1 | tail -n 12; \
	  done

bench: all
	$(PYTHON) bench/compare.py --bin $(CURDIR)/$(BUILD)/meshtest
	$(PYTHON) bench/bench_load.py --bin $(CURDIR)/$(BUILD)/meshtest

lint:
	clang-tidy $(LIB_SRC) src/main.c -- -std=c17 -D_GNU_SOURCE -Isrc -I$(BUILD)/gen $(PKG_CFLAGS)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability -Isrc src

PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/meshtest $(DESTDIR)$(PREFIX)/bin/meshtest

clean:
	rm -rf build build-asan build-fuzz
