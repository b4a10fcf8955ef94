#!/usr/bin/env bash
# run.sh: procq's benchmark (make bench).  One throwaway cluster (fsync on,
# the same postgresql.conf for every scenario, procq preloaded with its
# background workers), procq beside its peers (Graphile Worker and pg-boss,
# from npm into bench/peers/, each in a database of its own) and the floors
# of bench/floors.sql; every scenario measured in this run, median of
# BENCH_ROUNDS rounds (3); one table of scenario, procq, what it is compared
# with and that figure, ratio, target, met or missed.  The table is printed
# and written to bench/results/latest.md.
#
#   bench/run.sh
#   BENCH_QUICK=1               smaller sizes (a development run, ~5 minutes)
#   BENCH_STEADY_SECONDS=600    length of the steady-state run
#   BENCH_ROUNDS=3              rounds per scenario
#   BENCH_WORKER_CAP=30         seconds a worker run may take before it is cut
#                               short (its rate is then what finished by then)
#   BENCH_OUT=bench/results/latest.md
#   PQ_PGBIN=...                the PostgreSQL 15 bin directory (as scripts/run-tests.sh)
#   BENCH_ONLY="workflows ..."  run only these sections (external defer fetch
#                               workers events flows workflows shell latency
#                               steady);
#                               the table then has only their rows
#
# A scenario whose procq function does not exist in this build shows
# "n/a (function missing)"; one that fails shows "error" (its output is in
# the log named at the end) and the others still run.  Exits 0 when the
# table was made, whatever the targets.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

quick=${BENCH_QUICK:-0}
rounds=${BENCH_ROUNDS:-3}
cap=${BENCH_WORKER_CAP:-30}
out=${BENCH_OUT:-bench/results/latest.md}
if ((quick)); then
    steady=${BENCH_STEADY_SECONDS:-60}
    n_workers=20000    # background worker drain
    n_flow=2000        # fan-out, chains, independent
    t_ext=4            # seconds per external or defer run
    n_single=20000     # jobs ready for a single-job run (more than it takes)
    n_batch=120000     # jobs ready for a batch run
    n_fetch_big=100000 # waiting on parents / scheduled
    n_fetch_lock=10000 # behind a lock
    n_fetches=500
    n_shell=200
    n_latency=30
else
    steady=${BENCH_STEADY_SECONDS:-600}
    n_workers=100000
    n_flow=10000
    t_ext=6
    n_single=60000
    n_batch=400000
    n_fetch_big=1000000
    n_fetch_lock=100000
    n_fetches=2000
    n_shell=1000
    n_latency=100
fi
n_bulk=10000 # defer 10,000 at once (the pgbench scripts say 10,000)

# want SECTION: whether BENCH_ONLY (default: all) includes it.
want() { [[ -z ${BENCH_ONLY:-} || " $BENCH_ONLY " == *" $1 "* ]]; }

log=$(mktemp "${TMPDIR:-/tmp}/procq-bench.XXXXXX.log")
chmod 644 "$log"
say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$log" >&2; }
fmt() { LC_ALL=C printf '%.0f' "$1" | sed -E ':a; s/^([0-9]+)([0-9]{3})/\1,\2/; ta'; }

# ---- the peers: npm ci into bench/peers (nothing global) -------------------
peers_ok=1
if ! want defer && ! want workers; then
    peers_ok=0
elif ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "node/npm not found (make deps installs them): the peers are skipped"
    peers_ok=0
else
    say "npm ci in bench/peers (node $(node -v))"
    if ! (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error) >>"$log" 2>&1; then
        say "npm ci failed (see $log): the peers are skipped"
        peers_ok=0
    fi
fi

# ---- the cluster -----------------------------------------------------------
# shellcheck source=scripts/cluster.sh
source scripts/cluster.sh
pq_cluster_start "shared_preload_libraries = 'procq'" \
    "fsync = on" "synchronous_commit = on" \
    "shared_buffers = '512MB'" "max_wal_size = '4GB'" "checkpoint_timeout = '15min'" \
    "procq.workers = 0" "procq.enable_shell = on" "procq.poll_interval = '1s'" \
    "max_connections = 120"
