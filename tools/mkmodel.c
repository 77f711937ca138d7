/* mkmodel — write a synthetic model with the real tensor names, shapes and
 * dtypes (see tools/lib/synth.h).
 *
 *   ./mkmodel --model sd-turbo --layout diffusers --dtype f16 --out weights/synthetic/sd-turbo
 *   ./mkmodel --model sdxl-turbo --layout single --dtype f16 --out /tmp/sd_xl_turbo_1.0_fp16.safetensors
 *   ./mkmodel --model ../shared/conformance/sd-turbo-tiny --count-only
 *   ./mkmodel --model taesd --out weights/synthetic/taesd      (an AutoencoderTiny directory for --taesd)
 *
 * Prints "<component> <parameter count>" per component on stdout. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/synth.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mkmodel --model NAME|DIR [--layout diffusers|single] [--dtype f16|bf16|f32] --out PATH\n"
            "               [--seed N] [--vocab DIR] [--configs DIR] [--count-only]\n"
            "\n"
            "  --model      sd-turbo, sdxl-turbo, tiny-sd, tiny-sdxl (folders of --configs) or a directory\n"
            "               holding model_index.json and <component>/config.json (e.g. the conformance suite's);\n"
            "               taesd (or a directory with an AutoencoderTiny config.json and no model_index.json)\n"
            "               writes that one component's directory, the one onestep --taesd takes\n"
            "  --layout     diffusers: a model directory (default); single: one .safetensors file in the\n"
            "               original Stability layout (model.diffusion_model.*, first_stage_model.*, ...)\n"
            "  --dtype      weight dtype (default f16; f16 files get diffusers' .fp16 variant names)\n"
            "  --out        the directory or file to create; it must not exist\n"
            "  --seed       values are a deterministic function of the seed and the tensor names (default 0)\n"
            "  --vocab      where vocab.json + merges.txt are copied from (default ../shared/clip-tokenizer,\n"
            "               then weights/sd-turbo/tokenizer, weights/sdxl-turbo/tokenizer, weights/clip-tokenizer)\n"
            "  --configs    the folder of model configs (default weights/configs)\n"
            "  --count-only print the parameter counts, write nothing\n");
}

static void report(void *ctx, const char *component, uint64_t params, size_t tensors)
{
    (void)ctx;
    (void)tensors;
    printf("%s %llu\n", component, (unsigned long long)params);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct synth_opts o = {0};
    o.dtype = DT_F16;
    o.layout = SYNTH_DIFFUSERS;
    o.interrupted = &interrupted;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--count-only") == 0) {
            o.count_only = 1;
            continue;
        }
        static const char *const with_value[] = {"--model", "--out", "--vocab", "--configs", "--layout", "--dtype",
                                                 "--seed"};
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) known |= strcmp(a, with_value[k]) == 0;
        if (!known) {
            fprintf(stderr, "mkmodel: unknown option \"%s\" (mkmodel --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "mkmodel: %s needs a value (mkmodel --help)\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--model") == 0) {
            o.model = v;
        } else if (strcmp(a, "--out") == 0) {
            o.out = v;
        } else if (strcmp(a, "--vocab") == 0) {
            o.vocab_dir = v;
        } else if (strcmp(a, "--configs") == 0) {
            o.configs_dir = v;
        } else if (strcmp(a, "--layout") == 0) {
            if (strcmp(v, "diffusers") == 0) o.layout = SYNTH_DIFFUSERS;
            else if (strcmp(v, "single") == 0) o.layout = SYNTH_SINGLE;
            else {
                fprintf(stderr, "mkmodel: --layout must be diffusers or single, not \"%s\"\n", v);
                return 2;
            }
        } else if (strcmp(a, "--dtype") == 0) {
            if (strcmp(v, "f16") == 0 || strcmp(v, "fp16") == 0) o.dtype = DT_F16;
            else if (strcmp(v, "bf16") == 0) o.dtype = DT_BF16;
            else if (strcmp(v, "f32") == 0 || strcmp(v, "fp32") == 0) o.dtype = DT_F32;
            else {
                fprintf(stderr, "mkmodel: --dtype must be f16, bf16 or f32, not \"%s\"\n", v);
                return 2;
            }
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            unsigned long long s = strtoull(v, &end, 10);
            if (!*v || *end || v[0] == '-') {
                fprintf(stderr, "mkmodel: --seed must be a non-negative integer, not \"%s\"\n", v);
                return 2;
            }
            o.seed = s;
        }
    }
    if (!o.model || (!o.out && !o.count_only)) {
        fprintf(stderr, "mkmodel: --model and --out are required (mkmodel --help)\n");
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct os_err err = {{0}};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (synth_model(&o, report, NULL, &err)) {
        fprintf(stderr, "mkmodel: %s\n", err.msg);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!o.count_only)
        fprintf(stderr, "mkmodel: wrote %s in %.1f s\n", o.out,
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}
