/*  hub.h: the hub's state, shared by the files of src/hub/, and what they
    call of each other. Internal to the hub: the rest of the library knows
    the hub through core.h (zchan__hub_actor, the threadless hub) only.

    The hub is one thread per context that hosts the context's channels: one
    ROUTER socket serves every channel, bound on inproc, ipc and any tcp
    endpoints. Senders and receivers are DEALERs, one socket each; the hub
    knows each by a handle it assigned at attach, checked against the routing
    id of every message. All channel state is this thread's; the only lock
    it takes is ctx->lock, to read the context's hub info for a reply.

        loop.c      the actor: poll loop, read bursts, pipe commands, timers
        handlers.c  one handler per request, given an explicit request value
        chans.c     the channels by key, and tombstones of reclaimed ones
        channel.c   the channel's rules (no sockets), via member.h's ops
        chancheck.c the checker of a channel's bookkeeping
        out.c       what the hub sends; the member ops for remote members
        peers.c     the peer table, attachments per connection, liveness
        seam.c      the threadless hub for tests and fuzzers, its checker
        fifo.c, ring.c, vec.c   containers

    Nothing here asserts on what a peer sent: bad frames are counted, logged
    at a limited rate, and dropped.

    Resource limits (zchan_ctx_set_limit, copied into the hub at start and on
    the pipe's ZCHAN__HUB_LIMITS): channels, attachments, the largest
    capacity and broadcast limit are refused with ELIMIT (handlers.c); the
    bytes of messages held, per channel and in all, are the rules' to count
    (channel.c, zchan__bytes_t). Refusals are counted and logged at a limited
    rate (out.c).
*/
#ifndef ZCHAN_HUB_HUB_H_INCLUDED
#define ZCHAN_HUB_HUB_H_INCLUDED

#include "channel.h"
#include "core.h"
#include "local.h"
#include <sys/types.h>

#define HUB_BATCH 512           // messages read per poll wake-up before flushing acks
#define HUB_PEER_MAX (1u << 24) // attachments a hub holds at most
#define HUB_ATTACH_PER_CONN 64  // attachments one connection may hold at once
#define HUB_CHECK_FIRST_MS 500  // a receiver quiet this long while it holds messages is checked
#define HUB_CHECK_MAX_MS 5000   // checks of a quiet receiver back off to this interval
#define HUB_SWEEP_MS HUB_CHECK_MAX_MS // every attachment's connection is checked this often
#define HUB_TOMB_UNNAMED 4096   // tombstones of unnamed channels kept: the newest
#define HUB_TOMB_NAMED 16384    // ...and of named channels

typedef enum { ROLE_FREE = 0, ROLE_SENDER, ROLE_RECEIVER } role_t;

//  An attachment: a channel member and what the hub knows of its peer.
//  Allocated once per slot of the peer table and reused: a member pointer
//  stays valid while the hub lives.
typedef struct {
    zchan__member_t m; // first: the member ops get from it to its peer
    uint32_t idx;      // its slot in the peer table
    uint32_t gen;      // bumped at each reuse of the slot: handles go stale
    role_t role;
    uint8_t rid_len;
    uint8_t rid[255];
    //  sender
    uint32_t pending_ack; // credit owed, not yet sent
    bool dirty;           // on hub->dirty
    //  receiver liveness
    int fd;            // the peer's connection (ZMQ_SRCFD), -1 if unknown (inproc)
    dev_t dev;         // ...and the socket it was: fd may be reused
    ino_t ino;
    int64_t check_at;  // when to check it if it still holds messages
    int64_t check_gap; // the interval of its checks, doubling
} peer_t;

//  A tombstone: what is left of a closed channel once nobody is attached to
//  it (chans.c). Enough to answer for its key (closed: a late party is
//  stopped at once) and to keep its counters for STAT.
typedef struct hub_tomb {
    struct hub_tomb *next; // the next newer tombstone of its class (named or unnamed)
    size_t capacity;
    uint64_t sent, delivered, dropped, lost;
    zchan_kind_t kind;
    bool unnamed;
    char key[]; // also the key of hub->tombs
} hub_tomb_t;

//  The message being handled: who sent it, its parsed header, its frames.
typedef struct {
    const uint8_t *rid; // the routing id of its connection
    size_t rid_len;
    zchan__hdr_t *hdr;     // its header, parsed
    zmq_msg_t *hdr_frame;  // the header frame (it carries ZMQ_SRCFD)
    zmq_msg_t *payload;    // DATA: the payload frame, else NULL
    uint64_t reqid;        // requests: the request id
} hub_req_t;

//  A message a local party's call owes a remote peer (local.c): the hub
//  thread sends it, in order, before anything else it sends.
typedef struct {
    peer_t *p;        // the peer it goes to (for a delivery that fails)...
    uint32_t gen;     // ...while its slot still has this generation
    bool deliver;     // a DELIVER: one that fails drops the receiver
    bool has_payload;
    uint8_t rid_len;
    uint8_t hlen;
    uint8_t hdr[48];  // the header, packed
    uint8_t rid[255]; // the routing id (the peer may be released before it goes)
    zmq_msg_t payload;
} hub_outmsg_t;

