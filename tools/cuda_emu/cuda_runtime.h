/* cuda_runtime.h (emulator) — the subset of the CUDA runtime and device
 * language that simd/cuda/ uses, run on the CPU, so the kernels' logic
 * (indexing, tiling, barriers, shuffles, the online softmax, the im2col
 * chunks, the cuBLAS call shapes) can be tested on a machine without a GPU:
 * `make cuda-emu-test`. It proves nothing about speed, the real compiler or
 * the real libm/cuBLAS numerics; the GPU run of tests/test_cuda does.
 *
 * Model: blocks run one after another; the threads of a block are
 * coroutines (ucontext) switched at __syncthreads and warp shuffles, so a
 * barrier that not every thread reaches, or a shuffle a warp reaches only in
 * part, is caught and reported instead of hanging. __shared__ is `static`:
 * one copy, shared by the block that is running. Kernel launches are
 * rewritten by the Makefile from `k<<<g, b, smem, stream>>>(args)` to
 * `emu_launch(k, g, b, smem, stream)(args)`. */
#ifndef ONESTEP_CUDA_EMU_RUNTIME_H
#define ONESTEP_CUDA_EMU_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <functional>
#include <tuple>
#include <utility>

#define __CUDACC__ 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(n)

using std::max;
using std::min;

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* the running thread's coordinates */
struct emu_coords {
    dim3 tid, bid, bdim, gdim;
};
extern emu_coords *emu_now;
#define threadIdx (emu_now->tid)
#define blockIdx (emu_now->bid)
#define blockDim (emu_now->bdim)
#define gridDim (emu_now->gdim)

void __syncthreads(void);
void emu_warp_sync(void);
/* lane values pass through 8-byte slots of the current warp */
void emu_shfl_put(const void *v, size_t n);
void emu_shfl_get(void *v, size_t n, int lane);

template <typename T> T __shfl_sync(unsigned mask, T v, int src)
{
    (void)mask;
    emu_shfl_put(&v, sizeof v);
    emu_warp_sync();
    T r;
    emu_shfl_get(&r, sizeof r, src & 31);
    return r;
}

template <typename T> T __shfl_xor_sync(unsigned mask, T v, int lanemask)
{
    return __shfl_sync(mask, v, (int)((threadIdx.x % 32) ^ (unsigned)lanemask));
}

static inline float __uint_as_float(unsigned u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- host API ---- */

typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorLaunchFailure = 719,
} cudaError_t;

typedef enum {
    cudaMemcpyHostToHost,
    cudaMemcpyHostToDevice,
    cudaMemcpyDeviceToHost,
    cudaMemcpyDeviceToDevice,
} cudaMemcpyKind;

typedef int *cudaStream_t;
#define cudaStreamNonBlocking 1u

struct cudaDeviceProp {
    char name[256];
    int major, minor, multiProcessorCount;
    size_t totalGlobalMem;
};

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaMalloc(void **p, size_t bytes);
template <typename T> cudaError_t cudaMalloc(T **p, size_t bytes)
{
    return cudaMalloc((void **)p, bytes);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s);
cudaError_t cudaGetLastError(void);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);

/* ---- launches ---- */

void emu_run_grid(dim3 grid, dim3 block, const std::function<void()> &body);

template <typename... P> struct emu_launcher {
    void (*k)(P...);
    dim3 grid, block;
    template <typename... A> void operator()(A &&...args) const
    {
        std::tuple<P...> params(std::forward<A>(args)...);
        auto kernel = k;
        emu_run_grid(grid, block, [&]() { std::apply(kernel, params); });
    }
};

template <typename... P>
emu_launcher<P...> emu_launch(void (*k)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s)
{
    (void)smem;
    (void)s;
    return emu_launcher<P...>{k, grid, block};
}

#endif