say "cluster on port $PGPORT ($PQ_PGBIN), log $PQ_CLUSTER_LOG"

psql=(psql -X -q -A -t -v ON_ERROR_STOP=1)
"${psql[@]}" -c "CREATE EXTENSION procq" -f bench/procq.sql >>"$log"
createdb floors && "${psql[@]}" -d floors -f bench/floors.sql >>"$log"
createdb graphile
createdb pgboss
procq_version=$("${psql[@]}" -c "SELECT extversion FROM pg_extension WHERE extname = 'procq'")

has() { [[ $("${psql[@]}" -c "SELECT bench.has_function('$1')") == t ]]; }

# procq.workers (a reload), then wait until exactly that many are idle.
workers() {
    "${psql[@]}" -c "ALTER SYSTEM SET procq.workers = $1" -c "SELECT pg_reload_conf()" >/dev/null
    local deadline=$((SECONDS + 60))
    until [[ $("${psql[@]}" -c "SELECT count(*) = $1 AND coalesce(bool_and(state = 'idle'), true)
                                 FROM procq.worker_status") == t ]]; do
        ((SECONDS < deadline)) || { say "$1 workers did not come up"; return 1; }
        sleep 0.2
    done
    sleep 0.5
}

# ---- results ---------------------------------------------------------------
# val[key] holds the rounds' figures ("n/a ..." or "error" instead when so).
declare -A val
record() { # key figure
    local k=$1 v=$2
    if [[ $v =~ ^[0-9.]+(e[-+]?[0-9]+)?$ ]]; then
        [[ ${val[$k]:-} == error ]] || val[$k]+="$v "
    else
        val[$k]=$v
    fi
    say "  $k: $v"
}
# Run a measurement; its last line of output is the figure.
measure() { # key command...
    local k=$1 v
    shift
    if v=$("$@" 2>>"$log" | tail -n 1) && [[ -n $v ]]; then
        record "$k" "$v"
    else
        record "$k" error
    fi
}
missing() { record "$1" "n/a (function missing)"; }
median() {
    tr ' ' '\n' | { grep -v '^$' || true; } | sort -g |
        awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}

# pgbench: jobs per second = transactions per second x jobs per transaction.
bench_pgbench() { # db jobs_per_tx script pgbench-options...
    local db=$1 per=$2 script=$3 outp tps
    shift 3
    outp=$(pgbench -n -M prepared -f "bench/pgbench/$script" "$@" "$db" 2>&1) ||
        { echo "$outp" >&2; return 1; }
    echo "$outp" >>"$log"
    tps=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' <<<"$outp" | tail -n 1)
    [[ -n $tps ]] || { echo "$outp" >&2; return 1; }
    awk -v t="$tps" -v p="$per" 'BEGIN {printf "%.1f\n", t * p}'
}

# pgbench for $t_ext seconds; jobs per second = how much a count changed,
# over the time pgbench ran.  The queue must not run dry (check-sql counts
# what is left; 0 means the figure is only a lower bound: say so).
bench_timed() { # db count-sql check-sql script pgbench-options...
    local db=$1 q=$2 check=$3 script=$4 before after t0 t1 outp left
    shift 4
    before=$("${psql[@]}" -d "$db" -c "$q") || return 1
    t0=$(date +%s.%N)
    outp=$(pgbench -n -M prepared -f "bench/pgbench/$script" -T "$t_ext" "$@" "$db" 2>&1) ||
        { echo "$outp" >&2; return 1; }
    t1=$(date +%s.%N)
    echo "$outp" >>"$log"
    after=$("${psql[@]}" -d "$db" -c "$q") || return 1
    if [[ -n $check ]]; then
        left=$("${psql[@]}" -d "$db" -c "$check") || return 1
        ((left > 0)) || say "  WARNING: $script ran out of jobs: its figure is a lower bound (raise the preload)"
    fi
    awk -v a="$after" -v b="$before" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.1f\n", (a - b) / (t1 - t0)}'
}
floor_done="SELECT count(*) FROM floor_jobs WHERE status = 2"
floor_left="SELECT count(*) FROM floor_jobs WHERE status = 0"
procq_done="SELECT count(*) FROM procq.jobs WHERE status = 'succeeded'"
procq_left="SELECT count(*) FROM procq.jobs WHERE status = 'todo'"

peer() { # peer mode n
    ((peers_ok)) || { echo "peers not installed" >&2; return 1; }
    (cd bench/peers && node peer.js "$@")
}

# ---- external workers and the floors (background workers stopped) --------
workers 0
want external && say "external workers: single-job cycle, 1/4/16 clients; batches of 100, 2 clients"
want external && for r in $(seq 1 "$rounds"); do
    for c in 1 4 16; do
        "${psql[@]}" -d floors -c "CALL floor_fill($n_single)"
        measure "floor_single_$c" bench_timed floors "$floor_done" "$floor_left" floor_single.sql -c "$c" -j "$c"
        "${psql[@]}" -c "CALL bench.reset()" -c "CALL bench.fill('ext', $n_single)"
        measure "ext_single_$c" bench_timed postgres "$procq_done" "$procq_left" procq_single.sql -c "$c" -j "$c"
    done
    "${psql[@]}" -d floors -c "CALL floor_fill($n_batch)"
    measure floor_batch bench_timed floors "$floor_done" "$floor_left" floor_batch.sql -c 2 -j 2
    "${psql[@]}" -d floors -c "CALL floor_fill($n_batch)"
    measure floor_indb bench_timed floors "$floor_done" "$floor_left" floor_indb.sql -c 2 -j 2
    if has fetch_jobs && has finish_jobs; then
        "${psql[@]}" -c "CALL bench.reset()" -c "CALL bench.fill('ext', $n_batch)"
        measure ext_batch bench_timed postgres "$procq_done" "$procq_left" procq_batch.sql -c 2 -j 2
    else
        missing ext_batch
    fi
done
"${psql[@]}" -c "CALL bench.reset()"
"${psql[@]}" -d floors -c "TRUNCATE floor_jobs"

# ---- defers ---------------------------------------------------------------
want defer && say "defer: one per call, 4 clients; 10,000 at once"
want defer && for r in $(seq 1 "$rounds"); do
    "${psql[@]}" -d floors -c "TRUNCATE floor_jobs" -c "CHECKPOINT"
    measure insert_one bench_timed floors "SELECT count(*) FROM floor_jobs" "" floor_insert.sql -c 4 -j 4
    "${psql[@]}" -c "CALL bench.reset()" -c "CHECKPOINT"
    measure defer_one bench_timed postgres "SELECT count(*) FROM procq.jobs" "" procq_defer.sql -c 4 -j 4

    "${psql[@]}" -d floors -c "TRUNCATE floor_jobs"
    measure insert_multi bench_pgbench floors "$n_bulk" floor_insert_multi.sql -c 1 -t 3
    if has defer_jobs; then
        "${psql[@]}" -c "CALL bench.reset()"
        measure defer_jobs bench_pgbench postgres "$n_bulk" procq_defer_jobs.sql -c 1 -t 3
    else
        missing defer_jobs
    fi
    "${psql[@]}" -c "CALL bench.reset()"
    measure defer_workflow bench_pgbench postgres "$n_bulk" procq_defer_workflow.sql -c 1 -t 3
    "${psql[@]}" -c "CALL bench.reset()"
    measure defer_many bench_pgbench postgres "$n_bulk" procq_defer_many.sql -c 1 -t 3
    measure graphile_add peer graphile add "$n_bulk"
    measure pgboss_insert peer pgboss insert "$n_bulk"
done

# ---- fetch_job beside many jobs that are not ready ------------------------
want fetch && say "fetch_job: empty, $(fmt $n_fetch_big) waiting, $(fmt $n_fetch_big) scheduled, $(fmt $n_fetch_lock) behind a lock"
fetch_round() { # fresh session per measurement: its plans are made against this data
    "${psql[@]}" -c "CALL bench.fetch(200)" -c "CALL bench.fetch($n_fetches)"
}
want fetch && for s in empty parents future lock; do
    others=$n_fetch_big
    [[ $s == lock ]] && others=$n_fetch_lock
    [[ $s == empty ]] && others=0
    "${psql[@]}" -c "CALL bench.fetch_setup('$s', $others, $(((n_fetches + 200) * rounds + 10)))" \
        -c "VACUUM ANALYZE procq.jobs, procq.job_dependencies"
    for r in $(seq 1 "$rounds"); do
        measure "fetch_$s" fetch_round
    done
done

# ---- background workers ---------------------------------------------------
# A worker run: the jobs wait while their task has no handler; bench.release
# registers it (and defers one more job) in one transaction; the clock runs
# from that commit to the last finish, cut short after $cap seconds.
worker_run() { # prepare-command kind handler [rate-sql]
    local deadline
    "${psql[@]}" -c "CALL bench.reset()" -c "$1" -c "CHECKPOINT" || return 1
    "${psql[@]}" -c "SELECT bench.release('bench', '$2', '$3')" >/dev/null || return 1
    deadline=$((SECONDS + cap))
    while [[ $("${psql[@]}" -c "SELECT bench.busy()") == t ]] && ((SECONDS < deadline)); do
        sleep 0.25
    done
    "${psql[@]}" -c "SELECT procq.unregister_handler('bench')" >/dev/null
    "${psql[@]}" -c "SELECT round(${4:-bench.jobs_per_s('bench')}::numeric, 1)"
}

workers 2
want workers && say "background workers: $(fmt $n_workers) jobs, no-op SQL handler, 2 workers; peers"
want workers && for r in $(seq 1 "$rounds"); do
    measure workers_sql worker_run "CALL bench.fill('bench', $n_workers)" sql 'SELECT $2'
    measure graphile_drain peer graphile drain "$n_workers"
    measure pgboss_drain peer pgboss drain "$n_workers"
done
"${psql[@]}" -d floors -c "TRUNCATE floor_jobs"

# The cost of the job history (issue 10): the same runs with
# procq.record_events on and off, alternating within each round (set with
# ALTER SYSTEM and a reload, which the workers and new sessions follow): the
# background workers' drain, external fetch_jobs(100) + finish_jobs (2
# clients), external fetch_job + finish_job (4 clients) and defer (4 clients).
# Each run must leave events exactly when they are on (bench.events_ok).
record_events() { # on|off
    "${psql[@]}" -c "ALTER SYSTEM SET procq.record_events = $1" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 1.5 # the workers reload at their next wake-up (poll_interval 1s)
}
events_check() { # on|off key: warn when the last run's events do not match
    local ok
    ok=$("${psql[@]}" -c "SELECT bench.events_ok($([[ $1 == on ]] && echo true || echo false))")
    [[ $ok == t ]] || { say "  WARNING: $2 with record_events $1 left the wrong events"; record "$2" error; }
}
if want events; then
    say "job history: record_events on and off; $(fmt $n_workers) jobs through 2 workers, external batches and single jobs, defers"
    if [[ $("${psql[@]}" -c "SELECT to_regclass('procq.job_events') IS NOT NULL") == t ]]; then
        workers 2
        for r in $(seq 1 "$rounds"); do
            for m in on off; do
                record_events "$m"
                measure "ev_workers_$m" worker_run "CALL bench.fill('bench', $n_workers)" sql 'SELECT $2'
                events_check "$m" "ev_workers_$m"
                "${psql[@]}" -c "CALL bench.reset()" -c "CALL bench.fill('ext', $n_batch)"
                measure "ev_batch_$m" bench_timed postgres "$procq_done" "$procq_left" procq_batch.sql -c 2 -j 2
                events_check "$m" "ev_batch_$m"
                "${psql[@]}" -c "CALL bench.reset()" -c "CALL bench.fill('ext', $n_single)"
                measure "ev_single_$m" bench_timed postgres "$procq_done" "$procq_left" procq_single.sql -c 4 -j 4
                events_check "$m" "ev_single_$m"
                "${psql[@]}" -c "CALL bench.reset()" -c "CHECKPOINT"
                measure "ev_defer_$m" bench_pgbench postgres 1 procq_defer.sql -T "$t_ext" -c 4 -j 4
            done
        done
        record_events on
        "${psql[@]}" -c "CALL bench.reset()"
    else
        for m in on off; do missing "ev_workers_$m"; done
    fi
fi

want flows && say "workflows through the workers: $(fmt $n_flow) jobs as fan-out/fan-in, as chains of 10, independent"
want flows && for r in $(seq 1 "$rounds"); do
    measure flow_independent worker_run "CALL bench.fill('bench', $n_flow)" sql 'SELECT $2'
    measure flow_fanout worker_run "CALL bench.workflow('bench', 'fanout', $n_flow)" sql 'SELECT $2'
    measure flow_chains worker_run "CALL bench.workflow('bench', 'chains', $n_flow)" sql 'SELECT $2'
done

# Conditions on parents (run_after): one fan-out/fan-in whose clean-up step
# (run_after 'completion') depends on the join and on every step; the same
# with its first step failing (the join is cancelled, the clean-up runs);
# and independent jobs, in the same rounds.  Every job of the run is
# counted, and its statuses must be the plan's (bench.flow_per_s).
if want workflows; then
    say "workflows with conditions: $(fmt $n_flow) jobs as fan-out/fan-in + 'completion' clean-up, the same with a failing step, independent"
    if has defer_workflow && [[ $("${psql[@]}" -c "SELECT count(*) FROM pg_attribute
            WHERE attrelid = 'procq.jobs'::regclass AND attname = 'run_after'") == 1 ]]; then
        for r in $(seq 1 "$rounds"); do
            measure wf_independent worker_run "CALL bench.fill('bench', $n_flow)" sql 'SELECT $2' \
                "bench.flow_per_s(0, 0)"
            measure wf_cleanup worker_run "CALL bench.workflow('bench', 'cleanup', $n_flow)" sql 'SELECT $2' \
                "bench.flow_per_s(0, 0)"
            measure wf_cleanup_fail worker_run "CALL bench.workflow('bench', 'cleanup_fail', $n_flow)" sql 'SELECT $2' \
                "bench.flow_per_s(1, 1)"
        done
    else
        missing wf_cleanup
        missing wf_cleanup_fail
    fi
fi

want shell && say "shell handler /bin/true: $(fmt $n_shell) jobs, 2 workers"
want shell && for r in $(seq 1 "$rounds"); do
    measure shell worker_run "CALL bench.fill('bench', $n_shell)" shell /bin/true
done

want latency && say "defer-to-start latency on idle workers: $n_latency jobs per round"
latency_round() { # prints the median; the p95 goes to a file
    local med p95
    "${psql[@]}" -c "CALL bench.reset()" >/dev/null || return 1
    IFS='|' read -r med p95 < <("${psql[@]}" -c "CALL bench.latency($n_latency)") || return 1
    echo "$p95" >>"$PQ_CLUSTER_DIR/latency_p95"
    echo "$med"
}
want latency && for r in $(seq 1 "$rounds"); do
    measure latency latency_round
done
lat_p95=$(cat "$PQ_CLUSTER_DIR/latency_p95" 2>/dev/null | tr '\n' ' ' || true)

# ---- steady state ---------------------------------------------------------
# Defers at about 80% of the workers' peak (pgbench --rate, 10 jobs per
# transaction), run by the two
# workers, for $steady seconds.  Compared: completions per second in the
# first and the last window (a minute, or a third of a short run), the
# workers' private memory (RssAnon in /proc) after the first window and at
# the end, and the table and index sizes at the end.
peak=$(median <<<"${val[workers_sql]:-}")
[[ -n $peak ]] || peak=1000
rate=$(awk -v p="$peak" 'BEGIN {printf "%d", p * 0.8}')
win=$((steady >= 180 ? 60 : steady / 3))
rss() {
    local pid kb total=0
    for pid in $("${psql[@]}" -c "SELECT pid FROM procq.worker_status"); do
        kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || kb=0
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}
if want steady; then
    say "steady state: $steady s of defers at $rate/s (80% of $peak) run by 2 workers"
    steady_ok=1
    "${psql[@]}" -c "CALL bench.reset()" -c "SELECT procq.register_handler('steady', 'sql', 'SELECT \$2')" >/dev/null
    t_start=$("${psql[@]}" -c "SELECT clock_timestamp()")
    pgbench -n -M prepared -f bench/pgbench/procq_steady.sql -c 4 -j 4 -R "$((rate / 10 > 0 ? rate / 10 : 1))" -T "$steady" \
        >"$PQ_CLUSTER_DIR/steady.out" 2>&1 &
    pgbench_pid=$!
    sleep "$win"
    rss_first=$(rss)
    wait "$pgbench_pid" || steady_ok=0
    cat "$PQ_CLUSTER_DIR/steady.out" >>"$log"
    rss_last=$(rss)
    sleep 2 # the last jobs deferred finish
    if ((steady_ok)); then
        IFS='|' read -r first last backlog tbl idx deps < <("${psql[@]}" -c "
            SELECT round(bench.finished_per_s('steady', '$t_start', $win)::numeric, 1),
                   round(bench.finished_per_s('steady', '$t_start'::timestamptz + interval '$((steady - win)) seconds', $win)::numeric, 1),
                   (SELECT count(*) FROM procq.jobs WHERE status IN ('todo', 'doing')),
                   pg_size_pretty(pg_table_size('procq.jobs')),
                   pg_size_pretty(pg_indexes_size('procq.jobs')),
                   pg_size_pretty(pg_total_relation_size('procq.job_dependencies'))")
        njobs=$("${psql[@]}" -c "SELECT count(*) FROM procq.jobs")
        achieved=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$PQ_CLUSTER_DIR/steady.out" | tail -n 1)
        [[ -n $achieved ]] && achieved=$(awk -v t="$achieved" 'BEGIN {print t * 10}')
        record steady_first "$first"
        record steady_last "$last"
        record steady_rss_first "$rss_first"
        record steady_rss_last "$rss_last"
        steady_sizes="procq.jobs $(fmt "$njobs") rows: table $tbl, indexes $idx; job_dependencies $deps; $(fmt "$backlog") not finished at the end"
    else
        for k in steady_first steady_last steady_rss_first steady_rss_last; do record $k error; done
        steady_sizes="error"
    fi
fi
"${psql[@]}" -c "CALL bench.reset()" >/dev/null
workers 0

# ---- the table ------------------------------------------------------------
best_peer() { # key_suffix: the better of the two peers' medians, "name|figure"
    local g p
    g=$(median <<<"${val[graphile_$1]:-}")
    p=$(median <<<"${val[pgboss_$1]:-}")
    if [[ -z $g && -z $p ]]; then echo "best peer|"
    elif [[ -z $p ]] || { [[ -n $g ]] && awk -v a="$g" -v b="$p" 'BEGIN {exit !(a >= b)}'; }; then
        echo "best peer (Graphile Worker)|$g"
    else echo "best peer (pg-boss)|$p"; fi
}
figure() { # key -> median, or the marker ("not run": outside BENCH_ONLY)
    local v=${val[$1]:-}
    if [[ -z $v && -n ${BENCH_ONLY:-} ]]; then echo "not run"
    elif [[ -z $v ]]; then echo "error"
    elif [[ $v =~ ^[0-9] ]]; then median <<<"$v"
    else echo "$v"; fi
}
show() { # number unit
    [[ $1 =~ ^[0-9] ]] || { echo "$1"; return; }
    case $2 in
        jobs/s) echo "$(fmt "$1") jobs/s" ;;
        us) LC_ALL=C printf '%.1f us\n' "$1" ;;
        ms) LC_ALL=C printf '%.2f ms\n' "$1" ;;
        kB) echo "$(fmt "$1") kB" ;;
        *) echo "$1 $2" ;;
    esac
}
rows=()
# row scenario procq-figure unit compared-label compared-figure op target
row() {
    local scen=$1 p=$2 unit=$3 label=$4 ref=$5 op=$6 target=$7 ratio="" verdict
    [[ $p == "not run" ]] && return 0
    if [[ $p =~ ^[0-9] && ( $op == "<" || $ref =~ ^[0-9] ) ]]; then
        if [[ $op == "<" ]]; then
            verdict=$(awk -v a="$p" -v t="$target" 'BEGIN {print (a < t) ? "met" : "missed"}')
        else
            ratio=$(awk -v a="$p" -v b="$ref" 'BEGIN {printf "%.2f", a / b}')
            case $op in
                ">=") verdict=$(awk -v r="$ratio" -v t="$target" 'BEGIN {print (r >= t) ? "met" : "missed"}') ;;
                ">") verdict=$(awk -v r="$ratio" -v t="$target" 'BEGIN {print (r > t) ? "met" : "missed"}') ;;
                "<=") verdict=$(awk -v r="$ratio" -v t="$target" 'BEGIN {print (r <= t) ? "met" : "missed"}') ;;
                *) verdict="reported" ;;
            esac
        fi
    elif [[ $op == - ]]; then
        verdict=reported
    else
        verdict="-"
    fi
    [[ $op == - ]] && verdict=reported
    local tgt
    case $op in
        "<") tgt="< $target $unit" ;;
        -) tgt="reported" ;;
        *) tgt="$op ${target}x" ;;
    esac
    local refshow=""
    [[ -n $label ]] && refshow="$label: $(show "${ref:-error}" "$unit")"
    rows+=("$scen|$(show "$p" "$unit")|$refshow|${ratio:+${ratio}x}|$tgt|$verdict")
}

