"""The producer's side of procq: defer jobs and workflows, look at them,
cancel and retry them.

Every function takes a psycopg 3 connection and runs one statement on it,
in the connection's current transaction: with a connection that is not in
autocommit mode, nothing exists for others until you commit, and a job
deferred together with your own writes commits (or rolls back) with them.
An argument left at None is not passed, so that procq's own default
applies (README, SQL API).
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

__all__ = [
    "dumps",
    "defer",
    "defer_jobs",
    "defer_workflow",
    "get_job",
    "wait_job",
    "cancel_job",
    "retry_job",
    "release_job",
]

Json = Any
Interval = Union[float, int, _dt.timedelta]


def _default(obj: Any) -> Any:
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """JSON text of obj, as procq's client sends it (datetimes as ISO 8601)."""
    return json.dumps(obj, default=_default)


def _interval(value: Interval) -> _dt.timedelta:
    if isinstance(value, _dt.timedelta):
        return value
    return _dt.timedelta(seconds=float(value))


def _call(
    conn: psycopg.Connection,
    function: str,
    positional: Sequence[tuple],
    named: Sequence[tuple],
    *,
    returns: str = "scalar",
) -> Any:
    """Run procq.<function>(...) with the given (value, sql type) positional
    arguments and (name, value, sql type) named ones; named ones whose value
    is None are left out. returns: 'scalar', 'column' (a list), 'row' (a
    dict or None), 'rows' (list of dicts), 'none'."""
    parts: List[sql.Composable] = []
    params: List[Any] = []
    for value, typ in positional:
        parts.append(sql.SQL("%s::" + typ))
        params.append(value)
    for name, value, typ in named:
        if value is None:
            continue
        parts.append(sql.SQL("{} => %s::" + typ).format(sql.Identifier(name)))
        params.append(value)
    call = sql.SQL("procq.{}({})").format(sql.Identifier(function), sql.SQL(", ").join(parts))
    if returns in ("row", "rows"):
        query = sql.SQL("SELECT * FROM {}").format(call)
    else:
        query = sql.SQL("SELECT {}").format(call)
    with conn.cursor(row_factory=dict_row if returns in ("row", "rows") else None) as cur:
        cur.execute(query, params)
        if returns == "scalar":
            row = cur.fetchone()
            return None if row is None else row[0]
        if returns == "column":
            return [r[0] for r in cur.fetchall()]
        if returns == "row":
            return cur.fetchone()
        if returns == "rows":
            return cur.fetchall()
        return None


def _json(value: Optional[Json]) -> Optional[str]:
    return None if value is None else dumps(value)


def defer(
    conn: psycopg.Connection,
    task: str,
    *,
    args: Optional[Json] = None,
    queue: Optional[str] = None,
    priority: Optional[int] = None,
    scheduled_at: Optional[_dt.datetime] = None,
    depends_on: Optional[Iterable[int]] = None,
    max_attempts: Optional[int] = None,
    lock: Optional[str] = None,
    queueing_lock: Optional[str] = None,
    run_after: Optional[str] = None,
    workflow_id: Optional[int] = None,
) -> int:
    """Defer one job (``procq.defer``) and return its id.

    args is any JSON value (a dict, usually); depends_on the ids of the jobs
    it waits for; run_after 'success' (default), 'completion' or 'failure';
    the others as in procq.defer. Raises psycopg errors with procq's
    SQLSTATEs: 23505 when a todo job already holds queueing_lock, 23503
    for a depends_on job that does not exist, 22023 for a bad argument.
    """
    return _call(
        conn,
        "defer",
        [],
        [
            ("task", task, "text"),
            ("args", _json(args), "jsonb"),
            ("queue", queue, "text"),
            ("priority", priority, "integer"),
            ("scheduled_at", scheduled_at, "timestamptz"),
            ("depends_on", None if depends_on is None else list(depends_on), "bigint[]"),
            ("max_attempts", max_attempts, "integer"),
            ("lock", lock, "text"),
            ("queueing_lock", queueing_lock, "text"),
            ("run_after", run_after, "text"),
            ("workflow_id", workflow_id, "bigint"),
        ],
    )


