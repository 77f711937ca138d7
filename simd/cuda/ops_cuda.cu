/* ops_cuda.cu — the CUDA table: device memory, transfers, the stream, error
 * recording and the weight cache. The kernels live by family in dense.cu,
 * norm.cu, attention.cu and elementwise.cu. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

/* ---- errors ---- */

void cu_fail(struct cuda_state *s, const char *fmt, ...)
{
    if (s->failed) return;
    s->failed = 1;
    int n = snprintf(s->msg, sizeof s->msg, "cuda backend: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->msg + n, sizeof s->msg - (size_t)n, fmt, ap);
    va_end(ap);
}

int cu_check(struct cuda_state *s, cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return 0;
    cu_fail(s, "%s failed: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    return -1;
}

int cu_check_blas(struct cuda_state *s, cublasStatus_t e, const char *what)
{
    if (e == CUBLAS_STATUS_SUCCESS) return 0;
    cu_fail(s, "%s failed: %s", what, cublasGetStatusString(e));
    return -1;
}

int cu_launched(struct cuda_state *s, const char *kernel)
{
    char what[96];
    snprintf(what, sizeof what, "kernel %s", kernel);
    if (cu_check(s, cudaGetLastError(), what)) return -1;
    if (s->sync_each) return cu_check(s, cudaStreamSynchronize(s->stream), what);
    return 0;
}

/* ---- memory ---- */

static void *cu_alloc(const struct ops *o, size_t bytes)
{
    (void)o;
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
        /* not a backend failure: the arena turns NULL into "cannot allocate
         * N MiB of activation memory on backend cuda"; clear CUDA's sticky
         * last-error so the next launch check does not see it */
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cu_free(const struct ops *o, void *p)
{
    if (!p) return;
    struct cuda_state *s = cu_state(o);
    /* cudaFree waits for the device; a kernel still reading p is finished */
    cu_check(s, cudaFree(p), "cudaFree");
}

static void cu_upload(const struct ops *o, float *dst, const float *src, size_t n)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || !n) return;
    /* the host buffer may be freed as soon as we return: wait for the copy */
    if (cu_check(s, cudaMemcpyAsync(dst, src, n * sizeof *dst, cudaMemcpyHostToDevice, s->stream), "upload")) return;
    cu_check(s, cudaStreamSynchronize(s->stream), "upload");
}

static void cu_download(const struct ops *o, float *dst, const float *src, size_t n)
{
    struct cuda_state *s = cu_state(o);
    if (!n) return;
    if (s->failed) { /* give the caller defined (if useless) data */
        memset(dst, 0, n * sizeof *dst);
        return;
    }
    if (cu_check(s, cudaMemcpyAsync(dst, src, n * sizeof *dst, cudaMemcpyDeviceToHost, s->stream), "download")) return;
    cu_check(s, cudaStreamSynchronize(s->stream), "download (a kernel before it failed)");
}

static void cu_copy2d(const struct ops *o, float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t rows,
                      size_t cols)
{
    struct cuda_state *s = cu_state(o);
    if (s->failed || !rows || !cols) return;
    if (rows == 1) { /* model code passes ld 0 for a single row */
        cu_check(s, cudaMemcpyAsync(dst, src, cols * sizeof *dst, cudaMemcpyDeviceToDevice, s->stream), "copy2d");
        return;
    }
    if (ld_dst < cols || ld_src < cols) {
        cu_fail(s, "copy2d of %zu rows x %zu floats with row strides %zu/%zu: rows would overlap", rows, cols, ld_dst,
                ld_src);
        return;
    }
    cu_check(s,
             cudaMemcpy2DAsync(dst, ld_dst * sizeof *dst, src, ld_src * sizeof *src, cols * sizeof *dst, rows,
                               cudaMemcpyDeviceToDevice, s->stream),
             "copy2d");
}

static void cu_sync(const struct ops *o)
{
    struct cuda_state *s = cu_state(o);
    cu_check(s, cudaStreamSynchronize(s->stream), "a kernel of this stage (set ONESTEP_CUDA_SYNC=1 to find which)");
}

void *cu_scratch(struct cuda_state *s, void **buf, size_t *have, size_t bytes, const char *what)
{
    if (bytes <= *have && *buf) return *buf;
    if (*buf) {
        /* queued kernels may still read the old buffer */
        if (cu_check(s, cudaStreamSynchronize(s->stream), what)) return NULL;
        cudaFree(*buf);
        *buf = NULL;
        *have = 0;
    }
    size_t want = bytes + bytes / 4; /* headroom: shapes grow in steps */
    want = (want + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    if (cudaMalloc(buf, want) != cudaSuccess) {
        (void)cudaGetLastError();
        *buf = NULL;
        size_t free_b = 0, total = 0;
        cudaMemGetInfo(&free_b, &total);
        cu_fail(s, "cannot allocate %.1f MiB on the CUDA device for %s (%.0f MiB free of %.0f MiB)",
                want / 1048576.0, what, free_b / 1048576.0, total / 1048576.0);
        return NULL;
    }
    *have = want;
    return *buf;
}

/* ---- the weight cache ---- */

#define CU_WEIGHT_MAGIC 0x43554457u /* "WDUC": a record this backend made */

struct cu_weight_rec {
    uint32_t magic;
    struct cuda_state *owner;
    const void *host; /* t->data when uploaded: a moved tensor is uploaded anew */
    void *dev;
    size_t bytes;
};

static void rec_free(struct cuda_state *s, struct tensor *t)
{
    struct cu_weight_rec *r = (struct cu_weight_rec *)t->backend_cache;
    cudaFree(r->dev);
    s->weight_bytes -= r->bytes;
    free(r);
    t->backend_cache = NULL;
}

const void *cu_weight(struct cuda_state *s, const struct tensor *t, int64_t need, const char *op)
{
    if (s->failed) return NULL;
    if (!t) {
        cu_fail(s, "%s: a required weight is missing (NULL)", op);
        return NULL;
    }
    /* ops.h gives the backend tensor->backend_cache; the tensor is const
     * only to model code */
    struct tensor *mt = (struct tensor *)t;
    const char *name = t->name ? t->name : "(unnamed)";
    if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16) {
        cu_fail(s, "%s: weight %s is %s; the CUDA kernels read F32, F16 and BF16", op, name, dtype_name(t->dtype));
        return NULL;
    }
    int64_t numel = tensor_numel(t);
    if (numel < need) {
        cu_fail(s, "%s: weight %s has %lld elements, the op needs %lld", op, name, (long long)numel, (long long)need);
        return NULL;
    }
    struct cu_weight_rec *r = (struct cu_weight_rec *)mt->backend_cache;
    if (r) {
        if (r->magic != CU_WEIGHT_MAGIC || r->owner != s) {
            cu_fail(s, "%s: weight %s is cached by another backend", op, name);
            return NULL;
        }
        if (r->host == t->data) return r->dev;
        if (cu_check(s, cudaStreamSynchronize(s->stream), "re-uploading a changed weight")) return NULL;
        rec_free(s, mt);
    }
    size_t bytes = (size_t)numel * dtype_size(t->dtype);
    r = (struct cu_weight_rec *)calloc(1, sizeof *r);
    if (!r) {
        cu_fail(s, "%s: out of host memory for the record of weight %s", op, name);
        return NULL;
    }
    if (cudaMalloc(&r->dev, bytes ? bytes : 256) != cudaSuccess) {
        (void)cudaGetLastError();
        size_t free_b = 0, total = 0;
        cudaMemGetInfo(&free_b, &total);
        cu_fail(s,
                "cannot allocate %.1f MiB on the CUDA device for weight %s (%.0f MiB free of %.0f MiB, %.0f MiB "
                "already hold weights)",
                bytes / 1048576.0, name, free_b / 1048576.0, total / 1048576.0, s->weight_bytes / 1048576.0);
        free(r);
        return NULL;
    }
    /* from the file mapping (pageable): returns once the data is staged */
    if (bytes && cu_check(s, cudaMemcpyAsync(r->dev, t->data, bytes, cudaMemcpyHostToDevice, s->stream),
                          "uploading a weight")) {
        cudaFree(r->dev);
        free(r);
        return NULL;
    }
    r->magic = CU_WEIGHT_MAGIC;
    r->owner = s;
    r->host = t->data;
    r->bytes = bytes;
    mt->backend_cache = r;
    s->weight_bytes += bytes;
    return r->dev;
}

__global__ void widen_kernel(float *dst, const unsigned short *src, size_t n, int dt)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = cu_ldw(src, dt, i);
}

