# plumb — one Makefile. Every library comes through pkg-config.
#
#   make            build plumbd and plumbctl
#   make test       install deps, unit tests, integration + e2e tests on local clusters
#   make test-asan  the same tests built with AddressSanitizer + UBSan
#   make fuzz       build the libFuzzer targets (clang) and run each briefly
#   make bench      the benchmark suite (bench/), Flux beside plumb included
#   make flux       build Flux's controllers the bench runs (hack/build-flux.sh)
#   make bench-memory  plumbd's RSS with 5,000 objects in each of two targets
#   make image      build the image from the Dockerfile (buildah, as root, no daemon)
#   make test-image make image, then run plumbd from it against local clusters
#   make test-workloads  the opt-in test bed where workloads roll out (cluster.sh up N --workloads)

LIBS      := libcurl openssl libcjson yaml-0.1 libgit2 libmicrohttpd
CC        ?= gcc
BUILD     ?= build
OPT       ?= -O2
SAN       ?=
WERROR    ?= -Werror
CFLAGS    ?=
CFLAGS    += -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra $(WERROR) -Wno-missing-field-initializers -Wno-format-truncation \
             $(if $(findstring clang,$(CC)),-Wno-unknown-warning-option) \
             -Ipkg $(SAN) $(shell pkg-config --cflags $(LIBS))
LDLIBS    := $(shell pkg-config --libs $(LIBS)) -lpthread -lm
CHECKLIBS := $(shell pkg-config --libs check)

LIB_SRCS  := $(wildcard pkg/*/*.c)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
SUPPORT   := $(wildcard tests/support/*.c)
SUPPORT_OBJS := $(SUPPORT:%.c=$(BUILD)/%.o)
UNIT      := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))
ITEST     := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(wildcard tests/integration/test_*.c))
CMDS      := $(patsubst cmd/%/,$(BUILD)/%,$(sort $(dir $(wildcard cmd/*/*.c))))
HELPERS   := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(wildcard tests/tools/*.c))
FUZZERS   := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard fuzz/fuzz_*.c))

.PHONY: all deps test test-unit test-asan fuzz bench bench-quick bench-memory clean cluster-up cluster-down \
	demo demo-down helm kustomize manifests
all: $(CMDS) $(UNIT) $(ITEST) $(HELPERS)

deps:
	@bash hack/install-deps.sh

$(BUILD)/%.o: %.c $(wildcard pkg/*/*.h) $(wildcard tests/support/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/support -c -o $@ $<

$(BUILD)/libplumb.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# plumbd/plumbctl may be made of several files in their folder.
.SECONDEXPANSION:
$(CMDS): $(BUILD)/%: $$(addsuffix .o,$$(basename $$(addprefix $(BUILD)/,$$(wildcard cmd/$$*/*.c)))) $(BUILD)/libplumb.a
	$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libplumb.a $(LDLIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(SUPPORT_OBJS) $(BUILD)/libplumb.a
	$(CC) $(CFLAGS) -o $@ $< $(SUPPORT_OBJS) $(BUILD)/libplumb.a $(CHECKLIBS) $(LDLIBS)

$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(SUPPORT_OBJS) $(BUILD)/libplumb.a
	$(CC) $(CFLAGS) -o $@ $< $(SUPPORT_OBJS) $(BUILD)/libplumb.a $(CHECKLIBS) $(LDLIBS)

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libplumb.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libplumb.a $(LDLIBS)

# libFuzzer targets: clang, with ASan + UBSan. The library is compiled once
# for them (fuzzer-no-link), each target links against it.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Ipkg $(shell pkg-config --cflags $(LIBS))
FUZZ_OBJS   := $(LIB_SRCS:%.c=build-fuzz/obj/%.o)
build-fuzz/obj/%.o: %.c $(wildcard pkg/*/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

build-fuzz/libplumb-fuzz.a: $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

build-fuzz/fuzz/%: fuzz/%.c build-fuzz/libplumb-fuzz.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< build-fuzz/libplumb-fuzz.a $(LDLIBS)

fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@bash hack/run-fuzz.sh build-fuzz/fuzz

test-unit: deps all
	@bash hack/run-tests.sh --build $(BUILD) --unit-only

FUZZ_BINS := $(patsubst fuzz/%.c,build-fuzz/fuzz/%,$(wildcard fuzz/fuzz_*.c))

test: deps
	@$(MAKE) --no-print-directory -j2 all
	@$(MAKE) --no-print-directory -j2 $(FUZZ_BINS)
	@bash hack/run-tests.sh --build $(BUILD) --fuzz build-fuzz/fuzz

test-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan CC=clang OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/hack/lsan.supp \
		bash hack/run-tests.sh --build build-asan --asan

cluster-up:
	@bash hack/cluster.sh up 3

cluster-down:
	@bash hack/cluster.sh down

bench: deps all flux
	@bash bench/run.sh

bench-quick: deps all
	@bash bench/run.sh --quick

bench-memory: deps all
	@BUILD=$(BUILD) bash bench/memory.sh

demo: deps all
	@bash hack/demo.sh up

demo-down:
	@bash hack/demo.sh down

helm:
	@bash hack/build-helm.sh

kustomize:
	@bash hack/build-kustomize.sh

# Flux's source- and kustomize-controller for bench scenarios 7 and 8 (bench only).
.PHONY: flux
flux:
	@bash hack/build-flux.sh

manifests:
	@bash hack/gen-manifests.sh

.PHONY: image test-image
image:
	@bash hack/build-image.sh

test-image: image
	@bash tests/image/test_image.sh

.PHONY: test-workloads
test-workloads:
	@bash tests/workloads/test_workloads_bed.sh

clean:
	rm -rf build build-asan build-fuzz
