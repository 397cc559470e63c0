/*  b_rabbit.c: RabbitMQ through rabbitmq-server, AMQP 0-9-1 with
    rabbitmq-c (brokerbench.h).

    The settings of a work queue that loses nothing while the broker runs,
    with the broker's own flow control and no disk (zchan keeps messages in
    memory too): transient messages (no delivery mode), a non-durable queue,
    consumers with manual acks and a prefetch (basic.qos, --prefetch,
    default 1000) so that the broker keeps a window of messages on the way
    to each consumer, acked cumulatively (multiple) every --ack-every
    (default prefetch / 4), as zchan's receivers report consumption in
    batches. A message a consumer has not acked goes back to the queue if it
    dies: that is the "no loss" a user of a RabbitMQ work queue runs with.
    The publisher uses no confirms: the broker throttles it through TCP
    (credit flow) instead, and its flush is a synchronous method on the same
    channel (basic.qos), answered after the broker has handled every publish
    before it.

    anycast:   queue NAME (auto-delete), published through the default
               exchange with routing key NAME.
    broadcast: fanout exchange NAME (auto-delete); each receiver declares
               its own server-named exclusive queue and binds it.
*/
#define _GNU_SOURCE
#include "brokerbench.h"
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#define CHAN 1

typedef struct {
    amqp_connection_state_t conn;
    bool open;            // channel CHAN is open
    const char *name;
    bb_workload_t wl;
    long ack_every, unacked;
    uint64_t last_tag;
} s_state_t;

static const char *s_method_name(amqp_method_number_t id)
{
    const char *n = amqp_method_name(id);
    return n ? n : "unknown method";
}

static int s_reply_fail(char *err, size_t errn, const char *what, amqp_rpc_reply_t r)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(err, errn, "%s: no reply", what);
        break;
    case AMQP_RESPONSE_NONE:
        snprintf(err, errn, "%s: missing RPC reply", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(err, errn, "%s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD || r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *c = r.reply.decoded; // the same layout for both
            snprintf(err, errn, "%s: server closed the %s: %u %.*s", what,
                     r.reply.id == AMQP_CONNECTION_CLOSE_METHOD ? "connection" : "channel", c->reply_code,
                     (int) c->reply_text.len, (const char *) c->reply_text.bytes);
        } else
            snprintf(err, errn, "%s: server error (%s)", what, s_method_name(r.reply.id));
        break;
    }
    return -1;
}

//  The last RPC's reply: 0 if normal.
static int s_check(s_state_t *st, const char *what, char *err, size_t errn)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(st->conn);
    return r.reply_type == AMQP_RESPONSE_NORMAL ? 0 : s_reply_fail(err, errn, what, r);
}

static int s_connect(s_state_t *st, const char *url, char *err, size_t errn)
{
    char host[256];
    int port;
    if (bb_host_port(url, host, sizeof host, &port) != 0) {
        snprintf(err, errn, "%s: not amqp://HOST:PORT", url);
        return -1;
    }
    if (!(st->conn = amqp_new_connection())) {
        snprintf(err, errn, "amqp_new_connection: out of memory");
        return -1;
    }
    amqp_socket_t *sock = amqp_tcp_socket_new(st->conn);
    if (!sock) {
        snprintf(err, errn, "amqp_tcp_socket_new: out of memory");
        return -1;
    }
    struct timeval tv = {5, 0};
    int rc = amqp_socket_open_noblock(sock, host, port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, errn, "connect %s:%d: %s", host, port, amqp_error_string2(rc));
        return -1;
    }
    amqp_rpc_reply_t r = amqp_login(st->conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return s_reply_fail(err, errn, "login", r);
    amqp_channel_open(st->conn, CHAN);
    if (s_check(st, "channel.open", err, errn) != 0)
        return -1;
    st->open = true;
    return 0;
}

