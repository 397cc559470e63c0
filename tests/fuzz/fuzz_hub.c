/*  fuzz_hub.c: the hub's handling of what peers send, message by message.

    Each input is a whole conversation with a fresh hub (zchan__hub_new, no
    thread): a sequence of messages, each one

        ctl   one byte: bits 0-1 pick the routing id (0-2: a connected peer,
              3: one whose connection is gone); bits 2-3 the frames after it
              (0: a header, 1: a header and a payload, 2: none, 3: three)
        frame each: a length byte L, then L bytes (L = 255: a two-byte
              big-endian length follows), cut short at the end of the input

    The hub replies on a real ROUTER over inproc, with ZMQ_ROUTER_MANDATORY
    as in the hub, to three DEALERs, which are drained after each input. The
    fourth routing id is not connected: replies to it fail, as to a peer that
    vanished. Oracles, besides the sanitizers: zchan__hub_check after every
    message (the peer table, queues, used, nacc and unaccepted counts agree),
    and every message the hub sent is a header it could itself parse, of a
    hub-to-client type, with a payload exactly when it is a DELIVER.
*/
#include "fuzzutil.h"
#include <string.h>

#define NPEERS 3
#define MAX_MSGS 512

static const char *const s_rids[NPEERS + 1] = {"\x01peerA", "\x01peerB", "\x01peerC", "\x01gone!"};
static void *s_router;
static void *s_dealer[NPEERS];

//  Checks and drops everything the hub sent to the dealers.
static void s_drain(void)
{
    zchan__hdr_t h;
    zchan__hdr_init(&h);
    for (int d = 0; d < NPEERS; d++) {
        while (true) {
            zmq_msg_t frames[3];
            for (int k = 0; k < 3; k++)
                zmq_msg_init(&frames[k]);
            size_t n = 0;
            int rc = zchan__recv_frames(s_dealer[d], frames, 3, &n, ZMQ_DONTWAIT);
            if (rc == 0) {
                FZ_ASSERT(zchan__hdr_parse(&h, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0])) == 0,
                          "the hub sent a header it cannot parse");
                int type = zchan__hdr_type(&h);
                FZ_ASSERT(type >= ZCHAN__REPLY && type <= ZCHAN__CLOSING, "the hub sent type %d", type);
                FZ_ASSERT(n == (type == ZCHAN__DELIVER ? 2u : 1u), "type %d in %zu frames", type, n);
            }
            for (int k = 0; k < 3; k++)
                zmq_msg_close(&frames[k]);
            if (rc != 0)
                break;
        }
    }
    zchan__hdr_fini(&h);
}

//  Before the context goes (atexit runs this first): ZeroMQ's context waits
//  for its sockets.
static void s_close_sockets(void)
{
    for (int d = 0; d < NPEERS; d++)
        zmq_close(s_dealer[d]);
    zmq_close(s_router);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc, (void) argv;
    zchan_ctx_t *ctx = fz_ctx();
    s_router = zmq_socket(ctx->zctx, ZMQ_ROUTER);
    int one = 1, hwm = 4096, zero = 0;
    zmq_setsockopt(s_router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(s_router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s_router, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(s_router, "inproc://zchan-fuzz-hub") != 0) {
        fprintf(stderr, "fuzz_hub: bind: %s\n", zmq_strerror(zmq_errno()));
        abort();
    }
    for (int d = 0; d < NPEERS; d++) {
        s_dealer[d] = zmq_socket(ctx->zctx, ZMQ_DEALER);
        zmq_setsockopt(s_dealer[d], ZMQ_ROUTING_ID, s_rids[d], strlen(s_rids[d]));
        zmq_setsockopt(s_dealer[d], ZMQ_LINGER, &zero, sizeof zero);
        zmq_connect(s_dealer[d], "inproc://zchan-fuzz-hub");
        //  The router knows a peer once it has read from it.
        zmq_send(s_dealer[d], "hi", 2, 0);
        char buf[16];
        int timeout = 5000;
        zmq_setsockopt(s_router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        if (zmq_recv(s_router, buf, sizeof buf, 0) < 0 || zmq_recv(s_router, buf, sizeof buf, 0) != 2) {
            fprintf(stderr, "fuzz_hub: peer %d did not connect\n", d);
            abort();
        }
    }
    atexit(s_close_sockets);
    return 0;
}

static void s_frame(zmq_msg_t *f, const uint8_t *p, size_t n)
{
    zmq_msg_init_size(f, n);
    if (n)
        memcpy(zmq_msg_data(f), p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    zchan__hub_t *hub = zchan__hub_new(fz_ctx(), s_router);
    FZ_ASSERT(hub, "zchan__hub_new");
    size_t off = 0;
    static const size_t nframes_of[4] = {1, 2, 0, 3};
    for (int m = 0; m < MAX_MSGS && off < size; m++) {
        uint8_t ctl = data[off++];
        const char *rid = s_rids[ctl & 3];
        size_t nf = nframes_of[(ctl >> 2) & 3];
        zmq_msg_t frames[4];
        s_frame(&frames[0], (const uint8_t *) rid, strlen(rid));
        for (size_t k = 1; k <= nf; k++) {
            size_t len = off < size ? data[off++] : 0;
            if (len == 255) {
                len = off + 2 <= size ? (size_t) data[off] << 8 | data[off + 1] : 0;
                off = off + 2 <= size ? off + 2 : size;
            }
            if (len > size - off)
                len = size - off;
            s_frame(&frames[k], data + off, len);
            off += len;
        }
        zchan__hub_feed(hub, frames, nf + 1);
        for (size_t k = 0; k <= nf; k++)
            zmq_msg_close(&frames[k]);
        const char *bad = zchan__hub_check(hub);
        FZ_ASSERT(!bad, "after message %d: %s", m, bad);
    }
    zchan__hub_destroy(&hub);
    s_drain();
    return 0;
}
