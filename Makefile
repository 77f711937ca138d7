# onestep — plain Makefile.
#
#   make             build ./onestep and the tools
#   make test        build and run every test (tests/test_*.c)
#   make sanitize    the whole test suite under ASan + UBSan (build-asan/)
#   make bench       build ./bench and run its default set (BENCH_ARGS, results in bench.json)
#   make neon-test   cross-build the library and kernel tests for arm64 and run them under qemu (build-aarch64/)
#   make fuzz        each libFuzzer target for FUZZ_SECONDS (clang; build-fuzz/)
#   make unicode-tables  regenerate ref/unicode_tables.c (python3 + Debian's unicode-data)
#   make golden      regenerate golden/ from the scalar reference (review the diff)
#   make golden-check  the bit-exact golden test under gcc and clang at -O0 and -O2
#   make clean
#
# Variables: CC (gcc or clang), BUILD (object directory, so several builds can
# live side by side), OPT (optimisation level; the reference gives the same
# bits at -O0 and -O2, tests/test_golden checks it).

# make CUDA=1 links the CUDA backend in (see the end of this file); its
# objects get their own directory, since every object sees -DONESTEP_CUDA.
ifeq ($(CUDA),1)
BUILD ?= build-cuda
endif

CC    ?= cc
BUILD ?= build
OPT   ?= -O2

# Everything outside simd/ is the reference: IEEE arithmetic exactly as
# written (no FMA contraction, no fast-math), so it is bit-reproducible
# across compilers, optimisation levels and machines.
REF_FLAGS := -ffp-contract=off -fno-fast-math
BASE_CFLAGS := -std=c11 -Wall -Wextra -g $(OPT) -D_DEFAULT_SOURCE -D_FILE_OFFSET_BITS=64 -I. -MMD -MP
CFLAGS ?=
LDFLAGS ?=
LDLIBS := -lpng -ljpeg -lz -lm -lpthread -ldl

MACHINE := $(shell $(CC) -dumpmachine)

