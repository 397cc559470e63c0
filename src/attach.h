/*  attach.h: the client side of one attachment, shared by senders and
    receivers: its DEALER socket, its handle at the hub, where it finds its
    channel again, and one explicit state.

    States and transitions (docs/ARCHITECTURE.md, "The client side of an
    attachment"):

      ATTACHED --CLOSED notice--------------------------> CLOSED
      ATTACHED --[CLOSED, NOT_ATTACHED], ENOTFOUND-----> REJOIN
      REJOIN   --zchan__att_rejoin: attached again-----> ATTACHED
      REJOIN   --rejoin finds the channel closed-------> ENDED
      REJOIN + CLOSED, CLOSED + REJOIN ----------------> ENDED
      any      --probe unanswered, rejoin failed-------> HUB_LOST
      any      --the context shut down-----------------> DEAD

    CLOSED, ENDED, HUB_LOST and DEAD are final. Only an attachment the hub
    still knows (ATTACHED, CLOSED) is detached at its destroy. The state is
    atomic: zchan_close marks a sender closed from another thread
    (zchan__att_closed); every other change is made by the owner's thread.

    The owner (sender.c, receiver.c) keeps what is its own: credit, windows,
    the receive queue, flush semantics, and which messages it reads.
*/
#ifndef ZCHAN_ATTACH_H_INCLUDED
#define ZCHAN_ATTACH_H_INCLUDED

#include "core.h"

typedef enum {
    ZCHAN__ATT_NONE = 0, // not attached (yet): the attach failed or was not made
    ZCHAN__ATT_ATTACHED, // the hub knows it: requests and data flow
    ZCHAN__ATT_REJOIN,   // the hub does not know it (it restarted): attach again
    ZCHAN__ATT_CLOSED,   // the channel closed; the hub still knows it (detach)
    ZCHAN__ATT_ENDED,    // the channel closed and the hub does not know it
    ZCHAN__ATT_HUB_LOST, // the hub stopped answering, or attaching again failed
    ZCHAN__ATT_DEAD,     // the context was shut down: the socket is closed
} zchan__att_state_t;

//  Handles a message from the hub that is not the reply being waited for.
typedef void zchan__att_other_fn(void *arg, zchan__hdr_t *h, zmq_msg_t *payload);

typedef struct {
    zchan_ctx_t *ctx;
    const char *what;     // "sender" or "receiver", for logs
    bool sender;          // attaches with ATTACH_S, else ATTACH_R
    uint64_t limit;       // ATTACH_R's limit
    void *sock;           // the DEALER socket, NULL once closed
    int rcvtimeo;         // the socket's ZMQ_RCVTIMEO as last set (-1: ZeroMQ's default)
    uint64_t handle;      // the hub's handle, 0 while not attached
    zchan_kind_t kind;    // from the ATTACH reply
    uint64_t given;       // ATTACH_S: the sender's window; ATTACH_R: the capacity
    atomic_int state;     // a zchan__att_state_t
    //  Probes of a silent hub.
    int hb_ms;            // the context's heartbeat timeout, 0: no probes
    int64_t heard_ms;     // when the hub was last heard from
    int64_t probe_ms;     // when an unanswered probe was sent, -1: none
    uint64_t probe_reqid; // a sender's probe (FLUSH) request id, 0: none
    uint64_t reattached;  // how many times it attached again
    zchan__chanloc_t loc; // where it finds its channel again
    char endpoint[ZCHAN__EP_MAX];
} zchan__att_t;

//  Sets a up for channel ch (as a sender, or a receiver of limit: 0 for
//  the default), makes its socket, connects it and attaches (ATTACH_S or
//  ATTACH_R, and its reply): state ATTACHED, or CLOSED for a channel closed
//  already. Returns 0, ESYS (no socket or connection), or the request's error
//  (EPROTO for a malformed reply), leaving a in state NONE with its socket
//  open: zchan__att_fini frees it either way. a is the caller's memory.
int zchan__att_open(zchan__att_t *a, zchan_t *ch, bool sender, uint64_t limit);

