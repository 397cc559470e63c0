/*  core.h: the context, channel handles, and the client side of the protocol,
    shared by ctx.c, chan.c, sender.c, receiver.c, msg.c and hub.c.
*/
#ifndef ZCHAN_CORE_H_INCLUDED
#define ZCHAN_CORE_H_INCLUDED

#include "internal.h"
#include "proto.h"
#include "transport.h"
#include <czmq.h>

#define ZCHAN__ID_MAX 96   // longest host or process identity
#define ZCHAN__MAX_LOC 8   // locators a hub advertises at most
#define ZCHAN__DEFAULT_TIMEOUT_MS 5000

//  Who a hub is and where it can be reached: what replies and references carry.
typedef struct {
    char host[ZCHAN__ID_MAX]; // host identity ($ZCHAN_HOST_ID, else the boot id)
    char proc[ZCHAN__ID_MAX]; // process identity (host, pid and a random number)
    char hub[ZCHAN__ID_MAX];  // hub identity (proc and a counter)
    int nloc;
    char loc[ZCHAN__MAX_LOC][ZCHAN__EP_MAX];
} zchan__hubinfo_t;

#define ZCHAN__REQ_POOL 8 // idle request sockets a context keeps

struct zchan_ctx_t {
    void *zctx;            // the process-wide ZeroMQ context
    zactor_t *hub;         // the hub thread
    pthread_mutex_t pipe_lock; // one exchange at a time on the hub's pipe
    int64_t max_msg_size;  // ZMQ_MAXMSGSIZE for the hub's later binds (under pipe_lock)
    pthread_mutex_t lock;  // guards everything below
    char ipc_dir[200];     // runtime directory, "" if ipc is unusable
    char advertise[128];   // host for tcp locators, "" for the bound address
    int timeout_ms;
    zchan__hubinfo_t info; // this hub's identity and locators
    int nbound;            // endpoints the hub has bound, as zmq reports them
    char bound[ZCHAN__MAX_LOC][ZCHAN__EP_MAX];
    char inproc[64];       // the hub's inproc endpoint
    zlistx_t *senders;     // live senders made through this context (for close)
    zlistx_t *locks;       // fds of ipc lock files this context holds
    zlistx_t *names;       // keys this context registered process-wide
    //  Idle request sockets, kept for reuse: a socket per request would leave
    //  closed sockets piling up in ZeroMQ's reaper faster than it frees them.
    pthread_mutex_t req_lock;
    int nreq;
    struct {
        void *sock;
        char endpoint[ZCHAN__EP_MAX];
    } req[ZCHAN__REQ_POOL];
};

struct zchan_t {
    zchan_ctx_t *ctx;
    zchan_kind_t kind;
    char *uri;
    char *name;
    char *key;
    char endpoint[ZCHAN__EP_MAX]; // the locator this handle connects to
    zchan__hubinfo_t info;        // the hosting hub
};

// ---------------------------------------------------------------------------
// Context services (ctx.c)

//  The process identity (recomputed after fork) and the host identity.
const char *zchan__proc_id(void);
const char *zchan__host_id(void);

//  Creates a socket of type in the process-wide context, with linger 0 and
//  the usual options. NULL (ESYS) on failure.
void *zchan__socket(zchan_ctx_t *ctx, int type);

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

//  Waits on sock (a DEALER that sent request reqid) for the reply to it,
//  skipping other messages through on_other (may be NULL), until deadline.
int zchan__await_reply(void *sock, uint64_t reqid, int64_t deadline_ms, zchan__reply_t *reply,
                       void (*on_other)(void *arg, zchan__hdr_t *h, zmq_msg_t *payload), void *arg);
void zchan__reply_fini(zchan__reply_t *reply);

//  A fresh request id, unique in the process.
uint64_t zchan__reqid(void);

//  Reads a hub info map (from a reply or reference) into info. 0 or EPROTO.
int zchan__hubinfo_read(const msgpack_object *o, zchan__hubinfo_t *info);

//  Packs info as a map.
void zchan__hubinfo_pack(msgpack_packer *pk, const zchan__hubinfo_t *info);

//  Picks the nearest locator of info that ctx can reach into out. 0 or ENOTFOUND.
int zchan__pick_locator(zchan_ctx_t *ctx, const zchan__hubinfo_t *info, char *out, size_t n);

//  The process-wide name registry for ZCHAN__AT_PROCESS and ZCHAN__AT_HOST
//  names hosted by a context of this process: looks key up and fills the
//  hosting context's inproc endpoint. true if found.
bool zchan__registry_find(const char *key, char *endpoint, size_t n);
//  Registers key as hosted by ctx. EINVAL if taken.
int zchan__registry_add(zchan_ctx_t *ctx, const char *key);

//  The hub's inproc endpoint of ctx (stable for its lifetime).
const char *zchan__ctx_inproc(zchan_ctx_t *ctx);

//  Asks the hub of ctx to bind endpoint as well; writes the bound endpoint.
//  With record, the endpoint becomes one of the hub's own (zchan__ctx_is_own,
//  zchan_ctx_endpoint); a channel's alias endpoint is not recorded.
int zchan__ctx_hub_bind(zchan_ctx_t *ctx, const char *endpoint, bool record, char *bound, size_t n);

//  Whether endpoint is one this context's hub has bound (so it is local).
bool zchan__ctx_is_own(zchan_ctx_t *ctx, const char *endpoint);

//  Claims an exclusive lock file at path for the life of the context (with
//  keep false, only tests whether it could, and lets go). 0 if claimed,
//  ECLOSED if a live process holds it, ESYS on failure. A kept lock file, and
//  the socket file sock that it guards (NULL if none), are removed when the
//  context is destroyed, while the lock is still held.
int zchan__ctx_claim(zchan_ctx_t *ctx, const char *path, bool keep, const char *sock);

// ---------------------------------------------------------------------------
// Channel handles (chan.c)

//  Makes a handle on the channel key hosted by the hub described by info,
//  reached at endpoint. NULL (ENOMEM).
zchan_t *zchan__chan_make(zchan_ctx_t *ctx, zchan_kind_t kind, const char *key, const char *name,
                          const char *uri, const char *endpoint, const zchan__hubinfo_t *info);

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

//  Fills frame with the message's encoded bytes (moved out of msg when
//  move is true, copied otherwise). EINVAL if msg does not hold exactly one
//  msgpack value.
int zchan__msg_to_frame(zchan_msg_t *msg, zmq_msg_t *frame, bool move);

// ---------------------------------------------------------------------------
// The hub (hub.c)

//  The zactor body of a hub. args is the zchan_ctx_t.
void zchan__hub_actor(zsock_t *pipe, void *args);

#endif
