#!/usr/bin/env bash
# metrics_config.sh: the example postgres_exporter configuration
# (docs/postgres_exporter.yaml) cannot rot: each of its queries runs, as a
# role with only the grants the file names, and returns exactly the columns
# its metrics list declares, with the metric names procq.metrics() documents.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
yaml=docs/postgres_exporter.yaml
psql=("$PQ_PGBIN/psql" -X -q -v ON_ERROR_STOP=1)

# the grants the file names, for a role of our own
"${psql[@]}" <<'SQL'
DROP ROLE IF EXISTS procq_ext_monitoring;
CREATE ROLE procq_ext_monitoring LOGIN;
GRANT USAGE ON SCHEMA procq TO procq_ext_monitoring;
GRANT EXECUTE ON FUNCTION procq.metrics() TO procq_ext_monitoring;
SELECT procq.defer('metrics test', queue => 'metrics_q');
SQL
grep -q 'GRANT USAGE ON SCHEMA procq TO monitoring;' "$yaml"
grep -q 'GRANT EXECUTE ON FUNCTION procq.metrics() TO monitoring;' "$yaml"

# "name<TAB>query<TAB>columns" for each top-level entry
entries=$(awk '
    /^[a-z_]+:$/ { if (name != "") print name "\t" query "\t" cols; name = substr($0, 1, length($0) - 1); query = ""; cols = "" }
    /^  query: "/ { q = $0; sub(/^  query: "/, "", q); sub(/"$/, "", q); query = q }
    /^    - [a-z_]+:$/ { c = $0; sub(/^    - /, "", c); sub(/:$/, "", c); cols = (cols == "" ? c : cols "," c) }
    END { if (name != "") print name "\t" query "\t" cols }' "$yaml")
[[ $(wc -l <<<"$entries") -eq 2 ]] || { echo "expected 2 queries in $yaml, got: $entries" >&2; exit 1; }

status=0
while IFS=$'\t' read -r name query cols; do
    [[ -n $query ]] || { echo "$name: no query" >&2; status=1; continue; }
    # the columns the query returns, in order
    got=$(PGUSER=procq_ext_monitoring "${psql[@]}" -At <<SQL
CREATE TEMP VIEW q AS $query;
SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
WHERE attrelid = 'pg_temp.q'::regclass AND attnum > 0;
SQL
    )
    if [[ $got != "$cols" ]]; then
        echo "$name: the query returns columns $got, its metrics list declares $cols" >&2
        status=1
    fi
    rows=$(PGUSER=procq_ext_monitoring "${psql[@]}" -At -F ' ' -c "$query")
    echo "$name:"
    sed 's/^/    /' <<<"$rows"
    [[ -n $rows ]] || { echo "$name: no rows" >&2; status=1; }
    case $name in
        procq_queue)
            for m in jobs_ready jobs_waiting jobs_waiting_parents jobs_waiting_lock jobs_scheduled \
                jobs_running jobs_succeeded jobs_failed jobs_cancelled jobs_finished_last_minute \
                oldest_ready_age_seconds; do
                grep -qx "$m metrics_q [0-9.e+-]*" <<<"$rows" || { echo "$name: no $m for metrics_q" >&2; status=1; }
                grep -q "$m" "$yaml" || { echo "$name: $m is not described" >&2; status=1; }
            done
            grep -qx "jobs_ready metrics_q 1" <<<"$rows" || { echo "$name: jobs_ready of metrics_q is not 1" >&2; status=1; }
            ;;
        procq_workers)
            for m in workers_starting workers_idle workers_running_sql workers_running_shell \
                workers_jobs_done_total workers_longest_job_seconds; do
                grep -qx "$m [0-9.e+-]*" <<<"$rows" || { echo "$name: no $m" >&2; status=1; }
                grep -q "$m" "$yaml" || { echo "$name: $m is not described" >&2; status=1; }
            done
            ;;
        *) echo "$name: unknown entry" >&2; status=1 ;;
    esac
done <<<"$entries"

"${psql[@]}" -c "DROP OWNED BY procq_ext_monitoring; DROP ROLE procq_ext_monitoring;"
exit $status
