/*  json.h: JSON <-> msgpack for the zchan CLI (tools/zchan.c).

    JSON values map to msgpack as: null, true, false; integers to msgpack
    integers (the full int64 and uint64 ranges); reals to float64; strings to
    str; arrays; objects to maps with str keys. What JSON cannot show is
    written as a one-key "tag" object, read back the same way:

      {"$chan": "URI"}            a well-formed channel reference (ext 90), by
                                  its URI (what the library's decoder accepts)
      {"$bin": "BASE64"}          msgpack bin
      {"$ext": [TYPE, "BASE64"]}  msgpack ext other than a well-formed reference
      {"$float": "nan"}           NaN, "inf" or "-inf" (also a number: a float64)
      {"$float32": 0.1}           a float32 (also "nan", "inf", "-inf")
      {"$map": [[KEY, VALUE]...]} a map with a key that is not a string, or
                                  a key that starts with "$" or holds a
                                  NUL byte
      {"$strb64": "BASE64"}       a msgpack str whose bytes are not UTF-8

    An object with a key starting with "$" is always a tag: an input object
    like {"$x": 1} is refused (write {"$map": [["$x", 1]]}).
*/
#ifndef ZCHAN_TOOLS_JSON_H_INCLUDED
#define ZCHAN_TOOLS_JSON_H_INCLUDED

#include <stdio.h>
#include <zchan.h>

//  The deepest nesting of arrays and maps a message may have: msgpack-c
//  cannot decode deeper ones.
#define ZCJ_MAX_DEPTH 32

typedef enum {
    ZCJ_OK = 0,
    ZCJ_EJSON, // the text is not one JSON value, or not one zchan can send
    ZCJ_ECHAN, // a {"$chan": URI} could not be opened; see *zerr
} zcj_err_t;

//  Packs the JSON text (len bytes, one value) into msg, which must be empty.
//  {"$chan": URI} opens URI through ctx (one request to its hub) and packs a
//  reference to it. Returns ZCJ_OK; ZCJ_EJSON with a one-line reason in err;
//  or ZCJ_ECHAN with the zchan error in *zerr and the reason in err. On
//  failure msg holds a partial value: destroy it.
int zcj_pack(zchan_ctx_t *ctx, const char *text, size_t len, zchan_msg_t *msg, int *zerr, char *err,
             size_t errlen);

//  Writes obj as one line of JSON (a newline at the end) to out, as a single
//  write so that concurrent writers do not interleave lines. Returns 0, or -1
//  if out fails or memory runs out.
int zcj_print(FILE *out, const msgpack_object *obj);

#endif
