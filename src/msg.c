/*  msg.c: messages and channel references.

    A message is either being built (msgpack-c's packer writing into an
    sbuffer) or received (a ZeroMQ frame). Decoding is lazy and zero-copy:
    strings, bins and exts in the object point into the message's bytes.
    A reference is the ext type ZCHAN_EXT_REF (its codec: wire_ref.c).
*/
#include "core.h"
#include <stdlib.h>
#include <string.h>

#define MSG_COPY_BELOW 256 // smaller payloads are copied, larger ones handed over
#define MSG_FIRST_ALLOC 128 // the packer's first buffer (msgpack-c would take 8 KiB)

struct zchan_msg_t {
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    zmq_msg_t frame;
    bool has_frame;
    msgpack_zone zone;
    msgpack_object obj;
    size_t decoded_size; // size of the bytes obj was decoded from, 0 if none
    bool zone_ready;
};

//  The packer's writer: msgpack_sbuffer_write, except that a write that does
//  not fit grows the buffer to what it needs when that is more than double:
//  a 1 MiB bin then takes 1 MiB, not the 2 MiB that doubling from a small
//  buffer would give (glibc maps blocks that large afresh each time, so
//  every byte allocated is a page fault to come).
static int s_msg_write(void *data, const char *buf, size_t len)
{
    msgpack_sbuffer *sb = (msgpack_sbuffer *) data;
    if (len > sb->alloc - sb->size) {
        size_t need = sb->size + len;
        if (need < sb->size)
            return -1; // overflow
        size_t grow = sb->alloc * 2 > need ? sb->alloc * 2 : need;
        char *p = realloc(sb->data, grow);
        if (!p)
            return -1;
        sb->data = p;
        sb->alloc = grow;
    }
    memcpy(sb->data + sb->size, buf, len);
    sb->size += len;
    return 0;
}

zchan_msg_t *zchan_msg_new(void)
{
    zchan_msg_t *msg = calloc(1, sizeof *msg);
    if (!msg)
        return zchan__fail_null(ZCHAN_ENOMEM);
    msgpack_sbuffer_init(&msg->sbuf);
    //  Most messages are small: a small first buffer is a cheap allocation;
    //  msgpack_sbuffer_write grows it as needed (without it, it allocates).
    msg->sbuf.data = malloc(MSG_FIRST_ALLOC);
    if (msg->sbuf.data)
        msg->sbuf.alloc = MSG_FIRST_ALLOC;
    msgpack_packer_init(&msg->pk, &msg->sbuf, s_msg_write);
    zmq_msg_init(&msg->frame);
    return msg;
}

zchan_msg_t *zchan__msg_from_frame(zmq_msg_t *frame)
{
    //  No packer buffer: a received message is read, seldom packed into
    //  (the packer's writer allocates then).
    zchan_msg_t *msg = calloc(1, sizeof *msg);
    if (!msg)
        return zchan__fail_null(ZCHAN_ENOMEM);
    msgpack_sbuffer_init(&msg->sbuf);
    msgpack_packer_init(&msg->pk, &msg->sbuf, s_msg_write);
    zmq_msg_init(&msg->frame);
    zmq_msg_move(&msg->frame, frame);
    msg->has_frame = true;
    return msg;
}

msgpack_packer *zchan_msg_packer(zchan_msg_t *msg)
{
    zchan__assert(msg);
    return &msg->pk;
}

static const char *s_bytes(zchan_msg_t *msg, size_t *size)
{
    if (msg->has_frame) {
        *size = zmq_msg_size(&msg->frame);
        return (const char *) zmq_msg_data(&msg->frame);
    }
    *size = msg->sbuf.size;
    return msg->sbuf.data;
}

const msgpack_object *zchan_msg_object(zchan_msg_t *msg)
{
    zchan__assert(msg);
    size_t size;
    const char *data = s_bytes(msg, &size);
    if (msg->decoded_size == size && size > 0)
        return &msg->obj;
    if (!msg->zone_ready) {
        if (!msgpack_zone_init(&msg->zone, 256))
            return zchan__fail_null(ZCHAN_ENOMEM);
        msg->zone_ready = true;
    } else
        msgpack_zone_clear(&msg->zone);
    msg->decoded_size = 0;
    size_t off = 0;
    if (!data || size == 0)
        return zchan__fail_null(ZCHAN_EPROTO);
    //  Bytes from a peer are checked before msgpack-c allocates for them.
    if (msg->has_frame && zchan__msgpack_check(data, size) != 0)
        return zchan__fail_null(ZCHAN_EPROTO);
    msgpack_unpack_return rc = msgpack_unpack(data, size, &off, &msg->zone, &msg->obj);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != size)
        return zchan__fail_null(ZCHAN_EPROTO);
    msg->decoded_size = size;
    return &msg->obj;
}