struct zchan__hub {
    zchan_ctx_t *ctx;
    zsock_t *pipe;
    void *router;
    zhashx_t *chans;  // key -> zchan__chan_t
    zhashx_t *tombs;  // closed channels reclaimed: key -> hub_tomb_t
    //  Tombstones by class, [0] named and [1] unnamed, each listed oldest first.
    hub_tomb_t *tomb_old[2], *tomb_new[2];
    size_t ntomb[2];
    peer_t **peers;   // the peer table, by slot
    size_t npeers, peers_cap;
    zchan__vec_t free;  // peers of free slots
    zchan__vec_t dirty; // senders whose ACK is looked at after this burst
    zchan__hdr_t hdr;   // the parse buffer of the message being handled
    uint64_t proto_errors;
    int64_t last_log_ms;
    uint64_t unlogged;
    int64_t now_ms;  // the time of the current poll wake-up
    int64_t scan_at; // when to check quiet receivers that hold messages, -1: none
    int64_t sweep_at; // when to check every attachment's connection, -1: none
    bool sweep_retry; // the last sweep found one gone while input waited
    bool closing;    // after CLOSEALL: no new channels
    zhashx_t *conns; // attachments per connection: routing id (hex) -> count
    uint64_t limit[ZCHAN__NLIMITS]; // resource limits, by zchan_limit_t (ctx->limits)
    zchan__bytes_t budget; // the byte limits of its channels, and what they hold
    uint64_t refused;      // requests and messages refused over a limit
    int64_t refuse_log_ms;
    uint64_t refuse_unlogged;
    //  The fast path (local.c): the lock its state shares with the
    //  context's local parties, and what their calls owe remote peers.
    zchan__share_t *share; // NULL for a threadless hub (seam.c): no lock
    pthread_t thread;      // the hub's thread
    hub_outmsg_t *outbox;  // messages for remote peers, oldest first
    size_t nout, outcap;
    int kick_fd;           // eventfd the hub polls: the outbox or ACKs need it (-1: none)
    bool kicked;           // kick_fd was written and not yet read
};
typedef struct zchan__hub hub_t;



static inline peer_t *hub_peer_of(zchan__member_t *m)
{
    return (peer_t *) m; // m is a peer's first field
}

// ---------------------------------------------------------------------------
// peers.c: the peer table, attachments per connection, liveness

//  The handle of the peer in slot idx: its generation and its slot.
uint64_t zchan__peer_handle(const hub_t *hub, uint32_t idx);
//  The live peer of handle with role, whose routing id is rq's; NULL if none.
peer_t *zchan__peer_find(hub_t *hub, const hub_req_t *rq, uint64_t handle, role_t role);
//  The live peer of handle with role, whoever sent it; NULL if none.
peer_t *zchan__peer_get(hub_t *hub, uint64_t handle, role_t role);
//  A new peer of role for the connection of rq, zeroed, its member's token
//  its handle, its connection recorded and heard. NULL if out of memory or
//  the table is full. Does not count it on its connection.
peer_t *zchan__peer_new(hub_t *hub, const hub_req_t *rq, role_t role);
//  Frees p's slot (its member must be released or never joined) and
//  uncounts it from its connection if it was counted (counted).
void zchan__peer_free(hub_t *hub, peer_t *p);
//  How many attachments the connection rid holds; adds delta (+1 or -1) to
//  them: 0, or -1 when adding to a hub whose table could not be made.
size_t zchan__conn_count(const hub_t *hub, const uint8_t *rid, size_t len);
int zchan__conn_add(hub_t *hub, const uint8_t *rid, size_t len, int delta);
//  The hub heard from receiver p: it is there. Its checks start over.
void zchan__peer_heard(hub_t *hub, peer_t *p);
//  A receiver was handed or kept a message: makes sure a check is planned.
void zchan__peer_arm(hub_t *hub);
//  true if p's connection is closed: its descriptor is shut, or now another.
bool zchan__peer_gone(const peer_t *p);
//  Plans a sweep of every attachment's connection, if none is planned and
//  p has a connection to check.
void zchan__peers_arm_sweep(hub_t *hub, const peer_t *p);
//  Whether any attachment's connection is gone.
bool zchan__peers_any_gone(const hub_t *hub);
//  Scans the receivers that hold messages and have been quiet long enough:
//  returns the next one from *pos found gone (the caller tells its channel,
//  then calls again), or NULL once done (the next scan is then planned).
//  Start with *pos = 0 and hub->scan_at = -1.
peer_t *zchan__peers_scan(hub_t *hub, size_t *pos, int64_t *next);
//  Frees the table (members must be finished by the caller).
void zchan__peers_fini(hub_t *hub);

// ---------------------------------------------------------------------------
// chans.c: the channels by key, and tombstones

