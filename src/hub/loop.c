/*  loop.c: the hub's actor. It binds the ROUTER, then sleeps in poll(2) on
    its pipe and its ROUTER, reads the ROUTER in bursts of up to HUB_BATCH
    messages (handlers.c takes each), sends the ACKs owed at the end of each
    burst (out.c), runs the checks of quiet receivers when due (peers.c finds
    them, the rules drop them), and answers its pipe's commands
    (zchan__hub_cmd_t, core.h: from ctx.c and hubctl.c).
*/
#include "hub.h"
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

int zchan__hub_init(hub_t *hub, zchan_ctx_t *ctx)
{
    memset(hub, 0, sizeof *hub);
    hub->kick_fd = -1;
    hub->scan_at = -1;
    hub->sweep_at = -1;
    hub->now_ms = zchan__now_ms();
    hub->ctx = ctx;
    //  Set before the hub starts, or (a threadless hub) by the caller's thread.
    zchan__hub_set_limits(hub);
    zchan__hdr_init(&hub->hdr);
    hub->conns = zhashx_new();
    if (zchan__chans_init(hub) != 0 || !hub->conns)
        return -1;
    return 0;
}

void zchan__hub_set_limits(hub_t *hub)
{
    memcpy(hub->limit, hub->ctx->limits, sizeof hub->limit);
    hub->budget.chan_max = hub->limit[ZCHAN_LIMIT_CHANNEL_BYTES];
    hub->budget.all_max = hub->limit[ZCHAN_LIMIT_QUEUED_BYTES];
}

void zchan__hub_fini(hub_t *hub)
{
    if (hub->share) {
        //  Local parties no longer reach this hub: their calls fail ECLOSED.
        pthread_mutex_lock(&hub->share->lock);
        hub->share->hub = NULL;
        hub->share->dead = true;
        pthread_mutex_unlock(&hub->share->lock);
        hub->share = NULL;
    }
    //  Members first: what they hold counts in their channels' bytes.
    for (size_t i = 0; i < hub->npeers; i++)
        if (hub->peers[i]->role != ROLE_FREE)
            zchan__member_fini(&hub->peers[i]->m);
    zchan__chans_fini(hub);
    zhashx_destroy(&hub->conns);
    zchan__peers_fini(hub);
    zchan__hub_local_fini(hub);
    zchan__hdr_fini(&hub->hdr);
    if (hub->router)
        zmq_close(hub->router);
}

void zchan__hub_member_gone(hub_t *hub, peer_t *p)
{
    zchan__chan_t *ch = p->m.ch;
    zchan__chan_gone(ch, &p->m); // p is released
    zchan__chans_reclaim(hub, ch);
}

//  Checks the receivers that hold messages and have been quiet long enough,
//  drops those found gone, and plans the next scan.
static void s_check_scan(hub_t *hub)
{
    hub->scan_at = -1;
    size_t pos = 0;
    int64_t next = -1;
    peer_t *p;
    while ((p = zchan__peers_scan(hub, &pos, &next)))
        zchan__hub_member_gone(hub, p);
}

//  Whether the router has messages not yet read.
static bool s_input_waiting(hub_t *hub)
{
    int ev = 0;
    return hub->router && zmq_getsockopt(hub->router, ZMQ_EVENTS, &ev, &(size_t){sizeof ev}) == 0
           && (ev & ZMQ_POLLIN);
}

//  Checks the connection of every attachment that has one (ipc and tcp, not
//  inproc), idle ones and senders included, drops those whose connection is
//  gone, and plans the next sweep. ZeroMQ closes a connection's descriptor
//  only after handing on what it read from it, so when one is found gone
//  while input waits, the drop waits one short retry: what that peer sent
//  before it went (a DETACH, DATA) is read first.
static void s_sweep(hub_t *hub)
{
    hub->sweep_at = -1;
    bool gone = zchan__peers_any_gone(hub), any = false;
    if (gone && !hub->sweep_retry && s_input_waiting(hub)) {
        hub->sweep_retry = true;
        hub->sweep_at = hub->now_ms + HUB_CHECK_FIRST_MS;
        return;
    }
    hub->sweep_retry = false;
    for (size_t idx = 0; idx < hub->npeers; idx++) {
        peer_t *p = hub->peers[idx];
        if (p->role == ROLE_FREE || p->fd < 0)
            continue;
        if (gone && zchan__peer_gone(p))
            zchan__hub_member_gone(hub, p);
        else
            any = true;
    }
    if (any)
        hub->sweep_at = hub->now_ms + HUB_SWEEP_MS;
}

