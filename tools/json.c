/*  json.c: JSON <-> msgpack for the zchan CLI (see json.h for the mapping).

    Reading uses jansson. jansson holds integers as long long, so integers
    above INT64_MAX (up to UINT64_MAX) are first rewritten into marked
    strings that no JSON text can spell (a NUL byte and a random nonce), and
    packed back as uint64. Writing is done here, so that every msgpack value
    has one exact JSON form.
*/
#include "json.h"
#include "core.h" // zchan__ref_decode
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ZCJ_EXT_REF 90

// ---------------------------------------------------------------------------
// Base64 (RFC 4648, with padding)

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void s_b64_encode(FILE *out, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t) p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t) p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        fputc(s_b64[(v >> 18) & 63], out);
        fputc(s_b64[(v >> 12) & 63], out);
        fputc(i + 1 < n ? s_b64[(v >> 6) & 63] : '=', out);
        fputc(i + 2 < n ? s_b64[v & 63] : '=', out);
    }
}

static int s_b64_value(char c)
{
    const char *p = c ? strchr(s_b64, c) : NULL;
    return p ? (int) (p - s_b64) : -1;
}

//  Decodes text into a new buffer (*out, *n; free it). -1 if text is not
//  base64 with padding.
static int s_b64_decode(const char *text, size_t len, unsigned char **out, size_t *n)
{
    if (len % 4 != 0)
        return -1;
    unsigned char *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (text[i + j] == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad || (v[j] = s_b64_value(text[i + j])) < 0) {
                free(buf);
                return -1;
            }
        }
        uint32_t w = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 | (uint32_t) v[2] << 6 | (uint32_t) v[3];
        buf[k++] = (unsigned char) (w >> 16);
        if (pad < 2)
            buf[k++] = (unsigned char) (w >> 8);
        if (pad < 1)
            buf[k++] = (unsigned char) w;
    }
    *out = buf;
    *n = k;
    return 0;
}

// ---------------------------------------------------------------------------
// Reading JSON

typedef struct {
    zchan_ctx_t *ctx;
    zchan_msg_t *msg;
    msgpack_packer *pk;
    char nonce[24];   // marks the big integers rewritten as strings
    int zerr;
    char *err;
    size_t errlen;
} reader_t;

static int s_fail(reader_t *rd, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rd->err, rd->errlen, fmt, ap);
    va_end(ap);
    return code;
}

//  Copies text, rewriting each integer literal in (INT64_MAX, UINT64_MAX] as
//  the string "\u0000NONCE:DIGITS". Strings are copied untouched. NULL on
//  ENOMEM. The copy is NUL-terminated; *outlen is its length.
static char *s_mark_big_ints(reader_t *rd, const char *text, size_t len, size_t *outlen)
{
    size_t cap = len + 1, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t i = 0;
    while (i < len) {
        char c = text[i];
        size_t start = i;
        if (c == '"') {
            for (i++; i < len && text[i] != '"'; i++)
                if (text[i] == '\\' && i + 1 < len)
                    i++;
            if (i < len)
                i++;
        } else if ((c >= '0' && c <= '9') || c == '-') {
            //  A number token; only a positive integer can need marking.
            for (i++; i < len && ((text[i] >= '0' && text[i] <= '9') || (text[i] && strchr(".eE+-", text[i]))); i++)
                ;
            size_t tlen = i - start;
            bool digits = c != '-' && strspn(text + start, "0123456789") >= tlen;
            if (digits && tlen >= 19 && tlen <= 20) {
                char num[24];
                memcpy(num, text + start, tlen);
                num[tlen] = 0;
                errno = 0;
                unsigned long long v = strtoull(num, NULL, 10);
                if (errno == 0 && v > (unsigned long long) INT64_MAX) {
                    char repl[64];
                    int rl = snprintf(repl, sizeof repl, "\"\\u0000%s:%s\"", rd->nonce, num);
                    if (n + (size_t) rl + (len - i) + 1 > cap) {
                        cap = n + (size_t) rl + (len - i) + 64;
                        char *bigger = realloc(out, cap);
                        if (!bigger) {
                            free(out);
                            return NULL;
                        }
                        out = bigger;
                    }
                    memcpy(out + n, repl, (size_t) rl);
                    n += (size_t) rl;
                    continue;
                }
            }
        } else
            i++;
        if (n + (i - start) + (len - i) + 1 > cap) {
            cap = n + (i - start) + (len - i) + 64;
            char *bigger = realloc(out, cap);
            if (!bigger) {
                free(out);
                return NULL;
            }
            out = bigger;
        }
        memcpy(out + n, text + start, i - start);
        n += i - start;
    }
    out[n] = 0;
    *outlen = n;
    return out;
}

