/*  zchan.h: Go-style channels over ZeroMQ, between threads, processes and hosts.

    Conventions, for every function below:
    - A function returning int returns ZCHAN_OK (0) or a zchan_err_t value.
    - A function returning a pointer returns NULL on failure; zchan_errno() then
      tells why.
    - Passing a NULL object where an object is required is a programming error
      and aborts; failures of the network, the filesystem, a peer or memory are
      returned, never asserted.
    - x_destroy(&p) releases *p, sets *p to NULL, and does nothing when *p is
      already NULL.
    - timeout_ms: -1 waits forever, 0 never waits, N > 0 waits at most N ms.
    - Senders, receivers, timers and selects are used by one thread at a time.
      Contexts and channel handles may be shared between threads.
    - Objects left over: destroy every sender, receiver and channel handle
      before its context. One still alive when its context is destroyed, or
      anything alive when the process exits (a return from main, exit()),
      is closed for you and logged as "dangling" (zsys_warning): the program
      still exits, and the context's files in the runtime directory are
      removed. A leftover handle is then inert: its calls fail with
      ZCHAN_ECLOSED at once (a receiver reads as stopped), and its destroy
      still frees it. A call in progress on it in another thread when the
      process exits is woken by czmq's zmq_ctx_term and fails with
      ZCHAN_ECLOSED.
*/
#ifndef ZCHAN_H_INCLUDED
#define ZCHAN_H_INCLUDED

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  ZCHAN_EXPORT marks the public functions: libzchan.so is built with hidden
//  visibility and exports these, and nothing else.
#if defined(__GNUC__) || defined(__clang__)
#define ZCHAN_EXPORT __attribute__((visibility("default")))
#else
#define ZCHAN_EXPORT
#endif

#define ZCHAN_VERSION_MAJOR 0
#define ZCHAN_VERSION_MINOR 1
#define ZCHAN_VERSION_PATCH 0

typedef struct zchan_ctx_t zchan_ctx_t;           // one per process: ZeroMQ context + hub
typedef struct zchan_t zchan_t;                   // a handle on a channel, hosted here or elsewhere
typedef struct zchan_sender_t zchan_sender_t;     // used by one thread at a time
typedef struct zchan_receiver_t zchan_receiver_t; // used by one thread at a time
typedef struct zchan_msg_t zchan_msg_t;           // one msgpack value
typedef struct zchan_timer_t zchan_timer_t;
typedef struct zchan_select_t zchan_select_t;

typedef enum {
    ZCHAN_OK = 0,
    ZCHAN_ETIMEDOUT, // the timeout passed; nothing was sent or received
    ZCHAN_ECLOSED,   // channel closed: senders fail; receivers after draining; stopped timers
    ZCHAN_EINVAL,    // bad argument, bad URI, or a name already used by the other kind
    ZCHAN_ENOTFOUND, // no channel of that name is hosted where the URI points
    ZCHAN_ETYPE,     // the message is not of the type asked for (it is consumed)
    ZCHAN_EPROTO,    // a peer sent bytes that are not zchan protocol
    ZCHAN_ENOMEM,
    ZCHAN_ESYS,  // an operating-system or ZeroMQ failure; details in the log
    ZCHAN_ELIMIT // a hub's resource limit refused it (zchan_ctx_set_limit)
} zchan_err_t;

#define ZCHAN_ANYCAST_CAPACITY 10 // default anycast capacity, as frequenz-channels
#define ZCHAN_BROADCAST_LIMIT 50  // default per-receiver broadcast limit

//  Credit windows. The capacity C of an anycast channel bounds the messages
//  that wait at the channel for a receiver (accepted, not yet handed to one).
//  Beyond it, each sender may have handed the hub zchan_sender_window(C)
//  messages the channel has not yet accepted before its send blocks: 1 at
//  capacity 0 (a rendezvous), ZCHAN_SENDER_SLACK up to a capacity of
//  ZCHAN_SENDER_SLACK, then C itself, up to ZCHAN_WINDOW_MAX. And each
//  receiver may hold its window beyond both: messages handed to it and not
//  yet returned by zchan_recv. A receiver's window starts at min(C, 16) (1
//  at capacity 0, where it asks for one message only while it waits) and
//  doubles, up to ZCHAN_WINDOW_MAX, when the receiver runs dry (finds no
//  message waiting) having consumed a whole window since its window last
//  changed: one that keeps up earns a large window, one that sits on
//  messages keeps its small one, so it never hoards work a faster receiver
//  could do. A receiver's window is at most
//  min(ZCHAN_WINDOW_MAX, min(C, 16) + the messages it consumed), and the
//  hub holds any receiver to ZCHAN_WINDOW_MAX whatever it asks. So an
//  anycast channel of capacity C with S senders and receivers of windows
//  W1..WR holds at most C + S * zchan_sender_window(C) + W1 + ... + WR
//  unconsumed messages (C + S * zchan_sender_window(C) with no receiver
//  holding any). A receiver destroyed gracefully gives back what it held,
//  at the front of the channel (which may then hold more than C for a
//  while); one that dies loses at most its window, counted in the channel's
//  lost. A broadcast receiver's window is fixed: a quarter of its limit, at
//  least 16 and at most ZCHAN_WINDOW_MAX. Larger windows are what carries
//  throughput between threads, processes and hosts: see docs/BENCHMARKS.md.
#define ZCHAN_SENDER_SLACK 256
#define ZCHAN_WINDOW_MAX 1024

