"""A procq worker running registered Python functions.

One thread (the one that calls Worker.run) talks to the database: it
fetches jobs in batches, heartbeats them, finishes them, and sleeps on its
LISTEN connection in between. The registered functions run in a thread
pool of ``concurrency`` threads; a job waits in the worker (fetched, its
lease kept by heartbeats) until a thread is free.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import queue as _queue
import select
import signal
import socket
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import psycopg
from psycopg.rows import dict_row

from .client import dumps
from .errors import JOB_ABORTED, LEASE_LOST, NO_SUCH_JOB, WRONG_STATE, retry_on_conflict, sqlstate

__all__ = ["Job", "JobContext", "Worker", "WorkerStats"]

log = logging.getLogger("procq.worker")

#: the channel procq notifies when a job becomes ready; the payload is the
#: job's queue.
CHANNEL = "procq"


@dataclass(frozen=True)
class Job:
    """A fetched job: the columns a function needs, and the whole row."""

    id: int
    task: str
    args: Any
    queue: str
    priority: int
    attempt: int
    max_attempts: int
    workflow_id: Optional[int]
    step_key: Optional[str]
    lease_expires_at: Optional[_dt.datetime]
    started_at: Optional[_dt.datetime]
    row: Dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_row(cls, row: Dict[str, Any]) -> "Job":
        """A Job from a row of procq.jobs (a dict)."""
        return cls(
            id=row["id"],
            task=row["task"],
            args=row["args"],
            queue=row["queue"],
            priority=row["priority"],
            attempt=row["attempts"],
            max_attempts=row["max_attempts"],
            workflow_id=row.get("workflow_id"),
            step_key=row.get("step_key"),
            lease_expires_at=row.get("lease_expires_at"),
            started_at=row.get("started_at"),
            row=row,
        )


class JobContext:
    """What a job function gets: the job, and events telling it to stop.

    - ``aborted`` is set when ``procq.cancel_job(abort => true)`` stopped the
      job (the worker sees it at its next heartbeat): stop, undo what you
      can; the job ends cancelled whatever the function returns.
    - ``lease_lost`` is set when the job no longer runs in this attempt (its
      lease ran out and another worker has it): stop; the result is dropped.
    - ``shutting_down`` is set when the worker was asked to stop: it waits
      for this job all the same, but a long job may choose to return early.
    """

    def __init__(self, job: Job, worker: "Worker") -> None:
        self.job = job
        self.aborted = threading.Event()
        self.lease_lost = threading.Event()
        self.shutting_down = worker._stopping
        self._worker = worker

    @property
    def args(self) -> Any:
        """The job's args (a dict, usually)."""
        return self.job.args

    @property
    def should_stop(self) -> bool:
        """True once the job was aborted or its lease lost."""
        return self.aborted.is_set() or self.lease_lost.is_set()

    def parent_results(self, by_key: bool = False) -> Any:
        """procq.parent_results of this job: {parent id (or step key): result}."""
        return self._worker._parent_results(self.job.id, by_key)

    def __repr__(self) -> str:
        return f"<JobContext {self.job.task} #{self.job.id} attempt {self.job.attempt}>"


@dataclass
class WorkerStats:
    """Counters of a worker's life, for logs and tests."""

    fetches: int = 0          #: fetch_jobs statements that returned jobs
    fetched: int = 0          #: jobs fetched
    succeeded: int = 0
    failed: int = 0           #: the function raised (procq may retry the job)
    dropped: int = 0          #: results dropped: lease lost (PQ001), aborted (PQ002), job gone
    aborted: int = 0          #: aborts seen (PQ002)
    released: int = 0         #: jobs handed back unstarted at shutdown
    heartbeats: int = 0
    statement_retries: int = 0  #: statements run again after 40001/40P01
    wakeups: int = 0          #: times the loop woke up (notification, timer, job done)


class _Held:
    """A job the worker holds: fetched, waiting for a thread or running."""

    def __init__(self, ctx: JobContext, next_heartbeat: float) -> None:
        self.ctx = ctx
        self.next_heartbeat = next_heartbeat
        self.running = False


TaskFunction = Callable[[JobContext], Any]


