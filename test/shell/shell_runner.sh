#!/usr/bin/env bash
# shell_runner.sh: the shell handler runner (src/shell.c) on its own,
# outside PostgreSQL.  Builds test/shell_runner/test_shell.c with
# src/shell.c and runs it; it prints TAP and exits non-zero if a test
# failed.  Needs gcc only, no database (PQ_TEST_DB is ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "FAIL: $*" >&2; exit 1; }

command -v gcc >/dev/null || fail "gcc is needed to build test/shell_runner/test_shell.c"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Also the warnings the extension's build uses, so that src/shell.c keeps
# building there.
gcc -std=gnu99 -Wall -Wextra -Werror -Wmissing-prototypes \
    -Wdeclaration-after-statement -Wpointer-arith -Wformat-security \
    -O2 -o "$tmp/test_shell" test/shell_runner/test_shell.c src/shell.c \
    || fail "test/shell_runner/test_shell.c does not build"

rc=0
timeout 120 "$tmp/test_shell" >"$tmp/out" || rc=$?
cat "$tmp/out"
((rc != 124)) || fail "test_shell did not finish within 120 s"
((rc == 0)) || fail "test_shell exited with status $rc"
grep -q '^1\.\.[0-9]' "$tmp/out" || fail "test_shell printed no TAP plan"
! grep -q '^not ok' "$tmp/out" || fail "some shell runner tests failed"
echo "ok: shell runner tests passed"
