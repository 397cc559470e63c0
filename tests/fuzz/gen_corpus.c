/*  gen_corpus.c: writes the seed corpus of the fuzz targets from real
    messages, made by zchan's own packers and a real context:

        gen_corpus DIR      (writes DIR/fuzz_header, DIR/fuzz_hub, ...)

    tests/fuzz/corpus was made this way. Seeds are small and named after what
    they hold. Regression inputs found by fuzzing are added by hand, as
    DIR/TARGET/regress-*.
*/
#include "fuzzutil.h"
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static char s_dir[512];
static int s_count;

static void s_write(const char *target, const char *name, const void *p, size_t n)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", s_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", s_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    s_count++;
}

// ---------------------------------------------------------------------------
// Headers

//  A header with up to 6 fields: 'u' uint, 's' str, 'b' bool.
static void s_hdr(zchan__out_t *o, int type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    zchan__out_init(o, 1 + strlen(fmt), type);
    for (const char *f = fmt; *f; f++)
        if (*f == 'u')
            zchan__out_u64(o, va_arg(ap, uint64_t));
        else if (*f == 's')
            zchan__out_str(o, va_arg(ap, const char *));
        else
            zchan__out_bool(o, va_arg(ap, int));
    va_end(ap);
}

#define H1 ((uint64_t) 1 << 32) // the first handle of a fresh hub: generation 1, slot 0
#define H2 (H1 | 1)
#define H3 (H1 | 2)
#define V ((uint64_t) ZCHAN_PROTO_VERSION)

static void s_headers(zchan_ctx_t *ctx)
{
    struct {
        const char *name;
        zchan__out_t o;
    } h[20];
    int n = 0;
    h[n].name = "create", s_hdr(&h[n++].o, ZCHAN__CREATE, "usuubu", (uint64_t) 1, "jobs", (uint64_t) 1, (uint64_t) 10, 0, V);
    h[n].name = "open", s_hdr(&h[n++].o, ZCHAN__OPEN, "usu", (uint64_t) 2, "jobs", V);
    h[n].name = "close", s_hdr(&h[n++].o, ZCHAN__CLOSE, "us", (uint64_t) 3, "jobs");
    h[n].name = "attach_s", s_hdr(&h[n++].o, ZCHAN__ATTACH_S, "usu", (uint64_t) 4, "jobs", V);
    h[n].name = "attach_r", s_hdr(&h[n++].o, ZCHAN__ATTACH_R, "usuu", (uint64_t) 5, "jobs", (uint64_t) 50, V);
    h[n].name = "data", s_hdr(&h[n++].o, ZCHAN__DATA, "u", H1);
    h[n].name = "flush", s_hdr(&h[n++].o, ZCHAN__FLUSH, "uu", (uint64_t) 7, H1);
    h[n].name = "credit", s_hdr(&h[n++].o, ZCHAN__CREDIT, "uuu", H2, (uint64_t) 8, (uint64_t) 16);
    h[n].name = "detach", s_hdr(&h[n++].o, ZCHAN__DETACH, "uuu", (uint64_t) 9, H2, (uint64_t) 3);
    h[n].name = "cancel", s_hdr(&h[n++].o, ZCHAN__CANCEL, "uu", (uint64_t) 10, H1);
    h[n].name = "stat", s_hdr(&h[n++].o, ZCHAN__STAT, "us", (uint64_t) 11, "jobs");
    h[n].name = "ping", s_hdr(&h[n++].o, ZCHAN__PING, "u", (uint64_t) 12);
    h[n].name = "reply_attach", s_hdr(&h[n++].o, ZCHAN__REPLY, "uuuuub", (uint64_t) 4, (uint64_t) 0, H1, (uint64_t) 1, (uint64_t) 16, 0);
    h[n].name = "ack", s_hdr(&h[n++].o, ZCHAN__ACK, "u", (uint64_t) 3);
    h[n].name = "deliver", s_hdr(&h[n++].o, ZCHAN__DELIVER, "u", (uint64_t) 0);
    h[n].name = "closed", s_hdr(&h[n++].o, ZCHAN__CLOSED, "");
    //  The reply to CREATE and OPEN ends with the hub's info map.
    h[n].name = "reply_create";
    s_hdr(&h[n].o, ZCHAN__REPLY, "uuuub", (uint64_t) 1, (uint64_t) 0, (uint64_t) 1, (uint64_t) 10, 0);
    h[n].o.sbuf.data[0] = (char) 0x97; // seven fields: the map follows
    pthread_mutex_lock(&ctx->lock);
    zchan__hubinfo_pack(&h[n++].o.pk, &ctx->info);
    pthread_mutex_unlock(&ctx->lock);
    h[n].name = "reply_stat";
    s_hdr(&h[n].o, ZCHAN__REPLY, "uu", (uint64_t) 11, (uint64_t) 0);
    h[n].o.sbuf.data[0] = (char) 0x94;
    msgpack_pack_map(&h[n].o.pk, 2);
    zchan__out_str(&h[n].o, "kind");
    zchan__out_u64(&h[n].o, 1);
    zchan__out_str(&h[n].o, "closed");
    zchan__out_u64(&h[n++].o, 0);
    for (int i = 0; i < n; i++) {
        s_write("fuzz_header", h[i].name, h[i].o.sbuf.data, h[i].o.sbuf.size);
        zchan__out_fini(&h[i].o);
    }
}