IFS='|' read -r bp_drain_name bp_drain < <(best_peer drain)
[[ -n $bp_drain ]] || bp_drain="error"
w=$(fmt $n_workers)
row "background workers, no-op SQL handler, 2 workers, $w jobs" "$(figure workers_sql)" jobs/s \
    "$bp_drain_name" "$bp_drain" ">=" 2
row "" "$(figure workers_sql)" jobs/s "in-database floor (claim 100, compute, mark done; 2 sessions)" "$(figure floor_indb)" ">=" 0.7
ext_batch=$(figure ext_batch)
row "external fetch_jobs(100) + finish_jobs, 2 clients" "$ext_batch" jobs/s \
    "single-job floor, 4 clients" "$(figure floor_single_4)" ">=" 10
row "" "$ext_batch" jobs/s "$bp_drain_name" "$bp_drain" ">=" 1
row "" "$ext_batch" jobs/s "SKIP LOCKED floor in batches of 100, 2 clients" "$(figure floor_batch)" - -
for c in 1 4 16; do
    row "external fetch_job + finish_job, $c client$([[ $c == 1 ]] || echo s)" "$(figure ext_single_$c)" jobs/s \
        "single-job floor, $c client$([[ $c == 1 ]] || echo s)" "$(figure floor_single_$c)" ">=" 0.9
