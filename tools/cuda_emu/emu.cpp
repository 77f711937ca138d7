/* emu.cpp — the CUDA emulator's runtime: memory is host memory, streams are
 * synchronous, and a grid runs block by block with the block's threads as
 * coroutines (see cuda_runtime.h). */
#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>
#include <ucontext.h>

#include <vector>

#include "cublas_v2.h"
#include "cuda_fp16.h"
#include "cuda_runtime.h"

emu_coords *emu_now;

namespace {

enum state { RUN, AT_BARRIER, AT_WARP, DONE };

struct thread {
    ucontext_t ctx; /* first entry only (makecontext gives the coroutine its stack) */
    jmp_buf jb;     /* every later switch: _setjmp/_longjmp save no signal mask, so no system call */
    bool started;
    emu_coords where;
    state st;
    unsigned char slot[2][8]; /* shuffles alternate between two slots: one wait per shuffle */
    unsigned shuffles;
};

const size_t STACK = 256 * 1024;

std::vector<thread> threads;
std::vector<char *> stacks;
ucontext_t scheduler;
jmp_buf scheduler_jb;
thread *current;
const std::function<void()> *body;
cudaError_t last_error = cudaSuccess;

void fatal(const char *what)
{
    fprintf(stderr, "cuda emulator: %s (block %u,%u thread %u,%u)\n", what, current ? current->where.bid.x : 0,
            current ? current->where.bid.y : 0, current ? current->where.tid.x : 0, current ? current->where.tid.y : 0);
    abort();
}

/* Blocks after the first run their threads as plain calls when the first
 * block never synchronised (elementwise kernels): no context switches. */
bool plain;
bool block_synced;

void yield(state st)
{
    if (plain) fatal("a barrier or shuffle in a kernel whose first block had none (emulator limitation)");
    block_synced = true;
    current->st = st;
    if (!_setjmp(current->jb)) _longjmp(scheduler_jb, 1);
}

void entry(void)
{
    (*body)();
    current->st = DONE;
    _longjmp(scheduler_jb, 1);
}

void resume(thread &t)
{
    current = &t;
    emu_now = &t.where;
    if (_setjmp(scheduler_jb)) return; /* the thread yielded or finished */
    if (t.started) _longjmp(t.jb, 1);
    t.started = true;
    swapcontext(&scheduler, &t.ctx);
}

unsigned linear_tid(const thread &t)
{
    return t.where.tid.x + t.where.bdim.x * (t.where.tid.y + t.where.bdim.y * t.where.tid.z);
}

void run_block(dim3 grid, dim3 block, dim3 b)
{
    const unsigned n = block.x * block.y * block.z;
    /* ucontext_t points into itself (fpregs): the slots must never move */
    if (threads.capacity() < 1024) threads.reserve(1024);
    while (threads.size() < n) {
        threads.emplace_back();
        getcontext(&threads.back().ctx); /* once per slot: getcontext is a system call */
        stacks.push_back((char *)malloc(STACK));
    }
    for (unsigned i = 0; i < n; i++) {
        thread &t = threads[i];
        t.where.tid = dim3(i % block.x, i / block.x % block.y, i / (block.x * block.y));
        t.where.bid = b;
        t.where.bdim = block;
        t.where.gdim = grid;
        t.st = RUN;
        t.started = false;
        t.shuffles = 0;
    }
    if (plain) {
        for (unsigned i = 0; i < n; i++) {
            current = &threads[i];
            emu_now = &current->where;
            (*body)();
        }
        current = NULL;
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        thread &t = threads[i];
        t.ctx.uc_stack.ss_sp = stacks[i];
        t.ctx.uc_stack.ss_size = STACK;
        t.ctx.uc_link = NULL;
        makecontext(&t.ctx, entry, 0);
    }
    for (;;) {
        for (unsigned i = 0; i < n; i++)
            if (threads[i].st == RUN) resume(threads[i]);
        /* everyone is done or waiting: release what can be released */
        unsigned done = 0, barrier = 0;
        for (unsigned i = 0; i < n; i++) {
            done += threads[i].st == DONE;
            barrier += threads[i].st == AT_BARRIER;
        }
        if (done == n) break;
        int released = 0;
        for (unsigned w = 0; w * 32 < n; w++) {
            unsigned at = 0, live = 0;
            for (unsigned i = w * 32; i < n && i < w * 32 + 32; i++) {
                live += threads[i].st != DONE;
                at += threads[i].st == AT_WARP;
            }
            if (at && at == live && live == (n - w * 32 < 32 ? n - w * 32 : 32)) {
                for (unsigned i = w * 32; i < n && i < w * 32 + 32; i++) threads[i].st = RUN;
                released = 1;
            } else if (at) {
                current = &threads[w * 32];
                fatal("a warp shuffle that not all 32 lanes of the warp reach");
            }
        }
        if (released) continue;
        if (barrier && barrier + done == n) {
            if (done) {
                current = &threads[0];
                fatal("__syncthreads after some threads of the block returned");
            }
            for (unsigned i = 0; i < n; i++) threads[i].st = RUN;
            continue;
        }
        current = &threads[0];
        fatal("deadlock: threads wait at different barriers");
    }
    current = NULL;
}

} // namespace

