"""retry_on_conflict, and the Worker's statements retried through it,
against fakes raising psycopg's errors with SQLSTATEs 40001 and 40P01."""

from __future__ import annotations

import psycopg
import pytest

import procq


def flaky(*errors, value="ok"):
    """A function raising each of errors in turn, then returning value."""
    calls = []

    def fn():
        calls.append(len(calls))
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return value

    return fn, calls


@pytest.mark.parametrize("error", [psycopg.errors.DeadlockDetected,
                                   psycopg.errors.SerializationFailure])
def test_retried_with_a_growing_pause(error):
    assert error().sqlstate in procq.RETRYABLE
    fn, calls = flaky(error("one"), error("two"), error("three"))
    pauses = []
    assert procq.retry_on_conflict(fn, base_delay=0.1, max_delay=0.3,
                                   sleep=pauses.append) == "ok"
    assert len(calls) == 4 and len(pauses) == 3
    assert 0.1 <= pauses[0] <= 0.15
    assert 0.2 <= pauses[1] <= 0.3
    assert 0.3 <= pauses[2] <= 0.45  # bounded by max_delay (plus jitter)


def test_gives_up_after_attempts():
    fn, calls = flaky(*[psycopg.errors.DeadlockDetected(str(i)) for i in range(3)])
    with pytest.raises(psycopg.errors.DeadlockDetected, match="2"):
        procq.retry_on_conflict(fn, attempts=3, sleep=lambda s: None)
    assert len(calls) == 3


def test_other_errors_are_not_retried():
    fn, calls = flaky(psycopg.errors.UniqueViolation("dup"))
    with pytest.raises(psycopg.errors.UniqueViolation):
        procq.retry_on_conflict(fn, sleep=lambda s: None)
    fn, calls2 = flaky(ValueError("not a database error"))
    with pytest.raises(ValueError):
        procq.retry_on_conflict(fn, sleep=lambda s: None)
    assert len(calls) == len(calls2) == 1
    assert procq.sqlstate(ValueError()) is None
    assert not procq.is_retryable(psycopg.errors.UniqueViolation())


class FakeCursor:
    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, query, params):
        self.conn.statements.append(query)
        if self.conn.errors:
            raise self.conn.errors.pop(0)

    def fetchall(self):
        return [{"n": 0}]


class FakeConnection:
    def __init__(self, *errors):
        self.errors = list(errors)
        self.statements = []

    def cursor(self, row_factory=None):
        return FakeCursor(self)


def test_worker_statements_are_retried(monkeypatch):
    monkeypatch.setattr("procq.errors.time.sleep", lambda s: None)
    worker = procq.Worker(statement_attempts=3)
    worker._conn = FakeConnection(psycopg.errors.DeadlockDetected("d"),
                                  psycopg.errors.SerializationFailure("s"))
    worker._recover()
    assert len(worker._conn.statements) == 3
    assert worker.stats.statement_retries == 2

    worker._conn = FakeConnection(*[psycopg.errors.DeadlockDetected("d")] * 3)
    with pytest.raises(psycopg.errors.DeadlockDetected):
        worker._recover()
    assert len(worker._conn.statements) == 3