# Programs are tools/<name>.c; code shared by several programs is tools/lib/.
# BIN is where they land: the project root for the normal build.
PROGRAMS := onestep
PROGRAMS += tensordiff
PROGRAMS += mkmodel
PROGRAMS += mkgolden
PROGRAMS += modelinfo
PROGRAMS += dumpviz
PROGRAMS += peakflops
PROGRAMS += kbench
PROGRAMS += bench
BIN ?= .
# simd/: select.c, cpu.c, scratch.c, blas.c are plain C; every other simd/*.c is a
# kernel source compiled once per instruction set (SIMD_ISAS) with that
# set's -m flags and OpenMP, into $(BUILD)/simd/<isa>/.
SIMD_COMMON_SRC := simd/select.c simd/cpu.c simd/scratch.c simd/blas.c
SIMD_KERNEL_SRC := $(filter-out $(SIMD_COMMON_SRC),$(wildcard simd/*.c))
SIMD_ISAS := $(if $(findstring x86_64,$(MACHINE)),avx512 avx2,$(if $(findstring aarch64,$(MACHINE)),neon,))
SIMD_FLAGS_avx512 := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c
SIMD_FLAGS_avx2 := -mavx2 -mfma -mf16c
SIMD_FLAGS_neon :=
OMP := -fopenmp
LIB_SRC := $(wildcard ref/*.c) $(wildcard weights/*.c) $(SIMD_COMMON_SRC)
TOOL_LIB_SRC := $(wildcard tools/lib/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_LIB_SRC := $(wildcard tests/lib/*.c)

LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) \
           $(foreach isa,$(SIMD_ISAS),$(patsubst simd/%.c,$(BUILD)/simd/$(isa)/%.o,$(SIMD_KERNEL_SRC)))
TOOL_LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(TOOL_LIB_SRC))
TEST_LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(TEST_LIB_SRC))
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
LIB := $(BUILD)/libonestep.a

.PHONY: all test sanitize neon-test clean unicode-tables golden golden-check fuzz fuzz-build fuzz-run
.SECONDARY:
PROG_BIN := $(patsubst %,$(BIN)/%,$(PROGRAMS))
all: $(PROG_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(REF_FLAGS) $(CFLAGS) -c $< -o $@

# The LoRA merge shares its rows among OpenMP threads (same bits as one
# thread: weights/lora.c says why).
$(BUILD)/weights/lora.o: BASE_CFLAGS += $(OMP)

define simd_isa_rule
$(BUILD)/simd/$(1)/%.o: simd/%.c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(BASE_CFLAGS) $$(SIMD_FLAGS_$(1)) $$(OMP) $$(CFLAGS) -c $$< -o $$@
endef
$(foreach isa,$(SIMD_ISAS),$(eval $(call simd_isa_rule,$(isa))))

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(PROG_BIN): $(BIN)/%: $(BUILD)/tools/%.o $(TOOL_LIB_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) $(OMP) -o $@ $^ $(LDLIBS)
	$(if $(and $(filter bench,$(MAKECMDGOALS)),$(filter bench,$*)),$(BIN)/bench $(BENCH_ARGS))

# `make bench`: the program is ./bench and make takes "./bench" and "bench"
# for one target, so when bench is a goal that target is phony (relinked,
# then run by the recipe above). Performance targets live in its output,
# never in timed unit tests.
BENCH_ARGS ?= --json bench.json
ifneq ($(filter bench,$(MAKECMDGOALS)),)
.PHONY: bench
endif

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_LIB_OBJ) $(TOOL_LIB_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) $(OMP) -o $@ $^ $(LDLIBS)

test: all $(TEST_BIN)
	@V=$(V) ONESTEP_BIN=$(BIN) tests/run.sh $(BUILD)/tests

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
sanitize:
	$(MAKE) BUILD=build-asan BIN=build-asan OPT=-O1 CFLAGS="$(SAN)" LDFLAGS="$(SAN)" test

# NEON: the library and the tests that need no zlib/stb, cross-compiled and
# run under qemu-user: the kernel parity tests and every conformance case end
# to end (test_pipeline runs the reference and the neon table; ~4 minutes
# under emulation). Needs Debian's gcc-aarch64-linux-gnu and qemu-user.
AARCH64_CC ?= aarch64-linux-gnu-gcc
QEMU_AARCH64 ?= qemu-aarch64 -L /usr/aarch64-linux-gnu
NEON_TESTS := $(patsubst tests/%.c,%,$(wildcard tests/test_simd_*.c)) test_json test_safetensors test_pipeline
neon-test:
	$(MAKE) CC=$(AARCH64_CC) BUILD=build-aarch64 TOOL_LIB_SRC=tools/lib/tensorcmp.c LDLIBS="-lm -lpthread -ldl" \
		$(patsubst %,build-aarch64/tests/%,$(NEON_TESTS))
	TEST_RUNNER="$(QEMU_AARCH64)" ONESTEP_TEST_BACKENDS=neon tests/run.sh build-aarch64/tests

# Fuzzing with clang's libFuzzer: tests/fuzz/fuzz_<target>.c, seeds and
# regression inputs in tests/fuzz/corpus/<target>/ (also replayed by
# tests/test_fuzz_corpus with any compiler). `make fuzz` runs every target for
# FUZZ_SECONDS under ASan + UBSan and fails on any finding; FUZZ_TARGETS picks
# some ("json image"). New inputs libFuzzer finds go to build-fuzz/corpus/.
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz OPT=-O1 CFLAGS="$(FUZZ_SAN)" fuzz-run

fuzz-build: $(FUZZ_BIN)

fuzz-run: $(FUZZ_BIN)
	tests/fuzz/run.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(TEST_LIB_OBJ) $(TOOL_LIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) $(OMP) -o $@ $^ $(LDLIBS)

# The tokenizer's Unicode tables are generated, and committed so that the
# normal build needs no Python.
UNICODE_DATA ?= /usr/share/unicode
unicode-tables:
	python3 tools/gen_unicode_tables.py $(UNICODE_DATA) ref/unicode_tables.c

# golden/: the reference's own outputs, frozen (golden/README.md).
golden: $(BIN)/mkgolden
	$(BIN)/mkgolden

# The reference must not depend on the compiler or the optimisation level:
# the same golden files, bit for bit, from each of these builds.
GOLDEN_BUILDS ?= gcc:-O2 gcc:-O0 clang:-O2 clang:-O0
golden-check:
	@set -e; for b in $(GOLDEN_BUILDS); do \
	    cc=$${b%%:*}; opt=$${b#*:}; dir=build-golden-$$cc$$opt; \
	    echo "== golden-check: $$cc $$opt ($$dir)"; \
	    $(MAKE) --no-print-directory CC=$$cc OPT=$$opt BUILD=$$dir $$dir/tests/test_golden; \
	    st=0; ONESTEP_TEST_BACKENDS= $$dir/tests/test_golden > $$dir/test_golden.log 2>&1 || st=$$?; \
	    grep -v '^ok ' $$dir/test_golden.log || true; \
	    [ $$st -eq 0 ] || { echo "golden-check: $$cc $$opt FAILED (log: $$dir/test_golden.log)"; exit 1; }; \
	done

clean:
	rm -rf build build-* $(PROGRAMS)

# ---- CUDA offload backend (simd/cuda/, off by default) ----
#   make CUDA=1 [test]   the library, ./onestep and the tests with the CUDA
#                        table (nvcc + cuBLAS from the CUDA toolkit)
#   make cuda-build      compile it and tests/test_cuda when nvcc exists and
#                        run that test (it reports skipped without a GPU), so
#                        CI catches rot on machines without a GPU
# CUDA_ARCHS: real code for Turing .. Hopper (T4, A100, RTX 30/40, H100/H200)
# plus PTX of the last one, which the driver compiles for newer GPUs.
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc),nvcc)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(shell command -v $(NVCC) 2>/dev/null))
CUDA_ARCHS ?= 75 80 86 89 90
CUDA_PTX ?= $(lastword $(CUDA_ARCHS))
NVCC_FLAGS := -std=c++17 -O2 -fmad=false -Xcompiler -Wall,-Wextra -I. \
              $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
              -gencode arch=compute_$(CUDA_PTX),code=compute_$(CUDA_PTX)
CUDA_OBJ := $(patsubst %.cu,$(BUILD)/%.o,$(wildcard simd/cuda/*.cu))

$(BUILD)/simd/cuda/%.o: simd/cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -MMD -MP -c $< -o $@

ifeq ($(CUDA),1)
BASE_CFLAGS += -DONESTEP_CUDA=1
LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
$(LIB): $(CUDA_OBJ)
endif

.PHONY: cuda-build
cuda-build:
	@if command -v $(NVCC) >/dev/null 2>&1; then \
		$(MAKE) CUDA=1 BUILD=build-cuda BIN=build-cuda all build-cuda/tests/test_cuda && \
		build-cuda/tests/test_cuda; \
	else echo "cuda-build: $(NVCC) not found: the CUDA backend was not compiled"; fi

# make cuda-emu-test: the same test with the kernels compiled by the host
# C++ compiler against tools/cuda_emu (a CPU emulator of the CUDA subset the
# backend uses): their indexing, barriers and cuBLAS call shapes are checked
# on machines without a GPU. Launches k<<<...>>>(args) are rewritten to
# emu_launch(k, ...)(args) on the way.
EMU_CXX ?= g++
EMU_OBJ := $(patsubst simd/cuda/%.cu,build-emu/emu/%.o,$(wildcard simd/cuda/*.cu)) build-emu/emu/emu.o

build-emu/emu/%.cpp: simd/cuda/%.cu
	@mkdir -p $(dir $@)
	{ echo '#line 1 "$<"'; sed -E -e 's/([A-Za-z_][A-Za-z0-9_]*(<[A-Za-z0-9_]+>)?)<<</emu_launch(\1, /g' \
		-e 's/>>>\(/)(/g' $<; } > $@

build-emu/emu/%.o: build-emu/emu/%.cpp
	$(EMU_CXX) -std=c++17 -O1 -g -Wall -Wextra -Wno-unknown-pragmas -Itools/cuda_emu -Isimd/cuda -I. -MMD -MP -c $< -o $@

build-emu/emu/emu.o: tools/cuda_emu/emu.cpp
	@mkdir -p $(dir $@)
	$(EMU_CXX) -std=c++17 -O1 -g -Wall -Wextra -Wno-unknown-pragmas -Itools/cuda_emu -I. -MMD -MP -c $< -o $@

ifeq ($(EMU),1)
BASE_CFLAGS += -DONESTEP_CUDA=1
LDLIBS += -lstdc++
$(LIB): $(EMU_OBJ)
endif

.PHONY: cuda-emu-test
cuda-emu-test:
	$(MAKE) EMU=1 BUILD=build-emu BIN=build-emu build-emu/tests/test_cuda
	build-emu/tests/test_cuda

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