done
row "defer, one per call, 4 clients" "$(figure defer_one)" jobs/s "plain INSERT, 4 clients" "$(figure insert_one)" ">=" 0.8
for k in defer_jobs defer_workflow; do
    row "$k of 10,000" "$(figure $k)" jobs/s "one multi-row INSERT of 10,000" "$(figure insert_multi)" ">=" 0.5
    row "" "$(figure $k)" jobs/s "Graphile Worker add_jobs of 10,000" "$(figure graphile_add)" ">" 1
    row "" "$(figure $k)" jobs/s "pg-boss insert of 10,000" "$(figure pgboss_insert)" - -
done
row "10,000 defer calls in one statement" "$(figure defer_many)" jobs/s "one multi-row INSERT of 10,000" "$(figure insert_multi)" - -
row "background workers, 2 workers, $w jobs, procq.record_events on" "$(figure ev_workers_on)" jobs/s \
    "the same, off" "$(figure ev_workers_off)" ">=" 0.85
row "external fetch_jobs(100) + finish_jobs, 2 clients, record_events on" "$(figure ev_batch_on)" jobs/s \
    "the same, off" "$(figure ev_batch_off)" ">=" 0.85
row "external fetch_job + finish_job, 4 clients, record_events on" "$(figure ev_single_on)" jobs/s \
    "the same, off" "$(figure ev_single_off)" ">=" 0.85
