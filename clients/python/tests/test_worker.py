"""The Worker against the real database: order, wake-ups, batches,
heartbeats, failures, fencing, aborts, retries of its statements."""

from __future__ import annotations

import datetime as dt
import threading

import procq
from conftest import WAIT, WORKER, connect, job, status, wait_for


def finished(admin, *ids):
    return lambda: all(status(admin, i) in ("succeeded", "failed", "cancelled") for i in ids)


def test_worker_runs_a_workflow_in_order(app, admin, queue, start_worker):
    order = []
    lock = threading.Lock()

    def step(ctx):
        with lock:
            order.append(ctx.job.step_key)
        return {"step": ctx.job.step_key, "parents": ctx.parent_results(by_key=True)}

    ids = procq.defer_workflow(app, [
        {"key": "extract", "task": "step", "queue": queue},
        {"key": "clean", "task": "step", "queue": queue, "depends_on": ["extract"]},
        {"key": "enrich", "task": "step", "queue": queue, "depends_on": ["extract"]},
        {"key": "load", "task": "step", "queue": queue, "depends_on": ["clean", "enrich"]},
    ])
    w = start_worker({"step": step}, concurrency=2, poll_interval=3600)
    wait_for(finished(admin, *ids.values()), "the workflow to end")
    assert [status(admin, i) for i in ids.values()] == ["succeeded"] * 4
    assert order[0] == "extract" and order[3] == "load"
    assert sorted(order[1:3]) == ["clean", "enrich"]
    load = job(admin, ids["load"])
    assert load["result"]["parents"] == {
        "clean": {"step": "clean", "parents": {"extract": {"step": "extract", "parents": {}}}},
        "enrich": {"step": "enrich", "parents": {"extract": {"step": "extract", "parents": {}}}},
    }
    assert load["worker"] == w.worker.name
    assert w.worker.stats.succeeded == 4


def test_notify_wakes_the_worker(app, admin, queue, start_worker):
    """With a poll interval of an hour, only the NOTIFY of the defer's commit
    can make the worker fetch the job within the test's wait."""
    w = start_worker({"ping": lambda ctx: "pong"}, poll_interval=3600)
    fetches = w.worker.stats.fetches
    job_id = procq.defer(app, "ping", queue=queue)
    wait_for(finished(admin, job_id), "the job deferred after the worker went to sleep")
    assert job(admin, job_id)["result"] == "pong"
    assert w.worker.stats.fetches == fetches + 1


def test_polling_picks_up_a_scheduled_job(app, admin, queue, start_worker):
    """A scheduled job becomes ready by the clock, without a notification:
    the worker's poll takes it."""
    start_worker({"later": lambda ctx: "done"}, poll_interval=0.2)
    at = admin.execute("SELECT clock_timestamp() + interval '1 second'").fetchone()[0]
    job_id = procq.defer(app, "later", queue=queue, scheduled_at=at)
    wait_for(finished(admin, job_id), "the scheduled job to be run by a poll")
    row = job(admin, job_id)
    assert row["status"] == "succeeded"
    assert row["started_at"] >= at


def test_busy_worker_does_not_spin(app, admin, queue, start_worker, gate):
    """While its only thread is busy, a worker with a short poll interval
    sleeps until the job ends (it cannot fetch anyway)."""
    job_id = procq.defer(app, "busy", queue=queue)
    w = start_worker({"busy": lambda ctx: gate.wait(WAIT) and "ok"},
                     poll_interval=0.05, heartbeat_interval=3600)
    wait_for(lambda: status(admin, job_id) == "doing", "the job to start")
    before = w.worker.stats.wakeups
    t0 = admin.execute("SELECT clock_timestamp()").fetchone()[0]
    wait_for(lambda: admin.execute("SELECT clock_timestamp() > %s + interval '1 second'",
                                   (t0,)).fetchone()[0], "a second to pass", interval=0.2)
    assert w.worker.stats.wakeups - before <= 3, "the worker woke up while all its threads ran"
    gate.set()
    wait_for(finished(admin, job_id), "the job to end")