//  Whether data holds one value that is not a container (a scalar, string,
//  bin or ext), checked in one pass without decoding it.
static bool s_flat(const char *data, size_t size)
{
    size_t end = 0;
    unsigned char b = data && size > 0 ? (unsigned char) data[0] : 0x90;
    bool container = (b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf);
    return !container && zchan__msgpack_span(data, size, &end) == 0 && end == size;
}

bool zchan__msg_valid(zchan_msg_t *msg)
{
    size_t size;
    const char *data = s_bytes(msg, &size);
    return s_flat(data, size) || zchan_msg_object(msg) != NULL;
}

static void s_free_data(void *data, void *hint)
{
    (void) hint;
    free(data);
}

int zchan__msg_to_frame(zchan_msg_t *msg, zmq_msg_t *frame, bool move)
{
    //  Exactly one value (what the packer wrote may be empty, or several
    //  values). A scalar, string, bin or ext is checked in one pass without
    //  decoding it; containers are decoded, so that what msgpack-c cannot
    //  decode (too deeply nested) fails here, at the sender.
    size_t size;
    const char *data = s_bytes(msg, &size);
    if (!s_flat(data, size) && !(msg->decoded_size == size && size > 0) && !zchan_msg_object(msg))
        return ZCHAN_EINVAL;
    if (msg->has_frame) {
        int rc = move ? zmq_msg_move(frame, &msg->frame) : zmq_msg_copy(frame, &msg->frame);
        return rc == 0 ? 0 : ZCHAN_ESYS;
    }
    if (move && size >= MSG_COPY_BELOW) {
        //  Hand the packer's buffer to ZeroMQ: no copy of a large payload.
        char *buf = msgpack_sbuffer_release(&msg->sbuf);
        msg->decoded_size = 0;
        if (zmq_msg_init_data(frame, buf, size, s_free_data, NULL) != 0) {
            msgpack_sbuffer_write(&msg->sbuf, buf, size);
            free(buf);
            return ZCHAN_ENOMEM;
        }
        return 0;
    }
    if (zmq_msg_init_size(frame, size) != 0)
        return ZCHAN_ENOMEM;
    memcpy(zmq_msg_data(frame), msg->sbuf.data, size);
    return 0;
}

void zchan_msg_destroy(zchan_msg_t **msg_p)
{
    if (!msg_p || !*msg_p)
        return;
    zchan_msg_t *msg = *msg_p;
    msgpack_sbuffer_destroy(&msg->sbuf);
    zmq_msg_close(&msg->frame);
    if (msg->zone_ready)
        msgpack_zone_destroy(&msg->zone);
    free(msg);
    *msg_p = NULL;
}

// ---------------------------------------------------------------------------
// References

int zchan_msg_pack_chan(zchan_msg_t *msg, const zchan_t *ch)
{
    zchan__assert(msg);
    zchan__assert(ch);
    //  A channel hosted by this context advertises the context's current
    //  locators (tcp bound after the handle was made included).
    bool local = strcmp(ch->info.hub, ch->ctx->info.hub) == 0;
    if (local)
        pthread_mutex_lock(&ch->ctx->lock);
    zchan__ref_out_t ref = {
        .kind = ch->kind, .key = ch->key, .name = ch->name, .uri = ch->uri,
        .info = local ? &ch->ctx->info : &ch->info,
    };
    int rc = zchan__ref_pack(&msg->pk, &ref);
    if (local)
        pthread_mutex_unlock(&ch->ctx->lock);
    return rc ? zchan__fail(rc) : 0;
}

zchan_t *zchan_msg_chan(zchan_ctx_t *ctx, const msgpack_object *obj)
{
    zchan__assert(ctx);
    if (!obj || obj->type != MSGPACK_OBJECT_EXT || obj->via.ext.type != ZCHAN_EXT_REF)
        return zchan__fail_null(ZCHAN_EINVAL);
    zchan__ref_t ref;
    char ep[ZCHAN__EP_MAX];
    zchan_t *ch = NULL;
    int err = zchan__ref_decode(obj->via.ext.ptr, obj->via.ext.size, &ref);
    if (err == 0 && zchan__pick_locator(ctx, &ref.info, ep, sizeof ep) != 0)
        err = ZCHAN_ENOTFOUND;
    if (err == 0) {
        ch = zchan__chan_make(ctx, ref.kind, ref.key, ref.name, ref.uri, ep, &ref.info);
        err = ch ? 0 : ZCHAN_ENOMEM;
    }
    return ch ? ch : zchan__fail_null(err);
}
