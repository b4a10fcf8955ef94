"""procq's SQLSTATEs, and retrying a statement on serialization failures
and deadlocks."""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, Optional, TypeVar

import psycopg

__all__ = [
    "LEASE_LOST",
    "JOB_ABORTED",
    "WRONG_STATE",
    "NO_SUCH_JOB",
    "SERIALIZATION_FAILURE",
    "DEADLOCK_DETECTED",
    "RETRYABLE",
    "sqlstate",
    "is_retryable",
    "retry_on_conflict",
]

#: ``finish_job``/``heartbeat``/``release_job`` with an attempt the job no
#: longer runs in: another worker owns it now, or it is over.
LEASE_LOST = "PQ001"
#: the job was stopped by ``procq.cancel_job(abort => true)`` while it ran.
JOB_ABORTED = "PQ002"
#: the job is not in a state the call needs (e.g. finishing a job that is
#: not ``doing``, without an attempt).
WRONG_STATE = "55000"
#: no job with that id (never was, or purged).
NO_SUCH_JOB = "P0002"
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
#: the SQLSTATEs after which the same transaction may simply be run again.
RETRYABLE = frozenset({SERIALIZATION_FAILURE, DEADLOCK_DETECTED})

log = logging.getLogger("procq")

T = TypeVar("T")


def sqlstate(exc: BaseException) -> Optional[str]:
    """The SQLSTATE of a psycopg error, or None for anything else."""
    if isinstance(exc, psycopg.Error):
        return exc.sqlstate
    return None


def is_retryable(exc: BaseException) -> bool:
    """Whether exc is a serialization failure (40001) or a deadlock (40P01)."""
    return sqlstate(exc) in RETRYABLE


def retry_on_conflict(
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call fn(); when it raises a serialization failure (40001) or a
    deadlock (40P01), call it again, up to ``attempts`` calls in all, after a
    pause that doubles from ``base_delay`` up to ``max_delay`` (with up to
    50 % random jitter, so that the two sides of a deadlock do not meet
    again). Any other error, and the last retryable one, is raised.

    fn must be a whole transaction: on an autocommit connection one
    statement is; inside an explicit transaction, roll it back first (the
    failed transaction is aborted) and let fn run it from the start.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except psycopg.Error as exc:
            if not is_retryable(exc) or attempt == attempts:
                raise
            pause = min(delay, max_delay) * (1 + random.random() / 2)
            log.info(
                "procq: %s (%s), trying again in %.3f s (call %d of %d)",
                type(exc).__name__, exc.sqlstate, pause, attempt + 1, attempts,
            )
            sleep(pause)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover
