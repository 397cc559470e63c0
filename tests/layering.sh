#!/bin/sh
# layering.sh SRC: checks the transport boundary (transports/transport.h).
# - The core (src/, subdirectories included) tests no scheme: no
#   "inproc://", "ipc://" or "tcp://" string and no bare "inproc", "ipc" or
#   "tcp" string in its code (comment lines aside). ZeroMQ's own ZAP
#   endpoint, inproc://zeromq.zap.01, is an address, not a scheme.
# - A transport (transports/*.c) sees a narrow view of a context, never the
#   context: it does not include core.h.
# Prints each offending line and exits 1 if there is one.
set -eu
src=$1
bad=0
hits=$(grep -rnE --include='*.c' --include='*.h' '"(inproc|ipc|tcp)(://|")' "$src"/src \
    | grep -vE '^[^:]*:[0-9]+:[[:space:]]*//' \
    | grep -v 'zeromq\.zap\.01' || true)
if [ -n "$hits" ]; then
    echo "layering: the core tests a scheme by name (ask the transport instead):"
    echo "$hits"
    bad=1
fi
hits=$(grep -nE '#[[:space:]]*include[[:space:]]*"(core|hubctl|proto)\.h"' "$src"/transports/*.c "$src"/transports/*.h || true)
if [ -n "$hits" ]; then
    echo "layering: a transport includes a core header (use transport.h's view):"
    echo "$hits"
    bad=1
fi
[ "$bad" = 0 ] && echo "layering: ok"
exit "$bad"
