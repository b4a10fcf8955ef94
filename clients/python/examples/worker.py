"""A worker for the jobs of producer.py; stops cleanly on SIGTERM or Ctrl-C.

    PYTHONPATH=clients/python python3 clients/python/examples/worker.py
"""

import logging
import os

import procq

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

worker = procq.Worker(os.environ.get("PROCQ_DSN", ""), queues=["examples"],
                      concurrency=4, poll_interval=5)


@worker.task("extract")
def extract(ctx):
    return {"rows": 120, "file": ctx.args["file"]}


@worker.task("transform")
def transform(ctx):
    rows = ctx.parent_results(by_key=True)["extract"]["rows"]
    return {"step": ctx.args["step"], "rows": rows}


@worker.task("load")
def load(ctx):
    parents = ctx.parent_results(by_key=True)
    return {"loaded": sum(p["rows"] for p in parents.values())}


@worker.task("thumbnail")
def thumbnail(ctx):
    for _ in range(10):          # a long job checks now and then whether to stop
        if ctx.should_stop:      # aborted (cancel_job(abort => true)) or lease lost
            return None
    return {"image": ctx.args["image"], "size": 256}


def report(ctx):
    return {"parents": len(ctx.parent_results())}


worker.register("report", report)  # the same as the decorator


worker.run()                     # until SIGTERM/SIGINT: running jobs finish first