def defer_jobs(
    conn: psycopg.Connection,
    task: str,
    args: Sequence[Json],
    *,
    queue: Optional[str] = None,
    priority: Optional[int] = None,
    scheduled_at: Optional[_dt.datetime] = None,
    depends_on: Optional[Iterable[int]] = None,
    max_attempts: Optional[int] = None,
    lock: Optional[str] = None,
    run_after: Optional[str] = None,
    workflow_id: Optional[int] = None,
) -> List[int]:
    """Defer one job of task per element of args, all alike, in one
    statement (``procq.defer_jobs``); return their ids in the order of
    args. A None element is refused (22004) and then nothing is deferred.
    """
    elements = [None if a is None else dumps(a) for a in args]
    return _call(
        conn,
        "defer_jobs",
        [],
        [
            ("task", task, "text"),
            ("args", elements, "jsonb[]"),
            ("queue", queue, "text"),
            ("priority", priority, "integer"),
            ("scheduled_at", scheduled_at, "timestamptz"),
            ("depends_on", None if depends_on is None else list(depends_on), "bigint[]"),
            ("max_attempts", max_attempts, "integer"),
            ("lock", lock, "text"),
            ("run_after", run_after, "text"),
            ("workflow_id", workflow_id, "bigint"),
        ],
        returns="column",
    )


def defer_workflow(
    conn: psycopg.Connection,
    steps: Sequence[Mapping[str, Any]],
    *,
    workflow_id: Optional[int] = None,
) -> Dict[str, int]:
    """Defer a DAG in one statement (``procq.defer_workflow``) and return
    {step key: job id}, in the order of the steps.

    Each step is a dict with "key" and "task" and any of "args", "queue",
    "priority", "scheduled_at" (a datetime or ISO 8601 text), "depends_on"
    (step keys and job ids), "max_attempts", "lock", "queueing_lock",
    "run_after". All or nothing: a bad step (22023) defers nothing.
    """
    rows = _call(
        conn,
        "defer_workflow",
        [],
        [("steps", dumps(list(steps)), "jsonb"), ("workflow_id", workflow_id, "bigint")],
        returns="rows",
    )
    return {r["key"]: r["job_id"] for r in rows}


def get_job(conn: psycopg.Connection, job_id: int) -> Dict[str, Any]:
    """The job's row as a dict (``procq.get_job``): P0002 when there is
    none, 42501 when the caller may not act on it."""
    return _call(conn, "get_job", [(job_id, "bigint")], [], returns="row")


def wait_job(
    conn: psycopg.Connection, job_id: int, timeout: Optional[Interval] = None
) -> Dict[str, Any]:
    """Wait until the job has ended or timeout (seconds or a timedelta) has
    passed (``procq.wait_job``), and return its row: its "status" says
    which. Use an autocommit connection (or commit first): the job must have
    been committed for anybody to run it."""
    return _call(
        conn,
        "wait_job",
        [(job_id, "bigint")],
        [("timeout", None if timeout is None else _interval(timeout), "interval")],
        returns="row",
    )


def cancel_job(conn: psycopg.Connection, job_id: int, *, abort: bool = False) -> bool:
    """Cancel a todo job, or with abort a running one too
    (``procq.cancel_job``); False when there was nothing to cancel."""
    return _call(conn, "cancel_job", [(job_id, "bigint")], [("abort", abort, "boolean")])


def retry_job(
    conn: psycopg.Connection, job_id: int, *, scheduled_at: Optional[_dt.datetime] = None
) -> None:
    """Put a failed or cancelled job (and the descendants it cancelled) back
    to todo with fresh attempts (``procq.retry_job``)."""
    _call(
        conn,
        "retry_job",
        [(job_id, "bigint")],
        [("scheduled_at", scheduled_at, "timestamptz")],
        returns="none",
    )


def release_job(conn: psycopg.Connection, job_id: int, attempt: Optional[int] = None) -> str:
    """Hand a doing job back to todo without using up an attempt
    (``procq.release_job``), e.g. when a worker stops before running it.
    Returns the status the job was left in: ``'todo'``, or ``'failed'``
    when another todo job took its queueing_lock meanwhile (its error says
    so). With attempt: PQ001 when the job no longer runs in it, PQ002 when
    it was aborted."""
    return _call(
        conn,
        "release_job",
        [(job_id, "bigint")],
        [("attempt", attempt, "integer")],
    )
