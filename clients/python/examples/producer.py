"""Defer a small workflow and a batch of jobs, print their ids as JSON.

    PYTHONPATH=clients/python python3 clients/python/examples/producer.py

Connects with libpq's environment (PGHOST, PGDATABASE, ...) or the
conninfo in PROCQ_DSN.
"""

import json
import os

import psycopg

import procq

with psycopg.connect(os.environ.get("PROCQ_DSN", "")) as conn:
    # one transaction: the jobs exist once it commits (at the end of "with")
    steps = procq.defer_workflow(conn, [
        {"key": "extract", "task": "extract", "queue": "examples",
         "args": {"file": "orders.csv"}},
        {"key": "clean", "task": "transform", "queue": "examples",
         "args": {"step": "clean"}, "depends_on": ["extract"]},
        {"key": "enrich", "task": "transform", "queue": "examples",
         "args": {"step": "enrich"}, "depends_on": ["extract"]},
        {"key": "load", "task": "load", "queue": "examples",
         "depends_on": ["clean", "enrich"], "max_attempts": 3},
    ])
    thumbs = procq.defer_jobs(conn, "thumbnail", [{"image": n} for n in range(3)],
                              queue="examples", priority=5)
    report = procq.defer(conn, "report", queue="examples",
                         depends_on=[steps["load"], *thumbs])

print(json.dumps({"workflow": steps, "thumbnails": thumbs, "report": report}))
