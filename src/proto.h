/*  proto.h: the zchan wire protocol's codec (docs/PROTOCOL.md is the
    normative text): message types, header decoding and encoding, frame I/O.

    Every zchan message is one or two ZeroMQ frames after the ROUTER identity:
    a header (a msgpack array whose first element is the message type) and, for
    DATA and DELIVER, a payload (one msgpack value, passed through untouched).

    The layout of each message (which field sits where) is not here: it is in
    the wire module (wire.h), the only user of the indexed getters and of the
    packers below, apart from tests that talk raw protocol. The layouts in the
    comments of the enums are a summary of wire.h.
*/
#ifndef ZCHAN_PROTO_H_INCLUDED
#define ZCHAN_PROTO_H_INCLUDED

#include "internal.h"

#define ZCHAN_PROTO_VERSION 1

//  Client to hub.
enum {
    ZCHAN__CREATE = 1,    // [1, reqid, key, kind, capacity, resend_latest, version]
    ZCHAN__OPEN = 2,      // [2, reqid, key, version]
    ZCHAN__CLOSE = 3,     // [3, reqid, key]
    ZCHAN__ATTACH_S = 4,  // [4, reqid, key, version]
    ZCHAN__ATTACH_R = 5,  // [5, reqid, key, limit, version]
    ZCHAN__DATA = 6,      // [6, handle] + payload
    ZCHAN__FLUSH = 7,     // [7, reqid, handle]
    ZCHAN__CREDIT = 8,    // [8, handle, consumed, grant]
    ZCHAN__DETACH = 9,    // [9, reqid, handle, consumed]
    ZCHAN__CANCEL = 10,   // [10, reqid, handle]
    ZCHAN__STAT = 11,     // [11, reqid, key]
    ZCHAN__PING = 12,     // [12, reqid]
};

//  Hub to client.
enum {
    ZCHAN__REPLY = 64,   // [64, reqid, status, ...]
    ZCHAN__ACK = 65,     // [65, n]: n more anycast messages accepted (sender credit)
    ZCHAN__DELIVER = 66, // [66, dropped] + payload
    ZCHAN__CLOSED = 67,  // [67]: the channel is closed (after all deliveries, for receivers);
                         // [67, 1]: this connection has no such attachment here (ZCHAN__NOT_ATTACHED)
    ZCHAN__CLOSING = 68, // [68]: to receivers at the close: CLOSED follows once they have drained
    ZCHAN__REFUSED = 69, // [69, status]: to a sender: the hub refused one of its messages (ELIMIT)
};

//  The reason field of [67, reason]: the hub does not know the attachment
//  (it restarted, or dropped the connection). Not a close of the channel.
#define ZCHAN__NOT_ATTACHED 1

//  A decoded header: the root array of a header frame.
#define ZCHAN__HDR_FAST 8
typedef struct {
    msgpack_zone zone;
    msgpack_object obj;
    bool valid;
    //  The elements of a short all-integer header, decoded without the zone
    msgpack_object fast[ZCHAN__HDR_FAST];
} zchan__hdr_t;

//  Initializes a header decoder with its own zone. Free with zchan__hdr_fini.
void zchan__hdr_init(zchan__hdr_t *h);
void zchan__hdr_fini(zchan__hdr_t *h);

//  Decodes data as exactly one msgpack array with an integer first element.
//  Strings in the result point into data. Returns 0 or EPROTO.
int zchan__hdr_parse(zchan__hdr_t *h, const void *data, size_t size);

//  Checks, without allocating, that the msgpack value at the start of data
//  declares no string, bin, ext, array or map longer than the bytes that
//  follow could hold. msgpack-c allocates a container's elements as soon as
//  it reads the count, so unchecked, a peer's five bytes (dd ff ff ff ff)
//  make it ask for 2^32 objects. Call it on peer bytes before
//  msgpack_unpack. Returns 0 or EPROTO. Trailing bytes are not checked.
int zchan__msgpack_check(const void *data, size_t size);
//  As zchan__msgpack_check, and sets *end to the offset just past the value.
//  It walks every byte of the value, so "0 and *end == size" means data is
//  exactly one msgpack value, as msgpack_unpack would find: one pass, no
//  allocation.
int zchan__msgpack_span(const void *data, size_t size, size_t *end);

//  The header's length, type, and typed fields. A missing or mistyped field
//  returns EPROTO and leaves *out untouched. Field positions belong to the
//  wire module (wire.c): call these from there only.
size_t zchan__hdr_len(const zchan__hdr_t *h);
int zchan__hdr_type(const zchan__hdr_t *h);
int zchan__hdr_u64(const zchan__hdr_t *h, size_t i, uint64_t *out);
int zchan__hdr_bool(const zchan__hdr_t *h, size_t i, bool *out);
//  A str field as a pointer and length (not NUL-terminated).
int zchan__hdr_str(const zchan__hdr_t *h, size_t i, const char **p, size_t *len);
//  Any field, for nested values (reply info maps).
const msgpack_object *zchan__hdr_at(const zchan__hdr_t *h, size_t i);

//  A header being built. Headers are small: they are packed into a buffer
//  inside the struct (so it must not move between init and fini), which
//  moves to the heap only for a long one (a reply with hub info).
#define ZCHAN__OUT_INLINE 128
typedef struct {
    struct {
        char *data;  // inline, or on the heap once it outgrew it
        size_t size;
        size_t alloc;
        bool failed; // out of memory: the header is incomplete
    } sbuf;
    msgpack_packer pk;
    char inline_buf[ZCHAN__OUT_INLINE];
} zchan__out_t;

//  Starts a header array of n elements with type as the first. Free with
//  zchan__out_fini after sending. Called by wire.c's pack functions.
void zchan__out_init(zchan__out_t *o, size_t n, int type);
void zchan__out_fini(zchan__out_t *o);
void zchan__out_u64(zchan__out_t *o, uint64_t v);
void zchan__out_str(zchan__out_t *o, const char *s);
void zchan__out_strn(zchan__out_t *o, const char *s, size_t n);
void zchan__out_bool(zchan__out_t *o, bool v);

//  Sends the header frame (with ZMQ_SNDMORE when more is true). flags may add
//  ZMQ_DONTWAIT. Returns 0 or a zchan error.
int zchan__out_send(zchan__out_t *o, void *sock, bool more, int flags);

//  Reads one whole multipart message (at most max frames; extra frames are
//  read and discarded and *nframes says how many there were). Frames must be
//  zmq_msg_init'ed by the caller and are closed by the caller.
//  Returns 0, ETIMEDOUT (nothing waiting with ZMQ_DONTWAIT), or an error.
int zchan__recv_frames(void *sock, zmq_msg_t *frames, size_t max, size_t *nframes, int flags);

//  Waits in sock's own receive until deadline (ms, -1: none) for one whole
//  message, as zchan__recv_frames: one system call to sleep, where zmq_poll
//  costs several. *rcvtimeo caches the socket's ZMQ_RCVTIMEO (-1 for a new
//  socket). Returns 0 (received), ETIMEDOUT (nothing came: the timeout ran
//  out or a signal came; look at the clock), or another error.
int zchan__recv_until(void *sock, int *rcvtimeo, int64_t deadline, zmq_msg_t *frames, size_t max,
                      size_t *nframes);

//  Copies a str field into a NUL-terminated malloc'ed string (NULL on ENOMEM).
char *zchan__strndup(const char *p, size_t len);

#endif
