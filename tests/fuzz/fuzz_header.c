/*  fuzz_header.c: header frames, as the hub and zchan's clients decode them.

    The input is one header frame, as a peer sent it. Covered:
    zchan__msgpack_check, zchan__hdr_parse and every getter on every field
    (and zchan__hubinfo_read, which reads the hubinfo of CREATE and OPEN
    replies). Oracles, besides the sanitizers:
    - zchan__msgpack_check never rejects what msgpack_unpack decodes (its first
      value, with or without trailing bytes);
    - what it accepts, msgpack_unpack decodes within a small multiple of the
      input's size in memory;
    - zchan__hdr_parse accepts exactly one array with a uint first element,
      and the getters agree with the decoded object.
*/
#include "fuzzutil.h"
#include <sanitizer/allocator_interface.h>
#include <string.h>

//  Whether data may declare an array or map of more elements than it has
//  bytes: a byte dc-df, wherever it sits, followed by such a count.
//  msgpack-c allocates a container before it reads its elements, so unchecked
//  input of this kind is not given to msgpack_unpack here. (msgpack_unpack
//  could not decode such a container whole anyway.)
static bool s_big_count(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i + 2 < size; i++) {
        uint64_t count;
        if (data[i] == 0xdc || data[i] == 0xde)
            count = (uint64_t) data[i + 1] << 8 | data[i + 2];
        else if ((data[i] == 0xdd || data[i] == 0xdf) && i + 4 < size)
            count = (uint64_t) data[i + 1] << 24 | (uint64_t) data[i + 2] << 16 | (uint64_t) data[i + 3] << 8
                    | data[i + 4];
        else
            continue;
        if (count > size)
            return true;
    }
    return false;
}

static void s_differential(const uint8_t *data, size_t size)
{
    int chk = zchan__msgpack_check(data, size);
    if (chk != 0 && s_big_count(data, size))
        return;
    msgpack_zone zone;
    FZ_ASSERT(msgpack_zone_init(&zone, 512), "zone");
    size_t before = __sanitizer_get_current_allocated_bytes();
    msgpack_object obj;
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack((const char *) data, size, &off, &zone, &obj);
    size_t used = __sanitizer_get_current_allocated_bytes() - before;
    if (rc == MSGPACK_UNPACK_SUCCESS || rc == MSGPACK_UNPACK_EXTRA_BYTES)
        FZ_ASSERT(chk == 0, "msgpack_unpack decoded %zu of %zu bytes (rc %d) that the check rejected", off,
                  size, (int) rc);
    if (chk == 0)
        FZ_ASSERT(used <= 64 * size + 65536, "decoding %zu checked bytes allocated %zu", size, used);
    msgpack_zone_destroy(&zone);
}

static void s_getters(const zchan__hdr_t *h)
{
    size_t len = zchan__hdr_len(h);
    FZ_ASSERT(len >= 1, "len %zu", len);
    int type = zchan__hdr_type(h);
    FZ_ASSERT(type >= -1 && type <= 1000, "type %d", type);
    for (size_t i = 0; i <= len + 1; i++) {
        const msgpack_object *o = zchan__hdr_at(h, i);
        FZ_ASSERT((o != NULL) == (i < len), "field %zu of %zu", i, len);
        uint64_t u = 0;
        bool b = false;
        const char *p = NULL;
        size_t n = 0;
        int ru = zchan__hdr_u64(h, i, &u);
        int rb = zchan__hdr_bool(h, i, &b);
        int rs = zchan__hdr_str(h, i, &p, &n);
        FZ_ASSERT((ru == 0) == (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER), "u64 of field %zu", i);
        FZ_ASSERT((rb == 0) == (o && o->type == MSGPACK_OBJECT_BOOLEAN), "bool of field %zu", i);
        FZ_ASSERT((rs == 0) == (o && o->type == MSGPACK_OBJECT_STR), "str of field %zu", i);
        if (rs == 0) {
            fz_touch(p, n);
            //  As the hub copies a key, and the clients their strings.
            char *copy = zchan__strndup(p, n);
            FZ_ASSERT(copy && (n == 0 || memcmp(copy, p, n) == 0) && copy[n] == 0, "strndup");
            free(copy);
        }
        zchan__hubinfo_t info;
        if (zchan__hubinfo_read(o, &info) == 0) {
            FZ_ASSERT(info.nloc >= 1 && info.nloc <= ZCHAN__MAX_LOC, "nloc %d", info.nloc);
            FZ_ASSERT(strlen(info.host) < sizeof info.host && strlen(info.proc) < sizeof info.proc
                          && strlen(info.hub) < sizeof info.hub,
                      "hubinfo strings");
            for (int k = 0; k < info.nloc; k++)
                FZ_ASSERT(strlen(info.loc[k]) < ZCHAN__EP_MAX, "locator %d", k);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_differential(data, size);
    zchan__hdr_t h;
    zchan__hdr_init(&h);
    int rc = zchan__hdr_parse(&h, data, size);
    if (rc == 0) {
        //  Exactly one array with a uint first element, every byte used.
        FZ_ASSERT(zchan__msgpack_check(data, size) == 0, "parsed what the check rejects");
        FZ_ASSERT(h.obj.type == MSGPACK_OBJECT_ARRAY && h.obj.via.array.size >= 1
                      && h.obj.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER,
                  "not a header");
        s_getters(&h);
    } else {
        FZ_ASSERT(rc == ZCHAN_EPROTO, "rc %d", rc);
        FZ_ASSERT(zchan__hdr_len(&h) == 0 && zchan__hdr_type(&h) == -1 && !zchan__hdr_at(&h, 0),
                  "getters of a rejected header");
    }
    //  A decoder is reused, as the hub reuses its own: parse again.
    int again = zchan__hdr_parse(&h, data, size);
    FZ_ASSERT(again == rc, "second parse %d, first %d", again, rc);
    zchan__hdr_fini(&h);
    return 0;
}
