#!/bin/sh
# readme_hello.sh SRC BIN CC [CFLAGS]: compiles and runs the first C code block
# of README.md against the library just built, and checks it is examples/hello.c.
set -eu
src=$1 bin=$2 cc=$3 flags=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^```c$/ { on = 1; next } on && /^```$/ { exit } on { print }' "$src/README.md" > "$tmp/hello.c"
test -s "$tmp/hello.c" || { echo "README.md has no \`\`\`c block"; exit 1; }
if ! cmp -s "$tmp/hello.c" "$src/examples/hello.c"; then
    echo "README.md's Hello World differs from examples/hello.c:"
    diff -u "$src/examples/hello.c" "$tmp/hello.c" || true
    exit 1
fi
# shellcheck disable=SC2086 # flags and pkg-config output are word lists
"$cc" $flags -Wall -Wextra -Werror -I"$src/include" "$tmp/hello.c" -o "$tmp/hello" \
    -L"$bin" -Wl,-rpath,"$bin" -lzchan $(pkg-config --cflags --libs libzmq libczmq msgpack)
out=$("$tmp/hello")
echo "$out"
test "$out" = "Hello, World!"
