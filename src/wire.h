/*  wire.h: the wire format of zchan's messages (docs/PROTOCOL.md is the
    normative text). The only code that knows where a field sits.

    For each message type a struct, a pack function (struct -> header, into a
    zchan__out_t: the header's buffer is inline, so packing allocates nothing
    but for a long reply with hub info), and a parse function (a decoded
    header, zchan__hdr_parse, -> struct). A parse function checks the type,
    the count, the type of every field, and the ranges the protocol fixes;
    it returns 0, or ZCHAN_EPROTO for a header that is not that message (a
    wrong type, a missing or mistyped field), or, where said, ZCHAN_EINVAL
    for well-formed fields whose values are out of range. It never asserts on
    a peer's bytes. Strings in a parsed struct point into the header's frame
    (not NUL-terminated: use their length). On an error *m is undefined.

    Also here: the hub-info codec (the map in replies and references) and the
    channel reference codec (the body of ext ZCHAN_EXT_REF).

    Callers: chan.c (CREATE, OPEN, CLOSE, STAT), sender.c, receiver.c,
    request.c (replies and their request ids), msg.c (references), and the hub
    (src/hub/handlers.c parses every request; src/hub/out.c packs what the
    hub sends).
*/
#ifndef ZCHAN_WIRE_H_INCLUDED
#define ZCHAN_WIRE_H_INCLUDED

#include "proto.h"
#include "transport.h"

#define ZCHAN__ID_MAX 96   // longest host or process identity
#define ZCHAN__MAX_LOC 8   // locators a hub advertises at most
#define ZCHAN__KEY_Z85 41  // a CURVE key in Z85 text, NUL included

//  Who a hub is and where it can be reached: what replies and references carry.
typedef struct {
    char host[ZCHAN__ID_MAX]; // host identity ($ZCHAN_HOST_ID, else the boot id)
    char proc[ZCHAN__ID_MAX]; // process identity (host, pid and 64 random bits)
    char hub[ZCHAN__ID_MAX];  // hub identity (proc and a counter)
    int nloc;
    char loc[ZCHAN__MAX_LOC][ZCHAN__EP_MAX];
    char curve[ZCHAN__KEY_Z85]; // CURVE public key (Z85) its tcp endpoints require, "" if none
} zchan__hubinfo_t;

// ---------------------------------------------------------------------------
// Client to hub

//  [CREATE, reqid, key, kind, capacity, resend_latest, version]
//  Parse: EINVAL for a kind that is neither anycast nor broadcast, an empty
//  key, one of ZCHAN__EP_MAX bytes or more or with a zero byte, or a capacity
//  over 2^40.
typedef struct {
    uint64_t reqid;
    const char *key;
    size_t key_len;
    uint64_t kind;
    uint64_t capacity;
    bool resend;
} zchan__wire_create_t;

//  A request that names a channel by key:
//  [OPEN, reqid, key, version], [CLOSE, reqid, key], [STAT, reqid, key],
//  [ATTACH_S, reqid, key, version].
typedef struct {
    uint64_t reqid;
    const char *key;
    size_t key_len;
} zchan__wire_keyed_t;

//  [ATTACH_R, reqid, key, limit, version] (limit: a broadcast receiver's
//  buffer; its range depends on the channel, checked by the hub).
typedef struct {
    uint64_t reqid;
    const char *key;
    size_t key_len;
    uint64_t limit;
} zchan__wire_attach_r_t;

//  [DATA, handle] + payload
typedef struct {
    uint64_t handle;
} zchan__wire_data_t;

//  [FLUSH, reqid, handle], [CANCEL, reqid, handle]
typedef struct {
    uint64_t reqid;
    uint64_t handle;
} zchan__wire_handle_req_t;

//  [CREDIT, handle, consumed, grant]
typedef struct {
    uint64_t handle;
    uint64_t consumed;
    uint64_t grant;
} zchan__wire_credit_t;

//  [DETACH, reqid, handle, consumed]
typedef struct {
    uint64_t reqid;
    uint64_t handle;
    uint64_t consumed;
} zchan__wire_detach_t;

