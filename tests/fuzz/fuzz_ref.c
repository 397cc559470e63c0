/*  fuzz_ref.c: channel references, as a receiver of one decodes them.

    The input is the body of an ext 90 (ZCHAN_EXT_REF). Covered:
    zchan__ref_decode (with zchan__hubinfo_read) and zchan__ref_pack of what
    it decoded (the wire module's reference codec), then zchan_msg_chan, which
    also picks a locator (an ipc locator is looked up on the file system; no
    connection is made), and zchan_msg_pack_chan of the handle it made.
    Oracles, besides the sanitizers: the fields are NUL-terminated, non-empty
    where the protocol says so, and within their limits; zchan_msg_chan
    succeeds exactly when the decode does and a locator is reachable; a
    reference packed again decodes to the same fields.
*/
#include "fuzzutil.h"
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc, (void) argv;
    fz_ctx();
    return 0;
}

static void s_check_fields(const zchan__ref_t *ref)
{
    FZ_ASSERT(ref->kind == ZCHAN_ANYCAST || ref->kind == ZCHAN_BROADCAST, "kind %d", (int) ref->kind);
    size_t k = strlen(ref->key), n = strlen(ref->name), u = strlen(ref->uri);
    FZ_ASSERT(k < ZCHAN__EP_MAX && n < ZCHAN__EP_MAX && u < ZCHAN__EP_MAX, "field lengths");
    FZ_ASSERT(ref->info.nloc >= 1 && ref->info.nloc <= ZCHAN__MAX_LOC, "nloc %d", ref->info.nloc);
    FZ_ASSERT(strlen(ref->info.host) < ZCHAN__ID_MAX && strlen(ref->info.proc) < ZCHAN__ID_MAX
                  && strlen(ref->info.hub) < ZCHAN__ID_MAX,
              "hubinfo lengths");
    for (int i = 0; i < ref->info.nloc; i++)
        FZ_ASSERT(strlen(ref->info.loc[i]) < ZCHAN__EP_MAX, "locator %d", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    zchan_ctx_t *ctx = fz_ctx();
    static zchan__ref_t ref, again;
    memset(&ref, 0, sizeof ref);
    int rc = zchan__ref_decode(data, size, &ref);
    FZ_ASSERT(rc == 0 || rc == ZCHAN_EPROTO, "rc %d", rc);
    if (rc == 0) {
        s_check_fields(&ref);
        //  The codec's own round trip: packed again, it decodes the same.
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        zchan__ref_out_t out = {.kind = ref.kind, .key = ref.key, .name = ref.name, .uri = ref.uri, .info = &ref.info};
        FZ_ASSERT(zchan__ref_pack(&pk, &out) == 0, "ref_pack");
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        FZ_ASSERT(msgpack_unpack_next(&u, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS
                      && u.data.type == MSGPACK_OBJECT_EXT && u.data.via.ext.type == ZCHAN_EXT_REF,
                  "ref_pack gave no reference");
        memset(&again, 0, sizeof again);
        FZ_ASSERT(zchan__ref_decode(u.data.via.ext.ptr, u.data.via.ext.size, &again) == 0, "ref_pack: no decode");
        FZ_ASSERT(memcmp(&again, &ref, sizeof ref) == 0 || (again.kind == ref.kind && !strcmp(again.key, ref.key)
                      && !strcmp(again.name, ref.name) && !strcmp(again.uri, ref.uri)
                      && !strcmp(again.info.hub, ref.info.hub) && again.info.nloc == ref.info.nloc
                      && !strcmp(again.info.curve, ref.info.curve)),
                  "ref_pack round trip differs");
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
    }
    //  The public way in: an ext object whose body is the input.
    msgpack_object obj;
    memset(&obj, 0, sizeof obj);
    obj.type = MSGPACK_OBJECT_EXT;
    obj.via.ext.type = ZCHAN_EXT_REF;
    obj.via.ext.ptr = (const char *) data;
    obj.via.ext.size = (uint32_t) size;
    zchan_t *ch = zchan_msg_chan(ctx, &obj);
    char ep[ZCHAN__EP_MAX];
    bool reachable = rc == 0 && zchan__pick_locator(ctx, &ref.info, ep, sizeof ep) == 0;
    FZ_ASSERT((ch != NULL) == reachable, "zchan_msg_chan %s, decode %d", ch ? "made a handle" : "failed", rc);
    if (!ch)
        return 0;
    FZ_ASSERT(zchan_kind(ch) == ref.kind && strcmp(zchan_uri(ch), ref.uri) == 0
                  && strcmp(zchan_name(ch), ref.name) == 0,
              "handle fields");
    //  Pack it again, as a process passing the reference on does.
    zchan_msg_t *msg = zchan_msg_new();
    FZ_ASSERT(msg && zchan_msg_pack_chan(msg, ch) == 0, "pack");
    const msgpack_object *o = zchan_msg_object(msg);
    FZ_ASSERT(o && o->type == MSGPACK_OBJECT_EXT && o->via.ext.type == ZCHAN_EXT_REF, "packed reference");
    memset(&again, 0, sizeof again);
    FZ_ASSERT(zchan__ref_decode(o->via.ext.ptr, o->via.ext.size, &again) == 0, "repacked does not decode");
    FZ_ASSERT(again.kind == ref.kind && strcmp(again.key, ref.key) == 0 && strcmp(again.name, ref.name) == 0
                  && strcmp(again.uri, ref.uri) == 0,
              "repacked differs");
    //  A reference to a channel of ctx's own hub carries ctx's locators.
    if (strcmp(ref.info.hub, ctx->info.hub) != 0) {
        FZ_ASSERT(again.info.nloc == ref.info.nloc && strcmp(again.info.host, ref.info.host) == 0
                      && strcmp(again.info.proc, ref.info.proc) == 0 && strcmp(again.info.hub, ref.info.hub) == 0,
                  "repacked hubinfo differs");
        for (int i = 0; i < ref.info.nloc; i++)
            FZ_ASSERT(strcmp(again.info.loc[i], ref.info.loc[i]) == 0, "repacked locator %d differs", i);
    }
    zchan_msg_destroy(&msg);
    zchan_destroy(&ch);
    return 0;
}
