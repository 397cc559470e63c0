/*  fuzz_payload.c: payloads, as a zchan receiver and the zchan CLI read them.

    The input is one payload frame (a DELIVER's second frame). Covered:
    zchan__msg_from_frame and zchan_msg_object, as zchan_recv hands a message
    over; zchan_msg_chan on every ext 90 anywhere in the value; zchan's
    re-encoding of a received message (zchan__msg_to_frame, as a relay or
    zchan_send of a received message does); and the CLI's msgpack to JSON
    writer (tools/json.c, zcj_print). Oracles, besides the sanitizers: a
    message decodes exactly when msgpack_unpack takes the whole frame as one
    value; re-encoding gives the same bytes; zcj_print gives one line of JSON
    that zcj_pack (the CLI's reader) turns back into the same value, where no
    reference is involved.
*/
#include "fuzzutil.h"
#include "json.h"
#include <math.h>
#include <string.h>

static FILE *s_devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc, (void) argv;
    fz_ctx();
    s_devnull = fopen("/dev/null", "w");
    return 0;
}

//  Opens every reference in o. Returns whether o holds an ext 90 anywhere.
static bool s_refs(zchan_ctx_t *ctx, const msgpack_object *o)
{
    bool any = false;
    switch (o->type) {
    case MSGPACK_OBJECT_EXT:
        if (o->via.ext.type == ZCHAN_EXT_REF) {
            zchan_t *ch = zchan_msg_chan(ctx, o);
            zchan_destroy(&ch);
            any = true;
        }
        break;
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++)
            any |= s_refs(ctx, &o->via.array.ptr[i]);
        break;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            any |= s_refs(ctx, &o->via.map.ptr[i].key);
            any |= s_refs(ctx, &o->via.map.ptr[i].val);
        }
        break;
    default: break;
    }
    return any;
}

//  Whether a map has two equal keys (JSON objects cannot keep both).
static bool s_dup_keys(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (s_dup_keys(&o->via.array.ptr[i]))
                return true;
        return false;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (s_dup_keys(&o->via.map.ptr[i].key) || s_dup_keys(&o->via.map.ptr[i].val))
                return true;
            for (uint32_t j = 0; j < i; j++)
                if (msgpack_object_equal(o->via.map.ptr[i].key, o->via.map.ptr[j].key))
                    return true;
        }
        return false;
    default: return false;
    }
}

//  Whether b (read back from JSON) is a (as written): floats compare by
//  value (a float32 comes back as a float64 of the same float32 value, NaN
//  as NaN).
static bool s_same(const msgpack_object *a, const msgpack_object *b)
{
    bool fa = a->type == MSGPACK_OBJECT_FLOAT32 || a->type == MSGPACK_OBJECT_FLOAT64;
    bool fb = b->type == MSGPACK_OBJECT_FLOAT32 || b->type == MSGPACK_OBJECT_FLOAT64;
    if (fa || fb) {
        if (!fa || !fb)
            return false;
        if (isnan(a->via.f64) || isnan(b->via.f64))
            return isnan(a->via.f64) && isnan(b->via.f64);
        if (a->type == MSGPACK_OBJECT_FLOAT32)
            return (float) a->via.f64 == (float) b->via.f64;
        return a->via.f64 == b->via.f64;
    }
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size)
            return false;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!s_same(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        if (a->via.map.size != b->via.map.size)
            return false;
        for (uint32_t i = 0; i < a->via.map.size; i++)
            if (!s_same(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key)
                || !s_same(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
                return false;
        return true;
    default: return msgpack_object_equal(*a, *b);
    }
}

//  Writes obj as JSON, reads it back with the CLI's reader and compares.
static void s_json_round_trip(const msgpack_object *obj, bool refs)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    FZ_ASSERT(mem, "open_memstream");
    FZ_ASSERT(zcj_print(mem, obj) == 0, "zcj_print failed");
    fclose(mem);
    FZ_ASSERT(len > 0 && text[len - 1] == '\n' && memchr(text, '\n', len) == text + len - 1,
              "not one line: %s", text);
    if (!refs && !s_dup_keys(obj)) {
        zchan_msg_t *back = zchan_msg_new();
        char err[256];
        int zerr = 0;
        int rc = zcj_pack(NULL, text, len, back, &zerr, err, sizeof err);
        FZ_ASSERT(rc == ZCJ_OK, "zcj_pack refused what zcj_print wrote (%s): %s", err, text);
        const msgpack_object *o = zchan_msg_object(back);
        FZ_ASSERT(o && s_same(obj, o), "JSON round trip changed the value: %s", text);
        zchan_msg_destroy(&back);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    zchan_ctx_t *ctx = fz_ctx();
    zmq_msg_t frame;
    zmq_msg_init_size(&frame, size);
    if (size)
        memcpy(zmq_msg_data(&frame), data, size);
    zchan_msg_t *msg = zchan__msg_from_frame(&frame);
    zmq_msg_close(&frame);
    FZ_ASSERT(msg, "zchan__msg_from_frame");
    const msgpack_object *obj = zchan_msg_object(msg);
    bool one_value = zchan__msgpack_check(data, size) == 0;
    if (one_value) {
        //  What the check passes, msgpack_unpack may decode: the reference.
        msgpack_zone zone;
        msgpack_zone_init(&zone, 256);
        msgpack_object ref;
        size_t off = 0;
        one_value = msgpack_unpack((const char *) data, size, &off, &zone, &ref) == MSGPACK_UNPACK_SUCCESS
                    && off == size;
        msgpack_zone_destroy(&zone);
    }
    FZ_ASSERT((obj != NULL) == one_value, "zchan_msg_object %s", obj ? "decoded" : "failed");
    if (!obj) {
        FZ_ASSERT(zchan_errno() == ZCHAN_EPROTO, "errno %d", zchan_errno());
        zchan_msg_destroy(&msg);
        return 0;
    }
    FZ_ASSERT(zchan_msg_object(msg) == obj, "a second decode");
    bool refs = s_refs(ctx, obj);
    //  Passed on as received (a relay, or a receiver that sends it on).
    zmq_msg_t out;
    zmq_msg_init(&out);
    FZ_ASSERT(zchan__msg_to_frame(msg, &out, false) == 0, "msg_to_frame");
    FZ_ASSERT(zmq_msg_size(&out) == size && memcmp(zmq_msg_data(&out), data, size) == 0, "re-encoded differs");
    zmq_msg_close(&out);
    s_json_round_trip(obj, refs);
    zcj_print(s_devnull, obj);
    zchan_msg_destroy(&msg);
    return 0;
}