def test_without_listen_polling_alone_runs_jobs(app, admin, queue, start_worker):
    start_worker({"ping": lambda ctx: 1}, poll_interval=0.2, listen=False)
    job_id = procq.defer(app, "ping", queue=queue)
    wait_for(finished(admin, job_id), "the job to be run by a poll")


def test_batch_fetch(app, admin, queue, start_worker, gate):
    """Six ready jobs, a batch of 6 and 2 threads: one fetch takes all six,
    never more than two run at once."""
    ids = procq.defer_jobs(app, "part", [{"n": n} for n in range(6)], queue=queue)
    running = []
    peak = []
    lock = threading.Lock()

    def part(ctx):
        with lock:
            running.append(ctx.job.id)
            peak.append(len(running))
        gate.wait(WAIT)
        with lock:
            running.remove(ctx.job.id)
        return ctx.args["n"]

    w = start_worker({"part": part}, concurrency=2, batch_size=6, poll_interval=3600)
    assert w.worker.stats.fetches == 1 and w.worker.stats.fetched == 6
    wait_for(lambda: len(running) == 2, "two jobs running")
    rows = [job(admin, i) for i in ids]
    assert {r["status"] for r in rows} == {"doing"}
    gate.set()
    wait_for(finished(admin, *ids), "the batch to end")
    assert [job(admin, i)["result"] for i in ids] == list(range(6))
    assert max(peak) == 2
    assert w.worker.stats.fetches == 1


def test_heartbeat_keeps_a_job_longer_than_its_lease(app, admin, queue, start_worker, gate):
    """The worker's lease is 4 s (heartbeats every third of it); the job
    runs until its first lease has been over for a second, and
    recover_stalled never takes it back."""
    job_id = procq.defer(app, "long", queue=queue)
    start_worker({"long": lambda ctx: gate.wait(WAIT) and "done"},
                 options="-c procq.lease_duration=4", poll_interval=3600)
    wait_for(lambda: status(admin, job_id) == "doing", "the job to start")
    row = job(admin, job_id)
    first = row["lease_expires_at"]
    assert abs((first - row["started_at"]).total_seconds() - 4) < 0.5
    leases = {first}

    def outlived_first_lease():
        admin.execute("SELECT procq.recover_stalled()")  # (other tests' jobs too)
        row = job(admin, job_id)
        assert (row["status"], row["attempts"]) == ("doing", 1)
        leases.add(row["lease_expires_at"])
        now = admin.execute("SELECT clock_timestamp()").fetchone()[0]
        return now > first + dt.timedelta(seconds=1)

    wait_for(outlived_first_lease, "the job to outlive its first lease", interval=0.2)
    assert len(leases) >= 3, "heartbeats extended the lease"
    gate.set()
    wait_for(finished(admin, job_id), "the job to end")
    row = job(admin, job_id)
    assert (row["status"], row["attempts"], row["result"]) == ("succeeded", 1, "done")


def test_failing_function_fails_the_job_and_is_retried(app, admin, queue, start_worker):
    calls = []

    def flaky(ctx):
        calls.append(ctx.job.attempt)
        raise ValueError(f"boom in attempt {ctx.job.attempt}")

    job_id = procq.defer(app, "flaky", queue=queue, max_attempts=2)
    child = procq.defer(app, "flaky", queue=queue, depends_on=[job_id])
    w = start_worker({"flaky": flaky}, options="-c procq.retry_delay=0", poll_interval=0.2)
    wait_for(lambda: status(admin, job_id) == "failed", "the job to fail for good")
    row = job(admin, job_id)
    assert row["attempts"] == 2 and calls == [1, 2]
    assert "ValueError: boom in attempt 2" in row["error"]
    assert "Traceback" in row["error"]
    assert status(admin, child) == "cancelled"
    assert w.worker.stats.failed == 2


