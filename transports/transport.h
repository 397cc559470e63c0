/*  transport.h: the pluggable transport interface.

    A transport is a const ops struct in its own file under transports/, named
    zchan__transport_SCHEME, and registered in the table of transports.c.
    Everything a scheme decides goes through these ops: how a channel URI
    names its hub, what the hub binds and advertises, which locators are
    reachable from here, whether an endpoint stays inside this process, and
    the host resources a scheme needs (ipc: the runtime directory, lock files
    and socket files). The core (src/) tests no scheme string; it asks the
    transport that zchan__transport_for finds.

    A transport never sees a context. It sees a narrow view of one
    (zchan__tview_t): its own state for that context, made by ctx_init and
    freed by ctx_fini. Whatever else an op needs of the context comes in as
    an argument (the advertise host), and the process-wide identities come
    from zchan__proc_id and zchan__host_id below. Transports include this
    header, never core.h.

    Ops that take a view may be called from any thread of the program, at
    once; a transport guards its state itself. Errors are zchan error codes.
*/
#ifndef ZCHAN_TRANSPORT_H_INCLUDED
#define ZCHAN_TRANSPORT_H_INCLUDED

#include "internal.h"
#include <stdint.h>

#define ZCHAN__EP_MAX 256       // longest endpoint or locator string, NUL included
#define ZCHAN__TRANSPORT_MAX 8  // entries the table may have

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
    char hub[ZCHAN__EP_MAX];  // ZCHAN__AT_HOST, ZCHAN__AT_HUB: the zmq endpoint to connect to
} zchan__target_t;

//  A transport's view of one context: all a transport sees of it. The
//  context holds one per transport of the table, from its creation to its
//  shutdown.
typedef struct {
    void *state; // the transport's own state for the context (ctx_init), NULL if none
} zchan__tview_t;

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

    //  Whether its endpoints reach hubs of this process only. A party whose
    //  hub is reached that way never probes it (a hub of its own process
    //  cannot vanish under it), and hub monitors are published on it
    //  (src/hubctl.c). The first such transport of the table also names
    //  unnamed channels and the hub's own endpoint, which the hub binds when
    //  it starts (src/hub.c, zchan__ctx_inproc).
    bool in_process;

    //  Optional. Makes the transport's state for a new context into v->state.
    //  May touch the filesystem; never waits for another process. A context
    //  that cannot use the transport (ipc: no usable runtime directory) is not
    //  a failure: the op logs why and returns 0, and the transport's URIs and
    //  binds then fail with EINVAL (see usable). Returns 0 or ENOMEM; on
    //  failure v->state stays NULL.
    int (*ctx_init)(zchan__tview_t *v);

    //  Optional. At the context's shutdown, once its hub has stopped: lets go
    //  of what the transport holds for it on the host and frees v->state
    //  (ipc: removes the socket files the hub bound and the host-wide names'
    //  socket files, then the lock files, while still holding the locks).
    //  Also called after a failed ctx_init (v->state NULL). Never blocks.
    void (*ctx_fini)(zchan__tview_t *v);

    //  Optional (NULL: always usable). Whether the context can use the
    //  transport at all. Pure.
    bool (*usable)(const zchan__tview_t *v);

    //  Optional. Writes into out the address ("scheme://rest") that the
    //  context's hub listens at from its start; n tells apart the hubs of this
    //  process. For the in_process transport it is the zmq endpoint the hub
    //  binds itself; any other's goes through bind_endpoint like a
    //  zchan_ctx_bind. Pure. Returns 0, or ENOTFOUND when the context has no
    //  such address (ipc without a runtime directory).
    int (*hub_address)(const zchan__tview_t *v, uint64_t n, char *out, size_t len);

    //  Parses rest, the part of a channel URI after "scheme://", into t.
    //  Pure: never blocks, touches nothing. Returns 0 or EINVAL.
    int (*parse_uri)(const zchan__tview_t *v, const char *rest, zchan__target_t *t);

    //  Optional (NULL: the transport has no ZCHAN__AT_HOST targets). Claims
    //  for the context the host-wide name of t, a ZCHAN__AT_HOST target that
    //  parse_uri made, so that its hub may bind t->hub. With keep false only
    //  tests whether it could, and lets go. A kept claim lasts until ctx_fini
    //  and takes over what a dead holder left (ipc: its stale socket file is
    //  removed, so the bind starts afresh). Never blocks (the lock is tried,
    //  not waited for). Returns 0 if claimed, ECLOSED if a live process holds
    //  the name (connect to t->hub instead), ESYS (logged) or ENOMEM.
    int (*claim)(const zchan__tview_t *v, const zchan__target_t *t, bool keep);

    //  Prepares a zchan_ctx_bind request ("scheme://rest") for the hub: writes
    //  the zmq endpoint to bind into out. May claim host resources for the
    //  context, held until ctx_fini (ipc: the named hub's lock file, taking
    //  over a dead holder's socket file). Never blocks. Returns 0, EINVAL for
    //  a malformed address or an unusable transport, or ESYS (logged; e.g.
    //  the name is held by a live process).
    int (*bind_endpoint)(const zchan__tview_t *v, const char *rest, char *out, size_t n);

    //  Optional. Called once the hub has bound endpoint (as zmq reports it),
    //  whether for zchan_ctx_bind or for a host-wide name: the transport makes
    //  what the bind left on the host its own (ipc: the socket file becomes
    //  0600, and is removed at ctx_fini). Never blocks. Returns 0 or ESYS
    //  (logged); on ESYS the caller treats the bind as failed.
    int (*bound)(const zchan__tview_t *v, const char *endpoint);

    //  Turns an endpoint the hub has bound (as zmq reports it, real port
    //  included) into the locator that references advertise; host is the
    //  context's advertise host ("" for none). Pure. Returns 0.
    int (*advertise)(const char *host, const char *bound, char *out, size_t n);

    //  Whether this process can connect to locator, a hub in process proc on
    //  host host. Never blocks (may stat a file).
    bool (*reachable)(const char *locator, const char *host, const char *proc);
} zchan__transport_t;

//  The table, in rank order; NULL-terminated, at most ZCHAN__TRANSPORT_MAX.
extern const zchan__transport_t *const zchan__transports[];

//  Returns the transport for a URI's or endpoint's scheme, or NULL. Pure.
const zchan__transport_t *zchan__transport_for(const char *uri);

//  The position of t in the table (the index of its view in a context).
size_t zchan__transport_index(const zchan__transport_t *t);

//  The first in_process transport of the table (there is one: inproc).
const zchan__transport_t *zchan__transport_local(void);

//  Whether endpoint's transport is in_process (false for an unknown scheme).
bool zchan__endpoint_in_process(const char *endpoint);

//  Checks a channel name: 1 to 200 characters of [A-Za-z0-9._-].
bool zchan__name_valid(const char *name, size_t len);

//  The process identity (recomputed after fork) and the host identity
//  (src/process.c). Never block.
const char *zchan__proc_id(void);
const char *zchan__host_id(void);

#endif