void zchan__hub_timers(hub_t *hub)
{
    if (hub->scan_at >= 0 && hub->now_ms >= hub->scan_at) {
        s_check_scan(hub);
        zchan__hub_flush_acks(hub); // what went back may have been accepted
    }
    if (hub->sweep_at >= 0 && hub->now_ms >= hub->sweep_at) {
        s_sweep(hub);
        zchan__hub_flush_acks(hub);
    }
}

uint64_t zchan__hub_close_all_chans(hub_t *hub)
{
    hub->closing = true;
    for (zchan__chan_t *ch = zhashx_first(hub->chans); ch; ch = zhashx_next(hub->chans))
        zchan__chan_close(ch);
    //  Those nobody is attached to are reclaimed, out of the iteration.
    size_t n = 0;
    zchan__chan_t **done = malloc((zhashx_size(hub->chans) + 1) * sizeof *done);
    for (zchan__chan_t *ch = zhashx_first(hub->chans); ch && done; ch = zhashx_next(hub->chans))
        if (ch->send.n == 0 && ch->recv.n == 0)
            done[n++] = ch;
    for (size_t i = 0; i < n; i++)
        zchan__chans_reclaim(hub, done[i]);
    free(done);
    zchan__hub_flush_acks(hub);
    uint64_t pending = 0;
    for (zchan__chan_t *ch = zhashx_first(hub->chans); ch; ch = zhashx_next(hub->chans))
        pending += zchan__chan_pending(ch);
    return pending;
}

static void s_read_router(hub_t *hub)
{
    for (int i = 0; i < HUB_BATCH; i++) {
        zmq_msg_t frames[3];
        for (int k = 0; k < 3; k++)
            zmq_msg_init(&frames[k]);
        size_t n = 0;
        int rc = zchan__recv_frames(hub->router, frames, 3, &n, ZMQ_DONTWAIT);
        if (rc == 0) {
            zchan__hub_lock(hub);
            zchan__hub_dispatch(hub, frames, n);
            zchan__hub_unlock(hub);
        }
        for (int k = 0; k < 3; k++)
            zmq_msg_close(&frames[k]);
        if (rc != 0)
            break;
    }
    zchan__hub_lock(hub);
    zchan__hub_flush_acks(hub);
    zchan__hub_unlock(hub);
}

