#!/bin/sh
# brokerbench_smoke.sh RELAY BROKERBENCH: a seconds-long run of
# zchan-brokerbench's zchan part through a zchan-relay on 127.0.0.1, so that
# it keeps building and working (its NATS and RabbitMQ parts need their
# servers, which the tests do not depend on). It asserts that every message
# arrived (zchan-brokerbench exits 1 on a loss), never on time.
set -eu
relay=$1 bb=$2
tmp=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
export ZCHAN_IPC_DIR="$tmp"
"$relay" --bind tcp://127.0.0.1:0 --endpoint-file "$tmp/ep" 2>"$tmp/relay.log" &
pid=$!
i=0
while [ ! -s "$tmp/ep" ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "zchan-relay wrote no endpoint file:"; cat "$tmp/relay.log"; exit 1; }
    sleep 0.1
done
url=$(sed -n 1p "$tmp/ep")
"$bb" --probe --broker zchan --url "$url" --deadline-ms 10000

# Every row bench/run runs through the relay, at small counts.
run() {
    out=$("$bb" --csv --broker zchan --url "$url" "$@")
    echo "$out"
    echo "$out" | sed -n 2p | grep -q ',"ok"$' || { echo "not ok: $*"; exit 1; }
}
run -w anycast -n 500 --capacity 10
run -w anycast -n 2000 --capacity 1000
run -w broadcast -r 4 -n 1000

# The error paths end, and say so: nothing listening, and a bad command line.
set -- $("$bb" --free-ports 2)
[ $# -eq 2 ] && [ "$1" != "$2" ] || { echo "--free-ports 2 gave: $*"; exit 1; }
if "$bb" --probe --broker zchan --url "tcp://127.0.0.1:$1" --deadline-ms 300 2>"$tmp/err"; then
    echo "--probe found a relay where none listens"; exit 1
fi
grep -q "not ready" "$tmp/err" || { cat "$tmp/err"; exit 1; }
if "$bb" --broker zchan --url "$url" -w anycast -r 2 2>"$tmp/err"; then
    echo "anycast with 2 receivers was accepted"; exit 1
fi
echo "brokerbench_smoke: ok"
