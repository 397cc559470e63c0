#!/bin/sh
# valgrind.sh: runs the core tests under valgrind's memcheck, which must
# report no error and no leak: test_channel (over inproc), test_protocol,
# test_adapt, test_select and test_timer. Installs valgrind with apt-get if it
# is missing, builds in build/ if needed. Called by scripts/test.sh.
#   sh scripts/valgrind.sh [BUILD_DIR]
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
if ! command -v valgrind > /dev/null 2>&1; then
    echo "zchan: installing valgrind"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q valgrind \
        || { echo "zchan: could not install valgrind" >&2; exit 1; }
fi
build=${1:-build}
if [ ! -x "$build/tests/test_channel" ]; then
    cmake -S . -B "$build" -DZCHAN_WERROR=ON > /dev/null
    cmake --build "$build" -j "$(nproc)"
fi
# Leaks and errors fail the run (exit 9). Suppressions are for reports inside
# libzmq and czmq only, each justified in the file.
vg="valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
    --error-exitcode=9 --suppressions=scripts/valgrind.supp"
failed=""
for t in test_channel test_local test_protocol test_adapt test_select test_timer; do
    start=$(date +%s)
    # Valgrind runs code 10-50 times slower: the upper bounds of the tests'
    # timing checks stretch by ZCHAN_TEST_SLOW (never the lower ones), and a
    # test that hangs is stopped rather than holding CI forever.
    if ZCHAN_TEST_SLOW=20 ZCHAN_TEST_TRANSPORT=inproc ZCHAN_TEST_BIN_DIR="$PWD/$build" \
        timeout 600 $vg "$build/tests/$t" > "$build/valgrind-$t.log" 2>&1; then
        echo "valgrind: $t clean ($(( $(date +%s) - start )) s)"
    else
        echo "valgrind: $t FAILED (exit $?; $build/valgrind-$t.log):" >&2
        tail -40 "$build/valgrind-$t.log" >&2
        failed="$failed $t"
    fi
done
[ -z "$failed" ] || { echo "valgrind: failed:$failed" >&2; exit 1; }
echo "zchan: valgrind found no errors and no leaks in the core tests"
