#!/usr/bin/env bash
# 05_static.sh: cppcheck and clang-tidy over src/*.c, clean.  Both parse the
# sources with the PGXS include paths (pg_config --includedir-server and
# --cppflags) and USE_ASSERT_CHECKING defined (Assert() is then a real
# check the analyzers can rely on).  Their configuration is in the repo:
# .clang-tidy (the check set, each disabled check with its reason) and
# test/stress/static/cppcheck.supp (cppcheck's suppressions, each with its
# reason).  Any finding of either fails the script.  No cluster.
#
#   PQ_STATIC_SRC=DIR   check DIR/*.c instead of src/ (to show that a
#                       planted defect is caught)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
src=${PQ_STATIC_SRC:-src}
src=$(cd "$src" && pwd)
for tool in cppcheck clang-tidy; do
    command -v "$tool" >/dev/null || { echo "05_static: $tool is missing (scripts/deps.sh stress)" >&2; exit 1; }
done

incdir=$("$PG_CONFIG" --includedir-server)
read -r -a cppflags <<<"$("$PG_CONFIG" --cppflags)"
files=("$src"/*.c)
log=$(mktemp -d "${TMPDIR:-/tmp}/procq-static.XXXXXX")
trap 'rm -rf -- "$log"' EXIT
failed=0

echo "---- cppcheck $(cppcheck --version | sed 's/^Cppcheck //') on ${#files[@]} files"
start=$SECONDS
# -D... fixes the one configuration that is checked (the compiler's), which
# also keeps cppcheck from trying every #ifdef combination of the headers.
if ! cppcheck --enable=warning,style,performance,portability --std=c99 \
    --library=posix --inline-suppr --error-exitcode=1 -q -j2 \
    --suppressions-list="$root/test/stress/static/cppcheck.supp" \
    -D__GNUC__=12 -D__x86_64__ -D__linux__ -DUSE_ASSERT_CHECKING \
    -I "$src" -I "$incdir" "${files[@]}" >"$log/cppcheck.txt" 2>&1; then
    head -n 200 "$log/cppcheck.txt"
    echo "---- cppcheck: findings above"
    failed=1
else
    echo "cppcheck: clean ($((SECONDS - start)) s)"
fi

echo "---- clang-tidy $(clang-tidy --version | sed -nE 's/.*LLVM version ([0-9.]+).*/\1/p') on ${#files[@]} files"
start=$SECONDS
# One process per file, two at a time; the compiler warnings procq builds
# with are on too (clang may see what gcc does not).
if ! printf '%s\0' "${files[@]}" |
    xargs -0 -I '{}' -P 2 clang-tidy --quiet --config-file="$root/.clang-tidy" '{}' \
        -- -std=gnu99 "${cppflags[@]}" -DUSE_ASSERT_CHECKING -I "$src" -I "$incdir" \
        -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare \
        >"$log/tidy.txt" 2>&1; then
    grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' "$log/tidy.txt" | head -n 200 || true
    echo "---- clang-tidy: findings above"
    failed=1
else
    echo "clang-tidy: clean ($((SECONDS - start)) s)"
fi
((failed == 0)) && echo "05_static: cppcheck and clang-tidy clean on ${#files[@]} files of $src"
exit "$failed"
