#!/bin/sh
# install_consumer.sh SRC BIN CC [CFLAGS [TOOLS]]: installs the build into a
# temporary prefix, checks which programs it installed (with TOOLS=ON, the
# default, zchan and zchan-relay; never the benchmarks zchan-perf and
# zchan-scale), then builds examples/hello.c against it twice, as outside
# programs do: once with `pkg-config --cflags --libs zchan`, once with a CMake
# project calling find_package(zchan) (shared and static targets), and runs
# each.
set -eu
src=$1 bin=$2 cc=$3 flags=${4:-} tools=${5:-ON}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$bin" --prefix "$tmp/prefix" > "$tmp/install.log"
pcdir=$(dirname "$(find "$tmp/prefix" -name zchan.pc)")
libdir=$(dirname "$pcdir")
test -f "$tmp/prefix/include/zchan.h"

# The user commands, and not the benchmarks.
for p in zchan zchan-relay; do
    case "$tools" in
    ON) test -x "$tmp/prefix/bin/$p" || { echo "install: $p is not installed" >&2; exit 1; } ;;
    *) test ! -e "$tmp/prefix/bin/$p" || { echo "install: $p is installed with the tools off" >&2; exit 1; } ;;
    esac
done
for p in zchan-perf zchan-cqueue zchan-scale; do
    test ! -e "$tmp/prefix/bin/$p" || { echo "install: the benchmark $p is installed" >&2; exit 1; }
done

# pkg-config
export PKG_CONFIG_PATH="$pcdir"
pkg-config --exists zchan
# shellcheck disable=SC2086
"$cc" $flags "$src/examples/hello.c" -o "$tmp/hello-pc" $(pkg-config --cflags --libs zchan) \
    -Wl,-rpath,"$libdir"
test "$("$tmp/hello-pc")" = "Hello, World!"

# find_package(zchan)
mkdir "$tmp/consumer"
cp "$src/examples/hello.c" "$tmp/consumer/"
cat > "$tmp/consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(zchan 0.1 REQUIRED)
add_executable(hello hello.c)
target_link_libraries(hello PRIVATE zchan::zchan)
add_executable(hello_static hello.c)
target_link_libraries(hello_static PRIVATE zchan::zchan_static)
CMAKE
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
    > "$tmp/consumer.log" || { cat "$tmp/consumer.log"; exit 1; }
cmake --build "$tmp/consumer/build" >> "$tmp/consumer.log" || { cat "$tmp/consumer.log"; exit 1; }
test "$("$tmp/consumer/build/hello")" = "Hello, World!"
test "$("$tmp/consumer/build/hello_static")" = "Hello, World!"
echo "install consumer: pkg-config and find_package(zchan) both work"