//  Parties in the channel's own process: a sender or receiver made through
//  the context that hosts its channel (the one that created it) works on
//  the channel directly, without the hub thread or a socket. Such a
//  receiver takes each message straight out of the capacity as it reads,
//  and asks for one only while it waits (in zchan_recv, or in a select): it
//  holds no window beyond C (at most one message a select asked for and did
//  not read), and at capacity 0 a send completes only while a receiver
//  waits. Such a sender has the window above, but at most 16: it has no
//  round trip to cover. $ZCHAN_LOCAL=0 when the context is made turns this
//  off (its parties then use sockets, as every other party does).

//  The credit window of an anycast sender on a channel of the given capacity
//  (above). Pure arithmetic: never fails.
ZCHAN_EXPORT size_t zchan_sender_window(size_t capacity);

//  The msgpack ext type that carries a channel reference (see docs/PROTOCOL.md).
#define ZCHAN_EXT_REF 90

typedef enum { ZCHAN_ANYCAST = 1, ZCHAN_BROADCAST = 2 } zchan_kind_t;

//  Returns this thread's last error code, set by a call that returned NULL or a
//  non-zero code. Not cleared by successful calls: a call that succeeds
//  leaves it as it was, whatever it met and handled inside.
ZCHAN_EXPORT int zchan_errno(void);

//  Returns a static, human-readable description of err. Never NULL.
ZCHAN_EXPORT const char *zchan_strerror(int err);

// ---------------------------------------------------------------------------
// Context

//  Creates a context: the process-wide ZeroMQ context (czmq's, from
//  zsys_init, shared by all zchan contexts of the process and terminated by
//  czmq at exit) and one hub thread that hosts the channels created
//  through this context. The hub listens on inproc and, by default, on an ipc
//  socket (mode 0600) in the runtime directory ($ZCHAN_IPC_DIR, else
//  $XDG_RUNTIME_DIR/zchan, else /tmp/zchan-$UID), so other processes on this
//  host can reach its channels through references. zchan makes the runtime
//  directory with mode 0700 if it does not exist, and never changes the mode
//  of one that does: it uses an existing one only if it is a directory (not a
//  symlink) owned by the effective user with no group or other permissions.
//  Otherwise it logs why on stderr, and the context has no ipc: "ipc://" URIs
//  and binds fail with EINVAL.
//  Returns NULL (ESYS, ENOMEM) if the hub cannot start, EINVAL (logged) if
//  $ZCHAN_CURVE_CERT, $ZCHAN_CURVE_ALLOW or $ZCHAN_CURVE_SERVER_KEY are set
//  but unusable (see zchan_ctx_set_curve_server and _client).
//  zchan disables czmq's default SIGINT/SIGTERM handler: a library must not
//  take over its host program's signals. zchan logs through czmq's zsys log,
//  and the first context of a process points that log at stderr (czmq's own
//  default is stdout) unless $ZSYS_LOGSTREAM is set; a program that wants
//  another stream sets $ZSYS_LOGSTREAM or calls zsys_set_logstream after its
//  first zchan_ctx_new.
ZCHAN_EXPORT zchan_ctx_t *zchan_ctx_new(void);

//  Stops the hub (its channels disappear; remote parties see timeouts) and
//  frees the context. Every sender, receiver and channel handle made from it
//  should be destroyed first: any left is closed, logged as dangling, and
//  inert from then on (see the conventions above); the context's memory is
//  freed with the last of them. A context never destroyed is shut down the
//  same way at exit. Nulls *ctx_p.
ZCHAN_EXPORT void zchan_ctx_destroy(zchan_ctx_t **ctx_p);

//  Makes the hub also listen at endpoint: "tcp://HOST:PORT" (PORT 0 picks a
//  free port; see zchan_ctx_endpoint) or "ipc://NAME" (a socket NAME in the
//  runtime directory). Channels whose URIs fall under it ("tcp://HOST:PORT/CH",
//  "ipc://NAME/CH") are then hosted here. Blocks until the hub has bound.
//  Returns EINVAL for a malformed endpoint, ESYS if the address cannot be bound.
ZCHAN_EXPORT int zchan_ctx_bind(zchan_ctx_t *ctx, const char *endpoint);

//  Returns the endpoint the hub listens on for scheme ("tcp", "ipc" or
//  "inproc"), with the real port after binding port 0; the first one if several
//  were bound. NULL (ENOTFOUND) if none. The string belongs to the context.
ZCHAN_EXPORT const char *zchan_ctx_endpoint(zchan_ctx_t *ctx, const char *scheme);

//  Sets the host name or address that references advertise for this hub's tcp
//  endpoints, for a hub bound to 0.0.0.0 or behind a name. Defaults to
//  $ZCHAN_ADVERTISE, else the address that was bound. Affects references packed
//  after the call. Returns EINVAL for an empty host.
ZCHAN_EXPORT int zchan_ctx_set_advertise(zchan_ctx_t *ctx, const char *host);

//  Sets the time allowed for one request to a hub: creating, opening, closing a
//  channel, attaching a sender or receiver, and a sender's final flush. Default
//  5000 ms, or $ZCHAN_TIMEOUT_MS. -1 waits forever.
ZCHAN_EXPORT void zchan_ctx_set_timeout(zchan_ctx_t *ctx, int timeout_ms);

//  The default cap on one message frame that the hub accepts over ipc and tcp.
#define ZCHAN_DEFAULT_MAX_MSG_SIZE ((int64_t) 64 * 1024 * 1024)

//  Sets the largest frame, in bytes, that the hub accepts from a peer over ipc
//  and tcp (ZeroMQ's ZMQ_MAXMSGSIZE; -1: no limit). A peer that sends a larger
//  one is disconnected by ZeroMQ before the hub sees it; a sender of this
//  library then finds its attachment gone (ECLOSED). Applies to endpoints bound
//  after the call: zchan_ctx_bind, and ipc names this context then creates.
//  The context's default ipc endpoint is bound by zchan_ctx_new, with
//  $ZCHAN_MAX_MSG_SIZE if set, else ZCHAN_DEFAULT_MAX_MSG_SIZE (64 MiB).
//  Returns EINVAL for 0 or a value below -1.
ZCHAN_EXPORT int zchan_ctx_set_max_msg_size(zchan_ctx_t *ctx, int64_t bytes);

