/*  ipc.c: channels between processes of one host, over Unix sockets (mode
    0600) in the runtime directory (see s_ipc_dir in src/ctx.c for where it is
    and what is checked; mode 0700). Without a usable runtime directory a
    context has no ipc, and every ipc URI is EINVAL.

    "ipc://NAME" is a host-wide name. The process that creates it first takes
    the lock file NAME.lock (flock, released by the kernel when the process
    dies) and makes its hub listen at NAME.sock as well; later processes find
    the lock taken and connect to NAME.sock. A socket file left by a dead
    process is never trusted: whoever next wins the lock binds over it.
    "ipc://HUB/NAME" is channel NAME on the hub bound at "ipc://HUB"
    (socket HUB.hub, lock HUB.hub.lock).
*/
#include "core.h"
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

//  Writes "DIR/NAME.SUFFIX" into out; EINVAL if it would not fit a socket path.
static int s_path(zchan_ctx_t *ctx, const char *name, size_t len, const char *suffix, char *out, size_t n)
{
    struct sockaddr_un sa;
    if (!ctx->ipc_dir[0]) {
        zsys_error("zchan: ipc://%.*s: this context has no ipc (its runtime directory was refused or could "
                   "not be made; see the error logged when the context was created)",
                   (int) len, name);
        return ZCHAN_EINVAL;
    }
    int w = snprintf(out, n, "%s/%.*s%s", ctx->ipc_dir, (int) len, name, suffix);
    if (w < 0 || (size_t) w >= n || (size_t) w + 1 > sizeof sa.sun_path)
        return ZCHAN_EINVAL;
    return 0;
}

//  "NAME" -> host-wide name, key "ipc://NAME", hub "ipc://DIR/NAME.sock";
//  "HUB/NAME" -> name NAME on hub "ipc://DIR/HUB.hub". EINVAL for bad names,
//  or when the runtime directory is unusable. Never blocks.
static int s_parse_uri(zchan_ctx_t *ctx, const char *rest, zchan__target_t *t)
{
    const char *slash = strchr(rest, '/');
    char path[ZCHAN__EP_MAX];
    if (!slash) {
        size_t len = strlen(rest);
        if (!zchan__name_valid(rest, len) || s_path(ctx, rest, len, ".sock", path, sizeof path))
            return ZCHAN_EINVAL;
        t->where = ZCHAN__AT_HOST;
        snprintf(t->name, sizeof t->name, "%s", rest);
        snprintf(t->key, sizeof t->key, "ipc://%.200s", rest);
    } else {
        size_t hlen = (size_t) (slash - rest), nlen = strlen(slash + 1);
        if (!zchan__name_valid(rest, hlen) || !zchan__name_valid(slash + 1, nlen)
            || s_path(ctx, rest, hlen, ".hub", path, sizeof path))
            return ZCHAN_EINVAL;
        t->where = ZCHAN__AT_HUB;
        snprintf(t->name, sizeof t->name, "%s", slash + 1);
        snprintf(t->key, sizeof t->key, "%s", slash + 1);
    }
    snprintf(t->hub, sizeof t->hub, "ipc://%.240s", path);
    return 0;
}

//  "NAME" -> "ipc://DIR/NAME.hub", after claiming NAME.hub.lock for the
//  context. ESYS if a live process holds it.
static int s_bind_endpoint(zchan_ctx_t *ctx, const char *rest, char *out, size_t n)
{
    char path[ZCHAN__EP_MAX], lock[ZCHAN__EP_MAX];
    size_t len = strlen(rest);
    if (!zchan__name_valid(rest, len) || s_path(ctx, rest, len, ".hub", path, sizeof path)
        || s_path(ctx, rest, len, ".hub.lock", lock, sizeof lock))
        return ZCHAN_EINVAL;
    int rc = zchan__ctx_claim(ctx, lock, true, NULL);
    if (rc == ZCHAN_ECLOSED) {
        zsys_error("zchan: ipc://%s is bound by another live process", rest);
        return ZCHAN_ESYS;
    }
    if (rc != 0)
        return rc;
    snprintf(out, n, "ipc://%s", path);
    return 0;
}

//  The locator is the bound endpoint (whose socket file zchan__ctx_hub_bind
//  made 0600).
static int s_advertise(zchan_ctx_t *ctx, const char *bound, char *out, size_t n)
{
    (void) ctx;
    snprintf(out, n, "%s", bound);
    return 0;
}

//  Reachable from the same host, while the socket file exists.
static bool s_reachable(zchan_ctx_t *ctx, const char *locator, const char *host, const char *proc)
{
    (void) ctx, (void) proc;
    return strcmp(host, zchan__host_id()) == 0 && access(locator + 6, F_OK) == 0;
}

const zchan__transport_t zchan__transport_ipc = {
    .scheme = "ipc",
    .rank = 1,
    .parse_uri = s_parse_uri,
    .bind_endpoint = s_bind_endpoint,
    .advertise = s_advertise,
    .reachable = s_reachable,
};
