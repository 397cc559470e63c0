/*  tcp.c: channels between hosts.

    "tcp://HOST:PORT/NAME" is channel NAME on the hub listening at
    tcp://HOST:PORT (a context after zchan_ctx_bind, or zchan-relay). A hub
    uses its one ROUTER socket for every channel: one port, however many
    channels. References advertise $ZCHAN_ADVERTISE or the context's advertise
    host in place of the bound address when one is set. It keeps no state per
    context.
*/
#include "transport.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Checks "HOST:PORT" (HOST may be [v6]); splits it at the last ':'.
static bool s_hostport(const char *s, size_t len, size_t *colon)
{
    if (len == 0 || len >= 200)
        return false;
    const char *c = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':')
            c = s + i;
    if (!c || c == s || (size_t) (c - s) + 1 >= len)
        return false;
    for (const char *p = c + 1; p < s + len; p++)
        if ((*p < '0' || *p > '9') && !(*p == '*' && p == c + 1 && p + 1 == s + len))
            return false;
    if (c[1] != '*' && atol(c + 1) > 65535)
        return false;
    //  A host holds no ':' unless it is a bracketed IPv6 address:
    //  "h:1:2" is not a host and a port.
    bool v6 = s[0] == '[' && c[-1] == ']';
    for (const char *p = s; p < c; p++)
        if (*p == '/' || *p == ' ' || (unsigned char) *p < 0x20 || *p == 0x7f || (*p == ':' && !v6)
            || ((*p == '[' || *p == ']') && !v6))
            return false;
    *colon = (size_t) (c - s);
    return true;
}

//  "HOST:PORT/NAME" -> name NAME on hub "tcp://HOST:PORT". EINVAL otherwise,
//  and for what only a bind can take: a wildcard host ("*") or port ("*",
//  0), since a URI names a hub to connect to.
static int s_parse_uri(const zchan__tview_t *v, const char *rest, zchan__target_t *t)
{
    (void) v;
    const char *slash = strchr(rest, '/');
    size_t colon;
    if (!slash || !s_hostport(rest, (size_t) (slash - rest), &colon) || rest[colon + 1] == '*'
        || atol(rest + colon + 1) == 0 || (colon == 1 && rest[0] == '*')
        || !zchan__name_valid(slash + 1, strlen(slash + 1)))
        return ZCHAN_EINVAL;
    t->where = ZCHAN__AT_HUB;
    snprintf(t->name, sizeof t->name, "%s", slash + 1);
    snprintf(t->key, sizeof t->key, "%s", slash + 1);
    snprintf(t->hub, sizeof t->hub, "tcp://%.*s", (int) (slash - rest), rest);
    return 0;
}

//  "HOST:PORT" -> "tcp://HOST:PORT"; port 0 becomes ZeroMQ's "*" (any free
//  port). EINVAL for a malformed address.
static int s_bind_endpoint(const zchan__tview_t *v, const char *rest, char *out, size_t n)
{
    (void) v;
    size_t colon;
    if (!s_hostport(rest, strlen(rest), &colon))
        return ZCHAN_EINVAL;
    if (strcmp(rest + colon + 1, "0") == 0)
        snprintf(out, n, "tcp://%.*s:*", (int) colon, rest);
    else
        snprintf(out, n, "tcp://%s", rest);
    return 0;
}

//  "tcp://ADDR:PORT" -> "tcp://ADVERTISE:PORT" when an advertise host is set;
//  a wildcard address becomes this host's name.
static int s_advertise(const char *advertise, const char *bound, char *out, size_t n)
{
    const char *colon = strrchr(bound, ':');
    const char *host = bound + 6;
    size_t hlen = colon ? (size_t) (colon - host) : strlen(host);
    char name[128];
    if (advertise[0]) {
        host = advertise;
        hlen = strlen(host);
    } else if ((hlen == 7 && strncmp(host, "0.0.0.0", 7) == 0) || (hlen == 4 && strncmp(host, "[::]", 4) == 0)) {
        if (gethostname(name, sizeof name - 1) == 0) {
            name[sizeof name - 1] = 0;
            host = name;
            hlen = strlen(name);
        }
    }
    snprintf(out, n, "tcp://%.*s%s", (int) hlen, host, colon ? colon : "");
    return 0;
}

//  Assumed reachable; a host that is not shows up as a timeout on use.
static bool s_reachable(const char *locator, const char *host, const char *proc)
{
    (void) locator, (void) host, (void) proc;
    return true;
}

const zchan__transport_t zchan__transport_tcp = {
    .scheme = "tcp",
    .rank = 2,
    .curve = true,
    .parse_uri = s_parse_uri,
    .bind_endpoint = s_bind_endpoint,
    .advertise = s_advertise,
    .reachable = s_reachable,
};
