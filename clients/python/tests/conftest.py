"""Fixtures: the database named by the libpq variables (PGHOST, PGPORT,
PGDATABASE; PGUSER a superuser), a producer role and a worker role with
the README's grant sets, a queue of its own per test, and workers run in
threads."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import Any, Callable, Iterator, List, Optional

import psycopg
import pytest
from psycopg.rows import dict_row

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import procq  # noqa: E402

PRODUCER = "pyq_app"
WORKER = "pyq_worker"

#: the longest any test waits for something to happen, in seconds: long,
#: so that a loaded machine never fails a test; a failure says what it
#: waited for
WAIT = float(os.environ.get("PQ_PY_WAIT", "60"))


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = WAIT,
             interval: float = 0.05) -> Any:
    """Call predicate until it returns something true (and return that);
    fail the test naming what it waited for after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(interval)


def connect(user: Optional[str] = None, **kwargs: Any) -> psycopg.Connection:
    if user is not None:
        kwargs["user"] = user
    kwargs.setdefault("autocommit", True)
    return psycopg.connect("", **kwargs)


@pytest.fixture(scope="session", autouse=True)
def roles() -> None:
    """pyq_app (producer) and pyq_worker (worker of pyq_app's jobs), with
    the grant sets of README, Privileges (and release_job for workers)."""
    with connect() as conn:
        for role in (PRODUCER, WORKER):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"""
            GRANT USAGE ON SCHEMA procq TO {PRODUCER};
            GRANT EXECUTE ON FUNCTION procq.defer, procq.defer_jobs, procq.defer_workflow,
                procq.add_dependencies, procq.get_job, procq.get_jobs, procq.wait_job,
                procq.parent_results, procq.parents, procq.cancel_job, procq.retry_job,
                procq.cancel_workflow, procq.workflow_dot TO {PRODUCER};
            GRANT USAGE ON SCHEMA procq TO {WORKER};
            GRANT EXECUTE ON FUNCTION procq.fetch_job, procq.fetch_jobs, procq.finish_job,
                procq.finish_jobs, procq.heartbeat, procq.parent_results, procq.parents,
                procq.get_job, procq.recover_stalled TO {WORKER};
            GRANT {PRODUCER} TO {WORKER};
        """)
        if conn.execute("SELECT to_regprocedure('procq.release_job(bigint, integer)')").fetchone()[0]:
            conn.execute(f"GRANT EXECUTE ON FUNCTION procq.release_job TO {WORKER}")


@pytest.fixture
def admin() -> Iterator[psycopg.Connection]:
    """A superuser connection (autocommit)."""
    with connect() as conn:
        yield conn


@pytest.fixture
def app() -> Iterator[psycopg.Connection]:
    """The producer's connection (autocommit)."""
    with connect(PRODUCER) as conn:
        yield conn


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    """A queue of the test's own, so that tests never see each other's jobs."""
    name = re.sub(r"\W+", "_", request.node.name)[:60]
    return f"py_{name}_{os.getpid()}"


def job(admin: psycopg.Connection, job_id: int) -> dict:
    """The job's row, read as the superuser."""
    with admin.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM procq.jobs WHERE id = %s", (job_id,))
        row = cur.fetchone()
    assert row is not None, f"job {job_id} does not exist"
    return row


def status(admin: psycopg.Connection, job_id: int) -> str:
    return job(admin, job_id)["status"]


class RunningWorker:
    """A Worker run in a thread; stop() stops it and raises what run() raised."""

    def __init__(self, worker: procq.Worker) -> None:
        self.worker = worker
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, name="procq-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run(install_signal_handlers=False)
        except BaseException as exc:  # reported by stop()
            self.error = exc
            self.worker.ready.set()

    def start(self) -> "RunningWorker":
        self.thread.start()
        wait_for(self.worker.ready.is_set, "the worker's first fetch")
        if self.error:
            raise self.error
        return self

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), f"the worker did not stop within {WAIT:.0f} s"
        if self.error:
            raise self.error


@pytest.fixture
def start_worker(queue: str) -> Iterator[Callable[..., RunningWorker]]:
    """start_worker(tasks={name: fn}, **Worker options): a worker of the
    worker role on the test's queue, started; stopped at the end of the test."""
    started: List[RunningWorker] = []

    def start(tasks: dict, *, options: str = "", **kwargs: Any) -> RunningWorker:
        kwargs.setdefault("queues", [queue])
        kwargs.setdefault("recover_interval", None)
        connect_kwargs = {"user": WORKER}
        if options:
            connect_kwargs["options"] = options
        worker = procq.Worker("", connect_kwargs=connect_kwargs, **kwargs)
        for name, fn in tasks.items():
            worker.register(name, fn)
        running = RunningWorker(worker)
        started.append(running)
        return running.start()

    yield start
    errors = []
    for running in started:
        try:
            running.stop()
        except BaseException as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def gate(start_worker) -> Iterator[threading.Event]:
    """An event a job function waits for; set at the end of the test (before
    its workers are stopped), so that a failing test does not leave a
    function waiting."""
    event = threading.Event()
    yield event
    event.set()