// ---------------------------------------------------------------------------
// Conversations with a hub (the input format of fuzz_hub.c)

typedef struct {
    unsigned char buf[4096];
    size_t n;
} conv_t;

static void s_bytes(conv_t *c, const void *p, size_t n)
{
    if (c->n + n + 3 > sizeof c->buf) {
        fprintf(stderr, "gen_corpus: conversation too long\n");
        exit(1);
    }
    if (n >= 255) {
        c->buf[c->n++] = 255;
        c->buf[c->n++] = (unsigned char) (n >> 8);
        c->buf[c->n++] = (unsigned char) n;
    } else
        c->buf[c->n++] = (unsigned char) n;
    memcpy(c->buf + c->n, p, n);
    c->n += n;
}

//  Peer `peer` (0-2 connected, 3 gone) sends header o (consumed), with a
//  payload if payload is not NULL.
static void s_send(conv_t *c, int peer, zchan__out_t *o, const zchan_msg_t *payload_msg)
{
    c->buf[c->n++] = (unsigned char) (peer | (payload_msg ? 1 << 2 : 0));
    s_bytes(c, o->sbuf.data, o->sbuf.size);
    zchan__out_fini(o);
    if (payload_msg) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zchan__msg_to_frame((zchan_msg_t *) payload_msg, &f, false) != 0)
            exit(1);
        s_bytes(c, zmq_msg_data(&f), zmq_msg_size(&f));
        zmq_msg_close(&f);
    }
}

static zchan_msg_t *s_payload(int i)
{
    zchan_msg_t *m = zchan_msg_new();
    msgpack_packer *pk = zchan_msg_packer(m);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str(pk, 2);
    msgpack_pack_str_body(pk, "id", 2);
    msgpack_pack_int(pk, i);
    msgpack_pack_str(pk, 4);
    msgpack_pack_str_body(pk, "text", 4);
    msgpack_pack_str(pk, 5);
    msgpack_pack_str_body(pk, "hello", 5);
    return m;
}

#define SEND(c, peer, type, ...)                                                                   \
    do {                                                                                           \
        zchan__out_t o_;                                                                           \
        s_hdr(&o_, type, __VA_ARGS__);                                                             \
        s_send(c, peer, &o_, NULL);                                                                \
    } while (0)

static void s_data(conv_t *c, int peer, uint64_t handle, int i)
{
    zchan__out_t o;
    s_hdr(&o, ZCHAN__DATA, "u", handle);
    zchan_msg_t *m = s_payload(i);
    s_send(c, peer, &o, m);
    zchan_msg_destroy(&m);
}

