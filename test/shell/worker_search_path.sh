#!/usr/bin/env bash
# worker_search_path.sh: the workers' own statements run as the owner of
# procq's tables (a superuser) and must not resolve names through a schema
# that a less privileged role can create in.  The owner of procq.database
# (not a superuser; public belongs to it in PostgreSQL 15) plants
# public.make_interval(integer), a better match than pg_catalog's for the
# workers' fetch, which would make it a superuser if it were ever called
# with the workers' privileges.  After jobs have run, it is still not one.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/shell/lib/worker.sh

pq_cluster_start "shared_preload_libraries = 'procq'" "procq.database = 'app'" \
    "procq.workers = 1" "procq.poll_interval = 200ms"
psql -Xq -c "CREATE ROLE appowner LOGIN NOSUPERUSER" -c "CREATE DATABASE app OWNER appowner"
export PGDATABASE=app
q "CREATE EXTENSION procq" >/dev/null
q "GRANT USAGE ON SCHEMA procq TO appowner; GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO appowner" >/dev/null
q -U appowner "CREATE FUNCTION public.make_interval(secs integer) RETURNS interval
    LANGUAGE plpgsql AS \$\$
    BEGIN
        EXECUTE 'ALTER ROLE appowner SUPERUSER';
        RETURN pg_catalog.make_interval(secs => secs::float8);
    END \$\$" >/dev/null
q -U appowner "SELECT procq.register_handler('noop', 'sql', 'SELECT 1')" >/dev/null
id=$(q -U appowner "SELECT procq.defer('noop')")
wait_until "job $id ran" "SELECT status = 'succeeded' FROM procq.jobs WHERE id = $id"
[[ $(q "SELECT rolsuper FROM pg_roles WHERE rolname = 'appowner'") == f ]] ||
    fail "a function planted in public ran with the workers' privileges"
ok "the workers' statements ignore objects planted in public; appowner is still no superuser"
