#!/bin/bash
# test/ext/node.sh: the Node client (clients/node) against the suite's
# database: npm ci (versions pinned by its package-lock.json, nothing
# global), then its tests with Node's own runner. Each test file makes a
# database of its own beside $PGDATABASE (and drops it).
set -euo pipefail
cd "$(dirname "$0")/../../clients/node"
command -v node >/dev/null || { echo "node not found (scripts/deps.sh installs it)" >&2; exit 1; }
echo "node $(node -v), npm $(npm -v)"
npm ci --no-audit --no-fund --loglevel=error
# One file at a time: the files start workers and child processes, and the
# machine may be small and busy.
failed=()
for f in test/*.test.js; do
    echo "---- $f"
    node --test "$f" || failed+=("$f")
done
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