static void s_hub(void)
{
    conv_t c;
    //  Anycast, capacity 2: a sender (peer 0), a receiver (peer 1), credit,
    //  consumption, flush, detach, stat and close.
    c.n = 0;
    SEND(&c, 0, ZCHAN__CREATE, "usuubu", (uint64_t) 1, "jobs", (uint64_t) 1, (uint64_t) 2, 0, V);
    SEND(&c, 0, ZCHAN__ATTACH_S, "usu", (uint64_t) 2, "jobs", V);
    SEND(&c, 1, ZCHAN__ATTACH_R, "usuu", (uint64_t) 3, "jobs", (uint64_t) 0, V);
    for (int i = 0; i < 3; i++)
        s_data(&c, 0, H1, i);
    SEND(&c, 1, ZCHAN__CREDIT, "uuu", H2, (uint64_t) 0, (uint64_t) 4);
    SEND(&c, 1, ZCHAN__CREDIT, "uuu", H2, (uint64_t) 2, (uint64_t) 2);
    SEND(&c, 0, ZCHAN__FLUSH, "uu", (uint64_t) 4, H1);
    SEND(&c, 1, ZCHAN__DETACH, "uuu", (uint64_t) 5, H2, (uint64_t) 1);
    SEND(&c, 2, ZCHAN__STAT, "us", (uint64_t) 6, "jobs");
    SEND(&c, 2, ZCHAN__CLOSE, "us", (uint64_t) 7, "jobs");
    SEND(&c, 0, ZCHAN__DETACH, "uuu", (uint64_t) 8, H1, (uint64_t) 0);
    s_write("fuzz_hub", "anycast", c.buf, c.n);

    //  Broadcast with resend_latest: two receivers with small rings, drops,
    //  close while one still holds messages.
    c.n = 0;
    SEND(&c, 0, ZCHAN__CREATE, "usuubu", (uint64_t) 1, "news", (uint64_t) 2, (uint64_t) 0, 1, V);
    SEND(&c, 0, ZCHAN__ATTACH_S, "usu", (uint64_t) 2, "news", V);
    s_data(&c, 0, H1, 0);
    SEND(&c, 1, ZCHAN__ATTACH_R, "usuu", (uint64_t) 3, "news", (uint64_t) 2, V);
    SEND(&c, 2, ZCHAN__ATTACH_R, "usuu", (uint64_t) 4, "news", (uint64_t) 1, V);
    for (int i = 1; i < 4; i++)
        s_data(&c, 0, H1, i);
    SEND(&c, 1, ZCHAN__CREDIT, "uuu", H2, (uint64_t) 0, (uint64_t) 16);
    SEND(&c, 2, ZCHAN__CLOSE, "us", (uint64_t) 5, "news");
    SEND(&c, 2, ZCHAN__CREDIT, "uuu", H3, (uint64_t) 0, (uint64_t) 16);
    SEND(&c, 2, ZCHAN__DETACH, "uuu", (uint64_t) 6, H3, (uint64_t) 0);
    SEND(&c, 2, ZCHAN__STAT, "us", (uint64_t) 7, "news");
    s_write("fuzz_hub", "broadcast", c.buf, c.n);

    //  Rendezvous (capacity 0): a send cancelled, then one taken.
    c.n = 0;
    SEND(&c, 0, ZCHAN__CREATE, "usuubu", (uint64_t) 1, "meet", (uint64_t) 1, (uint64_t) 0, 0, V);
    SEND(&c, 0, ZCHAN__ATTACH_S, "usu", (uint64_t) 2, "meet", V);
    s_data(&c, 0, H1, 0);
    SEND(&c, 0, ZCHAN__CANCEL, "uu", (uint64_t) 3, H1);
    s_data(&c, 0, H1, 1);
    SEND(&c, 1, ZCHAN__ATTACH_R, "usuu", (uint64_t) 4, "meet", (uint64_t) 0, V);
    SEND(&c, 1, ZCHAN__CREDIT, "uuu", H2, (uint64_t) 0, (uint64_t) 1);
    SEND(&c, 0, ZCHAN__CANCEL, "uu", (uint64_t) 5, H1);
    SEND(&c, 1, ZCHAN__CREDIT, "uuu", H2, (uint64_t) 1, (uint64_t) 0);
    s_write("fuzz_hub", "rendezvous", c.buf, c.n);

    //  Receivers that go away: one gone (peer 3) while messages wait, one
    //  that detaches gracefully after the close, holding messages. (The hub
    //  lost count of its used capacity there: zchan__hub_check found it.)
    c.n = 0;
    SEND(&c, 0, ZCHAN__CREATE, "usuubu", (uint64_t) 1, "work", (uint64_t) 1, (uint64_t) 4, 0, V);
    SEND(&c, 0, ZCHAN__ATTACH_S, "usu", (uint64_t) 2, "work", V);
    SEND(&c, 3, ZCHAN__ATTACH_R, "usuu", (uint64_t) 3, "work", (uint64_t) 0, V);
    SEND(&c, 1, ZCHAN__ATTACH_R, "usuu", (uint64_t) 4, "work", (uint64_t) 0, V);
    s_data(&c, 0, H1, 0);
    s_data(&c, 0, H1, 1);
    SEND(&c, 3, ZCHAN__CREDIT, "uuu", H2, (uint64_t) 0, (uint64_t) 4);
    SEND(&c, 1, ZCHAN__CREDIT, "uuu", H3, (uint64_t) 0, (uint64_t) 4);
    SEND(&c, 2, ZCHAN__ATTACH_R, "usuu", (uint64_t) 5, "work", (uint64_t) 0, V);
    SEND(&c, 2, ZCHAN__CLOSE, "us", (uint64_t) 6, "work");
    SEND(&c, 1, ZCHAN__DETACH, "uuu", (uint64_t) 7, H3, (uint64_t) 0);
    SEND(&c, 2, ZCHAN__STAT, "us", (uint64_t) 8, "work");
    s_write("fuzz_hub", "gone", c.buf, c.n);

    //  What the hub drops or refuses: bad frame counts, a non-array header,
    //  an unknown type, DATA and CREDIT from strangers, a bad version.
    c.n = 0;
    c.buf[c.n++] = 2 << 2; // no frame after the routing id
    c.buf[c.n++] = 3 << 2; // three
    s_bytes(&c, "\x92\x0c\x01", 3);
    s_bytes(&c, "", 0);
    s_bytes(&c, "", 0);
    c.buf[c.n++] = 0;
    s_bytes(&c, "\xdd\xff\xff\xff\xff", 5);
    SEND(&c, 0, 40, "u", (uint64_t) 1);
    s_data(&c, 1, H1, 0);
    SEND(&c, 1, ZCHAN__CREDIT, "uuu", H1, (uint64_t) 0, (uint64_t) 1);
    SEND(&c, 1, ZCHAN__OPEN, "usu", (uint64_t) 2, "nope", (uint64_t) 2);
    SEND(&c, 1, ZCHAN__PING, "u", (uint64_t) 3);
    //  A key with a zero byte (refused: it would alias the key before it).
    zchan__out_t o;
    zchan__out_init(&o, 7, ZCHAN__CREATE);
    zchan__out_u64(&o, 4);
    zchan__out_strn(&o, "a\0b", 3);
    zchan__out_u64(&o, 1);
    zchan__out_u64(&o, 1);
    zchan__out_bool(&o, false);
    zchan__out_u64(&o, V);
    s_send(&c, 1, &o, NULL);
    s_write("fuzz_hub", "bad", c.buf, c.n);
}