//  The resource limits of a hub, which keep one that serves untrusted peers
//  (zchan-relay on tcp) alive. A request over a limit is refused with
//  ZCHAN_ELIMIT; each refusal is counted and logged (at a limited rate) on
//  stderr by the hub. See docs/ARCHITECTURE.md, "Resource limits".
typedef enum {
    ZCHAN_LIMIT_CHANNELS,        // channels hosted at once (closed ones count until they are freed)
    ZCHAN_LIMIT_ATTACHMENTS,     // senders and receivers attached at once, all channels together
    ZCHAN_LIMIT_CAPACITY,        // the largest anycast capacity a creator may ask for
    ZCHAN_LIMIT_BROADCAST_LIMIT, // the largest per-receiver broadcast limit
    ZCHAN_LIMIT_CHANNEL_BYTES,   // bytes of messages one channel may hold
    ZCHAN_LIMIT_QUEUED_BYTES     // bytes of messages all channels may hold together
} zchan_limit_t;

//  The defaults of every hub, an application's own and zchan-relay's alike.
#define ZCHAN_DEFAULT_MAX_CHANNELS 100000
#define ZCHAN_DEFAULT_MAX_ATTACHMENTS 100000
#define ZCHAN_DEFAULT_MAX_CAPACITY ((uint64_t) 1 << 20)
#define ZCHAN_DEFAULT_MAX_BROADCAST_LIMIT ((uint64_t) 1 << 24)
#define ZCHAN_DEFAULT_MAX_CHANNEL_BYTES ((uint64_t) 256 * 1024 * 1024)
#define ZCHAN_DEFAULT_MAX_QUEUED_BYTES ((uint64_t) 1024 * 1024 * 1024)

//  Sets one resource limit of this context's hub, for the requests and
//  messages it handles from now on (what it already holds stays). Blocks for
//  one exchange with the hub thread. Bytes held are the messages' sizes plus
//  a fixed overhead each: anycast messages queued or handed to a receiver and
//  not yet consumed, and each broadcast receiver's buffered messages.
//  Refusals: creating a channel beyond ZCHAN_LIMIT_CHANNELS or with a
//  capacity above ZCHAN_LIMIT_CAPACITY, attaching beyond
//  ZCHAN_LIMIT_ATTACHMENTS or a broadcast receiver whose limit is above
//  ZCHAN_LIMIT_BROADCAST_LIMIT: the request fails with ELIMIT. An anycast
//  message that would take its channel or the hub over a byte limit is
//  dropped and counted in zchan_stat's `lost`; its sender gets its credit
//  back, and its next zchan_send fails once with ELIMIT (that message is
//  not sent). A broadcast receiver's buffer drops its oldest messages
//  (counted `dropped`) to stay within the byte limits. Returns EINVAL for
//  an unknown limit, a value of 0, or a limit above the protocol's own
//  bound (capacity 2^40, broadcast limit 2^24); ESYS if the hub does not
//  answer.
ZCHAN_EXPORT int zchan_ctx_set_limit(zchan_ctx_t *ctx, zchan_limit_t which, uint64_t value);

//  Returns the value of one resource limit of this context's hub (its default
//  until set); 0 for an unknown limit.
ZCHAN_EXPORT uint64_t zchan_ctx_limit(zchan_ctx_t *ctx, zchan_limit_t which);

//  The default ZeroMQ heartbeat interval; the default timeout is 5 intervals.
#define ZCHAN_DEFAULT_HEARTBEAT_MS 1000

//  Sets ZeroMQ's heartbeats (ZMQ_HEARTBEAT_IVL, _TIMEOUT, _TTL) on the
//  connections of this context: the hub's and every sender's, receiver's and
//  request's. Each end pings the other every interval_ms, and drops a
//  connection that stays silent for timeout_ms (0: 5 intervals), so a peer
//  that vanishes without closing (host down, link cut) is noticed within about
//  timeout_ms. The hub then treats that peer's receiver as dead (its unconsumed
//  messages are counted lost, see docs/ARCHITECTURE.md "Dead peers"). A
//  receiver of this context waiting in zchan_recv probes a hub it has not
//  heard from for timeout_ms, and stops with ECLOSED if the hub does not
//  answer within timeout_ms more, or answers that it lost the attachment.
//  interval_ms 0 turns all of this off. Call it before other threads use the
//  context. Applies to sockets made and endpoints bound after the call (the context's default ipc endpoint is bound by
//  zchan_ctx_new: use $ZCHAN_HEARTBEAT_MS and $ZCHAN_HEARTBEAT_TIMEOUT_MS for
//  it). Default: ZCHAN_DEFAULT_HEARTBEAT_MS (1 s) and 5 s. Returns EINVAL for
//  a negative value, an interval above 600000 ms, or a timeout below the
//  interval or above 6553500 ms.
ZCHAN_EXPORT int zchan_ctx_set_heartbeat(zchan_ctx_t *ctx, int interval_ms, int timeout_ms);

//  CURVE security on tcp (docs/ARCHITECTURE.md, "Security"). Certificates are
//  czmq zcert files: zcert_save(cert, PATH) writes PATH (the public key) and
//  PATH_secret (both keys); zchan reads either, and needs the secret. ipc and
//  inproc never use CURVE: the runtime directory's permissions guard them.

