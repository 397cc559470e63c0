/*  brokerbench.h: what the parts of zchan-brokerbench share (main.c says
    what it measures).

    - main.c:     the command line, the coordinator (one run: start the
                  receivers, then the sender, "go", collect), the worker loop
                  every backend runs through, --probe and --free-ports.
    - b_zchan.c:  a channel hosted by a zchan-relay process.
    - b_nats.c:   NATS (cnats, Debian's libnats-dev), when the build found it.
    - b_rabbit.c: RabbitMQ over AMQP 0-9-1 (rabbitmq-c, Debian's
                  librabbitmq-dev), when the build found it.
*/
#ifndef ZCHAN_BROKERBENCH_H_INCLUDED
#define ZCHAN_BROKERBENCH_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { BW_ANYCAST, BW_BROADCAST } bb_workload_t;

//  One worker's parameters (a receiver or the sender), as the coordinator
//  passes them on the worker's command line.
typedef struct {
    const char *url;    // the broker or relay: tcp://H:P, nats://H:P, amqp://H:P
    const char *name;   // this run's channel, subject, queue or exchange
    bb_workload_t wl;
    int id;             // receivers: 0..R-1; the sender: -1
    long count;         // messages sent (each receiver of the run expects them all)
    size_t size;        // payload bytes
    long capacity;      // zchan anycast capacity
    long prefetch;      // RabbitMQ basic.qos prefetch count (0: unlimited)
    long ack_every;     // RabbitMQ: a cumulative ack (multiple) every this many
    int stall_ms;       // a receive that gets nothing this long ends the run
} bb_params_t;

//  What a receive gave.
typedef enum { BR_MSG, BR_TIMEOUT, BR_CLOSED, BR_ERROR } bb_recv_t;

//  One backend. Each call may fail with a reason in err (errn bytes). The
//  state (state_size bytes, zeroed) lives in *st; teardown frees what setup
//  made, even half made, and is always called.
typedef struct {
    const char *name;     // as on the command line: zchan, nats, rabbitmq
    size_t state_size;
    //  Connects and, for a receiver, makes the subscription, queue or channel
    //  so that every message the sender sends from now on reaches it. 0 or -1.
    int (*recv_setup)(void *st, const bb_params_t *p, char *err, size_t errn);
    //  Waits up to timeout_ms for a message; on BR_MSG, *good says whether it
    //  is the payload (bb_payload_ok). BR_CLOSED: the stream ended (zchan).
    bb_recv_t (*recv)(void *st, const bb_params_t *p, int timeout_ms, bool *good, char *err, size_t errn);
    //  Messages the receiving side counted as dropped (NATS: the client's
    //  slow-consumer drops). 0 when the backend has no such count.
    uint64_t (*dropped)(void *st);
    int (*send_setup)(void *st, const bb_params_t *p, char *err, size_t errn);
    //  Sends one message of n bytes (the wire payload). 0 or -1.
    int (*send)(void *st, const void *msg, size_t n, char *err, size_t errn);
    //  After the last send: returns once the broker has taken every message
    //  sent (a round trip behind them). 0 or -1.
    int (*flush)(void *st, char *err, size_t errn);
    void (*teardown)(void *st);
    //  One connection and handshake to the broker at url, then nothing left
    //  open. 0 or -1 (--probe retries until its deadline).
    int (*probe)(const char *url, char *err, size_t errn);
} bb_backend_t;

extern const bb_backend_t bb_zchan;
#ifdef BB_HAVE_NATS
extern const bb_backend_t bb_nats;
#endif
#ifdef BB_HAVE_RABBIT
extern const bb_backend_t bb_rabbit;
#endif

//  The wire payload: a msgpack bin of size bytes, the bytes a zchan message
//  of the same payload carries (so every backend moves the same bytes).
//  bb_wire_make returns a malloc'ed buffer of *n bytes, NULL without memory.
void *bb_wire_make(size_t size, size_t *n);
//  The payload bytes alone (for zchan, which packs them itself).
void bb_payload_fill(char *buf, size_t size);
//  A wire message as bb_wire_make made it (header, size, first and last byte).
bool bb_wire_ok(const void *p, size_t n, size_t size);
//  The payload bytes as bb_payload_fill made them (size, first and last byte).
bool bb_payload_ok(const void *p, size_t n, size_t size);

//  "HOST:PORT" of a URL "SCHEME://HOST:PORT[/...]" into host (hostn bytes)
//  and *port. 0, or -1 if it is not of that form.
int bb_host_port(const char *url, char *host, size_t hostn, int *port);

#endif
