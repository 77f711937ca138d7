/* dense.cu — linear, convolution and embedding on the device.
 *
 * GEMMs are cuBLAS (column-major). A row-major matrix A[r][c] with row
 * stride ld is, to cuBLAS, the column-major matrix A^T with leading
 * dimension ld; every call below is written from that identity:
 *
 *   linear  y[M,N] = x[M,K] W[N,K]^T   <=>   y^T (N x M) = W (N x K) . x^T (K x M)
 *           gemm(T, N, m=N, n=M, k=K, A=W (ld K), B=x (ld K), C=y (ld N))
 *   conv    Y[OC,P] = W[OC,CKK] X[CKK,P]  <=>  Y^T (P x OC) = X^T (P x CKK) . W^T (CKK x OC)
 *           gemm(N, N, m=P, n=OC, k=CKK, A=X (ld P), B=W (ld CKK), C=Y (ld P))
 *
 * Bias and residual are written into y first and cuBLAS adds the product
 * with beta = 1. The reference rounds (acc + b) to float and then adds res;
 * here acc is added to float(b + res): a rounding-order difference of an
 * ulp or two, which the parity tests bound. Residual may be y itself (the
 * transformer's `h = h + attn(h)`): the prefill then reads and writes the
 * same element in one thread, and cuBLAS reads C before writing it. */
#include <stdio.h>

#include "state.h"

__global__ void prefill_kernel(float *y, const void *bias, int bias_dt, int bias_per_row, const float *res,
                               size_t rows, size_t cols)
{
    const size_t n = rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float b = 0.0f;
        if (bias) b = cu_ldw(bias, bias_dt, bias_per_row ? i / cols : i % cols);
        y[i] = res ? b + res[i] : b;
    }
}

void cu_prefill(struct cuda_state *s, float *y, const void *bias, int bias_dt, int bias_per_row, const float *res,
                size_t rows, size_t cols)
{
    size_t n = rows * cols;
    prefill_kernel<<<cu_blocks(n), CU_THREADS, 0, s->stream>>>(y, bias, bias_dt, bias_per_row, res, rows, cols);
    cu_launched(s, "prefill");
}

static const float one = 1.0f, zero = 0.0f;

void cu_linear(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
               const float *res, int M, int K, int N)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || M <= 0 || N <= 0) return;
    char op[96];
    snprintf(op, sizeof op, "linear [M %d, K %d, N %d]", M, K, N);
    const float *W = K > 0 ? cu_weight_f32(s, w, (int64_t)N * K, op) : NULL;
    const void *B = b ? cu_weight(s, b, N, op) : NULL;
    if (s->failed) return;
    const int fill = b || res;
    if (fill) cu_prefill(s, y, B, b ? (int)b->dtype : CU_F32, 0, res, (size_t)M, (size_t)N);
    if (K <= 0) { /* an empty sum: y = b + res, or zeros */
        if (!fill) cu_check(s, cudaMemsetAsync(y, 0, (size_t)M * N * sizeof *y, s->stream), op);
        return;
    }
    cu_check_blas(s,
                  cublasGemmEx(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, W, CUDA_R_32F, K, x, CUDA_R_32F, K,
                               fill ? &one : &zero, y, CUDA_R_32F, N, s->compute, CUBLAS_GEMM_DEFAULT),
                  op);
    if (s->sync_each) cu_check(s, cudaStreamSynchronize(s->stream), op);
}

/* col[r][j] = x[c][iy][ix] for r = (c, ky, kx) and output pixel p0 + j =
 * (oy, ox); zero where the tap falls into the padding. */
__global__ void im2col_kernel(float *col, const float *x, int C, int H, int W, int KH, int KW, int stride, int pad_top,
                              int pad_left, int OW, size_t p0, size_t pc)
{
    const size_t n = (size_t)C * KH * KW * pc;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / pc, j = i % pc;
        const int kx = (int)(r % KW), ky = (int)(r / KW % KH), c = (int)(r / ((size_t)KW * KH));
        const size_t p = p0 + j;
        const int oy = (int)(p / OW), ox = (int)(p % OW);
        const int iy = oy * stride + ky - pad_top, ix = ox * stride + kx - pad_left;
        col[i] = iy >= 0 && iy < H && ix >= 0 && ix < W ? x[((size_t)c * H + iy) * W + ix] : 0.0f;
    }
}

