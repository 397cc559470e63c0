/*  wire_ref.c: the hub-info map (in CREATE and OPEN replies, and in
    references) and the body of a channel reference (ext ZCHAN_EXT_REF):
    [version, kind, key, name, uri, hubinfo] (docs/PROTOCOL.md).
*/
#include "wire.h"
#include <stdlib.h>
#include <string.h>

void zchan__hubinfo_pack(msgpack_packer *pk, const zchan__hubinfo_t *info)
{
    msgpack_pack_map(pk, info->curve[0] ? 5 : 4);
    const char *keys[] = {"host", "proc", "hub"};
    const char *vals[] = {info->host, info->proc, info->hub};
    for (int i = 0; i < 3; i++) {
        msgpack_pack_str(pk, strlen(keys[i]));
        msgpack_pack_str_body(pk, keys[i], strlen(keys[i]));
        msgpack_pack_str(pk, strlen(vals[i]));
        msgpack_pack_str_body(pk, vals[i], strlen(vals[i]));
    }
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "loc", 3);
    msgpack_pack_array(pk, (size_t) info->nloc);
    for (int i = 0; i < info->nloc; i++) {
        msgpack_pack_str(pk, strlen(info->loc[i]));
        msgpack_pack_str_body(pk, info->loc[i], strlen(info->loc[i]));
    }
    if (info->curve[0]) {
        msgpack_pack_str(pk, 5);
        msgpack_pack_str_body(pk, "curve", 5);
        msgpack_pack_str(pk, strlen(info->curve));
        msgpack_pack_str_body(pk, info->curve, strlen(info->curve));
    }
}

static bool s_key_is(const msgpack_object *k, const char *name)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(name)
           && memcmp(k->via.str.ptr, name, k->via.str.size) == 0;
}

static int s_copy_str(const msgpack_object *v, char *out, size_t n)
{
    if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= n)
        return ZCHAN_EPROTO;
    //  A zero byte would cut the C string short. (msgpack-c gives an empty
    //  str a NULL pointer, which memcpy and memchr must not see.)
    if (v->via.str.size) {
        if (memchr(v->via.str.ptr, 0, v->via.str.size))
            return ZCHAN_EPROTO;
        memcpy(out, v->via.str.ptr, v->via.str.size);
    }
    out[v->via.str.size] = 0;
    return 0;
}

int zchan__hubinfo_read(const msgpack_object *o, zchan__hubinfo_t *info)
{
    memset(info, 0, sizeof *info);
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return ZCHAN_EPROTO;
    int seen = 0;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        int rc = 0;
        if (s_key_is(k, "host"))
            rc = s_copy_str(v, info->host, sizeof info->host), seen |= 1;
        else if (s_key_is(k, "proc"))
            rc = s_copy_str(v, info->proc, sizeof info->proc), seen |= 2;
        else if (s_key_is(k, "hub"))
            rc = s_copy_str(v, info->hub, sizeof info->hub), seen |= 4;
        else if (s_key_is(k, "loc")) {
            if (v->type != MSGPACK_OBJECT_ARRAY)
                return ZCHAN_EPROTO;
            for (uint32_t j = 0; j < v->via.array.size && info->nloc < ZCHAN__MAX_LOC; j++) {
                if (s_copy_str(&v->via.array.ptr[j], info->loc[info->nloc], ZCHAN__EP_MAX) != 0)
                    return ZCHAN_EPROTO;
                info->nloc++;
            }
            seen |= 8;
        } else if (s_key_is(k, "curve")) {
            //  Optional: the CURVE public key the hub's tcp endpoints require.
            uint8_t key[32];
            rc = s_copy_str(v, info->curve, sizeof info->curve);
            if (rc == 0 && (strlen(info->curve) != 40 || !zmq_z85_decode(key, info->curve)))
                rc = ZCHAN_EPROTO;
        }
        if (rc != 0)
            return ZCHAN_EPROTO;
    }
    return seen == 15 && info->nloc > 0 ? 0 : ZCHAN_EPROTO;
}

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

int zchan__ref_pack(msgpack_packer *pk, const zchan__ref_out_t *ref)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer bpk;
    msgpack_packer_init(&bpk, &body, msgpack_sbuffer_write);
    msgpack_pack_array(&bpk, 6);
    msgpack_pack_uint64(&bpk, ZCHAN_PROTO_VERSION);
    msgpack_pack_uint64(&bpk, ref->kind);
    s_pack_str(&bpk, ref->key);
    s_pack_str(&bpk, ref->name);
    s_pack_str(&bpk, ref->uri);
    zchan__hubinfo_pack(&bpk, ref->info);
    int rc = 0;
    if (!body.data)
        rc = ZCHAN_ENOMEM;
    else if (msgpack_pack_ext(pk, body.size, ZCHAN_EXT_REF) != 0
             || msgpack_pack_ext_body(pk, body.data, body.size) != 0)
        rc = ZCHAN_ENOMEM;
    msgpack_sbuffer_destroy(&body);
    return rc;
}

static char *s_field_str(const msgpack_object *arr, uint32_t i, char *out, size_t n)
{
    const msgpack_object *o = &arr->via.array.ptr[i];
    //  A zero byte would cut the C string short: not a name anyone has.
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size >= n
        || memchr(o->via.str.ptr, 0, o->via.str.size))
        return NULL;
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = 0;
    return out;
}

int zchan__ref_decode(const void *body, size_t size, zchan__ref_t *ref)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 512))
        return ZCHAN_ENOMEM;
    msgpack_object arr;
    size_t off = 0;
    int rc = ZCHAN_EPROTO;
    if (zchan__msgpack_check(body, size) != 0
        || msgpack_unpack((const char *) body, size, &off, &zone, &arr) != MSGPACK_UNPACK_SUCCESS
        || off != size || arr.type != MSGPACK_OBJECT_ARRAY || arr.via.array.size < 6)
        goto done;
    const msgpack_object *f = arr.via.array.ptr;
    if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.u64 != ZCHAN_PROTO_VERSION
        || f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER
        || (f[1].via.u64 != ZCHAN_ANYCAST && f[1].via.u64 != ZCHAN_BROADCAST))
        goto done;
    ref->kind = (zchan_kind_t) f[1].via.u64;
    if (!s_field_str(&arr, 2, ref->key, sizeof ref->key) || !s_field_str(&arr, 3, ref->name, sizeof ref->name)
        || !s_field_str(&arr, 4, ref->uri, sizeof ref->uri) || zchan__hubinfo_read(&f[5], &ref->info) != 0)
        goto done;
    rc = 0;
done:
    msgpack_zone_destroy(&zone);
    return rc;
}
