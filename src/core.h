/*  core.h: the context, channel handles, and the client side of the protocol,
    shared by ctx.c, process.c, request.c, party.c, chan.c, attach.c,
    sender.c, receiver.c, msg.c and the hub (src/hub/).
*/
#ifndef ZCHAN_CORE_H_INCLUDED
#define ZCHAN_CORE_H_INCLUDED

#include "internal.h"
#include "proto.h"
#include "transport.h"
#include "wire.h"
#include <czmq.h>
#include <stdatomic.h>

#define ZCHAN__DEFAULT_TIMEOUT_MS 5000
#define ZCHAN__UNNAMED_BYTES 16 // random bytes in an unnamed channel's name ("zc-" and 32 hex digits)
// zchan__hubinfo_t and the other wire-format types: wire.h

#define ZCHAN__NLIMITS 6 // the values of zchan_limit_t

#define ZCHAN__REQ_POOL 8 // idle request sockets a context keeps

//  A party of a context: a sender, a channel receiver or a channel handle.
//  The context counts its parties, so its memory outlives its destroy until
//  the last party is destroyed, and its shutdown (zchan_ctx_destroy, or the
//  process's exit) closes what each party holds of it (its socket) and leaves
//  the party inert: its calls fail with ECLOSED, and its destroy only frees.
//  A party in a call (zchan__party_enter) is not closed under its caller: the
//  close waits for the call to end (zchan__party_exit). At exit, czmq's
//  zmq_ctx_term wakes such a call with ETERM.
typedef struct zchan__party zchan__party_t;
struct zchan__party {
    zchan_ctx_t *ctx;
    const char *what;                // "sender", "receiver" or "channel", for logs
    const char *key;                 // its channel's key, for logs
    void (*close)(zchan__party_t *p); // closes its socket; NULL: holds none
    atomic_uint state;               // calls in progress, and the DEAD and CLOSED bits
    void *link;                      // its place in ctx->parties (under ctx->lock)
};

struct zchan_ctx_t {
    void *zctx;            // the process-wide ZeroMQ context
    zactor_t *hub;         // the hub thread
    pthread_mutex_t pipe_lock; // one exchange at a time on the hub's pipe
    int64_t max_msg_size;  // ZMQ_MAXMSGSIZE for the hub's later binds (under pipe_lock)
    uint64_t limits[ZCHAN__NLIMITS]; // the hub's resource limits, by zchan_limit_t (under pipe_lock)
    struct zchan__curve *curve; // CURVE settings (curve.c); NULL only while ctx_new fails
    int hb_ivl_ms;         // ZeroMQ heartbeat interval of new sockets and binds, 0: none
    int hb_timeout_ms;     // ...and the silence after which a connection is dropped
    pthread_mutex_t lock;  // guards everything below
    char advertise[128];   // host for tcp locators, "" for the bound address
    int timeout_ms;
    zchan__hubinfo_t info; // this hub's identity and locators
    int nbound;            // endpoints the hub has bound, as zmq reports them
    char bound[ZCHAN__MAX_LOC][ZCHAN__EP_MAX];
    char inproc[64];       // the hub's inproc endpoint
    zlistx_t *senders;     // live senders made through this context (for close)
    pthread_cond_t unpinned; // a sender's flush by a close ended
    zlistx_t *parties;     // live parties (zchan__party_t), for the shutdown
    bool shut;             // closed by zchan_ctx_destroy or at exit: no new parties
    pid_t pid;             // the process that made it (a forked child leaves it alone)
    atomic_int refs;       // the context itself until destroyed, and one per party
    void *glink;           // its place in the process's list of contexts (process.c, under its lock)
    zchan__tview_t tview[ZCHAN__TRANSPORT_MAX]; // each transport's view, by table index (set by ctx_new)
    zlistx_t *names;       // keys this context registered process-wide
    struct zchan__share *share; // what local parties share with the hub (local.h)
    //  Idle request sockets, kept for reuse: a socket per request would leave
    //  closed sockets piling up in ZeroMQ's reaper faster than it frees them.
    pthread_mutex_t req_lock;
    int nreq;
    struct {
        void *sock;
        char endpoint[ZCHAN__EP_MAX];
        char curve[ZCHAN__KEY_Z85]; // the hub key it was connected with, "" for none
    } req[ZCHAN__REQ_POOL];
};

