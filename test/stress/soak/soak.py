#!/usr/bin/python3
"""soak.py: the fault soak of procq (issue 8), driven by test/stress/10_soak.sh.

    soak.py run          the driver (the cluster is already running: PGHOST,
                         PGPORT, PQ_CLUSTER_DIR, PQ_CLUSTER_LOG, PQ_PGBIN set
                         by scripts/cluster.sh, procq created in PGDATABASE)
    soak.py worker N     one external worker (started by the driver)

A random DAG of PQ_SOAK_JOBS jobs (in workflows of PQ_SOAK_WORKFLOW jobs,
each job with 0-3 random earlier parents of its workflow) is deferred in
waves while procq's background workers (task 'sql', a PL/pgSQL handler) and
PQ_SOAK_EXT_WORKERS external worker processes (task 'ext'; even ones with
fetch_job + finish_job, odd ones with fetch_jobs(5) + finish_jobs, fenced by
the attempt they fetched) drain it.  Meanwhile the driver SIGKILLs
background workers, terminates external workers' connections, and once
stops the server with pg_ctl -m immediate and starts it again; some 'ext'
jobs make their first worker stall past its lease and then try to finish.
At the end it checks the invariants of the README's Guarantees section and
prints a summary.  Everything random comes from PQ_SOAK_SEED (printed);
the DAG, each job's plan (failures, stalls, locks) and the fault plan are
the same for a seed, the interleaving with the server is not.

Environment (defaults meet issue 8):
    PQ_SOAK_SEED         seed (random when unset; printed)
    PQ_SOAK_JOBS         jobs in the DAG (20000)
    PQ_SOAK_WORKFLOW     jobs per workflow (40)
    PQ_SOAK_EXT_WORKERS  external worker processes (4)
    PQ_SOAK_KILLS        SIGKILLs of background workers (8)
    PQ_SOAK_STALLS       'ext' jobs whose first worker stalls past its lease (25)
    PQ_SOAK_TERM_EVERY   seconds between two pg_terminate_backend of an
                         external worker (1.5)
    PQ_SOAK_DEFER_SECONDS  the defers are spread over this many seconds (20)
    PQ_SOAK_TIMEOUT      seconds the drain may take (330)
    PQ_SOAK_SABOTAGE     comma-separated, to see the checks fail: 'nofence':
                         external workers finish and heartbeat without
                         attempt; 'double': every 500th SQL job records its
                         effect twice
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

import psycopg

LEASE_SECONDS = 2          # procq.lease_duration of the external workers
# what a refused finish must leave as it is (a todo job may be fetched
# meanwhile; a job doing in a later attempt is held by a worker that waits
# for the stale try, and only heartbeats it)
ROW_SQL = ("SELECT status::text, attempts, worker, result::text, error, finished_at, "
           "pending_parents FROM procq.jobs WHERE id = %s")
STATEMENT_TIMEOUT = '60s'  # no statement of the soak waits longer


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


def log(msg):
    print(time.strftime('%H:%M:%S ') + msg, flush=True)


class Fatal(Exception):
    """The soak cannot go on (a bounded wait ran out, a setup step failed)."""


def driver_alive():
    """In an external worker: stop when the driver that started it is gone."""
    parent = os.environ.get('PQ_SOAK_DRIVER_PID')
    if parent and os.getppid() != int(parent):
        raise Fatal('the driver is gone')


def connect(app, deadline, autocommit=True):
    """A connection, retried (the server may be restarting) until deadline."""
    last = None
    while time.time() < deadline:
        driver_alive()
        try:
            conn = psycopg.connect('', autocommit=autocommit, application_name=app,
                                   connect_timeout=5)
            conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
            conn.execute("SET lock_timeout = '30s'")
            return conn
        except psycopg.OperationalError as e:
            last = e
            time.sleep(0.2)
    raise Fatal(f'{app}: could not connect before the deadline: {last}')


def lost(e, conn):
    """Whether error e means the connection is gone (terminated, crash restart,
    server stopping), as opposed to an error of the statement.  (psycopg
    counts SQLSTATE classes 55, 57 and 40 as OperationalError too.)"""
    state = getattr(e, 'sqlstate', None)
    return (conn is None or conn.closed or state is None or state.startswith('08')
            or state.startswith('57P'))


def close_quietly(conn):
    try:
        if conn is not None:
            conn.close()
    except Exception:
        pass


# ---------------------------------------------------------------------------
# The plan: DAG, job plans, from the seed
# ---------------------------------------------------------------------------

def make_plan(seed, njobs, wf_size, nstalls):
    """The workflows: a list of lists of step dicts (key = index in its workflow)."""
    rng = random.Random(seed)
    workflows = []
    ext_candidates = []
    c = 0
    left = njobs
    while left > 0:
        n = min(wf_size, left)
        steps = []
        for i in range(n):
            task = 'sql' if rng.random() < 0.6 else 'ext'
            k = rng.randint(0, min(3, i))
            parents = sorted(rng.sample(range(i), k))
            max_attempts = rng.choice([1, 2, 2, 3])
            r = rng.random()
            if r < 0.01:
                fail_first = max_attempts            # fails for good
            elif r < 0.16 and max_attempts > 1:
                fail_first = rng.randint(1, max_attempts - 1)   # then succeeds
            else:
                fail_first = 0
            lock = f'lk{rng.randint(0, 7)}' if rng.random() < 0.04 else None
            ms = rng.choice([0, 0, 0, 1, 3])
            step = {'c': c, 'i': i, 'task': task, 'parents': parents,
                    'max_attempts': max_attempts, 'f': fail_first, 'lock': lock,
                    'ms': ms, 's': 0}
            if task == 'ext' and lock is None:
                ext_candidates.append(step)
            steps.append(step)
        workflows.append(steps)
        left -= n
        c += 1
    for step in rng.sample(ext_candidates, min(nstalls, len(ext_candidates))):
        # The first attempt stalls past its lease; the next one must finish.
        step['s'] = 1
        step['f'] = 0
        step['max_attempts'] = max(step['max_attempts'], 3)
    return workflows


def workflow_json(steps):
    out = []
    for s in steps:
        d = {'key': str(s['i']), 'task': s['task'],
             'args': {'c': s['c'], 'i': s['i'], 'f': s['f'], 's': s['s'], 'ms': s['ms']},
             'max_attempts': s['max_attempts']}
        if s['parents']:
            d['depends_on'] = [str(p) for p in s['parents']]
        if s['lock']:
            d['lock'] = s['lock']
        out.append(d)
    return json.dumps(out)


SETUP_SQL = r"""
CREATE TABLE public.effects (
    job_id bigint NOT NULL, attempt int NOT NULL, started_at timestamptz NOT NULL,
    backend int NOT NULL);
