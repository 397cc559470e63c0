#!/bin/sh
# exports.sh LIB: the shared library exports the public API and nothing else:
# every defined dynamic symbol is a zchan_ name, none an internal zchan__ one.
set -eu
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $3}')
[ -n "$syms" ] || { echo "exports: $lib exports nothing" >&2; exit 1; }
bad=$(printf '%s\n' "$syms" | grep -v '^zchan_[a-z]' || true)
if [ -n "$bad" ]; then
    echo "exports: $lib exports names outside the public API:" >&2
    printf '%s\n' "$bad" | head -20 >&2
    exit 1
fi
echo "exports: $(printf '%s\n' "$syms" | wc -l) public names, nothing else"
