#!/bin/sh
# demo.sh: installs what is missing, builds zchan and runs the main demo:
# examples/demo.c over ipc, then over tcp, then examples/showcase.c (the
# frequenz-channels showcase across processes) over ipc.
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j "$(nproc)" --target demo showcase
./build/demo
./build/demo --tcp
./build/showcase
