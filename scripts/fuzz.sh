#!/bin/sh
# fuzz.sh [SECONDS]: builds zchan's libFuzzer targets (tests/fuzz) with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer, and runs each for its share
# of SECONDS (default 60 in all), starting from a copy of its committed seed
# corpus (tests/fuzz/corpus/TARGET, left untouched). Fails if any target
# crashes, leaks, trips a sanitizer or one of its oracles; the input that did
# is kept as build-fuzz/artifacts/TARGET-crash-* (run the target on that file
# to reproduce). Installs clang with apt-get if it is missing.
set -eu
cd "$(dirname "$0")/.."
total=${1:-60}
case $total in '' | *[!0-9]*) echo "usage: sh scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;; esac
. scripts/deps.sh

# clang, with the libFuzzer runtime (Debian 12: clang and libclang-rt-dev).
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
fuzzer_ok() {
    command -v clang > /dev/null 2>&1 \
        && printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void) d; (void) n; return 0; }\n' \
            > "$probe/p.c" \
        && clang -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" > /dev/null 2>&1
}
if ! fuzzer_ok; then
    echo "zchan: installing clang and libFuzzer"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q clang libclang-rt-dev \
        || { echo "zchan: could not install clang" >&2; exit 1; }
    fuzzer_ok || { echo "zchan: clang cannot build a libFuzzer program" >&2; exit 1; }
fi

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DZCHAN_FUZZ=ON -DZCHAN_BUILD_TESTS=OFF > /dev/null
cmake --build build-fuzz --target zchan-fuzzers -j "$(nproc)"

targets="fuzz_header fuzz_hub fuzz_ref fuzz_payload"
per=$((total / 4))
[ "$per" -ge 1 ] || per=1
work=$(mktemp -d)
trap 'rm -rf "$probe" "$work"' EXIT
mkdir -p build-fuzz/artifacts
failed=""
for t in $targets; do
    mkdir -p "$work/$t"
    cp tests/fuzz/corpus/$t/* "$work/$t/"
    # TMPDIR: where the targets make their context's ipc directory. A small
    # quarantine: ASan's default 256 MB one makes a long run's memory creep up
    # (freed blocks of every size pile up in its free lists) until libFuzzer
    # stops it as out of memory. A single allocation of 2 GB or more fails.
    if TMPDIR="$work" ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=16 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "build-fuzz/tests/fuzz/$t" -max_total_time="$per" -timeout=30 -rss_limit_mb=4096 -malloc_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t-" "$work/$t" > "$work/$t.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
        rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/$t.log")
        echo "zchan: $t: ${per} s, ${runs:-?} inputs, peak ${rss:-?} MB, no failure"
    else
        tail -n 60 "$work/$t.log"
        echo "zchan: $t FAILED (see build-fuzz/artifacts/)" >&2
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "zchan: fuzzing failed:$failed" >&2
    exit 1
fi
echo "zchan: fuzzing passed ($total s)"
