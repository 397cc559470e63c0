/*  channel.h: a channel's rules, with no socket I/O. The hub drives them
    (handlers.c); its unit tests drive them directly (tests/test_chanrules.c).

    Anycast: a FIFO. A message is "accepted" once it fits in the capacity,
    which counts what waits here for a receiver (nacc, accepted and not yet
    delivered < capacity); each acceptance owes its sender one credit
    (ops->ack). A sender may have zchan_sender_window(capacity) unaccepted
    messages. Receivers grant credit; what a receiver was handed counts in
    its window, not in the capacity: its credit (avail) and what it holds
    together are at most ZCHAN_WINDOW_MAX. The rules keep each handed message
    (the member's inflight list) until the receiver reports it consumed, so
    a receiver that leaves gracefully hands back, at the front of the queue
    and accepted already, what it did not consume (the queue may then hold
    more than the capacity for a while). Capacity 0 is a rendezvous: a
    message is accepted only when a receiver with credit takes it. Receivers
    with credit take turns (round robin).

    Broadcast: each receiver has a ring of its limit; a full ring drops its
    oldest message and counts it (the receiver's and the channel's dropped).
    Senders are never owed credit. With resend_latest the channel keeps the
    last message and puts it first in a new receiver's ring.

    Close: senders are told at once (ops->close_sender), receivers get
    CLOSING at once and CLOSED once drained (ops->closed); data after the
    close is counted lost, and so are messages of a closed channel that no
    receiver can take any more. A receiver found gone (ops->gone at close, or a
    failed delivery, or zchan__chan_lost) loses what it held: counted lost,
    never handed twice.

    Resource limits: the bytes of messages held (queued, handed and not
    consumed, in rings, the latest), per channel and over all the channels
    that share a zchan__bytes_t, are counted where messages are kept and
    freed. An anycast message over them is dropped, counted lost and refused
    to its sender (ops->refuse; it still gets its credit back); a broadcast
    ring drops its oldest to make room, or the message itself if it would
    not fit even in an empty ring; a latest message that does not fit is not
    kept. Each refusal is reported (ops->over_limit).

    Not thread-safe: one thread at a time per channel and its members. Every
    call may call back into ops, and may release members (ops->release).
*/
#ifndef ZCHAN_HUB_CHANNEL_H_INCLUDED
#define ZCHAN_HUB_CHANNEL_H_INCLUDED

#include "member.h"
#include "vec.h"
#include "zchan.h"

#define ZCHAN__RING_FIRST 16 // a broadcast ring's first size; it doubles up to the limit
#define ZCHAN__MSG_OVERHEAD 64 // bytes a held message counts beyond its size (its zmq_msg_t or node)

//  The byte limits a hub's channels share, and what they hold in all. The
//  owner sets the limits; the rules count.
typedef struct {
    uint64_t chan_max; // the most one channel may hold (ZCHAN_LIMIT_CHANNEL_BYTES)
    uint64_t all_max;  // ...and all of them together (ZCHAN_LIMIT_QUEUED_BYTES)
    uint64_t all;      // what they hold
} zchan__bytes_t;

//  What holding msg costs against the byte limits: its size and the overhead.
uint64_t zchan__msg_cost(const zmq_msg_t *msg);

//  Read by the hub's handlers and checker; written by channel.c only.
struct zchan__chan {
    char *key;
    zchan_kind_t kind;
    size_t capacity;
    bool resend_latest;
    bool closed;
    zchan__fifo_t queue; // anycast: not yet delivered; the first nacc are accepted
    size_t nacc;         // anycast: what counts against the capacity
    zchan__node_t *unacc; // the first node not accepted (NULL: none), unless...
    bool unacc_stale;     // ...the queue changed in the middle: find it again
    zchan__vec_t recv;  // receiver members, in join order
    zchan__vec_t send;  // sender members
    size_t rr;          // anycast: the receiver whose turn is next
    zmq_msg_t latest;
    bool has_latest;
    uint64_t sent, delivered, dropped, lost;
    uint64_t bytes;         // the bytes it holds: nodes, rings, latest
    zchan__bytes_t *budget; // its limits, and the total it also counts in
    const zchan__member_ops_t *ops;
    void *env; // passed to every op
};