def test_result_that_is_not_json_fails_the_job(app, admin, queue, start_worker):
    job_id = procq.defer(app, "odd", queue=queue)
    start_worker({"odd": lambda ctx: object()}, poll_interval=3600)
    wait_for(finished(admin, job_id), "the job to end")
    row = job(admin, job_id)
    assert row["status"] == "failed" and "not JSON serializable" in row["error"]


def test_odd_texts_still_finish_the_job(app, admin, queue, start_worker):
    """A result jsonb refuses (a NUL character) fails the job saying so; an
    exception whose text has a NUL fails it with the NUL spelled out."""
    nul_result = procq.defer(app, "nul_result", queue=queue)
    nul_error = procq.defer(app, "nul_error", queue=queue)

    def raise_nul(ctx):
        raise RuntimeError("a\x00b")

    start_worker({"nul_result": lambda ctx: "a\x00b", "nul_error": raise_nul},
                 poll_interval=3600)
    wait_for(finished(admin, nul_result, nul_error), "both jobs to end")
    row = job(admin, nul_result)
    assert row["status"] == "failed" and row["error"].startswith("result refused")
    row = job(admin, nul_error)
    assert row["status"] == "failed" and "RuntimeError: a\\x00b" in row["error"]


def test_stale_worker_does_not_finish_a_job_it_lost(app, admin, queue, start_worker, gate):
    """The worker's lease (1 s) runs out without heartbeats; recover_stalled
    puts the job back and another worker fetches it: the old worker's
    finish gets PQ001 and its result is dropped."""
    started = threading.Event()

    def slow(ctx):
        started.set()
        gate.wait(WAIT)
        return "stale"

    job_id = procq.defer(app, "slow", queue=queue, max_attempts=2)
    admin.execute("SET procq.retry_delay = 0")
    w = start_worker({"slow": slow}, options="-c procq.lease_duration=1",
                     heartbeat_interval=3600, poll_interval=3600)
    wait_for(started.is_set, "the job to start")

    def put_back():
        admin.execute("SELECT procq.recover_stalled()")
        return status(admin, job_id) == "todo"

    wait_for(put_back, "the lease to run out and recover_stalled to put the job back",
             interval=0.2)
    with admin.transaction():
        thief = admin.execute("SELECT id, attempts FROM procq.fetch_job(queues => %s,"
                              " worker => 'thief')", ([queue],)).fetchone()
    assert thief == (job_id, 2)
    gate.set()
    wait_for(lambda: w.worker.stats.dropped == 1, "the old worker to drop its result")
    row = job(admin, job_id)
    assert (row["status"], row["attempts"], row["worker"], row["result"]) == \
        ("doing", 2, "thief", None)
    assert w.worker.stats.succeeded == 0
    admin.execute("SELECT procq.finish_job(%s, 'succeeded', '\"mine\"', attempt => 2)", (job_id,))
    assert job(admin, job_id)["result"] == "mine"


def test_heartbeat_tells_the_function_its_lease_is_lost(app, admin, queue, start_worker):
    """Another worker took the job while this one still heartbeats it: the
    heartbeat gets PQ001 and sets ctx.lease_lost."""
    job_id = procq.defer(app, "watch", queue=queue, max_attempts=2)
    started = threading.Event()
    outcome = {}

    def watch(ctx):
        started.set()
        outcome["lost"] = ctx.lease_lost.wait(WAIT)
        return "dropped"

    w = start_worker({"watch": watch}, heartbeat_interval=0.2, poll_interval=3600)
    wait_for(started.is_set, "the job to start")
    # as a DBA would: put the job back by hand, and fetch it elsewhere
    admin.execute("UPDATE procq.jobs SET status = 'todo', worker = NULL WHERE id = %s", (job_id,))
    with admin.transaction():
        assert admin.execute("SELECT attempts FROM procq.fetch_job(queues => %s,"
                             " worker => 'other')", ([queue],)).fetchone() == (2,)
    wait_for(lambda: "lost" in outcome, "the function to hear of the lost lease")
    assert outcome["lost"] is True
    wait_for(lambda: w.worker.stats.dropped == 1, "the result to be dropped")
    assert (status(admin, job_id), job(admin, job_id)["worker"]) == ("doing", "other")