//  Makes this context's hub a CURVE server on every tcp endpoint it binds
//  from now on, with the certificate in cert_file (which needs its secret key).
//  Only clients whose public keys are in allowed_keys_dir connect: a directory
//  of public certificate files, as zcert_save writes them, read through
//  czmq's zauth, which rereads it when files are added or removed. "*" lets
//  any client key in (encryption without client authentication). A process
//  has one allowed-keys directory: ZeroMQ runs one ZAP handler per process
//  context, so every context of the process that calls this must give the
//  same one. Channel references and replies then carry the hub's public key,
//  so clients with a certificate reach it through them without being told
//  the key. Blocks to start zauth on first use. EINVAL if the certificate
//  cannot be read or has no secret key, if allowed_keys_dir is not a
//  directory (or differs from the process's), or if this context has already
//  bound a tcp endpoint (call it before zchan_ctx_bind); ESYS if zauth cannot
//  start (another ZAP handler runs in czmq's context). Also set at
//  zchan_ctx_new by $ZCHAN_CURVE_CERT with $ZCHAN_CURVE_ALLOW.
ZCHAN_EXPORT int zchan_ctx_set_curve_server(zchan_ctx_t *ctx, const char *cert_file, const char *allowed_keys_dir);

//  Sets how this context connects to hubs over tcp. cert_file: this client's
//  certificate, with its secret key (NULL keeps the one set before; without
//  any, the context makes a key pair of its own, which only hubs that allow
//  any key accept). server_public_key: the Z85 public key (40 characters) of
//  the hub that tcp URIs opened by name point at (zchan_anycast_new,
//  zchan_open... with "tcp://HOST:PORT/NAME"); NULL: none, they connect
//  without CURVE. A channel reached through a reference, or made from a
//  reply, uses the key its hub sent, whatever this says. Affects sockets made
//  after the call. EINVAL if the certificate cannot be read or has no secret
//  key, or the key is not Z85. Also set at zchan_ctx_new by $ZCHAN_CURVE_CERT
//  and $ZCHAN_CURVE_SERVER_KEY.
ZCHAN_EXPORT int zchan_ctx_set_curve_client(zchan_ctx_t *ctx, const char *cert_file, const char *server_public_key);

//  Returns the Z85 public key of this hub's server certificate, which its tcp
//  clients need (a relay logs it); NULL (ENOTFOUND) if it has none. The
//  string belongs to the context.
ZCHAN_EXPORT const char *zchan_ctx_curve_public_key(zchan_ctx_t *ctx);

// ---------------------------------------------------------------------------
// Channels.
//  uri: NULL (unnamed, reachable through references), "inproc://NAME"
//  (process-wide), "ipc://NAME" (host-wide: the first process to create it
//  hosts it), "ipc://HUB/NAME" or "tcp://HOST:PORT/NAME" (hosted by the hub
//  listening there: this context after zchan_ctx_bind, or another process such
//  as zchan-relay). NAME is 1 to 200 characters of [A-Za-z0-9._-].
//  *_new creates the channel, or joins it if it exists with the same kind
//  (EINVAL if it exists with the other kind). They block for one request to
//  the hosting hub (ETIMEDOUT after the context's timeout). A hub that is
//  shutting down (zchan-relay after SIGTERM) refuses new names with ECLOSED;
//  one at its channel count, or asked for an anycast capacity above its
//  largest, refuses with ELIMIT (zchan_ctx_set_limit).
//  An unnamed channel's name is its capability (anyone who knows it can use
//  the channel through any endpoint of its hub): ESYS (logged) if the kernel's
//  random source fails.

//  Creates or joins an anycast channel: each message reaches one receiver.
//  capacity is the number of unconsumed messages the channel holds before a
//  send blocks (0: rendezvous, a send completes when a receiver takes the
//  message). Joining ignores capacity.
ZCHAN_EXPORT zchan_t *zchan_anycast_new(zchan_ctx_t *ctx, const char *uri, size_t capacity);

//  Creates or joins a broadcast channel: each receiver gets every message sent
//  after it was created. With resend_latest, a new receiver first gets the last
//  message sent before it was created. Joining ignores resend_latest.
ZCHAN_EXPORT zchan_t *zchan_broadcast_new(zchan_ctx_t *ctx, const char *uri, bool resend_latest);

//  Joins an existing channel of either kind. ENOTFOUND if none has that URI.
ZCHAN_EXPORT zchan_t *zchan_open(zchan_ctx_t *ctx, const char *uri);

//  Returns the channel's URI (for an unnamed channel, "inproc://" and its
//  generated name). The string belongs to the handle.
ZCHAN_EXPORT const char *zchan_uri(const zchan_t *ch);

//  Returns the channel's name, generated ("zc-" and 32 hex digits: 128 bits
//  from the kernel's random source) when it was created unnamed. The string
//  belongs to the handle.
ZCHAN_EXPORT const char *zchan_name(const zchan_t *ch);

//  Returns ZCHAN_ANYCAST or ZCHAN_BROADCAST.
ZCHAN_EXPORT zchan_kind_t zchan_kind(const zchan_t *ch);

//  A channel's counters, as its hosting hub knows them.
typedef struct {
    zchan_kind_t kind;
    uint64_t capacity;  // anycast capacity (0 for broadcast)
    uint64_t depth;     // messages waiting: anycast queue not yet delivered;
                        // broadcast: the fullest receiver buffer
    uint64_t senders;   // senders attached now
    uint64_t receivers; // receivers attached now
    uint64_t sent;      // messages taken in from senders
    uint64_t delivered; // messages handed to receivers (one given back by a
                        // receiver and handed again counts again)
    uint64_t dropped;   // broadcast messages lost to receivers' limits
    uint64_t lost;      // messages that arrived after the close, that no
                        // receiver was left to take, or that a receiver held
                        // when it died (at most its credit window each)
    bool closed;
} zchan_stat_t;

