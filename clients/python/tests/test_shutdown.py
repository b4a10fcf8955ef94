"""SIGTERM (and SIGINT) stop a worker process cleanly: the running job
finishes, the fetched jobs that did not start go back to todo unused,
the process exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import procq
from conftest import WAIT, WORKER, job


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_running_and_releases_the_rest(app, admin, queue, sig):
    ids = procq.defer_jobs(app, "hold", [{}, {}, {}], queue=queue)
    script = os.path.join(os.path.dirname(__file__), "sigterm_worker.py")
    proc = subprocess.Popen([sys.executable, script, queue, WORKER],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # bounded: the job waits at most 120 s
        assert line == f"started {ids[0]}\n", f"the worker printed {line!r}"
        rows = [job(admin, i) for i in ids]
        assert [(r["status"], r["attempts"]) for r in rows] == [("doing", 1)] * 3, \
            "one fetch took the batch of 3"
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out == "stopped: 1 succeeded, 2 released\n"
    first = job(admin, ids[0])
    assert (first["status"], first["result"]) == ("succeeded", {"finished": ids[0]})
    for i in ids[1:]:
        row = job(admin, i)
        assert (row["status"], row["attempts"], row["worker"], row["started_at"],
                row["lease_expires_at"], row["error"]) == ("todo", 0, None, None, None, None)
    procq.cancel_job(app, ids[1])
    procq.cancel_job(app, ids[2])