CREATE TABLE public.ext_attempts (
    job_id bigint NOT NULL, attempt int NOT NULL, worker text NOT NULL,
    started_at timestamptz NOT NULL, finished_at timestamptz, returned text,
    PRIMARY KEY (job_id, attempt));
CREATE TABLE public.stale_tries (
    job_id bigint NOT NULL, attempt int NOT NULL, worker text NOT NULL,
    state_before text, outcome text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE public.sql_starts (job_id bigint NOT NULL, attempt int NOT NULL,
    started_at timestamptz NOT NULL);
CREATE TABLE public.plan (c int, i int, task text, max_attempts int, f int, s int,
    lock text, parents int[], PRIMARY KEY (c, i));

-- The SQL handler: logs its start (the server log survives rollbacks and
-- crashes), records its effect, and then fails while its planned failures
-- last (so a failed attempt's effect must be rolled back with the job's
-- subtransaction).
CREATE FUNCTION public.soak_sql(args jsonb, job bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t timestamptz := clock_timestamp();
    a int;
BEGIN
    SELECT j.attempts INTO a FROM procq.jobs j WHERE j.id = job;
    RAISE LOG 'soak start job % attempt % at %', job, a,
        to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US');
    IF (args->>'ms')::int > 0 THEN
        PERFORM pg_sleep((args->>'ms')::int / 1000.0);
    END IF;
    INSERT INTO public.effects VALUES (job, a, t, pg_backend_pid());
    IF a <= (args->>'f')::int THEN
        RAISE EXCEPTION 'soak: planned failure of job % attempt %', job, a;
    END IF;
    RETURN job;
END $$;
SELECT procq.register_handler('sql', 'sql', 'SELECT public.soak_sql($1, $2)');
"""


# ---------------------------------------------------------------------------
# External worker (a process of its own: soak.py worker N)
# ---------------------------------------------------------------------------

class ExtWorker:
    def __init__(self, n):
        self.n = n
        self.name = f'soak-ext-{n}'
        self.stop_file = os.environ['PQ_SOAK_STOP_FILE']
        self.deadline = float(os.environ['PQ_SOAK_DEADLINE'])
        self.fence = 'nofence' not in os.environ.get('PQ_SOAK_SABOTAGE', '').split(',')
        self.rng = random.Random(f"{os.environ['PQ_SOAK_SEED']}-worker-{n}")
        self.conn = None
        # odd workers use the batch API: fetch_jobs(5) + finish_jobs(attempts)
        self.batch = 5 if n % 2 == 1 else 0
        self.c = dict(fetched=0, succeeded=0, failed=0, lost=0, reconnects=0,
                      stalls=0, stale_refused=0, stale_accepted=0, stale_other=0,
                      holder_waits=0, finish_errors=0, heartbeats=0,
                      heartbeat_refused=0, unexpected=[])

    def reconnect(self):
        close_quietly(self.conn)
        self.conn = connect(self.name, self.deadline)
        self.conn.execute(f"SET procq.lease_duration = '{LEASE_SECONDS}s'")

    def fetch(self):
        """Fetch one job and record the attempt's start in the same transaction."""
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT j.id, j.attempts, j.args, j.lease_expires_at, clock_timestamp() "
                "FROM procq.fetch_job(worker => %s, tasks => ARRAY['ext']) j",
                (self.name,)).fetchone()
            if row is None:
                return None
            self.conn.execute(
                "INSERT INTO public.ext_attempts (job_id, attempt, worker, started_at) "
                "VALUES (%s, %s, %s, %s)", (row[0], row[1], self.name, row[4]))
        return row

    def finish_sql(self):
        if self.fence:
            return "SELECT procq.finish_job(%s, %s, %s, %s, attempt => %s)"
        return "SELECT procq.finish_job(%s, %s, %s, %s)"

    def finish(self, job, attempt, status):
        """finish_job with fencing, and the attempt's end, in one transaction;
        retried after a deadlock or serialization failure, as the README
        tells clients to."""
        for _ in range(5):
            try:
                return self.finish_once(job, attempt, status)
            except psycopg.Error as e:
                if lost(e, self.conn) or e.sqlstate not in ('40P01', '40001'):
                    raise
                self.c['retried_40'] = self.c.get('retried_40', 0) + 1
                time.sleep(self.rng.uniform(0.01, 0.1))
        return self.finish_once(job, attempt, status)

    def finish_once(self, job, attempt, status):
        result = json.dumps({'job': job, 'attempt': attempt}) if status == 'succeeded' else None
        error = f'soak: planned failure of job {job} attempt {attempt}' if status == 'failed' else None
        args = (job, status, result, error) + ((attempt,) if self.fence else ())
        with self.conn.transaction():
            ret = self.conn.execute(self.finish_sql(), args).fetchone()[0]
            self.conn.execute(
                "UPDATE public.ext_attempts SET finished_at = clock_timestamp(), returned = %s "
                "WHERE job_id = %s AND attempt = %s", (ret, job, attempt))
        return ret

    def heartbeat(self, job, attempt):
        if self.fence:
            self.conn.execute("SELECT procq.heartbeat(%s, attempt => %s)", (job, attempt))
        else:
            self.conn.execute("SELECT procq.heartbeat(%s)", (job,))
        self.c['heartbeats'] += 1

    def job_state(self, job):
        return self.conn.execute(
            "SELECT status::text, attempts FROM procq.jobs WHERE id = %s", (job,)).fetchone()

    def wait_taken(self, job, attempt):
        """Wait (at most 8 s) until the job is doing in a later attempt, or
        final; returns its (status, attempts) then."""
        limit = time.time() + 8
        state = self.job_state(job)
        while time.time() < limit:
            state = self.job_state(job)
            if (state[0] == 'doing' and state[1] > attempt) or \
                    state[0] in ('succeeded', 'failed', 'cancelled'):
                break
            time.sleep(0.05)
        return state

    def stall(self, job, attempt, lease_expires, now):
        """Stall past the lease, see the job taken back, then try to finish."""
        self.c['stalls'] += 1
        # not a target of the driver's terminations while stalling
        self.conn.execute("SELECT set_config('application_name', %s, false)", (f'soak-stall-{self.n}',))
        time.sleep(max(0.0, (lease_expires - now).total_seconds()) + 0.3)
        self.conn.execute("SELECT procq.recover_stalled()")
        state = self.wait_taken(job, attempt)
        before = f'{state[0]} attempt {state[1]}'
        ours = state[0] == 'doing' and state[1] == attempt   # not taken back after all
        row_before = self.conn.execute(ROW_SQL, (job,)).fetchone()
        try:
            self.finish(job, attempt, 'succeeded')
            if ours:
                outcome = 'not stale: never taken back'
            else:
                outcome = 'accepted'
                self.c['stale_accepted'] += 1
        except psycopg.Error as e:
            if lost(e, self.conn):
                raise
            if e.sqlstate == 'PQ001':
                outcome = 'refused PQ001'
                self.c['stale_refused'] += 1
                row_after = self.conn.execute(ROW_SQL, (job,)).fetchone()
                if row_before[0] != 'todo' and row_after != row_before:
                    outcome = f'refused PQ001 but the job changed: {row_before} -> {row_after}'
            else:
                outcome = f'error {e.sqlstate}: {str(e).splitlines()[0]}'
                self.c['stale_other'] += 1
        self.conn.execute("INSERT INTO public.stale_tries (job_id, attempt, worker, state_before, outcome) "
                          "VALUES (%s, %s, %s, %s, %s)", (job, attempt, self.name, before, outcome))
        self.conn.execute("SELECT set_config('application_name', %s, false)", (self.name,))

    def hold(self, items):
        """Later attempts of stalling jobs, (job, attempt) items: keep them
        (heartbeats) until each one's stale attempt has tried to finish, so
        that its try meets a job that is doing in another attempt.  Returns
        the items still held."""
        self.c['holder_waits'] += len(items)
        # not a target of the driver's terminations while holding
        self.conn.execute("SELECT set_config('application_name', %s, false)", (f'soak-hold-{self.n}',))
        try:
            return self.hold_wait(items)
        finally:
            if not self.conn.closed:
                try:
                    self.conn.execute("SELECT set_config('application_name', %s, false)", (self.name,))
                except psycopg.Error:
                    pass

    def hold_wait(self, items):
        held = list(items)
        waiting = list(items)
        limit = time.time() + 10
        while waiting and time.time() < limit:
            for job, attempt in list(waiting):
                if self.conn.execute("SELECT EXISTS (SELECT FROM public.stale_tries WHERE job_id = %s)",
                                     (job,)).fetchone()[0]:
                    waiting.remove((job, attempt))
                    continue
            for job, attempt in list(held):
                try:
                    self.heartbeat(job, attempt)
                except psycopg.Error as e:
                    if lost(e, self.conn):
                        raise
                    self.c['heartbeat_refused'] += 1
                    if e.sqlstate != 'PQ001' and len(self.c['unexpected']) < 10:
                        self.c['unexpected'].append(f'heartbeat of job {job} attempt {attempt}: '
                                                    f'{e.sqlstate}: {str(e).splitlines()[0]}')
                    held.remove((job, attempt))
                    if (job, attempt) in waiting:
                        waiting.remove((job, attempt))
            if waiting:
                time.sleep(0.3)
        return held

    def work(self, row):
        job, attempt, args, lease_expires, now = row
        self.c['fetched'] += 1
        if args['s'] and attempt == 1:
            self.stall(job, attempt, lease_expires, now)
            return
        if args['s'] and not self.hold([(job, attempt)]):
            return
        if args['ms']:
            time.sleep(args['ms'] / 1000.0)
        self.finish_planned(job, attempt, 'failed' if attempt <= args['f'] else 'succeeded')

    def finish_planned(self, job, attempt, status):
        """Finish one job as planned; a lost lease (PQ001) is legitimate."""
        try:
            self.finish(job, attempt, status)
            self.c[status] += 1
        except psycopg.Error as e:
            if lost(e, self.conn):
                raise
            if e.sqlstate == 'PQ001':
                self.c['lost'] += 1          # its lease ran out meanwhile: legitimate
            else:
                self.c['finish_errors'] += 1
                if len(self.c['unexpected']) < 10:
                    self.c['unexpected'].append(f'finish of job {job} attempt {attempt}: '
                                                f'{e.sqlstate}: {str(e).splitlines()[0]}')

    def fetch_batch(self, n):
        """fetch_jobs(n), each attempt's start recorded in the same transaction."""
        with self.conn.transaction():
            rows = self.conn.execute(
                "SELECT j.id, j.attempts, j.args, j.lease_expires_at, clock_timestamp() "
                "FROM procq.fetch_jobs(%s, worker => %s, tasks => ARRAY['ext']) j",
                (n, self.name)).fetchall()
            for r in rows:
                self.conn.execute(
                    "INSERT INTO public.ext_attempts (job_id, attempt, worker, started_at) "
                    "VALUES (%s, %s, %s, %s)", (r[0], r[1], self.name, r[4]))
        return rows

    def finish_group(self, items, status):
        """finish_jobs of (job, attempt) items, all with status, fenced by their
        attempts, and their attempts' ends, in one transaction."""
        ids = [j for j, _ in items]
        results = [json.dumps({'job': j, 'attempt': a}) for j, a in items] if status == 'succeeded' else None
        errors = [f'soak: planned failure of job {j} attempt {a}' for j, a in items] if status == 'failed' else None
        att = dict(items)
        sql = ("SELECT job_id, status::text FROM procq.finish_jobs(%s::bigint[], %s, %s::jsonb[], %s::text[]"
               + (", attempts => %s::integer[])" if self.fence else ")"))
        args = (ids, status, results, errors) + (([a for _, a in items],) if self.fence else ())
        with self.conn.transaction():
            rows = self.conn.execute(sql, args).fetchall()
            for job, ret in rows:
                self.conn.execute(
                    "UPDATE public.ext_attempts SET finished_at = clock_timestamp(), returned = %s "
                    "WHERE job_id = %s AND attempt = %s", (ret, job, att[job]))
        return rows

    def stall_batch(self, rows, st):
        """A batch with a stalling job: the whole batch stalls past its lease;
        then finish_jobs of all of it, fenced, must be refused with PQ001 (all
        or nothing) and change nothing; then each job alone (each PQ001)."""
        job, attempt, _, lease_expires, now = st
        self.c['stalls'] += 1
        self.c['batch_stalls'] = self.c.get('batch_stalls', 0) + 1
        self.c['fetched'] += len(rows)
        self.conn.execute("SELECT set_config('application_name', %s, false)", (f'soak-stall-{self.n}',))
        time.sleep(max(0.0, (lease_expires - now).total_seconds()) + 0.3)
        self.conn.execute("SELECT procq.recover_stalled()")
        state = self.wait_taken(job, attempt)
        before = f'{state[0]} attempt {state[1]} (finish_jobs of {len(rows)})'
        ours = state[0] == 'doing' and state[1] == attempt
        row_before = self.conn.execute(ROW_SQL, (job,)).fetchone()
        items = [(r[0], r[1]) for r in rows]
        try:
            self.finish_group(items, 'succeeded')
            outcome = 'not stale: never taken back' if ours else 'accepted'
            if not ours:
                self.c['stale_accepted'] += 1
        except psycopg.Error as e:
            if lost(e, self.conn):
                raise
            if e.sqlstate == 'PQ001':
                outcome = 'refused PQ001'
                self.c['stale_refused'] += 1
                row_after = self.conn.execute(ROW_SQL, (job,)).fetchone()
                if row_before[0] != 'todo' and row_after != row_before:
                    outcome = f'refused PQ001 but the job changed: {row_before} -> {row_after}'
                # a worker told PQ001 by finish_jobs finishes each job alone
                for j, a in items:
                    if j != job:
                        self.finish_planned(j, a, 'succeeded')
            else:
                outcome = f'error {e.sqlstate}: {str(e).splitlines()[0]}'
                self.c['stale_other'] += 1
        self.conn.execute("INSERT INTO public.stale_tries (job_id, attempt, worker, state_before, outcome) "
                          "VALUES (%s, %s, %s, %s, %s)", (job, attempt, self.name, before, outcome))
        self.conn.execute("SELECT set_config('application_name', %s, false)", (self.name,))

    def work_batch(self, rows):
        """A batch: the plain jobs finished with finish_jobs (one call per
        status; when one of them lost its lease, PQ001 for the call, and then
        each is finished alone), then the stalling and holding jobs one by
        one."""
        stalls = [r for r in rows if r[2]['s'] and r[1] == 1]
        if stalls:
            self.stall_batch(rows, stalls[0])
            return
        plain = [r for r in rows if not r[2]['s']]
        ms = max([r[2]['ms'] for r in plain] or [0])
        if ms:
            time.sleep(ms / 1000.0)
        groups = {'succeeded': [], 'failed': []}
        for job, attempt, args, _, _ in plain:
            self.c['fetched'] += 1
            groups['failed' if attempt <= args['f'] else 'succeeded'].append((job, attempt))
        for status, items in groups.items():
            if not items:
                continue
            for tries in range(6):
                try:
                    self.finish_group(items, status)
                    self.c[status] += len(items)
                    self.c['batch_finishes'] = self.c.get('batch_finishes', 0) + 1
                    break
                except psycopg.Error as e:
                    if lost(e, self.conn):
                        raise
                    if e.sqlstate in ('40P01', '40001') and tries < 5:
                        self.c['retried_40'] = self.c.get('retried_40', 0) + 1
                        time.sleep(self.rng.uniform(0.01, 0.1))
                        continue
                    if e.sqlstate == 'PQ001':
                        self.c['batch_fallbacks'] = self.c.get('batch_fallbacks', 0) + 1
                        for job, attempt in items:
                            self.finish_planned(job, attempt, status)
                    else:
                        self.c['finish_errors'] += 1
                        if len(self.c['unexpected']) < 10:
                            self.c['unexpected'].append(f'finish_jobs of {items}: {e.sqlstate}: '
                                                        f'{str(e).splitlines()[0]}')
                    break
        # the held ones together (heartbeating all), then the stalling ones
        holds = [(r[0], r[1]) for r in rows if r[2]['s'] and r[1] > 1]
        if holds:
            self.c['fetched'] += len(holds)
            for job, attempt in self.hold(holds):
                self.finish_planned(job, attempt, 'succeeded')
        for r in rows:
            if r[2]['s'] and r[1] == 1:
                self.work(r)

    def run(self):
        while not os.path.exists(self.stop_file):
            if time.time() > self.deadline:
                self.c['unexpected'].append('deadline reached before the driver said stop')
                break
            if os.getppid() != int(os.environ['PQ_SOAK_DRIVER_PID']):
                break
            try:
                if self.conn is None or self.conn.closed:
                    self.reconnect()
                    self.c['reconnects'] += 1
                if self.batch:
                    rows = self.fetch_batch(self.batch)
                    if not rows:
                        time.sleep(0.05)
                        continue
                    self.work_batch(rows)
                    continue
                row = self.fetch()
                if row is None:
                    time.sleep(0.05)
                    continue
                self.work(row)
            except Fatal as e:
                self.c['unexpected'].append(str(e))
                break
            except psycopg.Error as e:
                if lost(e, self.conn):
                    close_quietly(self.conn)
                    self.conn = None
                    time.sleep(self.rng.uniform(0.05, 0.3))
                elif e.sqlstate in ('40P01', '40001'):
                    self.c['retried_40'] = self.c.get('retried_40', 0) + 1
                elif len(self.c['unexpected']) < 10:
                    self.c['unexpected'].append(f'{e.sqlstate}: {str(e).splitlines()[0]}')
                time.sleep(0.05)
        self.c['reconnects'] -= 1   # the first connection is not a reconnect
        close_quietly(self.conn)
        try:
            with open(os.environ['PQ_SOAK_OUT'] + f'.worker{self.n}', 'w') as f:
                json.dump(self.c, f)
        except OSError:
            pass    # the driver is gone, and its directory with it


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------

class Driver:
    def __init__(self):
        self.seed = os.environ.get('PQ_SOAK_SEED') or str(random.SystemRandom().randrange(1, 10**9))
        os.environ['PQ_SOAK_SEED'] = self.seed
        self.njobs = env_int('PQ_SOAK_JOBS', 20000)
        self.wf_size = env_int('PQ_SOAK_WORKFLOW', 40)
        self.next_workers = env_int('PQ_SOAK_EXT_WORKERS', 4)
        self.nkills = env_int('PQ_SOAK_KILLS', 8)
        self.nstalls = env_int('PQ_SOAK_STALLS', 25)
        self.term_every = env_float('PQ_SOAK_TERM_EVERY', 1.5)
        self.defer_seconds = env_float('PQ_SOAK_DEFER_SECONDS', 20)
        self.timeout = env_float('PQ_SOAK_TIMEOUT', 330)
        self.sabotage = os.environ.get('PQ_SOAK_SABOTAGE', '')
        self.rng = random.Random(f'{self.seed}-faults')
        self.workdir = os.environ['PQ_SOAK_WORKDIR']
        self.logfile = os.environ['PQ_CLUSTER_LOG']
        self.stop_file = os.path.join(self.workdir, 'stop')
        self.failures = []
        self.figures = {}
        self.killed_pids = []
        self.terminations = 0
        self.restarts = 0
        self.recovered = 0
        self.deferred = 0
        self.finished_fraction = 0.0
        self.all_deferred = threading.Event()
        self.drained = threading.Event()
        self.thread_errors = []

    def fail(self, msg):
        self.failures.append(msg)
        log('FAILED: ' + msg)

    # ---- setup --------------------------------------------------------------
    def setup(self):
        deadline = time.time() + 60
        conn = connect('soak-setup', deadline)
        has_attempt = conn.execute(
            "SELECT EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'procq' AND p.proname = 'finish_job' "
            "AND 'attempt' = ANY (p.proargnames))").fetchone()[0]
        if not has_attempt and 'nofence' not in self.sabotage.split(','):
            raise Fatal('procq.finish_job has no attempt argument (fencing, issue 8): this build '
                        'cannot run the soak (PQ_SOAK_SABOTAGE=nofence runs it without fencing, '
                        'and must then fail)')
        setup = SETUP_SQL
        if 'double' in self.sabotage.split(','):
            # a check input broken on purpose: every 500th job's effect twice
            setup = setup.replace("    INSERT INTO public.effects VALUES (job, a, t, pg_backend_pid());\n",
                                  "    INSERT INTO public.effects VALUES (job, a, t, pg_backend_pid());\n"
                                  "    IF job % 500 = 0 THEN INSERT INTO public.effects VALUES "
                                  "(job, a, t, pg_backend_pid()); END IF;\n")
            assert setup != SETUP_SQL
        with conn.transaction():
            conn.execute(setup)
        self.workflows = make_plan(self.seed, self.njobs, self.wf_size, self.nstalls)
        with conn.transaction():
            with conn.cursor().copy("COPY public.plan FROM STDIN") as cp:
                for steps in self.workflows:
                    for s in steps:
                        cp.write_row((s['c'], s['i'], s['task'], s['max_attempts'], s['f'], s['s'],
                                      s['lock'], s['parents']))
        self.nworkers_bg = conn.execute(
            "SELECT current_setting('procq.workers')::int").fetchone()[0]
        close_quietly(conn)

    # ---- producer -------------------------------------------------------------
    def defer_workflow(self, conn, steps):
        conn.execute("SELECT count(*) FROM procq.defer_workflow(%s::jsonb)", (workflow_json(steps),))

    def committed_jobs(self, c, deadline):
        """How many jobs of workflow c exist (after a defer lost its connection)."""
        while True:
            conn = connect('soak-producer-check', deadline)
            try:
                return conn.execute("SELECT count(*) FROM procq.jobs WHERE (args->>'c')::int = %s",
                                    (c,)).fetchone()[0]
            except psycopg.Error as e:
                if not lost(e, conn):
                    raise
                time.sleep(0.2)
            finally:
                close_quietly(conn)

    def producer(self):
        deadline = time.time() + self.timeout
        conn = None
        per_wave = max(1, len(self.workflows) // 20)
        pause = self.defer_seconds / 20
        for w0 in range(0, len(self.workflows), per_wave):
            for steps in self.workflows[w0:w0 + per_wave]:
                c = steps[0]['c']
                while True:
                    try:
                        if conn is None:
                            conn = connect('soak-producer', deadline)
                        self.defer_workflow(conn, steps)
                        break
                    except psycopg.Error as e:
                        if not lost(e, conn):
                            raise
                        close_quietly(conn)
                        conn = None
                    # did it commit?  all of it or nothing, never a part
                    n = self.committed_jobs(c, deadline)
                    if n == len(steps):
                        break
                    if n != 0:
                        self.fail(f'workflow {c} was deferred in part: {n} of {len(steps)} jobs')
                        break
                self.deferred += len(steps)
            time.sleep(pause)
        close_quietly(conn)
        self.all_deferred.set()
        log(f'producer: {self.deferred} jobs deferred in {len(self.workflows)} workflows')

    # ---- faults ---------------------------------------------------------------
    def wait_server(self, what, secs=120):
        deadline = time.time() + secs
        while time.time() < deadline:
            try:
                conn = psycopg.connect('', autocommit=True, application_name='soak-probe',
                                       connect_timeout=3)
                n = conn.execute("SELECT count(*) FROM procq.worker_status WHERE pid IS NOT NULL "
                                 "AND state IS NOT NULL").fetchone()[0]
                conn.close()
                if n >= self.nworkers_bg:
                    return
            except psycopg.Error:
                pass
            time.sleep(0.2)
        raise Fatal(f'the server or its {self.nworkers_bg} procq workers did not come back '
                    f'within {secs} s after {what}')

    def kill_worker(self, conn):
        """SIGKILL a background worker, preferably one running a batch."""
        pid = None
        limit = time.time() + 3
        while time.time() < limit and pid is None:
            rows = conn.execute("SELECT pid FROM procq.worker_status WHERE state = 'running sql' "
                                "ORDER BY pid").fetchall()
            if rows:
                pid = self.rng.choice(rows)[0]
            else:
                time.sleep(0.02)
        if pid is None:
            rows = conn.execute("SELECT pid FROM procq.worker_status WHERE pid IS NOT NULL "
                                "ORDER BY pid").fetchall()
            if not rows:
                return False
            pid = self.rng.choice(rows)[0]
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False        # it exited meanwhile: try again
        self.killed_pids.append(pid)
        log(f'faults: SIGKILL procq worker {pid} ({len(self.killed_pids)} of {self.nkills})')
        return True

    def immediate_restart(self):
        log('faults: pg_ctl stop -m immediate, then start')
        here = os.path.dirname(os.path.abspath(__file__))
        cluster_sh = os.path.join(here, '..', '..', '..', 'scripts', 'cluster.sh')
        r = subprocess.run(['bash', '-c', 'source "$1" && pq_cluster_restart immediate', 'x', cluster_sh],
                           timeout=200, capture_output=True, text=True)
        if r.returncode != 0:
            raise Fatal(f'the immediate stop and restart failed: {r.stdout}{r.stderr}')
        self.restarts += 1

    def faults(self):
        deadline = time.time() + self.timeout
        conn = None
        next_term = time.time() + self.term_every
        next_recover = time.time() + 1
        # the SIGKILLs at these fractions of the jobs finished, the immediate stop halfway
        kill_at = [0.9 * (k + 1) / (self.nkills + 1) for k in range(self.nkills)]
        restart_at = 0.5
        while not self.drained.is_set() and time.time() < deadline:
            try:
                if conn is None:
                    conn = connect('soak-faults', deadline)
                now = time.time()
                frac = self.finished_fraction
                if self.restarts == 0 and frac >= restart_at:
                    close_quietly(conn)
                    conn = None
                    self.immediate_restart()
                    self.wait_server('the immediate stop')
                    continue
                if len(self.killed_pids) < self.nkills \
                        and frac >= kill_at[len(self.killed_pids)]:
                    if self.kill_worker(conn):
                        close_quietly(conn)
                        conn = None
                        time.sleep(0.5)
                        self.wait_server(f'the SIGKILL of worker {self.killed_pids[-1]}')
                    else:
                        time.sleep(0.2)
                    continue
                if now >= next_term:
                    next_term = now + self.term_every
                    rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name "
                                        "LIKE 'soak-ext-%' ORDER BY pid").fetchall()
                    if rows:
                        pid = self.rng.choice(rows)[0]
                        if conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]:
                            self.terminations += 1
                if now >= next_recover:
                    next_recover = now + 1
                    self.recovered += conn.execute("SELECT procq.recover_stalled()").fetchone()[0]
                time.sleep(0.1)
            except psycopg.Error as e:
                if not lost(e, conn):
                    raise
                close_quietly(conn)
                conn = None
                time.sleep(0.2)
        close_quietly(conn)

    def thread(self, fn):
        def run():
            try:
                fn()
            except Exception as e:
                self.thread_errors.append(f'{fn.__name__}: {e}')
                log(f'{fn.__name__} stopped: {e}\n{traceback.format_exc()}')
                self.drained.set()
        t = threading.Thread(target=run, name=fn.__name__, daemon=True)
        t.start()
        return t

    # ---- the run ------------------------------------------------------------------
    def run(self):
        t0 = time.time()
        log(f'seed {self.seed} (PQ_SOAK_SEED={self.seed} reproduces the plan); {self.njobs} jobs, '
            f'{self.next_workers} external workers, {self.nkills} SIGKILLs, {self.nstalls} stalls'
            + (f', SABOTAGE={self.sabotage}' if self.sabotage else ''))
        self.setup()
        deadline = time.time() + self.timeout
        env = dict(os.environ, PQ_SOAK_STOP_FILE=self.stop_file, PQ_SOAK_DEADLINE=str(deadline + 30),
                   PQ_SOAK_OUT=os.path.join(self.workdir, 'counters'),
                   PQ_SOAK_DRIVER_PID=str(os.getpid()))
        workers = [subprocess.Popen([sys.executable, os.path.abspath(__file__), 'worker', str(n)], env=env)
                   for n in range(self.next_workers)]
        producer = self.thread(self.producer)
        faults = self.thread(self.faults)
        conn = None
        last_report = 0
        try:
            while True:
                if time.time() > deadline:
                    self.fail(f'the DAG was not drained within PQ_SOAK_TIMEOUT={self.timeout:.0f} s')
                    break
                if self.thread_errors:
                    self.fail('; '.join(self.thread_errors))
                    break
                try:
                    if conn is None:
                        conn = connect('soak-monitor', deadline)
                    open_, total = conn.execute(
                        "SELECT count(*) FILTER (WHERE status IN ('todo', 'doing')), count(*) "
                        "FROM procq.jobs").fetchone()
                except psycopg.Error as e:
                    if not lost(e, conn):
                        raise
                    close_quietly(conn)
                    conn = None
                    time.sleep(0.2)
                    continue
                self.finished_fraction = (total - open_) / self.njobs
                if time.time() - last_report >= 10:
                    last_report = time.time()
                    log(f'progress: {total} deferred, {total - open_} final, {open_} open; '
                        f'{len(self.killed_pids)} SIGKILLs, {self.terminations} terminations, '
                        f'{self.restarts} immediate restarts')
                if self.all_deferred.is_set() and open_ == 0 and total == self.njobs:
                    break
                time.sleep(0.25)
        finally:
            self.drained.set()
            with open(self.stop_file, 'w'):
                pass
            for p in workers:
                try:
                    p.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    p.kill()
                    self.fail(f'external worker process {p.pid} did not stop within 40 s')
            producer.join(timeout=30)
            faults.join(timeout=60)
            close_quietly(conn)
        self.figures['drain seconds'] = round(time.time() - t0, 1)
        self.collect_counters()
        self.check()
        self.summary(time.time() - t0)
        return 0 if not self.failures else 1

    def collect_counters(self):
        tot = {}
        for n in range(self.next_workers):
            path = os.path.join(self.workdir, f'counters.worker{n}')
            if not os.path.exists(path):
                self.fail(f'external worker {n} left no counters (it died?)')
                continue
            with open(path) as f:
                c = json.load(f)
            for k, v in c.items():
                if k == 'unexpected':
                    for u in v:
                        self.fail(f'external worker {n}: {u}')
                else:
                    tot[k] = tot.get(k, 0) + v
        self.ext = tot

    # ---- checks ---------------------------------------------------------------------
    def load_sql_starts(self, conn):
        pat = re.compile(r'LOG:  soak start job (\d+) attempt (\d+) at (\S+ \S+)$')
        rows = []
        with open(self.logfile, errors='replace') as f:
            for line in f:
                m = pat.search(line.rstrip('\n'))
                if m:
                    rows.append((int(m.group(1)), int(m.group(2)), m.group(3) + '+00'))
        with conn.transaction():
            with conn.cursor().copy("COPY public.sql_starts FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
        return len(rows)

    def q(self, conn, sql):
        return conn.execute(sql).fetchall()

    def expect_none(self, conn, what, sql):
        """A check: SQL returns the offending rows (at most 5 shown)."""
        rows = conn.execute(f'SELECT * FROM ({sql}) v LIMIT 6').fetchall()
        if rows:
            self.fail(f'{what}: ' + '; '.join(str(r) for r in rows[:5]) + (' ...' if len(rows) > 5 else ''))
        else:
            log(f'ok: {what}: none')
        return not rows

    def check(self):
        conn = connect('soak-check', time.time() + 120)
        conn.execute("SET statement_timeout = '300s'")
        f = self.figures
        f['SQL attempts started (server log)'] = self.load_sql_starts(conn)
        conn.execute("ANALYZE")
        # map plan rows to job ids (args carry the workflow and step index)
        conn.execute("""CREATE TABLE public.job_plan AS
            SELECT j.id, p.* FROM procq.jobs j
              JOIN public.plan p ON p.c = (j.args->>'c')::int AND p.i = (j.args->>'i')::int""")
        conn.execute("CREATE UNIQUE INDEX ON public.job_plan (id)")
        conn.execute("CREATE UNIQUE INDEX ON public.job_plan (c, i)")
        # the success commit time of each job: the commit of the row written in
        # the transaction that made it succeed (the SQL job's effect, the
        # external attempt's end)
        conn.execute("""CREATE TABLE public.success AS
            SELECT job_id, pg_xact_commit_timestamp(xmin) AS committed_at, 'sql' AS kind
              FROM public.effects
            UNION ALL
            SELECT job_id, pg_xact_commit_timestamp(xmin), 'ext'
              FROM public.ext_attempts WHERE returned = 'succeeded'""")
        conn.execute("""CREATE TABLE public.attempt_starts AS
            SELECT job_id, attempt, started_at, 'sql' AS kind FROM public.sql_starts
            UNION ALL SELECT job_id, attempt, started_at, 'ext' FROM public.ext_attempts""")
        conn.execute("ANALYZE")

        jobs, final = conn.execute("SELECT count(*), count(*) FILTER (WHERE status IN "
                                   "('succeeded', 'failed', 'cancelled')) FROM procq.jobs").fetchone()
        f['jobs'] = jobs
        for st, n in self.q(conn, "SELECT task || ' ' || status, count(*) FROM procq.jobs GROUP BY 1 ORDER BY 1"):
            f[f'jobs {st}'] = n
        if jobs != self.njobs:
            self.fail(f'{jobs} jobs in procq.jobs, {self.njobs} planned')
        if final != jobs:
            self.fail(f'{jobs - final} jobs not final (todo or doing)')
        else:
            log(f'ok: every job final ({jobs})')
        self.expect_none(conn, 'jobs not matched to the plan',
                         "SELECT id FROM procq.jobs EXCEPT SELECT id FROM public.job_plan")
        # the checks below use the planned DAG, not procq's own rows
        conn.execute("""CREATE TABLE public.planned_deps AS
            SELECT c.id AS job_id, p.id AS depends_on FROM public.job_plan c
             CROSS JOIN LATERAL unnest(c.parents) AS pi(i)
              JOIN public.job_plan p ON p.c = c.c AND p.i = pi.i""")
        conn.execute("CREATE INDEX ON public.planned_deps (job_id)")
        conn.execute("CREATE INDEX ON public.planned_deps (depends_on)")
        conn.execute("ANALYZE public.planned_deps")
        self.expect_none(conn, 'dependency rows other than planned', """
            (SELECT d.job_id, d.depends_on FROM procq.job_dependencies d
             EXCEPT SELECT * FROM public.planned_deps)
            UNION ALL
            (SELECT * FROM public.planned_deps
             EXCEPT SELECT d.job_id, d.depends_on FROM procq.job_dependencies d)""")

        # dependencies: cancelled exactly when a parent did not succeed
        self.expect_none(conn, 'jobs with a parent that did not succeed, not cancelled', """
            SELECT j.id, j.status, p.id AS parent, p.status AS parent_status
              FROM procq.jobs j JOIN public.planned_deps d ON d.job_id = j.id
              JOIN procq.jobs p ON p.id = d.depends_on
             WHERE p.status <> 'succeeded' AND j.status <> 'cancelled'""")
        self.expect_none(conn, 'cancelled jobs whose parents all succeeded', """
            SELECT j.id, j.error FROM procq.jobs j WHERE j.status = 'cancelled'
               AND NOT EXISTS (SELECT FROM public.planned_deps d JOIN procq.jobs p ON p.id = d.depends_on
                               WHERE d.job_id = j.id AND p.status <> 'succeeded')""")
        self.expect_none(conn, 'descendants of a job failed for good that are not cancelled', """
            WITH RECURSIVE down(id) AS (
                SELECT d.job_id FROM public.planned_deps d JOIN procq.jobs p ON p.id = d.depends_on
                 WHERE p.status = 'failed'
                UNION
                SELECT d.job_id FROM public.planned_deps d JOIN down ON d.depends_on = down.id)
            SELECT j.id, j.status FROM down JOIN procq.jobs j USING (id) WHERE j.status <> 'cancelled'""")

        # SQL jobs: their plan, and their effect exactly once
        self.expect_none(conn, 'SQL jobs whose effect count is not 1 if succeeded, 0 otherwise', """
            SELECT j.id, j.status, count(e.job_id) AS effects FROM procq.jobs j
              LEFT JOIN public.effects e ON e.job_id = j.id WHERE j.task = 'sql'
             GROUP BY j.id, j.status
            HAVING count(e.job_id) <> CASE WHEN j.status = 'succeeded' THEN 1 ELSE 0 END""")
        self.expect_none(conn, 'succeeded SQL jobs not in their planned attempt (failures + 1)', """
            SELECT j.id, j.attempts, e.attempt, p.f FROM procq.jobs j JOIN public.job_plan p USING (id)
              JOIN public.effects e ON e.job_id = j.id
             WHERE j.task = 'sql' AND (j.attempts <> p.f + 1 OR e.attempt <> p.f + 1)""")
        self.expect_none(conn, 'SQL jobs whose parents succeeded and which did not end as planned', """
            SELECT j.id, j.status, j.attempts, p.f, p.max_attempts, left(j.error, 100)
              FROM procq.jobs j JOIN public.job_plan p USING (id)
             WHERE j.task = 'sql' AND j.status <> 'cancelled'
               AND j.status <> CASE WHEN p.f >= p.max_attempts THEN 'failed' ELSE 'succeeded' END::procq.job_status
               AND j.error IS DISTINCT FROM 'not run again: its procq worker died 3 times while running it'""")
        f['SQL jobs failed as poison (3 worker deaths)'] = conn.execute(
            "SELECT count(*) FROM procq.jobs WHERE error = "
            "'not run again: its procq worker died 3 times while running it'").fetchone()[0]

        # no attempt started before all its parents' success had committed
        self.expect_none(conn, 'attempts started before a parent had succeeded', """
            SELECT a.job_id, a.attempt, a.kind, a.started_at, d.depends_on, s.committed_at
              FROM public.attempt_starts a JOIN public.planned_deps d ON d.job_id = a.job_id
              LEFT JOIN public.success s ON s.job_id = d.depends_on
             WHERE s.committed_at IS NULL OR a.started_at < s.committed_at""")
        self.expect_none(conn, 'succeeded jobs without exactly one success record', """
            SELECT j.id, j.task, count(s.job_id) FROM procq.jobs j LEFT JOIN public.success s ON s.job_id = j.id
             GROUP BY j.id, j.task, j.status
            HAVING count(s.job_id) <> CASE WHEN j.status = 'succeeded' THEN 1 ELSE 0 END""")
        self.expect_none(conn, 'succeeded SQL jobs whose successful attempt has no start in the log', """
            SELECT e.job_id, e.attempt FROM public.effects e
             WHERE NOT EXISTS (SELECT FROM public.sql_starts s WHERE s.job_id = e.job_id
                               AND s.attempt = e.attempt AND s.started_at = e.started_at)""")

        # fencing: no stale finish succeeded
        self.expect_none(conn, 'stale finishes that were accepted (or failed otherwise than with PQ001)', """
            SELECT job_id, attempt, worker, state_before, outcome FROM public.stale_tries
             WHERE outcome NOT IN ('refused PQ001', 'not stale: never taken back')""")
        self.expect_none(conn, 'finishes that committed after a later attempt of the job had started', """
            SELECT a.job_id, a.attempt, a.worker, b.attempt AS later, b.started_at,
                   pg_xact_commit_timestamp(a.xmin) AS finish_committed
              FROM public.ext_attempts a JOIN public.ext_attempts b
                ON b.job_id = a.job_id AND b.attempt > a.attempt
             WHERE a.returned IS NOT NULL AND b.started_at < pg_xact_commit_timestamp(a.xmin)""")
        self.expect_none(conn, 'succeeded external jobs not finished by their last attempt', """
            SELECT j.id, j.attempts, a.attempt FROM procq.jobs j
              JOIN public.ext_attempts a ON a.job_id = j.id AND a.returned = 'succeeded'
             WHERE a.attempt <> j.attempts""")
        stale = self.q(conn, "SELECT count(*), count(*) FILTER (WHERE outcome = 'refused PQ001') "
                             "FROM public.stale_tries")[0]
        f['stale finishes tried'], f['stale finishes refused (PQ001)'] = stale
        f['stale finishes tried through finish_jobs (a whole stalled batch)'] = conn.execute(
            "SELECT count(*) FROM public.stale_tries WHERE state_before LIKE '%(finish_jobs of%'").fetchone()[0]
        f['stale finishes tried, by what the job was doing then'] = ', '.join(
            f'{n} {w}' for w, n in self.q(conn, """
                SELECT CASE WHEN state_before LIKE 'doing attempt 1%' THEN 'still doing in its attempt'
                            WHEN state_before LIKE 'doing%' THEN 'doing in a later attempt'
                            ELSE split_part(state_before, ' ', 1) END, count(*)
                  FROM public.stale_tries GROUP BY 1 ORDER BY 2 DESC""")) or 'none'
        if self.nstalls > 0 and stale[0] == 0:
            self.fail('no stalled external worker tried to finish: the fencing check saw nothing')

        # locks: one job at a time per lock, in id order
        self.expect_none(conn, 'jobs of one lock that ran at the same time', """
            WITH runs AS (
                SELECT e.job_id, j.lock, e.started_at AS s, pg_xact_commit_timestamp(e.xmin) AS t
                  FROM public.effects e JOIN procq.jobs j ON j.id = e.job_id WHERE j.lock IS NOT NULL
                UNION ALL
                SELECT a.job_id, j.lock, a.started_at, pg_xact_commit_timestamp(a.xmin)
                  FROM public.ext_attempts a JOIN procq.jobs j ON j.id = a.job_id
                 WHERE j.lock IS NOT NULL AND a.returned IS NOT NULL)
            SELECT x.lock, x.job_id, y.job_id FROM runs x JOIN runs y
                ON x.lock = y.lock AND x.job_id < y.job_id AND x.s < y.t AND y.s < x.t""")
        conn.execute("""CREATE TABLE public.lock_jobs AS
            SELECT id, lock, finished_at FROM procq.jobs WHERE lock IS NOT NULL""")
        conn.execute("CREATE INDEX ON public.attempt_starts (job_id)")
        conn.execute("ANALYZE public.lock_jobs, public.attempt_starts")
        self.expect_none(conn, 'jobs of a lock that started before an earlier job of the lock was final', """
            SELECT a.job_id, a.started_at, e.id AS earlier, e.finished_at FROM public.lock_jobs b
              JOIN public.attempt_starts a ON a.job_id = b.id
              JOIN public.lock_jobs e ON e.lock = b.lock AND e.id < b.id
             WHERE a.started_at < e.finished_at""")
        f['jobs with a lock'] = conn.execute("SELECT count(*) FROM procq.jobs WHERE lock IS NOT NULL").fetchone()[0]

        # nothing left for recover_stalled
        n = conn.execute("SELECT procq.recover_stalled()").fetchone()[0]
        if n != 0:
            self.fail(f'recover_stalled() still found {n} jobs at the end')
        else:
            log('ok: recover_stalled() has nothing left to do')
        f['ext attempts'] = conn.execute("SELECT count(*) FROM public.ext_attempts").fetchone()[0]
        f['jobs put back by recover_stalled (driver)'] = self.recovered
        close_quietly(conn)

        self.check_faults()
        self.check_server_log()

    def check_faults(self):
        f = self.figures
        f['SIGKILLs of background workers'] = len(self.killed_pids)
        f['immediate stops'] = self.restarts
        f['external connections terminated'] = self.terminations
        if len(self.killed_pids) < self.nkills:
            self.fail(f'only {len(self.killed_pids)} of {self.nkills} SIGKILLs happened')
        if self.restarts != 1:
            self.fail(f'{self.restarts} immediate stops happened, 1 planned')
        if self.terminations == 0 and self.term_every > 0:
            self.fail('no external worker connection was terminated')
        for k in ('fetched', 'succeeded', 'failed', 'lost', 'retried_40', 'batch_finishes',
                  'batch_fallbacks', 'reconnects', 'stalls', 'batch_stalls',
                  'stale_refused', 'stale_accepted', 'stale_other', 'finish_errors',
                  'heartbeats', 'heartbeat_refused'):
            f[f'ext workers: {k}'] = self.ext.get(k, 0)
        if self.ext.get('stale_accepted', 0):
            self.fail(f"{self.ext['stale_accepted']} stale finishes were accepted")

    def check_server_log(self):
        with open(self.logfile, errors='replace') as fh:
            text = fh.read()
        bad = []
        killed = set(self.killed_pids)
        for line in text.splitlines():
            if re.search(r'\bPANIC:|TRAP:|terminated by signal (?!9:)|was terminated by exception', line):
                bad.append(line)
            m = re.search(r'\(PID (\d+)\) was terminated by signal 9', line)
            if m and int(m.group(1)) not in killed:
                bad.append(line)
        sig9 = len(re.findall(r'was terminated by signal 9', text))
        self.figures['crash restarts in the server log'] = text.count('all server processes terminated; reinitializing')
        if bad:
            self.fail('server log: ' + ' | '.join(bad[:5]))
        elif sig9 != len(self.killed_pids):
            self.fail(f'server log: {sig9} processes terminated by signal 9, {len(self.killed_pids)} killed')
        else:
            log('ok: server log: no PANIC, assertion or crash but the intended SIGKILLs')

    def summary(self, secs):
        print('\n---- soak summary (seed %s)' % self.seed)
        for k, v in self.figures.items():
            print(f'  {k}: {v}')
        print(f'  duration: {secs:.1f} s')
        if self.failures:
            print(f'SOAK FAILED: {len(self.failures)} checks failed (PQ_SOAK_SEED={self.seed})')
            for m in self.failures:
                print('  - ' + m)
        else:
            print(f'soak passed (PQ_SOAK_SEED={self.seed})')
        sys.stdout.flush()


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == 'worker':
        ExtWorker(int(sys.argv[2])).run()
        return 0
    if len(sys.argv) >= 2 and sys.argv[1] == 'run':
        d = Driver()
        try:
            return d.run()
        except Fatal as e:
            log(f'SOAK FAILED: {e} (PQ_SOAK_SEED={d.seed})')
            return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