//  Each pack function starts *o (zchan__out_init) and fills it: send it with
//  zchan__out_send, free it with zchan__out_fini. The version field is
//  always ZCHAN_PROTO_VERSION; parse functions reject any other (EPROTO).
void zchan__wire_pack_create(zchan__out_t *o, const zchan__wire_create_t *m);
void zchan__wire_pack_open(zchan__out_t *o, const zchan__wire_keyed_t *m);
void zchan__wire_pack_close(zchan__out_t *o, const zchan__wire_keyed_t *m);
void zchan__wire_pack_stat(zchan__out_t *o, const zchan__wire_keyed_t *m);
void zchan__wire_pack_attach_s(zchan__out_t *o, const zchan__wire_keyed_t *m);
void zchan__wire_pack_attach_r(zchan__out_t *o, const zchan__wire_attach_r_t *m);
void zchan__wire_pack_data(zchan__out_t *o, const zchan__wire_data_t *m);
void zchan__wire_pack_flush(zchan__out_t *o, const zchan__wire_handle_req_t *m);
void zchan__wire_pack_cancel(zchan__out_t *o, const zchan__wire_handle_req_t *m);
void zchan__wire_pack_credit(zchan__out_t *o, const zchan__wire_credit_t *m);
void zchan__wire_pack_detach(zchan__out_t *o, const zchan__wire_detach_t *m);
void zchan__wire_pack_ping(zchan__out_t *o, uint64_t reqid);

int zchan__wire_parse_create(const zchan__hdr_t *h, zchan__wire_create_t *m);
int zchan__wire_parse_open(const zchan__hdr_t *h, zchan__wire_keyed_t *m);
int zchan__wire_parse_close(const zchan__hdr_t *h, zchan__wire_keyed_t *m);
int zchan__wire_parse_stat(const zchan__hdr_t *h, zchan__wire_keyed_t *m);
int zchan__wire_parse_attach_s(const zchan__hdr_t *h, zchan__wire_keyed_t *m);
int zchan__wire_parse_attach_r(const zchan__hdr_t *h, zchan__wire_attach_r_t *m);
int zchan__wire_parse_data(const zchan__hdr_t *h, zchan__wire_data_t *m);
int zchan__wire_parse_flush(const zchan__hdr_t *h, zchan__wire_handle_req_t *m);
int zchan__wire_parse_cancel(const zchan__hdr_t *h, zchan__wire_handle_req_t *m);
int zchan__wire_parse_credit(const zchan__hdr_t *h, zchan__wire_credit_t *m);
int zchan__wire_parse_detach(const zchan__hdr_t *h, zchan__wire_detach_t *m);
int zchan__wire_parse_ping(const zchan__hdr_t *h, uint64_t *reqid);

//  The request id of any request but DATA and CREDIT (its field 1, whatever
//  its type, so that the hub can answer an unknown type EPROTO). 0 or EPROTO.
int zchan__wire_parse_reqid(const zchan__hdr_t *h, uint64_t *reqid);

// ---------------------------------------------------------------------------
// Hub to client

//  [REPLY, reqid, status]: parse gives any REPLY's reqid and status; a
//  status that is missing, mistyped or not a zchan_err_t gives status
//  ZCHAN_EPROTO (the reply is still the one to reqid). EPROTO only when the
//  header is not a REPLY with a reqid.
typedef struct {
    uint64_t reqid;
    int status;
} zchan__wire_reply_t;

//  [REPLY, reqid, 0, kind, capacity, closed, info]: to CREATE and OPEN.
//  Parse: EPROTO for a kind that is neither anycast nor broadcast, or a bad
//  info map.
typedef struct {
    uint64_t reqid;
    uint64_t kind;
    uint64_t capacity;
    bool closed;
    zchan__hubinfo_t info;
} zchan__wire_reply_chan_t;

//  [REPLY, reqid, 0, handle, kind, n, closed]: to ATTACH_S (n: the sender's
//  window) and ATTACH_R (n: the channel's capacity). Parse: EPROTO for a
//  kind that is neither anycast nor broadcast.
typedef struct {
    uint64_t reqid;
    uint64_t handle;
    uint64_t kind;
    uint64_t n;
    bool closed;
} zchan__wire_reply_attach_t;

//  [REPLY, reqid, status, cancelled]: to CANCEL.
typedef struct {
    uint64_t reqid;
    int status;
    bool cancelled;
} zchan__wire_reply_cancel_t;

//  [REPLY, reqid, 0, {kind, capacity, depth, senders, receivers, sent,
//  delivered, dropped, lost, closed}]: to STAT. Parse skips unknown keys (a
//  newer hub may send more) and keys whose value is not an integer or a
//  boolean; kind is required (EPROTO without a valid one).
typedef struct {
    uint64_t reqid;
    zchan_stat_t st;
} zchan__wire_reply_stat_t;