row "defer, one per call, 4 clients, record_events on" "$(figure ev_defer_on)" jobs/s \
    "the same, off" "$(figure ev_defer_off)" ">=" 0.85
f=$(fmt $n_flow)
row "$f jobs as fan-out/fan-in (1 -> $(fmt $((n_flow - 2))) -> 1), 2 workers" "$(figure flow_fanout)" jobs/s \
    "$f independent jobs" "$(figure flow_independent)" ">=" 0.7
row "$f jobs as $(fmt $((n_flow / 10))) chains of 10, 2 workers" "$(figure flow_chains)" jobs/s \
    "$f independent jobs" "$(figure flow_independent)" ">=" 0.7
row "$f jobs as fan-out/fan-in (1 -> $(fmt $((n_flow - 3))) -> join) + 'completion' clean-up after all, 2 workers" \
    "$(figure wf_cleanup)" jobs/s "$f independent jobs" "$(figure wf_independent)" ">=" 0.7
row "the same, one step failing (join cancelled, clean-up runs)" \
    "$(figure wf_cleanup_fail)" jobs/s "$f independent jobs" "$(figure wf_independent)" ">=" 0.7
empty=$(figure fetch_empty)
row "fetch_job, $(fmt $n_fetch_big) waiting on parents" "$(figure fetch_parents)" us "empty table" "$empty" "<=" 1.5
row "fetch_job, $(fmt $n_fetch_big) scheduled later" "$(figure fetch_future)" us "empty table" "$empty" "<=" 1.5
row "fetch_job, $(fmt $n_fetch_lock) behind one busy lock" "$(figure fetch_lock)" us "empty table" "$empty" "<=" 1.5
lat=$(figure latency)
p95=$(median <<<"$lat_p95")
[[ -n $p95 ]] && p95=$(LC_ALL=C printf '%.2f' "$p95")
row "defer-to-start on idle workers, median (p95 ${p95:-?} ms)" "$lat" ms "" "" "<" 2
sw=$([[ $win == 60 ]] && echo "minute" || echo "${win} s")
row "steady state, $steady s of defers at $(fmt "$rate")/s (achieved ${achieved:+$(fmt "$achieved")}/s): last $sw" "$(figure steady_last)" jobs/s \
    "first $sw" "$(figure steady_first)" ">=" 0.8
