/* ops_cuda.h — the CUDA offload backend: a third table behind ref/ops.h.
 *
 * Built only by `make CUDA=1` (nvcc + cuBLAS); the default build never sees
 * these files. Model code does not change: activations live in device
 * memory for the whole UNet/VAE/text-encoder pass (the arena is one
 * cudaMalloc), host data crosses only through upload/download, and weights
 * are uploaded on first use in their stored dtype and cached in
 * tensor->backend_cache.
 *
 * Numbers: GEMMs (linear, convolution via im2col) are cuBLAS with
 * CUBLAS_COMPUTE_32F — plain fp32 FMA, no TF32 — so results stay within the
 * conformance suite's fp32-grounded tolerances of the reference; reductions
 * (norms, softmax) accumulate in double like ops_ref.c. See
 * simd/cuda/README.md for the choices and their reasons.
 *
 * Kernels run asynchronously on one stream. An ops function cannot return an
 * error, so the first failure (a failed launch or cuBLAS call, no memory for
 * a weight, a kernel fault seen at sync) is recorded in the backend and every
 * later kernel becomes a no-op until it is read. The pipeline checks after
 * each stage:
 *     o->sync(o);
 *     if (o->error && o->error(o, err)) return -1;   // generic form (ops.h)
 * (ops_cuda_error() below is the same function.)
 *
 * Options, read from the environment when the table is made:
 *   ONESTEP_CUDA_DEVICE=N     device index (default 0)
 *   ONESTEP_CUDA_TF32=1       GEMMs in TF32 (faster, ~1e-3 relative error:
 *                             outside the suite's tolerances; off by default)
 *   ONESTEP_CUDA_SYNC=1       synchronise after every kernel, so a fault is
 *                             reported against the op that caused it (debug)
 *   ONESTEP_CUDA_IM2COL_MIB=N cap of the im2col scratch (default 256) */
#ifndef ONESTEP_OPS_CUDA_H
#define ONESTEP_OPS_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The C headers declare C functions (os_fail, tensor_numel): give them C
 * linkage in the C++ files of simd/cuda/. The system headers they include
 * are included above, outside the block, as C++ wants them. */
#ifdef __cplusplus
extern "C" {
#endif

#include "../../ref/common.h"
#include "../../ref/ops.h"

/* Number of CUDA devices the driver reports; 0 when there is none or no
 * usable driver (why: in *why, if non-NULL). Never fails otherwise. */
int ops_cuda_devices(char *why, size_t why_len);

/* The CUDA table (made once, kept until exit; `threads` is unused: the
 * device decides). NULL with one sentence in err when there is no device or
 * the CUDA/cuBLAS context cannot be made. */
const struct ops *ops_cuda(int threads, struct os_err *err);

/* Finish queued work, then: 0 if every CUDA call since the last report
 * succeeded, else -1 with the first failure in err (which is then cleared;
 * a fault that poisons the CUDA context is met and reported again by the
 * next call). This is the table's o->error. */
int ops_cuda_error(const struct ops *o, struct os_err *err);

/* Free the device copies of these weights (a component's table, before
 * component_close or to make room for the next stage's model) and clear their
 * backend_cache. Tensors not cached by this backend are left alone. */
void ops_cuda_release(const struct ops *o, struct tensor *tensors, size_t n);

/* Bytes of weights currently held on the device. */
size_t ops_cuda_weight_bytes(const struct ops *o);

/* One line: device, compute capability, memory, GEMM mode. */
const char *ops_cuda_describe(const struct ops *o);

#ifdef __cplusplus
}
#endif

#endif