//  Fills *st with the channel's counters: one request to the hosting hub.
//  ENOTFOUND if the hub no longer hosts it, ETIMEDOUT if the hub does not
//  answer within the context's timeout, EPROTO for a malformed answer.
ZCHAN_EXPORT int zchan_stat(zchan_t *ch, zchan_stat_t *st);

//  Closes the channel for every party (ChannelPy's close_all). Sends made
//  before it by the calling thread through senders of this context are
//  delivered first. Afterwards senders fail with ECLOSED, and receivers drain
//  what was sent before the close, then get ECLOSED. Closing twice is OK.
//  Messages that no receiver can take (none is attached) are counted lost.
//  Once no sender or receiver is attached, the hub frees the channel and
//  keeps its name closed; it forgets an unnamed channel after 4096 newer
//  ones, and then later calls on it give ENOTFOUND.
//  Blocks for one request to the hub; ETIMEDOUT if the hub does not answer.
ZCHAN_EXPORT int zchan_close(zchan_t *ch); // closes the channel for every party (ChannelPy's close_all).

//  Releases this handle only; the channel and its senders and receivers live
//  on. Nulls *ch_p.
ZCHAN_EXPORT void zchan_destroy(zchan_t **ch_p); // releases this handle only

// ---------------------------------------------------------------------------
// Senders and receivers

//  Creates a sender on ch and attaches it to the channel's hub (one request).
//  A sender created after a close is made, and its sends fail with ECLOSED.
//  NULL with ENOTFOUND if the hub no longer hosts the channel, ETIMEDOUT if the
//  hub does not answer, ELIMIT if the hub is at its attachment count.
ZCHAN_EXPORT zchan_sender_t *zchan_sender_new(zchan_t *ch);

//  Flushes and releases the sender: when it returns, everything the sender
//  sent has reached the channel (or the context's timeout passed without an
//  answer from the hub, which is logged). Nulls *s_p.
ZCHAN_EXPORT void zchan_sender_destroy(zchan_sender_t **s_p); // when it returns, all it sent has reached the channel

//  Waits until the hub has handled everything this sender sent (one request;
//  the context's timeout), and says whether all of it reached the channel
//  since the sender was made or since the last flush that did not time out.
//  Returns OK; ENOTFOUND if the hub lost the sender's attachment meanwhile,
//  so that some of those messages did not reach the channel: the hub dropped
//  the connection (a message over its maximum message size, see
//  zchan_ctx_set_max_msg_size) or restarted (the sender attaches again at its
//  next send); ECLOSED if the channel was closed and the hub no longer knows
//  the sender, or if the sender stopped because its hub is gone
//  (zchan_sender_hub_lost); ETIMEDOUT if the hub did not answer (nothing is
//  known then: flush again). Messages sent to a channel after its close are
//  counted lost by the hub (zchan_stat), not reported here.
ZCHAN_EXPORT int zchan_sender_flush(zchan_sender_t *s);

//  Creates a receiver on ch and attaches it (one request). From the moment it
//  returns, a broadcast receiver gets every message sent. limit is the number
//  of messages a broadcast receiver keeps while it does not read (0: the
//  default, ZCHAN_BROADCAST_LIMIT); past it the oldest are dropped and counted.
//  Anycast ignores limit. A receiver created after a close is stopped at once:
//  its reads give ECLOSED. NULL with ELIMIT if the hub is at its attachment
//  count or limit is above its largest broadcast limit (zchan_ctx_set_limit).
ZCHAN_EXPORT zchan_receiver_t *zchan_receiver_new(zchan_t *ch, size_t limit);

//  Releases the receiver. Graceful: the anycast messages it had been handed
//  but had not returned from zchan_recv go back to the channel for other
//  receivers. Blocks for one request to the hub. Nulls *r_p.
ZCHAN_EXPORT void zchan_receiver_destroy(zchan_receiver_t **r_p); // graceful: what it held goes back (anycast)

//  Returns how many broadcast messages this receiver has lost to its limit.
ZCHAN_EXPORT uint64_t zchan_receiver_dropped(const zchan_receiver_t *r);

//  Returns how many times the sender or receiver attached again by itself
//  because its hub had lost its attachment (a relay that restarted; see
//  docs/ARCHITECTURE.md, "A relay that restarts", for what may be lost then).
//  Never blocks. 0 for a merged receiver or an adaptor.
ZCHAN_EXPORT uint64_t zchan_sender_reattached(const zchan_sender_t *s);
ZCHAN_EXPORT uint64_t zchan_receiver_reattached(const zchan_receiver_t *r);

//  Returns true if the sender or receiver stopped because its hub was lost,
//  not because its channel was closed: the hub stopped answering (see
//  zchan_ctx_set_heartbeat), or it lost the attachment and finding the
//  channel again failed. Its sends or reads give ECLOSED all the same; this
//  tells the two apart. Never blocks. false for a merged receiver or an
//  adaptor.
ZCHAN_EXPORT bool zchan_sender_hub_lost(const zchan_sender_t *s);
ZCHAN_EXPORT bool zchan_receiver_hub_lost(const zchan_receiver_t *r);

// ---------------------------------------------------------------------------
// Messages: build with msgpack-c's packer; read the decoded root object.
//  A message to send must hold exactly one msgpack value.

//  Returns a new, empty message to pack one value into.
ZCHAN_EXPORT zchan_msg_t *zchan_msg_new(void);

//  Returns the message's packer (owned by the message). Pack exactly one value.
ZCHAN_EXPORT msgpack_packer *zchan_msg_packer(zchan_msg_t *msg);

//  Packs a reference to ch at the packer's current position (inside an array,
//  a map, or as the whole value). Whoever receives it can open it with
//  zchan_msg_chan. Returns ENOMEM on allocation failure.
ZCHAN_EXPORT int zchan_msg_pack_chan(zchan_msg_t *msg, const zchan_t *ch); // pack a reference, anywhere