class Worker:
    """Runs the jobs of the registered tasks.

    conninfo (and connect_kwargs) say how to connect: the worker opens two
    autocommit connections of its own, one that LISTENs on channel
    ``procq`` (opened before the first fetch, so that no notification is
    missed; it must be a direct connection, not one through a pooler in
    transaction mode) and one for its statements.

    - queues: the queues to take jobs from (None: all).
    - name: the worker name recorded in jobs.worker (default host:pid).
    - concurrency: threads running jobs at once.
    - batch_size: most jobs one fetch takes (default: concurrency). A fetch
      happens when a thread is free and no fetched job waits.
    - poll_interval: seconds between fetches when no notification came
      (retries and scheduled jobs send none).
    - heartbeat_interval: seconds between heartbeats of a held job (default:
      a third of its lease, at most 5 s); it is also how soon an abort is
      seen.
    - recover_interval: seconds between calls of procq.recover_stalled()
      (None: never; the background workers do it when procq is preloaded).
    - listen: False to poll only.
    - statement_attempts: how often a statement is run on 40001/40P01.
    """

    def __init__(
        self,
        conninfo: str = "",
        *,
        queues: Optional[Sequence[str]] = None,
        name: Optional[str] = None,
        concurrency: int = 1,
        batch_size: Optional[int] = None,
        poll_interval: float = 5.0,
        heartbeat_interval: Optional[float] = None,
        recover_interval: Optional[float] = 60.0,
        listen: bool = True,
        statement_attempts: int = 5,
        connect_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.conninfo = conninfo
        self.connect_kwargs = dict(connect_kwargs or {})
        self.queues = list(queues) if queues is not None else None
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.concurrency = concurrency
        self.batch_size = batch_size or concurrency
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.recover_interval = recover_interval
        self.listen = listen
        self.statement_attempts = statement_attempts
        self.stats = WorkerStats()
        self.tasks: Dict[str, TaskFunction] = {}
        self._stopping = threading.Event()
        self._done: "_queue.Queue[tuple]" = _queue.Queue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._conn: Optional[psycopg.Connection] = None
        self._held: Dict[int, _Held] = {}
        self._waiting: List[int] = []  # fetched, not started, in fetch order
        #: set once the worker has LISTENed and made its first fetch
        self.ready = threading.Event()

    def __del__(self) -> None:
        for fd in (getattr(self, "_wake_r", None), getattr(self, "_wake_w", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    # registering -------------------------------------------------------

    def register(self, task: str, fn: TaskFunction) -> None:
        """Run fn(ctx) for the jobs of task; its return value (JSON) becomes
        the job's result, an exception fails the job."""
        if task in self.tasks:
            raise ValueError(f"task {task!r} is already registered")
        self.tasks[task] = fn

    def task(self, name: str) -> Callable[[TaskFunction], TaskFunction]:
        """Decorator: ``@worker.task("send_email")`` registers the function."""

        def decorate(fn: TaskFunction) -> TaskFunction:
            self.register(name, fn)
            return fn

        return decorate

    # stopping ----------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop (thread-safe, also from a signal handler):
        no more fetches; running jobs finish, waiting ones are released."""
        self._stopping.set()
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the pipe is full: the loop is awake anyway

    # the loop ------------------------------------------------------------

    def run(self, *, install_signal_handlers: bool = True) -> None:
        """Work until stop() (or SIGTERM/SIGINT, when run in the main thread
        with install_signal_handlers). Returns once the running jobs have
        finished and the waiting ones were handed back. A Worker runs once:
        after a stop, make a new one."""
        if not self.tasks:
            raise ValueError("no task registered")
        previous = {}
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: self.stop())
        listener = None
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="procq-job")
        try:
            kwargs = dict(self.connect_kwargs)
            kwargs.setdefault("application_name", f"procq-py {self.name}")
            if self.listen:
                listener = psycopg.connect(self.conninfo, autocommit=True, **kwargs)
                listener.execute(f"LISTEN {CHANNEL}")
            self._conn = psycopg.connect(self.conninfo, autocommit=True, **kwargs)
            self._loop(listener, pool)
        finally:
            pool.shutdown(wait=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if listener is not None:
                listener.close()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _loop(self, listener: Optional[psycopg.Connection], pool: ThreadPoolExecutor) -> None:
        want_fetch = True
        next_poll = time.monotonic()
        next_recover = (
            time.monotonic() + self.recover_interval if self.recover_interval else None
        )
        while True:
            self._collect_done()
            now = time.monotonic()
            if self._stopping.is_set():
                self._release_waiting()
                if not self._held:
                    return
            else:
                if now >= next_poll:
                    want_fetch = True
                if want_fetch and not self._waiting and self._running() < self.concurrency:
                    got = self._fetch()
                    next_poll = time.monotonic() + self.poll_interval
                    # a full batch: there may be more, fetch again when free
                    want_fetch = got == self.batch_size
                    self.ready.set()
                self._start_waiting(pool)
                if next_recover is not None and now >= next_recover:
                    self._recover()
                    next_recover = time.monotonic() + self.recover_interval
            self._heartbeat_due()

            # sleep until something happens
            deadlines = [h.next_heartbeat for h in self._held.values()]
            if not self._stopping.is_set():
                if not self._waiting and self._running() < self.concurrency:
                    deadlines.append(next_poll)  # else a finishing job wakes us
                if next_recover is not None:
                    deadlines.append(next_recover)
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            fds = [self._wake_r] + ([listener.fileno()] if listener is not None else [])
            readable, _, _ = select.select(fds, [], [], timeout)
            self.stats.wakeups += 1
            if self._wake_r in readable:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            if listener is not None and listener.fileno() in readable:
                if self._drain_notifications(listener):
                    want_fetch = True

    def _drain_notifications(self, listener: psycopg.Connection) -> bool:
        """Read the pending notifications; True when one names a queue of ours."""
        pgconn = listener.pgconn
        pgconn.consume_input()
        relevant = False
        while True:
            n = pgconn.notifies()
            if n is None:
                break
            payload = n.extra.decode("utf-8", "replace")
            if self.queues is None or payload in self.queues:
                relevant = True
        return relevant

    def _running(self) -> int:
        return sum(1 for h in self._held.values() if h.running)

    # statements ----------------------------------------------------------

    def _execute(self, query: str, params: Sequence[Any] = (), *, rows: bool = False) -> Any:
        """Run one statement (its own transaction: the connection is in
        autocommit), again after a serialization failure or a deadlock."""
        assert self._conn is not None
        conn = self._conn

        def once() -> Any:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(query, params)
                return cur.fetchall() if rows else None

        def counted() -> Any:
            counted.calls += 1  # type: ignore[attr-defined]
            return once()

        counted.calls = 0  # type: ignore[attr-defined]
        try:
            return retry_on_conflict(counted, attempts=self.statement_attempts)
        finally:
            self.stats.statement_retries += max(0, counted.calls - 1)  # type: ignore[attr-defined]

    def _fetch(self) -> int:
        rows = self._execute(
            "SELECT * FROM procq.fetch_jobs(%s, queues => %s::text[], worker => %s,"
            " tasks => %s::text[])",
            (self.batch_size, self.queues, self.name, sorted(self.tasks)),
            rows=True,
        )
        now = time.monotonic()
        for row in rows:
            job = Job.from_row(row)
            ctx = JobContext(job, self)
            self._held[job.id] = _Held(ctx, now + self._heartbeat_period(job))
            self._waiting.append(job.id)
        if rows:
            self.stats.fetches += 1
            self.stats.fetched += len(rows)
            log.debug("fetched %d jobs: %s", len(rows), [r["id"] for r in rows])
        return len(rows)

    def _heartbeat_period(self, job: Job, expires: Optional[_dt.datetime] = None) -> float:
        if self.heartbeat_interval is not None:
            return self.heartbeat_interval
        expires = expires or job.lease_expires_at
        if expires is None:
            return 5.0
        left = (expires - _dt.datetime.now(_dt.timezone.utc)).total_seconds()
        return max(0.05, min(5.0, left / 3))

    def _start_waiting(self, pool: ThreadPoolExecutor) -> None:
        while self._waiting and self._running() < self.concurrency:
            job_id = self._waiting.pop(0)
            held = self._held[job_id]
            held.running = True
            pool.submit(self._run_job, held.ctx)

    def _run_job(self, ctx: JobContext) -> None:
        """In a pool thread: run the function, hand the outcome to the loop."""
        fn = self.tasks[ctx.job.task]
        try:
            value = fn(ctx)
            outcome = ("succeeded", dumps(value) if value is not None else None)
        except BaseException as exc:  # noqa: BLE001 - a job's failure is data
            # PostgreSQL text cannot hold NUL: an exception's text might
            text = "".join(traceback.format_exception(exc)).rstrip().replace("\x00", "\\x00")
            outcome = ("failed", text)
            if not isinstance(exc, Exception):
                log.warning("job %d raised %s", ctx.job.id, type(exc).__name__)
        self._done.put((ctx, outcome))
        self._wake()

    def _collect_done(self) -> None:
        while True:
            try:
                ctx, (status, value) = self._done.get_nowait()
            except _queue.Empty:
                return
            del self._held[ctx.job.id]
            self._finish(ctx, status, value)

    def _finish(self, ctx: JobContext, status: str, value: Optional[str]) -> None:
        job = ctx.job
        if ctx.should_stop:
            self.stats.dropped += 1
            log.info("job %d: not finished (%s)", job.id,
                     "aborted" if ctx.aborted.is_set() else "lease lost")
            return
        if status == "failed":
            log.warning("job %d (%s) attempt %d failed: %s", job.id, job.task, job.attempt,
                        value.splitlines()[-1] if value else "")
        try:
            self._execute(
                "SELECT procq.finish_job(%s, %s::procq.job_status, result => %s::jsonb,"
                " error => %s, attempt => %s)",
                (job.id, status, value if status == "succeeded" else None,
                 value if status == "failed" else None, job.attempt),
            )
        except psycopg.Error as exc:
            if self._fenced(ctx, exc, "finish"):
                return
            if status == "succeeded" and exc.sqlstate and exc.sqlstate[:2] in ("22", "23", "54"):
                # the result was refused (say, a JSON value jsonb rejects): fail the job
                log.warning("job %d: result refused (%s), failing it", job.id, exc)
                self._finish(ctx, "failed", f"result refused: {exc}")
                return
            raise
        if status == "succeeded":
            self.stats.succeeded += 1
        else:
            self.stats.failed += 1

    def _fenced(self, ctx: JobContext, exc: psycopg.Error, what: str) -> bool:
        """For PQ001/PQ002/P0002/55000 on one of our jobs: tell its function,
        count it, return True (the caller drops the job); False otherwise."""
        state = sqlstate(exc)
        job = ctx.job
        if state == JOB_ABORTED:
            ctx.aborted.set()
            self.stats.aborted += 1
        elif state in (LEASE_LOST, NO_SUCH_JOB, WRONG_STATE):
            ctx.lease_lost.set()
        else:
            return False
        self.stats.dropped += what == "finish"
        log.info("job %d attempt %d: %s refused (%s): %s", job.id, job.attempt, what,
                 state, exc.diag.message_primary or exc)
        return True

    def _heartbeat_due(self) -> None:
        now = time.monotonic()
        for job_id, held in list(self._held.items()):
            if held.next_heartbeat > now or held.ctx.should_stop:
                if held.ctx.should_stop:
                    held.next_heartbeat = now + 3600.0
                continue
            job = held.ctx.job
            try:
                rows = self._execute(
                    "SELECT procq.heartbeat(%s, attempt => %s) AS expires",
                    (job.id, job.attempt), rows=True,
                )
            except psycopg.Error as exc:
                if not self._fenced(held.ctx, exc, "heartbeat"):
                    raise
                if not held.running:  # never started: forget it
                    del self._held[job_id]
                    self._waiting.remove(job_id)
                continue
            self.stats.heartbeats += 1
            held.next_heartbeat = time.monotonic() + self._heartbeat_period(job, rows[0]["expires"])

    def _release_waiting(self) -> None:
        """Hand back the fetched jobs that have not started (at shutdown)."""
        while self._waiting:
            job_id = self._waiting.pop(0)
            held = self._held.pop(job_id)
            try:
                rows = self._execute("SELECT procq.release_job(%s, attempt => %s)::text AS status",
                                     (job_id, held.ctx.job.attempt), rows=True)
            except psycopg.Error as exc:
                if not self._fenced(held.ctx, exc, "release"):
                    raise
                continue
            if rows[0]["status"] != "todo":
                # another todo job took its queueing_lock while we held it:
                # procq ended it failed (its error says why), not released
                self.stats.failed += 1
                log.warning("job %d could not be released: it is %s now (see its error)",
                            job_id, rows[0]["status"])
                continue
            self.stats.released += 1
            log.info("job %d released", job_id)

    def _recover(self) -> None:
        rows = self._execute("SELECT procq.recover_stalled() AS n", rows=True)
        if rows and rows[0]["n"]:
            log.info("recover_stalled put back %d jobs", rows[0]["n"])

    def _parent_results(self, job_id: int, by_key: bool) -> Any:
        # psycopg connections are thread-safe: a job thread may run this
        # short statement on the worker's connection between the loop's.
        rows = self._execute("SELECT procq.parent_results(%s, by_key => %s) AS r",
                             (job_id, by_key), rows=True)
        return rows[0]["r"]
