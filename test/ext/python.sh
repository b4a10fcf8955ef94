#!/usr/bin/env bash
# The Python client's suite: pytest (Debian's /usr/bin/python3, with
# python3-psycopg and python3-pytest) against the database named by
# PGHOST/PGPORT/PGUSER/PGDATABASE (scripts/run-tests.sh sets them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PYTHONPATH="$PWD/clients/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider clients/python/tests "$@"