const float *cu_weight_f32(struct cuda_state *s, const struct tensor *t, int64_t need, const char *op)
{
    const void *dev = cu_weight(s, t, need, op);
    if (!dev) return NULL;
    if (t->dtype == DT_F32) return (const float *)dev;
    /* f16/bf16 stay stored as they are on the device (the SDXL UNet is 5 GB
     * in f16, 10 GB widened) and are widened here, one weight at a time,
     * for the GEMM that reads them: 6 bytes of traffic per weight element
     * against the GEMM's M*2 flops per element. */
    size_t n = (size_t)need;
    if (!cu_scratch(s, (void **)&s->wbuf, &s->wbuf_bytes, n * sizeof(float), "widening an f16/bf16 weight"))
        return NULL;
    widen_kernel<<<cu_blocks(n), CU_THREADS, 0, s->stream>>>(s->wbuf, (const unsigned short *)dev, n, t->dtype);
    if (cu_launched(s, "widen")) return NULL;
    return s->wbuf;
}

/* ---- the table ---- */

/* Report and clear the first failure. Clearing lets a long-lived caller go
 * on after, say, a weight that did not fit; a fault that poisons the CUDA
 * context (an illegal address) is simply met, and recorded, again by the
 * next call that touches the device. */
static int cu_error(const struct ops *o, struct os_err *err)
{
    struct cuda_state *s = cu_state(o);
    if (!s->failed) cu_check(s, cudaStreamSynchronize(s->stream), "a queued kernel");
    if (!s->failed) return 0;
    os_fail(err, "%s", s->msg);
    s->failed = 0;
    s->msg[0] = '\0';
    return -1;
}