//  Closes a's socket, if still open. Sends nothing (see zchan__att_detach).
void zchan__att_fini(zchan__att_t *a);

//  The context was shut down with the owner not destroyed: closes the socket
//  and enters DEAD. Never blocks.
void zchan__att_kill(zchan__att_t *a);

//  The state, and predicates on it. Never block.
zchan__att_state_t zchan__att_state(const zchan__att_t *a);
//  Whether the hub still knows the attachment (ATTACHED or CLOSED).
bool zchan__att_known(const zchan__att_t *a);
//  Whether it has stopped for good (CLOSED, ENDED, HUB_LOST or DEAD).
bool zchan__att_stopped(const zchan__att_t *a);
//  Whether it must attach again before anything else (REJOIN).
bool zchan__att_must_rejoin(const zchan__att_t *a);

//  Moves a to state to, as far as its current state allows (see the diagram
//  above: a final state is left only for a later one; REJOIN and CLOSED make
//  ENDED together). Safe from any thread. Returns the state reached.
zchan__att_state_t zchan__att_move(zchan__att_t *a, zchan__att_state_t to);

//  The channel was closed (a CLOSED notice, or zchan_close in this process).
static inline void zchan__att_closed(zchan__att_t *a)
{
    zchan__att_move(a, ZCHAN__ATT_CLOSED);
}

//  Takes what every message from the hub says about the attachment: the hub
//  was heard (any message, a probe's reply included); [CLOSED, NOT_ATTACHED]
//  or ENOTFOUND to the probe: REJOIN; CLOSED: CLOSED. Returns true if h was
//  one of those (nothing left for the owner), false otherwise.
bool zchan__att_notice(zchan__att_t *a, zchan__hdr_t *h);

//  Sends the request in o (reqid its second field) on a's socket and waits
//  for its reply within the context's timeout, passing other messages to
//  on_other (may be NULL: they are dropped). As zchan__await_reply; *reply
//  is initialised whatever happens (release with zchan__reply_fini).
int zchan__att_request(zchan__att_t *a, zchan__out_t *o, uint64_t reqid, zchan__reply_t *reply,
                       zchan__att_other_fn *on_other, void *arg);

//  When the hub is next due a look (a probe, or giving up on one), counting
//  silence from the later of the last message heard and since (ms, 0 for
//  none). -1: never (no heartbeats, not attached, or stopped).
int64_t zchan__att_probe_due(const zchan__att_t *a, int64_t since);

//  A probe is due: gives up on a probe unanswered for the heartbeat timeout
//  (HUB_LOST, logged), or probes: a sender sends FLUSH, which a live hub
//  answers at once (ENOTFOUND if it lost the attachment); a receiver sends
//  CREDIT granting nothing (reporting *consumed, zeroed once sent), which a
//  hub that lost it answers [CLOSED, NOT_ATTACHED], then PING, which a live
//  hub answers. Never blocks; on a connection that is down the probe goes
//  nowhere and stays unanswered.
void zchan__att_probe_step(zchan__att_t *a, uint64_t *consumed);

//  For an attachment in REJOIN: finds the channel again (creating it with the
//  settings a knows; see zchan__chan_rejoin) and attaches a fresh socket to
//  it, a new connection, so nothing the old one still carries can be taken
//  for the new attachment's. With closing (the owner was told the channel is
//  closing), the channel is not brought back. Returns 0 once ATTACHED again
//  (the owner takes kind and given anew), else nonzero with a in ENDED (the
//  channel is closed) or HUB_LOST (logged). Blocks for up to two requests.
int zchan__att_rejoin(zchan__att_t *a, bool closing);

//  Detaches an attachment the hub still knows (zchan__att_known): DETACH
//  [reqid, handle, consumed] on its socket and the reply, other messages
//  going to on_other (may be NULL). Returns 0 (also when there is nothing to
//  detach) or the request's error. Leaves the socket open.
int zchan__att_detach(zchan__att_t *a, uint64_t consumed, zchan__att_other_fn *on_other, void *arg);

#endif
