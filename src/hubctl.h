/*  hubctl.h: control of a context's hub beyond the public API, for
    zchan-relay (tools/zchan-relay.c). Internal: not installed, and it may
    change with the hub.
*/
#ifndef ZCHAN_HUBCTL_H_INCLUDED
#define ZCHAN_HUBCTL_H_INCLUDED

#include "zchan.h"

//  Closes every channel hosted by the hub of ctx, as zchan_close would for
//  each, and makes the hub refuse to create channels from now on (CREATE of a
//  new name gets ECLOSED; existing channels still answer, closed). Writes into
//  *pending how many deliveries and close notices still wait for receivers
//  (messages of channels without receivers are not counted). Call it again to
//  watch receivers drain: closing twice is harmless. After it, stopping the
//  hub lingers up to a second so that what is queued still goes out.
//  Blocks for one exchange with the hub thread. Returns 0 or ESYS.
int zchan__hub_close_all(zchan_ctx_t *ctx, uint64_t *pending);

//  Starts a ZeroMQ socket monitor of every event (ZMQ_EVENT_ALL) on the hub's
//  ROUTER, published at endpoint (an inproc:// one), to read with a ZMQ_PAIR
//  socket made in zchan__ctx_zmq(ctx). endpoint NULL stops the monitor: it
//  then sends ZMQ_EVENT_MONITOR_STOPPED. Read the PAIR until that event before
//  closing it (libzmq leaks events sent to a monitor reader already closed).
//  Returns 0, EINVAL or ESYS.
int zchan__hub_monitor(zchan_ctx_t *ctx, const char *endpoint);

//  The ZeroMQ context of ctx (process-wide, shared by every zchan context).
void *zchan__ctx_zmq(zchan_ctx_t *ctx);

//  Writes the i-th endpoint the hub has bound (as ZeroMQ reports it, the real
//  port included; index 0 is the hub's inproc endpoint) into out. Returns 0,
//  or ENOTFOUND past the last one.
int zchan__ctx_bound_at(zchan_ctx_t *ctx, int i, char *out, size_t n);

#endif