static void cu_release(const struct ops *o, struct tensor *t, size_t n)
{
    struct cuda_state *s = cu_state(o);
    cudaStreamSynchronize(s->stream); /* no queued kernel may still read them */
    for (size_t i = 0; i < n; i++) {
        struct cu_weight_rec *r = (struct cu_weight_rec *)t[i].backend_cache;
        if (r && r->magic == CU_WEIGHT_MAGIC && r->owner == s) rec_free(s, &t[i]);
    }
}

static struct cuda_state the_state;
static struct ops the_ops;
static int made; /* 1: the_ops is ready */

static size_t env_size(const char *name, size_t def)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    return *end == '\0' ? (size_t)x : def;
}

int ops_cuda_devices(char *why, size_t why_len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (why && why_len) snprintf(why, why_len, "%s", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0 && why && why_len) snprintf(why, why_len, "the driver reports no device");
    return n;
}

const struct ops *ops_cuda(int threads, struct os_err *err)
{
    (void)threads;
    if (made) return &the_ops;
    char why[160];
    int ndev = ops_cuda_devices(why, sizeof why);
    if (ndev == 0) {
        os_fail(err, "--backend cuda: no CUDA device (%s)", why);
        return NULL;
    }
    struct cuda_state *s = &the_state;
    memset(s, 0, sizeof *s);
    size_t dev = env_size("ONESTEP_CUDA_DEVICE", 0);
    if (dev >= (size_t)ndev) {
        os_fail(err, "ONESTEP_CUDA_DEVICE=%zu: there %s only %d CUDA device%s", dev, ndev == 1 ? "is" : "are", ndev,
                ndev == 1 ? "" : "s");
        return NULL;
    }
    s->device = (int)dev;
    cudaDeviceProp p;
    cudaError_t e = cudaSetDevice(s->device);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&p, s->device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        os_fail(err, "--backend cuda: cannot set up device %d: %s", s->device, cudaGetErrorString(e));
        return NULL;
    }
    cublasStatus_t b = cublasCreate(&s->blas);
    if (b == CUBLAS_STATUS_SUCCESS) b = cublasSetStream(s->blas, s->stream);
    /* default math: no tensor-op down-conversion of fp32 inputs */
    if (b == CUBLAS_STATUS_SUCCESS) b = cublasSetMathMode(s->blas, CUBLAS_DEFAULT_MATH);
    if (b != CUBLAS_STATUS_SUCCESS) {
        os_fail(err, "--backend cuda: cannot initialise cuBLAS on device %d: %s", s->device,
                cublasGetStatusString(b));
        cudaStreamDestroy(s->stream);
        return NULL;
    }
    int tf32 = env_size("ONESTEP_CUDA_TF32", 0) != 0;
    s->compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    s->sync_each = env_size("ONESTEP_CUDA_SYNC", 0) != 0;
    size_t mib = env_size("ONESTEP_CUDA_IM2COL_MIB", 256);
    s->col_cap = (mib ? mib : 1) * ((size_t)1 << 20) / sizeof(float);
    snprintf(s->desc, sizeof s->desc, "cuda: %.120s (device %d, sm_%d%d, %d SMs, %.0f MiB), cuBLAS %s GEMMs%s", p.name,
             s->device, p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem / 1048576.0,
             tf32 ? "TF32" : "fp32 (no TF32)", s->sync_each ? ", synchronised after every kernel" : "");

    struct ops *o = &the_ops;
    o->name = "cuda";
    o->state = s;
    o->threads = 1;
    o->alloc = cu_alloc;
    o->free = cu_free;
    o->upload = cu_upload;
    o->download = cu_download;
    o->copy2d = cu_copy2d;
    o->sync = cu_sync;
    o->linear = cu_linear;
    o->conv2d = cu_conv2d;
    o->attention = cu_attention;
    o->embedding = cu_embedding;
    o->layer_norm = cu_layer_norm;
    o->group_norm = cu_group_norm;
    o->softmax = cu_softmax;
    o->act = cu_act;
    o->geglu = cu_geglu;
    o->add = cu_add;
    o->add_channel = cu_add_channel;
    o->scale = cu_scale;
    o->transpose = cu_transpose;
    o->upsample_nearest = cu_upsample_nearest;
    o->error = cu_error;
    o->release = cu_release;
    made = 1;
    return o;
}

int ops_cuda_error(const struct ops *o, struct os_err *err)
{
    return cu_error(o, err);
}

void ops_cuda_release(const struct ops *o, struct tensor *tensors, size_t n)
{
    cu_release(o, tensors, n);
}

size_t ops_cuda_weight_bytes(const struct ops *o)
{
    return cu_state(o)->weight_bytes;
}

const char *ops_cuda_describe(const struct ops *o)
{
    return cu_state(o)->desc;
}
