/*  proto.c: header encoding and decoding with msgpack-c, and frame I/O.
    Decoding never trusts the bytes: every field is type-checked.
*/
#include "proto.h"
#include <stdlib.h>
#include <string.h>

void zchan__hdr_init(zchan__hdr_t *h)
{
    msgpack_zone_init(&h->zone, 512);
    h->valid = false;
}

void zchan__hdr_fini(zchan__hdr_t *h)
{
    msgpack_zone_destroy(&h->zone);
}

//  Reads an n-byte big-endian length or count at p.
static uint64_t s_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int zchan__msgpack_check(const void *data, size_t size)
{
    size_t end;
    return zchan__msgpack_span(data, size, &end);
}

int zchan__msgpack_span(const void *data, size_t size, size_t *end)
{
    const unsigned char *p = (const unsigned char *) data;
    size_t off = 0;
    uint64_t pending = 1; // values still to read; each takes at least one byte
    while (pending > 0) {
        if (off >= size)
            return ZCHAN_EPROTO;
        unsigned char b = p[off++];
        pending--;
        uint64_t body = 0, items = 0;
        size_t lenb = 0, countb = 0, per = 1, extra = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            continue;
        if (b <= 0x8f)
            items = 2u * (b & 0x0fu);
        else if (b <= 0x9f)
            items = b & 0x0fu;
        else if (b <= 0xbf)
            body = b & 0x1fu;
        else
            switch (b) {
            case 0xcc: case 0xd0: body = 1; break;
            case 0xcd: case 0xd1: body = 2; break;
            case 0xca: case 0xce: case 0xd2: body = 4; break;
            case 0xcb: case 0xcf: case 0xd3: body = 8; break;
            case 0xd4: body = 2; break;
            case 0xd5: body = 3; break;
            case 0xd6: body = 5; break;
            case 0xd7: body = 9; break;
            case 0xd8: body = 17; break;
            case 0xc4: case 0xd9: lenb = 1; break;
            case 0xc5: case 0xda: lenb = 2; break;
            case 0xc6: case 0xdb: lenb = 4; break;
            case 0xc7: lenb = 1, extra = 1; break; // ext: length, then the type byte
            case 0xc8: lenb = 2, extra = 1; break;
            case 0xc9: lenb = 4, extra = 1; break;
            case 0xdc: countb = 2; break;
            case 0xdd: countb = 4; break;
            case 0xde: countb = 2, per = 2; break;
            case 0xdf: countb = 4, per = 2; break;
            default: return ZCHAN_EPROTO; // 0xc1: never used
            }
        if (lenb + countb > size - off)
            return ZCHAN_EPROTO;
        if (lenb)
            body = s_be(p + off, lenb) + extra;
        if (countb)
            items = s_be(p + off, countb) * per;
        off += lenb + countb;
        //  The body, the values still pending and the new items must all fit.
        size_t left = size - off;
        if (pending > left)
            return ZCHAN_EPROTO;
        left -= (size_t) pending;
        if (body > left)
            return ZCHAN_EPROTO;
        left -= (size_t) body;
        if (items > left)
            return ZCHAN_EPROTO;
        off += (size_t) body;
        pending += items;
    }
    *end = off;
    return 0;
}

//  The headers of the data path (DATA, DELIVER, CREDIT, ACK) are short arrays
//  of unsigned integers: decodes those into h->fast, giving what
//  msgpack_unpack would, without its zone. false for anything else (the
//  caller then takes the general path, which also rejects what is invalid).
static bool s_hdr_fast(zchan__hdr_t *h, const unsigned char *p, size_t size)
{
    if (size < 2 || (p[0] & 0xf0) != 0x90)
        return false;
    size_t n = p[0] & 0x0fu, off = 1;
    if (n == 0 || n > ZCHAN__HDR_FAST)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (off >= size)
            return false;
        unsigned char b = p[off++];
        size_t len = b == 0xcc ? 1 : b == 0xcd ? 2 : b == 0xce ? 4 : b == 0xcf ? 8 : 0;
        uint64_t v = b;
        if (len) {
            if (len > size - off)
                return false;
            v = s_be(p + off, len);
            off += len;
        } else if (b > 0x7f)
            return false;
        h->fast[i].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        h->fast[i].via.u64 = v;
    }
    if (off != size)
        return false;
    h->obj.type = MSGPACK_OBJECT_ARRAY;
    h->obj.via.array.size = (uint32_t) n;
    h->obj.via.array.ptr = h->fast;
    return true;
}

int zchan__hdr_parse(zchan__hdr_t *h, const void *data, size_t size)
{
    h->valid = false;
    if (s_hdr_fast(h, (const unsigned char *) data, size)) {
        h->valid = true;
        return 0;
    }
    msgpack_zone_clear(&h->zone);
    if (zchan__msgpack_check(data, size) != 0)
        return ZCHAN_EPROTO;
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack((const char *) data, size, &off, &h->zone, &h->obj);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != size)
        return ZCHAN_EPROTO;
    if (h->obj.type != MSGPACK_OBJECT_ARRAY || h->obj.via.array.size < 1)
        return ZCHAN_EPROTO;
    if (h->obj.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return ZCHAN_EPROTO;
    h->valid = true;
    return 0;
}

size_t zchan__hdr_len(const zchan__hdr_t *h)
{
    return h->valid ? h->obj.via.array.size : 0;
}