void __syncthreads(void)
{
    yield(AT_BARRIER);
}

void emu_warp_sync(void)
{
    yield(AT_WARP);
}

void emu_shfl_put(const void *v, size_t n)
{
    memcpy(current->slot[current->shuffles & 1], v, n);
}

/* After the warp's wait: read the source lane's slot of this shuffle. The
 * next shuffle writes the other slot, and the one after it (which reuses
 * this slot) cannot start before every lane has passed the next wait, so a
 * slot is never overwritten before it is read. */
void emu_shfl_get(void *v, size_t n, int lane)
{
    unsigned me = linear_tid(*current);
    unsigned src = me / 32 * 32 + (unsigned)lane;
    memcpy(v, threads[src].slot[current->shuffles & 1], n);
    current->shuffles++;
}

void emu_run_grid(dim3 grid, dim3 block, const std::function<void()> &b)
{
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x * block.y * block.z == 0 ||
        block.x * block.y * block.z > 1024 || grid.y > 65535 || grid.z > 65535) {
        last_error = cudaErrorInvalidValue;
        return;
    }
    body = &b;
    plain = false;
    block_synced = false;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                run_block(grid, block, dim3(x, y, z));
                if (!block_synced) plain = true;
            }
    plain = false;
    body = NULL;
}

/* ---- runtime ---- */

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulator (tools/cuda_emu)");
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 1;
    p->totalGlobalMem = (size_t)1 << 32;
    return cudaSuccess;
}
static int the_stream;
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned)
{
    *s = &the_stream;
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaMalloc(void **p, size_t bytes)
{
    *p = NULL;
    if (bytes > ((size_t)1 << 40) || posix_memalign(p, 256, bytes ? bytes : 1) != 0) {
        *p = NULL;
        last_error = cudaErrorMemoryAllocation;
        return cudaErrorMemoryAllocation;
    }
    /* garbage, as fresh device memory: a kernel that reads before it
     * writes shows up as NaN */
    memset(*p, 0xff, bytes);
    return cudaSuccess;
}
cudaError_t cudaFree(void *p)
{
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total)
{
    *free_b = (size_t)1 << 31;
    *total = (size_t)1 << 32;
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind, cudaStream_t)
{
    memcpy(dst, src, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind, cudaStream_t)
{
    if (dpitch < width || spitch < width) return last_error = cudaErrorInvalidValue;
    for (size_t r = 0; r < height; r++) memcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t)
{
    memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    default: return "unspecified launch failure";
    }
}
const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    default: return "cudaErrorLaunchFailure";
    }
}

/* ---- cuBLAS ---- */

struct emu_blas {
    int unused;
};
static emu_blas the_blas;

cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    *h = &the_blas;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t s)
{
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE";
}

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType, int lda, const void *B, cudaDataType,
                            int ldb, const void *beta, void *C, cudaDataType, int ldc, cublasComputeType_t,
                            cublasGemmAlgo_t)
{
    /* cuBLAS's argument checks (cublas docs, cublasGemmEx "Return value") */
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1))) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1))) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldc < (m > 1 ? m : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    const float a = *(const float *)alpha, b = *(const float *)beta;
    const float *Af = (const float *)A, *Bf = (const float *)B;
    float *Cf = (float *)C;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            for (int l = 0; l < k; l++) {
                float x = ta == CUBLAS_OP_N ? Af[i + (size_t)l * lda] : Af[l + (size_t)i * lda];
                float y = tb == CUBLAS_OP_N ? Bf[l + (size_t)j * ldb] : Bf[j + (size_t)l * ldb];
                acc = fmaf(x, y, acc);
            }
            float *c = &Cf[i + (size_t)j * ldc];
            *c = b == 0.0f ? a * acc : a * acc + b * *c; /* beta 0: C is not read */
        }
    return CUBLAS_STATUS_SUCCESS;
}
