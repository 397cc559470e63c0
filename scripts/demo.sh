#!/bin/sh
# demo.sh: installs what is missing, builds zchan and runs the main demo
# (examples/demo.c) over ipc, then over tcp.
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j "$(nproc)" --target demo
./build/demo
./build/demo --tcp