static int s_pack(reader_t *rd, const json_t *v, int depth);

static void s_pack_bytes_str(msgpack_packer *pk, const char *p, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, p, n);
}

static int s_pack_string(reader_t *rd, const json_t *v)
{
    const char *p = json_string_value(v);
    size_t n = json_string_length(v);
    size_t nl = strlen(rd->nonce);
    if (n > nl + 2 && p[0] == 0 && memcmp(p + 1, rd->nonce, nl) == 0 && p[1 + nl] == ':') {
        msgpack_pack_uint64(rd->pk, strtoull(p + 2 + nl, NULL, 10));
        return ZCJ_OK;
    }
    s_pack_bytes_str(rd->pk, p, n);
    return ZCJ_OK;
}

//  Decodes the base64 string v (of tag) into a new buffer.
static int s_tag_b64(reader_t *rd, const char *tag, const json_t *v, unsigned char **buf, size_t *n)
{
    if (!json_is_string(v) || s_b64_decode(json_string_value(v), json_string_length(v), buf, n) != 0)
        return s_fail(rd, ZCJ_EJSON, "%s wants a base64 string", tag);
    return ZCJ_OK;
}

static int s_pack_tag(reader_t *rd, const char *tag, const json_t *v, int depth)
{
    unsigned char *buf = NULL;
    size_t n = 0;
    int rc;
    if (strcmp(tag, "$bin") == 0 || strcmp(tag, "$strb64") == 0) {
        if ((rc = s_tag_b64(rd, tag, v, &buf, &n)) != ZCJ_OK)
            return rc;
        if (tag[1] == 'b') {
            msgpack_pack_bin(rd->pk, n);
            msgpack_pack_bin_body(rd->pk, buf, n);
        } else
            s_pack_bytes_str(rd->pk, (const char *) buf, n);
        free(buf);
        return ZCJ_OK;
    }
    if (strcmp(tag, "$ext") == 0) {
        json_int_t type;
        if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(json_array_get(v, 0))
            || (type = json_integer_value(json_array_get(v, 0))) < -128 || type > 127)
            return s_fail(rd, ZCJ_EJSON, "$ext wants [TYPE (-128..127), \"BASE64\"]");
        if ((rc = s_tag_b64(rd, tag, json_array_get(v, 1), &buf, &n)) != ZCJ_OK)
            return rc;
        msgpack_pack_ext(rd->pk, n, (int8_t) type);
        msgpack_pack_ext_body(rd->pk, buf, n);
        free(buf);
        return ZCJ_OK;
    }
    if (strcmp(tag, "$float") == 0 || strcmp(tag, "$float32") == 0) {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        double d;
        if (json_is_number(v))
            d = json_number_value(v);
        else if (strcmp(s, "nan") == 0)
            d = NAN;
        else if (strcmp(s, "inf") == 0)
            d = INFINITY;
        else if (strcmp(s, "-inf") == 0)
            d = -INFINITY;
        else
            return s_fail(rd, ZCJ_EJSON, "%s wants a number, \"nan\", \"inf\" or \"-inf\"", tag);
        if (tag[6])
            msgpack_pack_float(rd->pk, (float) d);
        else
            msgpack_pack_double(rd->pk, d);
        return ZCJ_OK;
    }
    if (strcmp(tag, "$map") == 0) {
        if (!json_is_array(v))
            return s_fail(rd, ZCJ_EJSON, "$map wants [[KEY, VALUE], ...]");
        if (depth >= ZCJ_MAX_DEPTH)
            return s_fail(rd, ZCJ_EJSON, "nested deeper than %d arrays and objects", ZCJ_MAX_DEPTH);
        size_t i;
        json_t *pair;
        json_array_foreach(v, i, pair)
        {
            if (!json_is_array(pair) || json_array_size(pair) != 2)
                return s_fail(rd, ZCJ_EJSON, "$map wants [[KEY, VALUE], ...]");
        }
        msgpack_pack_map(rd->pk, json_array_size(v));
        json_array_foreach(v, i, pair)
        {
            if ((rc = s_pack(rd, json_array_get(pair, 0), depth + 1)) != ZCJ_OK
                || (rc = s_pack(rd, json_array_get(pair, 1), depth + 1)) != ZCJ_OK)
                return rc;
        }
        return ZCJ_OK;
    }
    if (strcmp(tag, "$chan") == 0) {
        if (!json_is_string(v))
            return s_fail(rd, ZCJ_EJSON, "$chan wants a channel URI");
        zchan_t *ch = zchan_open(rd->ctx, json_string_value(v));
        if (!ch) {
            rd->zerr = zchan_errno();
            return s_fail(rd, ZCJ_ECHAN, "cannot open %s: %s", json_string_value(v), zchan_strerror(rd->zerr));
        }
        rc = zchan_msg_pack_chan(rd->msg, ch);
        zchan_destroy(&ch);
        if (rc != 0) {
            rd->zerr = rc;
            return s_fail(rd, ZCJ_ECHAN, "cannot pack a reference: %s", zchan_strerror(rc));
        }
        return ZCJ_OK;
    }
    return s_fail(rd, ZCJ_EJSON,
                  "unknown tag \"%s\" (keys starting with $ are tags; write {\"$map\": [[\"%s\", ...]]})", tag, tag);
}

