/*  inproc.c: channels inside one process.

    "inproc://NAME" is a process-wide name: the first context of the process to
    create it hosts it (the process registry finds it), and every context of
    the process reaches it through the shared ZeroMQ context. Every hub also
    listens on an inproc endpoint of its own, which references advertise;
    only the same process can reach it. Unnamed channels are process-wide
    names of this transport. It keeps no state per context.
*/
#include "transport.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

//  "inproc://zchan-hub-N": the hub binds it itself when it starts.
static int s_hub_address(const zchan__tview_t *v, uint64_t n, char *out, size_t len)
{
    (void) v;
    snprintf(out, len, "inproc://zchan-hub-%" PRIu64, n);
    return 0;
}

//  Pure: "NAME" -> a process-wide name with key "inproc://NAME". EINVAL for a
//  bad name. Never blocks.
static int s_parse_uri(const zchan__tview_t *v, const char *rest, zchan__target_t *t)
{
    (void) v;
    size_t len = strlen(rest);
    if (!zchan__name_valid(rest, len))
        return ZCHAN_EINVAL;
    t->where = ZCHAN__AT_PROCESS;
    snprintf(t->name, sizeof t->name, "%s", rest);
    snprintf(t->key, sizeof t->key, "inproc://%.200s", rest);
    t->hub[0] = 0;
    return 0;
}

//  Every hub already listens on its own inproc endpoint: binding more is
//  not offered. Returns EINVAL.
static int s_bind_endpoint(const zchan__tview_t *v, const char *rest, char *out, size_t n)
{
    (void) v, (void) rest, (void) out, (void) n;
    return ZCHAN_EINVAL;
}

//  The locator is the endpoint itself. Never fails.
static int s_advertise(const char *host, const char *bound, char *out, size_t n)
{
    (void) host;
    snprintf(out, n, "%s", bound);
    return 0;
}

//  Reachable only from the same process.
static bool s_reachable(const char *locator, const char *host, const char *proc)
{
    (void) locator, (void) host;
    return strcmp(proc, zchan__proc_id()) == 0;
}

const zchan__transport_t zchan__transport_inproc = {
    .scheme = "inproc",
    .rank = 0,
    .in_process = true,
    .hub_address = s_hub_address,
    .parse_uri = s_parse_uri,
    .bind_endpoint = s_bind_endpoint,
    .advertise = s_advertise,
    .reachable = s_reachable,
};
