#!/usr/bin/env bash
# deps.sh: install the Debian 12 packages procq needs to build, test and demo,
# when some are missing (quiet otherwise).  It creates and starts no cluster;
# a 'main' cluster that the postgresql package sets up is left alone.
#
#   scripts/deps.sh          build, test and demo
#   scripts/deps.sh bench    and, for make bench, Debian's nodejs and npm
#                            when there is no `node` or `npm` at all (the
#                            peers, bench/peers/, run on node 18 and 20)
#   scripts/deps.sh stress   and the tools make stress runs (test/stress/)
set -euo pipefail

packages=(postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
    libipc-run-perl graphviz make gcc)
if [[ ${1:-} == bench ]]; then
    command -v node >/dev/null || packages+=(nodejs)
    command -v npm >/dev/null || packages+=(npm)
fi
if [[ ${1:-} == stress ]]; then
    packages+=(python3-psycopg)
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
