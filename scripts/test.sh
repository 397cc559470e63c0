#!/bin/sh
# test.sh: installs what is missing, builds zchan warning-free (-Werror) and
# runs the whole test suite twice: a normal build, then an AddressSanitizer +
# UndefinedBehaviorSanitizer build, which must report nothing; then the core
# tests under valgrind (scripts/valgrind.sh, about 20 s); then fuzzes for a
# minute (scripts/fuzz.sh).
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
jobs=$(nproc)
cmake -S . -B build -DZCHAN_WERROR=ON > /dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure)
cmake -S . -B build-asan -DZCHAN_WERROR=ON -DZCHAN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug > /dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure)
sh scripts/valgrind.sh build
sh scripts/fuzz.sh 60
echo "zchan: all tests passed (normal and sanitizer builds, valgrind, and 60 s of fuzzing)"