//  Returns the decoded value of the message, valid until the message is
//  destroyed; NULL (EPROTO) if the bytes are not exactly one msgpack value.
ZCHAN_EXPORT const msgpack_object *zchan_msg_object(zchan_msg_t *msg);

//  Opens a channel reference found anywhere in a received value. Picks the
//  nearest locator the reference carries that this context can reach: inproc
//  in the same process, ipc on the same host, tcp otherwise. Does not talk to
//  the hub: a gone host shows up when a sender or receiver is created.
//  EINVAL if obj is not a zchan reference, EPROTO if it is malformed,
//  ENOTFOUND if no locator is reachable.
ZCHAN_EXPORT zchan_t *zchan_msg_chan(zchan_ctx_t *ctx, const msgpack_object *obj); // open a packed reference

//  Frees the message. Nulls *msg_p.
ZCHAN_EXPORT void zchan_msg_destroy(zchan_msg_t **msg_p);

// ---------------------------------------------------------------------------
// Send and receive. timeout_ms: -1 waits forever, 0 does not wait.

//  Sends *msg_p. On success takes the message and nulls *msg_p; on failure
//  leaves it with the caller. Blocks while an anycast channel is full (and, at
//  capacity 0, until a receiver takes the message); a broadcast send never
//  blocks. ECLOSED after a close, ETIMEDOUT, EINVAL if the message does not
//  hold exactly one value. ELIMIT, sending nothing, if the hub refused an
//  earlier anycast message of this sender over its byte limits (dropped and
//  counted lost there; reported once); at capacity 0, if it refused this one.
ZCHAN_EXPORT int zchan_send(zchan_sender_t *s, zchan_msg_t **msg_p, int timeout_ms); // takes *msg_p on success

//  Receives the next message into *msg_p (the caller destroys it). ECLOSED
//  once the channel is closed and everything sent before the close has been
//  received, or once the receiver's hub is found gone (see
//  zchan_ctx_set_heartbeat: within two heartbeat timeouts, 10 s by default, of
//  the last word from it; make a new receiver to go on); ETIMEDOUT; EPROTO if
//  a peer sent a payload that is not one msgpack value (the bad message is
//  consumed and counted).
ZCHAN_EXPORT int zchan_recv(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms);

//  Sends a msgpack str holding str (not NUL-terminated on the wire).
ZCHAN_EXPORT int zchan_send_str(zchan_sender_t *s, const char *str, int timeout_ms);

//  Receives a str (or bin) message into a new NUL-terminated string that the
//  caller frees with free(). ETYPE (message consumed) for other values.
ZCHAN_EXPORT int zchan_recv_str(zchan_receiver_t *r, char **str_p, int timeout_ms); // caller frees *str_p

//  Sends a msgpack integer.
ZCHAN_EXPORT int zchan_send_int(zchan_sender_t *s, int64_t value, int timeout_ms);

//  Receives an integer that fits in int64_t. ETYPE (message consumed) for
//  other values.
ZCHAN_EXPORT int zchan_recv_int(zchan_receiver_t *r, int64_t *value_p, int timeout_ms);

// ---------------------------------------------------------------------------
// Timers: ticks at start + k * interval; each tick yields its drift (now - scheduled time).
typedef enum {
    ZCHAN_TRIGGER_ALL_MISSED,     // every missed tick fires, back to back
    ZCHAN_SKIP_MISSED_AND_RESYNC, // one late tick, then back on the original grid
    ZCHAN_SKIP_MISSED_AND_DRIFT   // one late tick, then the grid restarts from now
} zchan_missed_t;                 //   (unless the delay is within the tolerance)

//  Creates a timer whose first tick is one interval from now, on the monotonic
//  clock. NULL (EINVAL) if interval_us <= 0.
ZCHAN_EXPORT zchan_timer_t *zchan_timer_new(int64_t interval_us, zchan_missed_t policy);

//  Sets the delay up to which SKIP_MISSED_AND_DRIFT keeps the grid instead of
//  restarting it. Default: interval / 10. A negative tolerance is taken as 0
//  (and logged).
ZCHAN_EXPORT void zchan_timer_set_tolerance(zchan_timer_t *t, int64_t tolerance_us);

//  Waits for the next tick and consumes it; stores now minus the tick's
//  scheduled time in *drift_us (if not NULL). ECLOSED if the timer is stopped,
//  ETIMEDOUT if no tick is due within timeout_ms.
ZCHAN_EXPORT int zchan_timer_wait(zchan_timer_t *t, int64_t *drift_us, int timeout_ms); // consumes one tick

//  Puts the next tick one interval from now; interval_us 0 keeps the interval
//  (so does a negative one, which is logged). Restarts a stopped timer.
ZCHAN_EXPORT void zchan_timer_reset(zchan_timer_t *t, int64_t interval_us);

//  Stops the timer: waits then return ECLOSED until a reset.
ZCHAN_EXPORT void zchan_timer_stop(zchan_timer_t *t); // wait then returns ECLOSED

//  Frees the timer. Nulls *t_p.
ZCHAN_EXPORT void zchan_timer_destroy(zchan_timer_t **t_p);

// ---------------------------------------------------------------------------
// Select over receivers (any transport, any mix) and timers, with zmq_poll.

//  Creates an empty select set.
ZCHAN_EXPORT zchan_select_t *zchan_select_new(void);

//  Adds a receiver (borrowed: the caller keeps ownership and must remove nothing
//  while waiting). EINVAL if already added.
ZCHAN_EXPORT int zchan_select_add_receiver(zchan_select_t *sel, zchan_receiver_t *r);

