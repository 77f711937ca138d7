/* weights/download.sh, offline: argument handling (no arguments, --help,
 * unknown model / option), the file plan of --dry-run for every mode, and a
 * whole download against a fake hub on the local disk (HF_ENDPOINT=file://...,
 * which curl reads like the hub, sizes included): files land where the plan
 * says, a second run fetches nothing, a .part is resumed, a missing remote
 * file is an error that names it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/check.h"
#include "lib/proc.h"

static char tmpdir[64];

/* Run a shell command; capture its output (stdout + stderr) and status. */
static int run(const char *cmd, char *out, size_t len)
{
    return run_capture(out, len, "%s 2>&1", cmd);
}

static void expect(const char *args, int want_rc, const char *needle, const char *what)
{
    char cmd[1024], out[16384];
    snprintf(cmd, sizeof cmd, "HF_ENDPOINT=http://127.0.0.1:9 sh weights/download.sh %s", args);
    int rc = run(cmd, out, sizeof out);
    char *nl = strchr(out, '\n');
    check(rc == want_rc && strstr(out, needle) != NULL, "%s: exit %d (want %d), says \"%.*s\"", what, rc, want_rc,
          nl ? (int)(nl - out) : (int)strlen(out), out);
}

static int count_lines_with(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

static void write_file(const char *path, size_t size, unsigned seed)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    if (system(cmd) != 0) return;
    FILE *f = fopen(path, "wb");
    if (!f) return;
    for (size_t i = 0; i < size; i++) fputc((int)((i * 131 + seed * 7) & 0xff), f);
    fclose(f);
}

