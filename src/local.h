/*  local.h: the in-process fast path. A sender or receiver made through the
    context whose hub hosts its channel (a "local party") does not send
    frames to the hub thread: it works on the channel's state directly, under
    the lock its context shares with its hub (zchan__share_t), and sleeps on
    a condition variable of its own (blocking calls) or an eventfd (select,
    zmq_poll) that whoever changes its state wakes. The hub thread is one
    more party on that state, for remote peers only.

    The channel's rules (src/hub/channel.c) do not change: a local party is
    a member of its channel like a remote one, with a peer slot of its own
    (so STAT, limits and handles count it), whose member ops (src/hub/local.c)
    put deliveries in its box and credit in its count instead of frames on
    the ROUTER. When a local party's call makes the rules tell a REMOTE
    member something (a delivery to a receiver in another process, an ACK),
    the frames go to the hub's outbox, which the hub thread sends in order,
    before anything else it sends (src/hub/local.c).

    Windows of local parties: a local receiver takes messages straight out
    of the channel as it reads (zchan__chan_take: consumed as taken), and
    asks for one (credit 1, handed to its box) only while it waits, in
    zchan_recv or in a select; a zchan_recv that times out takes that credit
    back. So messages wait at the channel, within its capacity, as in a Go
    channel; a receiver holds at most one beyond it (one a select asked for
    and did not read), and a rendezvous (capacity 0) stays exact. A local
    sender's window is zchan_sender_window(C), at most 16: it has no round
    trip to cover, and so blocks soon after the channel is full, as a Go
    channel's sender does.

    Lifetime: the share is the context's and lives as long as its memory.
    The hub sets share->hub while it runs. At the context's shutdown
    (zchan__local_shutdown, before the hub stops) share->dead is set and every
    local party waiting is woken; from then on neither side touches the other:
    local calls fail with ECLOSED without looking at the hub, and the hub's
    ops leave local parties' memory alone.

    Lock order: share->lock, then ctx->lock (the hub takes ctx->lock for a
    reply while it holds share->lock). A local party never waits for ctx->lock
    while it holds share->lock... except through the hub's own code, which is
    the same order.
*/
#ifndef ZCHAN_LOCAL_H_INCLUDED
#define ZCHAN_LOCAL_H_INCLUDED

#include "core.h"
#include "hub/fifo.h"
#include <stdatomic.h>

//  What a context shares with its hub thread for the fast path.
typedef struct zchan__share {
    pthread_mutex_t lock;  // guards the hub's channel state, and everything below
    struct zchan__hub *hub; // the running hub, NULL before it starts and after it stops
    bool dead;             // the context was shut down: no local call touches the hub
    bool enabled;          // local parties use the fast path ($ZCHAN_LOCAL=0 turns it off)
} zchan__share_t;

//  A local party's state, in the party's own memory. Written under
//  share->lock, except events (atomic, for spinning without the lock).
typedef struct zchan__lparty {
    zchan__share_t *share;
    void *peer;            // its peer slot at the hub (peer_t), NULL once released
    zchan_kind_t kind;
    size_t capacity;
    //  Waking the party.
    pthread_cond_t cond;
    int sleeping;          // threads waiting on cond
    int efd;               // eventfd for select, -1 until first needed
    bool armed;            // a select waits on efd: write it on any change
    bool signalled;        // efd was written and not yet read
    atomic_uint events;    // bumped on every change (spinners watch it)
    //  A receiver's box: what the channel handed it, in order (copies; the
    //  channel keeps each until it is consumed). A node's sender field holds
    //  the receiver's dropped count as of that message.
    zchan__fifo_t box;
    //  A sender's credit.
    uint64_t credit;
    bool unlimited;        // broadcast sender: no credit
    int refused;           // the hub refused a message of it over a byte limit
    //  Told by the channel.
    bool closed;           // closed for this party: nothing more comes
} zchan__lparty_t;

//  Makes ctx's share (before its hub starts) and frees it (with ctx's memory).
int zchan__share_init(zchan_ctx_t *ctx);
void zchan__share_fini(zchan_ctx_t *ctx);

//  Whether a party of channel ch uses the fast path: ch is hosted by the hub
//  of the context it was made through, and the fast path is on.
bool zchan__local_eligible(const zchan_t *ch);

//  Attaches lp (zeroed by the caller) to ch as a sender or a receiver (limit:
//  a broadcast receiver's, 0 for the default). 0: attached (lp->closed set
//  for a channel closed already); ENOTFOUND, EINVAL, ELIMIT, ENOMEM as an
//  ATTACH would give; ECLOSED if the context was shut down. Sets *kind and
//  *capacity. On failure lp needs only zchan__local_fini.
int zchan__local_attach(zchan__lparty_t *lp, zchan_t *ch, bool receiver, uint64_t limit);
//  Leaves the channel gracefully (a receiver hands back what its box holds)
//  and frees what lp holds. Never blocks beyond the lock.
void zchan__local_fini(zchan__lparty_t *lp);

//  Sends msg from sender lp, waiting for credit until deadline (ms, -1
//  forever); its bytes are moved out once it is sent (the caller then
//  destroys the shell), and left whole if the send fails. At capacity 0 it
//  waits until a receiver took it; a timeout then takes it back (ETIMEDOUT,
//  nothing sent). Returns 0, ETIMEDOUT, ECLOSED, EINVAL (not one value),
//  ELIMIT (an earlier message was refused over a byte limit, or at capacity
//  0 this one: nothing sent).
int zchan__local_send(zchan__lparty_t *lp, zchan_msg_t *msg, int64_t deadline);

//  Takes the next message of receiver lp into *payload (and its dropped
//  count), waiting until deadline (ms, -1 forever; 0 or past: no wait).
//  Returns 0, ETIMEDOUT, or ECLOSED (closed and drained, or shut down).
int zchan__local_recv(zchan__lparty_t *lp, zmq_msg_t *payload, uint64_t *dropped, int64_t deadline);
//  Never blocks: whether a zchan__local_recv with no wait would give a
//  message (1), ECLOSED (2: the receiver has stopped) or ETIMEDOUT (0).
//  Asks the channel for a message first. Clears the eventfd.
int zchan__local_ready(zchan__lparty_t *lp);
//  Before a select sleeps: asks for a message, and arms the eventfd (made on
//  first use) so that any change writes it. Returns its descriptor, or -1
//  (ENOMEM/ESYS: the caller then polls nothing for it).
int zchan__local_arm(zchan__lparty_t *lp);

//  Before a select spins on lp: asks for a message as zchan__local_arm
//  does, without arming the eventfd; returns lp->events, which any change
//  bumps.
unsigned zchan__local_watch(zchan__lparty_t *lp);

//  At the context's shutdown, before its hub stops: no local call touches
//  the hub from now on, and every local party waiting is woken.
void zchan__local_shutdown(zchan_ctx_t *ctx);

//  The local receiver of ch (limit as zchan_receiver_new): receiver_local.c.
zchan_receiver_t *zchan__local_receiver_new(zchan_t *ch, size_t limit);
//  Whether r is a local receiver; its dropped count then goes in *dropped.
bool zchan__local_receiver_dropped(const zchan_receiver_t *r, uint64_t *dropped);

#endif