static int s_pack(reader_t *rd, const json_t *v, int depth)
{
    size_t i;
    json_t *item;
    int rc;
    switch (json_typeof(v)) {
    case JSON_NULL: msgpack_pack_nil(rd->pk); return ZCJ_OK;
    case JSON_TRUE: msgpack_pack_true(rd->pk); return ZCJ_OK;
    case JSON_FALSE: msgpack_pack_false(rd->pk); return ZCJ_OK;
    case JSON_REAL: msgpack_pack_double(rd->pk, json_real_value(v)); return ZCJ_OK;
    case JSON_STRING: return s_pack_string(rd, v);
    case JSON_INTEGER: {
        json_int_t n = json_integer_value(v);
        if (n < 0)
            msgpack_pack_int64(rd->pk, (int64_t) n);
        else
            msgpack_pack_uint64(rd->pk, (uint64_t) n);
        return ZCJ_OK;
    }
    case JSON_ARRAY:
        if (depth >= ZCJ_MAX_DEPTH)
            return s_fail(rd, ZCJ_EJSON, "nested deeper than %d arrays and objects", ZCJ_MAX_DEPTH);
        msgpack_pack_array(rd->pk, json_array_size(v));
        json_array_foreach(v, i, item)
        {
            if ((rc = s_pack(rd, item, depth + 1)) != ZCJ_OK)
                return rc;
        }
        return ZCJ_OK;
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *val;
        bool tagged = false;
        json_object_keylen_foreach((json_t *) v, key, klen, val)
        {
            if (klen > 0 && key[0] == '$')
                tagged = true;
        }
        if (tagged) {
            if (json_object_size(v) != 1) {
                void *it = json_object_iter((json_t *) v);
                while (it && json_object_iter_key(it)[0] != '$')
                    it = json_object_iter_next((json_t *) v, it);
                return s_fail(rd, ZCJ_EJSON, "a tag object such as {\"%s\": ...} must have that one key only",
                              it ? json_object_iter_key(it) : "$");
            }
            void *it = json_object_iter((json_t *) v);
            return s_pack_tag(rd, json_object_iter_key(it), json_object_iter_value(it), depth);
        }
        if (depth >= ZCJ_MAX_DEPTH)
            return s_fail(rd, ZCJ_EJSON, "nested deeper than %d arrays and objects", ZCJ_MAX_DEPTH);
        msgpack_pack_map(rd->pk, json_object_size(v));
        json_object_keylen_foreach((json_t *) v, key, klen, val)
        {
            s_pack_bytes_str(rd->pk, key, klen);
            if ((rc = s_pack(rd, val, depth + 1)) != ZCJ_OK)
                return rc;
        }
        return ZCJ_OK;
    }
    }
    return s_fail(rd, ZCJ_EJSON, "unsupported JSON value");
}