struct zchan_t {
    zchan__party_t party; // of ctx: inert once ctx is shut down
    zchan_ctx_t *ctx;
    zchan_kind_t kind;
    char *uri;
    char *name;
    char *key;
    char endpoint[ZCHAN__EP_MAX]; // the locator this handle connects to
    zchan__hubinfo_t info;        // the hosting hub
    bool known;                   // capacity and resend below are the channel's
    size_t capacity;              // (from a CREATE or OPEN reply; unknown from a reference)
    bool resend;
};

//  Where a sender or receiver finds its channel again after its hub lost its
//  attachment (a relay that restarted): a copy of its channel handle's
//  address and, when known, the channel's settings.
typedef struct {
    zchan_kind_t kind;
    bool known;
    size_t capacity;
    bool resend;
    char key[ZCHAN__EP_MAX];
    char endpoint[ZCHAN__EP_MAX];
    char curve[ZCHAN__KEY_Z85];
} zchan__chanloc_t;

// ---------------------------------------------------------------------------
// Process-wide state (process.c)

//  zchan__proc_id and zchan__host_id are declared in transport.h.

//  Takes a reference on the process-wide ZeroMQ context (czmq's, from
//  zsys_init; a fresh one in a forked child) and returns it, NULL if czmq
//  has none. The first time, registers at_exit with atexit(3), after czmq's
//  own handler, so that at_exit runs before czmq's zsys_shutdown.
void *zchan__zctx_acquire(void (*at_exit)(void));
//  Lets go of a reference taken by zchan__zctx_acquire; with the last one,
//  forgets the context (czmq keeps it) and frees the name registry.
void zchan__zctx_release(void);

//  Adds ctx to the process's list of contexts not yet shut down (which the
//  exit handler walks). 0 or ENOMEM.
int zchan__process_add_ctx(zchan_ctx_t *ctx);
//  Takes ctx off that list, if it is on it. Never blocks beyond the lock.
void zchan__process_remove_ctx(zchan_ctx_t *ctx);
//  A context on that list made by process pid, with a reference added for
//  the caller (zchan__ctx_unref), or NULL if there is none.
zchan_ctx_t *zchan__process_take_ctx(pid_t pid);

//  A fresh request id, unique in the process.
uint64_t zchan__reqid(void);

//  Fills buf with n bytes from the kernel's random source (getrandom(2)),
//  retrying after EINTR and short reads. 0, or ESYS (logged) if the kernel
//  refuses. What needs to be unguessable (unnamed channel names) uses this.
int zchan__random_bytes(void *buf, size_t n);

//  The process-wide name registry for ZCHAN__AT_PROCESS and ZCHAN__AT_HOST
//  names hosted by a context of this process: looks key up and fills the
//  hosting context's inproc endpoint. true if found.
bool zchan__registry_find(const char *key, char *endpoint, size_t n);
//  Registers key as hosted by ctx. EINVAL if taken.
int zchan__registry_add(zchan_ctx_t *ctx, const char *key);
//  Drops the keys ctx registered (ctx->names) from the registry, at its
//  shutdown.
void zchan__registry_drop(zchan_ctx_t *ctx);

// ---------------------------------------------------------------------------
// Sockets and requests to hubs (request.c)

//  Creates a socket of type in the process-wide context, with linger 0 and
//  the usual options. NULL (ESYS) on failure.
void *zchan__socket(zchan_ctx_t *ctx, int type);

//  A DEALER of ctx connected to endpoint (CURVE with the hub key curve, ""
//  for none). NULL on failure, with the error in *err (ESYS, EINVAL).
void *zchan__dealer(zchan_ctx_t *ctx, const char *endpoint, const char *curve, int *err);