// ---------------------------------------------------------------------------
// References and payloads

//  The ext body of msg's value, which is a reference.
static void s_write_ref(const char *name, zchan_msg_t *msg)
{
    const msgpack_object *o = zchan_msg_object(msg);
    if (!o || o->type != MSGPACK_OBJECT_EXT) {
        fprintf(stderr, "gen_corpus: not a reference\n");
        exit(1);
    }
    s_write("fuzz_ref", name, o->via.ext.ptr, o->via.ext.size);
}

static void s_write_payload(const char *name, zchan_msg_t *msg)
{
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zchan__msg_to_frame(msg, &f, false) != 0) {
        fprintf(stderr, "gen_corpus: %s is not one value\n", name);
        exit(1);
    }
    s_write("fuzz_payload", name, zmq_msg_data(&f), zmq_msg_size(&f));
    zmq_msg_close(&f);
}

static void s_refs_and_payloads(zchan_ctx_t *ctx)
{
    zchan_t *any = zchan_anycast_new(ctx, NULL, 10);
    zchan_t *bc = zchan_broadcast_new(ctx, "inproc://news", true);
    if (!any || !bc) {
        fprintf(stderr, "gen_corpus: cannot make channels: %s\n", zchan_strerror(zchan_errno()));
        exit(1);
    }
    zchan_msg_t *m = zchan_msg_new();
    zchan_msg_pack_chan(m, any);
    s_write_ref("anycast_inproc", m);
    zchan_msg_destroy(&m);
    if (zchan_ctx_bind(ctx, "tcp://127.0.0.1:0") == 0) {
        m = zchan_msg_new();
        zchan_msg_pack_chan(m, bc);
        s_write_ref("broadcast_tcp", m);
        zchan_msg_destroy(&m);
    }
    //  docs/PROTOCOL.md 15.3, a reference from another host's process.
    static const unsigned char doc[] = {
        0x96, 0x01, 0x01, 0xa4, 'j', 'o', 'b', 's', 0xa4, 'j', 'o', 'b', 's', 0xb9, 't', 'c', 'p', ':',
        '/', '/', '1', '2', '7', '.', '0', '.', '0', '.', '1', ':', '5', '5', '5', '5', '/', 'j', 'o', 'b', 's',
        0x84, 0xa4, 'h', 'o', 's', 't', 0xa6, 'h', 'o', 's', 't', '-', 'a', 0xa4, 'p', 'r', 'o', 'c', 0xb4,
        'h', 'o', 's', 't', '-', 'a', '/', '7', '6', '4', '3', '/', '7', '0', 'b', '5', 'b', 'c', '1', '6',
        0xa3, 'h', 'u', 'b', 0xb6, 'h', 'o', 's', 't', '-', 'a', '/', '7', '6', '4', '3', '/', '7', '0', 'b',
        '5', 'b', 'c', '1', '6', '/', '1', 0xa3, 'l', 'o', 'c', 0x93, 0xb4, 'i', 'n', 'p', 'r', 'o', 'c', ':',
        '/', '/', 'z', 'c', 'h', 'a', 'n', '-', 'h', 'u', 'b', '-', '1', 0xbc, 'i', 'p', 'c', ':', '/', '/',
        '/', 't', 'm', 'p', '/', 'z', 'c', '/', 'h', 'u', 'b', '-', '7', '6', '4', '3', '-', '1', '.', 'h',
        'u', 'b', 0xb4, 't', 'c', 'p', ':', '/', '/', '1', '2', '7', '.', '0', '.', '0', '.', '1', ':', '5',
        '5', '5', '5'};
    s_write("fuzz_ref", "protocol_doc", doc, sizeof doc);

    //  Payloads: the protocol's example; a reference inside a request (as
    //  request/reply does); most msgpack types; deep nesting.
    m = s_payload(7);
    s_write_payload("hello", m);
    zchan_msg_destroy(&m);

    m = zchan_msg_new();
    msgpack_packer *pk = zchan_msg_packer(m);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str(pk, 5);
    msgpack_pack_str_body(pk, "reply", 5);
    zchan_msg_pack_chan(m, any);
    msgpack_pack_str(pk, 4);
    msgpack_pack_str_body(pk, "args", 4);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 6);
    msgpack_pack_int(pk, 7);
    s_write_payload("request_with_ref", m);
    zchan_msg_destroy(&m);

    m = zchan_msg_new();
    pk = zchan_msg_packer(m);
    msgpack_pack_array(pk, 14);
    msgpack_pack_nil(pk);
    msgpack_pack_true(pk);
    msgpack_pack_int64(pk, INT64_MIN);
    msgpack_pack_uint64(pk, UINT64_MAX);
    msgpack_pack_float(pk, 0.1f);
    msgpack_pack_double(pk, -0.0);
    msgpack_pack_double(pk, 1e300);
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "\xff\x00z", 3); // not UTF-8
    msgpack_pack_bin(pk, 3);
    msgpack_pack_bin_body(pk, "\x00\x01\x02", 3);
    msgpack_pack_ext(pk, 2, 5);
    msgpack_pack_ext_body(pk, "ab", 2);
    msgpack_pack_map(pk, 2); // keys JSON cannot show as an object
    msgpack_pack_int(pk, 1);
    msgpack_pack_nil(pk);
    msgpack_pack_str(pk, 2);
    msgpack_pack_str_body(pk, "$x", 2);
    msgpack_pack_nil(pk);
    msgpack_pack_str(pk, 6);
    msgpack_pack_str_body(pk, "tab\t\"\\", 6);
    msgpack_pack_ext(pk, 3, ZCHAN_EXT_REF); // a reference that is not one
    msgpack_pack_ext_body(pk, "\x91\x01\x02", 3);
    msgpack_pack_double(pk, 0.0 / 0.0);
    s_write_payload("types", m);
    zchan_msg_destroy(&m);

    m = zchan_msg_new();
    pk = zchan_msg_packer(m);
    for (int i = 0; i < 31; i++)
        msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 0);
    s_write_payload("deep", m);
    zchan_msg_destroy(&m);

    zchan_destroy(&any);
    zchan_destroy(&bc);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    snprintf(s_dir, sizeof s_dir, "%s", argv[1]);
    mkdir(s_dir, 0755);
    zchan_ctx_t *ctx = fz_ctx();
    s_headers(ctx);
    s_hub();
    s_refs_and_payloads(ctx);
    printf("gen_corpus: %d files in %s\n", s_count, s_dir);
    return 0;
}
