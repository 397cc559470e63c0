#!/bin/sh
# library_only.sh SRC CC: configures a library-only build
# (-DZCHAN_BUILD_TOOLS=OFF -DZCHAN_BUILD_TESTS=OFF) in a temporary directory
# with jansson and cmocka hidden from pkg-config, as on a machine that has
# only the library's dependencies, and checks that it has the library's
# targets and none of tools/. Then the same with the tests (cmocka visible):
# the tests that run the tools must not be registered.
set -eu
src=$1 cc=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# pkg-config sees every .pc file of this machine but jansson's and cmocka's.
mkdir "$tmp/pc"
for dir in $(pkg-config --variable pc_path pkg-config | tr ':' ' ') ${PKG_CONFIG_PATH:-}; do
    for pc in "$dir"/*.pc; do
        [ -f "$pc" ] || continue
        case "$(basename "$pc")" in
        jansson.pc) ;;
        cmocka.pc) ln -s "$pc" "$tmp/cmocka.pc" ;;
        *) [ -e "$tmp/pc/$(basename "$pc")" ] || ln -s "$pc" "$tmp/pc/" ;;
        esac
    done
done
export PKG_CONFIG_LIBDIR="$tmp/pc"
unset PKG_CONFIG_PATH
if pkg-config --exists jansson; then
    echo "library_only: jansson is still visible to pkg-config" >&2
    exit 1
fi

if ! cmake -S "$src" -B "$tmp/build" -DCMAKE_C_COMPILER="$cc" -DZCHAN_BUILD_TOOLS=OFF \
    -DZCHAN_BUILD_TESTS=OFF > "$tmp/configure.log" 2>&1; then
    cat "$tmp/configure.log"
    echo "library_only: a library-only build does not configure without jansson" >&2
    exit 1
fi
cmake --build "$tmp/build" --target help > "$tmp/targets.txt"
for t in zchan zchan_static; do
    grep -q "\.\.\. $t\$" "$tmp/targets.txt" || { echo "library_only: no target $t" >&2; exit 1; }
done
for t in zchan-cli zchan-relay zchan-perf zchan-cqueue zchan-scale; do
    if grep -q "\.\.\. $t\$" "$tmp/targets.txt"; then
        echo "library_only: target $t is there with ZCHAN_BUILD_TOOLS=OFF" >&2
        exit 1
    fi
done

# With the tests: cmocka is needed, jansson still not.
ln -s "$tmp/cmocka.pc" "$tmp/pc/cmocka.pc"
if ! cmake -S "$src" -B "$tmp/build-tests" -DCMAKE_C_COMPILER="$cc" -DZCHAN_BUILD_TOOLS=OFF \
    > "$tmp/configure-tests.log" 2>&1; then
    cat "$tmp/configure-tests.log"
    echo "library_only: the tests without the tools do not configure without jansson" >&2
    exit 1
fi
(cd "$tmp/build-tests" && ctest -N) > "$tmp/tests.txt"
grep -q ": test_channel\$" "$tmp/tests.txt" || { echo "library_only: test_channel is not registered" >&2; exit 1; }
for t in test_relay test_relay_restart perf_smoke perf_smoke_nng scale_smoke_ipc scale_smoke_tcp; do
    if grep -q ": $t\$" "$tmp/tests.txt"; then
        echo "library_only: $t is registered with ZCHAN_BUILD_TOOLS=OFF" >&2
        exit 1
    fi
done
echo "library only: configures without jansson, with the library and no tools, nor tests of them"
