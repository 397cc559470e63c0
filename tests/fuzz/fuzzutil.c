/*  fuzzutil.c: what zchan's libFuzzer targets share. */
#include "fuzzutil.h"
#include <string.h>
#include <unistd.h>

static zchan_ctx_t *s_ctx;
static char s_dir[64];

static void s_cleanup(void)
{
    zchan_ctx_destroy(&s_ctx);
    if (s_dir[0])
        rmdir(s_dir);
}

void fz_quiet(void)
{
    static FILE *devnull;
    if (!devnull) {
        devnull = fopen("/dev/null", "w");
        if (devnull)
            zsys_set_logstream(devnull);
    }
}

zchan_ctx_t *fz_ctx(void)
{
    if (s_ctx)
        return s_ctx;
    const char *tmp = getenv("TMPDIR");
    snprintf(s_dir, sizeof s_dir, "%s/zchan-fuzz-XXXXXX", tmp && *tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (!mkdtemp(s_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    setenv("ZCHAN_IPC_DIR", s_dir, 1);
    setenv("ZCHAN_HOST_ID", "fuzz-host", 1);
    s_ctx = zchan_ctx_new();
    if (!s_ctx) {
        fprintf(stderr, "fuzz: zchan_ctx_new: %s\n", zchan_strerror(zchan_errno()));
        abort();
    }
    fz_quiet();
    atexit(s_cleanup);
    return s_ctx;
}

unsigned fz_touch(const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *) p;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum = sum * 31 + b[i];
    return sum;
}