//  Sets ZeroMQ's heartbeat options (interval, timeout, ttl) of ctx on socket
//  s: they apply to connections it makes or accepts afterwards.
void zchan__socket_heartbeat(zchan_ctx_t *ctx, void *s);

//  A decoded reply to a request.
typedef struct {
    zmq_msg_t frame;
    zchan__hdr_t hdr;
    int status;
} zchan__reply_t;

//  Sends the request in o (whose second field must be reqid) on a new DEALER
//  connected to endpoint, and waits for the matching reply within the
//  context's timeout. Fills *reply (release with zchan__reply_fini) and
//  returns its status: 0 or the error the hub sent, or ETIMEDOUT / ESYS.
int zchan__request(zchan_ctx_t *ctx, const char *endpoint, zchan__out_t *o, zchan__reply_t *reply);

//  As zchan__request, to a hub whose CURVE key is server_key (see
//  zchan__curve_key_for in curve.c; NULL: ctx's default). Idle request
//  sockets are reused only for the same endpoint and key.
int zchan__request_key(zchan_ctx_t *ctx, const char *endpoint, const char *server_key, zchan__out_t *o,
                       zchan__reply_t *reply);

//  Waits on sock (a DEALER that sent request reqid) for the reply to it,
//  skipping other messages through on_other (may be NULL), until deadline.
int zchan__await_reply(void *sock, uint64_t reqid, int64_t deadline_ms, zchan__reply_t *reply,
                       void (*on_other)(void *arg, zchan__hdr_t *h, zmq_msg_t *payload), void *arg);
void zchan__reply_fini(zchan__reply_t *reply);

//  Picks the nearest locator of info that ctx can reach into out. 0 or ENOTFOUND.
int zchan__pick_locator(zchan_ctx_t *ctx, const zchan__hubinfo_t *info, char *out, size_t n);

//  Closes the idle request sockets of ctx, at its shutdown (after which the
//  pool takes no socket back).
void zchan__req_pool_close(zchan_ctx_t *ctx);

// ---------------------------------------------------------------------------
// The context's hub and settings (ctx.c)

//  The heartbeat timeout of ctx in ms, 0 when heartbeats are off.
int zchan__ctx_heartbeat_timeout(zchan_ctx_t *ctx);

//  The hub's inproc endpoint of ctx (stable for its lifetime).
const char *zchan__ctx_inproc(zchan_ctx_t *ctx);

//  Asks the hub of ctx to bind endpoint as well, then lets its transport
//  make the bind its own (its bound op; ipc: the socket file becomes 0600);
//  writes the bound endpoint. With record, the endpoint becomes one of the
//  hub's own (zchan__ctx_is_own, zchan_ctx_endpoint); a channel's alias
//  endpoint is not recorded.
int zchan__ctx_hub_bind(zchan_ctx_t *ctx, const char *endpoint, bool record, char *bound, size_t n);

//  Whether endpoint is one this context's hub has bound (so it is local).
bool zchan__ctx_is_own(zchan_ctx_t *ctx, const char *endpoint);

//  The view of ctx that transport t sees (its state for ctx). Never blocks.
const zchan__tview_t *zchan__ctx_tview(zchan_ctx_t *ctx, const zchan__transport_t *t);

// ---------------------------------------------------------------------------
// Parties and the shutdown of a context (party.c)

//  Shuts ctx down, once (a later call does nothing): its parties die, each
//  logged as dangling ("at exit" when at_exit), its hub stops, and its
//  request pool, CURVE settings, registered names, transports' state and
//  reference on the ZeroMQ context go. Its memory stays until
//  zchan__ctx_unref drops its last reference.
void zchan__ctx_shut(zchan_ctx_t *ctx, bool at_exit);
//  Drops a reference on ctx; frees its memory with the last one.
void zchan__ctx_unref(zchan_ctx_t *ctx);
//  The exit handler (registered through zchan__zctx_acquire): shuts down
//  every context of this process that the program did not destroy.
void zchan__ctx_at_exit(void);