//  Adds a timer (borrowed). EINVAL if already added.
ZCHAN_EXPORT int zchan_select_add_timer(zchan_select_t *sel, zchan_timer_t *t);

//  Waits until a receiver has a message (or has stopped) or a timer has a tick.
//  Returns the ready receiver or timer; the caller then reads it with timeout 0.
//  A stopped receiver or timer is returned once (its read gives ECLOSED), then
//  left out. NULL with ETIMEDOUT on timeout, NULL with ECLOSED when every item
//  has stopped. No ready item starves another. Waiting uses no CPU.
ZCHAN_EXPORT void *zchan_select_wait(zchan_select_t *sel, int timeout_ms);

//  Frees the select set (not its receivers and timers). Nulls *sel_p.
ZCHAN_EXPORT void zchan_select_destroy(zchan_select_t **sel_p);

//  Returns one receiver that yields the messages of all n receivers, and
//  stops when all of them have stopped. Takes ownership of the n receivers
//  (also on failure); receivers[i] are set to NULL.
ZCHAN_EXPORT zchan_receiver_t *zchan_merge(zchan_receiver_t **receivers, size_t n);

// ---------------------------------------------------------------------------
// Adaptors and utilities (docs/ADAPTORS.md)

//  Returns a new message holding the same value as msg, independent of it:
//  either can be sent or destroyed first. The caller owns the copy. NULL with
//  EINVAL if msg does not hold exactly one msgpack value, or ENOMEM.
ZCHAN_EXPORT zchan_msg_t *zchan_msg_dup(zchan_msg_t *msg);

//  A map callback. It owns *msg_p during the call: it may read or replace it
//  (destroying the old message), or take it away (setting *msg_p to NULL).
//  Returns ZCHAN_OK, leaving the message to deliver in *msg_p, or an error
//  code for the reader; the adaptor then destroys whatever *msg_p holds.
typedef int(zchan_map_fn)(zchan_msg_t **msg_p, void *user);

//  Returns a receiver that yields fn's transform of each message of src. fn
//  runs in the reading thread, inside zchan_recv, once per message; user is
//  passed to it and stays the caller's. When fn fails, that read returns its
//  error (EINVAL instead of ETIMEDOUT, ECLOSED, a code that is not a
//  zchan_err_t, or OK with *msg_p NULL), the message is consumed, and the
//  next read goes on with the next message. Ready, for select, when src is;
//  stops when src stops; blocks as src does. Takes ownership of src (also on
//  failure: NULL with EINVAL if src or fn is NULL, ENOMEM).
ZCHAN_EXPORT zchan_receiver_t *zchan_map(zchan_receiver_t *src, zchan_map_fn *fn, void *user);

//  A filter predicate: true keeps the message. msg is borrowed: read it, do
//  not destroy or keep it.
typedef bool(zchan_filter_fn)(zchan_msg_t *msg, void *user);

//  Returns a receiver that yields the messages of src for which fn returns
//  true and drops the others. fn runs in the thread that reads or selects
//  the filter (inside zchan_recv and zchan_select_wait). A read waits for a
//  kept message within its own timeout: rejected messages are dropped along
//  the way and do not extend it. Select reports the filter ready only for a
//  kept message, an error or the stop; the filter then holds that message
//  until it is read (destroying the filter instead loses it, with a warning).
//  Errors of src (EPROTO...) are passed on. Stops when src stops. Takes
//  ownership of src (also on failure: NULL with EINVAL if src or fn is NULL,
//  ENOMEM).
ZCHAN_EXPORT zchan_receiver_t *zchan_filter(zchan_receiver_t *src, zchan_filter_fn *fn, void *user);

//  An event: a one-shot signal that any thread may set and any select can
//  wait on. Once set it stays set.
typedef struct zchan_event_t zchan_event_t;

//  Creates an unset event. It needs no context. NULL (ESYS, ENOMEM).
ZCHAN_EXPORT zchan_event_t *zchan_event_new(void);

//  Sets the event and wakes every thread waiting on it (zchan_event_wait, or
//  a select or read on one of its receivers). Thread-safe; never blocks;
//  setting again does nothing. ESYS if the wake-up could not be written (the
//  event is set all the same).
ZCHAN_EXPORT int zchan_event_set(zchan_event_t *ev);

//  Returns whether the event is set. Thread-safe; never blocks.
ZCHAN_EXPORT bool zchan_event_is_set(zchan_event_t *ev);

//  Blocks, without CPU, until the event is set (returns OK) or timeout_ms
//  passes (ETIMEDOUT). Thread-safe.
ZCHAN_EXPORT int zchan_event_wait(zchan_event_t *ev, int timeout_ms);

//  Returns a new receiver that yields no message and stops when the event is
//  set: a read waits for the set (ETIMEDOUT before it) and then gives
//  ECLOSED, and select returns it once when the event is set, like a
//  channel closing. Give each thread its own receiver; make as many as
//  needed. The caller owns the receiver (zchan_receiver_destroy), which keeps
//  the event alive until it is destroyed. NULL (ENOMEM).
ZCHAN_EXPORT zchan_receiver_t *zchan_event_receiver(zchan_event_t *ev);

//  Releases the caller's hold on the event; receivers made from it keep
//  working. Nulls *ev_p.
ZCHAN_EXPORT void zchan_event_destroy(zchan_event_t **ev_p);

//  A oneshot: the sending side of a channel that carries exactly one
//  message. Used by one thread at a time.
typedef struct zchan_oneshot_t zchan_oneshot_t;

