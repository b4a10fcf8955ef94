"""The producer's functions against the real database."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

import procq
from conftest import PRODUCER, connect, job


def test_defer_passes_every_argument_by_name(app, admin, queue):
    parent = procq.defer(app, "extract", queue=queue)
    at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    job_id = procq.defer(
        app, "load",
        args={"file": "orders.csv", "when": dt.datetime(2026, 1, 2, 3, 4, 5)},
        queue=queue, priority=7, scheduled_at=at, depends_on=[parent],
        max_attempts=3, lock="orders", queueing_lock=f"{queue}-load",
        run_after="completion",
    )
    row = job(admin, job_id)
    assert isinstance(job_id, int) and job_id > parent
    assert row["task"] == "load"
    assert row["args"] == {"file": "orders.csv", "when": "2026-01-02T03:04:05"}
    assert row["queue"] == queue
    assert row["priority"] == 7
    assert row["scheduled_at"] == at
    assert row["max_attempts"] == 3
    assert row["lock"] == "orders"
    assert row["queueing_lock"] == f"{queue}-load"
    assert row["run_after"] == "completion"
    assert row["pending_parents"] == 1
    assert row["workflow_id"] == job(admin, parent)["workflow_id"]
    assert row["deferred_by"] == PRODUCER

    other = procq.defer(app, "side", queue=queue, workflow_id=row["workflow_id"])
    assert job(admin, other)["workflow_id"] == row["workflow_id"]


def test_defer_leaves_procq_defaults(app, admin):
    row = job(admin, procq.defer(app, "noop"))
    assert (row["queue"], row["priority"], row["max_attempts"], row["args"],
            row["run_after"], row["lock"], row["scheduled_at"]) == \
        ("default", 0, 1, {}, "success", None, None)
    procq.cancel_job(app, row["id"])


def test_defer_errors_carry_sqlstates(app, queue):
    procq.defer(app, "once", queue=queue, queueing_lock=f"{queue}-q")
    with pytest.raises(psycopg.errors.UniqueViolation):
        procq.defer(app, "once", queue=queue, queueing_lock=f"{queue}-q")
    with pytest.raises(psycopg.Error) as err:
        procq.defer(app, "x", queue=queue, max_attempts=0)
    assert procq.sqlstate(err.value) == "22023"
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        procq.defer(app, "x", queue=queue, depends_on=[-1])


def test_defer_runs_in_the_callers_transaction(admin, queue):
    with connect(PRODUCER, autocommit=False) as conn:
        job_id = procq.defer(conn, "tx", queue=queue)
        assert admin.execute("SELECT count(*) FROM procq.jobs WHERE id = %s",
                             (job_id,)).fetchone()[0] == 0
        conn.rollback()
    assert admin.execute("SELECT count(*) FROM procq.jobs WHERE id = %s",
                         (job_id,)).fetchone()[0] == 0


def test_defer_jobs(app, admin, queue):
    parent = procq.defer(app, "split", queue=queue)
    ids = procq.defer_jobs(app, "part", [{"n": 1}, {"n": 2}, [3]], queue=queue,
                           priority=2, depends_on=[parent], max_attempts=2)
    assert len(ids) == 3 and ids == sorted(ids)
    rows = [job(admin, i) for i in ids]
    assert [r["args"] for r in rows] == [{"n": 1}, {"n": 2}, [3]]
    assert {(r["task"], r["queue"], r["priority"], r["max_attempts"], r["pending_parents"])
            for r in rows} == {("part", queue, 2, 2, 1)}
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        procq.defer_jobs(app, "part", [{"n": 4}, None], queue=queue)


def test_defer_workflow_returns_keys_and_ids(app, admin, queue):
    at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    ids = procq.defer_workflow(app, [
        {"key": "extract", "task": "extract", "queue": queue, "scheduled_at": at},
        {"key": "clean", "task": "transform", "queue": queue, "depends_on": ["extract"]},
        {"key": "load", "task": "load", "queue": queue, "depends_on": ["clean"],
         "max_attempts": 3},
    ])
    assert list(ids) == ["extract", "clean", "load"]
    assert ids["extract"] < ids["clean"] < ids["load"]
    rows = {k: job(admin, v) for k, v in ids.items()}
    assert rows["extract"]["scheduled_at"] == at
    assert rows["load"]["max_attempts"] == 3
    assert {r["step_key"] for r in rows.values()} == {"extract", "clean", "load"}
    assert len({r["workflow_id"] for r in rows.values()}) == 1

    more = procq.defer_workflow(app, [{"key": "late", "task": "t", "queue": queue,
                                       "depends_on": [ids["load"]]}],
                                workflow_id=rows["load"]["workflow_id"])
    assert job(admin, more["late"])["workflow_id"] == rows["load"]["workflow_id"]

    with pytest.raises(psycopg.Error) as err:
        procq.defer_workflow(app, [{"key": "a", "task": "t", "queue": queue, "depends_on": ["b"]},
                                   {"key": "b", "task": "t", "queue": queue, "depends_on": ["a"]}])
    assert procq.sqlstate(err.value) == "22023"


def test_get_wait_cancel_retry(app, admin, queue):
    job_id = procq.defer(app, "lookup", queue=queue, args={"k": 1})
    row = procq.get_job(app, job_id)
    assert (row["id"], row["status"], row["args"]) == (job_id, "todo", {"k": 1})

    row = procq.wait_job(app, job_id, timeout=0.01)
    assert row["status"] == "todo"  # timed out
    row = procq.wait_job(app, job_id, timeout=dt.timedelta(milliseconds=10))
    assert row["status"] == "todo"

    assert procq.cancel_job(app, job_id) is True
    assert procq.cancel_job(app, job_id) is False
    assert procq.wait_job(app, job_id)["status"] == "cancelled"

    procq.retry_job(app, job_id)
    assert procq.get_job(app, job_id)["status"] == "todo"
    procq.cancel_job(app, job_id)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    procq.retry_job(app, job_id, scheduled_at=later)
    assert job(admin, job_id)["scheduled_at"] == later

    with pytest.raises(psycopg.errors.NoDataFound):
        procq.get_job(app, -5)


def test_release_job_returns_the_status_it_left(admin, queue):
    """release_job hands a job back ('todo'), unless another todo job took
    its queueing_lock meanwhile: then procq ends it 'failed', and says so."""
    plain = procq.defer(admin, "rel", queue=queue)
    locked = procq.defer(admin, "rel", queue=queue, queueing_lock=f"{queue}-q")
    fetched = {r[0]: r[1] for r in admin.execute(
        "SELECT id, attempts FROM procq.fetch_jobs(2, queues => ARRAY[%s])", (queue,))}
    assert set(fetched) == {plain, locked}
    procq.defer(admin, "rel", queue=queue, queueing_lock=f"{queue}-q")
    assert procq.release_job(admin, plain, fetched[plain]) == "todo"
    assert procq.release_job(admin, locked, fetched[locked]) == "failed"
    assert procq.get_job(admin, plain)["status"] == "todo"
    failed = procq.get_job(admin, locked)
    assert failed["status"] == "failed"
    assert "not requeued" in failed["error"]