void cu_conv2d(const struct ops *o, float *y, const float *x, const struct tensor *w, const struct tensor *b,
               const float *res, const struct conv2d_shape *sh)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed) return;
    const int OH = conv2d_out_h(sh), OW = conv2d_out_w(sh);
    if (sh->OC <= 0 || OH <= 0 || OW <= 0) return;
    const size_t P = (size_t)OH * OW, CKK = (size_t)sh->C * sh->KH * sh->KW;
    char op[128];
    snprintf(op, sizeof op, "conv2d [%d x %dx%d -> %d, %dx%d kernel, stride %d]", sh->C, sh->H, sh->W, sh->OC, sh->KH,
             sh->KW, sh->stride);
    if (P > 0x7fffffff || CKK > 0x7fffffff) { /* cuBLAS dimensions are int */
        cu_fail(s, "%s: %zu output pixels x %zu taps exceed cuBLAS's int dimensions", op, P, CKK);
        return;
    }
    const float *Wt = CKK ? cu_weight_f32(s, w, (int64_t)sh->OC * (int64_t)CKK, op) : NULL;
    const void *B = b ? cu_weight(s, b, sh->OC, op) : NULL;
    if (s->failed) return;
    const int fill = b || res;
    if (fill) cu_prefill(s, y, B, b ? (int)b->dtype : CU_F32, 1, res, (size_t)sh->OC, P);
    if (CKK == 0) {
        if (!fill) cu_check(s, cudaMemsetAsync(y, 0, (size_t)sh->OC * P * sizeof *y, s->stream), op);
        return;
    }
    const float *beta = fill ? &one : &zero;
    const int pointwise = sh->KH == 1 && sh->KW == 1 && sh->stride == 1 && sh->pad_top == 0 && sh->pad_left == 0 &&
                          sh->pad_bottom == 0 && sh->pad_right == 0;
    if (pointwise) { /* x[C][HW] is already the X matrix */
        cu_check_blas(s,
                      cublasGemmEx(s->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)P, sh->OC, (int)CKK, &one, x, CUDA_R_32F,
                                   (int)P, Wt, CUDA_R_32F, (int)CKK, beta, y, CUDA_R_32F, (int)P, s->compute,
                                   CUBLAS_GEMM_DEFAULT),
                      op);
    } else {
        /* im2col in column chunks so the scratch stays bounded: the SDXL VAE
         * at 1024² would need 128*9*1024² floats (4.5 GiB) at once */
        size_t chunk = s->col_cap / CKK;
        if (chunk < 1) chunk = 1;
        if (chunk > P) chunk = P;
        if (!cu_scratch(s, (void **)&s->col, &s->col_bytes, CKK * chunk * sizeof(float), "the im2col scratch")) return;
        for (size_t p0 = 0; p0 < P && !s->failed; p0 += chunk) {
            const size_t pc = P - p0 < chunk ? P - p0 : chunk;
            im2col_kernel<<<cu_blocks(CKK * pc), CU_THREADS, 0, s->stream>>>(
                s->col, x, sh->C, sh->H, sh->W, sh->KH, sh->KW, sh->stride, sh->pad_top, sh->pad_left, OW, p0, pc);
            if (cu_launched(s, "im2col")) return;
            cu_check_blas(s,
                          cublasGemmEx(s->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)pc, sh->OC, (int)CKK, &one, s->col,
                                       CUDA_R_32F, (int)pc, Wt, CUDA_R_32F, (int)CKK, beta, y + p0, CUDA_R_32F, (int)P,
                                       s->compute, CUBLAS_GEMM_DEFAULT),
                          op);
        }
    }
    if (s->sync_each) cu_check(s, cudaStreamSynchronize(s->stream), op);
}

__global__ void embedding_kernel(float *y, const void *table, int dt, const int32_t *ids, int n, int dim)
{
    const size_t total = (size_t)n * dim;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / dim, c = i % dim;
        y[i] = cu_ldw(table, dt, (size_t)ids[r] * dim + c);
    }
}

void cu_embedding(const struct ops *o, float *y, const struct tensor *table, const int32_t *ids, int n, int dim)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || n <= 0 || dim <= 0) return;
    /* the reference trusts its callers; a device fault is harder to read
     * than this, so check the ids here, on the host */
    const int64_t rows = tensor_numel(table) / dim;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= rows) {
            cu_fail(s, "embedding %s: id %d at position %d is outside its %lld rows", table->name ? table->name : "",
                    (int)ids[i], i, (long long)rows);
            return;
        }
    }
    const void *T = cu_weight(s, table, rows * dim, "embedding");
    if (!T) return;
    if (!cu_scratch(s, (void **)&s->ids, &s->ids_bytes, (size_t)n * sizeof *ids, "embedding ids")) return;
    /* ids is the caller's to reuse as soon as we return: wait for the copy
     * (77 ids; the sync costs nothing next to a text encoder) */
    if (cu_check(s, cudaMemcpyAsync(s->ids, ids, (size_t)n * sizeof *ids, cudaMemcpyHostToDevice, s->stream),
                 "embedding ids upload") ||
        cu_check(s, cudaStreamSynchronize(s->stream), "embedding ids upload"))
        return;
    embedding_kernel<<<cu_blocks((size_t)n * dim), CU_THREADS, 0, s->stream>>>(y, T, (int)table->dtype, s->ids, n,
                                                                              dim);
    cu_launched(s, "embedding");
}