//  A new open channel; key is copied. Its bytes count against budget (the
//  caller's, shared by its channels, outliving them). NULL if out of memory.
zchan__chan_t *zchan__chan_new(const char *key, zchan_kind_t kind, size_t capacity, bool resend_latest,
                               zchan__bytes_t *budget, const zchan__member_ops_t *ops, void *env);
//  Frees ch, what it queues and its lists, and takes their bytes out of the
//  budget. Members still joined are not released: their owner frees them
//  first (zchan__member_fini).
void zchan__chan_destroy(zchan__chan_t **ch_p);
//  Frees what member m holds (inflight, ring) without telling anyone, and
//  takes its bytes out of its channel's count.
void zchan__member_fini(zchan__member_t *m);

//  Joins m (zeroed by its owner, token set) to open channel ch as a sender
//  or a receiver. A broadcast receiver gets a ring of limit (>= 1), with the
//  latest message first if the channel keeps it. 0, or ZCHAN_ENOMEM: m is
//  then not joined (and not released).
int zchan__chan_join(zchan__chan_t *ch, zchan__member_t *m, bool receiver, size_t limit);
//  m leaves gracefully. A receiver first reports consumed messages consumed
//  (anycast), then hands back the rest at the front of the queue. Releases m.
void zchan__chan_leave(zchan__chan_t *ch, zchan__member_t *m, uint64_t consumed);
//  m's connection is gone: a sender leaves as if it had detached; a
//  receiver is dropped, what it held counted lost (and logged, if anything).
//  m is released; the channel then serves the others.
void zchan__chan_gone(zchan__chan_t *ch, zchan__member_t *m);

//  Sender s sends payload (an anycast one is moved into the queue; a
//  broadcast one copied into each ring). 0 taken; ZCHAN_ECLOSED the channel
//  is closed (counted lost); ZCHAN_EPROTO beyond the sender's credit
//  (dropped, not counted: the sender ignores its credit); ZCHAN_ELIMIT an
//  anycast message over a byte limit (counted lost, refused to s);
//  ZCHAN_ENOMEM (counted lost, logged).
int zchan__chan_data(zchan__chan_t *ch, zchan__member_t *s, zmq_msg_t *payload);
//  Receiver r reports consumed messages consumed (anycast) and grants grant
//  more credit (capped: its credit and what it holds are at most
//  ZCHAN_WINDOW_MAX together); the channel then hands it what it can.
void zchan__chan_credit(zchan__chan_t *ch, zchan__member_t *r, uint64_t consumed, uint64_t grant);
//  Receiver r takes the next message for it straight out of the channel,
//  consumed at once (a party in the hub's own process, waiting in a read:
//  src/local.h): the head of an anycast queue that is accepted (or any, at
//  capacity 0 or after a close: taking it accepts it), or the oldest of a
//  broadcast receiver's ring. Moves it into *out with r's dropped count; its
//  place in the capacity is free at once. false if there is none.
bool zchan__chan_take(zchan__chan_t *ch, zchan__member_t *r, zmq_msg_t *out, uint64_t *dropped);
//  Whether zchan__chan_take would take a message. Never changes anything.
bool zchan__chan_takeable(const zchan__chan_t *ch, const zchan__member_t *r);
//  Removes sender s's messages not yet accepted (a rendezvous send that
//  timed out). true if there were any.
bool zchan__chan_cancel(zchan__chan_t *ch, zchan__member_t *s);
//  Closes ch (again: no-op).
void zchan__chan_close(zchan__chan_t *ch);

//  How many deliveries and CLOSED notices still wait for receivers (queued
//  messages of a channel without receivers are not counted).
uint64_t zchan__chan_pending(const zchan__chan_t *ch);
//  Messages waiting: the queue (anycast) or the fullest ring (broadcast).
size_t zchan__chan_depth(const zchan__chan_t *ch);
//  Checks ch's bookkeeping, and that of a member joined to it: NULL if
//  consistent, else what is not. For checkers (chancheck.c).
const char *zchan__chan_check(const zchan__chan_t *ch);
const char *zchan__member_check(const zchan__member_t *m);

#endif