//  [ACK, n], [DELIVER, dropped] + payload, [REFUSED, status]
typedef struct {
    uint64_t n;
} zchan__wire_count_t;

//  [CLOSED] (reason 0) or [CLOSED, reason] (ZCHAN__NOT_ATTACHED: the hub
//  does not know the attachment; it is not a close of the channel).
typedef struct {
    uint64_t reason;
} zchan__wire_closed_t;

void zchan__wire_pack_reply(zchan__out_t *o, const zchan__wire_reply_t *m);
//  Locks nothing: info is read as it is (the hub copies its context's info
//  under the context's lock first).
void zchan__wire_pack_reply_chan(zchan__out_t *o, const zchan__wire_reply_chan_t *m);
void zchan__wire_pack_reply_attach(zchan__out_t *o, const zchan__wire_reply_attach_t *m);
void zchan__wire_pack_reply_cancel(zchan__out_t *o, const zchan__wire_reply_cancel_t *m);
void zchan__wire_pack_reply_stat(zchan__out_t *o, const zchan__wire_reply_stat_t *m);
void zchan__wire_pack_ack(zchan__out_t *o, const zchan__wire_count_t *m);
void zchan__wire_pack_deliver(zchan__out_t *o, const zchan__wire_count_t *m);
void zchan__wire_pack_refused(zchan__out_t *o, const zchan__wire_count_t *m);
void zchan__wire_pack_closed(zchan__out_t *o, const zchan__wire_closed_t *m);
void zchan__wire_pack_closing(zchan__out_t *o);

int zchan__wire_parse_reply(const zchan__hdr_t *h, zchan__wire_reply_t *m);
int zchan__wire_parse_reply_chan(const zchan__hdr_t *h, zchan__wire_reply_chan_t *m);
int zchan__wire_parse_reply_attach(const zchan__hdr_t *h, zchan__wire_reply_attach_t *m);
int zchan__wire_parse_reply_cancel(const zchan__hdr_t *h, zchan__wire_reply_cancel_t *m);
int zchan__wire_parse_reply_stat(const zchan__hdr_t *h, zchan__wire_reply_stat_t *m);
int zchan__wire_parse_ack(const zchan__hdr_t *h, zchan__wire_count_t *m);
int zchan__wire_parse_deliver(const zchan__hdr_t *h, zchan__wire_count_t *m);
int zchan__wire_parse_refused(const zchan__hdr_t *h, zchan__wire_count_t *m);
int zchan__wire_parse_closed(const zchan__hdr_t *h, zchan__wire_closed_t *m);
int zchan__wire_parse_closing(const zchan__hdr_t *h);

// ---------------------------------------------------------------------------
// Hub info and channel references (wire_ref.c)

//  Reads a hub info map (from a reply or reference) into info. 0 or EPROTO.
int zchan__hubinfo_read(const msgpack_object *o, zchan__hubinfo_t *info);

//  Packs info as a map.
void zchan__hubinfo_pack(msgpack_packer *pk, const zchan__hubinfo_t *info);

//  The fields of a channel reference (docs/PROTOCOL.md, section 14): the
//  body of ext ZCHAN_EXT_REF is [version, kind, key, name, uri, hubinfo].
typedef struct {
    zchan_kind_t kind;
    char key[ZCHAN__EP_MAX];
    char name[ZCHAN__EP_MAX];
    char uri[ZCHAN__EP_MAX];
    zchan__hubinfo_t info;
} zchan__ref_t;

//  Decodes the body of a reference (size bytes of a peer's) into *ref: no
//  sockets, no context. 0, EPROTO or ENOMEM.
int zchan__ref_decode(const void *body, size_t size, zchan__ref_t *ref);

//  What zchan__ref_pack packs: the same fields, by pointer (strings
//  NUL-terminated).
typedef struct {
    zchan_kind_t kind;
    const char *key;
    const char *name;
    const char *uri;
    const zchan__hubinfo_t *info;
} zchan__ref_out_t;

//  Packs ref as an ext ZCHAN_EXT_REF value with pk (its body is built in a
//  buffer of its own first). 0 or ENOMEM.
int zchan__ref_pack(msgpack_packer *pk, const zchan__ref_out_t *ref);

#endif
