#!/usr/bin/env bash
# worker_bench.sh: procq background workers on a throwaway cluster
# (shared_preload_libraries = 'procq').
#
#  - Throughput of a trivial SQL handler (SELECT $2), in jobs per second,
#    for procq.workers 1 and 2 x procq.batch_size 1 and 100: N jobs are
#    deferred while the task has no handler; registering it (and deferring
#    one more job) in one transaction releases them, and the clock runs
#    from that commit to the last job's finish.  Median of the rounds, and
#    the batch-100 figure as a ratio to batch 1.
#  - Defer-to-start latency on idle workers: jobs deferred one at a time
#    (autocommit, random 20-50 ms pauses), started_at - created_at, median
#    and 95th percentile, with procq.poll_interval = 10s so that only the
#    wake-up at commit can explain a fast start (target: median < 5 ms).
#
# It is a benchmark, not a test: it prints the table and exits 0.
#
#   bench/worker_bench.sh [jobs per throughput run] [rounds] [latency jobs]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-20000}
rounds=${2:-3}
lat_jobs=${3:-200}

# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh
# Durable commits (the throwaway cluster turns fsync off by default): the
# commit is what batching shares.
pq_cluster_start "shared_preload_libraries = 'procq'" "procq.workers = 1" \
    "shared_buffers = '256MB'" "max_wal_size = '4GB'" "autovacuum = off" \
    "fsync = on" "synchronous_commit = on"

psql=(psql -X -q -A -t -v ON_ERROR_STOP=1)
"${psql[@]}" -c "CREATE EXTENSION procq" -f bench/worker_bench.sql

# Apply worker settings and wait until exactly that many workers are idle.
configure() { # workers batch_size poll_interval
  "${psql[@]}" -c "ALTER SYSTEM SET procq.workers = $1" \
               -c "ALTER SYSTEM SET procq.batch_size = $2" \
               -c "ALTER SYSTEM SET procq.poll_interval = '$3'" \
               -c "SELECT pg_reload_conf()" >/dev/null
  local deadline=$((SECONDS + 30))
  until [[ $("${psql[@]}" -c "SELECT count(*) = $1 AND bool_and(state = 'idle')
                                 FROM procq.worker_status") == t ]]; do
    ((SECONDS < deadline)) || { echo "worker_bench: $1 workers did not come up" >&2; exit 1; }
    sleep 0.2
  done
  sleep 0.5 # every worker has read the new settings
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

configs=("1 1" "1 100" "2 1" "2 100")
declare -A rate
for round in $(seq 1 "$rounds"); do
  for c in "${configs[@]}"; do
    read -r w b <<<"$c"
    configure "$w" "$b" 1s
    "${psql[@]}" -c "CALL public.bench_prepare($jobs)" \
                 -c "SELECT public.bench_release('SELECT \$2')" >/dev/null
    deadline=$((SECONDS + 300))
    while [[ $("${psql[@]}" -c "SELECT public.bench_busy()") == t ]]; do
      ((SECONDS < deadline)) || { echo "worker_bench: jobs still running after 300 s" >&2; exit 1; }
      sleep 0.25
    done
    r=$("${psql[@]}" -c "SELECT public.bench_jobs_per_s()")
    rate[$c]+="$r "
    printf 'round %d  workers %d  batch_size %3d  %10.0f jobs/s\n' "$round" "$w" "$b" "$r" >&2
  done
done

declare -A lat
for w in 1 2; do
  configure "$w" 10 10s
  IFS='|' read -r med p95 < <("${psql[@]}" -c "CALL public.bench_latency($lat_jobs)")
  lat[$w]="$med $p95"
  printf 'latency  workers %d  median %.2f ms  p95 %.2f ms\n' "$w" "$med" "$p95" >&2
done

echo
printf '%-44s %14s %18s\n' "throughput (SQL handler SELECT \$2)" "jobs/s" "ratio to batch 1"
for c in "${configs[@]}"; do
  read -r w b <<<"$c"
  m=$(median <<<"${rate[$c]}")
  base=$(median <<<"${rate[$w 1]}")
  printf '%-44s %14.0f %18s\n' "workers $w, batch_size $b" "$m" \
    "$(awk -v m="$m" -v f="$base" 'BEGIN {printf "%.2f", m / f}')"
done
echo "(median of $rounds rounds of $jobs jobs each)"
echo
printf '%-44s %14s %18s %8s\n' "defer-to-start latency, idle workers" "median (ms)" "p95 (ms)" "target"
for w in 1 2; do
  read -r med p95 <<<"${lat[$w]}"
  verdict=$(awk -v m="$med" 'BEGIN {print (m < 5) ? "ok" : "missed"}')
  printf '%-44s %14.2f %18.2f %8s\n' "workers $w, poll_interval 10s" "$med" "$p95" "$verdict"
done
echo "($lat_jobs jobs deferred one at a time; started_at - created_at; target: median < 5 ms)"
exit 0
