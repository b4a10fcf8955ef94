"""The README's examples, run as written: producer.py defers, worker.py
runs the jobs and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import procq
from conftest import job, wait_for

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def test_producer_and_worker(admin):
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, "producer.py")],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    ids = json.loads(out)
    worker = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, "worker.py")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: job(admin, ids["report"])["status"] != "todo",
                 "the example worker to run the report")
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    wf = ids["workflow"]
    assert job(admin, wf["load"])["result"] == {"loaded": 240}
    assert job(admin, wf["clean"])["result"] == {"step": "clean", "rows": 120}
    assert [job(admin, i)["result"]["size"] for i in ids["thumbnails"]] == [256] * 3
    assert job(admin, ids["report"])["result"] == {"parents": 4}
    assert procq.get_job(admin, ids["report"])["status"] == "succeeded"


def test_readme_python_blocks_are_in_the_examples():
    """Every python block of the README is a piece of an example file, so
    that what the README shows is what test_producer_and_worker runs."""
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "..", "README.md")) as f:
        readme = f.read()
    examples = ""
    for name in sorted(os.listdir(EXAMPLES)):
        if name.endswith(".py"):
            with open(os.path.join(EXAMPLES, name)) as f:
                examples += f.read()
    blocks = readme.split("```python\n")[1:]
    assert len(blocks) >= 2
    for block in blocks:
        code = block.split("```")[0]
        assert code in examples, f"README block not in examples/:\n{code}"
