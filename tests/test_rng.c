/* rng: torch.randn bit for bit against the suite's rng.safetensors (both
 * torch kernels, sequences from one generator, seed truncation), mt19937 and
 * Philox against published values, names and seed parsing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/rng.h"
#include "../weights/json.h"
#include "../weights/safetensors.h"
#include "lib/check.h"
#include "lib/conformance.h"

/* Number of elements differing in their bits. */
static size_t bit_diffs(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) d++;
    return d;
}

static float *draw(enum rng_kind kind, uint64_t seed, size_t n)
{
    float *out = malloc((n ? n : 1) * sizeof *out);
    struct rng r;
    rng_init(&r, kind, seed);
    rng_randn(&r, out, n);
    return out;
}

/* ---- generator cores against published values -------------------------- */

static void test_mt19937(void)
{
    /* C++ [rand.predef]: the 10000th draw of a default-constructed mt19937
     * (seed 5489) is 4123659995. */
    struct rng r;
    rng_init(&r, RNG_TORCH, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = rng_u32(&r);
    check(v == 4123659995u, "mt19937 seed 5489: 10000th draw %u (4123659995)", v);
}

static void test_philox(void)
{
    /* Outputs of A1111's modules/rng_philox.py itself (run with numpy 2.4.6):
     * Generator(0).randn((3, 4)), and the third call, randn((7,)), of
     * Generator(2**64 - 1) after randn((3, 4)) and randn((1, 4, 64, 64)):
     * the seed's high word is the second key word, each call the next
     * counter offset. */
    static const float a1111_seed0[12] = {
        -0x1.d96d5ap-1, -0x1.b38d5ep-2, -0x1.52698ap+1, 0x1.29562ap-3,  -0x1.ef11b8p-4, -0x1.28d1cep-1,
        -0x1.3ee65ep-1, -0x1.5044b8p-2, -0x1.13153p+0,  -0x1.73dc0cp-2, -0x1.abc9f6p+0, 0x1.21fc12p+1,
    };
    static const float a1111_max_call3[7] = {
        0x1.bfdfaap-1, 0x1.3061d8p-4, 0x1.45f2ep+0, -0x1.4fbfa4p-2, -0x1.cdfd82p-2, 0x1.6e0a96p-1, 0x1.211104p-1,
    };
    /* The same module's docstring promises, for seed 0, what torch.randn
     * gives on an NVIDIA GPU (printed to 8 decimals). A1111's float64 numpy
     * arithmetic is an imitation of curand's float32 one and lands within a
     * few float ulps of it, not on it. */
    static const double cuda_seed0[12] = {
        -0.92466259, -0.42534415, -2.6438457,  0.14518388,  -0.12086647, -0.57972564,
        -0.62285122, -0.32838709, -1.07454231, -0.36314407, -1.67105067, 2.26550497,
    };
    float got[12];
    struct rng r;
    rng_init(&r, RNG_PHILOX, 0);
    rng_randn(&r, got, 12);
    check(bit_diffs(got, a1111_seed0, 12) == 0, "philox seed 0 randn(3,4): A1111's rng_philox.py values bit for bit");
    double worst = 0;
    for (int i = 0; i < 12; i++) {
        double e = fabs(got[i] - cuda_seed0[i]);
        if (e > worst) worst = e; /* (an fmax() reduction here crashes aarch64 gcc 12's vectorizer) */
    }
    check(worst <= 3e-7, "philox seed 0 randn(3,4): within 3e-7 of the torch CUDA values in A1111's docstring (%.2g)",
          worst);

    rng_init(&r, RNG_PHILOX, UINT64_MAX);
    float *big = malloc(16384 * sizeof *big);
    rng_randn(&r, big, 12);
    rng_randn(&r, big, 16384);
    rng_randn(&r, got, 7);
    check(bit_diffs(got, a1111_max_call3, 7) == 0, "philox seed 2^64-1, third call: A1111's values bit for bit");
    free(big);

    /* Element i depends only on the seed, the call's offset and i. */
    size_t n = (size_t)1 << 20;
    float *b = draw(RNG_PHILOX, 0, n);
    check(bit_diffs(b, a1111_seed0, 12) == 0, "philox randn(2^20) starts with randn(3,4)'s values");
    free(b);
}

/* ---- the suite's torch.randn records ------------------------------------ */

static size_t shape_numel(const struct json *shape)
{
    size_t n = 1;
    for (size_t i = 0; shape && i < shape->len; i++) n *= (size_t)shape->items[i].integer;
    return n;
}

/* "1x4x5x9" -> 180 */
static size_t dims_numel(const char *dims)
{
    size_t n = 1;
    for (const char *p = dims; *p;) {
        char *end;
        n *= strtoul(p, &end, 10);
        p = *end == 'x' ? end + 1 : end;
    }
    return n;
}

/* The manifest name starting with prefix, or NULL. */
static const char *find_name(const struct json *tensors, const char *prefix)
{
    for (size_t i = 0; i < tensors->len; i++)
        if (strncmp(tensors->keys[i], prefix, strlen(prefix)) == 0) return tensors->keys[i];
    return NULL;
}

struct suite {
    const struct json *tensors; /* manifest rng.tensors */
    struct st_file *file;
    size_t records, exact;
};

/* Compare got with record `name`. torch-scalar goes through the C library's
 * logf/cosf/sinf like torch; the records came from glibc, so only there are
 * its bits promised: elsewhere it must be within 4 float ulps of the
 * record's largest value. */
static void compare(struct suite *s, const char *name, enum rng_kind kind, const float *got, size_t n)
{
    size_t nref = 0;
    float *ref = conf_tensor(s->file, name, &nref);
    if (!ref || nref != n) {
        check(0, "%s: record with %zu values in rng.safetensors", name, n);
        free(ref);
        return;
    }
    size_t d = bit_diffs(got, ref, n);
    s->records++;
    if (d == 0) s->exact++;
    int need_bits = kind == RNG_TORCH;
#ifdef __GLIBC__
    need_bits = 1;
#endif
    if (need_bits) {
        check(d == 0, "%s %s: %zu/%zu values bit-exact", rng_kind_name(kind), name, n - d, n);
    } else {
        struct diff_stats st;
        diff_floats(got, ref, n, 0, &st);
        double tol = 4 * ldexp(1.0, ilogb(st.ref_max_abs) - 23);
        check(st.max_abs <= tol, "%s %s: %zu/%zu bit-exact, max|diff| %.3g <= %.3g (non-glibc C library)",
              rng_kind_name(kind), name, n - d, n, st.max_abs, tol);
    }
    free(ref);
}

/* "avx2.seed42.1x4x5x9": one fresh generator, one draw. */
static void single_record(struct suite *s, const char *name, size_t n)
{
    enum rng_kind kind = strncmp(name, "avx2.", 5) == 0 ? RNG_TORCH : RNG_TORCH_SCALAR;
    const char *p = strchr(name, '.') + 1 + strlen("seed");
    char seed_str[32];
    size_t len = strcspn(p, ".");
    if (len >= sizeof seed_str) {
        check(0, "%s: seed in the name", name);
        return;
    }
    memcpy(seed_str, p, len);
    seed_str[len] = '\0';
    uint64_t seed;
    struct os_err err = {{0}};
    if (rng_parse_seed(seed_str, &seed, &err) != 0) {
        check(0, "%s: seed in the name: %s", name, err.msg);
        return;
    }
    float *got = draw(kind, seed, n);
    compare(s, name, kind, got, n);
    free(got);
}

/* "avx2.seq.seed0.<k>.<dims>", k = 0, 1, ...: successive draws of one
 * generator (7, 7, 17, then a latent: the cached normal and the mt position
 * carry over between calls). */
static void seq_records(struct suite *s, const char *first)
{
    enum rng_kind kind = strncmp(first, "avx2.", 5) == 0 ? RNG_TORCH : RNG_TORCH_SCALAR;
    char prefix[128];
    const char *seedp = strstr(first, ".seed") + strlen(".seed");
    uint64_t seed = strtoull(seedp, NULL, 10);
    size_t stem = (size_t)(strstr(seedp, ".") - first); /* "avx2.seq.seed0" */
    struct rng r;
    rng_init(&r, kind, seed);
    for (int k = 0;; k++) {
        snprintf(prefix, sizeof prefix, "%.*s.%d.", (int)stem, first, k);
        const char *name = find_name(s->tensors, prefix);
        if (!name) {
            check(k >= 2, "%.*s: a sequence of draws", (int)stem, first);
            return;
        }
        size_t n = shape_numel(json_get(json_get(s->tensors, name), "shape"));
        float *got = malloc(n * sizeof *got);
        rng_randn(&r, got, n);
        compare(s, name, kind, got, n);
        free(got);
    }
}

/* manifest rng.seed_truncation: {"1x4x5x9": {"seed 2**32-1 == seed 2**63-1": true, ...}} */
static void seed_truncation(const struct json *trunc)
{
    if (!check(trunc && trunc->type == JSON_OBJECT && trunc->len > 0, "manifest has rng.seed_truncation")) return;
    for (size_t i = 0; i < trunc->len; i++) {
        size_t n = dims_numel(trunc->keys[i]);
        const struct json *claims = &trunc->items[i];
        const struct json *c1 = json_get(claims, "seed 2**32-1 == seed 2**63-1");
        const struct json *c2 = json_get(claims, "seed 2**32 == seed 0");
        for (int kind = RNG_TORCH; kind <= RNG_TORCH_SCALAR; kind++) {
            float *a = draw(kind, UINT64_C(4294967295), n), *b = draw(kind, UINT64_C(9223372036854775807), n);
            float *c = draw(kind, UINT64_C(4294967296), n), *z = draw(kind, 0, n);
            int same1 = bit_diffs(a, b, n) == 0, same2 = bit_diffs(c, z, n) == 0;
            check(c1 && c2 && same1 == c1->boolean && same2 == c2->boolean,
                  "%s %s: seed 2^32-1 %s 2^63-1 and 2^32 %s 0, as torch", rng_kind_name(kind), trunc->keys[i],
                  same1 ? "==" : "!=", same2 ? "==" : "!=");
            free(a), free(b), free(c), free(z);
        }
    }
}

static void test_suite(void)
{
    struct conf_suite cs;
    if (conf_open(&cs) != 0) return;
    const struct json *rng = json_get(cs.manifest, "rng");
    struct suite s = {0};
    s.tensors = json_get(rng, "tensors");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", cs.dir, conf_str(rng, "file") ? conf_str(rng, "file") : "rng.safetensors");
    struct os_err err = {{0}};
    if (!check(s.tensors && s.tensors->type == JSON_OBJECT && s.tensors->len > 0, "manifest lists rng.tensors") ||
        !check(st_open(path, &s.file, &err) == 0, "open %s %s", path, err.msg)) {
        conf_close(&cs);
        return;
    }
    for (size_t i = 0; i < s.tensors->len; i++) {
        const char *name = s.tensors->keys[i];
        size_t n = shape_numel(json_get(&s.tensors->items[i], "shape"));
        const char *seq = strstr(name, ".seq.seed");
        if (seq) {
            /* start each sequence at its draw 0 ("avx2.seq.seed0.0.7") */
            const char *k = seq + strlen(".seq.seed") + strspn(seq + strlen(".seq.seed"), "0123456789");
            if (strncmp(k, ".0.", 3) == 0) seq_records(&s, name);
        } else {
            single_record(&s, name, n);
        }
    }
    check(s.records == s.tensors->len, "every record compared (%zu of %zu)", s.records, s.tensors->len);
    check_note("rng.safetensors: %zu of %zu records bit-exact", s.exact, s.records);

    /* A long tensor: the first 16384 slots get the first 16384 uniforms and
     * whole blocks, so randn(2^20 + 5) begins with randn(1, 4, 64, 64). */
    const char *ref_name = "avx2.seed0.1x4x64x64";
    size_t nref = 0;
    float *ref = conf_tensor(s.file, ref_name, &nref);
    size_t big = ((size_t)1 << 20) + 5;
    float *got = draw(RNG_TORCH, 0, big);
    check(ref && nref == 16384 && bit_diffs(got, ref, nref) == 0, "torch randn(2^20+5) begins with %s bit for bit",
          ref_name);
    size_t nonfinite = 0;
    for (size_t i = 0; i < big; i++) nonfinite += !isfinite(got[i]);
    check(nonfinite == 0, "torch randn(2^20+5): all finite");
    free(got);
    free(ref);

    seed_truncation(json_get(rng, "seed_truncation"));
    st_close(s.file);
    conf_close(&cs);
}

/* Every case of the suite: one generator per pipeline call, drawn in the
 * manifest's randn_draw_order (initial latents or the img2img posterior and
 * add_noise draws, then one draw per sampler step), must give the noise the
 * diffusers run used, bit for bit. */
static void test_case_noise(void)
{
    struct conf_suite cs;
    if (conf_open(&cs) != 0) return;
    size_t draws = 0, exact = 0;
    for (size_t i = 0; i < conf_ncases(&cs); i++) {
        const struct json *c = conf_case(&cs, i);
        const struct json *order = json_get(c, "randn_draw_order");
        const struct json *seed = json_get(c, "seed");
        if (!check(order && order->type == JSON_ARRAY && seed && seed->is_int && seed->integer >= 0,
                   "%s: seed and randn_draw_order in the manifest", conf_case_name(c)))
            continue;
        struct st_file *f = conf_case_file(&cs, c);
        if (!f) continue;
        struct rng r;
        rng_init(&r, RNG_TORCH, (uint64_t)seed->integer);
        for (size_t k = 0; k < order->len; k++) {
            const char *name = order->items[k].str;
            size_t n = 0;
            float *ref = name ? conf_tensor(f, name, &n) : NULL;
            if (!ref) {
                check(0, "%s: draw %zu (%s) is in the case file", conf_case_name(c), k, name ? name : "?");
                break;
            }
            float *got = malloc((n ? n : 1) * sizeof *got);
            rng_randn(&r, got, n);
            size_t d = bit_diffs(got, ref, n);
            draws++;
            exact += d == 0;
            check(d == 0, "%s %s: draw %zu of seed %lld, %zu/%zu values bit-exact", conf_case_name(c), name, k,
                  (long long)seed->integer, n - d, n);
            free(got);
            free(ref);
        }
        st_close(f);
    }
    check_note("case noise: %zu of %zu draws bit-exact", exact, draws);
    conf_close(&cs);
}

/* ---- generator state ---------------------------------------------------- */

static void test_state(void)
{
    for (int kind = RNG_TORCH; kind <= RNG_PHILOX; kind++) {
        const char *kn = rng_kind_name(kind);
        static const size_t sizes[] = {7, 1, 17, 256, 3, 16};
        struct rng a, b;
        rng_init(&a, kind, 1234);
        rng_init(&b, kind, 1234);
        int same = 1;
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            float x[256], y[256];
            rng_randn(&a, x, sizes[k]);
            rng_randn(&b, y, sizes[k]);
            same &= bit_diffs(x, y, sizes[k]) == 0;
        }
        check(same, "%s: two generators with one seed give one stream", kn);

        /* re-seeding restarts everything, the cached normal included */
        float x[7], y[7];
        rng_init(&a, kind, 99);
        rng_randn(&a, x, 7); /* 4 pairs: one value left cached */
        rng_init(&a, kind, 99);
        rng_randn(&a, y, 7);
        check(bit_diffs(x, y, 7) == 0, "%s: rng_init restarts the stream", kn);

        /* an empty draw takes nothing (torch kinds; philox spends an offset
         * per call, as A1111 does) */
        rng_init(&a, kind, 5);
        rng_randn(&a, NULL, 0);
        rng_randn(&a, x, 7);
        float *fresh = draw(kind, 5, 7);
        int eq = bit_diffs(x, fresh, 7) == 0;
        check(kind == RNG_PHILOX ? !eq : eq, "%s: randn(0) %s", kn,
              kind == RNG_PHILOX ? "uses up one Philox offset" : "leaves the generator as it was");
        free(fresh);
    }
    /* The torch kinds differ only in the >= 16 kernel. */
    float *t = draw(RNG_TORCH, 3, 15), *s = draw(RNG_TORCH_SCALAR, 3, 15);
    check(bit_diffs(t, s, 15) == 0, "torch and torch-scalar share the n < 16 path");
    free(t), free(s);
}