//  Creates a oneshot on an unnamed anycast channel of ctx (capacity 1), and
//  its receiver in *r_p, which the caller owns: a channel receiver like any
//  other (select, merge, adaptors), that gets the message and then ECLOSED.
//  Blocks for the requests that create the channel, sender and receiver.
//  NULL (EINVAL if r_p is NULL; or the errors of zchan_anycast_new,
//  zchan_sender_new, zchan_receiver_new).
ZCHAN_EXPORT zchan_oneshot_t *zchan_oneshot_new(zchan_ctx_t *ctx, zchan_receiver_t **r_p);

//  Sends the one message, then closes the channel. On success takes *msg_p
//  and nulls it. ECLOSED (message left with the caller) if a message was sent
//  already; EINVAL, ETIMEDOUT and the other errors of zchan_send leave the
//  message with the caller and the oneshot unsent. Does not block on the
//  receiver: the channel holds the message. If the close that follows a
//  successful send fails, it is logged and retried by zchan_oneshot_destroy.
ZCHAN_EXPORT int zchan_oneshot_send(zchan_oneshot_t *os, zchan_msg_t **msg_p, int timeout_ms);

//  Releases the oneshot. If nothing was sent, closes the channel, so the
//  receiver gets ECLOSED. A sent message stays for the receiver. Blocks for
//  the close and the sender's flush. Nulls *os_p.
ZCHAN_EXPORT void zchan_oneshot_destroy(zchan_oneshot_t **os_p);

//  A latest-value cache: a background thread that keeps reading a receiver
//  and remembers its last message. All calls but destroy are thread-safe.
typedef struct zchan_latest_t zchan_latest_t;

//  Starts the cache's thread, which owns src from now on: it reads src as
//  fast as messages come (so an anycast source's senders never wait on the
//  cache) and keeps only the last message. Messages that src reports as
//  errors (EPROTO...) are skipped: the last good value stays. Takes ownership
//  of src (also on failure). NULL (EINVAL if src is NULL, ESYS, ENOMEM).
ZCHAN_EXPORT zchan_latest_t *zchan_latest_new(zchan_receiver_t *src);

//  Never blocks. Stores a copy of the last message in *copy_p (the caller
//  owns it). ETIMEDOUT if no message has come yet, ECLOSED if src stopped
//  before any did (after one has come, the last value stays readable after
//  src stops), ENOMEM.
ZCHAN_EXPORT int zchan_latest_get(zchan_latest_t *l, zchan_msg_t **copy_p);

//  Returns how many messages the cache has taken from src so far. Never
//  blocks.
ZCHAN_EXPORT uint64_t zchan_latest_count(zchan_latest_t *l);

//  Blocks, without CPU, until the cache has taken more than count messages
//  in all (OK), src has stopped with no more than count (ECLOSED), or
//  timeout_ms passes (ETIMEDOUT). Wait for the first value with count 0; for
//  the next one with the count read before.
ZCHAN_EXPORT int zchan_latest_wait(zchan_latest_t *l, uint64_t count, int timeout_ms);

//  Stops the thread, destroys src (gracefully: an anycast source gives back
//  what it held) and the cache. Blocks until the thread has stopped. Nulls
//  *l_p.
ZCHAN_EXPORT void zchan_latest_destroy(zchan_latest_t **l_p);

//  A pipe: a background thread that forwards the messages of a receiver
//  into a sender, in order.
typedef struct zchan_pipe_t zchan_pipe_t;

//  Starts forwarding every message of src into dst, until src stops
//  (ECLOSED), dst's send fails (ECLOSED after its channel closed, or another
//  error), or zchan_pipe_stop. The thread owns src and dst from now on;
//  while dst is full it waits (retrying every 100 ms, to notice a stop).
//  Messages that src reports as errors (EPROTO, a map callback's error) are
//  skipped and counted (zchan_pipe_skipped). The pipe does not close dst's
//  channel. Takes ownership of src and dst (also on failure). NULL (EINVAL if
//  either is NULL, ESYS, ENOMEM).
ZCHAN_EXPORT zchan_pipe_t *zchan_pipe_new(zchan_receiver_t *src, zchan_sender_t *dst);

//  Blocks, without CPU, until the pipe has stopped or timeout_ms passes.
//  ETIMEDOUT while it runs. Once it has stopped: OK if src stopped and every
//  message it gave was forwarded; ECLOSED if dst's channel closed or
//  zchan_pipe_stop stopped it; otherwise the error that stopped it.
ZCHAN_EXPORT int zchan_pipe_wait(zchan_pipe_t *p, int timeout_ms);

//  Stops the pipe and waits for its thread (at most about 100 ms more than a
//  send or request in progress). Nothing is lost: each message src gave is
//  either delivered, or handed back in *undelivered_p (the caller owns it;
//  NULL if none; at most one: the message in flight when the pipe stopped).
//  The rest stays in src until zchan_pipe_destroy gives it back to its
//  channel. With undelivered_p NULL, an undelivered message is destroyed and
//  a warning logged. Returns what zchan_pipe_wait would now (never
//  ETIMEDOUT). Calling it again returns the same, and no message.
ZCHAN_EXPORT int zchan_pipe_stop(zchan_pipe_t *p, zchan_msg_t **undelivered_p);

//  Returns how many messages the pipe has delivered. Thread-safe; never
//  blocks.
ZCHAN_EXPORT uint64_t zchan_pipe_forwarded(zchan_pipe_t *p);

//  Returns how many messages src gave as errors, which the pipe skipped.
//  Thread-safe; never blocks.
ZCHAN_EXPORT uint64_t zchan_pipe_skipped(zchan_pipe_t *p);

//  Stops the pipe as zchan_pipe_stop(p, NULL) does, then destroys src
//  (gracefully: an anycast source gives back what it held), dst (flushed: what
//  the pipe sent reaches the channel) and the pipe. Nulls *p_p.
ZCHAN_EXPORT void zchan_pipe_destroy(zchan_pipe_t **p_p);

#ifdef __cplusplus
}
#endif

#endif