int main(void)
{
    if (access("weights/download.sh", R_OK) != 0) {
        check(0, "weights/download.sh not found (run from the repository root)");
        return check_summary();
    }
    expect("", 2, "usage:", "no arguments: usage on stderr, exit 2");
    expect("--help", 0, "usage:", "--help: usage, exit 0");
    expect("-h", 0, "--dry-run", "-h: usage, exit 0");
    expect("sd-15", 2, "unknown model \"sd-15\"", "unknown model");
    expect("--fast sd-turbo", 2, "unknown option \"--fast\"", "unknown option");
    expect("sd-turbo sdxl-turbo", 2, "one model at a time", "two models");
    expect("--dest", 2, "--dest needs a directory", "--dest without a value");

    char out[16384];
    int rc = run("sh weights/download.sh --dry-run sd-turbo", out, sizeof out);
    check(rc == 0 && count_lines_with(out, " -> ") == 12 &&
              strstr(out, "https://huggingface.co/stabilityai/sd-turbo/resolve/main/unet/diffusion_pytorch_model.fp16."
                          "safetensors -> ") &&
              strstr(out, "/weights/sd-turbo/text_encoder/model.fp16.safetensors") &&
              strstr(out, "tokenizer/vocab.json") && !strstr(out, "text_encoder_2"),
          "dry run sd-turbo: 12 files, fp16 weights into weights/sd-turbo/");
    rc = run("sh weights/download.sh --dry-run sdxl-turbo", out, sizeof out);
    check(rc == 0 && count_lines_with(out, " -> ") == 18 && strstr(out, "text_encoder_2/model.fp16.safetensors") &&
              strstr(out, "tokenizer_2/special_tokens_map.json") && strstr(out, "/weights/sdxl-turbo/"),
          "dry run sdxl-turbo: 18 files incl. text_encoder_2 and tokenizer_2");
    rc = run("sh weights/download.sh --dry-run --fp32 sdxl-turbo", out, sizeof out);
    check(rc == 0 && !strstr(out, ".fp16.") && strstr(out, "unet/diffusion_pytorch_model.safetensors"),
          "dry run --fp32: the full-precision files");
    rc = run("sh weights/download.sh --dry-run --single sd-turbo", out, sizeof out);
    check(rc == 0 && count_lines_with(out, " -> ") == 3 && strstr(out, "resolve/main/sd_turbo.safetensors -> ") &&
              strstr(out, "/weights/clip-tokenizer/vocab.json") && strstr(out, "/weights/clip-tokenizer/merges.txt"),
          "dry run --single sd-turbo: sd_turbo.safetensors + vocabulary into weights/clip-tokenizer");
    rc = run("sh weights/download.sh --dry-run --single --dest /x/y sdxl-turbo", out, sizeof out);
    check(rc == 0 && strstr(out, "sd_xl_turbo_1.0_fp16.safetensors -> /x/y/sd_xl_turbo_1.0_fp16.safetensors") &&
              strstr(out, "-> /x/y/clip-tokenizer/vocab.json"),
          "dry run --single --dest: the fp16 single file and its vocabulary beside it");

    /* a whole download from a fake hub on disk */
    if (system("command -v curl >/dev/null 2>&1") != 0) {
        check_skip("curl not installed: the offline download checks are skipped");
        return check_summary();
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/onestep-dl-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        check(0, "mkdtemp");
        return check_summary();
    }
    rc = run("sh weights/download.sh --dry-run sdxl-turbo", out, sizeof out);
    char *line = out;
    int nfiles = 0;
    while ((line = strstr(line, "/resolve/main/")) != NULL) {
        line += strlen("/resolve/main/");
        char rel[256];
        if (sscanf(line, "%255s", rel) != 1) break;
        char path[512];
        snprintf(path, sizeof path, "%s/hub/stabilityai/sdxl-turbo/resolve/main/%s", tmpdir, rel);
        write_file(path, 1000 + 37 * (size_t)nfiles, (unsigned)nfiles);
        nfiles++;
    }
    char cmd[2048];
    /* A partial download to be resumed: 300 bytes of 'X'. Resuming keeps
     * them (curl -C - appends the rest), re-downloading would not. */
    char part[512], src[512];
    snprintf(src, sizeof src, "%s/hub/stabilityai/sdxl-turbo/resolve/main/unet/diffusion_pytorch_model.fp16.safetensors",
             tmpdir);
    snprintf(part, sizeof part, "%s/out/unet/diffusion_pytorch_model.fp16.safetensors.part", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/out/unet && head -c 300 /dev/zero | tr '\\0' X > %s", tmpdir, part);
    int prep = system(cmd);
    snprintf(cmd, sizeof cmd, "HF_ENDPOINT=file://%s/hub sh weights/download.sh --dest %s/out sdxl-turbo", tmpdir,
             tmpdir);
    rc = run(cmd, out, sizeof out);
    check(rc == 0 && prep == 0 && strstr(out, "18 files in"), "download from a fake hub: exit %d, %s", rc,
          strstr(out, "files in") ? "all files" : out);
    {
        size_t na, nb;
        char got[512];
        snprintf(got, sizeof got, "%.*s", (int)(strlen(part) - 5), part);
        char *a = read_file(got, &na), *b = read_file(src, &nb);
        int resumed = a && b && na == nb && na > 300 && memcmp(a + 300, b + 300, na - 300) == 0;
        for (size_t i = 0; resumed && i < 300; i++) resumed = a[i] == 'X';
        check(resumed, "the .part was resumed, not fetched again (its 300 bytes kept, the rest appended)");
        free(a);
        free(b);
        snprintf(cmd, sizeof cmd, "cp %s %s", src, got);
        if (system(cmd) != 0) check(0, "restore %s", got);
    }
    snprintf(cmd, sizeof cmd, "diff -r %s/out %s/hub/stabilityai/sdxl-turbo/resolve/main >/dev/null", tmpdir, tmpdir);
    check(nfiles == 18 && system(cmd) == 0, "the downloaded tree equals the hub's files");
    snprintf(cmd, sizeof cmd, "HF_ENDPOINT=file://%s/hub sh weights/download.sh --dest %s/out sdxl-turbo", tmpdir,
             tmpdir);
    rc = run(cmd, out, sizeof out);
    check(rc == 0 && count_lines_with(out, "  have ") == 18 && !strstr(out, "fetching"),
          "a second run fetches nothing (18 files already there)");

    /* sha256 checks: a stand-in curl answers HEAD requests like the hub does
     * for LFS files (x-linked-size, x-linked-etag = sha256) and passes every
     * other call to the real curl. */
    {
        char real[512] = "";
        FILE *p = popen("command -v curl", "r");
        if (p) {
            if (!fgets(real, sizeof real, p)) real[0] = '\0';
            pclose(p);
        }
        real[strcspn(real, "\n")] = '\0';
        char fake[512];
        snprintf(fake, sizeof fake, "%s/bin/curl", tmpdir);
        snprintf(cmd, sizeof cmd, "mkdir -p %s/bin", tmpdir);
        FILE *f = system(cmd) == 0 ? fopen(fake, "w") : NULL;
        if (f) {
            fprintf(f, "#!/bin/sh\n"
                       "for a; do url=$a; done\n"
                       "case \" $* \" in *\" -fsSIL \"*)\n"
                       "  p=${url#file://}; [ -f \"$p\" ] || exit 22\n"
                       "  n=$(wc -c < \"$p\" | tr -d ' '); s=$(sha256sum \"$p\" | cut -d' ' -f1)\n"
                       "  [ -f \"$p.badsum\" ] && s=$(cat \"$p.badsum\")\n"
                       "  printf 'HTTP/1.1 302 Found\\r\\nx-linked-size: %%s\\r\\nx-linked-etag: \"%%s\"\\r\\n"
                       "\\r\\nHTTP/1.1 200 OK\\r\\ncontent-length: %%s\\r\\n' \"$n\" \"$s\" \"$n\"; exit 0;;\n"
                       "esac\n"
                       "exec %s \"$@\"\n",
                    real);
            fclose(f);
        }
        snprintf(cmd, sizeof cmd,
                 "chmod +x %s && PATH=%s/bin:$PATH HF_ENDPOINT=file://%s/hub sh weights/download.sh --dest %s/sha "
                 "sdxl-turbo",
                 fake, tmpdir, tmpdir, tmpdir);
        rc = real[0] && f ? run(cmd, out, sizeof out) : -1;
        check(rc == 0 && strstr(out, "18 files in"), "with the hub's sha256 headers every file verifies: exit %d", rc);
        snprintf(cmd, sizeof cmd, "echo %064d > %s.badsum", 0, src);
        int prep2 = system(cmd);
        snprintf(cmd, sizeof cmd,
                 "PATH=%s/bin:$PATH HF_ENDPOINT=file://%s/hub sh weights/download.sh --dest %s/sha2 sdxl-turbo", tmpdir,
                 tmpdir, tmpdir);
        rc = real[0] && f ? run(cmd, out, sizeof out) : -1;
        char left[512];
        snprintf(left, sizeof left, "%s/sha2/unet/diffusion_pytorch_model.fp16.safetensors", tmpdir);
        char leftp[600];
        snprintf(leftp, sizeof leftp, "%s.part", left);
        check(prep2 == 0 && rc == 1 && strstr(out, "sha256") && access(left, F_OK) != 0 && access(leftp, F_OK) != 0,
              "a checksum mismatch is an error and leaves neither the file nor its .part: exit %d", rc);
    }

    /* a file the hub does not have */
    snprintf(cmd, sizeof cmd, "rm %s/hub/stabilityai/sdxl-turbo/resolve/main/vae/config.json %s/out/vae/config.json",
             tmpdir, tmpdir);
    prep = system(cmd);
    snprintf(cmd, sizeof cmd, "HF_ENDPOINT=file://%s/hub sh weights/download.sh --dest %s/out sdxl-turbo", tmpdir,
             tmpdir);
    rc = run(cmd, out, sizeof out);
    check(prep == 0 && rc == 1 && strstr(out, "vae/config.json"), "a file missing on the hub: exit %d, names it", rc);

    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) check_note("could not remove %s", tmpdir);
    return check_summary();
}