int zcj_pack(zchan_ctx_t *ctx, const char *text, size_t len, zchan_msg_t *msg, int *zerr, char *err,
             size_t errlen)
{
    reader_t rd = {.ctx = ctx, .msg = msg, .pk = zchan_msg_packer(msg), .err = err, .errlen = errlen};
    static unsigned long s_seq;
    snprintf(rd.nonce, sizeof rd.nonce, "%lx.%lx", (unsigned long) getpid() ^ (unsigned long) time(NULL),
             (unsigned long) random() ^ ++s_seq);
    if (errlen)
        err[0] = 0;
    size_t mlen = 0;
    char *marked = s_mark_big_ints(&rd, text, len, &mlen);
    if (!marked)
        return s_fail(&rd, ZCJ_EJSON, "out of memory");
    json_error_t jerr;
    json_t *root = json_loadb(marked, mlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    free(marked);
    if (!root)
        return s_fail(&rd, ZCJ_EJSON, "bad JSON at column %d: %s", jerr.column, jerr.text);
    int rc = s_pack(&rd, root, 0);
    json_decref(root);
    if (zerr)
        *zerr = rd.zerr;
    return rc;
}

// ---------------------------------------------------------------------------
// Writing JSON

//  Returns true if p[0..n) is well-formed UTF-8 (no overlongs, surrogates or
//  code points above U+10FFFF).
static bool s_utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf)
            k = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            k = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 3, cp = c & 0x07;
        else
            return false;
        if (i + k >= n)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

//  Writes a JSON string of valid UTF-8 bytes.
static void s_write_str(FILE *out, const char *p, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) p[i];
        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(out, "\\u%04x", c);
            else
                fputc(c, out);
        }
    }
    fputc('"', out);
}

//  A float 64 prints as a JSON number, a float 32 as {"$float32": NUMBER};
//  NaN and the infinities as strings in a tag object ($float, $float32).
static void s_write_double(FILE *out, double d, bool f32)
{
    const char *tag = f32 ? "$float32" : "$float";
    if (isnan(d)) {
        fprintf(out, "{\"%s\":\"nan\"}", tag);
        return;
    }
    if (isinf(d)) {
        fprintf(out, "{\"%s\":\"%s\"}", tag, d > 0 ? "inf" : "-inf");
        return;
    }
    if (f32)
        fprintf(out, "{\"%s\":", tag);
    //  The shortest form that reads back as the same value.
    char buf[40];
    for (int prec = f32 ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        double back = strtod(buf, NULL);
        if (f32 ? (float) back == (float) d : back == d)
            break;
    }
    fputs(buf, out);
    if (!strpbrk(buf, ".eE"))
        fputs(".0", out);
    if (f32)
        fputc('}', out);
}

static void s_write(FILE *out, const msgpack_object *o);

