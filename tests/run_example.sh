#!/bin/sh
# run_example.sh: runs an example program for ctest: run_example.sh PROGRAM [ARGS...]
# The examples' tests check their output with PASS_REGULAR_EXPRESSION, and
# with it set ctest ignores the exit status. So this wrapper runs the program
# and, when it exits non-zero or dies of a signal, prints a line that the
# tests' FAIL_REGULAR_EXPRESSION ("run_example: FAILED") catches. It exits
# with the program's status.
"$@"
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "run_example: FAILED: $1 exited with status $rc"
fi
exit "$rc"
