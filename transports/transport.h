/*  transport.h: the pluggable transport interface.

    A transport is a const ops struct in its own file under transports/, named
    zchan__transport_SCHEME, and registered in the table of transports.c. The
    core never tests a scheme by name: everything a scheme decides (how a
    channel URI names its hub, what the hub binds, what a reference advertises,
    which locators are reachable from here) goes through these ops.
*/
#ifndef ZCHAN_TRANSPORT_H_INCLUDED
#define ZCHAN_TRANSPORT_H_INCLUDED

#include "internal.h"

#define ZCHAN__EP_MAX 256 // longest endpoint or locator string, NUL included

//  Where a channel URI says its channel lives.
typedef enum {
    ZCHAN__AT_PROCESS, // a process-wide name: whichever context of this process created it
    ZCHAN__AT_HOST,    // a host-wide name: whichever process on this host created it first
    ZCHAN__AT_HUB,     // a name on the hub listening at an endpoint
} zchan__where_t;

typedef struct {
    zchan__where_t where;
    char name[ZCHAN__EP_MAX]; // the channel's name
    char key[ZCHAN__EP_MAX];  // the name the hub knows it by (docs/PROTOCOL.md, "Keys")
    char hub[ZCHAN__EP_MAX];  // ZCHAN__AT_HUB: the zmq endpoint to connect to
} zchan__target_t;

typedef struct zchan__transport {
    //  The URI scheme, without "://".
    const char *scheme;

    //  Preference among reachable locators: lower is nearer.
    int rank;

    //  Whether CURVE applies to endpoints of this scheme (src/curve.c): a hub
    //  with a server certificate requires it on them, and clients connect to
    //  them as CURVE clients. Schemes that stay on this host rely on the
    //  runtime directory's permissions instead.
    bool curve;

    //  Parses rest, the part of a channel URI after "scheme://", into t.
    //  Pure: never blocks, touches nothing. Returns 0 or EINVAL.
    int (*parse_uri)(zchan_ctx_t *ctx, const char *rest, zchan__target_t *t);

    //  Prepares a zchan_ctx_bind request ("scheme://rest") for the hub: writes
    //  the zmq endpoint to bind into out. May claim host resources that the
    //  context then owns (ipc: a lock file). Never blocks. Returns 0, EINVAL for
    //  a malformed address, or ESYS (e.g. the name is held by a live process).
    int (*bind_endpoint)(zchan_ctx_t *ctx, const char *rest, char *out, size_t n);

    //  Turns an endpoint the hub has bound (as zmq reports it, real port
    //  included) into the locator that references advertise. Returns 0.
    int (*advertise)(zchan_ctx_t *ctx, const char *bound, char *out, size_t n);

    //  Whether this context can connect to locator, a hub in process proc on
    //  host host. Never blocks (may stat a file).
    bool (*reachable)(zchan_ctx_t *ctx, const char *locator, const char *host, const char *proc);
} zchan__transport_t;

//  The table, in rank order; NULL-terminated.
extern const zchan__transport_t *const zchan__transports[];

//  Returns the transport for a URI's scheme, or NULL.
const zchan__transport_t *zchan__transport_for(const char *uri);

//  Checks a channel name: 1 to 200 characters of [A-Za-z0-9._-].
bool zchan__name_valid(const char *name, size_t len);

#endif