int zchan__hdr_type(const zchan__hdr_t *h)
{
    if (!h->valid)
        return -1;
    uint64_t t = h->obj.via.array.ptr[0].via.u64;
    return t > 1000 ? -1 : (int) t;
}

const msgpack_object *zchan__hdr_at(const zchan__hdr_t *h, size_t i)
{
    if (!h->valid || i >= h->obj.via.array.size)
        return NULL;
    return &h->obj.via.array.ptr[i];
}

int zchan__hdr_u64(const zchan__hdr_t *h, size_t i, uint64_t *out)
{
    const msgpack_object *o = zchan__hdr_at(h, i);
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return ZCHAN_EPROTO;
    *out = o->via.u64;
    return 0;
}

int zchan__hdr_bool(const zchan__hdr_t *h, size_t i, bool *out)
{
    const msgpack_object *o = zchan__hdr_at(h, i);
    if (!o || o->type != MSGPACK_OBJECT_BOOLEAN)
        return ZCHAN_EPROTO;
    *out = o->via.boolean;
    return 0;
}

int zchan__hdr_str(const zchan__hdr_t *h, size_t i, const char **p, size_t *len)
{
    const msgpack_object *o = zchan__hdr_at(h, i);
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return ZCHAN_EPROTO;
    *p = o->via.str.ptr;
    *len = o->via.str.size;
    return 0;
}

//  The packer's writer: appends to the inline buffer, then to the heap.
static int s_out_write(void *data, const char *buf, size_t len)
{
    zchan__out_t *o = (zchan__out_t *) data;
    if (o->sbuf.failed)
        return -1;
    if (len > o->sbuf.alloc - o->sbuf.size) {
        size_t want = 2 * (o->sbuf.size + len);
        bool inl = o->sbuf.data == o->inline_buf;
        char *p = inl ? malloc(want) : realloc(o->sbuf.data, want);
        if (!p) {
            o->sbuf.failed = true;
            return -1;
        }
        if (inl)
            memcpy(p, o->inline_buf, o->sbuf.size);
        o->sbuf.data = p;
        o->sbuf.alloc = want;
    }
    memcpy(o->sbuf.data + o->sbuf.size, buf, len);
    o->sbuf.size += len;
    return 0;
}

void zchan__out_init(zchan__out_t *o, size_t n, int type)
{
    o->sbuf.data = o->inline_buf;
    o->sbuf.size = 0;
    o->sbuf.alloc = sizeof o->inline_buf;
    o->sbuf.failed = false;
    msgpack_packer_init(&o->pk, o, s_out_write);
    msgpack_pack_array(&o->pk, n);
    msgpack_pack_uint64(&o->pk, (uint64_t) type);
}

void zchan__out_fini(zchan__out_t *o)
{
    if (o->sbuf.data != o->inline_buf)
        free(o->sbuf.data);
    o->sbuf.data = o->inline_buf;
    o->sbuf.size = 0;
}

void zchan__out_u64(zchan__out_t *o, uint64_t v)
{
    msgpack_pack_uint64(&o->pk, v);
}

void zchan__out_str(zchan__out_t *o, const char *s)
{
    zchan__out_strn(o, s, strlen(s));
}

void zchan__out_strn(zchan__out_t *o, const char *s, size_t n)
{
    msgpack_pack_str(&o->pk, n);
    if (n) // s may be NULL when empty (msgpack-c decodes "" so), which memcpy must not see
        msgpack_pack_str_body(&o->pk, s, n);
}

void zchan__out_bool(zchan__out_t *o, bool v)
{
    if (v)
        msgpack_pack_true(&o->pk);
    else
        msgpack_pack_false(&o->pk);
}

int zchan__out_send(zchan__out_t *o, void *sock, bool more, int flags)
{
    if (o->sbuf.failed)
        return ZCHAN_ENOMEM;
    int rc = zmq_send(sock, o->sbuf.data, o->sbuf.size, flags | (more ? ZMQ_SNDMORE : 0));
    return rc < 0 ? zchan__zmq_error("send header") : 0;
}

int zchan__recv_frames(void *sock, zmq_msg_t *frames, size_t max, size_t *nframes, int flags)
{
    size_t n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *f = n < max ? &frames[n] : &scratch;
        if (f == &scratch)
            zmq_msg_init(&scratch);
        //  After the first frame the rest of the message is already here.
        int rc = zmq_msg_recv(f, sock, n == 0 ? flags : 0);
        if (rc < 0) {
            if (f == &scratch)
                zmq_msg_close(&scratch);
            if (n == 0)
                return zchan__zmq_error("recv");
            break;
        }
        more = zmq_msg_more(f);
        if (f == &scratch)
            zmq_msg_close(&scratch);
        n++;
    }
    *nframes = n;
    return 0;
}

int zchan__recv_until(void *sock, int *rcvtimeo, int64_t deadline, zmq_msg_t *frames, size_t max,
                      size_t *nframes)
{
    long left = zchan__remaining(deadline);
    int timeout = left > INT32_MAX ? INT32_MAX : (int) left;
    if (timeout != *rcvtimeo && zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout) == 0)
        *rcvtimeo = timeout;
    return zchan__recv_frames(sock, frames, max, nframes, 0);
}

char *zchan__strndup(const char *p, size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    if (len) // msgpack-c gives an empty str or bin a NULL pointer
        memcpy(s, p, len);
    s[len] = 0;
    return s;
}