//  A reference prints as {"$chan": URI} only when it is well-formed: what
//  the library's decoder accepts (version, kind, key, name, uri, locators,
//  CURVE key), with a UTF-8 URI. Anything else of the reference's ext type
//  prints as $ext with its bytes, so that zchan send packs it back exactly.
static void s_write_ref_or_ext(FILE *out, const msgpack_object *o)
{
    const msgpack_object_ext *e = &o->via.ext;
    if (e->type == ZCJ_EXT_REF) {
        zchan__ref_t *ref = malloc(sizeof *ref);
        bool ok = ref && zchan__ref_decode(e->ptr, e->size, ref) == 0
                  && s_utf8_valid((const unsigned char *) ref->uri, strlen(ref->uri));
        if (ok) {
            fputs("{\"$chan\":", out);
            s_write_str(out, ref->uri, strlen(ref->uri));
            fputc('}', out);
        }
        free(ref);
        if (ok)
            return;
    }
    fprintf(out, "{\"$ext\":[%d,\"", (int) e->type);
    s_b64_encode(out, (const unsigned char *) e->ptr, e->size);
    fputs("\"]}", out);
}

//  Whether a map can be a JSON object: every key a UTF-8 str without a NUL
//  byte, not starting with '$'.
static bool s_plain_map(const msgpack_object *o)
{
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR || (k->via.str.size > 0 && k->via.str.ptr[0] == '$')
            || !s_utf8_valid((const unsigned char *) k->via.str.ptr, k->via.str.size))
            return false;
        //  jansson reads no NUL in an object key (it does in a string).
        if (k->via.str.size > 0 && memchr(k->via.str.ptr, 0, k->via.str.size))
            return false;
    }
    return true;
}

static void s_write(FILE *out, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", out); return;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", out); return;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(out, "%" PRIu64, o->via.u64); return;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(out, "%" PRId64, o->via.i64); return;
    case MSGPACK_OBJECT_FLOAT32: s_write_double(out, o->via.f64, true); return;
    case MSGPACK_OBJECT_FLOAT64: s_write_double(out, o->via.f64, false); return;
    case MSGPACK_OBJECT_STR:
        if (s_utf8_valid((const unsigned char *) o->via.str.ptr, o->via.str.size))
            s_write_str(out, o->via.str.ptr, o->via.str.size);
        else {
            fputs("{\"$strb64\":\"", out);
            s_b64_encode(out, (const unsigned char *) o->via.str.ptr, o->via.str.size);
            fputs("\"}", out);
        }
        return;
    case MSGPACK_OBJECT_BIN:
        fputs("{\"$bin\":\"", out);
        s_b64_encode(out, (const unsigned char *) o->via.bin.ptr, o->via.bin.size);
        fputs("\"}", out);
        return;
    case MSGPACK_OBJECT_EXT: s_write_ref_or_ext(out, o); return;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', out);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                fputc(',', out);
            s_write(out, &o->via.array.ptr[i]);
        }
        fputc(']', out);
        return;
    case MSGPACK_OBJECT_MAP: {
        bool plain = s_plain_map(o);
        fputs(plain ? "{" : "{\"$map\":[", out);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                fputc(',', out);
            if (!plain)
                fputc('[', out);
            s_write(out, &o->via.map.ptr[i].key);
            fputc(plain ? ':' : ',', out);
            s_write(out, &o->via.map.ptr[i].val);
            if (!plain)
                fputc(']', out);
        }
        fputs(plain ? "}" : "]}", out);
        return;
    }
    }
    fputs("null", out);
}

int zcj_print(FILE *out, const msgpack_object *obj)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *mem = open_memstream(&buf, &n);
    if (!mem)
        return -1;
    s_write(mem, obj);
    fputc('\n', mem);
    if (fclose(mem) != 0) {
        free(buf);
        return -1;
    }
    int rc = fwrite(buf, 1, n, out) == n && fflush(out) == 0 ? 0 : -1;
    free(buf);
    return rc;
}