def test_abort_is_seen_by_the_function(app, admin, queue, start_worker):
    started = threading.Event()
    outcome = {}

    def long(ctx):
        started.set()
        outcome["aborted"] = ctx.aborted.wait(WAIT)
        return "ignored"

    job_id = procq.defer(app, "long", queue=queue)
    w = start_worker({"long": long}, heartbeat_interval=0.2, poll_interval=3600)
    wait_for(started.is_set, "the job to start")
    assert procq.cancel_job(app, job_id, abort=True) is True
    wait_for(lambda: "aborted" in outcome, "the function to return")
    assert outcome["aborted"] is True
    wait_for(lambda: w.worker.stats.dropped == 1, "the worker to drop the job")
    row = job(admin, job_id)
    assert (row["status"], row["error"], row["result"]) == \
        ("cancelled", "aborted by procq.cancel_job", None)
    assert w.worker.stats.aborted == 1


def test_serialization_failure_is_retried(app, admin, queue, start_worker, gate):
    """The worker runs at REPEATABLE READ; its finish_job waits for the row
    lock of a concurrent UPDATE of the job, which then commits: 40001. The
    worker runs the finish again, and it succeeds."""
    job_id = procq.defer(app, "rr", queue=queue)
    w = start_worker({"rr": lambda ctx: gate.wait(WAIT) and "ok"},
                     options="-c default_transaction_isolation=repeatable\\ read",
                     poll_interval=3600, heartbeat_interval=3600)
    wait_for(lambda: status(admin, job_id) == "doing", "the job to start")
    pid_sql = ("SELECT pid FROM pg_stat_activity WHERE usename = %s AND application_name = %s"
               " AND wait_event_type = 'Lock'")
    with connect() as watcher, admin.transaction():
        admin.execute("UPDATE procq.jobs SET priority = priority + 1 WHERE id = %s", (job_id,))
        gate.set()
        wait_for(lambda: watcher.execute(pid_sql, (WORKER, f"procq-py {w.worker.name}"))
                 .fetchone(), "the worker's finish_job to wait for the row lock")
    wait_for(finished(admin, job_id), "the job to end")
    assert job(admin, job_id)["status"] == "succeeded"
    assert w.worker.stats.statement_retries >= 1


def test_deadlock_is_retried(app, admin, queue, start_worker, gate):
    """finish_job of a parent locks the parent, then its child to release it.
    The test holds the child's row lock, waits until the worker's finish
    waits for it, then updates the parent: a deadlock, which the worker's
    session detects (the test's deadlock_timeout is longer) and fails with
    40P01. The worker runs the finish again once the test has committed."""
    parent = procq.defer(app, "dl", queue=queue)
    child = procq.defer(app, "child", queue=queue + "_idle", depends_on=[parent])
    w = start_worker({"dl": lambda ctx: gate.wait(WAIT) and "ok"},
                     poll_interval=3600, heartbeat_interval=3600)
    wait_for(lambda: status(admin, parent) == "doing", "the job to start")
    waiting = ("SELECT 1 FROM pg_stat_activity WHERE usename = %s AND application_name = %s"
               " AND wait_event_type = 'Lock'")
    with connect() as watcher, admin.transaction():
        admin.execute("SET LOCAL deadlock_timeout = '1min'")
        admin.execute("UPDATE procq.jobs SET priority = priority + 1 WHERE id = %s", (child,))
        gate.set()
        wait_for(lambda: watcher.execute(waiting, (WORKER, f"procq-py {w.worker.name}"))
                 .fetchone(), "the worker's finish_job to wait for the child's row lock")
        admin.execute("UPDATE procq.jobs SET priority = priority + 1 WHERE id = %s", (parent,))
    wait_for(finished(admin, parent), "the job to end")
    assert job(admin, parent)["status"] == "succeeded"
    assert job(admin, child)["pending_parents"] == 0
    assert w.worker.stats.statement_retries >= 1
    procq.cancel_job(app, child)
