#!/bin/sh
# deps.sh: installs, with apt-get, whatever zchan's build and tests need and
# this machine lacks. Debian 12 packages only. Sourced by demo.sh and test.sh.
ZCHAN_DEPS="build-essential cmake pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libcmocka-dev libjansson-dev iproute2"
missing=""
for p in $ZCHAN_DEPS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "zchan: installing$missing"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing \
        || { echo "zchan: could not install$missing" >&2; exit 1; }
fi