//  Makes and frees the tables: 0, or -1 if out of memory.
int zchan__chans_init(hub_t *hub);
void zchan__chans_fini(hub_t *hub);
//  The live channel, or the tombstone, of the key p (len bytes); NULL if
//  none (or p cannot be a key).
zchan__chan_t *zchan__chans_lookup(hub_t *hub, const char *p, size_t len);
hub_tomb_t *zchan__chans_tomb(hub_t *hub, const char *p, size_t len);
//  Replaces ch by its tombstone if it is closed and nobody is attached to
//  it. true if it did: ch is then freed. Out of memory, ch stays whole.
bool zchan__chans_reclaim(hub_t *hub, zchan__chan_t *ch);
//  Checks the tombstones: NULL if consistent, else what is not.
const char *zchan__chans_check(const hub_t *hub);

// ---------------------------------------------------------------------------
// out.c: what the hub sends

//  The member ops for the hub's peers (env: the hub_t).
extern const zchan__member_ops_t zchan__hub_member_ops;
//  Counts a bad message and logs it at a limited rate.
void zchan__hub_proto_error(hub_t *hub, const char *what);
//  Counts a refusal over limit which, and logs it at a limited rate.
void zchan__hub_refuse(hub_t *hub, const char *what, zchan_limit_t which);
//  [CLOSED, NOT_ATTACHED] to the sender of rq.
void zchan__hub_send_not_attached(hub_t *hub, const hub_req_t *rq);
//  The credit owed to sender p, now; then the ACKs due at the end of a burst.
void zchan__hub_flush_ack(hub_t *hub, peer_t *p);
void zchan__hub_flush_acks(hub_t *hub);
//  Sends o (a reply packed by wire.h) to the sender of rq and frees it; or
//  replies [REPLY, reqid, status].
void zchan__hub_reply_send(hub_t *hub, const hub_req_t *rq, zchan__out_t *o);
void zchan__hub_reply_status(hub_t *hub, const hub_req_t *rq, int status);

// ---------------------------------------------------------------------------
// local.c: the fast path's hub side

//  Takes the lock shared with local parties (no-op for a threadless hub),
//  then sends what the outbox holds. Only the hub's thread calls these.
void zchan__hub_lock(hub_t *hub);
void zchan__hub_unlock(hub_t *hub);
//  The hub was kicked (kick_fd readable): reads it. Under the lock.
void zchan__hub_unkick(hub_t *hub);
//  Whether the caller is a local party's thread (not the hub's): what it
//  owes remote peers then goes through the outbox.
bool zchan__hub_deferred(const hub_t *hub);
//  Puts header o (and a copy of payload, if any) for peer p in the outbox,
//  and kicks the hub. 0, or -1 if out of memory.
int zchan__hub_outbox_add(hub_t *hub, peer_t *p, zchan__out_t *o, zmq_msg_t *payload, bool deliver);
//  Wakes the hub's thread (its ACKs are due, or its outbox has something).
void zchan__hub_kick(hub_t *hub);
//  Frees the outbox and the kick descriptor, at the hub's end.
void zchan__hub_local_fini(hub_t *hub);
//  A new peer slot for a local party (no connection), as zchan__peer_new.
peer_t *zchan__peer_new_local(hub_t *hub, role_t role);
//  The member ops for local members (out.c calls them when m->local is set).
int zchan__local_op_deliver(hub_t *hub, zchan__member_t *r, zmq_msg_t *payload);
void zchan__local_op_ack(hub_t *hub, zchan__member_t *s);
void zchan__local_op_refuse(hub_t *hub, zchan__member_t *s);
void zchan__local_op_closed(hub_t *hub, zchan__member_t *m);
void zchan__local_op_release(hub_t *hub, zchan__member_t *m);

//  Whether a new attachment to live channel ch (as a receiver, of broadcast
//  limit limit) is allowed: 0, EINVAL (a bad limit) or ELIMIT (counted,
//  logged). handlers.c and local.c share it.
int zchan__hub_attach_allowed(hub_t *hub, const zchan__chan_t *ch, bool receiver, uint64_t limit);

// ---------------------------------------------------------------------------
// handlers.c and loop.c

//  Handles one message (frames: routing id, header, payload for DATA).
void zchan__hub_dispatch(hub_t *hub, zmq_msg_t *frames, size_t n);
//  Member p's connection is gone: tells its channel (which drops it), and
//  reclaims the channel if that was its last member.
void zchan__hub_member_gone(hub_t *hub, peer_t *p);
//  Checks quiet receivers that hold messages, and sweeps every attachment's
//  connection, when due; tells the channels of those found gone.
void zchan__hub_timers(hub_t *hub);
//  Closes every channel and refuses new ones (CLOSEALL). Returns what is
//  still pending (zchan__chan_pending over all channels).
uint64_t zchan__hub_close_all_chans(hub_t *hub);
//  The state every hub starts with, the actor's and the seam's alike: 0, or
//  -1 if out of memory (the hub can still be freed). And its end.
int zchan__hub_init(hub_t *hub, zchan_ctx_t *ctx);
void zchan__hub_fini(hub_t *hub);
//  Copies ctx->limits into the hub (the caller holds ctx->pipe_lock, or the
//  hub has not started).
void zchan__hub_set_limits(hub_t *hub);

#endif