/* ---- names and seeds ---------------------------------------------------- */

static void test_names(void)
{
    struct os_err err = {{0}};
    for (int k = RNG_TORCH; k <= RNG_PHILOX; k++) {
        enum rng_kind back;
        check(rng_kind_from_name(rng_kind_name(k), &back, &err) == 0 && back == (enum rng_kind)k,
              "rng name \"%s\" round-trips", rng_kind_name(k));
    }
    enum rng_kind kind;
    check(rng_kind_from_name("cuda", &kind, &err) == -1 && strstr(err.msg, "\"cuda\"") &&
              strstr(err.msg, "torch, torch-scalar or philox"),
          "unknown rng name rejected: %s", err.msg);

    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {{"0", 0}, {"42", 42}, {"007", 7}, {"18446744073709551615", UINT64_MAX}, {"4294967296", 4294967296u}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t v = 1;
        check(rng_parse_seed(good[i].s, &v, &err) == 0 && v == good[i].v, "seed \"%s\" parses", good[i].s);
    }
    static const struct {
        const char *s, *needle;
    } bad[] = {{"-1", "negative"},        {"18446744073709551616", "too large"}, {"99999999999999999999", "too large"},
               {"", "empty seed"},        {"12a", "not a decimal"},               {"0x10", "not a decimal"},
               {" 1", "not a decimal"},   {"1.5", "not a decimal"},               {"+3", "not a decimal"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 77;
        int rc = rng_parse_seed(bad[i].s, &v, &err);
        check(rc == -1 && v == 77 && strstr(err.msg, bad[i].needle), "seed \"%s\" rejected: %s", bad[i].s, err.msg);
    }
}

int main(void)
{
    test_mt19937();
    test_philox();
    test_suite();
    test_case_noise();
    test_state();
    test_names();
    return check_summary();
}
