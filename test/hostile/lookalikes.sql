-- test/hostile/lookalikes.sql: look-alikes of what procq's SQL uses, planted
-- by the role that runs this file (not a superuser) in schemas public and
-- evil, which it may create in.  Each one records that it was called
-- (evil.calls, the non-transactional sequence evil.calls_seq, and a
-- WARNING "procq called look-alike ...") and then does what the original
-- does, so that only the record tells.  Used by test/sql/hostile_search_path.sql
-- and test/t/042_hostile_search_path_workers.pl.
--
-- Each would win over pg_catalog's for an unqualified name if search_path
-- put its schema first (SET search_path = evil, public, pg_temp, procq,
-- pg_catalog): same signatures, or better matches (make_interval(secs
-- integer), format(text, timestamptz, text), =(procq.job_status,
-- procq.job_status) against anyenum, >(double precision, integer)), domains
-- named like the built-in types (evil.text, evil.int8, ...), and views named
-- like procq's tables.  Casts cannot be planted: CREATE CAST needs a
-- superuser (or owning a type, and procq's own types are not the role's).
--
-- Expects schema evil to exist and the role to have CREATE on it and on
-- public, and USAGE on schema procq (for procq.job_status).

CREATE TABLE evil.calls (what text, by_role text, at_role text);
CREATE SEQUENCE evil.calls_seq;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
GRANT INSERT ON evil.calls TO PUBLIC;

