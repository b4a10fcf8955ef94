#!/usr/bin/env bash
# deps.sh: install the Debian 12 packages procq needs to build, test and demo,
# when some are missing (quiet otherwise).  It creates and starts no cluster;
# a 'main' cluster that the postgresql package sets up is left alone.
#
#   scripts/deps.sh          build, test and demo
#   scripts/deps.sh bench    the same (the peers, bench/peers/, run on the
#                            same node, 18 or 20, as the Node client)
#   scripts/deps.sh stress   and the tools make stress runs (test/stress/)
set -euo pipefail

# The Python client's tests need psycopg 3 and pytest, the Node client's
# node and npm (Debian's, when there is no `node` or `npm` at all), the
# periodic workflow test pg_cron.
packages=(postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
    postgresql-15-cron libipc-run-perl graphviz make gcc
    python3-psycopg python3-pytest)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
if [[ ${1:-} == stress ]]; then
    packages+=(sqlsmith)
    packages+=(cppcheck)
    packages+=(clang-tidy)
    packages+=(valgrind)
fi

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "deps.sh: installing ${missing[*]}"
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