//  ZCHAN__HUB_BIND endpoint: replies rc and the bound endpoint.
static void s_on_bind(hub_t *hub, const char *endpoint)
{
    char bound[ZCHAN__EP_MAX] = "";
    int rc = 0;
    //  The sender of BIND holds ctx->pipe_lock, which guards max_msg_size.
    //  ZeroMQ copies the option into each listener when it binds.
    int64_t maxmsg = hub->ctx->max_msg_size;
    zmq_setsockopt(hub->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zchan__socket_heartbeat(hub->ctx, hub->router); // so are the heartbeat settings
    //  ...and CURVE: on for tcp once the context has a server certificate.
    if (zchan__curve_bind_opts(hub->ctx, hub->router, endpoint) != 0)
        rc = ZCHAN_ESYS;
    else if (zmq_bind(hub->router, endpoint) != 0) {
        zsys_error("zchan hub: cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        rc = zmq_errno() == EINVAL || zmq_errno() == EPROTONOSUPPORT ? ZCHAN_EINVAL : ZCHAN_ESYS;
    } else {
        size_t len = sizeof bound;
        zmq_getsockopt(hub->router, ZMQ_LAST_ENDPOINT, bound, &len);
    }
    zsock_send(hub->pipe, "is", rc, bound);
}

//  ZCHAN__HUB_CLOSEALL: closes every channel, refuses new ones from now on,
//  and replies 0 and the number of deliveries still pending. Idempotent:
//  zchan-relay repeats it to watch its receivers drain. The router then
//  lingers, so that what is queued still goes out when the hub stops.
static void s_on_close_all(hub_t *hub)
{
    uint64_t pending = zchan__hub_close_all_chans(hub);
    int linger = 1000;
    zmq_setsockopt(hub->router, ZMQ_LINGER, &linger, sizeof linger);
    zsock_send(hub->pipe, "i8", 0, pending);
}

//  ZCHAN__HUB_MONITOR endpoint: starts a ZeroMQ socket monitor of every
//  event on the router, at an inproc endpoint of the process's ZeroMQ
//  context; an empty endpoint stops it.
static void s_on_monitor(hub_t *hub, const char *endpoint)
{
    int rc = 0;
    if (zmq_socket_monitor(hub->router, *endpoint ? endpoint : NULL, *endpoint ? ZMQ_EVENT_ALL : 0) != 0) {
        zsys_error("zchan hub: cannot monitor on %s: %s", endpoint, zmq_strerror(zmq_errno()));
        rc = zmq_errno() == EINVAL || zmq_errno() == EPROTONOSUPPORT ? ZCHAN_EINVAL : ZCHAN_ESYS;
    }
    zsock_send(hub->pipe, "i", rc);
}

//  Takes one command off the pipe: false on "$TERM" (zactor_destroy) or if
//  the pipe is broken.
static bool s_on_pipe(hub_t *hub)
{
    char *cmd = NULL, *arg = NULL;
    if (zsock_recv(hub->pipe, "ss", &cmd, &arg) != 0)
        return false;
    bool go_on = true;
    if (!cmd || streq(cmd, "$TERM"))
        go_on = false;
    else {
        char *end;
        long c = strtol(cmd, &end, 10);
        switch (*end ? -1 : c) {
        case ZCHAN__HUB_BIND:
            if (arg)
                s_on_bind(hub, arg);
            break;
        case ZCHAN__HUB_CLOSEALL:
            zchan__hub_lock(hub);
            s_on_close_all(hub);
            zchan__hub_unlock(hub);
            break;
        case ZCHAN__HUB_MONITOR:
            if (arg)
                s_on_monitor(hub, arg);
            break;
        case ZCHAN__HUB_LIMITS:
            //  The sender of LIMITS holds ctx->pipe_lock, which guards the limits.
            zchan__hub_lock(hub);
            zchan__hub_set_limits(hub);
            zchan__hub_unlock(hub);
            zsock_send(hub->pipe, "i", 0);
            break;
        default: zsys_error("zchan hub: unknown pipe command %s", cmd);
        }
    }
    zstr_free(&cmd);
    zstr_free(&arg);
    return go_on;
}

void zchan__hub_actor(zsock_t *pipe, void *args)
{
    hub_t hub;
    int rc = zchan__hub_init(&hub, (zchan_ctx_t *) args);
    hub.pipe = pipe;
    hub.router = rc == 0 ? zchan__socket(hub.ctx, ZMQ_ROUTER) : NULL;
    rc = -1;
    if (hub.chans && hub.router) {
        //  Mandatory routing makes a send to a vanished peer fail, so the hub
        //  can take back what it would have lost. Credit keeps data far below
        //  the high-water mark.
        int one = 1, hwm = 4 * ZCHAN_WINDOW_MAX;
        zmq_setsockopt(hub.router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
        zmq_setsockopt(hub.router, ZMQ_SNDHWM, &hwm, sizeof hwm);
        rc = zmq_bind(hub.router, zchan__ctx_inproc(hub.ctx));
    }
    if (rc == 0 && hub.ctx->share) {
        //  The fast path: local parties share this hub's state under the
        //  context's lock, and kick it when remote peers are owed something.
        hub.kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (hub.kick_fd < 0) {
            zsys_error("zchan hub: cannot make its wake-up descriptor: %s", strerror(errno));
            rc = -1;
        } else {
            hub.thread = pthread_self();
            hub.share = hub.ctx->share;
            pthread_mutex_lock(&hub.share->lock);
            hub.share->hub = &hub;
            pthread_mutex_unlock(&hub.share->lock);
        }
    }
    zsock_signal(pipe, rc == 0 ? 0 : 1);
    if (rc != 0) {
        zchan__hub_fini(&hub);
        return;
    }
    //  The loop sleeps in poll(2) on the two sockets' ZMQ_FDs. zmq_poll would
    //  ask each socket for its events before and after sleeping, a system
    //  call each; here a wake-up costs the sleep, the read that finds the
    //  router empty, and one look at its events. ZMQ_FD is edge-triggered:
    //  the sockets are read until ZeroMQ says they are empty before sleeping.
    void *psock = zsock_resolve(pipe);
    struct pollfd pfds[3] = {{-1, POLLIN, 0}, {-1, POLLIN, 0}, {hub.kick_fd, POLLIN, 0}};
    size_t fl = sizeof pfds[0].fd;
    if (zmq_getsockopt(psock, ZMQ_FD, &pfds[0].fd, &fl) != 0
        || zmq_getsockopt(hub.router, ZMQ_FD, &pfds[1].fd, &(size_t){sizeof pfds[1].fd}) != 0) {
        zsys_error("zchan hub: cannot get the sockets' descriptors: %s", zmq_strerror(zmq_errno()));
        zchan__hub_fini(&hub);
        return;
    }
    bool check_pipe = true;
    unsigned busy = 0;
    while (true) {
        if (check_pipe) {
            check_pipe = false;
            int ev = 0;
            bool go_on = true;
            while (go_on && zmq_getsockopt(psock, ZMQ_EVENTS, &ev, &(size_t){sizeof ev}) == 0 && (ev & ZMQ_POLLIN))
                go_on = s_on_pipe(&hub);
            if (!go_on)
                break;
        }
        s_read_router(&hub);
        zchan__hub_lock(&hub);
        zchan__hub_timers(&hub);
        zchan__hub_unlock(&hub);
        //  Sending may have taken the router's wake-up: ask before sleeping.
        int ev = 0;
        if (zmq_getsockopt(hub.router, ZMQ_EVENTS, &ev, &(size_t){sizeof ev}) == 0 && (ev & ZMQ_POLLIN)) {
            hub.now_ms = zchan__now_ms();
            if (++busy % 16 == 0)
                check_pipe = true; // a busy router does not starve the pipe
            continue;
        }
        busy = 0;
        //  Sleeps until a message comes, or quiet receivers are due a check,
        //  or connections a sweep.
        int64_t wake = hub.scan_at < 0 || (hub.sweep_at >= 0 && hub.sweep_at < hub.scan_at) ? hub.sweep_at
                                                                                            : hub.scan_at;
        long timeout = wake < 0 ? -1 : wake > hub.now_ms ? (long) (wake - hub.now_ms) : 0;
        int prc = poll(pfds, hub.kick_fd >= 0 ? 3 : 2, timeout > INT32_MAX ? INT32_MAX : (int) timeout);
        hub.now_ms = zchan__now_ms();
        if (prc < 0 && errno != EINTR) {
            zsys_error("zchan hub: poll: %s", strerror(errno));
            break;
        }
        if (prc > 0 && pfds[0].revents)
            check_pipe = true;
        if (prc > 0 && pfds[2].revents) {
            //  Local parties' calls owe remote peers deliveries or ACKs.
            zchan__hub_lock(&hub);
            zchan__hub_unkick(&hub);
            zchan__hub_flush_acks(&hub);
            zchan__hub_unlock(&hub);
        }
    }
    zchan__hub_fini(&hub);
}