//  Makes p a party of ctx (what and key are kept, not copied; close may be
//  NULL). Returns 0, or ECLOSED if ctx has been shut down.
int zchan__party_join(zchan_ctx_t *ctx, zchan__party_t *p, const char *what, const char *key,
                      void (*close)(zchan__party_t *p));
//  Ends p's membership, for its destroy (after it has used its socket for the
//  last time). Frees the context's memory if it was destroyed and p was its
//  last party. Does nothing for a p that never joined.
void zchan__party_leave(zchan__party_t *p);
//  Marks a call on p in progress. false (nothing marked) if p is dead: its
//  context was shut down, and the call must fail with ECLOSED.
bool zchan__party_enter(zchan__party_t *p);
//  Ends the call marked by zchan__party_enter; closes p if it died meanwhile.
void zchan__party_exit(zchan__party_t *p);
//  Marks a call on p in progress whether or not p is dead (for a socket that
//  a zmq_poll is about to use, if p still has one). Ends with zchan__party_exit.
void zchan__party_hold(zchan__party_t *p);
//  Whether p's context was shut down. Never blocks.
bool zchan__party_dead(const zchan__party_t *p);

// ---------------------------------------------------------------------------
// CURVE security on tcp (curve.c)

//  Makes ctx's CURVE settings, from $ZCHAN_CURVE_CERT, $ZCHAN_CURVE_ALLOW and
//  $ZCHAN_CURVE_SERVER_KEY when set. Returns 0, EINVAL (logged) if they are
//  set but unusable, ENOMEM or ESYS.
int zchan__curve_ctx_init(zchan_ctx_t *ctx);

//  Frees ctx's CURVE settings and lets go of the process's zauth actor if ctx
//  was its last user. Call once the hub has stopped.
void zchan__curve_ctx_fini(zchan_ctx_t *ctx);

//  In the hub thread, while it handles a BIND (the sender holds pipe_lock):
//  sets router's CURVE server options for a bind of endpoint (on for a
//  transport with curve when ctx has a server certificate, off otherwise).
//  Returns 0 or ESYS.
int zchan__curve_bind_opts(zchan_ctx_t *ctx, void *router, const char *endpoint);

//  Writes into out (ZCHAN__KEY_Z85 bytes) the hub key a connection of ctx to
//  endpoint uses: "" where CURVE does not apply (inproc, ipc) or no key is
//  known; else server_key, or ctx's default server key when server_key is
//  NULL. Never blocks.
void zchan__curve_key_for(zchan_ctx_t *ctx, const char *endpoint, const char *server_key, char *out);

//  Connects sock to endpoint, first making it a CURVE client of the key that
//  zchan__curve_key_for gives, with ctx's client certificate (or a key pair
//  made for ctx when it has none). Returns 0, ESYS (a CURVE option refused)
//  or EINVAL (zmq_connect refused the endpoint).
int zchan__connect(zchan_ctx_t *ctx, void *sock, const char *endpoint, const char *server_key);

// ---------------------------------------------------------------------------
// Channel handles (chan.c)

//  Whether key is the key of an unnamed channel (zchan_anycast_new or
//  zchan_broadcast_new with a NULL uri): a process-wide name of the
//  in-process transport, "zc-" and random hex digits. Such keys are never
//  reused. Pure, never blocks.
bool zchan__key_unnamed(const char *key);

//  Makes a handle on the channel key hosted by the hub described by info,
//  reached at endpoint. NULL (ENOMEM).
zchan_t *zchan__chan_make(zchan_ctx_t *ctx, zchan_kind_t kind, const char *key, const char *name,
                          const char *uri, const char *endpoint, const zchan__hubinfo_t *info);

//  Copies where ch lives into *w.
void zchan__chan_loc(const zchan_t *ch, zchan__chanloc_t *w);