-- evil.logged(what): records the call, as the planter (SECURITY DEFINER:
-- whoever calls, even in a security-restricted operation).
CREATE FUNCTION evil.logged(what text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.nextval('evil.calls_seq');
    INSERT INTO evil.calls VALUES (what, session_user, current_user);
    RAISE WARNING 'procq called look-alike %', what;
    RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION evil.logged(text) TO PUBLIC;

DO $do$
DECLARE
    -- name, arguments, result, what the original returns
    fns text[][] := ARRAY[
        ['clock_timestamp', '', 'timestamptz', 'pg_catalog.clock_timestamp()'],
        ['statement_timestamp', '', 'timestamptz', 'pg_catalog.statement_timestamp()'],
        ['transaction_timestamp', '', 'timestamptz', 'pg_catalog.transaction_timestamp()'],
        ['now', '', 'timestamptz', 'pg_catalog.now()'],
        ['pg_backend_pid', '', 'integer', 'pg_catalog.pg_backend_pid()'],
        ['make_interval', 'secs integer', 'interval', 'pg_catalog.make_interval(secs => secs)'],
        ['make_interval', 'secs double precision', 'interval', 'pg_catalog.make_interval(secs => secs)'],
        ['make_interval', 'years integer DEFAULT 0, months integer DEFAULT 0, weeks integer DEFAULT 0, days integer DEFAULT 0, hours integer DEFAULT 0, mins integer DEFAULT 0, secs double precision DEFAULT 0',
            'interval', 'pg_catalog.make_interval(years, months, weeks, days, hours, mins, secs)'],
        ['hashtext', 'v text', 'integer', 'pg_catalog.hashtext(v)'],
        ['hashtextextended', 'v text, s bigint', 'bigint', 'pg_catalog.hashtextextended(v, s)'],
        ['jsonb_build_object', 'VARIADIC v text[]', 'jsonb', 'pg_catalog.jsonb_build_object(VARIADIC v)'],
        ['jsonb_build_object', 'k text, v jsonb', 'jsonb', 'pg_catalog.jsonb_build_object(k, v)'],
        ['format', 'f text, a timestamptz, b text', 'text', 'pg_catalog.format(f, a, b)'],
        ['format', 'f text, VARIADIC a text[]', 'text', 'pg_catalog.format(f, VARIADIC a)'],
        ['nextval', 'r regclass', 'bigint', 'pg_catalog.nextval(r)'],
        ['nextval', 'r text', 'bigint', 'pg_catalog.nextval(r)'],
        ['to_jsonb', 'v bigint', 'jsonb', 'pg_catalog.to_jsonb(v)'],
        ['to_jsonb', 'v integer', 'jsonb', 'pg_catalog.to_jsonb(v)'],
        ['to_jsonb', 'v text', 'jsonb', 'pg_catalog.to_jsonb(v)'],
        ['pg_has_role', 'a oid, b oid, p text', 'boolean', 'pg_catalog.pg_has_role(a, b, p)'],
        ['pg_has_role', 'a name, b name, p text', 'boolean', 'pg_catalog.pg_has_role(a, b, p)'],
        ['pg_has_role', 'b oid, p text', 'boolean', 'pg_catalog.pg_has_role(b, p)'],
        ['has_table_privilege', 'r regclass, p text', 'boolean', 'pg_catalog.has_table_privilege(r, p)'],
        ['pg_try_advisory_xact_lock', 'a integer, b integer', 'boolean', 'pg_catalog.pg_try_advisory_xact_lock(a, b)'],
        ['pg_try_advisory_xact_lock', 'a bigint', 'boolean', 'pg_catalog.pg_try_advisory_xact_lock(a)'],
        ['current_setting', 'n text', 'text', 'pg_catalog.current_setting(n)'],
        ['set_config', 'n text, v text, l boolean', 'text', 'pg_catalog.set_config(n, v, l)'],
        ['quote_ident', 'v text', 'text', 'pg_catalog.quote_ident(v)'],
        ['length', 'v text', 'integer', 'pg_catalog.length(v)'],
        ['octet_length', 'v text', 'integer', 'pg_catalog.octet_length(v)'],
        ['char_length', 'v text', 'integer', 'pg_catalog.char_length(v)'],
        ['cardinality', 'v anyarray', 'integer', 'pg_catalog.cardinality(v)'],
        ['array_length', 'v anyarray, d integer', 'integer', 'pg_catalog.array_length(v, d)'],
        ['jsonb_typeof', 'v jsonb', 'text', 'pg_catalog.jsonb_typeof(v)'],
        ['lower', 'v text', 'text', 'pg_catalog.lower(v)']];
    -- set-returning: name, arguments, element type, the original call
    srfs text[][] := ARRAY[
        ['unnest', 'v bigint[]', 'bigint', 'pg_catalog.unnest(v)'],
        ['unnest', 'v text[]', 'text', 'pg_catalog.unnest(v)'],
        ['unnest', 'v jsonb[]', 'jsonb', 'pg_catalog.unnest(v)'],
        ['unnest', 'v anyarray', 'anyelement', 'pg_catalog.unnest(v)'],
        ['generate_series', 'a integer, b integer', 'integer', 'pg_catalog.generate_series(a, b)'],
        ['generate_series', 'a bigint, b bigint', 'bigint', 'pg_catalog.generate_series(a, b)']];
    -- operators: name, left, right, result, the original
    ops text[][] := ARRAY[
        ['=', 'bigint', 'bigint', 'boolean'], ['=', 'bigint', 'integer', 'boolean'],
        ['=', 'integer', 'integer', 'boolean'], ['=', 'text', 'text', 'boolean'],
        ['=', 'oid', 'oid', 'boolean'], ['=', 'boolean', 'boolean', 'boolean'],
        ['=', 'procq.job_status', 'procq.job_status', 'boolean'],
        ['<>', 'procq.job_status', 'procq.job_status', 'boolean'],
        ['<>', 'text', 'text', 'boolean'], ['<>', 'bigint', 'bigint', 'boolean'],
        ['<', 'bigint', 'bigint', 'boolean'], ['<', 'integer', 'integer', 'boolean'],
        ['<', 'timestamptz', 'timestamptz', 'boolean'], ['<=', 'timestamptz', 'timestamptz', 'boolean'],
        ['>', 'timestamptz', 'timestamptz', 'boolean'], ['>', 'integer', 'integer', 'boolean'],
        ['>', 'bigint', 'bigint', 'boolean'], ['>', 'double precision', 'integer', 'boolean'],
        ['>=', 'integer', 'integer', 'boolean'], ['<=', 'integer', 'integer', 'boolean'],
        ['+', 'timestamptz', 'interval', 'timestamptz'], ['-', 'timestamptz', 'interval', 'timestamptz'],
        ['+', 'integer', 'integer', 'integer'], ['-', 'integer', 'integer', 'integer'],
        ['+', 'bigint', 'bigint', 'bigint'], ['-', 'bigint', 'bigint', 'bigint'],
        ['*', 'numeric', 'integer', 'numeric'],
        ['||', 'text', 'text', 'text'], ['||', 'text', 'bigint', 'text'], ['||', 'bigint', 'text', 'text'],
        ['~~', 'text', 'text', 'boolean']];
    schemas text[] := ARRAY['public', 'evil'];
    s text;
    r text;
    i int := 0;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog', true);
    FOREACH s IN ARRAY schemas LOOP
        FOR k IN 1 .. array_length(fns, 1) LOOP
            EXECUTE format('CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE plpgsql AS $f$ BEGIN PERFORM evil.logged(%L); RETURN %s; END $f$',
                s, fns[k][1], fns[k][2], fns[k][3], s || '.' || fns[k][1] || '(' || fns[k][2] || ')', fns[k][4]);
        END LOOP;
        FOR k IN 1 .. array_length(srfs, 1) LOOP
            EXECUTE format('CREATE FUNCTION %I.%I(%s) RETURNS SETOF %s LANGUAGE plpgsql AS $f$ BEGIN PERFORM evil.logged(%L); RETURN QUERY SELECT %s; END $f$',
                s, srfs[k][1], srfs[k][2], srfs[k][3], s || '.' || srfs[k][1] || '(' || srfs[k][2] || ')', srfs[k][4]);
        END LOOP;
        FOR k IN 1 .. array_length(ops, 1) LOOP
            i := i + 1;
            EXECUTE format('CREATE FUNCTION %I.op_%s(a %s, b %s) RETURNS %s LANGUAGE plpgsql AS $f$ BEGIN PERFORM evil.logged(%L); RETURN a OPERATOR(pg_catalog.%s) b; END $f$',
                s, i, ops[k][2], ops[k][3], ops[k][4],
                s || '.' || ops[k][1] || '(' || ops[k][2] || ', ' || ops[k][3] || ')', ops[k][1]);
            EXECUTE format('CREATE OPERATOR %I.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %I.op_%s)',
                s, ops[k][1], ops[k][2], ops[k][3], s, i);
        END LOOP;
        -- aggregates
        EXECUTE format('CREATE FUNCTION %I.count_sfunc(n bigint) RETURNS bigint LANGUAGE plpgsql AS $f$ BEGIN PERFORM evil.logged(%L); RETURN n OPERATOR(pg_catalog.+) 1; END $f$',
            s, s || '.count(*)');
        EXECUTE format('CREATE AGGREGATE %I.count(*) (SFUNC = %I.count_sfunc, STYPE = bigint, INITCOND = 0)', s, s);
        EXECUTE format('CREATE FUNCTION %I.joa_sfunc(st jsonb, k text, v jsonb) RETURNS jsonb LANGUAGE plpgsql AS $f$ BEGIN PERFORM evil.logged(%L); RETURN pg_catalog.jsonb_set(COALESCE(st, %L::pg_catalog.jsonb), ARRAY[k], v); END $f$',
            s, s || '.jsonb_object_agg(text, jsonb)', '{}');
        EXECUTE format('CREATE AGGREGATE %I.jsonb_object_agg(text, jsonb) (SFUNC = %I.joa_sfunc, STYPE = jsonb)', s, s);
        -- relations named like procq's
        FOREACH r IN ARRAY ARRAY['jobs', 'job_dependencies', 'handlers', 'worker_status'] LOOP
            EXECUTE format('CREATE VIEW %I.%I AS SELECT evil.logged(%L) AS x', s, r, s || '.' || r);
            EXECUTE format('GRANT SELECT ON %I.%I TO PUBLIC', s, r);
        END LOOP;
        EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO PUBLIC', s);
    END LOOP;
    -- types: domains named like the built-in ones (plain names only: bigint,
    -- integer, boolean are keywords that always mean pg_catalog's)
    FOREACH s IN ARRAY ARRAY['text', 'int4', 'int8', 'jsonb', 'timestamptz', 'float8',
                             'bool', 'interval', 'regclass', 'regrole', 'name', 'oid'] LOOP
        EXECUTE format('CREATE DOMAIN evil.%I AS pg_catalog.%I CHECK (evil.logged(%L))', s, s, 'domain evil.' || s);
    END LOOP;
END
$do$;