row "steady state: workers' memory (RssAnon) at the end" "$(figure steady_rss_last)" kB \
    "after the first $sw" "$(figure steady_rss_first)" "<=" 1.1
want steady && rows+=("steady state: sizes at the end|$steady_sizes||||reported")
row "shell handler /bin/true, 2 workers, $(fmt $n_shell) jobs" "$(figure shell)" jobs/s "" "" - -

{
    echo "| scenario | procq | compared with | ratio | target | |"
    echo "|---|---|---|---|---|---|"
    for r in "${rows[@]}"; do echo "| ${r//|/ | } |"; done
    echo
    echo "procq $procq_version; PostgreSQL $("${psql[@]}" -c "SHOW server_version"); Graphile Worker $(
        node -p "require('./bench/peers/node_modules/graphile-worker/package.json').version" 2>/dev/null || echo '?'), pg-boss $(
        node -p "require('./bench/peers/node_modules/pg-boss/package.json').version" 2>/dev/null || echo '?'), node $(node -v 2>/dev/null || echo '?')."
    echo "$(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo) RAM; fsync on, synchronous_commit on, shared_buffers 512MB; median of $rounds rounds$( ((quick)) && echo '; BENCH_QUICK sizes'); $(date -u '+%Y-%m-%d %H:%M UTC')."
} >"$PQ_CLUSTER_DIR/table.md"
mkdir -p "$(dirname "$out")"
cp "$PQ_CLUSTER_DIR/table.md" "$out"
echo
column -t -s '|' -o ' | ' < <(sed -n '1p;3,$p' "$out" | grep '^|' | sed 's/^| //; s/ |$//; s/ | /|/g')
echo
tail -n 2 "$out"
echo "(table written to $out; log: $log)"