//  Finds the channel again at its hub, for a party whose attachment the hub
//  lost: CREATE with the channel's settings when they are known (the channel
//  comes back, or is joined), else OPEN. Sets *closed from the reply.
//  Returns 0, ENOTFOUND, EINVAL (it exists with the other kind), or the
//  request's error (ETIMEDOUT, ECLOSED from a hub shutting down, ...).
int zchan__chan_rejoin(zchan_ctx_t *ctx, const zchan__chanloc_t *w, bool *closed);

// ---------------------------------------------------------------------------
// Senders (sender.c), for close

//  Flushes the senders of ctx on channel (hub, key) last used by this thread,
//  then, after the close, marks all of them closed.
int zchan__senders_flush(zchan_ctx_t *ctx, const char *hub, const char *key);
void zchan__senders_mark_closed(zchan_ctx_t *ctx, const char *hub, const char *key);

// ---------------------------------------------------------------------------
// Messages (msg.c)

//  Makes a received message from a payload frame (moved from frame).
zchan_msg_t *zchan__msg_from_frame(zmq_msg_t *frame);

//  Whether msg holds exactly one well-formed msgpack value: a scalar,
//  string, bin or ext is checked in one pass without decoding it (nothing
//  allocated); a container is decoded (zchan_msg_object). Never blocks.
bool zchan__msg_valid(zchan_msg_t *msg);

//  Fills frame with the message's encoded bytes (moved out of msg when
//  move is true, copied otherwise). EINVAL if msg does not hold exactly one
//  msgpack value.
int zchan__msg_to_frame(zchan_msg_t *msg, zmq_msg_t *frame, bool move);

//  The reference codec (zchan__ref_t, zchan__ref_decode, zchan__ref_pack): wire.h.

// ---------------------------------------------------------------------------
// The hub (src/hub/: loop.c, seam.c; the map is in docs/ARCHITECTURE.md)

//  The commands a hub's pipe takes, from ctx.c and hubctl.c: sent as the
//  picture "is" (the command, then its argument, "" for none) under
//  ctx->pipe_lock. zactor_destroy's "$TERM" stops the hub.
typedef enum {
    ZCHAN__HUB_BIND = 1, // endpoint; replies "is": rc, the bound endpoint
    ZCHAN__HUB_CLOSEALL, // ""; replies "i8": 0, deliveries still pending
    ZCHAN__HUB_MONITOR,  // inproc endpoint, "" to stop; replies "i": rc
    ZCHAN__HUB_LIMITS,   // ""; the hub copies ctx->limits; replies "i": 0
} zchan__hub_cmd_t;

//  The zactor body of a hub. args is the zchan_ctx_t.
void zchan__hub_actor(zsock_t *pipe, void *args);

//  A hub without its thread and its sockets, for fuzzers and tests: hub state
//  that takes messages through zchan__hub_feed and replies on router, a
//  ROUTER socket of the caller's (still the caller's after destroy). It
//  advertises ctx's hubinfo. NULL on ENOMEM.
typedef struct zchan__hub zchan__hub_t;
zchan__hub_t *zchan__hub_new(zchan_ctx_t *ctx, void *router);
//  Handles one message as the hub's loop does: frames[0] is the routing id,
//  then the header and, for DATA, the payload; n counts them all. Frames are
//  left to the caller to close (a DATA payload may have been moved out).
void zchan__hub_feed(zchan__hub_t *hub, zmq_msg_t *frames, size_t n);
void zchan__hub_destroy(zchan__hub_t **hub_p);
//  Counts of what the hub refused over its resource limits, and the bytes it
//  holds (zchan_ctx_set_limit).
uint64_t zchan__hub_refused(const zchan__hub_t *hub);
uint64_t zchan__hub_bytes(const zchan__hub_t *hub);
//  Checks the hub's bookkeeping (peer table, queues, counts): NULL if it is
//  consistent, else what is not.
const char *zchan__hub_check(const zchan__hub_t *hub);
//  What the hub holds, for tests: live channels (*chans), tombstones of
//  closed channels it reclaimed (*tombs), and attachments (*attached).
void zchan__hub_sizes(const zchan__hub_t *hub, size_t *chans, size_t *tombs, size_t *attached);

#endif
