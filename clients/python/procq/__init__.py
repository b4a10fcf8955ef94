"""procq: a Python client for the procq PostgreSQL job queue (psycopg 3).

Producers call defer, defer_jobs and defer_workflow on a psycopg
connection; workers register functions on a Worker and run it.
"""

from .client import (
    cancel_job,
    defer,
    defer_jobs,
    defer_workflow,
    dumps,
    get_job,
    release_job,
    retry_job,
    wait_job,
)
from .errors import (
    DEADLOCK_DETECTED,
    JOB_ABORTED,
    LEASE_LOST,
    NO_SUCH_JOB,
    RETRYABLE,
    SERIALIZATION_FAILURE,
    WRONG_STATE,
    is_retryable,
    retry_on_conflict,
    sqlstate,
)
from .worker import Job, JobContext, Worker, WorkerStats

__version__ = "0.1.0"

__all__ = [
    "defer", "defer_jobs", "defer_workflow", "get_job", "wait_job", "cancel_job",
    "retry_job", "release_job", "dumps",
    "Worker", "Job", "JobContext", "WorkerStats",
    "LEASE_LOST", "JOB_ABORTED", "WRONG_STATE", "NO_SUCH_JOB",
    "SERIALIZATION_FAILURE", "DEADLOCK_DETECTED", "RETRYABLE",
    "sqlstate", "is_retryable", "retry_on_conflict",
]
