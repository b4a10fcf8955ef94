#!/usr/bin/env bash
# fetch_bench.sh: median procq.fetch_job() time with an empty table and with
# 1,000,000 jobs waiting on parents, 1,000,000 scheduled in the future and
# 100,000 queued behind one busy lock, on a throwaway cluster.  Prints each
# scenario's median and its ratio to the empty-table median of the same
# run (target: at most 1.5).
#
#   bench/fetch_bench.sh [rounds] [fetches per measurement]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
fetches=${2:-2000}

# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh
pq_cluster_start "shared_buffers = '512MB'" "max_wal_size = '4GB'" "autovacuum = off"

psql=(psql -X -q -A -t -v ON_ERROR_STOP=1)
"${psql[@]}" -c "CREATE EXTENSION procq" -f bench/fetch_bench.sql

scenarios=(empty parents future lock)
declare -A label=(
  [empty]="empty table"
  [parents]="1,000,000 waiting on parents"
  [future]="1,000,000 scheduled in the future"
  [lock]="100,000 behind one busy lock"
)
declare -A results

for round in $(seq 1 "$rounds"); do
  for s in "${scenarios[@]}"; do
    "${psql[@]}" -c "CALL public.bench_setup('$s', $((fetches + 200)))" \
                 -c "VACUUM ANALYZE procq.jobs, procq.job_dependencies"
    # A fresh session per measurement: its plans are made against this data.
    us=$("${psql[@]}" -c "CALL public.bench_fetch(200)" \
                      -c "CALL public.bench_fetch($fetches)" | tail -n 1)
    results[$s]+="$us "
    printf 'round %d  %-36s %8.1f us\n' "$round" "${label[$s]}" "$us" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

floor=$(median <<<"${results[empty]}")
echo
printf '%-36s %14s %16s %8s\n' "scenario" "median (us)" "ratio to empty" "target"
status=0
for s in "${scenarios[@]}"; do
  m=$(median <<<"${results[$s]}")
  ratio=$(awk -v m="$m" -v f="$floor" 'BEGIN {printf "%.2f", m / f}')
  verdict=$(awk -v r="$ratio" 'BEGIN {print (r <= 1.5) ? "ok" : "MISSED"}')
  [ "$s" = empty ] && verdict="floor"
  [ "$verdict" = MISSED ] && status=1
  printf '%-36s %14.1f %16s %8s\n' "${label[$s]}" "$m" "$ratio" "$verdict"
done
echo "(median of $rounds rounds of $fetches fetches each, every fetch its own transaction)"
exit $status
