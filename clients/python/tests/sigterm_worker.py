"""A worker process for test_shutdown.py: one thread, batches of 3, on the
queue given as argv[1], as the worker role. Its task prints "started ID"
and runs until the worker is asked to stop, then returns."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import procq  # noqa: E402

worker = procq.Worker("", queues=[sys.argv[1]], concurrency=1, batch_size=3,
                      poll_interval=3600, recover_interval=None,
                      connect_kwargs={"user": sys.argv[2]})


@worker.task("hold")
def hold(ctx):
    print(f"started {ctx.job.id}", flush=True)
    if not ctx.shutting_down.wait(120):
        raise RuntimeError("never asked to stop")
    return {"finished": ctx.job.id}


worker.run()
print(f"stopped: {worker.stats.succeeded} succeeded, {worker.stats.released} released",
      flush=True)