static int s_recv_setup(void *vst, const bb_params_t *p, char *err, size_t errn)
{
    s_state_t *st = vst;
    st->wl = p->wl;
    st->ack_every = p->ack_every;
    if (s_connect(st, p->url, err, errn) != 0)
        return -1;
    amqp_bytes_t queue;
    if (p->wl == BW_ANYCAST) {
        amqp_queue_declare(st->conn, CHAN, amqp_cstring_bytes(p->name), 0, 0, 0, 1, amqp_empty_table);
        if (s_check(st, "queue.declare", err, errn) != 0)
            return -1;
        queue = amqp_cstring_bytes(p->name);
    } else {
        amqp_exchange_declare(st->conn, CHAN, amqp_cstring_bytes(p->name), amqp_cstring_bytes("fanout"), 0, 0, 1, 0,
                              amqp_empty_table);
        if (s_check(st, "exchange.declare", err, errn) != 0)
            return -1;
        amqp_queue_declare_ok_t *ok = amqp_queue_declare(st->conn, CHAN, amqp_empty_bytes, 0, 0, 1, 1,
                                                         amqp_empty_table);
        if (s_check(st, "queue.declare", err, errn) != 0 || !ok)
            return -1;
        queue = amqp_bytes_malloc_dup(ok->queue);
        if (!queue.bytes) {
            snprintf(err, errn, "out of memory");
            return -1;
        }
        amqp_queue_bind(st->conn, CHAN, queue, amqp_cstring_bytes(p->name), amqp_empty_bytes, amqp_empty_table);
        if (s_check(st, "queue.bind", err, errn) != 0) {
            amqp_bytes_free(queue);
            return -1;
        }
    }
    int rc = 0;
    amqp_basic_qos(st->conn, CHAN, 0, (uint16_t) p->prefetch, 0);
    if (s_check(st, "basic.qos", err, errn) != 0)
        rc = -1;
    if (rc == 0) {
        amqp_basic_consume(st->conn, CHAN, queue, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
        rc = s_check(st, "basic.consume", err, errn);
    }
    if (p->wl == BW_BROADCAST)
        amqp_bytes_free(queue);
    return rc;
}

//  Acks every delivery up to the last one received. 0 or -1.
static int s_ack(s_state_t *st, char *err, size_t errn)
{
    if (!st->unacked)
        return 0;
    int rc = amqp_basic_ack(st->conn, CHAN, st->last_tag, 1);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, errn, "basic.ack: %s", amqp_error_string2(rc));
        return -1;
    }
    st->unacked = 0;
    return 0;
}

static bb_recv_t s_recv(void *vst, const bb_params_t *p, int timeout_ms, bool *good, char *err, size_t errn)
{
    s_state_t *st = vst;
    amqp_envelope_t env;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    amqp_maybe_release_buffers(st->conn);
    amqp_rpc_reply_t r = amqp_consume_message(st->conn, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        *good = bb_wire_ok(env.message.body.bytes, env.message.body.len, p->size);
        st->last_tag = env.delivery_tag;
        st->unacked++;
        amqp_destroy_envelope(&env);
        if (st->unacked >= st->ack_every && s_ack(st, err, errn) != 0)
            return BR_ERROR;
        return BR_MSG;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
        return s_ack(st, err, errn) == 0 ? BR_TIMEOUT : BR_ERROR;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        //  A frame other than a delivery: the broker cancelled the consumer
        //  or closed the channel. Say which.
        amqp_frame_t f;
        if (amqp_simple_wait_frame(st->conn, &f) == AMQP_STATUS_OK && f.frame_type == AMQP_FRAME_METHOD)
            snprintf(err, errn, "the broker sent %s", s_method_name(f.payload.method.id));
        else
            snprintf(err, errn, "unexpected frame from the broker");
        return BR_ERROR;
    }
    s_reply_fail(err, errn, "basic.consume", r);
    return BR_ERROR;
}

static uint64_t s_dropped(void *vst)
{
    (void) vst;
    return 0;
}

static int s_send_setup(void *vst, const bb_params_t *p, char *err, size_t errn)
{
    s_state_t *st = vst;
    st->name = p->name;
    st->wl = p->wl;
    return s_connect(st, p->url, err, errn);
}

static int s_send(void *vst, const void *msg, size_t n, char *err, size_t errn)
{
    s_state_t *st = vst;
    amqp_bytes_t body = {n, (void *) msg};
    amqp_bytes_t exchange = st->wl == BW_ANYCAST ? amqp_empty_bytes : amqp_cstring_bytes(st->name);
    amqp_bytes_t key = st->wl == BW_ANYCAST ? amqp_cstring_bytes(st->name) : amqp_empty_bytes;
    int rc = amqp_basic_publish(st->conn, CHAN, exchange, key, 0, 0, NULL, body);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, errn, "basic.publish: %s", amqp_error_string2(rc));
        return -1;
    }
    return 0;
}

static int s_flush(void *vst, char *err, size_t errn)
{
    s_state_t *st = vst;
    amqp_basic_qos(st->conn, CHAN, 0, 0, 0);
    return s_check(st, "flush (basic.qos)", err, errn);
}

static void s_teardown(void *vst)
{
    s_state_t *st = vst;
    if (!st->conn)
        return;
    char err[256];
    if (st->open) {
        s_ack(st, err, sizeof err);
        amqp_channel_close(st->conn, CHAN, AMQP_REPLY_SUCCESS);
        amqp_connection_close(st->conn, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(st->conn);
    st->conn = NULL;
}

static int s_probe(const char *url, char *err, size_t errn)
{
    s_state_t st;
    memset(&st, 0, sizeof st);
    int rc = s_connect(&st, url, err, errn);
    s_teardown(&st);
    return rc;
}

const bb_backend_t bb_rabbit = {
    .name = "rabbitmq",
    .state_size = sizeof(s_state_t),
    .recv_setup = s_recv_setup,
    .recv = s_recv,
    .dropped = s_dropped,
    .send_setup = s_send_setup,
    .send = s_send,
    .flush = s_flush,
    .teardown = s_teardown,
    .probe = s_probe,
};
